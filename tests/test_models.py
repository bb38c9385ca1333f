import numpy as np
import pytest
import torch

from interp.models import ImpalaAgent, ModelConfig, preprocess

TPP_KEYS = {
    f"embedder.block{b}.{part}.{p}"
    for b in (1, 2, 3)
    for part in ["conv"] + [f"res{r}.conv{c}" for r in (1, 2) for c in (1, 2)]
    for p in ("weight", "bias")
} | {f"{m}.{p}" for m in ("embedder.fc", "fc_policy", "fc_value") for p in ("weight", "bias")}


def expected_params(width: int, actions: int = 15, hidden: int = 256) -> int:
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    c1, c2, c3 = 16 * width, 32 * width, 32 * width
    embed = sum(conv(cin, c) + 4 * conv(c, c) for cin, c in ((3, c1), (c1, c2), (c2, c3)))
    fc = c3 * 8 * 8 * hidden + hidden
    return embed + fc + hidden * actions + actions + hidden + 1


@pytest.mark.parametrize("width", [1, 2, 4])
def test_forward_shapes_and_param_count(width):
    model = ImpalaAgent(width=width)
    logits, value = model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 15) and value.shape == (2,)
    assert logits.dtype == value.dtype == torch.float32
    assert model.num_params() == expected_params(width)


def test_width1_is_about_063m_params():
    assert expected_params(1) == ImpalaAgent().num_params() == 626_256


def test_parameter_names_match_train_procgen_pytorch():
    assert set(ImpalaAgent(width=2).state_dict()) == TPP_KEYS


def test_init_matches_reference_conventions():
    torch.manual_seed(0)
    model = ImpalaAgent()
    w = model.fc_policy.weight  # orthogonal rows, gain 0.01
    assert torch.allclose(w @ w.T, 1e-4 * torch.eye(15), atol=1e-7)
    v = model.fc_value.weight
    assert torch.allclose(v.norm(), torch.tensor(1.0))
    assert all(p.abs().sum() == 0 for n, p in model.named_parameters() if n.endswith("bias"))


def test_no_module_instance_reused():
    mods = [m for _, m in ImpalaAgent().named_modules(remove_duplicate=False)]
    assert len(mods) == len({id(m) for m in mods})


def test_channels_last_gives_same_output():
    torch.manual_seed(0)
    model, x = ImpalaAgent(), torch.rand(2, 3, 64, 64)
    ref = model(x)
    cl = model.to(memory_format=torch.channels_last)
    out = cl(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_config_round_trip_and_errors():
    cfg = ModelConfig(width=4, num_actions=9)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown ModelConfig keys.*'depth'"):
        ModelConfig.from_dict({"width": 1, "depth": 3})
    with pytest.raises(ValueError, match="width"):
        ModelConfig(width=0)
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="nature")
    with pytest.raises(TypeError):
        ImpalaAgent(cfg, width=2)


def test_preprocess():
    obs = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    x = preprocess(obs)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x[1, 2], torch.from_numpy(obs[1, :, :, 2]).float() / 255)
    assert preprocess(torch.from_numpy(obs), "cpu").equal(x)
    assert preprocess(obs, memory_format=torch.channels_last).is_contiguous(
        memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(obs.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(obs[0])
