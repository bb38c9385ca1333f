"""Maze edits of Langosco et al. (2022), Maze I: cheese in the top-right corner, or at a random
free cell of an N x N square at the maze's top-right corner (their Fig. 4 "region size")."""

from __future__ import annotations

import numpy as np

from interp.envs.core import EditError, EnvConfigError
from interp.envs.state import SPACE, GameState

CHEESE = 2
WALL = 51
WORLD_DIM = {"easy": 15, "hard": 25, "memory": 31}


def maze_bounds(state: GameState) -> tuple[int, int]:
    """(margin, maze_dim): maze cells have x, y in [margin, margin + maze_dim)."""
    return (state["world_dim"] - state["maze_dim"]) // 2, state["maze_dim"]


def corner_cell(state: GameState) -> tuple[int, int]:
    """The maze's top-right cell (always free in a Kruskal maze)."""
    margin, dim = maze_bounds(state)
    return margin + dim - 1, margin + dim - 1


def region_cells(state: GameState, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of the free cells of the size x size square at the top-right corner (clipped to
    the maze), excluding the agent's cell."""
    margin, dim = maze_bounds(state)
    lo = margin + dim - min(size, dim)
    free = np.zeros_like(state.grid, dtype=bool)
    free[lo:margin + dim, lo:margin + dim] = np.isin(
        state.grid[lo:margin + dim, lo:margin + dim], (SPACE, CHEESE))
    p = state.player
    free[int(p["y"]), int(p["x"])] = False
    ys, xs = np.nonzero(free)
    return xs, ys


def cheese_in_region(state: GameState, rng: np.random.Generator, options: dict) -> GameState:
    """Move the cheese to a uniformly random free cell of the top-right region_size square."""
    xs, ys = region_cells(state, options["region_size"])
    if xs.size == 0:
        raise EditError(f"maze level {state['current_level_seed']}: no free cell in the top-right "
                        f"{options['region_size']}x{options['region_size']} region; use a larger "
                        "region_size")
    state.grid[state.grid == CHEESE] = SPACE
    k = rng.integers(xs.size)
    state.grid[ys[k], xs[k]] = CHEESE
    return state


def cheese_top_right(state: GameState, rng: np.random.Generator, options: dict) -> GameState:
    """Move the cheese to the maze's top-right corner cell (Maze I training distribution)."""
    return cheese_in_region(state, rng, {"region_size": 1})


def region_labels(state: GameState, options: dict) -> dict:
    """``cheese_in_top_right`` for the top-right ``region_size`` square (``Variant.labels``)."""
    margin, dim = maze_bounds(state)
    lo = margin + dim - min(options["region_size"], dim)
    ys, xs = np.nonzero(state.grid == CHEESE)
    in_region = ys.size > 0 and lo <= xs[0] < margin + dim and lo <= ys[0] < margin + dim
    return {"cheese_in_top_right": int(in_region)}


def check_region(options: dict, distribution_mode: str) -> None:
    """``region_size`` must be an int between 1 and the world size of the mode."""
    n, top = options["region_size"], WORLD_DIM.get(distribution_mode, 25)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= top:
        raise EnvConfigError(f"region_size must be an integer in 1..{top} for {distribution_mode} "
                             f"mazes (largest maze {top}x{top}); got {n!r}")
