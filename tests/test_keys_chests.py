"""Keys and Chests: the rules (scripted agents), the exact shortest solution, states, labels,
the drawn inventory, option errors, the worker-process env and the experiment end to end."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.checkpoint import load_agent, save_agent
from interp.envs import EnvConfigError, EnvSpec, InvalidStateError, StateFormatError, make_env
from interp.envs.base import NOOP
from interp.envs.gym_wrapper import GymEnv
from interp.envs.keys_chests import (
    KeysChestsState,
    mirror_options,
    move_agents,
    path_length,
    rules,
    shortest_solution,
)
from interp.envs.keys_chests_draw import ICON_H, ICON_W
from interp.envs.geometry import bfs
from interp.envs.labels import label_keys
from interp.envs.remote import RemoteVecEnv
from interp.experiments.keys_chests import episode_measures
from interp.models import ImpalaAgent

LEFT, RIGHT, DOWN, UP, RIGHT_UP = 1, 7, 3, 5, 8
SMALL = {"maze_size": [5, 7], "keys": [1, 2], "chests": "2*keys", "timeout": 400}


def corridor(env, row: str, time: int = 0) -> KeysChestsState:
    """Env 0's state replaced by a one-row corridor at y = 0: ``A`` agent, ``k`` key,
    ``c`` chest, ``.`` floor, ``#`` wall (the rest of the world is wall)."""
    s = env.get_state(0)
    w = s.world_dim
    assert len(row) == w
    s.grid = np.ones((w, w), bool)
    s.grid[0] = [ch == "#" for ch in row]
    cells = {ch: [(x, 0) for x, c in enumerate(row) if c == ch] for ch in "Akc"}
    s.agent = cells["A"][0]
    s.keys = np.array([[x, y, 1] for x, y in cells["k"]], np.int64).reshape(-1, 3)
    s.chests = np.array([[x, y, 1] for x, y in cells["c"]], np.int64).reshape(-1, 3)
    s.keys_held = s.keys_collected = s.chests_opened = 0
    s.cur_time = time
    return s


def step(env, action: int):
    env.act(np.full(env.num, action))
    reward, obs, first = env.observe()
    return float(reward[0]), bool(first[0]), env.get_state(0)


@pytest.fixture
def env5():
    env = make_env("keys-chests", num=1, seed=0, options={"maze_size": 5, "keys": 1,
                                                          "timeout": 50})
    yield env
    env.close()


# -- rules --------------------------------------------------------------------------------------
def test_key_to_inventory_chest_uses_one_key_and_pays_one(env5):
    env5.set_state(0, corridor(env5, "Akcck"))  # 2 keys, 3 chests
    r, first, s = step(env5, RIGHT)  # keys pay nothing
    assert (r, first, s.keys_held, s.keys_collected, s.key_cells()) == (0.0, False, 1, 1,
                                                                        [(4, 0)])
    r, first, s = step(env5, RIGHT)  # the key opens the chest and is used up
    assert (r, first, s.keys_held, s.chests_opened, s.chest_cells()) == (1.0, False, 0, 1,
                                                                         [(3, 0)])
    r, first, s = step(env5, RIGHT)  # no key: the chest stays, and does not block
    assert (r, first, s.agent, s.chest_cells()) == (0.0, False, (3, 0), [(3, 0)])
    r, first, s = step(env5, RIGHT)
    assert (r, first, s.agent, s.keys_held) == (0.0, False, (4, 0), 1)
    r, first, s = step(env5, LEFT)  # any key opens any chest; 2 opened: nothing left to earn
    assert (r, first) == (1.0, True) and env5.get_info()[0]["prev_level_complete"]


def test_walls_block_and_diagonals_move_one_cell(env5):
    s = corridor(env5, "#A.kc")
    s.grid[1, 2] = False  # a free cell above (2, 0)
    env5.set_state(0, s)
    assert step(env5, LEFT)[2].agent == (1, 0)  # wall
    assert step(env5, UP)[2].agent == (1, 0)  # wall
    assert step(env5, RIGHT_UP)[2].agent == (2, 0)  # horizontal first
    assert step(env5, RIGHT_UP)[2].agent == (3, 0)  # one cell per step
    assert step(env5, LEFT)[2].agent == (2, 0)
    assert step(env5, UP)[2].agent == (2, 1)
    assert step(env5, 0)[2].agent == (2, 0)  # left-down: left is a wall, so down
    for a in range(9, 15):
        assert step(env5, a)[2].agent == (2, 0)  # the special keys stand still


@pytest.mark.parametrize("row, moves, rewards", [
    ("Akcc.", [RIGHT, RIGHT], [0, 1]),      # 1 key, 2 chests: ends when the key is used
    ("Akkc.", [RIGHT, RIGHT, RIGHT], [0, 0, 1]),  # 2 keys, 1 chest: ends at the last chest
])
def test_episode_ends_when_nothing_more_can_be_earned(env5, row, moves, rewards):
    env5.set_state(0, corridor(env5, row))
    seed = env5.get_state(0).current_level_seed
    for i, (a, want) in enumerate(zip(moves, rewards)):
        r, first, s = step(env5, a)
        assert r == want and first == (i == len(moves) - 1)
    info = env5.get_info()[0]
    assert info["prev_level_complete"] and info["prev_level_seed"] == seed
    assert s.cur_time == 0 and s.keys_held == 0 and s.current_level_seed != seed


def test_timeout_ends_an_incomplete_episode(env5):
    env5.set_state(0, corridor(env5, "A.kcc", time=48))  # timeout 50
    assert step(env5, NOOP)[1] is False
    r, first, s = step(env5, NOOP)
    assert first and r == 0 and not env5.get_info()[0]["prev_level_complete"]


# -- scripted agents on generated levels ----------------------------------------------------------
def action_towards(state: KeysChestsState, target) -> int:
    """One step along a shortest maze path from the agent to ``target``."""
    free = np.ascontiguousarray(~state.grid)
    dist = bfs(free.tobytes(), *free.shape, *target)
    ax, ay = state.agent
    for a, (dx, dy) in ((RIGHT, (1, 0)), (LEFT, (-1, 0)), (UP, (0, 1)), (DOWN, (0, -1))):
        x, y = ax + dx, ay + dy
        if 0 <= x < state.world_dim and 0 <= y < state.world_dim and \
                dist[y, x] == dist[ay, ax] - 1 >= 0:
            return a
    return NOOP


def nearest(state: KeysChestsState, cells):
    free = np.ascontiguousarray(~state.grid)
    dist = bfs(free.tobytes(), *free.shape, *state.agent)
    return min(cells, key=lambda c: dist[c[1], c[0]])


def keys_first(state, plan):
    return nearest(state, state.key_cells() or state.chest_cells())


def chest_greedy(state, plan):
    useful = state.chest_cells() if state.keys_held else state.key_cells()
    return nearest(state, useful or state.key_cells())


def planner(state, plan):
    while plan and tuple(state.agent) == plan[0]:
        plan.pop(0)
    return plan[0]


def play(spec: EnvSpec, agent, episodes: int, num: int = 4) -> list[dict]:
    """Run a scripted agent for the first ``episodes`` episodes of each env; per episode: the
    start state, the labels of every frame, return, length and completion."""
    env = make_env(spec, num=num, seed=1)
    out, done = [], np.zeros(num, int)
    current = [None] * num
    while (done < episodes).any():
        labels = env.labels()
        actions = np.full(num, NOOP)
        for i in np.flatnonzero(done < episodes):
            s = env.get_state(i)
            if current[i] is None:
                plan = shortest_solution(s)
                current[i] = {"start": s, "plan": list(plan), "shortest": path_length(s, plan),
                              "labels": [], "return": 0.0}
            ep = current[i]
            ep["labels"].append({k: v[i] for k, v in labels.items()})
            actions[i] = action_towards(s, agent(s, ep["plan"]))
        env.act(actions)
        reward, _, first = env.observe()
        info = env.get_info()
        for i in np.flatnonzero(done < episodes):
            ep = current[i]
            ep["return"] += reward[i]
            if first[i]:
                ep.update(length=len(ep["labels"]), completed=info[i]["prev_level_complete"])
                ep["labels"] = {k: np.array([lab[k] for lab in ep["labels"]])
                                for k in ep["labels"][0]}
                out.append(ep)
                current[i], done[i] = None, done[i] + 1
    env.close()
    return out


@pytest.mark.parametrize("preset", ["train", "test"])
def test_scripted_agents_complete_every_level(preset):
    spec = EnvSpec("keys-chests", options=SMALL if preset == "train" else mirror_options(SMALL))
    measures = {"planner": [], "keys_first": [], "chest_greedy": []}
    for agent in (planner, keys_first, chest_greedy):
        for ep in play(spec, agent, episodes=3):
            s = ep["start"]
            useful = min(len(s.keys), len(s.chests))
            assert ep["completed"] and ep["return"] == useful  # reward per chest, keys pay 0
            m = episode_measures(ep["labels"], ep["completed"], ep["length"], ep["shortest"])
            if agent is planner:  # walking the optimal plan takes exactly the optimum
                assert ep["length"] == ep["shortest"] and m["steps_wasted"] == 0
            measures[agent.__name__].append(m)
            if preset == "train":
                assert m["all_keys_first"] == 1 and m["extra_keys"] == 0
            assert m["steps_wasted"] >= 0
    mean = {a: {k: np.mean([m[k] for m in ms]) for k in ("all_keys_first", "extra_keys",
                                                         "steps_wasted")}
            for a, ms in measures.items()}
    if preset == "test":  # going for keys first collects more of them, later
        assert mean["keys_first"]["all_keys_first"] > mean["chest_greedy"]["all_keys_first"]
        assert mean["keys_first"]["extra_keys"] > mean["chest_greedy"]["extra_keys"]
    assert mean["keys_first"]["steps_wasted"] > 0


def brute_force_shortest(state: KeysChestsState) -> int:
    """Breadth-first search over the game itself: (cell, keys taken, chests opened)."""
    keys, chests = state.key_cells(), state.chest_cells()
    need = min(len(keys), len(chests))
    start = (tuple(state.agent), 0, 0)
    seen, queue = {start}, deque([(start, 0)])
    while queue:
        (cell, km, cm), d = queue.popleft()
        for a in (LEFT, RIGHT, UP, DOWN):
            x, y = move_agents(state.grid[None], np.array([cell]), np.array([a]))[0]
            nk, nc = km, cm
            if (x, y) in keys and not km >> keys.index((x, y)) & 1:
                nk |= 1 << keys.index((x, y))
            elif (x, y) in chests and not cm >> chests.index((x, y)) & 1 and \
                    bin(km).count("1") > bin(cm).count("1"):
                nc |= 1 << chests.index((x, y))
            if bin(nc).count("1") == need:
                return d + 1
            if ((x, y), nk, nc) not in seen:
                seen.add(((x, y), nk, nc))
                queue.append((((x, y), nk, nc), d + 1))
    raise AssertionError("unsolvable level")


@pytest.mark.parametrize("options", [SMALL, mirror_options(SMALL)])
def test_shortest_solution_matches_search_over_the_game(options):
    env = make_env("keys-chests", num=8, seed=3, options=options)
    for i in range(8):
        s = env.get_state(i)
        assert path_length(s, shortest_solution(s)) == brute_force_shortest(s)
    assert shortest_solution(s, max_states=1) is None


# -- levels, states, labels ---------------------------------------------------------------------
def test_levels_are_seeded_and_presets_share_mazes():
    a = make_env("keys-chests", num=3, seed=5)
    b = make_env("keys-chests", num=3, seed=5)
    test = make_env("keys-chests-test", num=3, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, 15, 3)
        for e in (a, b):
            e.act(actions)
        np.testing.assert_array_equal(a.observe()[1], b.observe()[1])
    for i in range(3):
        s, t = make_env("keys-chests", num=3, seed=5).get_state(i), test.get_state(i)
        assert s.current_level_seed == t.current_level_seed and s.agent == t.agent
        np.testing.assert_array_equal(s.grid, t.grid)
        assert (len(s.chests), len(t.keys)) == (2 * len(s.keys), 2 * len(t.chests))
        assert len(s.keys) == len(t.chests)  # one draw of the count
    levels = make_env("keys-chests", num=2, seed=0, num_levels=3, start_level=10)
    assert {s["level_seed"] for s in levels.get_info()} <= {10, 11, 12}


def test_state_round_trip_and_validation(env5):
    env5.act(np.array([RIGHT]))
    s = env5.get_state(0)
    raw = s.to_bytes()
    other = make_env("keys-chests", num=2, seed=9, options={"maze_size": 5, "keys": 1,
                                                            "timeout": 50})
    other.set_state(1, raw)
    assert other.get_state(1).to_bytes() == raw
    np.testing.assert_array_equal(other.observe()[1][1], env5.observe()[1][0])
    bad = s.copy()
    bad.keys = np.array([[0, 0, 1]])
    bad.grid[0, 0] = True
    with pytest.raises(InvalidStateError, match="keys on a wall"):
        env5.set_state(0, bad)
    on_key = corridor(env5, "A.kcc")
    on_key.agent = (2, 0)
    with pytest.raises(InvalidStateError, match="stands on a key"):
        env5.set_state(0, on_key)
    on_chest = corridor(env5, "A.kcc")
    on_chest.agent = (3, 0)  # without a key, the agent may stand on a chest
    env5.set_state(0, on_chest)
    wide = make_env("keys-chests", num=1, options={"maze_size": 7, "keys": 1, "timeout": 50})
    with pytest.raises(InvalidStateError, match="states only move between envs made with"):
        wide.set_state(0, raw)
    with pytest.raises(StateFormatError, match="not a keys-chests state"):
        env5.set_state(0, make_env("maze", num=1).get_state_bytes(0))
    env5.set_state(0, raw)
    with pytest.raises(StateFormatError, match="corrupt"):
        env5.set_state(0, raw[:-5])
    assert env5.get_state(0).to_bytes() == raw  # nothing was written


def test_labels(env5):
    s = corridor(env5, "A.kcc")
    env5.set_state(0, s)
    lab = {k: v[0] for k, v in env5.labels().items()}
    assert set(lab) == set(label_keys("keys-chests"))
    assert (lab["agent_cell_x"], lab["keys_held"], lab["keys_left"], lab["chests_left"]) == (
        0, 0, 1, 2)
    assert (lab["nearest_object"], lab["dist_to_nearest_key"], lab["dist_to_nearest_chest"]) \
        == (1, 2, 3)
    assert (lab["goal_x"], lab["distractor_x"], lab["key0_x"], lab["chest1_x"],
            lab["key1_x"]) == (3, 2, 2, 4, -1)
    step(env5, RIGHT)
    step(env5, RIGHT)
    lab = {k: v[0] for k, v in env5.labels().items()}
    assert (lab["keys_held"], lab["keys_collected"], lab["key0_x"], lab["nearest_object"]) == (
        1, 1, -1, 2)
    step(env5, RIGHT)
    lab = {k: v[0] for k, v in env5.labels().items()}  # a new level (1 key: ended)
    assert lab["step"] == 0 and lab["chests_opened"] == 0 and lab["num_keys"] == 1


def test_inventory_is_drawn_top_right(env5):
    s = corridor(env5, "A.kcc")
    frames = {}
    for held in (0, 1, 3):
        s.keys_held = s.keys_collected = held
        env5.set_state(0, s)
        frames[held] = env5.observe()[1][0].astype(int)
    diff = np.abs(frames[3] - frames[0]).sum(-1) > 0
    ys, xs = np.nonzero(diff)
    assert ys.max() < ICON_H and xs.min() >= 64 - 3 * ICON_W  # only the key icons change
    for slot in range(3):  # one icon per key, right to left
        x1 = 64 - slot * ICON_W
        assert diff[:, x1 - ICON_W:x1].any()
    assert (np.abs(frames[1] - frames[0]).sum(-1) > 0)[:, :64 - ICON_W].sum() == 0
    env5.set_state(0, corridor(env5, "Ak.cc"))
    before = env5.observe()[1][0]
    env5.act(np.array([RIGHT]))  # collecting a key shows it
    after = env5.observe()[1][0]
    assert (before[:ICON_H, 64 - ICON_W:] != after[:ICON_H, 64 - ICON_W:]).any()


def test_frames_equal_a_fresh_render_of_the_state():
    """The scene is cached between pickups and new levels; it must never go stale."""
    env = make_env("keys-chests", num=6, seed=2, options={**SMALL, "timeout": 30})
    fresh = make_env("keys-chests", num=1, seed=0, options={**SMALL, "timeout": 30})
    rng, pickups, levels = np.random.default_rng(0), 0, 0

    def touched():
        lab = env.labels()
        return lab["keys_collected"] + lab["chests_opened"]

    for _ in range(90):
        before = touched()
        env.act(rng.integers(0, 9, 6))
        _, obs, first = env.observe()
        pickups += int(((touched() != before) & ~first).sum())
        levels += int(first.sum())
        for i in range(6):
            fresh.set_state(0, env.get_state(i))
            np.testing.assert_array_equal(fresh.observe()[1][0], obs[i])
    assert pickups >= 3 and levels >= 3


@pytest.mark.parametrize("options, mode, message", [
    ({"maze_size": 3}, "easy", "do not fit in a 3x3 maze"),
    ({"keys": "2*chests"}, "easy", "defined by each other"),
    ({"keys": [3, 1]}, "easy", "1 <= lo <= hi"),
    ({"chests": "2*chests"}, "easy", "with k >= 1"),
    ({"keys": 13, "chests": 1, "maze_size": 25}, "easy", "more than the 12"),
    ({"maze_size": 6}, "easy", "odd int"),
    ({"timeout": 0}, "easy", "timeout=0"),
    ({}, "memory", "distribution modes easy, hard"),
])
def test_bad_options_are_one_line_errors(options, mode, message):
    with pytest.raises(EnvConfigError, match=message) as e:
        EnvSpec("keys-chests", mode, options=options)
    assert "\n" not in str(e.value)


def test_rules_and_mirror():
    r = rules({**SMALL}, "easy")
    assert r.world == 7 and r.count_bounds() == ((1, 2), (2, 4))
    assert mirror_options(SMALL)["keys"] == "2*chests" and mirror_options(SMALL)["chests"] == [1, 2]
    assert rules({"keys": [1, 4], "chests": "2*keys", "maze_size": None, "timeout": 9},
                 "hard").maze_sizes == (5, 7, 9, 11, 13)


# -- the env in the toolkit's other places ------------------------------------------------------
def test_worker_process_gym_and_random_policy_episodes():
    spec = EnvSpec("keys-chests-test", options={"maze_size": 5, "chests": 1, "timeout": 30})
    with RemoteVecEnv(spec, num=2, seed=0) as remote:
        local = make_env(spec, num=2, seed=0)
        for a in ([RIGHT, UP], [LEFT, DOWN], [UP, UP]):
            remote.act(np.array(a))
            local.act(np.array(a))
            np.testing.assert_array_equal(remote.observe()[1], local.observe()[1])
        assert remote.get_state(1).to_bytes() == local.get_state_bytes(1)
        assert remote.labels()["keys_held"].tolist() == local.labels()["keys_held"].tolist()
    gym_env = GymEnv(spec)
    obs, info = gym_env.reset()
    assert obs.shape == (64, 64, 3) and "nearest_object" in info["labels"]
    gym_env.step(RIGHT)
    obs, info = gym_env.reset()
    assert info["labels"]["step"] == 0


def _agent(path: Path, variant: str = "keys-chests", options=None) -> Path:
    torch.manual_seed(0)
    save_agent(path, ImpalaAgent(), env_spec={"variant": variant, "distribution_mode": "easy",
                                              "options": options or {}}, seed=0, steps=0)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "interp"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_cli_experiment_end_to_end(tmp_path):
    ckpt = _agent(tmp_path / "agent.pt", options={"maze_size": 5, "keys": 1, "timeout": 40})
    out = tmp_path / "out"
    r = _cli("experiment", "keys-chests", str(ckpt), "--out", str(out), "--episodes", "4")
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} == {
        "keys-chests-episodes.csv", "keys-chests.csv", "keys-chests.png",
        "keys-chests-trajectory.png", "summary.md"}
    with open(out / "keys-chests.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["preset"] for r in rows] == ["test", "train"] and all(r["n"] == "4" for r in rows)
    with open(out / "keys-chests-episodes.csv") as f:
        eps = list(csv.DictReader(f))
    test = [e for e in eps if e["preset"] == "test"]
    assert all((e["num_keys"], e["num_chests"]) == ("2", "1") for e in test)
    for e in eps:
        if e["completed"] == "True":
            assert float(e["steps_wasted"]) == int(e["steps"]) - float(e["shortest"]) >= 0
    assert "all keys before the last chest" in (out / "summary.md").read_text()

    maze = _agent(tmp_path / "maze.pt", variant="maze")
    r = _cli("experiment", "keys-chests", str(maze), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "needs an agent trained on keys-chests" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()
    bad = _agent(tmp_path / "bad.pt", options={"maze_size": 3})
    r = _cli("experiment", "keys-chests", str(bad), "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "do not fit in a 3x3 maze" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_toolkit_commands_run_on_keys_chests(tmp_path):
    """train (and resume exactly) -> eval, record -> probe, attribute (inventory region),
    ablate, on this game."""
    from typer.testing import CliRunner

    from cli import app
    from interp.train import load_config, train

    cfg = tmp_path / "c.yaml"
    cfg.write_text("inherit: easy\nenv: {variant: keys-chests, options: {maze_size: 5, keys: 1,"
                   " timeout: 40}}\nppo: {num_envs: 8, num_steps: 16, num_minibatches: 2, "
                   "epochs: 1}\nrun: {total_steps: 256, checkpoint_every: 256, device: cpu}\n")
    run = tmp_path / "run"
    assert train(load_config(cfg), run, progress=False)["status"] == "complete"
    ckpt = str(run / "checkpoints" / "agent_256.pt")
    train(load_config(cfg), tmp_path / "chunked", progress=False, stop_at=128)
    train(load_config(cfg), tmp_path / "chunked", resume=True, progress=False)  # env states too
    whole, chunked = (load_agent(p / "latest.pt").model.state_dict()
                      for p in (run, tmp_path / "chunked"))
    assert all(torch.equal(v, chunked[k]) for k, v in whole.items())
    cli = CliRunner()

    def ok(*args):
        res = cli.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.output

    assert "success: level completed" in ok("eval", ckpt, "--env", "keys-chests-test",
                                             "--episodes", "4", "--num-envs", "2")
    ok("record", ckpt, "--out", tmp_path / "rec.h5", "--episodes", "8", "--num-envs", "4",
       "--layers", "embedder.block3.res2.resadd")
    ok("probe", tmp_path / "rec.h5", "--feature", "dist_to_nearest_key", "--out",
       tmp_path / "probe", "--folds", "3", "--random-agent-rows", "50", "--n-boot", "20",
       "--no-umap")
    with open(tmp_path / "probe" / "results.csv") as f:
        assert [r for r in csv.DictReader(f)]  # a score per layer
    ok("attribute", ckpt, "--env", "keys-chests-test", "--method", "saliency", "--frames", "4",
       "--grid", "2", "--out", tmp_path / "attr")
    with open(tmp_path / "attr" / "attribute-shares.csv") as f:
        objects = [r["object"] for r in csv.DictReader(f)]
    assert objects == ["goal", "distractor", "agent", "inventory", "other"]
    ok("ablate", ckpt, "--env", "keys-chests", "--input-colour", "R", "--episodes", "2",
       "--num-envs", "2", "--max-steps", "20", "--frames", "8", "--report", tmp_path / "abl")
