"""`interp record`: activations, labels, episode accounting, resume/append, errors, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import activations
from interp.checkpoint import save_agent
from interp.envs import EnvConfigError, make_env
from interp.envs.base import NOOP
from interp.hooks import UnknownLayerError, run_with_cache
from interp.models import ImpalaAgent, ModelConfig, preprocess
from interp.outputs import OutputError
from interp.record import RecordError, record
from interp.rollout import IncompatibleAgentError

EPISODES, ENVS = 6, 3



def make_agent(path: Path, num_actions: int = 15) -> Path:
    """A random agent biased to run right (RIGHT+UP, RIGHT): CoinRun episodes of ~50 steps."""
    torch.manual_seed(0)
    model = ImpalaAgent(ModelConfig(num_actions=num_actions))
    with torch.no_grad():
        model.fc_policy.bias[min(8, num_actions - 1)] = 3.0
        model.fc_policy.bias[min(7, num_actions - 1)] = 2.0
    save_agent(path, model, env_spec={"variant": "coinrun", "distribution_mode": "easy"},
               seed=0, steps=0)
    return path


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Path:
    return make_agent(tmp_path_factory.mktemp("agent") / "agent.pt")


@pytest.fixture(scope="module")
def full(agent, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "full.h5"
    record(agent, out, episodes=EPISODES, num_envs=ENVS, device="cpu")
    return out


def read(path: Path, names=("steps/episode", "steps/step", "steps/action", "steps/obs",
                            "labels/agent_x", "labels/level_seed",
                            "activations/embedder.block2.res1.resadd")) -> dict:
    with h5py.File(path) as f:
        return {n: f[n][:] for n in names}


def by_episode_step(data: dict) -> dict:
    order = np.lexsort((data["steps/step"], data["steps/episode"]))
    return {k: v[order] for k, v in data.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith("activations/"):
            np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_file_layout_and_episode_accounting(full):
    with h5py.File(full) as f:
        a = f.attrs
        assert a["status"] == "complete" and a["schema_version"] == 1
        assert a["num_episodes"] == EPISODES and a["num_rows"] == len(f["steps/obs"])
        assert json.loads(a["env_spec"])["variant"] == "coinrun"
        assert json.loads(a["agent_manifest"])["model_config"]["width"] == 1
        assert "embedder.block3.res2.resadd" in json.loads(a["layers"])
        assert "goal_visible" in json.loads(a["label_docs"])
        eps, env, ep_idx = f["steps/episode"][:], f["steps/env"][:], f["episodes/index"][:]
        # every env contributes its first EPISODES / ENVS episodes, ids k * ENVS + env
        assert sorted(f["episodes/id"][:]) == list(range(EPISODES))
        assert np.bincount(f["episodes/env"][:]).tolist() == [EPISODES // ENVS] * ENVS
        assert (eps % ENVS == env).all() and set(ep_idx) == set(range(EPISODES // ENVS))
        for ep, length, ret in zip(f["episodes/id"], f["episodes/length"], f["episodes/return"]):
            rows = eps == ep
            assert rows.sum() == length
            assert (f["steps/step"][:][rows] == np.arange(length)).all()
            done = f["steps/done"][:][rows]
            assert done[-1] and not done[:-1].any()
            assert np.isclose(f["steps/reward"][:][rows].sum(), ret)


def test_activations_equal_direct_forward_pass(full, agent):
    from interp.checkpoint import load_agent

    model = load_agent(agent).model
    with h5py.File(full) as f:
        rows = np.arange(0, len(f["steps/obs"]), 7)
        obs = f["steps/obs"][rows]
        with torch.inference_mode():
            (logits, value), cache = run_with_cache(model, preprocess(obs))
        for name in json.loads(f.attrs["layers"]):
            np.testing.assert_allclose(f[f"activations/{name}"][rows], cache[name].numpy(),
                                       atol=1e-4, rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(f["steps/value"][rows], value.numpy(), atol=1e-4)
        np.testing.assert_allclose(f["steps/probs"][rows], torch.softmax(logits, -1).numpy(),
                                   atol=1e-5)


def test_labels_belong_to_the_state_that_produced_the_obs(full):
    """Replay the recorded actions in a fresh env: obs and labels match row by row."""
    with h5py.File(full) as f:
        env_col, actions, obs = f["steps/env"][:], f["steps/action"][:], f["steps/obs"][:]
        labels = {k: f[f"labels/{k}"][:] for k in f["labels"]}
        step, level_seed = f["steps/step"][:], f["steps/level_seed"][:]
    # level seeds change exactly where an episode starts
    for e in range(ENVS):
        rows = env_col == e
        changed = np.flatnonzero(np.diff(level_seed[rows]) != 0) + 1
        assert set(changed) <= set(np.flatnonzero(step[rows] == 0))
    np.testing.assert_array_equal(labels["level_seed"], level_seed)
    np.testing.assert_array_equal(labels["step"], step)  # engine step counter agrees
    # vectorized steps: env indices increase within one
    starts = np.flatnonzero(np.r_[True, np.diff(env_col) <= 0])
    env = make_env("coinrun", num=ENVS, seed=0)
    for lo, hi in zip(starts, np.r_[starts[1:], len(env_col)]):
        active = env_col[lo:hi]
        _, o, _ = env.observe()
        now = env.labels()
        np.testing.assert_array_equal(o[active], obs[lo:hi])
        for k in ("agent_x", "agent_y", "agent_px", "goal_x", "level_seed", "goal_touched"):
            np.testing.assert_array_equal(now[k][active], labels[k][lo:hi], err_msg=k)
        a = np.full(ENVS, NOOP)
        a[active] = actions[lo:hi]
        env.act(a)
    env.close()


def test_resume_after_interrupt_equals_uninterrupted(full, agent, tmp_path, monkeypatch):
    from interp import record as rec_mod

    out = tmp_path / "resumed.h5"
    end_episode, seen = rec_mod._Loop._end_episode, []

    def stop_after_two(self, *args):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return end_episode(self, *args)

    monkeypatch.setattr(rec_mod._Loop, "_end_episode", stop_after_two)
    with pytest.raises(KeyboardInterrupt) as stopped:
        record(agent, out, episodes=EPISODES, num_envs=ENVS, device="cpu", buffer_mb=0.5)
    monkeypatch.undo()
    assert stopped.value.__notes__ == [f"{out} is marked incomplete; continue it with the same "
                                       "command plus --resume"]
    with h5py.File(out) as f:
        assert f.attrs["status"] == "incomplete"
        assert 0 < f.attrs["num_rows"] < len(h5py.File(full)["steps/obs"])
    with pytest.raises(activations.IncompleteRecordingError, match="--resume"):
        activations.open(out)
    with pytest.warns(UserWarning, match="incomplete"):
        activations.open(out, allow_incomplete=True).close()
    with pytest.raises(RecordError, match="incomplete; finish it with --resume"):
        record(agent, out, episodes=2, mode="append", device="cpu")
    record(agent, out, mode="resume", device="cpu")
    assert_same(read(out), read(full))  # same rows in the same order
    with pytest.raises(RecordError, match="already complete"):
        record(agent, out, mode="resume", device="cpu")


def test_append_equals_one_longer_run(full, agent, tmp_path):
    out = tmp_path / "appended.h5"
    record(agent, out, episodes=ENVS, num_envs=ENVS, device="cpu")
    with pytest.raises(RecordError, match="seed: file has 0, given 5"):
        record(agent, out, episodes=ENVS, mode="append", seed=5, device="cpu")
    record(agent, out, episodes=EPISODES - ENVS, mode="append", device="cpu")
    with h5py.File(out) as f:
        assert f.attrs["status"] == "complete" and f.attrs["num_episodes"] == EPISODES
        assert len(json.loads(f.attrs["commands"])) == 0  # library calls pass no command line
    assert_same(by_episode_step(read(out)), by_episode_step(read(full)))


def test_options_select_the_env_and_must_match_on_append(agent, tmp_path):
    out = tmp_path / "wall.h5"
    record(agent, out, env="coinrun-permeable-wall", options={"coin": "end"}, episodes=2,
           num_envs=2, device="cpu", layers=["fc_value"])
    with h5py.File(out) as f:
        assert json.loads(f.attrs["env_spec"])["options"] == {"coin": "end"}
    with pytest.raises(RecordError, match="options: file has {'coin': 'end'}, given"):
        record(agent, out, episodes=1, mode="append", options={"coin": "none"}, device="cpu")
    record(agent, out, episodes=1, mode="append", options={"coin": "end"}, device="cpu")


def test_write_failure_leaves_file_incomplete(agent, tmp_path, monkeypatch):
    from interp import record as rec_mod

    calls = []
    real = rec_mod._Writer._write

    def full_disk(self, batch):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real(self, batch)

    monkeypatch.setattr(rec_mod._Writer, "_write", full_disk)
    out = tmp_path / "full_disk.h5"
    with pytest.raises(RecordError, match="No space left.*incomplete.*--resume"):
        record(agent, out, episodes=2, num_envs=2, device="cpu", buffer_mb=0.5,
               layers=["fc_value"])
    with h5py.File(out) as f:
        assert f.attrs["status"] == "incomplete"


def test_bad_input(agent, tmp_path):
    out = tmp_path / "x.h5"
    with pytest.raises(UnknownLayerError, match="Valid names: .*embedder.block1.conv"):
        record(agent, out, episodes=1, layers=["embedder.nope"], device="cpu")
    with pytest.raises(EnvConfigError, match="unknown env variant"):
        record(agent, out, episodes=1, env="coinrum", device="cpu")
    other = make_agent(tmp_path / "sixteen.pt", num_actions=16)
    with pytest.raises(IncompatibleAgentError, match="16 actions.*15 actions"):
        record(other, out, episodes=1, device="cpu")
    assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="file is a file, not a folder"):
        record(agent, blocker / "x.h5", episodes=1, device="cpu")
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        record(agent, tmp_path, episodes=1, device="cpu")
    out.write_bytes(b"")
    with pytest.raises(RecordError, match="already exists.*--overwrite"):
        record(agent, out, episodes=1, device="cpu")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "interp"), "record", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_cli_end_to_end(agent, tmp_path):
    out = tmp_path / "cli.h5"
    r = _cli(str(agent), "--out", str(out), "--episodes", "2", "--num-envs", "2", "--float16",
             "--layers", "embedder.block2.*", "--layers", "fc_value", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "complete: 2 episodes" in r.stdout
    assert "record: 2/2 episodes (100%)" in r.stderr  # progress in a pipe, not only a terminal
    with h5py.File(out) as f:
        assert f.attrs["status"] == "complete"
        assert f["activations/embedder.block2.res1.resadd"].dtype == np.float16
        assert sorted(f["activations"]) == sorted(
            [f"embedder.block2.{n}" for n in ("conv", "maxpool", "res1.relu1", "res1.conv1",
             "res1.relu2", "res1.conv2", "res1.resadd", "res2.relu1", "res2.conv1",
             "res2.relu2", "res2.conv2", "res2.resadd")] + ["fc_value"])
        assert "--float16" in json.loads(f.attrs["commands"])[0]
    r = _cli(str(agent), "--out", str(out), "--episodes", "2")
    assert r.returncode == 2 and "already exists" in r.stderr


@pytest.mark.slow
def test_cli_unknown_layer(agent, tmp_path):
    r = _cli(str(agent), "--out", str(tmp_path / "y.h5"), "--episodes", "1",
             "--layers", "embedder.block2.res1.resad")
    assert r.returncode == 2
    assert "no layer matches 'embedder.block2.res1.resad'" in r.stderr
    assert "embedder.block2.res1.resadd" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "y.h5").exists()


@pytest.mark.parametrize("where", ["layer shapes", "header", "first step"])
def test_ctrl_c_at_any_point_leaves_no_stub(full, agent, tmp_path, monkeypatch, where):
    """Ctrl-C in the first seconds left an HDF5 stub without attributes that --resume refused.
    Now the file appears with its header and starting point, or not at all."""
    from interp import hooks
    from interp import record as rec_mod

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    target = {"layer shapes": (hooks, "layer_shapes"), "header": (rec_mod, "_now"),
              "first step": (rec_mod._Loop, "run")}[where]
    monkeypatch.setattr(*target, ctrl_c)
    out = tmp_path / "x.h5"
    with pytest.raises(KeyboardInterrupt) as stopped:
        record(agent, out, episodes=EPISODES, num_envs=ENVS, device="cpu")
    monkeypatch.undo()
    assert not (tmp_path / ".x.h5.partial").exists()
    if where == "first step":
        assert "marked incomplete; continue it with the same command plus --resume" in \
            stopped.value.__notes__[0]
        record(agent, out, mode="resume", device="cpu")
        assert_same(read(out), read(full))
    else:
        assert not out.exists()
        assert stopped.value.__notes__ == [f"nothing was written to {out}"]


def test_resume_of_an_empty_stub_says_to_overwrite(agent, tmp_path):
    out = tmp_path / "stub.h5"
    h5py.File(out, "w").close()  # what an interrupted run of an earlier version left
    with pytest.raises(RecordError, match="holds nothing .* start it again with --overwrite"):
        record(agent, out, mode="resume", device="cpu")
