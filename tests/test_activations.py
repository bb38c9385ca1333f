"""The `activations` reader: metadata, selections, batches, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from test_record import make_agent

import activations
from interp.record import record

LAYER = "embedder.block3.res2.resadd"


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reader")
    out = tmp / "rec.h5"
    record(make_agent(tmp / "agent.pt"), out, episodes=4, num_envs=2, device="cpu",
           layers=[LAYER, "fc_value"], float16=True)
    return out


@pytest.fixture
def rec(path):
    with activations.open(path) as r:
        yield r


def test_metadata(rec, path):
    assert rec.layers == {LAYER: (32, 8, 8), "fc_value": (1,)}
    assert "goal_visible" in rec.labels and "pixels" in rec.labels["goal_px"]
    with h5py.File(path) as f:
        assert rec.num_steps == len(f["steps/obs"])
    eps = rec.episodes
    assert eps["id"].tolist() == [0, 1, 2, 3] and eps["length"].sum() == rec.num_steps
    assert eps.dtype.names == ("id", "env", "index", "level_seed", "length", "return",
                               "level_complete")
    assert rec[LAYER].shape == (rec.num_steps, 32, 8, 8)  # lazy h5py dataset
    assert "4 episodes of coinrun" in repr(rec)
    assert rec.game == "coinrun"


def test_the_game_of_a_file_written_before_it_was_stored(path, tmp_path):
    old = tmp_path / "old.h5"
    old.write_bytes(path.read_bytes())
    with h5py.File(old, "r+") as f:
        del f.attrs["game"]
        f.attrs["env_spec"] = '{"variant": "maze-cheese-top-right"}'
    with activations.open(old) as r:
        assert r.game == "maze"


def test_select_matches_numpy_filtering(rec):
    ep, step = rec["steps/episode"][:], rec["steps/step"][:]
    visible, acts = rec["goal_visible"][:], rec[LAYER][:]
    sel = rec.select(episodes=[1, 3], steps=slice(2, 20, 3), where={"goal_visible": 1})
    want = np.flatnonzero(np.isin(ep, [1, 3]) & (step >= 2) & (step < 20) & ((step - 2) % 3 == 0)
                          & (visible == 1))
    assert len(sel) == len(want) > 0
    np.testing.assert_array_equal(sel.rows, want)
    np.testing.assert_array_equal(sel.activations(LAYER), acts[want])
    t = sel.activations(LAYER, as_="torch", dtype=np.float32)
    assert t.dtype == torch.float32 and t.shape == (len(want), 32, 8, 8)
    np.testing.assert_array_equal(sel.labels("goal_visible")["goal_visible"], visible[want])
    assert sel["step"].tolist() == step[want].tolist()  # bare names: steps before labels
    mask = step == 0
    np.testing.assert_array_equal(rec.select(where=mask).rows, np.flatnonzero(mask))
    np.testing.assert_array_equal(rec.select(episodes=0, where={"agent_x": lambda x: x > 2}).rows,
                                  np.flatnonzero((ep == 0) & (rec["agent_x"][:] > 2)))
    np.testing.assert_array_equal(sel.select(steps=[5]).rows, want[step[want] == 5])


def test_iter_batches_cover_everything_in_order(rec):
    batches = list(rec.iter_batches(LAYER, 64, labels=["agent_x"]))
    assert all(len(b.rows) == 64 for b in batches[:-1])
    np.testing.assert_array_equal(np.concatenate([b.rows for b in batches]),
                                  np.arange(rec.num_steps))
    np.testing.assert_array_equal(np.concatenate([b.activations for b in batches]), rec[LAYER][:])
    np.testing.assert_array_equal(np.concatenate([b.labels["agent_x"] for b in batches]),
                                  rec["agent_x"][:])
    sparse = rec.select(steps=0)
    (b,) = sparse.iter_batches("fc_value", 100, as_="torch")
    assert b.activations.shape == (4, 1) and b.labels == {}


def test_errors(rec, tmp_path):
    with pytest.raises(activations.RecordingError, match="recorded: embedder.block3"):
        rec.select().activations("embedder.block1.res1.resadd")
    with pytest.raises(activations.RecordingError, match="no label.*goal_visible"):
        rec.select().labels(["nope"])
    with pytest.raises(activations.RecordingError, match="labels: .*goal_visible"):
        rec["nope"]
    with pytest.raises(ValueError, match="boolean mask of shape"):
        rec.select(where=np.ones(3, bool))
    bad = tmp_path / "plain.h5"
    h5py.File(bad, "w").close()
    with pytest.raises(activations.RecordingError, match="not an interp recording"):
        activations.open(bad)
