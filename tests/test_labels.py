"""Labels agree with the pixels, and every state of a game has the same keys."""

import numpy as np
import pytest

from interp.envs import make_env
from interp.envs.labels import LABEL_DOCS, label_keys


def _yellow_near(frame, px, py):
    """Any coin/cheese/gem-coloured pixel (gold or yellow) within 1 px of (px, py)."""
    x, y = int(px), int(py)
    patch = frame[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(-1, 3).astype(int)
    return bool(((patch[:, 0] > 200) & (patch[:, 1] > 120) & (patch[:, 2] < 140)).any())


@pytest.mark.parametrize("variant, mode", [
    ("coinrun-random-coin", "easy"), ("coinrun-random-coin", "hard"), ("maze", "easy"),
    ("maze", "hard"), ("maze-cheese-top-right", "hard"), ("heist", "hard")])
def test_goal_pixel_lands_on_the_goal_sprite(variant, mode):
    env = make_env(variant, num=24, seed=0, distribution_mode=mode)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(5):
        env.act(rng.integers(0, 15, env.num))
        _, obs, _ = env.observe()
        lab = env.labels()
        for i in np.flatnonzero(lab["goal_visible"]):
            assert _yellow_near(obs[i], lab["goal_px"][i], lab["goal_py"][i]), (variant, i)
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("game", ["maze", "heist"])
def test_agent_pixel_is_where_the_agent_is_drawn(game):
    """Moving the agent changes the frame at its old and new pixel positions."""
    env = make_env(game, num=1, seed=4, distribution_mode="hard")
    _, before, _ = env.observe()
    lab0 = env.labels()
    s = env.get_state(0)
    free = np.argwhere(s.grid == 100)
    y, x = free[len(free) // 2]
    k = np.flatnonzero(s.entities["type"] == 0)[0]
    s.entities["x"][k], s.entities["y"][k] = x + 0.5, y + 0.5
    env.set_state(0, s)
    _, after, _ = env.observe()
    lab1 = env.labels()
    changed = np.abs(before[0].astype(int) - after[0].astype(int)).sum(-1) > 30
    for lab in (lab0, lab1):
        px, py = int(lab["agent_px"][0]), int(lab["agent_py"][0])
        assert changed[max(py - 1, 0):py + 2, max(px - 1, 0):px + 2].any()
    assert lab1["agent_x"][0] == x + 0.5 and lab1["agent_y"][0] == y + 0.5


def test_coinrun_camera_centres_the_agent():
    env = make_env("coinrun", num=8, seed=0, distribution_mode="hard")
    for _ in range(10):
        env.act(np.full(8, 7))
    lab = env.labels()
    assert np.allclose(lab["agent_px"], 32, atol=0.5) and np.allclose(lab["agent_py"], 32, atol=0.5)
    assert (lab["progress"] > 0).all() and (lab["end_wall_x"] > lab["goal_x"]).all()


@pytest.mark.parametrize("variant", ["coinrun", "coinrun-invisible-coin", "maze-cheese-region",
                                     "heist"])
def test_key_set_fixed_and_documented(variant):
    env = make_env(variant, num=6, seed=0, distribution_mode="hard")
    rng = np.random.default_rng(0)
    keys = None
    for _ in range(30):
        env.act(rng.integers(0, 15, env.num))
        lab = env.labels()
        assert all(v.shape[0] == env.num for v in lab.values())
        keys = keys or tuple(lab)
        assert tuple(lab) == keys == label_keys(env.variant.game)
    assert set(keys) <= set(LABEL_DOCS)


def test_maze_distances():
    env = make_env("maze-cheese-top-right", num=8, seed=0)
    lab = env.labels()
    assert (lab["dist_to_cheese"] == lab["dist_to_corner"]).all()
    manhattan = (np.abs(lab["goal_x"] - lab["agent_cell_x"])
                 + np.abs(lab["goal_y"] - lab["agent_cell_y"]))
    assert (lab["dist_to_cheese"] >= manhattan).all()
