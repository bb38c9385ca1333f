"""Causal tests: steering vectors, retargeting, resampling from matched levels, vector fields.

Hand-made agents with planted directions: ``RedPolicy`` goes right when red pixels are in view
(the planted feature: channel 0 of its ``relu`` layer); ``ScriptedPolicy`` finds the agent's
sprite in the frame and takes a fixed action per maze cell (its arrows are known)."""

import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cli import app
from interp import hooks
from interp.causal.fields import STEPS, decision, vector_fields
from interp.causal.spec import Patch, PatchSpec, SpecError
from interp.causal.steer import steer
from interp.causal.vectors import SteerError, object_vector, random_like
from interp.checkpoint import save_agent
from interp.envs import EnvSpec, make_env
from interp.envs.maze import SPACE, WALL, decision_square, place_agent
from interp.models import ImpalaAgent, ModelConfig
from interp.rollout import run_episodes

LEFT, DOWN, UP, RIGHT = 1, 3, 5, 7
# colour-shape levels on black: the red line is the only red, the mouse the only light-blue
RED_GOAL = EnvSpec("colour-shape", options={"goal": "red-line", "distractor": "yellow-gem",
                                            "background": "black"})


class FeedForward(nn.Module):
    """A hand-made feed-forward agent: ``step`` as :meth:`ImpalaAgent.step` (no memory)."""

    def step(self, x, hx=None):
        return (*self(x), None)


class RedPolicy(FeedForward):
    """Right when red is in view, else mostly left: logit(right) = k * mean red-detector."""

    def __init__(self, gain: float = 700.0):
        super().__init__()
        self.config = ModelConfig()
        self.detector = nn.Conv2d(3, 4, 1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc_policy = nn.Linear(4, 15)
        self.fc_value = nn.Linear(4, 1)
        with torch.no_grad():
            w = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [0.3, 0.3, 0.3]])
            self.detector.weight.copy_(w[:, :, None, None])
            self.detector.bias.copy_(torch.tensor([-0.5, -0.5, -0.5, -0.1]))
            self.fc_policy.weight.zero_()
            self.fc_policy.weight[RIGHT, 0] = gain
            self.fc_policy.bias.fill_(-10.0)
            self.fc_policy.bias[LEFT], self.fc_policy.bias[RIGHT] = 2.0, 0.0

    def forward(self, x):
        h = self.flatten(self.pool(self.relu(self.detector(x))))
        return self.fc_policy(h), self.fc_value(h).squeeze(-1)


class ScriptedPolicy(FeedForward):
    """Locates the mouse (the only pixels with blue > 0.5 on a black background) and takes the
    action ``table[y, x]`` of its cell in a world-filling 5x5 maze."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.config = ModelConfig()
        self.register_buffer("table", table)
        self.fc_policy = nn.Linear(15, 15)
        with torch.no_grad():
            self.fc_policy.weight.copy_(torch.eye(15))
            self.fc_policy.bias.zero_()

    def forward(self, x):
        mask = (x[:, 2] > 0.5).float()
        pos = torch.arange(64.0) + 0.5
        total = mask.sum((1, 2))
        cx, cy = (mask.sum(1) * pos).sum(1) / total, (mask.sum(2) * pos).sum(1) / total
        col = (cx / 12.8).long().clamp(0, 4)
        row = 4 - (cy / 12.8).long().clamp(0, 4)
        logits = 20.0 * nn.functional.one_hot(self.table[row, col], 15).float()
        return self.fc_policy(logits), torch.zeros(len(x))


# -- hooks and geometry ------------------------------------------------------------------------
def test_clamp_sets_channels_at_positions_per_row():
    out = torch.zeros(2, 3, 4, 4)
    at = torch.zeros(2, 4, 4, dtype=torch.bool)
    at[0, 1, 2] = at[1, 3, 0] = True
    new = hooks.clamp(torch.tensor([5.0, 7.0]), [1], at)(out, "x")
    assert new.sum() == 12 and new[0, 1, 1, 2] == 5 and new[1, 1, 3, 0] == 7
    assert hooks.clamp(2.0, [0], (0, 0))(out, "x")[:, 0, 0, 0].tolist() == [2, 2]
    with pytest.raises(IndexError, match="outside"):
        hooks.clamp(1.0, [0], (4, 0))(out, "x")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        hooks.clamp(1.0, [0])(torch.zeros(2, 3), "fc")


def _maze_state(rows: list[str]):
    """A stock maze state whose grid is ``rows`` (top row first; '#' wall, '.' free, 'A' the
    agent, 'C' cheese)."""
    with make_env("maze", num=1, seed=0) as env:
        state = env.get_state(0)
    h, w = len(rows), len(rows[0])
    grid = np.full(state.grid.shape, WALL, dtype=np.int32)
    for i, line in enumerate(rows):
        for x, ch in enumerate(line):
            grid[h - 1 - i, x] = {"#": WALL, "C": 2}.get(ch, SPACE)
    state.grid = grid
    y, x = next((h - 1 - i, line.index("A")) for i, line in enumerate(rows) if "A" in line)
    return place_agent(state, (x, y))


def test_decision_square_is_where_the_ways_part():
    state = _maze_state(["...#",
                         ".#.#",
                         "A...",
                         "####"])
    # from A (0, 1): to (3, 1) go right; to (2, 3) go right to (2, 1) then up
    assert decision_square(state, (3, 1), (2, 3)) == (2, 1)
    assert decision_square(state, (2, 1), (3, 1)) is None  # (2, 1) is on the way to (3, 1)
    assert decision_square(state, (0, 3), (3, 1)) == (0, 1)  # part at the start


def test_place_agent_refuses_walls():
    state = _maze_state(["A.", "##"])
    with pytest.raises(Exception, match="wall"):
        place_agent(state, (0, 0))


def test_vector_field_of_a_scripted_policy_equals_its_arrows():
    rng = np.random.default_rng(0)
    table = torch.as_tensor(rng.choice([LEFT, RIGHT, UP, DOWN], size=(5, 5)))
    spec = EnvSpec("colour-shape", options={"goal": "red-line", "background": "black",
                                            "maze_size": 5})
    fields = vector_fields(ScriptedPolicy(table), spec, levels=2, seed=3)
    for f in fields:
        assert len(f.cells) >= 10
        expected = STEPS[table.numpy()[f.cells[:, 1], f.cells[:, 0]]]
        np.testing.assert_allclose(f.arrows(), expected, atol=1e-6)
        assert f.patched is None


# -- steering with a planted direction ---------------------------------------------------------
@pytest.fixture(scope="module")
def red_steer():
    model = RedPolicy().eval()
    vector, source = object_vector(model, RED_GOAL, "relu", "goal", levels=6, seed=1)
    res = steer(model, RED_GOAL, "relu", vector, (-1.0, 1.0), episodes=4, num_envs=2,
                max_steps=15, frames=24)
    return vector, source, res


def test_paired_vector_lies_on_the_planted_feature(red_steer):
    vector, source, _ = red_steer
    per_channel = (vector ** 2).sum((1, 2))
    assert per_channel.argmax() == 0 and per_channel[0] > 0.7 * per_channel.sum()
    assert (vector[0] >= 0).all() and source["levels"] == 6 and source["object"] == "goal"


def test_vector_moves_the_planted_policy_and_the_random_control_does_not(red_steer):
    _, _, res = red_steer
    p_right = res.frame_probs[..., RIGHT].mean(1)  # per condition, over the baseline's frames
    names = [c.name for c in res.conditions]
    base = p_right[names.index("baseline")]
    assert base > 0.75  # the goal is in view: the policy goes right
    assert p_right[names.index("steer -1")] < base - 0.5  # subtracting the goal: goes left
    assert p_right[names.index("steer +1")] > base  # adding it: more right
    for c in ("random -1", "random +1"):
        assert abs(p_right[names.index(c)] - base) < 0.05
    kl = res.kl().mean(1)
    assert kl[names.index("steer -1")] > 20 * kl[names.index("random -1")]
    rows = {r["condition"]: r for r in res.table()}
    assert rows["baseline"]["goal_n"] >= 2 and "distractor_first" in rows["baseline"]
    assert "p_goal_decision" in rows["baseline"]


@pytest.mark.parametrize("gru_hidden", [0, 8], ids=["feed-forward", "recurrent"])
def test_batched_sweep_equals_a_loop_of_patched_runs(gru_hidden):
    torch.manual_seed(0)
    model = ImpalaAgent(ModelConfig(gru_hidden=gru_hidden)).eval()
    torch.nn.init.orthogonal_(model.fc_policy.weight, 1.0)
    layer, run = "embedder.block2.res1.resadd", dict(episodes=6, num_envs=2, max_steps=150)
    env = EnvSpec("maze-cheese-top-right", options={"max_maze_size": 3})  # episodes end
    vector = np.random.default_rng(0).standard_normal((32, 16, 16)).astype(np.float32)
    res = steer(model, env, layer, vector, (-2.0, 3.0), frames=0, batch=2, **run)
    control = random_like(vector, 0)
    assert np.isclose(np.linalg.norm(control), np.linalg.norm(vector), rtol=1e-5)
    changed = False
    for g, c in enumerate(res.conditions):
        v = {"baseline": 0 * vector, "steer": vector, "random": control}[c.kind]
        with hooks.patch(model, {layer: hooks.add(torch.as_tensor(v), scale=c.coefficient)}):
            one = run_episodes(model, env, **run)
        k_run = one.valid.shape[2]  # the batched arrays are padded to the longest run
        assert not res.episodes.valid[g, :, k_run:].any()
        for k, m in one.metrics.items():
            np.testing.assert_array_equal(m[0], res.episodes.metrics[k][g, :, :k_run])
        changed |= not np.array_equal(one.metrics["length"],
                                      res.episodes.metrics["length"][:1, :, :k_run])
    assert changed, "no condition changed behaviour: the test would prove nothing"


def test_bad_steering_inputs():
    model = RedPolicy()
    with pytest.raises(SteerError, match="distinct non-zero"):
        steer(model, RED_GOAL, "relu", np.ones((4, 64, 64), np.float32), (0.0,))
    with pytest.raises(SteerError, match="shape"):
        steer(model, RED_GOAL, "relu", np.ones((3, 64, 64), np.float32))
    with pytest.raises(SteerError, match="no distractor"):
        object_vector(model, "maze", "relu", "distractor")
    with pytest.raises(SteerError, match="object must be"):
        object_vector(model, "maze", "relu", "coin")


# -- specs ---------------------------------------------------------------------------------------
def test_patch_spec_round_trip_and_checks(tmp_path):
    model = ImpalaAgent().eval()
    v = np.random.default_rng(1).standard_normal((32, 16, 16)).astype(np.float32)
    spec = PatchSpec([Patch("embedder.block2.res1.resadd", "add", vector=v, coefficient=-1.5),
                      Patch("embedder.block2.res1.resadd", "clamp", (3, 5), value=4.0,
                            at=((2, 7),)),
                      Patch("embedder.block3.conv", "zero", (0,))], {"method": "test"})
    path = spec.save(tmp_path / "p.json")
    assert json.loads(path.read_text())["patches"][0]["vector"] == "p.0.npy"
    back = PatchSpec.load(path)
    np.testing.assert_array_equal(back.patches[0].vector, v)
    assert back.patches[1:] == spec.patches[1:] and back.source == {"method": "test"}
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad(), back.apply(model):
        _, cache = hooks.run_with_cache(model, x, ["embedder.block2.res1.resadd",
                                                   "embedder.block3.conv"])
    assert (cache["embedder.block2.res1.resadd"][:, [3, 5], 2, 7] == 4).all()
    assert (cache["embedder.block3.conv"][:, 0] == 0).all()
    (tmp_path / "p.0.npy").write_bytes((tmp_path / "p.0.npy").read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(SpecError, match="sha256"):
        PatchSpec.load(path)
    bad = PatchSpec([Patch("embedder.block1.conv", "zero", (99,))])
    with pytest.raises(SpecError, match="channels"):
        bad.check(model)
    with pytest.raises(SpecError, match="cannot read patch spec"):
        PatchSpec.load(tmp_path / "p.0.npy")
    (tmp_path / "q.json").write_text('{"format": "interp-steer"}')
    with pytest.raises(SpecError, match="not an interp-patch"):
        PatchSpec.load(tmp_path / "q.json")


# -- probe directions --------------------------------------------------------------------------
PLANTED = "embedder.block2.res2.resadd"


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    from probes import Feature, run_probe
    from probes.synthetic import planted_recording

    rec = planted_recording(levels=30, steps=20, shapes={PLANTED: (32, 16, 16)},
                            channels=(3, 7), position=(6, 11), signal=3.0, seed=1)
    res = run_probe(rec, Feature("target", "planted", "classification", "target"),
                    max_dim=512, n_boot=50, umap=False, spatial=False,
                    controls=("shuffled",))
    out = tmp_path_factory.mktemp("probe")
    res.save(out)
    return out


def test_probe_direction_raises_the_probe_by_one_on_the_planted_channels(probe_dir):
    from probes.views import View
    from interp.causal.vectors import probe_vector

    v, source = probe_vector(probe_dir, PLANTED, (32, 16, 16))
    with np.load(probe_dir / "weights.npz") as f:
        meta = json.loads(str(f["meta"]))
        w = f[meta["layers"][PLANTED]["key"]][:, 0]
    lay = meta["layers"][PLANTED]
    view = View(tuple(lay["shape"]), lay["pool"], lay["max_dim"], lay["grid"])
    x = np.random.default_rng(0).standard_normal((3, 32, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(view(x + v) @ w - view(x) @ w, 1.0, rtol=1e-3)
    per_channel = (v ** 2).sum((1, 2))
    assert set(np.argsort(-per_channel)[:2]) == {3, 7}
    assert source["method"] == "probe" and source["feature"] == "target"
    with pytest.raises(SteerError, match="not fitted on"):
        probe_vector(probe_dir, "embedder.block3.conv", (32, 8, 8))
    with pytest.raises(SteerError, match="not found"):
        probe_vector(probe_dir / "nothing", PLANTED, (32, 16, 16))


# -- commands end to end -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    m = ImpalaAgent().eval()
    torch.nn.init.orthogonal_(m.fc_policy.weight, 1.0)
    return save_agent(tmp_path_factory.mktemp("agent") / "agent.pt", m,
                      env_spec={"variant": "maze-cheese-region", "distribution_mode": "easy",
                                "num_levels": 0, "start_level": 0,
                                "options": {"region_size": 15, "max_maze_size": 7}},
                      seed=0, steps=0)


def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


TINY = ["--episodes", 2, "--num-envs", 2, "--max-steps", 12]


def test_cli_steer_rerun_and_vector_field(ckpt, tmp_path):
    out = tmp_path / "steer"
    res = invoke("steer", ckpt, "--out", out, "--layer", "embedder.block2.res1.resadd",
                 "--object", "goal", "--pairs", 3, "--coef", -2, "--coef", 1, "--frames", 8,
                 *TINY)
    assert res.exit_code == 0, res.output
    assert "random -2" in res.output and "P(goal | decision square)" in res.output
    for name in ("steer.json", "patch.json", "patch.0.npy", "steer.png", "vector.png"):
        assert (out / name).stat().st_size > 100, name
    assert json.loads((out / "steer.json").read_text())["settings"]["coefficients"] == [-2, 1]
    again = invoke("rerun", out / "steer.json", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "steer.csv").read_text() == (out / "steer.csv").read_text()
    assert (tmp_path / "again" / "patch.0.npy").read_bytes() == (out / "patch.0.npy").read_bytes()
    field = invoke("vector-field", ckpt, "--out", tmp_path / "vf", "--levels", 2, "--patch",
                   out / "patch.json", "--coefficient", -1)
    assert field.exit_code == 0, field.output
    rows = list(csv_rows(tmp_path / "vf" / "vector-field.csv"))
    assert rows and all(r["patched_dx"] != "nan" for r in rows)
    assert (tmp_path / "vf" / "vector-field.png").stat().st_size > 5000


def csv_rows(path):
    import csv

    with open(path) as f:
        yield from csv.DictReader(f)


def test_cli_steer_from_probe(ckpt, probe_dir, tmp_path):
    res = invoke("steer", ckpt, "--out", tmp_path / "s", "--layer", PLANTED, "--from-probe",
                 probe_dir, "--frames", 4, *TINY)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s" / "patch.json").read_text())["source"]["method"] == "probe"


def test_cli_retarget_and_resample(ckpt, probe_dir, tmp_path):
    res = invoke("retarget", ckpt, "--out", tmp_path / "r", "--layer",
                 "embedder.block2.res1.resadd", "--channels", "3,5", "--target", "4,4",
                 "--target", "8,8", "--value", 5, *TINY)
    assert res.exit_code == 0, res.output
    rows = list(csv_rows(tmp_path / "r" / "retarget.csv"))
    assert [(r["x"], r["y"]) for r in rows] == [("4", "4"), ("8", "8")]
    assert (tmp_path / "r" / "retarget.png").stat().st_size > 5000
    res = invoke("resample", ckpt, "--out", tmp_path / "m", "--layer", PLANTED, "--from-probe",
                 probe_dir, "--top", 2, "--frames", 96, "--num-envs", 48, "--every", 2,
                 "--random-sets", 2)
    assert res.exit_code == 0, res.output
    assert "chosen, matched" in res.output
    assert json.loads((tmp_path / "m" / "resample.json").read_text())["settings"][
        "channels"] == [3, 7]


@pytest.mark.parametrize("args, message", [
    (["steer", "--layer", "embedder.block2.res1.resadd", "--object", "goal", "--coef", "0"],
     "non-zero"),
    (["steer", "--layer", "embedder.blok2", "--object", "goal"], "Did you mean"),
    (["steer", "--layer", "relu", "--object", "goal", "--from-probe", "x"], "exactly one"),
    (["steer", "--layer", "embedder.block2.res1.resadd", "--object", "coin"], "object must"),
    (["steer", "--layer", "embedder.block2.res1.resadd", "--patch", "nope.json"], "cannot read"),
    (["retarget", "--layer", "embedder.block2.res1.resadd", "--channels", "99"], "0-31"),
    (["retarget", "--layer", "embedder.block2.res1.resadd", "--channels", "a"], "integers"),
    (["retarget", "--layer", "fc_policy", "--channels", "1"], "spatial"),
    (["resample", "--layer", "embedder.block2.res1.resadd"], "--channels"),
    (["resample", "--layer", "embedder.block2.res1.resadd", "--channels", "1", "--match",
      "cheese"], "choose --match"),
    (["vector-field", "--env", "coinrun"], "maze"),
    (["vector-field", "--coefficient", "-1"], "give --patch"),
])
def test_cli_errors(ckpt, tmp_path, args, message):
    res = invoke(args[0], ckpt, "--out", tmp_path / "o", *args[1:], "--max-steps" if
                 args[0] in ("steer", "retarget") else "--seed", 5)
    assert res.exit_code == 2 and message in res.output, res.output


def test_cli_refuses_to_overwrite_and_bad_specs(ckpt, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "steer.md").write_text("earlier")
    res = invoke("steer", ckpt, "--out", tmp_path / "o", "--layer", "relu", "--object", "goal")
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = invoke("rerun", tmp_path / "o" / "steer.md", "--out", tmp_path / "p")
    assert res.exit_code == 2 and "cannot read" in res.output
