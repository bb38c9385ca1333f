"""Procgen environments and the goal-misgeneralization variants of the papers."""

from interp.envs.core import (
                              EditError,
                              EnvConfigError,
                              EnvSpec,
                              Variant,
                              VecEnv,
                              get_variant,
                              list_variants,
                              make_env,
)
from interp.envs.state import GameState, InvalidStateError, StateFormatError, parse_state

__all__ = ["EditError", "EnvConfigError", "EnvSpec", "GameState", "InvalidStateError",
           "StateFormatError", "Variant", "VecEnv", "get_variant", "list_variants", "make_env",
           "parse_state"]
