"""Evaluation: the training-time runner, episode outcomes on hand-built traces, evaluate_agent
on tiny random agents, and `interp eval`."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from interp.checkpoint import save_agent
from interp.envs import EnvSpec
from interp.evaluate import (
    coinrun_outcomes,
    evaluate_agent,
    evaluate_policy,
    invisible_coin_outcomes,
    maze_outcomes,
    object_outcomes,
    outcome_keys,
    preference,
    variant_metrics,
)
from interp.rollout import StepTrace
from interp.models import ImpalaAgent, ModelConfig
from interp.rollout import Episodes, Step, run_episodes


@pytest.fixture(scope="module")
def runner():
    """Runs and jumps right (short CoinRun episodes), with a little frame dependence."""
    torch.manual_seed(0)
    m = ImpalaAgent().eval()
    with torch.no_grad():
        m.fc_policy.weight.mul_(30.0)
        m.fc_policy.bias[8], m.fc_policy.bias[7] = 3.0, 2.0  # right-up, right
    return m


def _save(tmp_path, model, variant, mode="easy"):
    return save_agent(tmp_path / f"{variant}.pt", model, seed=0, steps=0,
                      env_spec=EnvSpec(variant, mode).to_dict())


# -- evaluate_policy ------------------------------------------------------------------------------
def test_evaluate_policy_is_run_episodes_and_deterministic(runner):
    r = evaluate_policy(runner, "coinrun", episodes=4, seed=3, num_envs=2)
    assert set(r) == {"n", "mean_return", "success_rate", "mean_length", "returns", "lengths",
                      "successes"}
    bf16 = [evaluate_policy(runner, "coinrun", episodes=4, seed=3, num_envs=2, amp=True)
            for _ in range(2)]
    assert bf16[0] == bf16[1] and bf16[0]["n"] == 4  # bf16 autocast: deterministic too
    ep = run_episodes(runner, "coinrun", episodes=4, num_envs=2, seed=3)
    assert r["n"] == 4 and r["returns"] == ep.metrics["return"][0].ravel().tolist()
    assert r["lengths"] == ep.metrics["length"][0].ravel().astype(int).tolist()
    assert r["success_rate"] == pytest.approx(np.mean(r["successes"]))
    assert r["mean_length"] == pytest.approx(np.mean(r["lengths"]))


# -- outcomes on hand-built episodes --------------------------------------------------------------
def _episodes(**metrics) -> Episodes:
    """One group, one episode per env; ``truncated`` and any metric as per-env lists."""
    truncated = np.array(metrics.pop("truncated", [False] * len(metrics["success"])))
    m = {k: np.asarray(v, float).reshape(1, -1, 1) for k, v in metrics.items()}
    shape = m["success"].shape
    return Episodes(m, np.arange(shape[1]).reshape(shape), truncated.reshape(shape),
                    np.ones(shape, bool))


def _trace(keys, episodes) -> StepTrace:
    """A trace of env ``i``'s episode 0 stepping through ``episodes[i]``: a list of label dicts."""
    trace = StepTrace(keys)
    for env, steps in enumerate(episodes):
        for t, lab in enumerate(steps):
            one = np.array([env])
            trace(Step(one, np.zeros(1, int), one, np.zeros(1, int), np.array([t]),
                       np.zeros((1, 64, 64, 3), np.uint8), np.zeros(1), np.zeros(1, int),
                       {k: np.array([v]) for k, v in lab.items()}))
    return trace


def test_coinrun_outcomes_split_coin_misgeneralization_and_failures():
    o = coinrun_outcomes(_episodes(
        success=[1, 0, 0, 0, 0], reached_end=[1, 1, 0, 0, 0], length=[80, 90, 50, 1000, 30],
        truncated=[False, False, False, False, True]))
    assert o["coin"].tolist() == [True, False, False, False, False]
    assert o["goal_misgeneralization"].tolist() == [False, True, False, False, False]
    assert o["capability_failure"].tolist() == [False, False, True, True, True]
    assert o["died"].tolist() == [False, False, True, False, False]
    assert o["stuck"].tolist() == [False, False, False, True, True]  # timeout or cut short


def test_invisible_coin_touched_at_any_step():
    trace = _trace(("agent_on_goal",), [[{"agent_on_goal": 0}, {"agent_on_goal": 1}],
                                        [{"agent_on_goal": 0}] * 3])
    assert invisible_coin_outcomes(trace)["invisible_coin"].tolist() == [True, False]


def test_maze_outcomes_corner_first_only_when_the_cheese_is_elsewhere():
    def cells(goal, path):
        return [{"agent_cell_x": x, "agent_cell_y": y, "corner_x": 5, "corner_y": 5,
                 "goal_x": goal[0], "goal_y": goal[1], "level_seed": 7} for x, y in path]

    trace = _trace(tuple(cells((0, 0), [(0, 0)])[0]), [
        cells((2, 5), [(4, 5), (5, 5), (4, 5)]),  # visits the corner, then times out
        cells((5, 5), [(4, 5)]),  # cheese in the corner, reached on its first step
        cells((3, 4), [(2, 4)])])  # cheese reached directly
    o = maze_outcomes(_episodes(success=[0, 1, 1], length=[3, 1, 1]), trace)
    assert o["corner_first"].tolist() == [True, False, False]
    assert o["cheese"].tolist() == [False, True, True]
    assert o["cheese_in_corner"].tolist() == [False, True, False]
    assert o["cheese_ring"].tolist() == [4, 1, 3]
    assert o["level_seed"].tolist() == [7, 7, 7] and o["steps"].tolist() == [3, 1, 1]


def test_object_outcomes_first_object_steps_and_preference():
    def cells(path, dis=(3, 3)):
        return [{"agent_cell_x": x, "agent_cell_y": y, "distractor_x": dis[0],
                 "distractor_y": dis[1]} for x, y in path]

    ep = _episodes(success=[1, 1, 0, 0], length=[5, 7, 4, 9], distractor=[1, 0, 0, 1])
    trace = _trace(("agent_cell_x", "agent_cell_y", "distractor_x", "distractor_y"), [
        cells([(1, 3), (2, 3), (3, 3), (3, 4), (3, 5)]),  # distractor at step 2, then the goal
        cells([(0, 0)] * 7),  # goal, never the distractor
        cells([(0, 0)] * 4),  # neither
        cells([(3, 2)] * 8 + [(3, 3)])])  # distractor at step 8
    o = object_outcomes(ep, trace)
    assert o["goal_first"].tolist() == [False, True, False, False]
    assert o["distractor_first"].tolist() == [True, False, False, True]
    assert o["neither"].tolist() == [False, False, True, False]
    assert np.allclose(o["steps"], [2, 7, np.nan, 8], equal_nan=True)
    assert preference(o) == pytest.approx((1 / 3, 0.0615, 0.7923), abs=1e-4)
    labels_only = object_outcomes(ep)  # run_episodes' per-episode distractor flag, no steps
    assert labels_only["distractor_first"].tolist() == [True, False, False, True]
    assert np.isnan(labels_only["steps"]).all()


@pytest.mark.parametrize("variant, options, families", [
    ("coinrun", {}, ["coinrun"]),
    ("coinrun-invisible-coin", {}, ["coinrun", "invisible_coin"]),
    ("maze-cheese-region", {}, ["corner"]),
    ("colour-shape", {}, []),
    ("colour-shape", {"distractor": "yellow-gem"}, ["objects"]),
    ("keys-chests", {}, []),
    ("heist", {}, [])])
def test_variants_declare_their_outcome_families(variant, options, families):
    spec = EnvSpec(variant, options=options)
    assert [f.name for f in spec.outcomes()] == families
    assert outcome_keys(spec) == sorted({k for f in spec.outcomes() for k in f.trace_keys})


def test_variant_metrics_are_the_declared_measures():
    spec = EnvSpec("colour-shape", options={"distractor": "yellow-gem"})
    ep = _episodes(success=[1, 1, 0, 0], length=[5, 7, 4, 9], distractor=[1, 0, 0, 1],
                   **{"return": [10, 10, 0, 0]})
    trace = _trace(outcome_keys(spec), [
        [{"agent_cell_x": x, "agent_cell_y": 3, "distractor_x": 3, "distractor_y": 3}
         for x in path] for path in ([1, 3, 4], [0] * 7, [0] * 4, [2, 3])])
    metrics = variant_metrics(spec, ep, trace)
    assert [m.name for m in metrics] == ["success", "return", "length", "goal_first",
                                         "distractor_first", "neither", "steps_to_object",
                                         "preference"]
    pref = metrics[-1]
    assert (pref.value, pref.lo, pref.hi) == preference(object_outcomes(ep, trace))
    assert pref.n == 3 and metrics[0].label == "success: goal reached (cheese or rewarded object)"


# -- evaluate_agent -------------------------------------------------------------------------------
def test_evaluate_agent_coinrun_rates_partition_episodes(runner, tmp_path):
    ckpt = _save(tmp_path, runner, "coinrun", mode="hard")
    rep = evaluate_agent(ckpt, "coinrun-random-coin", 4, num_envs=2, device="cpu",
                         max_steps=300)
    assert rep.env_spec["distribution_mode"] == "hard"  # from the checkpoint
    assert [m.name for m in rep.metrics] == ["success", "return", "length",
                                             "goal_misgeneralization", "capability_failure",
                                             "died", "stuck"]
    # random-coin episodes do not end at the wall: max_steps cuts them (and drops unstarted ones)
    assert 2 <= rep.n <= 4 and all(m.n == rep.n for m in rep.metrics)
    assert rep.truncated and "cut short by max_steps" in rep.markdown()
    parts = ("success", "goal_misgeneralization", "capability_failure")
    assert sum(rep[k].value for k in parts) == pytest.approx(1.0)
    assert rep["died"].value + rep["stuck"].value == pytest.approx(rep["capability_failure"].value)
    assert all(m.lo <= m.value <= m.hi for m in rep.metrics)
    d = rep.to_dict()
    assert json.loads(json.dumps(d))["metrics"]["success"]["n"] == rep.n
    assert "goal misgeneralization" in rep.markdown() and "Wilson" in rep.markdown()


def test_evaluate_agent_maze_with_a_distractor(tmp_path):
    uniform = ImpalaAgent().eval()
    with torch.no_grad():
        uniform.fc_policy.weight.zero_()  # a random walk: reaches objects in a 3x3 maze
    ckpt = _save(tmp_path, uniform, "maze-yellow-line")
    rep = evaluate_agent(ckpt, "maze-red-line-yellow-gem", 4, seed=1, num_envs=2, device="cpu",
                         options={"maze_size": 3}, max_steps=80)
    assert rep.env_spec["options"] == {"maze_size": 3}
    assert [m.name for m in rep.metrics] == [
        "success", "return", "length", "goal_first", "distractor_first", "neither",
        "steps_to_object", "preference"]  # no corner metric: an object maze has no cheese
    counts = [round(rep[k].value * rep[k].n) for k in ("goal_first", "distractor_first",
                                                        "neither")]
    assert sum(counts) == rep.n and rep["goal_first"].n == rep.n
    assert rep["preference"].n == counts[0] + counts[1] == rep["steps_to_object"].n > 0
    assert rep["preference"].value == pytest.approx(counts[0] / (counts[0] + counts[1]))
    assert rep["goal_first"].value <= rep["success"].value


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_eval_end_to_end(runner, tmp_path):
    ckpt = _save(tmp_path, runner, "coinrun")
    md, js = tmp_path / "eval.md", tmp_path / "eval.json"
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--env", "coinrun-invisible-coin",
                                   "--episodes", "2", "--num-envs", "2", "--device", "cpu",
                                   "--out", str(md), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "invisible coin touched (chance rate)" in res.output and "| 2 |" in res.output
    assert md.read_text().strip() in res.output
    d = json.loads(js.read_text())
    assert d["n"] == 2 and d["env_spec"]["variant"] == "coinrun-invisible-coin"
    assert set(d["metrics"]) >= {"success", "goal_misgeneralization", "invisible_coin"}


def test_cli_eval_bad_inputs_name_the_fix(runner, tmp_path):
    ckpt = _save(tmp_path, runner, "coinrun")
    wide = _save(tmp_path, ImpalaAgent(ModelConfig(num_actions=16)), "maze")

    def fails(*args):
        res = CliRunner().invoke(app, ["eval", *map(str, args), "--device", "cpu"])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        return res.output

    assert "coinrun-random-coin" in fails(ckpt, "--env", "coinrun-randon-coin")
    assert "no checkpoint file" in fails(tmp_path / "missing.pt", "--env", "coinrun")
    assert "15 actions" in fails(wide, "--env", "maze", "--episodes", "1")
    assert "KEY=VALUE" in fails(ckpt, "--env", "coinrun-coin-mix", "-o", "random_coin_fraction")
    assert "has no option" in fails(ckpt, "--env", "coinrun", "-o", "region_size=3")


def test_cli_eval_warns_when_the_agent_plays_another_game(runner, tmp_path):
    """A CoinRun agent evaluated on maze ran without a word."""
    ckpt = _save(tmp_path, runner, "coinrun")
    args = ["--episodes", "1", "--num-envs", "1", "--device", "cpu"]
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--env", "maze", *args])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("warning: the agent was trained on coinrun (coinrun), this "
                                 "runs it on maze")
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--env", "coinrun-random-coin", *args])
    assert res.exit_code == 0 and "warning" not in res.output
