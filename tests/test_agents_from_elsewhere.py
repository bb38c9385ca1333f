"""Agents trained elsewhere: every published save layout loads (through the CLI), recurrent
agents match a hand-written GRU step and carry/reset their memory per env, `interp agents
import` round trip, and the errors that name the fix."""

import json
import re

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from cli import app
from interp.checkpoint import CheckpointError, load_agent
from interp.hooks import hook_names, patch, run_with_cache, zero
from interp.models import preprocess
from interp.record import record
from interp.rollout import PolicyRunner, run_episodes

X = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))


# -- agents as train-procgen-pytorch / procgen-tools build them (random weights) --------------
def _module(**children) -> nn.Module:
    m = nn.Module()
    for name, child in children.items():
        m.add_module(name, child)
    return m


def reference_policy(width: int = 1, actions: int = 15, gru_hidden: int = 0,
                     named_ops: bool = False, seed: int = 0) -> nn.Module:
    """A module with train-procgen-pytorch's parameter layout: ``CategoricalPolicy(
    ImpalaModel)`` (``named_ops``: procgen-tools' ``InterpretableImpalaModel``, whose ReLUs,
    pools, residual adds and flatten are modules without parameters), recurrent with
    ``gru_hidden`` (``self.gru = GRU(...)`` holding ``nn.GRU`` as ``gru.gru``). Biased to run
    right, so CoinRun episodes are short."""
    torch.manual_seed(seed)
    chans = [3, 16 * width, 32 * width, 32 * width]
    ops = (lambda **kw: kw) if not named_ops else (lambda **kw: {
        **kw, "relu1": nn.ReLU(), "relu2": nn.ReLU(), "resadd": nn.Identity()})

    def res(c):
        return _module(**ops(conv1=nn.Conv2d(c, c, 3, padding=1),
                             conv2=nn.Conv2d(c, c, 3, padding=1)))

    blocks = {f"block{i}": _module(conv=nn.Conv2d(chans[i - 1], chans[i], 3, padding=1),
                                   **({"maxpool": nn.MaxPool2d(3, 2, 1)} if named_ops else {}),
                                   res1=res(chans[i]), res2=res(chans[i])) for i in (1, 2, 3)}
    extra = {"relu3": nn.ReLU(), "flatten": nn.Flatten(), "relufc": nn.ReLU()} \
        if named_ops else {}
    embedder = _module(**blocks, **extra, fc=nn.Linear(chans[3] * 64, 256))
    heads_in = gru_hidden or 256
    policy = _module(embedder=embedder,
                     **({"gru": _module(gru=nn.GRU(256, gru_hidden))} if gru_hidden else {}),
                     fc_policy=nn.Linear(heads_in, actions), fc_value=nn.Linear(heads_in, 1))
    for p in embedder.parameters():  # non-trivial weights so every layer matters
        nn.init.normal_(p, std=0.05)
    with torch.no_grad():
        policy.fc_policy.bias[min(8, actions - 1)] = 3.0  # RIGHT+UP
        policy.fc_policy.bias[min(7, actions - 1)] = 2.0  # RIGHT
    return policy


def reference_step(sd: dict, x: torch.Tensor, hx: torch.Tensor | None = None,
                   mask: torch.Tensor | None = None):
    """train-procgen-pytorch's ``CategoricalPolicy.forward(x, hx, masks)`` with functional ops:
    the IMPALA embedder, then (recurrent) its ``GRU.forward`` on one step, ``hx * masks``
    written out as torch's GRU equations. Returns logits, value, new hx."""
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
    if "gru.gru.weight_ih_l0" in sd:
        prev = hx * mask[:, None]  # masks = 1 - done: zero where an episode starts
        gi = F.linear(h, sd["gru.gru.weight_ih_l0"], sd["gru.gru.bias_ih_l0"]).chunk(3, 1)
        gh = F.linear(prev, sd["gru.gru.weight_hh_l0"], sd["gru.gru.bias_hh_l0"]).chunk(3, 1)
        r, z = torch.sigmoid(gi[0] + gh[0]), torch.sigmoid(gi[1] + gh[1])
        n = torch.tanh(gi[2] + r * gh[2])
        h = (1 - z) * n + z * prev
    return (F.linear(h, sd["fc_policy.weight"], sd["fc_policy.bias"]),
            F.linear(h, sd["fc_value.weight"], sd["fc_value.bias"]).squeeze(-1), h)


LAYOUTS = {
    "state_dict": lambda sd, opt: {"state_dict": sd},  # train-procgen-pytorch agents/ppo.py
    "model_state_dict": lambda sd, opt: {"model_state_dict": sd, "optimizer_state_dict": opt},
    "bare": lambda sd, opt: sd,
    "module.": lambda sd, opt: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
}


def save_foreign(path, layout: str = "state_dict", **kwargs):
    ref = reference_policy(**kwargs)
    opt = torch.optim.Adam(ref.parameters()).state_dict()
    torch.save(LAYOUTS[layout](ref.state_dict(), opt), path)
    return path, ref.state_dict()


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output
    return res


def eval_args(path, *extra):
    return ["eval", path, "--env", "coinrun", "--distribution-mode", "easy", "--episodes", "2",
            "--num-envs", "2", "--device", "cpu", *extra]


# -- every layout, through the CLI ------------------------------------------------------------
@pytest.mark.parametrize("layout, kwargs", [
    ("state_dict", {}), ("model_state_dict", {}), ("bare", {}), ("module.", {}),
    ("model_state_dict", {"named_ops": True}),  # procgen-tools InterpretableImpalaModel
    ("state_dict", {"actions": 9}),  # movement-only action set
    ("state_dict", {"gru_hidden": 64}),  # recurrent (a published agent used 64)
], ids=["state_dict", "model_state_dict", "bare", "module-prefix", "procgen-tools", "9-actions",
        "recurrent"])
def test_layout_loads_as_published(tmp_path, layout, kwargs):
    path, sd = save_foreign(tmp_path / "model_25000000.pth", layout, **kwargs)
    info = cli("agents", "info", path)
    assert info.exit_code == 0, info.output
    assert re.search(r"format\s+train-procgen-pytorch, layout", info.output)
    assert re.search(r"steps\s+25,000,000 \(inferred from the file name\)", info.output)
    assert re.search(r"env spec\s+missing", info.output) and "interp agents import" in info.output
    gru = kwargs.get("gru_hidden")
    assert re.search(rf"recurrent\s+{f'yes, GRU with hidden size {gru}' if gru else 'no'}",
                     info.output)
    actions = kwargs.get("actions", 15)
    assert re.search(rf"actions\s+{actions}\b", info.output)

    agent = load_agent(path)
    hx = torch.rand(len(X), gru) if gru else None
    with torch.no_grad():
        ours = agent.model.step(X, hx)
        theirs = reference_step(sd, X, hx, torch.ones(len(X)))
    for a, b in zip(ours, theirs[:2] + (theirs[2] if gru else None,)):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

    res = cli(*eval_args(path, "--json", tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    assert "unrestricted level seeds" in res.output and "training levels are unknown" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["n"] == 2


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_width_scales_load(tmp_path, width):
    path, sd = save_foreign(tmp_path / "agent.pth", "model_state_dict", width=width,
                            named_ops=True)
    agent = load_agent(path)
    assert agent.model.config.width == width and agent.model.config.channels[0] == 16 * width
    with torch.no_grad():
        for a, b in zip(agent.model(X[:1]), reference_step(sd, X[:1])[:2]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if width == 4:  # procgen-tools' maze agents: 64/128/128 channels, ~3.5M parameters
        assert agent.model.config.channels == (64, 128, 128)
        assert agent.model.num_params() == 3_653_136


def test_fewer_actions_play_the_first_procgen_actions(tmp_path):
    path, _ = save_foreign(tmp_path / "a.pth", actions=9)
    ep = run_episodes(load_agent(path).model, "coinrun", episodes=2, num_envs=2,
                      keep_frames=500, max_steps=60)
    assert ep.frames.actions.max() < 9


# -- recurrent agents ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recurrent(tmp_path_factory):
    path, sd = save_foreign(tmp_path_factory.mktemp("rec") / "model_1000.pth", gru_hidden=64)
    return path, sd, load_agent(path).model


def test_recurrent_forward_equals_hand_written_gru_step(recurrent):
    """A 3-env rollout of 8 steps with episode starts at different steps: PolicyRunner (carry,
    reset at `first`) against train-procgen-pytorch's step with masks = 1 - done."""
    _, sd, model = recurrent
    frames = torch.rand(8, 3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    first = np.zeros((8, 3), bool)
    first[0], first[3, 0], first[5, 1], first[6, 0] = True, True, True, True
    runner, hx = PolicyRunner(model, 3), torch.zeros(3, 64)
    worst = 0.0
    with torch.no_grad():
        for t in range(8):
            runner.reset(first[t])
            logits, value = runner(frames[t])
            ref_logits, ref_value, hx = reference_step(sd, frames[t], hx,
                                                       torch.as_tensor(1.0 - first[t]).float())
            for a, b in ((logits, ref_logits), (value, ref_value), (runner.state(), hx)):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
                worst = max(worst, float((a - b).abs().max()))
        # the memory matters: the same frame with a zero state gives other outputs
        assert not torch.allclose(model(frames[7])[0], logits, atol=1e-4)
    assert worst < 1e-5


def test_gru_is_hookable_patchable_recordable(recurrent):
    _, _, model = recurrent
    assert ["gru.state_in", "gru.gru"] == [n for n in hook_names(model) if n.startswith("gru")]
    hx = torch.rand(len(X), 64)
    with torch.no_grad():
        logits, value, new = model.step(X, hx)
        _, cache = run_with_cache(model, X, "gru.*", hx=hx)
        assert torch.equal(cache["gru.state_in"], hx) and torch.equal(cache["gru.gru"], new)
        with patch(model, {"gru.state_in": zero()}):  # memory ablated: as at an episode start
            torch.testing.assert_close(model(X, hx)[0], model(X)[0])
        with patch(model, {"gru.gru": zero(channels=[0, 1])}):
            _, _, patched = model.step(X, hx)
        assert (patched[:, :2] == 0).all() and torch.equal(patched[:, 2:], new[:, 2:])


def test_vectorized_rollout_carries_and_resets_memory_per_env(recurrent):
    """Two groups x 3 envs: every row's hidden state is zero exactly where its episode starts
    and equals a replay of that env's own frames alone; values match that replay."""
    _, _, model = recurrent
    steps = []
    run_episodes(model, "coinrun", groups=2, episodes=6, num_envs=3, max_steps=150,
                 on_step=steps.append, progress=None)
    starts = 0
    with torch.no_grad():
        for row in range(6):
            h = torch.zeros(1, 64)
            for s in steps:
                (j,) = np.flatnonzero(s.rows == row) if row in s.rows else (None,)
                if j is None:
                    continue
                if s.step[j] == 0:
                    h, starts = torch.zeros(1, 64), starts + 1
                    assert not s.hx[j].any()
                torch.testing.assert_close(s.hx[j:j + 1], h, rtol=1e-5, atol=1e-5)
                _, value, h = model.step(preprocess(s.obs[j:j + 1]), h)
                assert value.item() == pytest.approx(s.value[j], abs=1e-4)
    assert starts > 6  # some env began a second episode mid-rollout


def test_recurrent_record_resume_and_activations(recurrent, tmp_path, monkeypatch):
    from interp import record as rec_mod

    path, _, model = recurrent
    kw = dict(env="coinrun", distribution_mode="easy", episodes=4, num_envs=2, device="cpu")
    record(path, tmp_path / "full.h5", **kw)

    def stop_at_the_first_episode_end(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(rec_mod._Loop, "_end_episode", stop_at_the_first_episode_end)
    with pytest.raises(KeyboardInterrupt):
        record(path, tmp_path / "cut.h5", buffer_mb=0.05, **kw)
    monkeypatch.undo()
    record(path, tmp_path / "cut.h5", mode="resume", device="cpu")
    with h5py.File(tmp_path / "full.h5") as a, h5py.File(tmp_path / "cut.h5") as b:
        assert "gru.gru" in json.loads(a.attrs["layers"])  # recorded by default
        for name in ("steps/obs", "steps/action", "activations/gru.gru"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
        env, step, obs, gru = (a[k][:] for k in ("steps/env", "steps/step", "steps/obs",
                                                 "activations/gru.gru"))
    with torch.no_grad():  # replay env 0's frames alone: the recorded memory is its own
        h = torch.zeros(1, 64)
        for i in np.flatnonzero(env == 0):
            h = torch.zeros(1, 64) if step[i] == 0 else h
            h = model.step(preprocess(obs[i:i + 1]), h)[2]
            np.testing.assert_allclose(gru[i], h[0].numpy(), atol=1e-5)


def test_recurrent_agent_in_every_command(recurrent, tmp_path):
    path, _, _ = recurrent
    agent = tmp_path / "agent.pt"
    assert cli("agents", "import", path, "--env", "coinrun-random-coin", "--distribution-mode",
               "easy", "--out", agent).exit_code == 0
    res = cli("ablate", agent, "--env", "coinrun", "--layer", "gru.gru", "--channels", "0,1,2",
              "--mode", "mean", "--episodes", "2", "--num-envs", "2", "--max-steps", "40",
              "--frames", "8", "--device", "cpu")
    assert res.exit_code == 0 and "ch 0+1+2" in res.output, res.output
    res = cli("attribute", agent, "--env", "coinrun-random-coin", "--method", "gradient",
              "--frames", "4", "--grid", "2", "--device", "cpu", "--out", tmp_path / "attr")
    assert res.exit_code == 0, res.output
    rec = tmp_path / "r.h5"
    assert cli("record", agent, "--episodes", "4", "--num-envs", "2", "--device", "cpu",
               "--out", rec).exit_code == 0
    res = cli("probe", rec, "--feature", "agent_x", "--layers", "gru.gru", "--folds", "3",
              "--n-boot", "20", "--no-umap", "--random-agent-rows", "100000",
              "--out", tmp_path / "probe")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "probe" / "run.json").read_text())["rows_per_probe"][
        "random_agent"] > 0
    assert "random_agent" in (tmp_path / "probe" / "results.csv").read_text()
    res = cli("experiment", "value-vs-stage", agent, "--episodes", "2", "--device", "cpu",
              "--out", tmp_path / "vs")
    assert res.exit_code == 0, res.output


# -- import round trip ------------------------------------------------------------------------
def test_import_info_eval_round_trip(tmp_path):
    path, sd = save_foreign(tmp_path / "model_25001984.pth", "module.")
    out = tmp_path / "coinrun-200.pt"
    res = cli("agents", "import", path, "--env", "coinrun", "--distribution-mode", "easy",
              "--num-levels", "200", "--source", "https://example.org/agents", "--out", out)
    assert res.exit_code == 0, res.output
    agent = load_agent(out)
    m = agent.manifest
    assert agent.source_format == "interp" and m["steps"] == 25_001_984
    assert m["env_spec"] == {"variant": "coinrun", "distribution_mode": "easy",
                             "num_levels": 200, "start_level": 0, "options": {}}
    origin = m["extra"]["imported_from"]
    import hashlib
    assert origin["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert origin["file"] == "model_25001984.pth" and "module." in origin["layout"]
    assert origin["source"] == "https://example.org/agents"
    for k, v in agent.model.state_dict().items():
        assert torch.equal(v, sd[k])

    info = cli("agents", "info", out).output
    assert re.search(r"imported from\s+model_25001984.pth \(sha256 [0-9a-f]{64}", info)
    assert re.search(r"env spec\s+variant=coinrun", info) and "missing" not in info

    res = cli("eval", out, "--env", "coinrun", "--episodes", "2", "--num-envs", "2",
              "--training-levels", "--device", "cpu")  # mode from the import
    assert res.exit_code == 0, res.output
    assert "(easy)" in res.output and "level seeds 0-199 (200 levels): the agent's training " \
        "levels" in res.output
    res = cli("eval", out, "--env", "coinrun", "--episodes", "2", "--num-envs", "2",
              "--num-levels", "100", "--start-level", "1000", "--device", "cpu")
    assert "level seeds 1000-1099 (100 levels): unseen, the agent trained on seeds 0-199" \
        in res.output
    res = cli("eval", out, "--env", "coinrun", "--episodes", "2", "--num-envs", "2",
              "--device", "cpu")
    assert "practically all unseen, the agent trained on seeds 0-199" in res.output
    res = cli("record", out, "--episodes", "2", "--num-envs", "2", "--training-levels",
              "--layers", "fc_value", "--device", "cpu", "--out", tmp_path / "r.h5")
    assert res.exit_code == 0 and "the agent's training levels" in res.output, res.output
    with h5py.File(tmp_path / "r.h5") as f:
        spec = json.loads(f.attrs["env_spec"])
        assert (spec["num_levels"], spec["start_level"]) == (200, 0)
        assert set(f["labels/level_seed"][:]) <= set(range(200))


# -- errors that name the fix -----------------------------------------------------------------
def test_non_impala_networks_are_refused_with_what_was_found(tmp_path):
    sd = reference_policy().state_dict()
    two_stream = {**sd, **{k.replace("embedder.block", "embedder.target_block"): v
                           for k, v in sd.items() if k.startswith("embedder.block")}}
    nature = {"embedder.layers.0.weight": torch.zeros(32, 3, 8, 8),
              "embedder.layers.7.weight": torch.zeros(512, 3136),
              "fc_policy.weight": torch.zeros(15, 512), "fc_value.weight": torch.zeros(1, 512)}
    embedder_only = {k[len("embedder."):]: v for k, v in sd.items() if k.startswith("embedder.")}
    deep_gru = {**reference_policy(gru_hidden=8).state_dict(),
                "gru.gru.weight_ih_l1": torch.zeros(24, 8)}
    cases = {
        "two-stream": (two_stream, r"not an IMPALA agent this tool can run: unexpected "
                                   r"embedder\.target_block\* \(30 tensors.*reads as: IMPALA "
                                   r"embedder of width 1"),
        "nature": (nature, r"not an IMPALA agent: no embedder\.block1\.conv\.weight, "
                           r"embedder\.fc\.weight; it holds embedder\.layers \(2 tensors"),
        "embedder": (embedder_only, "an embedder's own state dict"),
        "2-layer GRU": (deep_gru, r"unexpected gru\.gru \(1 tensor, e\.g\. "
                                  r"gru\.gru\.weight_ih_l1\).*GRU of hidden size 8"),
        "wrapper": ({"weights": sd}, r"unrecognised checkpoint with top-level keys \['weights'\]"),
    }
    for name, (obj, pattern) in cases.items():
        torch.save(obj, tmp_path / "x.pth")
        res = cli("agents", "info", tmp_path / "x.pth")
        assert res.exit_code == 2 and "this tool runs IMPALA-CNN actor-critics" in res.output
        assert re.search(pattern, " ".join(res.output.split())), (name, res.output)
        assert res.output.count("\n") == 1, res.output  # one line


def test_commands_needing_the_training_env_refuse_foreign_files(tmp_path):
    path, _ = save_foreign(tmp_path / "model_5.pth")
    runs = {
        "eval without --env": ["eval", path, "--env", "coinrun"],  # --env given, mode missing
        "--training-levels": eval_args(path, "--training-levels"),
        "maze-corner": ["experiment", "maze-corner", path, "--out", tmp_path / "o"],
        "misgen-rates": ["experiment", "misgen-rates", path, "--out", tmp_path / "o"],
        "colour-shape": ["experiment", "colour-shape", path, "--out", tmp_path / "o"],
        "keys-chests": ["experiment", "keys-chests", path, "--out", tmp_path / "o"],
        "record": ["record", path, "--episodes", "1", "--out", tmp_path / "r.h5"],
        "ablate": ["ablate", path, "--env", "coinrun", "--input-colour", "R"],
    }
    for name, args in runs.items():
        res = cli(*args)
        assert res.exit_code == 2 and "interp agents import" in res.output, (name, res.output)
        assert res.output.count("\n") == 1, (name, res.output)
    assert "distribution mode" in cli(*runs["eval without --env"]).output
    assert "which levels it was trained on" in cli(*runs["--training-levels"]).output
    assert not (tmp_path / "o").exists() and not (tmp_path / "r.h5").exists()


def test_import_errors(tmp_path):
    path, _ = save_foreign(tmp_path / "model_5.pth")
    out = tmp_path / "agent.pt"
    base = ["agents", "import", path, "--env", "coinrun", "--out", out]
    cases = [
        (base, "--distribution-mode is required"),
        (base + ["--distribution-mode", "medium"], "distribution_mode 'medium' is not one of"),
        (base[:4] + ["coinrn", *base[5:], "--distribution-mode", "easy"], "unknown env variant"),
        (base + ["--distribution-mode", "easy", "-o", "nope=1"], "has no option(s) nope"),
        (base + ["--distribution-mode", "easy", "--start-level", "7"], "needs --num-levels"),
        (["agents", "import", tmp_path / "missing.pth", *base[3:], "--distribution-mode", "easy"],
         "no checkpoint file"),
        (["agents", "import", path, "--env", "coinrun", "--distribution-mode", "easy", "--out",
          path], "is the file being imported"),
    ]
    for args, message in cases:
        res = cli(*args)
        assert res.exit_code == 2 and message in res.output, (args, res.output)
    assert not out.exists()
    assert cli(*base, "--distribution-mode", "easy").exit_code == 0
    res = cli(*base, "--distribution-mode", "easy")
    assert res.exit_code == 2 and "already exists; pass --overwrite" in res.output
    assert cli(*base, "--distribution-mode", "hard", "--overwrite").exit_code == 0
    assert load_agent(out).manifest["env_spec"]["distribution_mode"] == "hard"
    res = cli("agents", "import", out, "--env", "coinrun", "--distribution-mode", "easy",
              "--out", tmp_path / "again.pt")
    assert res.exit_code == 2 and "already an interp-agent checkpoint" in res.output
    res = cli(*eval_args(out, "--start-level", "5"))
    assert res.exit_code == 2 and "--start-level needs --num-levels" in res.output
    res = cli(*eval_args(out, "--training-levels", "--num-levels", "5"))
    assert res.exit_code == 2 and "not both" in res.output
    big = tmp_path / "big.pth"
    save_foreign(big, actions=16)
    res = cli("agents", "import", big, "--env", "coinrun", "--distribution-mode", "easy",
              "--out", tmp_path / "big.pt")
    assert res.exit_code == 2 and "16 actions" in res.output


def test_loader_error_is_a_checkpoint_error(tmp_path):
    torch.save({"state_dict": [1, 2]}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="state_dict is a list, not a state dict"):
        load_agent(tmp_path / "x.pth")
