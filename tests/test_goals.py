"""Goal inference: the likelihood, the action semantics against the engine, recovery of scripted
agents' goals, and ``interp goals`` end to end."""

import csv

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from typer.testing import CliRunner

from cli import app
from interp.checkpoint import save_agent
from interp.envs import EnvSpec, make_env
from interp.goals import NO_GOAL, UNDECIDED, GoalError, resolve_goals, scripted_episodes, weigh
from interp.goals.games import ACTION_DX, MAZE_DX, MAZE_DY, N_ACTIONS, goal_game
from interp.goals.likelihood import log_eps_greedy
from interp.models import ImpalaAgent

MAZE = EnvSpec("maze-cheese-region", options={"region_size": 15, "max_maze_size": 7})
COINRUN = EnvSpec("coinrun-random-coin")


def shares(results):
    decided = [r for r in results if r.evidence.best != UNDECIDED]
    return len(decided), {n: np.mean([r.evidence.best == n for r in decided])
                          for n in results[0].evidence.names}


# -- likelihood ---------------------------------------------------------------------------------
def test_epsilon_integral_is_exact():
    rng = np.random.default_rng(0)
    took, m = rng.random(40) < 0.6, rng.choice([1, 2, 3, 15], 40)
    f = lambda e: np.prod(np.where(took, (1 - e) / m, 0) + e / 15)  # noqa: E731
    assert log_eps_greedy(took, m, 15) == pytest.approx(np.log(quad(f, 0, 1, limit=200)[0]),
                                                        rel=1e-6)


def test_weigh_counts_only_the_steps_where_goals_disagree():
    optimal = np.zeros((2, 6, N_ACTIONS), bool)
    optimal[:, :4, 7] = True  # both goals: right
    optimal[0, 4:, 1], optimal[1, 4:, 5] = True, True  # then left vs up
    ev = weigh(("a", "b"), optimal, np.array([7, 7, 7, 7, 1, 1]))
    assert (ev.informative, ev.steps, ev.best) == (2, 6, "a")
    assert ev.posterior.sum() == pytest.approx(1)
    # the shared steps count the same for both goals and only against "no goal"
    agree = weigh(("a", "b"), optimal[:, :4], np.array([7, 7, 7, 7]))
    assert agree.informative == 0 and agree.best == UNDECIDED
    assert agree.posterior[2] < 0.05
    # actions that serve neither goal: no goal
    assert weigh(("a", "b"), optimal, np.array([10, 11, 3, 12, 13, 14])).best == NO_GOAL
    # a step where one goal makes no prediction is left out: a right there does not count
    # against it, and the goals tie
    silent = optimal[:, :5].copy()
    silent[0, 4] = True
    ev = weigh(("a", "b"), silent, np.array([7, 7, 7, 7, 7]))
    assert ev.informative == 0 and ev.best == UNDECIDED
    assert ev.loglik[2] == pytest.approx(-4 * np.log(N_ACTIONS))  # no goal: 4 steps kept
    # a goal silent throughout (absent) is scored as it is: every step counts
    absent = optimal.copy()
    absent[1] = True
    assert weigh(("a", "b"), absent, np.array([7, 7, 7, 7, 1, 1])).best == "a"


# -- action semantics against the engine ----------------------------------------------------------
def test_maze_moves_are_the_engines():
    """Every action id moves the agent as MAZE_DX / MAZE_DY say, or not at all into a wall."""
    rng = np.random.default_rng(0)
    with make_env("maze", num=1, seed=5) as env:
        for _ in range(300):
            s = env.get_state(0)
            x, y, a = int(s.player["x"]), int(s.player["y"]), int(rng.integers(N_ACTIONS))
            nx, ny = x + MAZE_DX[a], y + MAZE_DY[a]
            free = 0 <= nx < s.grid.shape[1] and 0 <= ny < s.grid.shape[0] and s.grid[ny, nx] != 51
            env.act(np.array([a]))
            if not env.observe()[2][0]:
                p = env.get_state(0).player
                assert (int(p["x"]), int(p["y"])) == ((nx, ny) if free else (x, y)), a


def test_coinrun_actions_push_the_way_action_dx_says():
    """From standing still on flat ground, ids 0-2 move the agent left, 6-8 right, the rest not
    at all (the jumps 2 and 8 less far: less grip in the air)."""
    moved = []
    for a in range(N_ACTIONS):
        with make_env("coinrun", num=1, seed=0) as env:
            for act in [7] * 4 + [4] * 15:  # step off the left wall, stop
                env.act(np.array([act]))
            start = env.get_state(0).player
            assert start["vx"] == 0
            for _ in range(5):
                env.act(np.array([a]))
            moved.append(float(env.get_state(0).player["x"] - start["x"]))
    assert list(np.sign(np.round(moved, 3))) == list(ACTION_DX)


# -- goals ----------------------------------------------------------------------------------------
def test_goal_names_aliases_cells_and_errors():
    assert [g.name for g in resolve_goals(MAZE)] == ["cheese", "corner"]
    cs = EnvSpec("colour-shape", options={"goal": "red-line", "distractor": "yellow-gem"})
    assert [g.name for g in resolve_goals(cs)] == ["red-line", "yellow-gem", "corner"]
    assert [g.name for g in resolve_goals(cs, ["distractor", "goal"], defaults=False)] == [
        "yellow-gem", "red-line"]
    assert resolve_goals(MAZE, ["cell:3,4"])[-1].target == (3, 4)
    assert [g.name for g in resolve_goals(COINRUN)] == ["coin", "end"]
    for spec, extra, defaults, words in (
            (MAZE, ["yellow-gem"], True, "unknown goal"), (MAZE, ["corner"], False, "two"),
            (MAZE, ["cell:30,1"], True, "outside"), (EnvSpec("heist"), [], True, "heist")):
        with pytest.raises(GoalError, match=words):
            resolve_goals(spec, extra, defaults)


def test_maze_predict_follows_the_shortest_path():
    free = np.zeros((5, 5), bool)
    free[0, :] = free[:, 4] = True  # an L: bottom row, then up the right column
    cols = {"agent_cell_x": np.array([0, 4, 4]), "agent_cell_y": np.array([0, 0, 4])}
    optimal, reached = goal_game(MAZE).predict(free, cols, (4, 4))
    assert set(np.flatnonzero(optimal[0])) == {6, 7, 8}  # right
    assert set(np.flatnonzero(optimal[1])) == {5}  # up
    assert optimal[2].all() and list(reached) == [False, False, True]


def test_keys_chests_predict_heads_for_the_nearest_object_of_its_kind():
    """Nearest key / chest by path through the maze, the engine's diagonal moves (horizontal
    first, else vertical), renewal after a pick-up, no prediction once none is left."""
    free = np.zeros((3, 5), bool)
    free[0, :] = free[:, 0] = True  # an L: the bottom row, and up the left column
    slots = {f"{kind}{i}_{a}": np.full(3, -1) for kind in ("key", "chest")
             for i in range(12) for a in "xy"}
    slots.update(key0_x=np.array([4, -1, -1]), key0_y=np.array([0, -1, -1]),  # right, then taken
                 key1_x=np.array([0, 0, -1]), key1_y=np.array([2, 2, -1]),  # up the column
                 chest0_x=np.full(3, 2), chest0_y=np.zeros(3, int))
    cols = {"agent_cell_x": np.array([3, 4, 4]), "agent_cell_y": np.zeros(3, int),
            "keys_collected": np.array([0, 1, 2]), "chests_opened": np.zeros(3, int), **slots}
    game = goal_game(EnvSpec("keys-chests"))
    keys, got = game.predict(free, cols, "keys")
    assert set(np.flatnonzero(keys[0])) == {6, 7, 8}  # the key 1 cell right, not the far one
    assert set(np.flatnonzero(keys[1])) == {0, 1, 2}  # picked up: the next key, to the left
    assert keys[2].all() and list(got) == [False, True, True]  # none left: no prediction
    chests, at = game.predict(free, cols, "chests")
    # from (3, 0) the chest at (2, 0): left; ids 0 and 2 go left too (the up/down cells are
    # walls, so the engine moves them horizontally)
    assert set(np.flatnonzero(chests[0])) == {0, 1, 2} and not at.any()
    corner, _ = game.predict(free, {**cols, "agent_cell_x": np.zeros(3, int)}, (0, 2))
    # up: 5, and 2 (left-up: the edge blocks left); 8 (right-up) goes right, 0 nowhere
    assert set(np.flatnonzero(corner[0])) == {2, 5}


# -- recovery -------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["cheese", "corner", None])
def test_scripted_maze_agents_are_recovered(target):
    goals = resolve_goals(MAZE)
    goal = next((g for g in goals if g.name == target), None)
    res = scripted_episodes(MAZE, goal, goals, noise=0.3, episodes=32, num_envs=16)
    n, share = shares(res)
    assert n >= 8
    assert share[target or NO_GOAL] >= 0.8, share


def test_scripted_coinrun_agents_are_recovered():
    goals = resolve_goals(COINRUN)
    for goal in goals:
        n, share = shares(scripted_episodes(COINRUN, goal, goals, noise=0.3, episodes=16,
                                            num_envs=16, max_steps=300))
        assert n >= 4 and share[goal.name] >= 0.75, (goal.name, share)


@pytest.mark.parametrize("variant", ["keys-chests", "keys-chests-test"])
def test_scripted_keys_chests_agents_are_recovered(variant):
    spec = EnvSpec(variant)
    goals = resolve_goals(spec)
    assert [g.name for g in goals] == ["keys", "chests"]
    for goal in (*goals, None):
        res = scripted_episodes(spec, goal, goals, noise=0.3, episodes=16, num_envs=16,
                                max_steps=300)
        n, share = shares(res)
        assert n >= 12 and share[goal.name if goal else NO_GOAL] >= 0.8, (goal, share)
        assert all(r.evidence.steps == r.steps for r in res)  # renewing goals: whole episodes


# -- interp goals -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("agent") / "agent.pt"
    save_agent(path, ImpalaAgent().eval(), env_spec=MAZE.to_dict(), seed=0, steps=0)
    return path


def test_cli_goals_end_to_end(checkpoint, tmp_path):
    out = tmp_path / "goals"
    args = ["goals", str(checkpoint), "--env", "maze-cheese-region", "-o", "region_size=15",
            "-o", "max_maze_size=7", "--episodes", "8", "--num-envs", "8", "--controls", "4",
            "--maps", "2", "--goal", "cell:7,7", "--device", "cpu", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    with open(out / "goals-episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["source"] for r in rows} == {"agent", "scripted: cheese", "scripted: corner",
                                           "scripted: cell:7,7", "random agent"}
    assert sum(r["source"] == "agent" for r in rows) == 8
    for r in rows:
        post = sum(float(r[f"posterior[{n}]"]) for n in ("cheese", "corner", "cell:7,7", NO_GOAL))
        assert post == pytest.approx(1, abs=1e-4)
        assert int(r["informative_steps"]) <= int(r["window_steps"]) <= int(r["steps"])
    summary = (out / "summary.md").read_text()
    assert "top-right corner first" in summary and "best: no goal" in summary
    for png in ("goals.png", "goals-maps.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    again = CliRunner().invoke(app, args)  # refuses to overwrite, before any work
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_cli_goals_keys_chests(checkpoint, tmp_path):
    out = tmp_path / "kc"
    res = CliRunner().invoke(app, ["goals", str(checkpoint), "--env", "keys-chests-test",
                                   "--episodes", "4", "--num-envs", "4", "--controls", "4",
                                   "--max-steps", "60", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "trained on maze-cheese-region" in res.output  # another game: a warning, not an error
    summary = (out / "summary.md").read_text()
    assert "best: keys" in summary and "best: chests" in summary and "weighed whole" in summary
    assert sorted(p.name for p in out.iterdir()) == [  # no cell maps: the goals renew
        "goals-episodes.csv", "goals.csv", "goals.png", "summary.md"]


@pytest.mark.parametrize("extra, words", [
    (["--env", "heist"], "no goal hypotheses"), (["--env", "maze", "--goal", "coin"], "coin"),
    (["--env", "maze", "--no-default-goals"], "two")])
def test_cli_goals_bad_input_names_the_fix(checkpoint, tmp_path, extra, words):
    res = CliRunner().invoke(app, ["goals", str(checkpoint), "--out", str(tmp_path / "x"),
                                   "--device", "cpu", *extra])
    assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()
