"""The papers' experiments on tiny random agents and short budgets; interval helpers; agency."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from interp.checkpoint import LoadedAgent, save_agent
from interp.envs import EnvSpec
from interp.experiments import ExperimentError, _label, run_experiment
from interp.experiments.agency import (
    Trajectory,
    agency,
    classify,
    log_p_agent,
    log_p_device,
    make_trajectory,
)
from interp.experiments.colour_shape import colour_shape
from interp.experiments.maze_corner import maze_corner, training_mazes
from interp.experiments.misgen_rates import misgen_rates
from interp.experiments.permeable_wall import permeable_wall
from interp.experiments.value_vs_stage import STAGES, value_vs_stage
from interp.models import ImpalaAgent, preprocess
from interp.rollout import run_episodes
from interp.stats import bootstrap_mean, rate, wilson


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = ImpalaAgent().eval()
    torch.nn.init.orthogonal_(m.fc_policy.weight, 1.0)  # a policy that depends on the frame
    return m


@pytest.fixture(scope="module")
def runner_right():
    """An agent that runs and jumps right: it reaches the end wall of most CoinRun levels."""
    m = ImpalaAgent().eval()
    with torch.no_grad():
        m.fc_policy.weight.zero_()
        m.fc_policy.bias.zero_()
        m.fc_policy.bias[8], m.fc_policy.bias[7] = 3.0, 2.0  # right-up, right
    return m


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# -- intervals ----------------------------------------------------------------------------------
def test_wilson_matches_known_values():
    assert wilson(5, 10) == pytest.approx((0.5, 0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((1.0, 0.7225, 1.0), abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0, 0))
    assert rate([True, False, np.nan, True]) == wilson(2, 3)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson(3, 2)


def test_bootstrap_mean_covers_the_mean():
    assert bootstrap_mean([2.0, 2.0, np.nan]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_mean([]))
    x = np.random.default_rng(0).normal(1.0, 2.0, 400)
    m, lo, hi = bootstrap_mean(x)
    assert lo < m < hi and m == pytest.approx(x.mean())
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.15)


# -- run_episodes(on_step) ----------------------------------------------------------------------
def test_on_step_sees_every_step_with_values_labels_and_states(model):
    seen, state_x = [], []

    def on_step(step):  # the env state is only reachable during the step
        seen.append(step)
        state_x.append(float(step.state_of(int(step.rows[0])).player["x"]))
    ep = run_episodes(model, "coinrun", episodes=2, num_envs=2, max_steps=30,
                      on_step=on_step, step_labels=True)
    assert sum(len(s.rows) for s in seen) == np.nansum(ep.metrics["length"])  # cut ones too
    s = seen[5]
    assert np.allclose(s.value, model(preprocess(s.obs))[1].detach().numpy(), atol=1e-5)
    assert set(s.labels) >= {"progress", "goal_visible", "agent_x"}
    assert state_x[5] == pytest.approx(s.labels["agent_x"][0])
    assert [x.step[0] for x in seen[:3]] == [0, 1, 2]


# -- Procgen experiments on tiny budgets ---------------------------------------------------------
def test_value_vs_stage(model, tmp_path):
    paths = value_vs_stage(model, tmp_path, episodes=2, num_envs=2, max_steps=60)
    assert {p.name for p in paths} == {"value-vs-stage.csv", "value-vs-stage.png", "summary.md"}
    rows = read(tmp_path / "value-vs-stage.csv")
    assert len(rows) == 4 * len(STAGES)
    by = {(r["stage"], r["condition"]): r for r in rows}
    start = by["start", "coin in view"], by["start", "same frame, coin erased"]
    assert start[0]["frames"] == start[1]["frames"]  # paired
    assert sum(int(r["frames"]) for r in rows if r["condition"] != "difference") > 0
    assert "bootstrap" in (tmp_path / "summary.md").read_text()


def test_permeable_wall(runner_right, tmp_path):
    permeable_wall(runner_right, tmp_path, episodes=2, num_envs=2, max_steps=200)
    rows = read(tmp_path / "permeable-wall.csv")
    assert len(rows) == 2 and all(r["crossed"] == "True" for r in rows)
    assert all(float(r["peak_value"]) > -1e3 for r in rows)
    assert read(tmp_path / "permeable-wall-example.csv")
    summary = (tmp_path / "summary.md").read_text()
    assert "100% [" in summary and "0 died before the wall" in summary
    assert summary.count("(2/2") == 2  # all episodes, and those not ended by a death
    assert (tmp_path / "permeable-wall.png").stat().st_size > 10_000


def test_misgen_rates(model, tmp_path):
    agents = [(f"f{f}", LoadedAgent(model, {"env_spec": EnvSpec(
        "coinrun-coin-mix", options={"random_coin_fraction": f}).to_dict()}, None, "interp"))
        for f in (1.0, 0.0)]
    misgen_rates(agents, tmp_path, episodes=2, num_envs=2, max_steps=40)
    rows = read(tmp_path / "misgen-rates.csv")
    assert [r["random_coin_fraction"] for r in rows[::7]] == ["0", "1"]  # sorted by fraction
    assert len(rows) == 14 and all(0 <= float(r["rate"]) <= 1 for r in rows)
    assert all(float(r["ci_lo"]) <= float(r["rate"]) <= float(r["ci_hi"]) for r in rows)
    legacy = LoadedAgent(model, {"env_spec": None}, None, "train-procgen-pytorch")
    with pytest.raises(ExperimentError, match="no env spec"):
        misgen_rates([("old", legacy)], tmp_path, episodes=1)


def test_maze_corner(model, tmp_path):
    maze_corner(model, tmp_path, region_sizes=(1, 15), episodes=2, num_envs=2, max_steps=40)
    eps = read(tmp_path / "maze-corner-episodes.csv")
    assert {r["region_size"] for r in eps} == {"1", "15"}
    assert all(r["cheese_in_corner"] == "True" for r in eps if r["region_size"] == "1")
    rows = read(tmp_path / "maze-corner.csv")
    assert {r["by"] for r in rows} == {"region_size", "cheese_ring"}
    assert "the engine's maze sizes" in (tmp_path / "summary.md").read_text()


def test_maze_corner_plays_the_agents_training_mazes(model, tmp_path):
    small = EnvSpec("maze-cheese-top-right", "hard", options={"max_maze_size": 5})
    agent = LoadedAgent(model, {"env_spec": small.to_dict()}, None, "interp")
    assert training_mazes(agent) == {"distribution_mode": "hard", "max_maze_size": 5}
    maze_corner(model, tmp_path, region_sizes=(1, 7, 15), episodes=4, num_envs=4, max_steps=20,
                **training_mazes(agent))
    eps = read(tmp_path / "maze-corner-episodes.csv")
    assert [r["region_size"] for r in eps] == ["1"] * 4 + ["5"] * 4  # regions cut at the maze
    assert {int(r["cheese_ring"]) for r in eps} <= set(range(1, 6))
    assert "(hard, mazes up to 5x5)" in (tmp_path / "summary.md").read_text()
    legacy = LoadedAgent(model, {"env_spec": None}, None, "train-procgen-pytorch")
    with pytest.raises(ExperimentError, match="interp agents import"):  # never assumed
        training_mazes(legacy)
    coinrun = LoadedAgent(model, {"env_spec": EnvSpec("coinrun").to_dict()}, None, "interp")
    with pytest.raises(ExperimentError, match="needs a maze agent"):
        training_mazes(coinrun, "cr")


def test_colour_shape(model, tmp_path):
    train = EnvSpec("colour-shape", options={"goal": "yellow-line", "maze_size": 3})
    colour_shape(model, train, tmp_path, conditions=[("red-line", "yellow-gem", "black")],
                 episodes=2, num_envs=1, max_steps=40)
    rows = read(tmp_path / "colour-shape.csv")
    assert [r["ablation"] for r in rows] == ["none", "R", "G", "B"]
    for r in rows:
        assert int(r["goal_first"]) + int(r["distractor_first"]) + int(r["neither"]) == int(r["n"])
    assert "duel env" in (tmp_path / "summary.md").read_text()


# -- agency -------------------------------------------------------------------------------------
def test_device_likelihood_of_distinct_cells_is_a_quarter_each():
    cells = np.array([[x, 3] for x in range(11)])
    assert -log_p_device(cells, np.full(10, 3), 20) == pytest.approx(10 * math.log(4))


def test_agent_likelihood_is_the_exact_epsilon_integral():
    # one step right towards a goal straight to the right: int_0^1 (1 - 3 eps / 4) = 5/8
    lp = log_p_agent(np.array([[0, 0], [1, 0]]), np.array([3]), 20)
    assert lp[0 * 20 + 5] == pytest.approx(math.log(5 / 8))
    # ... and a wrong step: int_0^1 eps / 4 = 1/8
    assert log_p_agent(np.array([[1, 0], [0, 0]]), np.array([2]), 20)[5] == \
        pytest.approx(math.log(1 / 8))


def test_optimal_path_is_an_agent_and_a_dithering_walk_a_device():
    path = np.array([[x, 0] for x in range(16)] + [[15, y] for y in range(1, 16)])
    acts = np.array([3] * 15 + [0] * 15)
    assert classify(Trajectory("robust", path, acts, (15, 15)), 20)["p_agent"] > 0.99
    rng = np.random.default_rng(0)
    cells, actions = [np.array([10, 10])], []
    for _ in range(60):  # a walk that dithers between two cells, stepping aside now and then
        a = int(rng.choice(4, p=[0.05, 0.05, 0.45, 0.45]))
        actions.append(a)
        cells.append(np.clip(cells[-1] + [(0, 1), (0, -1), (-1, 0), (1, 0)][a], 0, 19))
    walk = classify(Trajectory("capability failure", np.array(cells), np.array(actions),
                               (0, 0)), 20)
    assert walk["p_agent"] < 0.5


def test_agency_experiment_writes_a_table(tmp_path):
    agency(tmp_path, trajectories=8)
    summary = read(tmp_path / "agency-summary.csv")
    assert [r["type"] for r in summary] == ["IID", "goal misgeneralization",
                                            "capability failure", "robust"]
    assert len(read(tmp_path / "agency.csv")) == 32
    assert float(summary[1]["p_goal_rewarded"]) < 0.05  # misgeneralizing: the wrong goal
    t = make_trajectory("goal misgeneralization", np.random.default_rng(1))
    assert (t.cells[-1] == 19).all() and not (t.cells == t.goal).all(1).any()


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_runs_agency_end_to_end(tmp_path):
    res = CliRunner().invoke(app, ["experiment", "agency", "--out", str(tmp_path),
                                   "--episodes", "4", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert {"agency.csv", "agency-summary.csv", "agency.png", "summary.md"} <= \
        {p.name for p in tmp_path.iterdir()}
    listing = CliRunner().invoke(app, ["experiment", "--list"])
    assert listing.exit_code == 0 and "misgen-rates" in listing.output


def test_cli_bad_inputs_name_the_fix(tmp_path, model):
    res = CliRunner().invoke(app, ["experiment", "value-vs-stag", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "value-vs-stage" in res.output and "agency" in res.output
    ckpt = save_agent(tmp_path / "a.pt", model, env_spec=None, seed=0, steps=0)
    res = CliRunner().invoke(app, ["experiment", "agency", str(ckpt), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "takes no checkpoint, got 1" in res.output
    with pytest.raises(ExperimentError, match="takes exactly 1 checkpoint, got 2"):
        run_experiment("permeable-wall", [ckpt, ckpt], tmp_path)


def test_checkpoint_labels_name_packaged_agents_by_folder():
    assert _label(Path("agents/coinrun-cpu/agent.pt")) == "coinrun-cpu"
    assert _label(Path("runs/x/checkpoints/agent_301056.pt")) == "agent_301056"
    assert _label(Path("agent.pt")) == "agent"
