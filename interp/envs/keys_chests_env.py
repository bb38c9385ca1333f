"""The Keys and Chests engine: ``num`` envs of the game of :mod:`interp.envs.keys_chests`
stepped together in numpy, with :class:`~interp.envs.vecenv.VecEnv`'s interface."""

from __future__ import annotations

import numpy as np

from interp.envs.base import NUM_ACTIONS, EnvConfigError, Ready, track_goal_touched
from interp.envs.keys_chests import (
    CHEST,
    CHEST_REWARD,
    EMPTY,
    KEY,
    MAX_OBJECTS,
    KeysChestsState,
    generate_level,
    move_agents,
    rules,
)
from interp.envs.keys_chests_draw import FRAME, sprites
from interp.envs.labels import stacked_labels
from interp.envs.spec import EnvSpec
from interp.envs.state import InvalidStateError


class KeysChestsEnv:
    """``num`` keys-chests envs, with :class:`~interp.envs.vecenv.VecEnv`'s interface.

    Levels follow Procgen's seeding: env ``i`` of an env made with ``seed`` plays the level
    seeds of its own sequence (``start_level + `` a draw below ``num_levels``, or any 31-bit
    seed with ``num_levels=0``); a level seed fixes the level."""

    def __init__(self, spec: EnvSpec, num: int, seed: int = 0, num_threads: int = 2,
                 resource_root: str | None = None, engine_options: dict | None = None):
        """``num_threads`` is accepted for the interface and unused (numpy, one thread)."""
        if num < 1:
            raise EnvConfigError(f"num must be >= 1 (got {num})")
        if resource_root is not None or engine_options:
            raise EnvConfigError("keys-chests draws its own frames: it takes no resource_root "
                                 "or engine options")
        self.spec, self.num, self.seed = spec, num, int(seed)
        self.variant = spec.get_variant()
        self.options = spec.resolved_options()
        self.rules = rules(self.options, spec.distribution_mode)
        self.num_actions = NUM_ACTIONS
        self.sprites = sprites(self.rules.world)
        w = self.rules.world
        self.grid = np.ones((num, w, w), bool)
        self.objects = np.zeros((num, w, w), np.int8)  # EMPTY / KEY / CHEST per cell
        self.slot = np.zeros((num, w, w), np.int8)  # index of that object in keys / chests
        self.keys = np.zeros((num, MAX_OBJECTS, 3), np.int64)  # x, y, present
        self.chests = np.zeros((num, MAX_OBJECTS, 3), np.int64)
        self.num_keys, self.num_chests = np.zeros(num, int), np.zeros(num, int)
        self.agent = np.zeros((num, 2), int)
        self.held, self.collected, self.opened = (np.zeros(num, int) for _ in range(3))
        self.time = np.zeros(num, int)
        self.level_seed, self.prev_level_seed = np.zeros(num, np.int64), np.zeros(num, np.int64)
        # each env's level sequence (part of the state, like the engine's level RNG)
        self.env_seed, self.env_index = np.full(num, self.seed), np.arange(num)
        self.level_index = np.full(num, -1, np.int64)
        self.prev_complete = np.zeros(num, bool)
        self.background = np.zeros(num, int)
        self.maze = np.zeros((num, 3), int)
        self.reward, self.first = np.zeros(num, np.float32), np.ones(num, bool)
        self.base = np.zeros((num, FRAME, FRAME, 3), np.uint8)  # floor and walls
        self.scene = np.zeros_like(self.base)  # and the keys and chests lying there
        self._stale = np.ones(num, bool)  # envs whose scene must be redrawn
        self._frames: np.ndarray | None = None
        self._goal_touched = np.zeros(num, bool)
        for i in range(num):
            self._new_level(i)

    # -- gym3 interface -----------------------------------------------------------------------
    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reward float32 (num,), obs uint8 (num, 64, 64, 3), first bool (num,))."""
        if self._frames is None:
            self._frames = self._render()
        return self.reward.copy(), self._frames.copy(), self.first.copy()

    def act(self, actions) -> None:
        actions = np.asarray(actions)
        if actions.shape != (self.num,):
            raise ValueError(f"expected {self.num} actions, got shape {actions.shape}")
        if ((actions < 0) | (actions >= NUM_ACTIONS)).any():
            raise ValueError(f"actions must be in 0..{NUM_ACTIONS - 1}")
        reward = np.zeros(self.num, np.float32)
        before = self.agent.copy()
        self.agent = move_agents(self.grid, self.agent, actions)
        self._touch(np.flatnonzero((self.agent != before).any(1)), reward)
        self.time += 1
        complete = self.opened == np.minimum(self.num_keys, self.num_chests)
        done = complete | (self.time >= self.rules.timeout)
        self.reward, self.first = reward, done
        for i in np.flatnonzero(done):
            self.prev_complete[i] = complete[i]
            self.prev_level_seed[i] = self.level_seed[i]
            self._new_level(i)
        self._frames = None

    def _touch(self, rows: np.ndarray, reward: np.ndarray) -> None:
        """The agents of ``rows`` entered their cells: collect keys, open chests."""
        x, y = self.agent[rows].T
        what = self.objects[rows, y, x]
        slot = self.slot[rows, y, x]
        k = what == KEY
        self.held[rows[k]] += 1
        self.collected[rows[k]] += 1
        self.keys[rows[k], slot[k], 2] = 0
        c = (what == CHEST) & (self.held[rows] > 0)
        self.held[rows[c]] -= 1
        self.opened[rows[c]] += 1
        self.chests[rows[c], slot[c], 2] = 0
        reward[rows[c]] += CHEST_REWARD
        gone = k | c
        self.objects[rows[gone], y[gone], x[gone]] = EMPTY
        self._stale[rows[gone]] = True

    def get_info(self) -> list[dict]:
        return [{"level_seed": int(self.level_seed[i]),
                 "prev_level_seed": int(self.prev_level_seed[i]),
                 "prev_level_complete": int(self.prev_complete[i])} for i in range(self.num)]

    def close(self) -> None:
        self._frames = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- levels and drawing -------------------------------------------------------------------
    def _level_seed(self, i: int, k: int) -> int:
        rng = np.random.default_rng([int(self.env_seed[i]) & 0xFFFFFFFF, int(self.env_index[i]),
                                     k])
        n = self.spec.num_levels
        return self.spec.start_level + int(rng.integers(n)) if n else int(rng.integers(2**31))

    def _new_level(self, i: int) -> None:
        self.level_index[i] += 1
        seed = self._level_seed(i, int(self.level_index[i]))
        lv = generate_level(seed, self.rules, len(self.sprites.backgrounds))
        self._load(i, KeysChestsState(
            self.rules.world, self.rules.timeout, lv["grid"], tuple(lv["agent"]),
            np.c_[lv["keys"], np.ones(len(lv["keys"]), int)],
            np.c_[lv["chests"], np.ones(len(lv["chests"]), int)],
            current_level_seed=seed, prev_level_seed=int(self.prev_level_seed[i]),
            prev_level_complete=bool(self.prev_complete[i]), background=lv["background"],
            maze=lv["maze"], env_seed=int(self.env_seed[i]), env_index=int(self.env_index[i]),
            level_index=int(self.level_index[i]), reward=float(self.reward[i]),
            first=True))

    def _load(self, i: int, s: KeysChestsState) -> None:
        """Write state ``s`` (validated) into row ``i``."""
        self.grid[i] = s.grid
        self.objects[i], self.slot[i] = EMPTY, 0
        for name, arr, code in (("keys", s.keys, KEY), ("chests", s.chests, CHEST)):
            table = getattr(self, name)
            table[i] = 0
            table[i, :len(arr)] = arr
            present = np.flatnonzero(arr[:, 2] > 0)
            self.objects[i, arr[present, 1], arr[present, 0]] = code
            self.slot[i, arr[present, 1], arr[present, 0]] = present
        self.num_keys[i], self.num_chests[i] = len(s.keys), len(s.chests)
        self.agent[i] = s.agent
        self.held[i], self.collected[i] = s.keys_held, s.keys_collected
        self.opened[i], self.time[i] = s.chests_opened, s.cur_time
        self.level_seed[i], self.prev_level_seed[i] = s.current_level_seed, s.prev_level_seed
        self.prev_complete[i], self.background[i] = s.prev_level_complete, s.background
        self.maze[i], self.level_index[i] = s.maze, s.level_index
        self.env_seed[i], self.env_index[i] = s.env_seed, s.env_index
        self.reward[i], self.first[i] = s.reward, s.first
        self.base[i] = self.sprites.base(s.grid, s.background)
        self._stale[i] = True
        self._goal_touched[i] = False
        self._frames = None

    def _render(self) -> np.ndarray:
        """Frames: the scene (redrawn where an object went or a level began), the agent and
        the inventory."""
        stale = np.flatnonzero(self._stale)
        if stale.size:
            self.scene[stale] = self.base[stale]
            env, y, x = np.nonzero(self.objects[stale])
            env = stale[env]
            what = self.objects[env, y, x]
            for code, name in ((KEY, "key"), (CHEST, "chest")):
                sel = what == code
                self.sprites.draw(self.scene, env[sel], x[sel], y[sel], name)
            self._stale[:] = False
        frames = self.scene.copy()
        self.sprites.draw(frames, np.arange(self.num), self.agent[:, 0], self.agent[:, 1],
                          "agent")
        self.sprites.draw_inventory(frames, self.held)
        return frames

    # -- state access -------------------------------------------------------------------------
    def get_state(self, i: int) -> KeysChestsState:
        i = int(i)
        nk, nc = self.num_keys[i], self.num_chests[i]
        return KeysChestsState(
            self.rules.world, self.rules.timeout, self.grid[i].copy(),
            (int(self.agent[i, 0]), int(self.agent[i, 1])), self.keys[i, :nk].copy(),
            self.chests[i, :nc].copy(), int(self.held[i]), int(self.collected[i]),
            int(self.opened[i]), int(self.time[i]), int(self.level_seed[i]),
            int(self.prev_level_seed[i]), bool(self.prev_complete[i]),
            int(self.background[i]), tuple(int(v) for v in self.maze[i]),
            int(self.env_seed[i]), int(self.env_index[i]), int(self.level_index[i]),
            float(self.reward[i]), bool(self.first[i]))

    def get_state_bytes(self, i: int) -> bytes:
        return self.get_state(i).to_bytes()

    def set_state(self, i: int, state: KeysChestsState | bytes) -> None:
        """Write one env's state (validated first)."""
        if isinstance(state, (bytes, bytearray)):
            state = KeysChestsState.from_bytes(bytes(state))
        if not isinstance(state, KeysChestsState):
            raise InvalidStateError(f"a keys-chests env takes keys-chests states, not "
                                    f"{type(state).__name__}")
        state.validate(self.rules.world, self.rules.timeout)
        if not 0 <= int(i) < self.num:
            raise IndexError(f"env {i} out of range 0..{self.num - 1}")
        self._load(int(i), state)

    def get_all_states(self) -> list[bytes]:
        return [self.get_state_bytes(i) for i in range(self.num)]

    def set_all_states(self, states: list[bytes]) -> None:
        if len(states) != self.num:
            raise ValueError(f"expected {self.num} states, got {len(states)}")
        parsed = [KeysChestsState.from_bytes(bytes(s)) for s in states]
        for s in parsed:  # all checked before any is written
            s.validate(self.rules.world, self.rules.timeout)
        for i, s in enumerate(parsed):
            self._load(i, s)

    # -- labels -------------------------------------------------------------------------------
    def labels(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Ground-truth labels of envs ``rows`` (default: all); see ``LABEL_DOCS``."""
        rows, out = stacked_labels(self, rows)
        track_goal_touched(self._goal_touched, self.first, rows, out)
        return out

    def request_labels(self, rows: np.ndarray | None = None) -> Ready:
        """:meth:`labels`, computed now (``.result()``), as ``VecEnv.request_labels``."""
        return Ready(self.labels(rows))
