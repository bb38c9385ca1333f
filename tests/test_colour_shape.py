"""Colour-vs-shape mazes: sprites, asset trees, level edits, rewards, rendering, labels."""

from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from interp.envs import EnvConfigError, EnvSpec, VecEnv, make_env
from interp.envs.assets import (
    COLOURS,
    GOAL_SPRITE,
    SHAPES,
    AssetSet,
    asset_root,
    missing_files,
    sprite,
)
from interp.envs.colour_shape import DISTRACTOR, GOAL, edit
from interp.envs.geometry import to_pixels
from interp.envs.maze import WALL, generate_maze
from interp.envs.state import SPACE

MOVES = {(1, 0): 7, (-1, 0): 1, (0, 1): 5, (0, -1): 3}  # (dx, dy) -> action
NOOP = 4


def bfs_path(grid, start, goal, avoid=()):
    """Cells (x, y) from start to goal through non-wall cells, or None; goal=None: the set of
    reachable cells."""
    h, w = grid.shape
    prev, queue = {start: None}, deque([start])
    while queue:
        c = queue.popleft()
        if c == goal:
            path = []
            while c is not None:
                path.append(c)
                c = prev[c]
            return path[::-1]
        for dx, dy in MOVES:
            n = (c[0] + dx, c[1] + dy)
            if (0 <= n[0] < w and 0 <= n[1] < h and grid[n[1], n[0]] != WALL
                    and n not in prev and n not in avoid):
                prev[n] = c
                queue.append(n)
    return set(prev) if goal is None else None


def cell(state, tile):
    (y, x), = np.argwhere(state.grid == tile)
    return int(x), int(y)


def agent_cell(state):
    return int(state.player["x"]), int(state.player["y"])


# -- sprites and asset trees ------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("colour", COLOURS)
def test_sprite_is_one_pure_colour_on_transparent(colour, shape):
    px = np.asarray(sprite(f"{colour}-{shape}"))
    opaque = px[..., 3] == 255
    assert 0.1 < opaque.mean() < 0.6
    assert (px[opaque][:, :3] == COLOURS[colour]).all()
    assert px[0, 0, 3] == 0 and px[-1, 0, 3] == 0  # transparent background


@pytest.mark.parametrize("name", ["pink-gem", "red-circle", "red", ""])
def test_unknown_object_names_the_choices(name):
    with pytest.raises(ValueError, match="colour in black, blue.*shape in gem, line"):
        sprite(name)


def test_asset_tree_is_complete_and_replaces_sprites(tmp_path):
    assets = AssetSet("red-line", "yellow-gem", "black")
    root = asset_root(assets, root=tmp_path)
    assert root.endswith("/") and Path(root).name == assets.digest()
    assert missing_files(root) == []
    goal = np.asarray(Image.open(Path(root) / GOAL_SPRITE))
    assert (goal == np.asarray(sprite("red-line"))).all()
    bg = np.asarray(Image.open(Path(root) / "topdown_backgrounds/backgrounddetailed1.png"))
    assert bg.max() == 0
    assert asset_root(assets, root=tmp_path) == root  # cached
    assert AssetSet("red-line").digest() != AssetSet("red-line", background="black").digest()


# -- options ----------------------------------------------------------------------------
@pytest.mark.parametrize("options, mode, fix", [
    ({"goal": "pink-gem"}, "easy", "colour in black"),
    ({"distractor": "red-square"}, "easy", "or None for no distractor"),
    ({"goal": "red-gem", "distractor": "red-gem"}, "easy", "differs in colour or shape"),
    ({"background": "grey"}, "easy", "textured, black"),
    ({"goal": "black-line", "background": "black"}, "easy", "invisible"),
    ({"maze_size": 4}, "easy", "odd int from 3 to 15"),
    ({"maze_size": 17}, "easy", "odd int from 3 to 15"),
    ({"maze_size": 5}, "extreme", "easy, hard, memory"),
])
def test_bad_options_name_the_fix(options, mode, fix):
    with pytest.raises(EnvConfigError, match=fix):
        EnvSpec("colour-shape", distribution_mode=mode, options=options)


def test_dead_ends_false_needs_a_maze_size():
    with pytest.raises(EnvConfigError, match="needs a maze_size"):
        EnvSpec("maze-yellow-line", options={"dead_ends": False})


# -- level edits (in-process with stock sprites: the logic does not depend on them) ------
@pytest.mark.parametrize("n", [3, 5, 9, 15])
@pytest.mark.parametrize("dead_ends", [True, False])
def test_generated_mazes_are_connected(n, dead_ends):
    for seed in range(10):
        grid = generate_maze(n, np.random.default_rng(seed), dead_ends)
        free = {(int(x), int(y)) for y, x in np.argwhere(grid == SPACE)}
        assert bfs_path(grid, (0, 0), None) == free  # all reachable from the agent's start
        if not dead_ends:
            ends = [c for c in free if sum((c[0] + dx, c[1] + dy) in free for dx, dy in MOVES) < 2]
            assert ends == []


@pytest.fixture(scope="module")
def stock_sprite_env():
    """colour-shape logic in this process, drawn with stock sprites (cheese, explosion)."""
    spec = EnvSpec("colour-shape", options={"distractor": "red-gem", "maze_size": 7})
    with VecEnv(spec, num=8, seed=3) as env:
        yield env


def test_maze_size_honoured_and_objects_reachable(stock_sprite_env):
    env = stock_sprite_env
    for i in range(env.num):
        s = env.get_state(i)
        assert s.grid.shape == (7, 7) and s["maze_dim"] == s["world_dim"] == 7
        start, goal, distractor = agent_cell(s), cell(s, GOAL), cell(s, DISTRACTOR)
        assert start == (0, 0) and len({start, goal, distractor}) == 3
        assert bfs_path(s.grid, start, goal) and bfs_path(s.grid, start, distractor)


def test_edit_is_deterministic_per_seed_and_level(stock_sprite_env):
    env = stock_sprite_env
    raw = VecEnv(EnvSpec("maze"), num=1, seed=0)
    state = raw.get_state(0)
    raw.close()
    opts = env.options
    a, b = (edit(state, np.random.default_rng([3, 7]), opts).grid for _ in range(2))
    c = edit(state, np.random.default_rng([4, 7]), opts).grid
    assert (a == b).all() and not (a == c).all()


def test_goal_pays_10_and_ends_episode_distractor_pays_nothing(stock_sprite_env):
    env = stock_sprite_env
    for i in range(env.num):  # an env whose distractor is reachable without crossing the goal
        s = env.get_state(i)
        to_distractor = bfs_path(s.grid, agent_cell(s), cell(s, DISTRACTOR), avoid={cell(s, GOAL)})
        if to_distractor:
            break
    to_goal = bfs_path(s.grid, to_distractor[-1], cell(s, GOAL))
    seed = s["current_level_seed"]
    path = to_distractor + to_goal[1:]
    for k, (a, b) in enumerate(zip(path, path[1:])):
        actions = np.full(env.num, NOOP)
        actions[i] = MOVES[(b[0] - a[0], b[1] - a[1])]
        env.act(actions)
        reward, _, first = env.observe()
        if k < len(path) - 2:
            assert reward[i] == 0 and not first[i]
            assert agent_cell(env.get_state(i)) == b
            if b == to_distractor[-1]:
                assert env.get_state(i).grid[b[1], b[0]] == DISTRACTOR  # standing on it
    assert reward[i] == 10 and first[i]
    assert env.get_state(i)["current_level_seed"] != seed
    assert env.get_state(i).grid.shape == (7, 7)  # the new level is edited too


# -- the real thing: our sprites, in a worker process -----------------------------------
@pytest.fixture(scope="module")
def remote_env():
    with make_env("colour-shape", num=6, seed=11, options={"distractor": "red-gem"}) as env:
        yield env


def test_frames_show_our_sprites_at_the_object_cells(remote_env):
    _, obs, _ = remote_env.observe()
    labels = remote_env.labels()
    for i in range(remote_env.num):
        s = remote_env.get_state(i)
        for key, rgb in (("goal", COLOURS["yellow"]), ("distractor", COLOURS["red"])):
            px, py = to_pixels(s, labels[f"{key}_x"][i] + 0.5, labels[f"{key}_y"][i] + 0.5)
            window = obs[i, int(py) - 2:int(py) + 3, int(px) - 2:int(px) + 3]
            assert (window == rgb).all(axis=-1).sum() >= 3, (i, key)


def test_labels_of_objects(remote_env):
    labels = remote_env.labels()
    assert (labels["goal_colour"] == 7).all() and (labels["goal_shape"] == 1).all()
    assert (labels["distractor_colour"] == 5).all() and (labels["distractor_shape"] == 0).all()
    assert (labels["distractor_present"] == 1).all() and (labels["goal_present"] == 1).all()
    for i in range(remote_env.num):
        s = remote_env.get_state(i)
        assert (labels["goal_x"][i], labels["goal_y"][i]) == cell(s, GOAL)
        assert (labels["distractor_x"][i], labels["distractor_y"][i]) == cell(s, DISTRACTOR)


def test_same_seed_same_levels():
    actions = np.random.default_rng(0).integers(0, 15, size=(20, 4))
    opts = {"distractor": "red-gem"}
    with make_env("colour-shape", num=4, seed=11, options=opts) as a, \
            make_env("colour-shape", num=4, seed=11, options=opts) as b:
        assert a.get_all_states() == b.get_all_states()
        for act in actions:
            a.act(act)
            b.act(act)
            for x, y in zip(a.observe(), b.observe()):
                assert (x == y).all()
