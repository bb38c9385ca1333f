"""Procgen environments and the goal-misgeneralization variants of the papers.

Floors, each importing only those below it: ``state`` and ``base`` (the engine's state format;
errors, constants, the Variant and Game records and the Outcomes families they are
scored by); ``registry`` and ``spec`` (variants and games by name, EnvSpec);
``geometry`` and ``assets``; the games (``coinrun``, ``maze``, ``colour_shape``,
``keys_chests``); ``labels``; the engines (``vecenv``: stock Procgen, ``keys_chests_env``);
``variants`` (the built-in ones, registered when this package is imported); ``remote`` (envs in
a worker process); ``make`` (make_env); ``render`` and ``gym_wrapper``.
"""

from interp.envs import variants  # noqa: F401 - registers the built-in variants
from interp.envs.base import EditError, EnvConfigError, Variant
from interp.envs.make import make_env
from interp.envs.registry import get_variant, list_variants
from interp.envs.spec import EnvSpec
from interp.envs.state import GameState, InvalidStateError, StateFormatError, parse_state
from interp.envs.vecenv import VecEnv

__all__ = ["EditError", "EnvConfigError", "EnvSpec", "GameState", "InvalidStateError",
           "StateFormatError", "Variant", "VecEnv", "get_variant", "list_variants", "make_env",
           "parse_state"]
