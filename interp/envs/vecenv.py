"""The stock Procgen engine with a variant's edits and labels: ``num`` envs in this process.

A *variant* is a stock game plus an optional *edit*: a function that rewrites a freshly reset
level's :class:`~interp.envs.state.GameState` (move the coin, make a wall permeable...). The
edit runs on every env whose ``first`` flag is set, right after ``act`` and before the agent
observes, so the agent never sees an unedited frame. Its RNG is seeded from
``(seed, level_seed)``: a level always gets the same edit.

    env = make_env("coinrun-random-coin", num=64, seed=0)
    reward, obs, first = env.observe()        # obs: uint8 (num, 64, 64, 3)
    env.act(actions)                          # int array (num,)
"""

from __future__ import annotations

import numpy as np

from interp.envs.assets import claim_assets
from interp.envs.base import (
    NUM_ACTIONS,
    EnvConfigError,
    Ready,
    import_procgen,
    track_goal_touched,
)
from interp.envs.labels import stacked_labels
from interp.envs.spec import EnvSpec
from interp.envs.state import GameState, InvalidStateError, parse_state, validate

MAX_STATE_SIZE = 2**20


def _edit_seed(seed: int, level_seed: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, level_seed & 0xFFFFFFFF])


class VecEnv:
    """``num`` envs of one variant in this process, gym3 style (observe / act)."""

    def __init__(self, spec: EnvSpec, num: int, seed: int = 0, num_threads: int = 2,
                 resource_root: str | None = None, engine_options: dict | None = None):
        """``engine_options`` are extra engine options (e.g. ``center_agent=False``
        for a whole-level view); states never move between envs with different options."""
        ProcgenGym3Env = import_procgen().ProcgenGym3Env
        if num < 1:
            raise EnvConfigError(f"num must be >= 1 (got {num})")
        claim_assets(resource_root)  # procgen loads sprites once per process
        self.spec, self.num, self.seed = spec, num, int(seed)
        self.variant = spec.get_variant()
        self.options = spec.resolved_options()
        self.num_actions = NUM_ACTIONS
        kwargs = dict(engine_options or {})
        if resource_root is not None:
            kwargs["resource_root"] = resource_root
        self._env = ProcgenGym3Env(
            num=num, env_name=self.variant.game, distribution_mode=spec.distribution_mode,
            num_levels=spec.num_levels, start_level=spec.start_level, rand_seed=self.seed,
            num_threads=num_threads, **kwargs)
        self._buf = self._env._ffi.new(f"char[{MAX_STATE_SIZE}]")
        self._goal_touched = np.zeros(num, dtype=bool)
        self._edits_owed = False
        self._mode_code = self.get_state(0)["distribution_mode"]  # checked by set_state
        self._edit_new_levels(np.ones(num, dtype=bool))

    # -- gym3 interface -------------------------------------------------------------
    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reward float32 (num,), obs uint8 (num, 64, 64, 3), first bool (num,))."""
        self._settle()
        rew, ob, first = self._env.observe()
        return rew, ob["rgb"], first

    def act(self, actions) -> None:
        actions = np.asarray(actions)
        if actions.shape != (self.num,):
            raise ValueError(f"expected {self.num} actions, got shape {actions.shape}")
        self._settle()
        self._env.act(actions.astype(np.int32))  # returns at once; the engine steps in threads
        self._edits_owed = self.variant.edit is not None

    def _settle(self) -> None:
        """Edit the levels that began in the last ``act``. Deferred to the next read, so that
        ``act`` never waits for the step and envs can step while the network runs."""
        if self._edits_owed:
            self._edits_owed = False
            _, _, first = self._env.observe()
            self._edit_new_levels(first)

    def get_info(self) -> list[dict]:
        self._settle()
        return self._env.get_info()

    def close(self) -> None:
        self._env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- state access ----------------------------------------------------------------
    def get_state_bytes(self, i: int) -> bytes:
        self._settle()
        n = self._env.call_c_func("get_state", i, self._buf, MAX_STATE_SIZE)
        return bytes(self._env._ffi.buffer(self._buf, n))

    def get_state(self, i: int) -> GameState:
        return parse_state(self.get_state_bytes(i))

    def set_state(self, i: int, state: GameState | bytes) -> None:
        """Write one env's state (validated first: the engine aborts on bad states)."""
        if isinstance(state, (bytes, bytearray)):
            state = parse_state(state)
        self._write_state(i, state)
        self._goal_touched[i] = False

    def _write_state(self, i: int, state: GameState) -> None:
        """The one path into the engine: validated first, since bad states abort the process."""
        validate(state, self.variant.game)
        if state["distribution_mode"] != self._mode_code:
            raise InvalidStateError("state comes from an env with another distribution_mode; "
                                    "states only move between envs made with the same options")
        raw = state.to_bytes()
        self._env.call_c_func("set_state", int(i), raw, len(raw))

    def get_all_states(self) -> list[bytes]:
        return [self.get_state_bytes(i) for i in range(self.num)]

    def set_all_states(self, states: list[bytes]) -> None:
        if len(states) != self.num:
            raise ValueError(f"expected {self.num} states, got {len(states)}")
        for i, raw in enumerate(states):
            self.set_state(i, raw)

    def labels(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Ground-truth labels of the current states of envs ``rows`` (default: all), one array
        per key (see ``interp.envs.labels.LABEL_DOCS``). ``goal_touched`` is exact for an env
        whose labels are read every step."""
        rows, out = stacked_labels(self, rows)
        _, _, first = self._env.observe()
        track_goal_touched(self._goal_touched, first, rows, out)
        return out

    def request_labels(self, rows: np.ndarray | None = None) -> "Ready":
        """:meth:`labels` with the interface of :meth:`RemoteVecEnv.request_labels
        <interp.envs.remote.RemoteVecEnv.request_labels>` (computed now: ``.result()``)."""
        return Ready(self.labels(rows))

    # -- edits -----------------------------------------------------------------------
    def _edit_new_levels(self, first: np.ndarray) -> None:
        if self.variant.edit is None:
            return
        for i in np.flatnonzero(first):
            state = self.get_state(i)
            rng = _edit_seed(self.seed, state["current_level_seed"])
            edited = self.variant.edit(state, rng, self.options)
            if edited is not None:
                self._write_state(i, edited)


def env_class(variant) -> type:
    """The class that runs ``variant`` in a process: its own engine, or the stock VecEnv."""
    return variant.engine or VecEnv
