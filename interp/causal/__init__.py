"""Causal tests of what an agent pursues: steering vectors, channel retargeting, resampling
from matched levels and policy vector fields (docs/causal.md).

    from interp.causal import object_vector, steer, vector_fields, PatchSpec
"""

from interp.causal.fields import VectorField, vector_fields, write_fields
from interp.causal.resample import ResampleResult, resample_matched
from interp.causal.retarget import RetargetResult, retarget
from interp.causal.spec import Patch, PatchSpec, SpecError
from interp.causal.steer import SteerResult, steer
from interp.causal.vectors import SteerError, object_vector, probe_vector, random_like

__all__ = ["Patch", "PatchSpec", "ResampleResult", "RetargetResult", "SpecError",
           "SteerError", "SteerResult", "VectorField", "object_vector", "probe_vector",
           "random_like", "resample_matched", "retarget", "steer", "vector_fields",
           "write_fields"]
