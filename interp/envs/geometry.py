"""Cells, pixels and path lengths of a game state: the helpers games and labels share.

Cells are integer (x, y) tile coordinates with y = 0 the bottom row; world units are tiles.
Pixel positions are in the agent's 64x64 frame, (0, 0) top-left.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import numpy as np

from interp.envs.state import GameState

FRAME = 64


def find_tiles(state: GameState, tiles) -> list[tuple[int, int]]:
    """(x, y) cells whose tile id is in ``tiles``, bottom row first."""
    grid = state.grid
    mask = grid == tiles[0] if len(tiles) == 1 else np.isin(grid, tiles)  # == is 10x faster
    ys, xs = np.nonzero(mask)
    return list(zip(xs.tolist(), ys.tolist()))


def find_entities(state: GameState, types) -> np.ndarray:
    """Entity records (``ENTITY_DTYPE``) whose type is in ``types``."""
    return state.entities[np.isin(state.entities["type"], types)]


def to_pixels(state: GameState, x: float, y: float, size: int = FRAME) -> tuple[float, float]:
    """World point -> (px, py) in this state's view rendered at size x size (64: the agent's)."""
    v = state["view_dim"]
    return ((x - state["center_x"] + v / 2) * size / v,
            (state["center_y"] + v / 2 - y) * size / v)


def cell_labels(prefix: str, cell: tuple[int, int] | None) -> dict:
    """``{prefix}_x``, ``{prefix}_y``, ``{prefix}_present`` for a cell (or None: -1, -1, 0)."""
    x, y = cell if cell is not None else (-1, -1)
    return {f"{prefix}_x": x, f"{prefix}_y": y, f"{prefix}_present": int(cell is not None)}


@lru_cache(maxsize=1024)
def bfs(free: bytes, h: int, w: int, x: int, y: int) -> np.ndarray:
    """Path lengths (4-connected, through free cells) from (x, y); -1 where unreachable.
    Cached: a maze's walls and targets stay fixed for a whole episode."""
    free = np.frombuffer(free, dtype=bool).reshape(h, w)
    dist = np.full((h, w), -1, dtype=np.int32)
    dist[y, x] = 0
    queue = deque([(x, y)])
    while queue:
        cx, cy = queue.popleft()
        for nx, ny in ((cx + 1, cy), (cx - 1, cy), (cx, cy + 1), (cx, cy - 1)):
            if 0 <= nx < w and 0 <= ny < h and free[ny, nx] and dist[ny, nx] < 0:
                dist[ny, nx] = dist[cy, cx] + 1
                queue.append((nx, ny))
    return dist
