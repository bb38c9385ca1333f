"""Mechanistic interpretability for goal misgeneralization in deep RL (Procgen, IMPALA-PPO)."""

__version__ = "0.1.0"
