"""interp sweep: seeds and settings parsing, the outlier rule, Ray runs (local instance, tiny
budgets): training with a failing seed and resume, evaluation of a folder, the report, CLI."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from interp.checkpoint import CheckpointError, save_agent
from interp.models import ImpalaAgent, ModelConfig
from interp.sweep import (
    Setting,
    SweepError,
    find_agents,
    parse_seeds,
    parse_settings,
    population_report,
    sweep_eval,
    sweep_train,
)
from interp.sweep.outliers import (
    adjust,
    freeman_tukey,
    leave_one_out,
    metric_tests,
    random_effects,
)
from interp.train import load_config, train
from interp.train.config import dump_config

ROOT = Path(__file__).resolve().parents[1]
TINY = """
inherit: easy
env: {variant: maze}
ppo: {num_envs: 8, num_steps: 16, num_minibatches: 2, epochs: 1}
run: {total_steps: 256, checkpoint_every: 128, device: cpu}
"""
COLOUR_SHAPE = {"variant": "colour-shape", "distribution_mode": "easy", "num_levels": 0,
                "start_level": 0, "options": {"goal": "yellow-line", "distractor": None,
                                              "background": "black", "maze_size": 3,
                                              "dead_ends": False}}
DUEL = ["--env", "colour-shape", "-o", "goal=red-line", "-o", "distractor=yellow-gem"]


# ---- parsing -----------------------------------------------------------------------------

def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5,0,3") == [0, 3, 5]
    assert parse_seeds("0-1, 10-11") == [0, 1, 10, 11]
    for bad in ("x", "", "3-1", "-1", "0-2,2"):
        with pytest.raises(SweepError):
            parse_seeds(bad)


def test_parse_settings_keeps_options_with_their_env():
    s = parse_settings(["colour-shape", "goal=red-line", "distractor=yellow-gem", "maze",
                        "colour-shape", "maze_size=7"])
    assert s == [Setting("colour-shape", {"goal": "red-line", "distractor": "yellow-gem"}),
                 Setting("maze"), Setting("colour-shape", {"maze_size": 7})]
    assert s[0].label == "colour-shape[goal=red-line,distractor=yellow-gem]"
    with pytest.raises(SweepError, match="before any --env"):
        parse_settings(["goal=red-line", "colour-shape"])
    with pytest.raises(SweepError, match="twice"):
        parse_settings(["maze", "maze"])


def test_find_agents_packaged_loose_and_foreign(tmp_path):
    save_agent(tmp_path / "ours" / "agent.pt", ImpalaAgent(ModelConfig()),
               env_spec=COLOUR_SHAPE, seed=3, steps=10)
    torch.save(ImpalaAgent(ModelConfig()).state_dict(), tmp_path / "foreign.pt")  # bare dict
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    save_agent(tmp_path / "run" / "checkpoints" / "agent_10.pt", ImpalaAgent(ModelConfig()),
               env_spec=COLOUR_SHAPE, seed=3, steps=10)  # a run's checkpoints are not agents
    agents = find_agents(tmp_path)
    assert [(a.name, a.manifest["seed"]) for a in agents] == [("ours", 3), ("foreign", None)]
    duel = Setting("colour-shape", {"goal": "red-line", "distractor": "yellow-gem"})
    assert agents[0].env_spec(duel, None).options["maze_size"] == 3  # training options kept
    assert agents[1].env_spec(duel, "easy").options == duel.options
    with pytest.raises(CheckpointError, match="foreign.pt does not say which distribution mode"):
        agents[1].env_spec(duel, None)  # never assumed for a file trained elsewhere
    (tmp_path / "ours.pt").write_bytes(b"x")
    with pytest.raises(SweepError, match="both named 'ours'"):
        find_agents(tmp_path)
    (tmp_path / "ours.pt").rename(tmp_path / "bad.pt")
    with pytest.raises(SweepError, match="bad.pt is not a readable agent"):
        find_agents(tmp_path)
    with pytest.raises(SweepError, match="no agents in"):
        find_agents(tmp_path / "run")


# ---- the outlier rule ----------------------------------------------------------------------

def test_random_effects_by_hand():
    assert random_effects([0, 1, 2], [1, 1, 1]) == pytest.approx((1.0, 0.0, 1 / 3))
    # Q = 8, c = 3 - 3/3 = 2: tau^2 = (8 - 2) / 2 = 3; Var(mu) = 1 / (3 / 4)
    assert random_effects([0, 2, 4], [1, 1, 1]) == pytest.approx((2.0, 3.0, 4 / 3))


def test_freeman_tukey_is_symmetric_with_a_constant_variance():
    y, v = freeman_tukey(np.arange(11), np.full(11, 10))
    assert np.all(np.diff(y) > 0) and np.allclose(y + y[::-1], np.pi)
    assert np.allclose(v, 1 / 10.5)


def _any_flag(rates: np.ndarray, n: int, rng, normal: bool = False) -> bool:
    k = rng.binomial(n, rates)
    y, v = freeman_tukey(k, np.full(len(k), n))
    t, p = leave_one_out(y, v)
    if normal:
        p = 2 * stats.norm.sf(np.abs(t))
    return bool((stats.false_discovery_control(p) <= 0.05).any())


@pytest.mark.parametrize("draw", ["homogeneous", "seeds differ"])
def test_null_populations_are_rarely_flagged(draw):
    """Populations without an outlier (8 agents x 1000 episodes): some agent is flagged in
    at most ~5% of them, whether the seeds share one rate or differ (Beta(8, 2) rates)."""
    rng = np.random.default_rng(0)
    rates = (lambda: np.full(8, 0.65)) if draw == "homogeneous" else (lambda: rng.beta(8, 2, 8))
    flagged = np.mean([_any_flag(rates(), 1000, rng) for _ in range(300)])
    assert flagged <= 0.07


def test_normal_reference_would_flag_null_populations_whose_seeds_differ():
    """Why Student's t: with 8 agents the normal reference flags far more than 5%."""
    rng = np.random.default_rng(0)
    flagged = np.mean([_any_flag(rng.beta(8, 2, 8), 1000, rng, normal=True)
                       for _ in range(300)])
    assert flagged > 0.15


def test_planted_outlier_is_flagged_where_a_pooled_binomial_test_flags_everyone():
    rng = np.random.default_rng(1)
    rates = np.r_[rng.beta(8, 2, 11), 0.05]  # 11 seeds that differ, one that fails
    n = np.full(12, 1000)
    k = rng.binomial(n, rates)
    names = [f"seed-{i}" for i in range(12)]
    tests = adjust(metric_tests(names, "duel", "preference", k / n, counts=(k, n)))
    assert [t.agent for t in tests if t.flagged(0.05)] == ["seed-11"]
    pooled = [stats.binomtest(int(k[i]), int(n[i]), (k.sum() - k[i]) / (n.sum() - n[i])).pvalue
              for i in range(12)]
    assert (stats.false_discovery_control(pooled) <= 0.05).sum() == 12


def test_mean_metric_outlier_and_missing_values():
    names = [f"a{i}" for i in range(7)]
    means = np.array([5.1, 4.8, 5.3, 4.9, 5.0, 5.2, 9.0])
    se = np.full(7, 0.15)
    tests = adjust(metric_tests(names, "s", "capability", means, se=se))
    assert [t.agent for t in tests if t.flagged(0.05)] == ["a6"]
    assert tests[-1].rest_median == pytest.approx(5.05) and tests[-1].t > 10
    # agents without a value are left out; fewer than 4 with one: no test
    means[:4] = np.nan
    assert metric_tests(names, "s", "capability", means, se=se) == []
    k, n = np.array([3, 0, 5, 4, 6]), np.array([10, 0, 10, 10, 10])
    assert [t.agent for t in metric_tests(names[:5], "s", "preference", k / np.maximum(n, 1),
                                          counts=(k, n))] == ["a0", "a2", "a3", "a4"]


def test_unreachable_cluster_address_fails_at_once():
    pytest.importorskip("ray")
    from interp.sweep.runner import connect

    for address in ("127.0.0.1:1", "ray://127.0.0.1:1", "nonsense"):
        with pytest.raises(SweepError, match="cannot reach Ray at"):
            connect(address, 1, 0, "agent")


# ---- Ray runs ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs) for the module's tests."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def _config(tmp_path: Path, text: str = TINY):
    (tmp_path / "c.yaml").write_text(text)
    return load_config(tmp_path / "c.yaml")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sweep_train_reports_a_failed_seed_resumes_and_skips_finished_ones(tmp_path, ray_local,
                                                                          capsys):
    cfg = _config(tmp_path)
    out = tmp_path / "sweep"
    # a sweep that stopped: seed 0 interrupted at 128 steps, seed 1 with a corrupt latest.pt
    train(cfg.with_overrides(seed=0), out / "runs" / "seed-0", stop_at=128, progress=False)
    dump_config(cfg, out / "config.yaml")
    (out / "runs" / "seed-1").mkdir(parents=True)
    dump_config(cfg.with_overrides(seed=1), out / "runs" / "seed-1" / "config.yaml")
    (out / "runs" / "seed-1" / "latest.pt").write_bytes(b"not a checkpoint")
    state = sweep_train(cfg, [0, 1, 2], out, tick=0.5)
    assert {s: v["status"] for s, v in state.items()} == {0: "packaged", 1: "failed",
                                                          2: "packaged"}
    assert "CheckpointError" in state[1]["error"]
    assert json.loads((out / "sweep.json").read_text())["seeds"]["1"]["status"] == "failed"
    assert "Traceback" in (out / "logs" / "seed-1.log").read_text()
    log0 = (out / "logs" / "seed-0.log").read_text()
    assert "resuming" in log0 and "packaged" in log0
    assert [int(r["steps"]) for r in _rows(out / "runs" / "seed-0" / "progress.csv")] == [
        128, 256]
    printed = capsys.readouterr().out
    assert "seed 1: failed" in printed and "sweep:" in printed

    for s in (0, 2):
        m = json.loads((out / "agents" / f"seed-{s}" / "manifest.json").read_text())
        assert (m["seed"], m["steps"]) == (s, 256)
    packaged = (out / "agents" / "seed-0" / "agent.pt").stat().st_mtime_ns
    (out / "runs" / "seed-1" / "latest.pt").unlink()  # fix the cause, run the same command
    state = sweep_train(cfg, [0, 1, 2], out, tick=0.5)
    assert all(v["status"] == "packaged" for v in state.values())
    assert (out / "agents" / "seed-0" / "agent.pt").stat().st_mtime_ns == packaged
    assert "2 already packaged, 1 to run" in capsys.readouterr().out

    with pytest.raises(SweepError, match=r"another config \(ppo.lr: sweep has 0.0005"):
        sweep_train(cfg.from_dict({**cfg.to_dict(), "ppo": {**cfg.to_dict()["ppo"],
                                                            "lr": 1e-3}}), [0], out)
    with pytest.raises(SweepError, match="needs 99 CPU.*has 2"):
        sweep_train(cfg, [0], tmp_path / "big", cpus_per_agent=99)
    assert not (tmp_path / "big").exists()  # refused before anything was written
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="not a sweep folder"):
        sweep_train(cfg, [0], tmp_path / "other")


def _agents(folder: Path, n: int, noop: int) -> None:
    """``n`` random-init colour-shape agents: loose a<i>.pt files, the last one packaged as
    nested/agent.pt; agent ``noop`` always takes NOOP (it never reaches an object)."""
    for i in range(n):
        torch.manual_seed(i)
        model = ImpalaAgent(ModelConfig())
        if i == noop:
            with torch.no_grad():
                model.fc_policy.bias[4] = 50.0
        path = folder / ("nested/agent.pt" if i == n - 1 else f"a{i}.pt")
        save_agent(path, model, env_spec=COLOUR_SHAPE, seed=i, steps=0)


@pytest.mark.slow
def test_sweep_eval_and_report_find_a_planted_outlier(tmp_path, ray_local):
    pop = tmp_path / "pop"
    _agents(pop, 6, noop=2)
    assert [a.name for a in find_agents(pop)] == ["nested", "a0", "a1", "a2", "a3", "a4"]
    settings = parse_settings(DUEL[1::2])
    path = sweep_eval(pop, settings, 16, num_envs=16, tick=0.5)
    rows = _rows(path)
    assert len(rows) == 6 and {r["setting"] for r in rows} == {settings[0].label}
    by = {r["agent"]: r for r in rows}
    assert float(by["a2"]["success"]) == 0 and by["a2"]["preference"] == ""
    assert all(int(r["n"]) == 16 for r in rows)
    assert json.loads(by["a2"]["options"])["maze_size"] == 3  # training options kept
    if importlib.util.find_spec("pyarrow"):
        import pyarrow.parquet as pq
        assert pq.read_table(pop / "eval" / "population.parquet").num_rows == 6
    else:
        assert not (pop / "eval" / "population.parquet").exists()

    # a rerun keeps finished pairs; another request is refused
    before = (pop / "eval" / "parts" / "a0@0.json").stat().st_mtime_ns
    sweep_eval(pop, settings, 16, num_envs=16)
    assert (pop / "eval" / "parts" / "a0@0.json").stat().st_mtime_ns == before
    with pytest.raises(SweepError, match="other episodes"):
        sweep_eval(pop, settings, 8, num_envs=16)
    with pytest.raises(SweepError, match="needs 99 CPU"):
        sweep_eval(pop, settings, 8, out=tmp_path / "e2", cpus_per_task=99)
    assert not (tmp_path / "e2").exists()

    paths = population_report(pop, examples=2)
    report = (pop / "eval" / "report" / "report.md").read_text()
    tests = _rows(pop / "eval" / "report" / "outliers.csv")
    flagged = {(t["agent"], t["metric"]) for t in tests if t["flagged"] == "True"}
    assert ("a2", "success") in flagged and {a for a, _ in flagged} == {"a2"}
    assert "| a2 |" in report and "trajectories-0.png" in report
    assert {p.name for p in paths} >= {"report.md", "scatter.png", "distributions.png",
                                       "outliers.csv", "trajectories-0.png"}
    with pytest.raises(SweepError, match="--overwrite"):
        population_report(pop)


@pytest.mark.slow
def test_cli_sweep_end_to_end(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY.replace("256", "128"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cli(*args, block_ray=False):
        pre = "import sys; sys.modules['ray'] = None; " if block_ray else ""
        return subprocess.run([sys.executable, "-c", pre + "import cli; cli.app()",
                               *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                              env=env, timeout=300)

    out = tmp_path / "sweep"
    p = cli("sweep", "train", cfg, "--seeds", "0-1", "--out", out)
    assert p.returncode == 0, p.stderr
    assert "2 of 2 agent(s) packaged" in p.stdout
    p = cli("sweep", "eval", out, "--env", "maze", "--episodes", 4, "--num-envs", 4)
    assert p.returncode == 0, p.stderr
    assert len(_rows(out / "eval" / "population.csv")) == 2
    p = cli("sweep", "report", out)
    assert p.returncode == 0, p.stderr
    assert "Not tested: fewer than 4 agents" in (out / "eval/report/report.md").read_text()

    for args, message in [
        (("sweep", "train", cfg, "--seeds", "x", "--out", tmp_path / "x"), "cannot read seeds"),
        (("sweep", "eval", out, "-o", "goal=red-line", "--env", "maze"), "before any --env"),
        (("sweep", "eval", out, "--env", "maze", "-o", "nope=1"), "has no option(s) nope"),
        (("sweep", "report", tmp_path), "no population.csv"),
    ]:
        p = cli(*args)
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, args
    p = cli("sweep", "train", cfg, "--seeds", "0", "--out", tmp_path / "y", block_ray=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "pip install -e '.[sweep]'" in p.stderr


def test_nothing_outside_interp_sweep_imports_ray():
    code = """
import importlib, pkgutil, sys
import interp, probes, activations, cli
for pkg in (interp, probes, activations):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(m.name)
print("ray" in sys.modules)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"
