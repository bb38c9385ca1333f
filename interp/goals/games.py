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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from interp.envs import EnvSpec, GameState, get_variant
from interp.envs.labels import _bfs
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


def _maze_predict(free: np.ndarray, cols: dict, target: str | Cell):
    """Optimal actions: those whose next cell is one step closer to the target by BFS; all
    actions at the target or where it is absent or unreachable."""
    h, w = free.shape
    ax, ay = (np.asarray(cols[k], int) for k in ("agent_cell_x", "agent_cell_y"))
    if isinstance(target, tuple):
        tx, ty = np.full_like(ax, target[0]), np.full_like(ay, target[1])
    else:
        tx, ty = (np.asarray(cols[k], int) for k in _MAZE_TARGETS[target])
    nx, ny = ax[:, None] + MAZE_DX, ay[:, None] + MAZE_DY
    inside = (nx >= 0) & (nx < w) & (ny >= 0) & (ny < h)
    moves = inside & free[np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)]
    nx, ny = np.where(moves, nx, ax[:, None]), np.where(moves, ny, ay[:, None])
    optimal = np.ones((len(ax), N_ACTIONS), bool)
    for x, y in {(int(x), int(y)) for x, y in zip(tx, ty)}:
        if not (0 <= x < w and 0 <= y < h and free[y, x]):
            continue  # absent (-1) or not walkable: no prediction
        sel = (tx == x) & (ty == y)
        dist = _bfs(free.tobytes(), h, w, x, y)
        opt = dist[ny[sel], nx[sel]] < dist[ay[sel], ax[sel]][:, None]
        opt[~opt.any(1)] = True  # at the target, or cut off from it
        optimal[sel] = opt
    return optimal, (ax == tx) & (ay == ty)


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
