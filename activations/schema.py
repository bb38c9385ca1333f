"""The recording format (docs/recording-format.md): the one description that the writer
(:mod:`interp.record`) and the reader (:mod:`activations`) both import."""

from __future__ import annotations

import json

import numpy as np

SCHEMA_VERSION = 1
ROW_GROUPS = ("activations", "steps", "labels")  # per-step datasets, row axis first; bare
# names are looked up in this order
EPISODE_GROUP = "episodes"
EPISODE_COLUMNS = {"id": np.int64, "env": np.int32, "index": np.int32, "level_seed": np.int64,
                   "length": np.int32, "return": np.float32, "level_complete": np.bool_}
STATE_GROUP = "resume"  # env states, loop counters, hidden states of the last flush (internal)
BULK = ("steps/obs",)  # besides activations, compressed only as --compression says


def schema_problem(attrs) -> str | None:
    """Why a file's root attributes are not those of this schema (None: they are)."""
    found = attrs.get("schema_version")
    if found != SCHEMA_VERSION:
        return f"is not an interp recording of schema {SCHEMA_VERSION} (schema_version={found})"
    return None


def game_of(attrs) -> str | None:
    """The game the recording was made on: the ``game`` attribute (files written before it
    existed: the game of the ``env_spec`` variant, None for a variant this code lacks)."""
    if "game" in attrs:
        return str(attrs["game"])
    from interp.envs import EnvConfigError, get_variant

    variant = json.loads(attrs["env_spec"]).get("variant")
    try:
        return get_variant(variant).game if variant else None
    except EnvConfigError:
        return None
