import csv

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from interp import hooks
from interp.ablate import AblationError, AblationResult, ActivationStats, ablate
from interp.checkpoint import save_agent
from interp.envs import EnvSpec
from interp.hooks import UnknownLayerError
from interp.models import ImpalaAgent
from interp.rollout import Episodes, IncompatibleAgentError
from interp.stats import bootstrap_mean

LAYER = "embedder.block2.res1.conv1"
RUN = dict(episodes=4, num_envs=2, max_steps=60, frames=12)  # tiny: 2 envs x 2 episodes
COINRUN = {"variant": "coinrun", "distribution_mode": "easy"}  # env spec of the test agents


@pytest.fixture(scope="module")
def model():
    """A random agent whose policy depends on its features (policy head at gain 1, not 0.01)
    and that runs right (RIGHT+UP, RIGHT): CoinRun episodes end within ~60 steps."""
    torch.manual_seed(0)
    m = ImpalaAgent().eval()
    torch.nn.init.orthogonal_(m.fc_policy.weight, 1.0)
    with torch.no_grad():
        m.fc_policy.bias[8], m.fc_policy.bias[7] = 3.0, 2.0
    return m


def test_zero_ablation_touches_only_its_channel_and_downstream(model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 32, dtype=torch.bool)
    mask[0, 5] = True  # row 0: channel 5 ablated; row 1: nothing
    names = hooks.hook_names(model)
    with torch.no_grad():
        _, clean = hooks.run_with_cache(model, x)
        with hooks.patch(model, {LAYER: hooks.zero(mask)}):
            _, ablated = hooks.run_with_cache(model, x)
    at = names.index(LAYER)
    for name in names[:at]:
        assert torch.equal(clean[name], ablated[name]), name
    diff = (clean[LAYER] != ablated[LAYER]).any(-1).any(-1)
    assert diff[0].nonzero().flatten().tolist() == [5] and not diff[1].any()
    assert ablated[LAYER][0, 5].eq(0).all()
    assert not torch.equal(clean["fc_value"][0], ablated["fc_value"][0])
    assert torch.equal(clean["fc_value"][1], ablated["fc_value"][1])


@pytest.mark.parametrize("mode", ["zero", "resample"])
def test_batched_sweep_equals_per_channel_loop(model, mode):
    g = torch.Generator().manual_seed(1)
    stats = ActivationStats(LAYER, torch.rand(32, 16, 16, generator=g),
                            torch.rand(6, 32, 16, 16, generator=g)) if mode != "zero" else None
    chans = [[0], [1, 2], [3]]
    sweep = ablate(model, "coinrun", LAYER, chans, mode=mode, stats=stats, batch=2, **RUN)
    ep = sweep.episodes
    assert ep.metrics["return"].shape == (4, 2, 2)
    both = ep.valid & ep.valid[0]
    assert (ep.level_seed == ep.level_seed[0])[both].all()  # every condition played the same levels
    for c, cond in enumerate(chans):
        one = ablate(model, "coinrun", LAYER, [cond], mode=mode, stats=stats, **RUN)
        for k, v in one.episodes.metrics.items():
            np.testing.assert_array_equal(v[0], ep.metrics[k][0])  # baseline
            np.testing.assert_array_equal(v[1], ep.metrics[k][c + 1])
        np.testing.assert_array_equal(one.episodes.valid[1], ep.valid[c + 1])
        if mode == "zero":
            np.testing.assert_allclose(one.kl[0], sweep.kl[c], rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(one.dvalue[0], sweep.dvalue[c], rtol=1e-4, atol=1e-6)
    assert np.nanmax(sweep.kl) > 0 and np.nanmax(sweep.dvalue) > 0
    differs = [not np.array_equal(ep.metrics["length"][0], ep.metrics["length"][c],
                                  equal_nan=True) for c in range(1, 4)]
    assert any(differs), "no ablation changed behaviour: the test would prove nothing"


def test_bootstrap_mean():
    assert bootstrap_mean(np.array([2.0, 2.0, np.nan])) == (2.0, 2.0, 2.0)
    mean, lo, hi = bootstrap_mean(np.arange(100.0))
    assert lo < mean == 49.5 < hi
    assert np.isnan(bootstrap_mean(np.array([np.nan]))[0])


def test_bad_inputs(model):
    with pytest.raises(AblationError, match="16 channels: 0-15"):
        ablate(model, "coinrun", "embedder.block1.conv", [[16]])
    with pytest.raises(AblationError, match="R, G, B"):
        ablate(model, "coinrun", "input", [[3]])
    with pytest.raises(UnknownLayerError, match="Valid names"):
        ablate(model, "coinrun", "embedder.block9", [[0]])
    with pytest.raises(AblationError, match="pattern"):
        ablate(model, "coinrun", "embedder.*", [[0]])
    with pytest.raises(AblationError, match="mode"):
        ablate(model, "coinrun", LAYER, [[0]], mode="noise")
    stats = ActivationStats("input", torch.zeros(3, 64, 64), torch.zeros(2, 3, 64, 64))
    with pytest.raises(AblationError, match="stats are for layer 'input'"):
        ablate(model, "coinrun", LAYER, [[0]], mode="mean", stats=stats)
    with pytest.raises(IncompatibleAgentError, match="15 actions"):
        ablate(ImpalaAgent(num_actions=16), "coinrun", LAYER, [[0]])


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory):
    return save_agent(tmp_path_factory.mktemp("agent") / "agent.pt", model, env_spec=COINRUN,
                      seed=0, steps=0)


def test_cli_ablate_report(ckpt, tmp_path):
    stats = ActivationStats("input", torch.full((3, 64, 64), 0.5), torch.rand(4, 3, 64, 64))
    stats_file = stats.save(tmp_path / "stats.pt")
    res = CliRunner().invoke(app, [
        "ablate", str(ckpt), "--env", "coinrun-random-coin", "--input-colour", "R",
        "--input-colour", "G+B", "--mode", "mean", "--stats", str(stats_file), "--episodes", "4",
        "--num-envs", "2", "--max-steps", "20", "--frames", "8", "--report", str(tmp_path / "r"),
        "--rank-by", "kl"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "r" / "ablation.csv")))
    assert [r["condition"] for r in rows] in (["R", "G+B"], ["G+B", "R"])
    assert {"d_return", "d_return_lo", "d_reached_end", "kl_hi", "dvalue"} <= set(rows[0])
    assert "| rank | condition |" in (tmp_path / "r" / "ablation.md").read_text()
    for png in ("ablate-effects.png", "ablate-behaviour.png"):
        assert (tmp_path / "r" / png).stat().st_size > 5000


@pytest.mark.parametrize("args, message", [
    (["--env", "coinrun", "--layer", "embedder.block1.cnv", "--all"], "Did you mean"),
    (["--env", "coinrun", "--layer", "embedder.block1.conv", "--channels", "3,40"], "0-15"),
    (["--env", "coinrun", "--layer", "embedder.block1.conv", "--channels", "a"], "channel numbers"),
    (["--env", "coinrun", "--input-colour", "X"], "colours R, G, B"),
    (["--env", "coinrun", "--layer", "embedder.block1.conv"], "exactly one of"),
    (["--env", "coinrn", "--input-colour", "R"], "unknown env variant"),
])
def test_cli_ablate_errors(ckpt, args, message):
    res = CliRunner().invoke(app, ["ablate", str(ckpt), *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output


def test_cli_mismatched_agent(tmp_path):
    path = save_agent(tmp_path / "a.pt", ImpalaAgent(num_actions=16), env_spec=COINRUN, seed=0,
                      steps=0)
    res = CliRunner().invoke(app, ["ablate", str(path), "--env", "coinrun", "--input-colour", "R"])
    assert res.exit_code == 2 and "16 actions" in res.output


def test_cli_rank_by_is_checked_before_the_sweep(ckpt, monkeypatch):
    """`--rank-by coins` failed only after the whole sweep."""
    import interp.ablate

    def sweep(*args, **kwargs):
        raise AssertionError("the sweep started")
    monkeypatch.setattr(interp.ablate, "run_episodes", sweep)
    res = CliRunner().invoke(app, ["ablate", str(ckpt), "--env", "coinrun", "--input-colour",
                                   "R", "--rank-by", "coins"])
    assert res.exit_code == 2, res.output
    assert ("cannot rank by 'coins' on coinrun; choose one of return, success, length, "
            "steps_to_goal, reached_end, kl, dvalue") in res.output


def test_huge_episode_counts_cost_only_what_runs(model):
    """`interp ablate --episodes 1000000000` allocated episodes x envs arrays up front."""
    import tracemalloc

    tracemalloc.start()
    try:
        res = ablate(model, "coinrun", "input", [[0]], episodes=10**6, num_envs=2, max_steps=3,
                     frames=4)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak < 20, peak  # was ~300 MiB
    assert res.episodes.valid.shape == (2, 2, 1) and res.kl.shape == (1, 2)


def _result(base, null, conditions) -> AblationResult:
    """An AblationResult of one env whose episodes returned ``base`` (baseline), ``null``
    (one rerun per row) and ``conditions`` (one row per condition)."""
    def episodes(rows):
        r = np.asarray(rows, float)[:, None, :]
        return Episodes({"return": r}, np.zeros(r.shape, int), np.zeros(r.shape, bool),
                        np.ones(r.shape, bool))
    k = len(base)
    return AblationResult("input", "zero", [(c,) for c in range(len(conditions))],
                          episodes([base, *conditions]), np.zeros((len(conditions), k)),
                          np.zeros((len(conditions), k)), EnvSpec("coinrun"), episodes(null))


def test_effects_within_the_agents_own_spread_are_flagged():
    """8 episodes, a baseline that collects every coin: divergence alone loses a coin or two
    per rerun, so losing one coin is within noise and losing six is not."""
    base = [10.0] * 8
    null = [[10, 0, 10, 10, 10, 10, 10, 10], [10, 10, 10, 10, 0, 10, 10, 10]]
    res = _result(base, null, [[10, 10, 10, 0, 10, 10, 10, 10], [0] * 6 + [10, 10]])
    floor = res.noise_floor["return"]
    assert 1.25 <= floor <= 5  # |mean of 8 paired differences| at the 95th percentile
    first, second = res.effects
    assert first["d_return_within_noise"] and not second["d_return_within_noise"]
    md = res.markdown("return")
    assert md.startswith("Noise floor (the unablated agent against itself: 2 reruns")
    assert "1 of 2 conditions change return by no more than the noise floor" in md
    assert "| ≈ -1.25 [" in md and "| -7.5 [" in md


def test_ablate_reruns_the_baseline_for_the_noise_floor(model):
    res = ablate(model, "coinrun", LAYER, [[0]], **RUN)
    assert res.null.valid.shape[0] == 2
    both = res.null.valid & res.episodes.valid[0]
    assert (res.null.level_seed == res.episodes.level_seed[0])[both].all()  # same levels
    assert np.isfinite(res.noise_floor["return"]) and "Noise floor" in res.markdown()
