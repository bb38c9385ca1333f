"""Vectorized Procgen environments with research variants made through the serialized state.

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

import difflib
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

import numpy as np

from interp.envs.state import GameState, InvalidStateError, parse_state, validate
from interp.errors import InterpError

MAX_STATE_SIZE = 2**20
NUM_ACTIONS = 15
NOOP = 4  # the "do nothing" action (no direction, no key)
DISTRIBUTION_MODES = ("easy", "hard", "extreme", "memory", "exploration")
# the stock engine aborts the process (fassert) on a mode its game lacks; exploration fixes the
# levels itself and refuses num_levels / start_level, which every env here passes
MODE_GAMES = {"extreme": ("chaser", "dodgeball", "leaper", "starpilot"),
              "memory": ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner"),
              "exploration": ()}


class EnvConfigError(InterpError, ValueError):
    """Bad variant name or options; the message says what to use instead."""


class EditError(InterpError, RuntimeError):
    """An edit cannot be applied to a level (e.g. no free ground cell for the coin)."""


class Edit(Protocol):
    def __call__(self, state: GameState, rng: np.random.Generator,
                 options: dict) -> GameState | None:
        """Return the edited state (or None to keep the level as generated)."""


LabelFn = Callable[[GameState, dict], dict]


@dataclass(frozen=True)
class Variant:
    """A named environment: a stock game, an edit and its option defaults."""

    name: str
    game: str
    description: str
    edit: Edit | None = None
    defaults: dict = field(default_factory=dict)
    # Fills variant-specific label keys (e.g. the distractor cell); see interp/envs/labels.py.
    labels: LabelFn | None = None
    check_options: Callable[[dict, str], None] | None = None
    # Builds the env in a worker process (variants with their own asset set); see remote.py.
    factory: Callable[..., "VecEnv"] | None = None
    # A game of our own instead of the stock engine: a class with VecEnv's interface and
    # constructor (e.g. interp.envs.keys_chests.KeysChestsEnv); make_env and workers build it.
    engine: type | None = None


_REGISTRY: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    if variant.name in _REGISTRY:
        raise ValueError(f"variant {variant.name!r} registered twice")
    _REGISTRY[variant.name] = variant
    return variant


def _load_builtin_variants() -> None:
    # Importing these modules registers their variants.
    from interp.envs import variants  # noqa: F401


def list_variants() -> list[Variant]:
    _load_builtin_variants()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_variant(name: str) -> Variant:
    _load_builtin_variants()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise EnvConfigError(
            f"unknown env variant {name!r}.{hint} `interp envs list` shows all "
            f"{len(_REGISTRY)} variants.")
    return _REGISTRY[name]


@dataclass(frozen=True)
class EnvSpec:
    """Everything needed to rebuild an environment; stored in checkpoints and recordings."""

    variant: str
    distribution_mode: str = "easy"
    num_levels: int = 0
    start_level: int = 0
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        variant = get_variant(self.variant)
        if self.distribution_mode not in DISTRIBUTION_MODES:
            raise EnvConfigError(f"distribution_mode {self.distribution_mode!r} is not one of "
                                 f"{', '.join(DISTRIBUTION_MODES)}")
        games = MODE_GAMES.get(self.distribution_mode)
        if variant.engine is None and games is not None and variant.game not in games:
            usable = [m for m in DISTRIBUTION_MODES
                      if m not in MODE_GAMES or variant.game in MODE_GAMES[m]]
            raise EnvConfigError(f"distribution_mode {self.distribution_mode!r} is not available "
                                 f"for {self.variant} ({variant.game}); use one of "
                                 f"{', '.join(usable)}")
        if self.num_levels < 0 or self.start_level < 0:
            raise EnvConfigError("num_levels and start_level must be >= 0 (0 levels = unlimited)")
        unknown = set(self.options) - set(variant.defaults)
        if unknown:
            allowed = ", ".join(sorted(variant.defaults)) or "none"
            raise EnvConfigError(f"variant {self.variant!r} has no option(s) "
                                 f"{', '.join(sorted(unknown))}; its options: {allowed}")
        if variant.check_options:
            variant.check_options(self.resolved_options(), self.distribution_mode)

    def resolved_options(self) -> dict:
        return {**get_variant(self.variant).defaults, **self.options}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EnvSpec":
        allowed = {"variant", "distribution_mode", "num_levels", "start_level", "options"}
        unknown = set(d) - allowed
        if unknown or "variant" not in d:
            raise EnvConfigError(f"env spec needs 'variant' and may have {sorted(allowed)}; "
                                 f"got {sorted(d)}")
        return cls(**{**d, "options": dict(d.get("options") or {})})


def import_procgen():
    """Import procgen (heavy: only when an env is made) without gym 0.26's deprecation banner,
    which procgen's gym registration would print on every command."""
    try:
        import gym_notices.notices

        gym_notices.notices.notices.pop("0.26.2", None)
    except ImportError:
        pass
    import procgen

    return procgen


def _edit_seed(seed: int, level_seed: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, level_seed & 0xFFFFFFFF])


class VecEnv:
    """``num`` envs of one variant in this process, gym3 style (observe / act)."""

    def __init__(self, spec: EnvSpec, num: int, seed: int = 0, num_threads: int = 2,
                 resource_root: str | None = None, engine_options: dict | None = None):
        """``engine_options`` are extra engine options (e.g. ``center_agent=False``
        for a whole-level view); states never move between envs with different options."""
        ProcgenGym3Env = import_procgen().ProcgenGym3Env

        from interp.envs.remote import claim_assets

        if num < 1:
            raise EnvConfigError(f"num must be >= 1 (got {num})")
        claim_assets(resource_root)  # procgen loads sprites once per process
        self.spec, self.num, self.seed = spec, num, int(seed)
        self.variant = get_variant(spec.variant)
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
        from interp.envs.labels import state_labels

        rows = np.arange(self.num) if rows is None else np.asarray(rows, int)
        if rows.size == 0:
            raise ValueError("labels() needs at least one env row")
        labs = [state_labels(self.get_state(i), self.variant, self.options) for i in rows]
        out = {k: np.asarray([r[k] for r in labs]) for k in labs[0]}
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


def track_goal_touched(touched: np.ndarray, first: np.ndarray, rows: np.ndarray,
                       labels: dict) -> None:
    """Update an env's per-env ``touched`` flags from ``labels`` of ``rows`` (a new episode,
    ``first``, clears them) and set ``labels["goal_touched"]``."""
    now = (touched[rows] & ~first[rows]) | (labels["agent_on_goal"] > 0)
    touched[rows] = now
    labels["goal_touched"] = now.astype(labels["agent_on_goal"].dtype)


def env_class(variant: Variant) -> type:
    """The class that runs ``variant`` in a process: its own engine, or the stock VecEnv."""
    return variant.engine or VecEnv


MAX_ENVS = 4096  # envs one run may hold at once: ~2 MB each for CoinRun (516 MB per 256)


def check_env_count(num: int, fix: str = "use fewer envs") -> None:
    """Refuse, before any env exists, a run that would hold more than :data:`MAX_ENVS` envs
    (memory grows ~2 MB per CoinRun env); ``fix`` says which option lowers it."""
    if num > MAX_ENVS:
        raise EnvConfigError(f"{num:,} envs at once would need about {2 * num / 1024:.0f} GB "
                             f"(CoinRun: ~2 MB each); at most {MAX_ENVS:,}: {fix}")


def make_env(variant: str | EnvSpec, num: int = 64, seed: int = 0, *,
             distribution_mode: str = "easy", num_levels: int = 0, start_level: int = 0,
             options: dict | None = None, num_threads: int = 2, remote: bool = False) -> VecEnv:
    """Build ``num`` envs of a variant (name or :class:`EnvSpec`). ``remote=True`` runs them in
    a worker process (:class:`~interp.envs.remote.RemoteVecEnv`; variants with their own
    sprites always do), where edits and labels run beside this process's work."""
    spec = variant if isinstance(variant, EnvSpec) else EnvSpec(
        variant, distribution_mode, num_levels, start_level, dict(options or {}))
    check_env_count(num, "lower --num-envs")
    v = get_variant(spec.variant)
    if v.factory is not None:
        return v.factory(spec, num=num, seed=seed, num_threads=num_threads)
    if remote:
        from interp.envs.remote import RemoteVecEnv
        return RemoteVecEnv(spec, num=num, seed=seed, num_threads=num_threads)
    return env_class(v)(spec, num=num, seed=seed, num_threads=num_threads)


class Ready:
    """A result computed at once, read like a remote env's owed reply: ``.result()``."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
