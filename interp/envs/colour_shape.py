"""Colour-versus-shape mazes: Maze II of Langosco et al. and Ramanauskas & Simsek (2023).

The stock maze game with our own sprites (see :mod:`interp.envs.assets`): the rewarded
object is drawn for the cheese tile (2: pays 10 and ends the episode), the optional
distractor for tile 54 (visible, walkable, pays nothing). Each new level is edited through
the state: with ``maze_size`` the level is replaced by a ``maze_size`` x ``maze_size``
maze that fills the whole world (and so the frame, as in Ramanauskas & Simsek's 5x5
mazes); the goal and the distractor go to random free cells other than the agent's start.
Edits are seeded from ``(seed, level_seed)``.

Options: ``goal`` / ``distractor`` ("<colour>-<shape>", distractor may be None),
``background`` ("textured" | "black"), ``maze_size`` (odd, 3..world size; None keeps the
stock maze), ``dead_ends`` (False opens a wall at every dead end, like their generator).

The variants declare their sprites (``Variant.assets``: :func:`asset_set`); make_env runs
them in a worker process (:mod:`interp.envs.remote`): procgen loads sprites once per process.
"""

from __future__ import annotations

import numpy as np

from interp.envs.assets import (
    COLOURS,
    SECOND_TILE,
    SHAPES,
    AssetSet,
    parse_object,
)
from interp.envs.base import EditError, EnvConfigError, Measure, Outcomes
from interp.envs.geometry import cell_labels, find_tiles
from interp.envs.maze import CHEESE as GOAL
from interp.envs.maze import WORLD_DIM, generate_maze
from interp.envs.state import SPACE, GameState

DISTRACTOR = SECOND_TILE

# Label codes of object identities (-1: no distractor).
COLOUR_CODES = {name: i for i, name in enumerate(COLOURS)}  # black 0 ... yellow 7
SHAPE_CODES = {name: i for i, name in enumerate(SHAPES)}    # gem 0, line 1

DEFAULTS = dict(goal="yellow-line", distractor=None, background="textured", maze_size=None,
                dead_ends=True)


def asset_set(options: dict) -> AssetSet:
    """The sprites a colour-shape variant draws (``Variant.assets``)."""
    return AssetSet(options["goal"], options["distractor"], options["background"])


def check_options(options: dict, distribution_mode: str) -> None:
    """Raise :class:`EnvConfigError` naming the fix for any bad option (the objects and the
    background are checked by :class:`~interp.envs.assets.AssetSet`)."""
    asset_set(options)
    if options["goal"] == options["distractor"]:
        raise EnvConfigError(f"goal and distractor are both {options['goal']!r}: pick a "
                             "distractor that differs in colour or shape, or None")
    if options["background"] == "black":
        for key in ("goal", "distractor"):
            if options[key] and options[key].startswith("black-"):
                raise EnvConfigError(f"{key}={options[key]!r} is invisible on the black "
                                     "background: use background='textured' or another colour")
    if distribution_mode not in WORLD_DIM:
        raise EnvConfigError(f"maze has no distribution_mode {distribution_mode!r}; use one of "
                             f"{', '.join(WORLD_DIM)}")
    n, world = options["maze_size"], WORLD_DIM[distribution_mode]
    if n is not None and (not isinstance(n, int) or n % 2 == 0 or not 3 <= n <= world):
        raise EnvConfigError(f"maze_size={n!r}: use an odd int from 3 to {world} "
                             f"({distribution_mode} mode), or None for the stock maze sizes")
    if not isinstance(options["dead_ends"], bool):
        raise EnvConfigError(f"dead_ends={options['dead_ends']!r}: use True or False")
    if n is None and not options["dead_ends"]:
        raise EnvConfigError("dead_ends=False needs a maze_size (the stock maze is kept as "
                             "generated when maze_size is None)")


def edit(state: GameState, rng: np.random.Generator, options: dict) -> GameState:
    """Resize the maze (if asked), then place the goal and the distractor at free cells."""
    state = state.copy()
    n = options["maze_size"]
    if n is not None:
        state.grid = generate_maze(n, rng, options["dead_ends"])
        state["main_width"] = state["main_height"] = n
        state.fields["grid_size"] = n * n
        state["maze_dim"] = state["world_dim"] = n
        player = np.flatnonzero(state.entities["type"] == 0)[0]
        state.entities["x"][player] = state.entities["y"][player] = 0.5
    grid = state.grid
    grid[grid == GOAL] = SPACE
    agent = (int(state.player["y"]), int(state.player["x"]))
    free = [tuple(c) for c in np.argwhere(grid == SPACE) if tuple(c) != agent]
    objects = [GOAL] + ([DISTRACTOR] if options["distractor"] else [])
    if len(free) < len(objects):
        raise EditError(f"maze has {len(free)} free cells besides the agent's, needs "
                        f"{len(objects)}: use a larger maze_size")
    for tile, k in zip(objects, rng.choice(len(free), size=len(objects), replace=False)):
        grid[free[k]] = tile
    return state


def labels(state: GameState, options: dict) -> dict:
    """Distractor cell and the goal / distractor identity codes (-1: no distractor)."""
    cells = find_tiles(state, (DISTRACTOR,))
    out = cell_labels("distractor", cells[0] if cells else None)
    for key in ("goal", "distractor"):
        colour, shape = parse_object(options[key]) if options[key] else (None, None)
        out[f"{key}_colour"] = COLOUR_CODES.get(colour, -1)
        out[f"{key}_shape"] = SHAPE_CODES.get(shape, -1)
    return out


def on_distractor(labels: dict) -> np.ndarray:
    """The agent stands in the distractor's cell."""
    return (labels["distractor_present"] > 0) & (
        labels["agent_cell_x"] == labels["distractor_x"]) & (
        labels["agent_cell_y"] == labels["distractor_y"])


OBJECTS = Outcomes(  # with a distractor: which object does the agent reach first?
    "objects", trace_keys=("agent_cell_x", "agent_cell_y", "distractor_x", "distractor_y"),
    flags=(("distractor", on_distractor),),
    measures=(Measure("goal_first", "goal reached first"),
              Measure("distractor_first", "distractor reached first"),
              Measure("neither", "neither object reached"),
              Measure("steps_to_object", "steps to the first object reached", "mean", "steps"),
              Measure("preference", "preference: goal first / (goal first + distractor first)")),
    effects=(Measure("goal_first", "goal first"),
             Measure("distractor_first", "distractor first (object first)")),
    when=lambda options: bool(options.get("distractor")))
