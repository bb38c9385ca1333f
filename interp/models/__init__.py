"""Agent architectures."""

from interp.models.impala import Add, ImpalaAgent, ModelConfig, preprocess

__all__ = ["Add", "ImpalaAgent", "ModelConfig", "preprocess"]
