import os
import re

import numpy as np
import pytest
import torch

from interp.checkpoint import CheckpointError, describe_agent, load_agent, save_agent
from interp.models import ImpalaAgent

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
ENV = {"env_name": "coinrun", "distribution_mode": "hard", "random_percent": 0}


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
                   "not an IMPALA agent: no embedder.block1.conv.weight"),
        "badwidth": ({"model_state_dict": {**sd, "embedder.block1.conv.weight":
                                           torch.zeros(20, 3, 3, 3)}}, "cannot infer width"),
        "extra": ({"model_state_dict": {**sd, "embedder.fc2.weight": torch.zeros(1)}},
                  r"unexpected embedder.fc\* \(1 tensor, e.g. embedder.fc2.weight\)"),
        "missing": ({"model_state_dict": {k: v for k, v in sd.items() if "block3" not in k}},
                    r"missing embedder.block\* \(10 tensors, e.g. embedder.block3.conv.bias"),
        "shape": ({"model_state_dict": {**sd, "fc_value.weight": torch.zeros(2, 256)}},
                  r"weights do not fit an IMPALA embedder of width 1.*fc_value.weight"),
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


def test_recurrent_round_trip_and_no_assumed_mode(tmp_path):
    torch.manual_seed(0)
    model = ImpalaAgent(gru_hidden=32).eval()
    save_agent(tmp_path / "rec.pt", model, env_spec=None, seed=0, steps=5)
    agent = load_agent(tmp_path / "rec.pt")
    assert agent.manifest["model_config"]["gru_hidden"] == 32
    hx = torch.rand(2, 32)
    with torch.no_grad():
        for a, b in zip(model.step(X, hx), agent.model.step(X, hx)):
            assert a.equal(b)
    assert re.search(r"recurrent\s+yes, GRU with hidden size 32\n", describe_agent(
        tmp_path / "rec.pt"))
    with pytest.raises(CheckpointError, match="which distribution mode.*--distribution-mode"):
        agent.env_spec("coinrun")  # never assumed
    assert agent.env_spec("coinrun", "hard").distribution_mode == "hard"
