import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp.checkpoint import CheckpointError, describe_agent, load_agent, save_agent
from interp.models import ImpalaAgent

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
ENV = {"env_name": "coinrun", "distribution_mode": "hard", "random_percent": 0}


def _module(**children):
    m = nn.Module()
    for name, child in children.items():
        m.add_module(name, child)
    return m


def reference_policy(width: int, actions: int = 15) -> nn.Module:
    """A module with exactly the train-procgen-pytorch parameter layout (random weights)."""
    chans = [3, 16 * width, 32 * width, 32 * width]

    def res(c):
        return _module(conv1=nn.Conv2d(c, c, 3, padding=1), conv2=nn.Conv2d(c, c, 3, padding=1))

    blocks = {f"block{i}": _module(conv=nn.Conv2d(chans[i - 1], chans[i], 3, padding=1),
                                   res1=res(chans[i]), res2=res(chans[i])) for i in (1, 2, 3)}
    return _module(embedder=_module(**blocks, fc=nn.Linear(chans[3] * 64, 256)),
                   fc_policy=nn.Linear(256, actions), fc_value=nn.Linear(256, 1))


def reference_forward(sd: dict, x: torch.Tensor):
    """The train-procgen-pytorch forward pass written with functional ops."""
    def conv(h, name):
        return F.conv2d(h, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)

    h = x
    for b in (1, 2, 3):
        p = f"embedder.block{b}"
        h = F.max_pool2d(conv(h, f"{p}.conv"), 3, 2, 1)
        for r in (1, 2):
            q = f"{p}.res{r}"
            h = h + conv(F.relu(conv(F.relu(h), f"{q}.conv1")), f"{q}.conv2")
    h = F.relu(F.linear(torch.flatten(F.relu(h), 1), sd["embedder.fc.weight"],
                        sd["embedder.fc.bias"]))
    return (F.linear(h, sd["fc_policy.weight"], sd["fc_policy.bias"]),
            F.linear(h, sd["fc_value.weight"], sd["fc_value.bias"]).squeeze(-1))


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ImpalaAgent(width=2, num_actions=9)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    model(X)[1].sum().backward()
    opt.step()
    path = save_agent(tmp_path / "sub" / "agent.pt", model, env_spec=ENV, seed=3, steps=1000,
                      optimizer=opt, train_config={"lr": 5e-4},
                      metrics={"return": np.float32(7.5), "curve": [1.0, 2.0]},
                      extra={"note": "hi"})
    assert os.listdir(tmp_path / "sub") == ["agent.pt"]  # no temp file left behind
    agent = load_agent(path)
    assert agent.source_format == "interp" and not agent.model.training
    with torch.no_grad():
        for a, b in zip(model(X), agent.model(X)):
            assert a.equal(b)
    m = agent.manifest
    assert m["format"] == "interp-agent" and m["format_version"] == 1
    assert m["model_config"] == {"arch": "impala", "width": 2, "num_actions": 9,
                                 "in_channels": 3, "hidden": 256}
    assert (m["env_spec"], m["seed"], m["steps"]) == (ENV, 3, 1000)
    assert m["metrics"] == {"return": 7.5, "curve": [1.0, 2.0]} and m["extra"] == {"note": "hi"}
    assert m["code_version"].startswith("0.1.0") and m["created"].endswith("+00:00")
    assert "model_state_dict" not in m
    fresh = torch.optim.Adam(agent.model.parameters())
    fresh.load_state_dict(agent.optimizer_state)
    assert fresh.state_dict()["param_groups"][0]["lr"] == 5e-4
    raw = torch.load(path, weights_only=True)
    assert set(raw["model_state_dict"]) == set(model.state_dict())

    text = describe_agent(path)
    for expected in (r"format\s+interp-agent v1", r"width\s+2\n", r"params\s+1,440,138",
                     r"env spec\s+env_name=coinrun", r"seed\s+3", r"steps\s+1,000",
                     r"metric return\s+7.5"):
        assert re.search(expected, text), (expected, text)


def test_save_rejects_non_plain_values(tmp_path):
    with pytest.raises(CheckpointError, match=r"env_spec.*\['path'\].*PosixPath"):
        save_agent(tmp_path / "a.pt", ImpalaAgent(), env_spec={"path": tmp_path}, seed=None,
                   steps=0)
    assert not list(tmp_path.iterdir())


def test_interrupted_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "agent.pt"
    save_agent(path, ImpalaAgent(), env_spec=None, seed=1, steps=1)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_agent(path, ImpalaAgent(), env_spec=None, seed=2, steps=2)
    assert os.listdir(tmp_path) == ["agent.pt"]
    assert load_agent(path).manifest["seed"] == 1


def test_load_train_procgen_pytorch_checkpoint(tmp_path):
    torch.manual_seed(1)
    ref = reference_policy(width=2)
    for p in ref.parameters():  # non-trivial weights so every layer matters
        nn.init.normal_(p, std=0.05)
    sd = ref.state_dict()
    opt = torch.optim.Adam(ref.parameters())
    torch.save({"model_state_dict": sd, "optimizer_state_dict": opt.state_dict()},
               tmp_path / "model_200000000.pth")
    agent = load_agent(tmp_path / "model_200000000.pth")
    assert agent.source_format == "train-procgen-pytorch"
    assert agent.model.config.width == 2 and agent.model.config.num_actions == 15
    assert agent.manifest["env_spec"] is None and agent.manifest["steps"] is None
    assert agent.optimizer_state["param_groups"][0]["lr"] == 1e-3
    with torch.no_grad():
        ours, theirs = agent.model(X), reference_forward(sd, X)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

    torch.save(sd, tmp_path / "bare.pt")  # a bare state_dict works too
    assert load_agent(tmp_path / "bare.pt").model.config.width == 2
    assert re.search(r"env spec\s+unknown", describe_agent(tmp_path / "bare.pt"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the corrupt-file case
def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_agent(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(os.urandom(512))
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_agent(tmp_path / "junk.pt")
    good = tmp_path / "good.pt"
    save_agent(good, ImpalaAgent(), env_spec=None, seed=None, steps=0)
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_agent(tmp_path / "trunc.pt")

    sd = ImpalaAgent().state_dict()
    cases = {
        "objects": ({"model_state_dict": sd, "args": Exception("x")}, "Python object"),
        "other": ({"weights": 1}, "unrecognised checkpoint.*'weights'.*model_state_dict"),
        "noconv": ({"model_state_dict": {"fc_policy.weight": torch.zeros(15, 256)}},
                   "cannot infer the architecture"),
        "badwidth": ({"model_state_dict": {**sd, "embedder.block1.conv.weight":
                                           torch.zeros(20, 3, 3, 3)}}, "cannot infer width"),
        "extra": ({"model_state_dict": {**sd, "embedder.fc2.weight": torch.zeros(1)}},
                  r"unexpected \['embedder.fc2.weight'\]"),
        "missing": ({"model_state_dict": {k: v for k, v in sd.items() if "block3" not in k}},
                    r"missing \['embedder.block3.conv.bias'"),
        "version": ({"format": "interp-agent", "format_version": 99}, "format_version 99"),
    }
    for name, (obj, pattern) in cases.items():
        torch.save(obj, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=pattern):
            load_agent(tmp_path / f"{name}.pt")


def test_env_spec_keeps_training_options_on_the_training_variant(tmp_path):
    trained = {"variant": "colour-shape", "distribution_mode": "easy",
               "options": {"background": "black", "maze_size": 5}}
    save_agent(tmp_path / "a.pt", ImpalaAgent(), env_spec=trained, seed=0, steps=0)
    agent = load_agent(tmp_path / "a.pt")
    assert agent.env_spec().options == trained["options"]
    spec = agent.env_spec("colour-shape", options={"goal": "red-line"})
    assert spec.options == {**trained["options"], "goal": "red-line"}
    assert agent.env_spec("maze").options == {}  # another variant: its own defaults
