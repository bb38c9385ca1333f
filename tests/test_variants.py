"""Variant semantics, checked with scripted agents moved through the state."""

import numpy as np
import pytest

from interp.envs import EditError, EnvConfigError, EnvSpec, make_env
from interp.envs.coinrun import COIN, coin_cell, random_coin
from interp.envs.geometry import bfs
from interp.envs.labels import state_labels
from interp.envs.maze import CHEESE, corner_cell
from interp.envs.state import SPACE

RIGHT, NOOP, UP = 7, 4, 5


def _place(env, i, x, y, grid_edit=None):
    """Move env i's agent to (x, y) at rest (optionally editing the grid too)."""
    s = env.get_state(i)
    k = np.flatnonzero(s.entities["type"] == 0)[0]
    s.entities["x"][k], s.entities["y"][k] = x, y
    s.entities["vx"][k] = s.entities["vy"][k] = 0
    if grid_edit:
        grid_edit(s.grid)
    env.set_state(i, s)


def _walk(env, action, steps):
    """Repeat an action until a reward or a new episode; return (reward, episode ended)."""
    for _ in range(steps):
        env.act(np.full(env.num, action))
        rew, _, first = env.observe()
        if rew[0] or first[0]:
            return float(rew[0]), bool(first[0])
    return 0.0, False


@pytest.mark.parametrize("mode", ["easy", "hard"])
def test_random_coin_pays_and_old_spot_does_not(mode):
    for seed in range(3):
        env = make_env("coinrun-random-coin", num=1, seed=seed, distribution_mode=mode)
        s = env.get_state(0)
        x, y = coin_cell(s)
        end = state_labels(s, env.variant, env.options)["end_wall_x"]
        assert x < end - 1 and s.grid[y - 1, x] == 16
        old_y = np.flatnonzero(s.grid[:, end - 1] == 16).max() + 1  # the stock coin's cell
        assert s.grid[old_y, end - 1] == SPACE
        _place(env, 0, end - 0.5, old_y + 0.58)
        assert _walk(env, NOOP, 10) == (0.0, False)  # the old coin spot is empty
        _place(env, 0, x + 0.5, y + 1.6)  # drop onto the coin (its neighbours may hold a saw)
        assert _walk(env, NOOP, 10) == (10.0, True)


def test_permeable_wall_lets_the_agent_through():
    xs = {}
    for variant in ("coinrun", "coinrun-permeable-wall"):
        env = make_env(variant, num=1, seed=0)
        s = env.get_state(0)
        end = state_labels(s, env.variant, env.options)["end_wall_x"]
        ground = np.flatnonzero(~np.isin(s.grid[:, end - 2], (15, 16)))[0]  # first free row
        _place(env, 0, end - 1.5, ground + 0.58, lambda g: g.__setitem__(g == COIN, SPACE))
        _walk(env, RIGHT, 40)
        xs[variant] = (env.get_state(0).player["x"], end)
    assert xs["coinrun"][0] < xs["coinrun"][1]
    assert xs["coinrun-permeable-wall"][0] > xs["coinrun-permeable-wall"][1] + 3


@pytest.mark.parametrize("coin, coins_at_end", [("none", 0), ("end", 1), ("random", 0)])
def test_permeable_wall_coin_option(coin, coins_at_end):
    env = make_env("coinrun-permeable-wall", num=4, seed=0, options={"coin": coin})
    for i in range(4):
        s = env.get_state(i)
        end = state_labels(s, env.variant, env.options)["end_wall_x"]
        assert (s.grid[:, end - 1] == COIN).sum() == coins_at_end
        assert (s.grid == COIN).sum() == (0 if coin == "none" else 1)


def test_permeable_wall_hard_uses_wall_theme_0():
    env = make_env("coinrun-permeable-wall", num=4, seed=0, distribution_mode="hard")
    assert all(env.get_state(i)["wall_theme"] == 0 for i in range(4))


def test_invisible_coin_pays_nothing_and_is_labelled():
    env = make_env("coinrun-invisible-coin", num=1, seed=1)
    lab = env.labels()
    x, y = int(lab["goal_x"][0]), int(lab["goal_y"][0])
    assert env.get_state(0).grid[y, x] == -1 and lab["goal_visible"][0] == 0
    _place(env, 0, x + 0.5, y + 1.6)  # drop onto it and stay
    touched = False
    for _ in range(6):
        env.act(np.array([NOOP]))
        rew, _, first = env.observe()
        assert rew[0] == 0 and not first[0]
        touched |= bool(env.labels()["goal_touched"][0])
    assert touched


def test_cheese_top_right_on_every_reset_and_pays():
    env = make_env("maze-cheese-top-right", num=16, seed=0)
    rng = np.random.default_rng(0)
    resets = 0
    for t in range(300):
        env.act(rng.integers(0, 15, env.num))
        _, _, first = env.observe()
        for i in np.flatnonzero(first) if t % 50 else range(env.num):
            s = env.get_state(i)
            cx, cy = corner_cell(s)
            assert s.grid[cy, cx] == CHEESE and (s.grid == CHEESE).sum() == 1
            resets += 1
    assert resets > 60
    s = env.get_state(0)
    cx, cy = corner_cell(s)
    if s.grid[cy, cx - 1] != 51:  # step in from the left
        _place(env, 0, cx - 0.5, cy + 0.5)
        action = RIGHT
    else:  # from below
        _place(env, 0, cx + 0.5, cy - 0.5)
        action = UP
    assert _walk(env, action, 1) == (10.0, True)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_cheese_region(n):
    env = make_env("maze-cheese-region", num=16, seed=2, options={"region_size": n},
                   distribution_mode="hard")
    lab = env.labels()
    assert lab["cheese_in_top_right"].all()
    assert ((lab["corner_x"] - lab["goal_x"] < n) & (lab["corner_y"] - lab["goal_y"] < n)).all()


def test_max_maze_size_cuts_the_engine_sizes():
    env = make_env("maze-cheese-top-right", num=32, seed=0, options={"max_maze_size": 7})
    rng = np.random.default_rng(0)
    dims = []
    for t in range(200):
        for i in np.flatnonzero(env.observe()[2]) if t else range(env.num):
            s = env.get_state(i)
            dim, margin = s["maze_dim"], (s["world_dim"] - s["maze_dim"]) // 2
            dims.append(dim)
            inside = np.zeros_like(s.grid, dtype=bool)
            inside[margin:margin + dim, margin:margin + dim] = True
            assert (s.grid[~inside] == 51).all()
            assert s.player["x"] == s.player["y"] == margin + 0.5
            cx, cy = corner_cell(s)
            assert s.grid[cy, cx] == CHEESE
            free = np.ascontiguousarray(s.grid != 51)
            reach = bfs(free.tobytes(), *free.shape, margin, margin) >= 0
            assert (reach == free).all()  # one connected maze
        env.act(rng.integers(0, 15, env.num))
    assert set(dims) == {3, 5, 7} and len(dims) > 40


def test_same_seed_same_edits_and_observations():
    runs = []
    for _ in range(2):
        env = make_env("coinrun-random-coin", num=6, seed=7, distribution_mode="hard")
        rng = np.random.default_rng(0)
        obs = []
        for _ in range(40):
            env.act(rng.integers(0, 15, 6))
            obs.append(env.observe()[1])
        runs.append((np.stack(obs), env.labels()["goal_x"]))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    # the edit depends only on (seed, level seed): same level in another env -> same coin
    a = make_env("coinrun-random-coin", num=1, seed=7, num_levels=1, start_level=5)
    b = make_env("coinrun-random-coin", num=3, seed=7, num_levels=1, start_level=5)
    assert len({coin_cell(e.get_state(i)) for e, i in [(a, 0), (b, 0), (b, 2)]}) == 1


def test_coin_mix_fraction():
    env = make_env("coinrun-coin-mix", num=200, seed=0, options={"random_coin_fraction": 0.3})
    stock = make_env("coinrun", num=200, seed=0)
    moved = np.mean([coin_cell(env.get_state(i)) != coin_cell(stock.get_state(i))
                     for i in range(200)])
    assert 0.2 < moved < 0.4


def test_no_room_for_the_coin_raises_edit_error():
    env = make_env("coinrun", num=1, seed=0)
    s = env.get_state(0)
    s.grid[s.grid == 16] = 15  # no ground tops left
    with pytest.raises(EditError, match=str(s["current_level_seed"])):
        random_coin(s, np.random.default_rng(0), {})


@pytest.mark.parametrize("variant, options, mode, match", [
    ("coinrun-randomcoin", {}, "easy", "Did you mean"),
    ("maze", {"region_size": 3}, "easy", "has no option"),
    ("maze-cheese-region", {"region_size": 16}, "easy", "1..15"),
    ("maze-cheese-region", {"region_size": 0}, "hard", "1..25"),
    ("maze-cheese-top-right", {"max_maze_size": 8}, "easy", "odd integer in 3..15"),
    ("maze-cheese-region", {"max_maze_size": 17}, "easy", "or None for the engine's sizes"),
    ("coinrun-coin-mix", {"random_coin_fraction": 1.5}, "easy", r"\[0, 1\]"),
])
def test_bad_input(variant, options, mode, match):
    with pytest.raises(EnvConfigError, match=match):
        EnvSpec(variant, mode, options=options)
