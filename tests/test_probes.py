"""Linear probes: planted features are found, noise is chance, splits are grouped, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from interp.checkpoint import save_agent
from interp.envs.labels import LABEL_DOCS
from interp.models import ImpalaAgent, ModelConfig
from probes import (
    Feature,
    ProbeError,
    get_feature,
    group_folds,
    load_catalogue,
    run_probe,
)
from probes.features import parse
from probes.linear import FoldStats, fit_ridge
from probes.synthetic import planted_recording

PLANTED = "embedder.block2.res2.resadd"
SHAPES = {"embedder.block1.res2.resadd": (16, 32, 32), PLANTED: (32, 16, 16),
          "embedder.relufc": (256,)}
FAST = dict(max_dim=128, n_boot=200, umap=False)
TARGET = Feature("target", "planted binary", "classification", "target")


@pytest.fixture(scope="module")
def planted():
    return planted_recording(levels=40, steps=30, shapes=SHAPES, channels=(3, 7),
                             position=(6, 11), signal=3.0, seed=1)


@pytest.fixture(scope="module")
def planted_result(planted):
    return run_probe(planted, TARGET, random_agent_rows=300, **FAST)


# -- features ------------------------------------------------------------------------------------
def test_catalogue_is_complete_and_uses_real_labels():
    features = load_catalogue()
    for name in ("coin_visible", "coin_px", "coin_dx", "progress", "end_wall_visible", "agent_x",
                 "cheese_x", "cheese_in_top_right", "goal_nearer", "nearer_object_colour",
                 "nearer_object_shape"):
        assert name in features
    assert {f.kind for f in features.values()} == {"classification", "regression"}
    for f in features.values():
        assert f.description and set(f.labels) <= set(LABEL_DOCS), f.name


def test_expressions_are_safe_and_propagate_nan():
    for bad in ("__import__('os')", "goal_x.real", "goal_x[0]", "lambda: 1", "'a'", "abs(1, 2)"):
        with pytest.raises(ProbeError):
            parse(bad)
    labels = {"goal_x": np.array([1.0, 5.0, -1.0]), "goal_y": np.zeros(3),
              "distractor_x": np.array([3.0, 2.0, 2.0]), "distractor_y": np.zeros(3),
              "agent_x": np.array([0.5, 5.5, 1.0]), "agent_y": np.full(3, 0.5),
              "goal_present": np.array([1, 1, 0]), "distractor_present": np.ones(3)}
    y, keep = get_feature("goal_nearer").compute(labels)
    assert y[:2].tolist() == [1, 1] and keep.tolist() == [True, True, False]
    y, keep = Feature("f", "", "regression", "goal_x / goal_y").compute(labels)
    assert not keep.any()  # x / 0 is inf or nan: such rows drop
    y, _ = Feature("f", "", "classification", "(goal_x > 2) or (agent_x > 1)").compute(
        {**labels, "goal_x": np.array([np.nan, 3.0, 0.0])})
    assert np.isnan(y[0]) and y[1:].tolist() == [1, 0]


# -- maths ---------------------------------------------------------------------------------------
def test_group_folds_never_share_a_level():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 57, 3000)
    fold = group_folds(groups, 5, seed=3)
    assert set(fold) == set(range(5))
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1
    sizes = np.bincount(fold)
    assert sizes.max() < 1.5 * sizes.min()
    with pytest.raises(ProbeError, match="at least 5 distinct levels"):
        group_folds(np.arange(4), 5)


def test_ridge_from_statistics_matches_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 12)) * rng.uniform(0.5, 3, 12) + 4
    y = x[:, 2] - 0.5 * x[:, 7] + rng.normal(size=600)
    fold = rng.integers(0, 4, 600)
    stats = FoldStats(4, 12, 1)
    for i in range(0, 600, 128):
        stats.add(x[i:i + 128], y[i:i + 128, None], fold[i:i + 128])
    fit = fit_ridge(stats, [np.array([0])])
    pred = fit.predict(x, fold)[:, 0]
    for k in range(4):
        tr, te = fold != k, fold == k
        mu, sd = x[tr].mean(0), x[tr].std(0)
        ref = Ridge(alpha=fit.lam[k, 0, 0] * tr.sum()).fit((x[tr] - mu) / sd, y[tr])
        np.testing.assert_allclose(pred[te], ref.predict((x[te] - mu) / sd), rtol=1e-4,
                                   atol=1e-4)


# -- probes on planted features ------------------------------------------------------------------
def test_planted_feature_is_found_where_it_was_planted(planted_result):
    res = planted_result
    assert res.best_layer == PLANTED and res.metric == "auroc"
    best = res.score("agent", PLANTED)
    assert best.lo > 0.6  # the spot is averaged with 63 noise positions at max_dim 128
    assert res.selectivity(PLANTED).lo > 0.1
    for layer in res.layers:
        if layer != PLANTED:
            s = res.score("agent", layer)
            assert s.lo <= 0.5 <= s.hi, layer
    assert {r["channel"] for r in res.channels[:2]} == {3, 7}  # L1 ranking
    assert res.spatial_layer == PLANTED
    assert np.unravel_index(np.nanargmax(res.spatial), res.spatial.shape) == (6, 11)


def test_controls_are_computed(planted, planted_result):
    res = planted_result
    for layer in res.layers:
        for probe in ("agent", "shuffled", "random_agent"):
            assert res.score(probe, layer) is not None, (probe, layer)
        assert res.score("shuffled", layer).lo <= 0.5 <= res.score("shuffled", layer).hi
    assert res.score("majority").value == 0.5
    majority = 1 - planted.labels["target"].mean()  # class 0 is the larger one
    assert res.score("majority", metric="accuracy").value == pytest.approx(majority, abs=0.03)
    assert res.score("pixels") is not None
    assert 300 <= res.info["rows_per_probe"]["random_agent"] < 330  # whole 30-step levels


def test_noise_is_chance(planted):
    res = run_probe(planted, Feature("noise", "", "classification", "noise_label"),
                    controls=("shuffled",), channels=False, spatial=False, **FAST)
    for layer in res.layers:
        s = res.score("agent", layer)
        assert s.lo <= 0.5 <= s.hi and abs(s.value - 0.5) < 0.08, layer
    res = run_probe(planted, Feature("noise", "", "regression", "noise_value"),
                    controls=("shuffled",), channels=False, spatial=False, **FAST)
    for layer in res.layers:
        assert res.score("agent", layer).value < 0.02
        sel = res.selectivity(layer)
        assert sel.lo <= 0 <= sel.hi


def test_regression_and_pooled_inputs(planted):
    res = run_probe(planted, Feature("v", "", "regression", "target_value"), layers=[PLANTED],
                    pool="meanmax", controls=(), **FAST)
    assert res.metric == "r2" and res.views[PLANTED] == "32x16x16 mean and max over HxW"
    assert res.score("agent", PLANTED).value > 0.2  # max over space sees the planted spot


def test_bad_input(planted, tmp_path):
    with pytest.raises(ProbeError, match="Did you mean coin_visible.*Features: coin_visible"):
        get_feature("coin_visble")
    with pytest.raises(ProbeError, match="single class"):
        run_probe(planted, Feature("c", "", "classification", "constant"), **FAST)
    with pytest.raises(ProbeError, match="needs label.*goal_visible.*its labels: level_seed"):
        run_probe(planted, "coin_visible", **FAST)
    with pytest.raises(ProbeError, match="'embedder.nope' is not in the recording; its layers: "
                                         "embedder.block1"):
        run_probe(planted, TARGET, layers=["embedder.nope"], **FAST)
    with pytest.raises(ProbeError, match="unknown control"):
        run_probe(planted, TARGET, controls=["pixel"], **FAST)
    with pytest.raises(ProbeError, match="unknown function"):
        Feature("f", "", "regression", "open('x')")


def test_documented_aliases_and_suggestions_by_meaning():
    """`--feature coin` (the tool's own wording) was refused with coin_py/px/dy suggested."""
    assert get_feature("coin").name == "coin_visible"
    assert get_feature("cheese").name == "cheese_x"
    with pytest.raises(ProbeError, match="unknown feature 'coins'. Did you mean coin_visible, "):
        get_feature("coins")
    with pytest.raises(ProbeError, match="Did you mean end_wall_visible, end_wall_dx"):
        get_feature("wall")


def test_one_game_or_alias_need_not_be_a_list(tmp_path):
    """`games: coinrun` in a features file became the games c, o, i, n, r, u, n."""
    extra = tmp_path / "extra.yaml"
    extra.write_text("features:\n  always:\n    kind: classification\n    value: agent_x > 0\n"
                     "    games: coinrun\n    aliases: ax\n")
    f = get_feature("ax", extra)
    assert f.name == "always" and f.games == ("coinrun",) and f.aliases == ("ax",)


def test_probes_too_wide_for_memory_are_refused_before_the_pass():
    """--max-dim without a cap made statistics of folds x dim^2 per probe (hundreds of GB)."""
    wide = planted_recording(levels=8, steps=5, shapes={"embedder.block1.conv": (64, 32, 32)},
                             planted=(), seed=2)
    with pytest.raises(ProbeError, match=r"would hold about \d+\.\d GiB .* lower --max-dim"):
        run_probe(wide, TARGET, max_dim=10**6, n_boot=10, umap=False)


# -- outputs and CLI -----------------------------------------------------------------------------
def test_save_writes_every_output(planted_result, tmp_path):
    paths = {p.name for p in planted_result.save(tmp_path)}
    assert paths == {"results.csv", "results.md", "score_by_layer.png", "run.json",
                     "channels.csv", "channels.png", "spatial.png", "weights.npz"}
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header == "probe,layer,metric,value,ci_low,ci_high,rows,dim"
    md = (tmp_path / "results.md").read_text()
    assert "`block2.res2.resadd` **(best)**" in md and "raw pixels" in md


def _agent(path: Path) -> Path:
    """A random agent biased to run right: CoinRun episodes of ~50 steps."""
    torch.manual_seed(0)
    model = ImpalaAgent(ModelConfig())
    with torch.no_grad():
        model.fc_policy.bias[8], model.fc_policy.bias[7] = 3.0, 2.0
    save_agent(path, model, env_spec={"variant": "coinrun-random-coin",
                                      "distribution_mode": "easy"}, seed=0, steps=0)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "interp"), "probe", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    from interp.record import record

    rec = tmp_path / "rec.h5"
    record(_agent(tmp_path / "agent.pt"), rec, episodes=12, num_envs=4, device="cpu",
           layers=["embedder.block3.*", "embedder.relufc"])
    out = tmp_path / "out"
    r = _cli(str(rec), "--feature", "coin", "--out", str(out), "--folds", "3",
             "--layers", "embedder.block3.res*.resadd", "--layers", "embedder.relufc",
             "--random-agent-rows", "200", "--n-boot", "200", "--max-dim", "128")
    assert r.returncode == 0, r.stderr
    assert "best layer embedder." in r.stdout and "Traceback" not in r.stderr
    assert {p.name for p in out.iterdir()} == {
        "results.csv", "results.md", "score_by_layer.png", "run.json", "channels.csv",
        "channels.png", "spatial.png", "umap.png", "weights.npz"}

    r = _cli("--list-features")
    assert r.returncode == 0 and "coin_visible" in r.stdout and "cheese_in_top_right" in r.stdout
    assert "(also: coin)" in r.stdout
    for args, message in [
        (["--feature", "coin_visibel"], "unknown feature 'coin_visibel'. Did you mean coin_vis"),
        (["--feature", "cheese_x"], "defined for maze recordings; this one is coinrun"),
        (["--feature", "coin_visible", "--layers", "embedder.block2.res1.resadd"],
         "its layers: embedder.block3.conv"),
    ]:
        r = _cli(str(rec), *args, "--out", str(tmp_path / "x"))
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr
    extra = tmp_path / "extra.yaml"
    extra.write_text("features:\n  always:\n    kind: classification\n    value: level_seed >= 0\n")
    r = _cli(str(rec), "--feature", "always", "--features-file", str(extra), "--out",
             str(tmp_path / "x"))
    assert r.returncode == 2 and "single class" in r.stderr and "Traceback" not in r.stderr
