"""Ground-truth labels of a game state: agent, goal, distractor and game-specific facts.

:func:`state_labels` returns the same keys for every state of a game (so arrays stack);
``LABEL_DOCS`` documents each key (unit and meaning). A variant can fill some keys itself
(e.g. its distractor object) through ``Variant.labels(state, options) -> dict``, using the
helpers of :mod:`interp.envs.geometry` (``find_tiles``, ``find_entities``, ``cell_labels``).

Cells are integer (x, y) tile coordinates with y = 0 the bottom row; world units are tiles.
Pixel positions are in the agent's 64x64 frame, (0, 0) top-left; NaN when the object is absent.
"""

from __future__ import annotations

import numpy as np

from interp.envs import keys_chests
from interp.envs.coinrun import COIN, WALL_MID, WALL_TOP
from interp.envs.geometry import FRAME, bfs, cell_labels, find_entities, find_tiles, to_pixels
from interp.envs.keys_chests import GAME, MAX_OBJECTS
from interp.envs.maze import CHEESE, WALL, corner_cell
from interp.envs.state import GameState

LABEL_DOCS: dict[str, str] = {
    "level_seed": "level seed of the current episode",
    "step": "steps since the episode started (engine cur_time)",
    "agent_x": "agent centre x, world units (tiles)",
    "agent_y": "agent centre y, world units (tiles; up is +)",
    "agent_vx": "agent x velocity, world units per step",
    "agent_vy": "agent y velocity, world units per step",
    "agent_px": "agent centre x in the 64x64 frame, pixels from the left",
    "agent_py": "agent centre y in the 64x64 frame, pixels from the top",
    "goal_x": "goal cell x (coin / cheese tile, heist gem, keys-chests: the nearest chest); "
              "-1 if absent",
    "goal_y": "goal cell y; -1 if absent",
    "goal_present": "1 if the level has a goal (for coinrun-invisible-coin: the invisible coin)",
    "goal_visible": "1 if the goal is drawn and its centre is inside the 64x64 frame",
    "goal_px": "goal centre x in the 64x64 frame, pixels; NaN if absent",
    "goal_py": "goal centre y in the 64x64 frame, pixels; NaN if absent",
    "goal_dx": "goal centre x minus agent x, world units; NaN if absent",
    "goal_dy": "goal centre y minus agent y, world units; NaN if absent",
    "agent_on_goal": "1 if the agent's box overlaps the goal cell in this state",
    "goal_touched": "1 if agent_on_goal held in any labelled state of this episode so far "
                    "(exact when labels are taken every step, as the recorder does)",
    "distractor_x": "distractor object cell x (variants with one; keys-chests: the nearest "
                    "key); -1 if none",
    "distractor_y": "distractor object cell y; -1 if none",
    "distractor_present": "1 if the level has a distractor object",
    # coinrun
    "end_wall_x": "coinrun: x of the first column of the end wall (solid or permeable)",
    "end_wall_visible": "coinrun: 1 if the end wall's left edge is inside the 64x64 frame",
    "progress": "coinrun: agent_x / end_wall_x (0 at the start, ~1 at the end wall)",
    # maze
    "agent_cell_x": "maze, keys-chests: agent cell x",
    "agent_cell_y": "maze, keys-chests: agent cell y",
    "corner_x": "maze: top-right cell x of the maze",
    "corner_y": "maze: top-right cell y of the maze",
    "cheese_in_top_right": "maze: 1 if the cheese is in the top-right region_size square "
                           "(region_size from the variant options, 1 if it has none)",
    "dist_to_cheese": "maze: shortest path length agent -> cheese, in cells; -1 if no cheese",
    "dist_to_corner": "maze: shortest path length agent -> top-right corner, in cells",
    "goal_colour": "maze: goal colour code (colour_shape.COLOUR_CODES); -1 for the stock cheese",
    "goal_shape": "maze: goal shape code (colour_shape.SHAPE_CODES: gem 0, line 1); -1 for cheese",
    "distractor_colour": "maze: distractor colour code; -1 if the variant has none",
    "distractor_shape": "maze: distractor shape code; -1 if the variant has none",
    # heist
    "keys_held": "heist, keys-chests: number of keys the agent holds (its inventory)",
    "keys_left": "heist, keys-chests: keys still lying in the level",
    "doors_left": "heist: locked doors still in the level",
    # keys-chests (nearest: by maze path length, 4-connected; ties go to the key, then to the
    # object placed first)
    "chests_left": "keys-chests: chests not yet opened",
    "keys_collected": "keys-chests: keys picked up this episode",
    "chests_opened": "keys-chests: chests opened this episode (= reward so far)",
    "num_keys": "keys-chests: keys the level started with",
    "num_chests": "keys-chests: chests the level started with",
    "nearest_object": "keys-chests: type of the nearest object by path length: 0 none, 1 key, "
                      "2 chest (a tie goes to the key)",
    "dist_to_nearest_key": "keys-chests: path length to the nearest key, cells; -1 if none",
    "dist_to_nearest_chest": "keys-chests: path length to the nearest chest, cells; -1 if none",
    **{f"{kind}{i}_{axis}": f"keys-chests: cell {axis} of {kind} {i} (the level's {kind}s in the "
       f"order placed, from 0); -1 once {'collected' if kind == 'key' else 'opened'} or if "
       "the level has fewer"
       for kind in ("key", "chest") for i in range(MAX_OBJECTS) for axis in "xy"},
}

GAME_KEYS: dict[str, tuple[str, ...]] = {
    "coinrun": ("end_wall_x", "end_wall_visible", "progress"),
    "maze": ("agent_cell_x", "agent_cell_y", "corner_x", "corner_y", "cheese_in_top_right",
             "dist_to_cheese", "dist_to_corner", "goal_colour", "goal_shape", "distractor_colour",
             "distractor_shape"),
    "heist": ("keys_held", "keys_left", "doors_left"),
    GAME: ("agent_cell_x", "agent_cell_y", "keys_held", "keys_left", "chests_left",
           "keys_collected", "chests_opened", "num_keys", "num_chests", "nearest_object",
           "dist_to_nearest_key", "dist_to_nearest_chest",
           *(f"{kind}{i}_{axis}" for kind in ("key", "chest") for i in range(MAX_OBJECTS)
             for axis in "xy")),
}
COMMON_KEYS = tuple(k for k in LABEL_DOCS if not any(k in v for v in GAME_KEYS.values()))

GOAL_TILE = {"coinrun": COIN, "maze": CHEESE}
HEIST_DOOR, HEIST_KEY, HEIST_GEM = 1, 2, 9


def label_keys(game: str) -> tuple[str, ...]:
    """The fixed label keys of a game."""
    return COMMON_KEYS + GAME_KEYS.get(game, ())


# -- labels ---------------------------------------------------------------------------------
def state_labels(state: GameState, variant, options: dict) -> dict:
    """All labels of one state (``variant``: the env's :class:`~interp.envs.base.Variant`)."""
    game = state.game
    out = keys_chests.state_labels(state) if game == GAME else _stock(state)
    if variant is not None and variant.labels is not None:
        extra = variant.labels(state, options)
        unknown = set(extra) - set(out)
        if unknown:
            raise KeyError(f"variant {variant.name} labels {sorted(unknown)} are not label keys "
                           f"of {game}; use the fixed keys in LABEL_DOCS")
        out.update(extra)
    goal_geometry(state, out)
    return {k: out[k] for k in label_keys(game)}


def stacked_labels(env, rows: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """The rows (default: all) and their labels, one array per key, of an engine's envs
    (``env.get_state``, ``env.variant``, ``env.options``), except ``goal_touched``, which the
    engine tracks across steps (:func:`~interp.envs.base.track_goal_touched`)."""
    rows = np.arange(env.num) if rows is None else np.asarray(rows, int)
    if rows.size == 0:
        raise ValueError("labels() needs at least one env row")
    labs = [state_labels(env.get_state(i), env.variant, env.options) for i in rows]
    return rows, {k: np.asarray([r[k] for r in labs]) for k in labs[0]}


def _stock(state: GameState) -> dict:
    """The labels the stock engine's state gives, before a variant's and the goal geometry."""
    game = state.game
    p = state.player
    apx, apy = to_pixels(state, p["x"], p["y"])
    out = {"level_seed": state["current_level_seed"], "step": state["cur_time"],
           "agent_x": float(p["x"]), "agent_y": float(p["y"]),
           "agent_vx": float(p["vx"]), "agent_vy": float(p["vy"]),
           "agent_px": apx, "agent_py": apy, "goal_touched": 0,
           **cell_labels("distractor", None)}
    if game == "heist":
        gems = find_entities(state, (HEIST_GEM,))
        goal = (int(gems[0]["x"]), int(gems[0]["y"])) if len(gems) else None
    else:
        cells = find_tiles(state, (GOAL_TILE.get(game, -999),))
        goal = cells[0] if cells else None
    out.update(cell_labels("goal", goal))
    out["goal_visible"] = 1  # drawn unless a variant says otherwise
    if game == "coinrun":
        out.update(_coinrun(state))
    elif game == "maze":
        out.update(_maze(state))
    elif game == "heist":
        out.update(_heist(state))
    return out


def goal_geometry(state: GameState, out: dict) -> None:
    """Goal pixel position, offset from the agent, on-screen flag and agent overlap."""
    if not out["goal_present"]:
        out.update(goal_px=np.nan, goal_py=np.nan, goal_dx=np.nan, goal_dy=np.nan,
                   goal_visible=0, agent_on_goal=0)
        return
    gx, gy = out["goal_x"] + 0.5, out["goal_y"] + 0.5
    px, py = to_pixels(state, gx, gy)
    p = state.player
    on_screen = 0 <= px < FRAME and 0 <= py < FRAME
    overlap = abs(p["x"] - gx) < p["rx"] + 0.5 and abs(p["y"] - gy) < p["ry"] + 0.5
    out.update(goal_px=px, goal_py=py, goal_dx=gx - float(p["x"]), goal_dy=gy - float(p["y"]),
               goal_visible=int(out["goal_visible"] and on_screen), agent_on_goal=int(overlap))


def _coinrun(state: GameState) -> dict:
    inner = np.abs(state.grid[1:-1])
    wall = ((inner == WALL_MID) | (inner == WALL_TOP)).all(axis=0)
    open_cols = np.flatnonzero(~wall)
    end_x = int(open_cols[-1]) + 1 if open_cols.size else 0
    px, _ = to_pixels(state, end_x, 0)
    return {"end_wall_x": end_x, "end_wall_visible": int(0 <= px < FRAME),
            "progress": float(state.player["x"]) / max(end_x, 1)}


def _maze(state: GameState) -> dict:
    """Maze labels; ``cheese_in_top_right`` is for the corner cell (variants with a
    ``region_size`` fill it themselves, see :func:`interp.envs.maze.region_labels`)."""
    p = state.player
    ax, ay = int(p["x"]), int(p["y"])
    cx, cy = corner_cell(state)
    free = np.ascontiguousarray(state.grid != WALL)
    cheese = find_tiles(state, (GOAL_TILE["maze"],))
    return {"agent_cell_x": ax, "agent_cell_y": ay, "corner_x": cx, "corner_y": cy,
            "cheese_in_top_right": int(bool(cheese) and cheese[0] == (cx, cy)),
            "dist_to_cheese": int(bfs(free.tobytes(), *free.shape, *cheese[0])[ay, ax])
                              if cheese else -1,
            "dist_to_corner": int(bfs(free.tobytes(), *free.shape, cx, cy)[ay, ax]),
            "goal_colour": -1, "goal_shape": -1,
            "distractor_colour": -1, "distractor_shape": -1}


def _heist(state: GameState) -> dict:
    return {"keys_held": int(sum(state["has_keys"])),
            "keys_left": len(find_entities(state, (HEIST_KEY,))),
            "doors_left": len(find_entities(state, (HEIST_DOOR,)))}
