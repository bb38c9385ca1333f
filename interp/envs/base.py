"""The bottom floor of :mod:`interp.envs`: errors, constants and the :class:`Variant` and
:class:`Game` records (with the outcome families they are scored by).

It imports only the state format; everything else in :mod:`interp.envs` builds on it (the
floors are listed in the package's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from interp.envs.state import GameState
from interp.errors import InterpError

NUM_ACTIONS = 15
NOOP = 4  # the "do nothing" action (no direction, no key)
DISTRIBUTION_MODES = ("easy", "hard", "extreme", "memory", "exploration")
# the stock engine aborts the process (fassert) on a mode its game lacks; exploration fixes the
# levels itself and refuses num_levels / start_level, which every env here passes
MODE_GAMES = {"extreme": ("chaser", "dodgeball", "leaper", "starpilot"),
              "memory": ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner"),
              "exploration": ()}
MAX_ENVS = 4096  # envs one run may hold at once: ~2 MB each for CoinRun (516 MB per 256)


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
class Measure:
    """One number reported from a per-episode outcome column: a ``rate`` of flags or a ``mean``
    (NaN entries, where the outcome is undefined, are left out of both and of n)."""

    name: str
    label: str
    kind: str = "rate"  # "rate" | "mean"
    column: str = ""  # the outcome column it is computed from (default: name)


@dataclass(frozen=True)
class Outcomes:
    """A family of per-episode outcomes that some variants are scored by, declared once.

    ``name`` picks the function that computes its columns from a run's episodes and trace
    (:func:`interp.evaluate.outcome_columns`); ``trace_keys``: the labels that function needs
    traced every step; ``flags``: per-episode flags the episode runner ORs over every step from
    that step's labels (name -> ``flag(labels) -> bool array``); ``measures``: what ``interp
    eval`` reports, in order; ``effects``: the outcomes the causal commands compare across
    conditions; ``when(options)``: the family applies only to runs with these options.
    """

    name: str
    trace_keys: tuple[str, ...] = ()
    flags: tuple[tuple[str, Callable[[dict], np.ndarray]], ...] = ()
    measures: tuple[Measure, ...] = ()
    effects: tuple[Measure, ...] = ()
    when: Callable[[dict], bool] | None = None


@dataclass(frozen=True)
class Game:
    """What every variant of a stock (or our own) game shares for scoring and attribution:
    the label of its success rate, its outcome families, and the image regions attribution
    masks split a frame into, in priority order (names known to
    :func:`interp.attribute.object_masks`)."""

    name: str
    success_label: str = "success: level completed"
    outcomes: tuple[Outcomes, ...] = ()
    regions: tuple[str, ...] = ("goal", "agent")


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
    # The sprites the variant draws, from its resolved options (an interp.envs.assets.AssetSet;
    # None: the stock sprites). Such variants run in a worker process: procgen loads sprites
    # once per process (see interp/envs/remote.py).
    assets: Callable[[dict], object] | None = None
    # A game of our own instead of the stock engine: a class with VecEnv's interface and
    # constructor (e.g. interp.envs.keys_chests_env.KeysChestsEnv); make_env and workers build it.
    engine: type | None = None
    # Outcome families of this variant beyond its game's (Game.outcomes)
    outcomes: tuple[Outcomes, ...] = ()


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


def check_env_count(num: int, fix: str = "use fewer envs") -> None:
    """Refuse, before any env exists, a run that would hold more than :data:`MAX_ENVS` envs
    (memory grows ~2 MB per CoinRun env); ``fix`` says which option lowers it."""
    if num > MAX_ENVS:
        raise EnvConfigError(f"{num:,} envs at once would need about {2 * num / 1024:.0f} GB "
                             f"(CoinRun: ~2 MB each); at most {MAX_ENVS:,}: {fix}")


def track_goal_touched(touched: np.ndarray, first: np.ndarray, rows: np.ndarray,
                       labels: dict) -> None:
    """Update an env's per-env ``touched`` flags from ``labels`` of ``rows`` (a new episode,
    ``first``, clears them) and set ``labels["goal_touched"]``."""
    now = (touched[rows] & ~first[rows]) | (labels["agent_on_goal"] > 0)
    touched[rows] = now
    labels["goal_touched"] = now.astype(labels["agent_on_goal"].dtype)


class Ready:
    """A result computed at once, read like a remote env's owed reply: ``.result()``."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
