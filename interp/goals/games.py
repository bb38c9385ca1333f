"""Goal hypotheses per game: which goals a level offers and what pursuing each one means.

A game adds its goals in one place, a :class:`GoalGame` passed to :func:`register_goals`:
its candidate goals (:class:`Goal`) for a variant's options, the label keys it reads each step,
the static *layout* it takes from an episode's first state, and ``predict``, which says for
every step which of the 15 Procgen actions make progress towards a goal and whether the goal
has been reached. Users add goals by name (a goal or one of its aliases) or as ``cell:X,Y``.

Procgen action ids (all games): for id < 9 the horizontal component is ``id // 3 - 1`` and the
vertical ``id % 3 - 1`` (0 left-down, 1 left, 2 left-up, 3 down, 4 no-op, 5 up, 6 right-down,
7 right, 8 right-up); ids 9-14 are special keys that move nothing.

- **Maze** moves one cell per step (grid_step). A move with a horizontal component drops the
  vertical one, so ids 0-2 go left, 6-8 right, 3 down, 5 up; 4 and 9-14 stay; a move into a wall
  stays (checked against the engine on 3,000 random steps). Progress = the next cell is one
  step closer to the goal by the shortest path through the maze (4-connected BFS).
- **CoinRun** is a platformer: ids 0-2 push left, 6-8 push right (the agent accelerates with
  inertia, and weakly in the air), ids 2/5/8 also jump when standing on something. Progress =
  pushing towards the goal's x. The model ignores the vertical: jumping is neither required
  nor penalised, a goal right above or below the agent (horizontal overlap, not touching) gets
  no prediction, and run-ups, dodging saws and enemies, and the inertia of turning are not
  modelled (levels are left-to-right corridors, so horizontal progress is the path's progress).
- **Keys and Chests** (our engine) moves one cell per step, a diagonal horizontally if that
  cell is free, else vertically (``move_agents``). The goals are kinds of objects: progress =
  one step closer by BFS to the nearest key still lying (``keys``) or the nearest unopened
  chest (``chests``), whether or not a key is held; they renew after each pick-up, so the
  whole episode is weighed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from interp.envs import EnvSpec, GameState, get_variant
from interp.envs.keys_chests import GAME as KC_GAME
from interp.envs.keys_chests import MAX_OBJECTS, move_agents, rules
from interp.envs.geometry import bfs
from interp.envs.maze import WALL, WORLD_DIM
from interp.errors import InterpError

N_ACTIONS = 15
_IDS = np.arange(N_ACTIONS)
ACTION_DX = np.where(_IDS < 9, _IDS // 3 - 1, 0)  # horizontal component of each action id
ACTION_DY = np.where(_IDS < 9, _IDS % 3 - 1, 0)
MAZE_DX, MAZE_DY = ACTION_DX, np.where(ACTION_DX != 0, 0, ACTION_DY)  # maze: one axis per move

Cell = tuple[int, int]


class GoalError(InterpError, ValueError):
    """Unknown goal names, too few goals or a game without goal hypotheses."""


@dataclass(frozen=True)
class Goal:
    """A candidate goal: ``target`` is a role the game's ``predict`` knows (e.g. "corner") or a
    fixed cell; ``rewarded`` marks the goal whose arrival ends the episode with the reward."""

    name: str
    target: str | Cell
    description: str
    aliases: tuple[str, ...] = ()
    rewarded: bool = False


# predict(layout, per-step label columns, target) -> (optimal bool (T, 15), reached bool (T,))
Predict = Callable[[Any, dict, "str | Cell"], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class GoalGame:
    """The goal hypotheses of one game (or one variant)."""

    name: str  # a game, or a variant name that overrides its game's entry
    goals: Callable[[dict], tuple[Goal, ...]]  # variant options -> default candidates
    keys: tuple[str, ...]  # label keys ``predict`` reads each step
    layout: Callable[[GameState], Any]  # static geometry, from an episode's first state
    predict: Predict
    size: Callable[[EnvSpec], tuple[int, int]]  # (width, height) that cell goals must fit in
    # Grid games: the layout is a bool (h, w) array of walkable cells, every one of which can
    # be a goal (the posterior map); None for games without one.
    cells: Callable[[Any], list[Cell]] | None = None
    # Goals that renew (kinds of objects: after one key, the next): the whole episode is
    # weighed, not only up to the first goal reached.
    renewing: bool = False


_REGISTRY: dict[str, GoalGame] = {}


def register_goals(game: GoalGame) -> GoalGame:
    _REGISTRY[game.name] = game
    return game


def goal_game(spec: EnvSpec) -> GoalGame:
    """The goal hypotheses of a variant: its own entry, else its game's."""
    variant = get_variant(spec.variant)
    game = _REGISTRY.get(variant.name) or _REGISTRY.get(variant.game)
    if game is None:
        raise GoalError(f"no goal hypotheses for {variant.game} ({spec.variant!r}); goal "
                        f"inference covers {', '.join(sorted(_REGISTRY))}")
    return game


CELL = re.compile(r"cell:(\d+),(\d+)$")


def resolve_goals(spec: EnvSpec, extra=(), defaults: bool = True) -> tuple[Goal, ...]:
    """The candidate goals: the game's defaults (unless ``defaults`` is False) plus ``extra``
    names (a goal's name or alias, or ``cell:X,Y``); at least two."""
    game = goal_game(spec)
    known = game.goals(spec.resolved_options())
    goals = list(known if defaults else ())
    for name in extra:
        m = CELL.match(name.replace(" ", ""))
        if m:
            cell = (int(m[1]), int(m[2]))
            w, h = game.size(spec)
            if not (cell[0] < w and cell[1] < h):
                raise GoalError(f"goal {name!r} lies outside the {w}x{h} level of "
                                f"{spec.variant!r}: use x < {w}, y < {h} (y = 0 is the bottom row)")
            goal = Goal(f"cell:{cell[0]},{cell[1]}", cell, f"the cell {cell}")
        else:
            goal = next((g for g in known if name in (g.name, *g.aliases)), None)
            if goal is None:
                names = ", ".join(f"{g.name} ({'/'.join(g.aliases)})" if g.aliases else g.name
                                  for g in known)
                raise GoalError(f"unknown goal {name!r} for {spec.variant!r}; use one of "
                                f"{names}, or a cell as cell:X,Y")
        if goal.name not in {g.name for g in goals}:
            goals.append(goal)
    if len(goals) < 2:
        raise GoalError(f"goal inference compares goals: give at least two (got "
                        f"{', '.join(g.name for g in goals) or 'none'})")
    return tuple(goals)


# -- maze -----------------------------------------------------------------------------------
def _maze_goals(options: dict) -> tuple[Goal, ...]:
    obj = options.get("goal")  # colour-shape variants name their objects; else the cheese
    goals = [Goal(obj or "cheese", "goal", f"the rewarded object ({obj or 'cheese'}; reaching "
                  "it ends the episode)", ("goal",), rewarded=True)]
    if options.get("distractor"):
        goals.append(Goal(options["distractor"], "distractor",
                          f"the unrewarded distractor object ({options['distractor']})",
                          ("distractor",)))
    goals.append(Goal("corner", "corner", "the maze's top-right cell"))
    return tuple(goals)


_MAZE_TARGETS = {"goal": ("goal_x", "goal_y"), "distractor": ("distractor_x", "distractor_y"),
                 "corner": ("corner_x", "corner_y")}


def _progress(free: np.ndarray, ax: np.ndarray, ay: np.ndarray, nx: np.ndarray, ny: np.ndarray,
              targets: list[tuple[Cell, ...]]) -> np.ndarray:
    """Optimal actions, bool (T, 15): those whose next cell (``nx``, ``ny``: (T, 15)) is one
    step closer, by the shortest path through the walkable cells ``free``, to the nearest of
    step t's ``targets[t]``; every action where none makes progress (at a target, no target,
    or cut off from it)."""
    h, w = free.shape
    raw = free.tobytes()
    optimal = np.ones(nx.shape, bool)
    for cells in set(targets):
        walkable = [(x, y) for x, y in cells if 0 <= x < w and 0 <= y < h and free[y, x]]
        if not walkable:
            continue  # absent (-1) or not walkable: no prediction
        dist = np.min([np.where(d < 0, np.iinfo(np.int32).max, d)
                       for d in (bfs(raw, h, w, x, y) for x, y in walkable)], axis=0)
        sel = np.array([t == cells for t in targets])
        opt = dist[ny[sel], nx[sel]] < dist[ay[sel], ax[sel]][:, None]
        opt[~opt.any(1)] = True
        optimal[sel] = opt
    return optimal


def _cell_targets(cols: dict, target: str | Cell, roles: dict) -> list[tuple[Cell, ...]]:
    """Per step, the target cells of a fixed cell or of a role's label columns (``roles``:
    role -> (x key, y key))."""
    if isinstance(target, tuple):
        return [(target,)] * len(cols["agent_cell_x"])
    xs, ys = (np.asarray(cols[k], int) for k in roles[target])
    return [((int(x), int(y)),) for x, y in zip(xs, ys)]


def _maze_predict(free: np.ndarray, cols: dict, target: str | Cell):
    """Optimal actions: those whose next cell is one step closer to the target by BFS; all
    actions at the target or where it is absent or unreachable."""
    h, w = free.shape
    ax, ay = (np.asarray(cols[k], int) for k in ("agent_cell_x", "agent_cell_y"))
    nx, ny = ax[:, None] + MAZE_DX, ay[:, None] + MAZE_DY
    inside = (nx >= 0) & (nx < w) & (ny >= 0) & (ny < h)
    moves = inside & free[np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)]
    nx, ny = np.where(moves, nx, ax[:, None]), np.where(moves, ny, ay[:, None])
    targets = _cell_targets(cols, target, _MAZE_TARGETS)
    reached = np.array([(x, y) == t[0] for x, y, t in zip(ax, ay, targets)], bool)
    return _progress(free, ax, ay, nx, ny, targets), reached


def _maze_size(spec: EnvSpec) -> tuple[int, int]:
    n = spec.resolved_options().get("maze_size") or WORLD_DIM.get(spec.distribution_mode, 25)
    return n, n


register_goals(GoalGame(
    "maze", _maze_goals,
    keys=("agent_cell_x", "agent_cell_y", "goal_x", "goal_y", "corner_x", "corner_y",
          "distractor_x", "distractor_y"),
    layout=lambda state: np.ascontiguousarray(state.grid != WALL),
    predict=_maze_predict, size=_maze_size,
    cells=lambda free: [(int(x), int(y)) for y, x in zip(*np.nonzero(free))]))


# -- coinrun --------------------------------------------------------------------------------
def _coinrun_predict(half: tuple[float, float], cols: dict, target: str | Cell):
    """Optimal actions: those pushing towards the target's x (all actions once the agent
    overlaps it horizontally); the end is reached in the last column before the end wall."""
    rx, ry = half
    ax, ay = np.asarray(cols["agent_x"], float), np.asarray(cols["agent_y"], float)
    if target == "end":
        reached = ax >= np.asarray(cols["end_wall_x"]) - 1  # as rollout's reached_end
        dx, near = np.ones_like(ax), reached
    else:
        if isinstance(target, tuple):
            gx, gy = np.full_like(ax, target[0]), np.full_like(ay, target[1])
        else:
            gx, gy = (np.asarray(cols[k], float) for k in ("goal_x", "goal_y"))
        dx, dy = gx + 0.5 - ax, gy + 0.5 - ay
        near = (np.abs(dx) < rx + 0.5) | (gx < 0)  # overlapping in x, or no coin: no prediction
        reached = near & (np.abs(dy) < ry + 0.5) & (gx >= 0)
    optimal = ACTION_DX[None, :] == np.sign(dx)[:, None]
    optimal[near] = True
    return optimal, reached


register_goals(GoalGame(
    "coinrun",
    lambda options: (Goal("coin", "goal", "the coin (rewarded; touching it ends the episode)",
                          ("goal",), rewarded=True),
                     Goal("end", "end", "the end of the level (last column before the end "
                                        "wall)")),
    keys=("agent_x", "agent_y", "goal_x", "goal_y", "end_wall_x"),
    layout=lambda state: (float(state.player["rx"]), float(state.player["ry"])),
    predict=_coinrun_predict, size=lambda spec: (64, 64)))


# -- keys and chests ------------------------------------------------------------------------------
_KC_SLOTS = {kind: tuple(f"{kind}{i}_{a}" for i in range(MAX_OBJECTS) for a in "xy")
             for kind in ("key", "chest")}


def _kc_objects(cols: dict, kind: str) -> list[tuple[Cell, ...]]:
    """Per step, the cells of the keys still lying / the chests not yet opened."""
    xy = np.stack([np.asarray(cols[k], int) for k in _KC_SLOTS[kind]], 1)
    return [tuple((int(x), int(y)) for x, y in row.reshape(-1, 2) if x >= 0) for row in xy]


def _kc_predict(free: np.ndarray, cols: dict, target: str | Cell):
    """Optimal actions: those whose next cell (the engine's moves: horizontal first, else
    vertical) is one step closer to the nearest key (``keys``) or unopened chest (``chests``),
    or to a cell; reached: a key picked up, a chest touched (opened or not), the cell stood on."""
    ax, ay = (np.asarray(cols[k], int) for k in ("agent_cell_x", "agent_cell_y"))
    T = len(ax)
    nxt = move_agents(np.broadcast_to(~free, (T * N_ACTIONS, *free.shape)),
                      np.repeat(np.stack([ax, ay], 1), N_ACTIONS, 0),
                      np.tile(_IDS, T)).reshape(T, N_ACTIONS, 2)
    if isinstance(target, tuple):
        targets = [(target,)] * T
        reached = (ax == target[0]) & (ay == target[1])
    elif target == "keys":
        targets = _kc_objects(cols, "key")
        reached = np.diff(np.asarray(cols["keys_collected"]), prepend=0) > 0
    else:
        targets = _kc_objects(cols, "chest")
        reached = np.array([(x, y) in t for x, y, t in zip(ax, ay, targets)], bool) | (
            np.diff(np.asarray(cols["chests_opened"]), prepend=0) > 0)
    return _progress(free, ax, ay, nxt[..., 0], nxt[..., 1], targets), reached


register_goals(GoalGame(
    KC_GAME,
    lambda options: (Goal("keys", "keys", "the nearest key still lying in the level (any key; "
                                          "after a pick-up, the next nearest)"),
                     Goal("chests", "chests", "the nearest unopened chest (opening one with a "
                                              "key pays 1; after that, the next nearest)")),
    keys=("agent_cell_x", "agent_cell_y", "keys_collected", "chests_opened",
          *_KC_SLOTS["key"], *_KC_SLOTS["chest"]),
    layout=lambda state: np.ascontiguousarray(~state.grid),
    predict=_kc_predict, size=lambda spec: (rules(spec.resolved_options(),
                                                  spec.distribution_mode).world,) * 2,
    renewing=True))
