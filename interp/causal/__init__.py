"""Causal tests of what an agent pursues: steering vectors, channel retargeting, resampling
from matched levels and policy vector fields (docs/causal.md)."""
