import collections

import pytest
import torch

from interp import hooks
from interp.hooks import (
    UnknownLayerError,
    add,
    hook_names,
    mean,
    patch,
    replace,
    resample,
    resolve_names,
    run_with_cache,
    run_with_hooks,
    zero,
)
from interp.models import ImpalaAgent

_RES = ["relu1", "conv1", "relu2", "conv2", "resadd"]
WIDTH1_HOOK_NAMES = ["input"] + [
    name
    for b in (1, 2, 3)
    for name in [f"embedder.block{b}.conv", f"embedder.block{b}.maxpool"]
    + [f"embedder.block{b}.res{r}.{op}" for r in (1, 2) for op in _RES]
] + ["embedder.relu3", "embedder.flatten", "embedder.fc", "embedder.relufc", "fc_policy",
     "fc_value"]

SHAPES = {"input": (3, 64, 64), "embedder.block1.conv": (16, 64, 64), "embedder.block1.maxpool": (16, 32, 32),
          "embedder.block2.res1.resadd": (32, 16, 16), "embedder.block3.res2.conv2": (32, 8, 8),
          "embedder.flatten": (2048,), "embedder.relufc": (256,), "fc_policy": (15,),
          "fc_value": (1,)}
LAYER = "embedder.block2.res1.conv1"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ImpalaAgent().eval()


@pytest.fixture(scope="module")
def x():
    return torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_hook_names_snapshot(model):
    assert hook_names(model) == WIDTH1_HOOK_NAMES
    assert len(WIDTH1_HOOK_NAMES) == 43
    assert hook_names(ImpalaAgent(width=2)) == WIDTH1_HOOK_NAMES


def test_each_hook_fires_once_per_forward(model, x):
    counts = collections.Counter()
    run_with_hooks(model, x, [("*", lambda out, name: counts.update([name]))])
    assert counts == {n: 1 for n in WIDTH1_HOOK_NAMES}


def test_resolve_names(model):
    assert resolve_names(model, "fc_value") == ["fc_value"]
    assert resolve_names(model, ["*.block3.res2.resadd", "fc_policy", "fc_*"]) == [
        "embedder.block3.res2.resadd", "fc_policy", "fc_value"]
    assert len(resolve_names(model, "embedder.block2.*")) == 12
    assert len(resolve_names(model, "*.resadd")) == 6


def test_unknown_layer_lists_names(model):
    with pytest.raises(UnknownLayerError) as e:
        resolve_names(model, "embedder.block2.res1.resad")
    msg = str(e.value)
    assert "Did you mean: embedder.block2.res1.resadd" in msg and "fc_value" in msg
    with pytest.raises(ValueError, match="no layer matches 'nope.*'"):
        run_with_cache(model, torch.zeros(1, 3, 64, 64), "nope.*")


def test_run_with_cache_matches_forward(model, x):
    with torch.no_grad():
        logits, value = model(x)
        (c_logits, c_value), cache = run_with_cache(model, x)
    assert c_logits.equal(logits) and c_value.equal(value)
    assert list(cache.keys()) == WIDTH1_HOOK_NAMES
    for name, shape in SHAPES.items():
        assert cache[name].shape == (3, *shape)
    assert cache["fc_policy"].equal(logits) and cache["fc_value"].squeeze(-1).equal(value)
    assert not cache["embedder.fc"].requires_grad
    with pytest.raises(KeyError, match="cached layers"):
        run_with_cache(model, x, "fc_*")[1]["embedder.fc"]


def test_layer_shapes_of_one_blank_forward_pass(model):
    assert hooks.layer_shapes(model, list(SHAPES)) == SHAPES
    assert list(hooks.layer_shapes(model)) == WIDTH1_HOOK_NAMES


def test_the_input_is_a_layer_without_parameters(model, x):
    """Patching ``input`` equals feeding the patched observation; it adds no parameter, so
    state dicts of train-procgen-pytorch (and ours from before it) load unchanged."""
    assert not any(k.startswith("input") for k in model.state_dict())
    blank_red = x.clone()
    blank_red[:, 0] = 0
    with torch.no_grad(), patch(model, {"input": zero(channels=[0])}):
        (logits, value), cache = run_with_cache(model, x, "input")
    want_logits, want_value = model(blank_red)
    assert cache["input"].equal(blank_red)
    assert logits.equal(want_logits) and value.equal(want_value)


def test_run_with_cache_options(model, x):
    _, cache = run_with_cache(model, x, ["*.resadd"], detach=False, to_cpu=True)
    assert len(cache) == 6 and cache["embedder.block3.res2.resadd"].requires_grad


def test_zero_changes_exactly_one_channel(model, x):
    c = 5
    with torch.no_grad():
        _, clean = run_with_cache(model, x, LAYER)
        with patch(model, {LAYER: zero(channels=[c])}):
            _, patched = run_with_cache(model, x, [LAYER, "embedder.block2.res1.conv2"])
    a, b = clean[LAYER], patched[LAYER]
    assert b[:, c].abs().sum() == 0 and a[:, c].abs().sum() > 0
    others = [i for i in range(a.shape[1]) if i != c]
    assert b[:, others].equal(a[:, others])
    assert not patched["embedder.block2.res1.conv2"].equal(
        run_with_cache(model, x, "embedder.block2.res1.conv2")[1]["embedder.block2.res1.conv2"])


def test_patch_removed_after_exception(model, x):
    with torch.no_grad():
        ref = model(x)[0]
        with pytest.raises(RuntimeError, match="boom"):
            with patch(model, {"fc_policy": zero()}):
                assert model(x)[0].abs().sum() == 0
                raise RuntimeError("boom")
        assert model(x)[0].equal(ref)
        with pytest.raises(ValueError, match="no layer"):  # bad name: nothing stays registered
            with patch(model, {"fc_policy": zero(), "bogus": zero()}):
                pass
        assert model(x)[0].equal(ref)
    assert all(not m._forward_hooks for m in model.modules())


def test_patch_with_autograd(model, x):
    x = x.clone().requires_grad_(True)
    with patch(model, {LAYER: zero(channels=[0, 1]), "embedder.relufc": add(torch.ones(256))}):
        _, value = model(x)
        value.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_mean_replace_add_resample(model, x):
    with torch.no_grad():
        act = run_with_cache(model, x, LAYER)[1][LAYER]  # (3, 32, 16, 16)

        def patched(fn):
            with patch(model, {LAYER: fn}):
                return run_with_cache(model, x, LAYER)[1][LAYER]

        per_channel = act.mean(dim=(0, 2, 3))  # (32,)
        out = patched(mean(per_channel, channels=[2]))
        assert torch.allclose(out[:, 2], per_channel[2].expand(3, 16, 16))
        assert out[:, 3].equal(act[:, 3])
        assert patched(mean(act.mean(0))).allclose(act.mean(0).expand_as(act))

        other = torch.randn_like(act)
        out = patched(replace(other, channels=torch.tensor([0, 31])))
        assert out[:, [0, 31]].equal(other[:, [0, 31]]) and out[:, 1:31].equal(act[:, 1:31])

        vec = torch.randn(32, 16, 16)
        out = patched(add(vec, channels=4, scale=2.0))
        assert torch.allclose(out[:, 4], act[:, 4] + 2 * vec[4])
        assert out[:, 5].equal(act[:, 5])

        source = torch.randn(7, 32, 16, 16)
        out = patched(resample(source, channels=[1], seed=0))
        for i in range(3):
            assert any(out[i, 1].equal(s[1]) for s in source)
        assert out[:, 0].equal(act[:, 0])
        assert out.equal(patched(resample(source, channels=[1], seed=0)))

        with pytest.raises(ValueError, match="resample source"):
            patched(resample(torch.randn(4, 16, 16, 16)))
        with pytest.raises(IndexError, match="out of range"):
            patched(zero(channels=[32]))


def test_custom_patch_and_shape_check(model, x):
    with torch.no_grad():
        logits, _ = run_with_hooks(model, x, [("fc_policy", lambda out, name: out * 0 + 1)])
        assert logits.eq(1).all()
        with pytest.raises(ValueError, match="returned shape"):
            run_with_hooks(model, x, [("fc_policy", lambda out, name: out[:1])])
        with pytest.raises(TypeError, match="callable"):
            with patch(model, {"fc_policy": 0.0}):
                pass


def test_factories_are_model_independent():
    out = torch.arange(6.0).reshape(1, 3, 2)
    assert hooks.zero([1])(out, "any")[0, 1].eq(0).all()
    assert hooks.add(torch.ones(3, 2), scale=0.5)(out, "any").equal(out + 0.5)


def test_captum_layer_attribution(model, x):
    captum = pytest.importorskip("captum.attr")
    layer = model.get_submodule("embedder.block2.res1.resadd")
    lig = captum.LayerIntegratedGradients(lambda inp: model(inp)[1], layer)
    attr = lig.attribute(x[:1], n_steps=4)
    assert attr.shape == (1, 32, 16, 16)


def test_per_sample_channel_mask(model, x):
    """A (N, C) bool mask patches a different channel set in each row, like separate passes."""
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[0, 3], mask[2, [5, 7]] = True, True
    with torch.no_grad():
        logits, value = run_with_hooks(model, x, [(LAYER, zero(channels=mask))])
        for i, chans in enumerate([[3], [], [5, 7]]):
            ref_logits, ref_value = run_with_hooks(model, x[i:i + 1], [(LAYER, zero(chans))])
            torch.testing.assert_close(logits[i:i + 1], ref_logits)
            torch.testing.assert_close(value[i:i + 1], ref_value)
        with pytest.raises(ValueError, match="does not fit"):
            run_with_hooks(model, x, [(LAYER, zero(channels=mask[:2]))])
