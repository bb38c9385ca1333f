import csv

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cli import app
from interp.attribute import (
    AttributionError,
    attributions,
    check_target,
    fig9_map,
    gaussian_blur,
    mass_map,
    mass_shares,
    object_masks,
    pixel_map,
)
from interp.checkpoint import save_agent
from interp.models import ImpalaAgent


class LinearValue(nn.Module):
    """value = w . x, logits = 0: every gradient method has a closed form."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return torch.zeros(len(x), 15), (self.w * x).sum((1, 2, 3))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ImpalaAgent().eval()


def test_linear_head_closed_forms():
    toy, x = LinearValue(), torch.rand(2, 3, 64, 64)
    w = toy.w.detach().expand_as(x)
    b = torch.full_like(x, 0.25)
    close = lambda a, e: torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)  # noqa: E731
    close(attributions(toy, x, "value", "gradient"), w)
    close(attributions(toy, x, "value", "saliency"), w.abs())
    close(attributions(toy, x, "value", "input-x-gradient"), x * w)
    close(attributions(toy, x, "value", "integrated-gradients"), x * w)  # black baseline
    close(attributions(toy, x, "value", "integrated-gradients", baseline=b), (x - b) * w)


def test_shapes(model):
    x, actions = torch.rand(2, 3, 64, 64), torch.tensor([3, 7])
    for method, layer, shape in [("gradient", None, (2, 3, 64, 64)),
                                 ("integrated-gradients", None, (2, 3, 64, 64)),
                                 ("layer-integrated-gradients", "embedder.block2.res2.resadd",
                                  (2, 32, 16, 16)),
                                 ("gradcam", "embedder.block3.res2.resadd", (2, 1, 8, 8))]:
        for target in ("value", "action", "logit:4"):
            a = attributions(model, x, target, method, actions=actions, layer=layer, n_steps=4)
            assert a.shape == shape, (method, target)
            assert pixel_map(a, method).shape == mass_map(a, method).shape == (2, 64, 64)
    assert (mass_map(a, "gradcam") >= 0).all()


def test_blur_and_fig9_map():
    flat = torch.full((2, 64, 64), 3.0)
    torch.testing.assert_close(gaussian_blur(flat), flat)
    m = fig9_map(torch.randn(2, 64, 64))
    assert m.abs().max() <= 1


def _labels(n=3, **extra):
    rng = np.random.default_rng(0)
    base = {"view_dim": np.full(n, 13.0), "center_x": rng.uniform(5, 9, n),
            "center_y": rng.uniform(5, 9, n), "agent_px": np.full(n, 32.0),
            "agent_py": np.full(n, 32.0), "goal_present": np.array([1, 1, 0]),
            "goal_px": np.array([36.0, 70.0, np.nan]), "goal_py": np.array([32.0, 30, np.nan]),
            "distractor_present": np.array([1, 0, 1]), "distractor_x": np.array([5, -1, 7]),
            "distractor_y": np.array([5, -1, 6])}
    return {**base, **extra}


@pytest.mark.parametrize("game, extra, objects", [
    ("coinrun", {"end_wall_x": np.array([9, 30, 8])}, ["goal", "agent", "end_wall", "other"]),
    ("maze", {"corner_x": np.array([9, 9, 9]), "corner_y": np.array([9, 9, 9])},
     ["goal", "distractor", "agent", "corner", "other"]),
    ("keys-chests", {"keys_held": np.array([0, 1, 2])},
     ["goal", "distractor", "agent", "inventory", "other"]),
    ("heist", {}, ["goal", "agent", "other"]),
    ("bigfish", {}, ["goal", "agent", "other"]),  # a game nobody declared: goal and agent
])
def test_masks_partition_and_shares_sum_to_one(game, extra, objects):
    masks = object_masks(_labels(**extra), game)
    assert list(masks) == objects
    stacked = np.stack(list(masks.values())).astype(int)
    assert (stacked.sum(0) == 1).all()  # a partition: each pixel in exactly one region
    assert masks["agent"][0, 32, 32] and not masks["goal"][2].any()  # absent goal: empty
    shares = mass_shares(np.random.default_rng(1).random((3, 64, 64)), masks)
    np.testing.assert_allclose(sum(shares.values()), 1.0)
    if game == "coinrun":
        assert masks["end_wall"][0].any(axis=1).all()  # full-height column
        assert not masks["end_wall"][1].any()  # wall off-screen


def test_bad_inputs(model):
    x = torch.rand(1, 3, 64, 64)
    cases = [(dict(method="integrated-gradients", baseline="none"), "needs a baseline"),
             (dict(method="integrated-gradients", baseline="grey"), "unknown baseline"),
             (dict(method="gradcam"), "give --layer"),
             (dict(method="saliency", layer="embedder.block1.conv"), "takes no layer"),
             (dict(method="gradcam", layer="embedder.relufc"), "no spatial map"),
             (dict(method="occlusion"), "unknown method")]
    for kwargs, message in cases:
        with pytest.raises(AttributionError, match=message):
            attributions(model, x, "value", **kwargs)
    with pytest.raises(AttributionError, match="logit:K with K in 0-14"):
        check_target("logit:15", 15)


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory):
    return save_agent(tmp_path_factory.mktemp("agent") / "agent.pt", model,
                      env_spec={"variant": "coinrun", "distribution_mode": "easy"},
                      seed=0, steps=0)


def test_cli_attribute(ckpt, tmp_path):
    res = CliRunner().invoke(app, ["attribute", str(ckpt), "--env", "coinrun-random-coin",
                                   "--method", "integrated-gradients", "--frames", "4",
                                   "--n-steps", "4", "--grid", "2", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "attribute-shares.csv")))
    assert [r["object"] for r in rows] == ["goal", "agent", "end_wall", "other"]
    for target in ("value", "action"):
        assert sum(float(r[target]) for r in rows) == pytest.approx(1.0)
    assert (tmp_path / "attribute-grid.png").stat().st_size > 5000


@pytest.mark.parametrize("args, message", [
    (["--method", "gradcam"], "give --layer"),
    (["--method", "gradcam", "--layer", "embedder.block3.res2.resad"], "Did you mean"),
    (["--method", "integrated-gradients", "--baseline", "none"], "needs a baseline"),
    (["--target", "logit:99"], "unknown target"),
])
def test_cli_attribute_errors(ckpt, tmp_path, args, message):
    res = CliRunner().invoke(app, ["attribute", str(ckpt), "--env", "coinrun", "--out",
                                   str(tmp_path), *args])
    assert res.exit_code == 2 and message in res.output, res.output
