"""PPO trainer: configs, loss pieces, time convention, runs, exact resume, CLI."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.checkpoint import load_agent
from interp.envs import EnvConfigError
from interp.evaluate import evaluate_policy
from interp.models import ImpalaAgent, ModelConfig
from interp.outputs import OutputError
from interp.package import PackageError, package_run, verify_package
from interp.train import ConfigError, TrainConfig, load_config, train
from interp.train.config import PRESET_DIR
from interp.train.ppo import RewardNormalizer, gae, ppo_loss

ROOT = Path(__file__).resolve().parents[1]
TINY = """
inherit: easy
env: {variant: maze}
ppo: {num_envs: 8, num_steps: 16, num_minibatches: 2, epochs: 2}
run: {total_steps: 512, checkpoint_every: 256, device: cpu, env_groups: 2}
"""



def _yaml(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "progress.csv").open() as f:
        return list(csv.DictReader(f))


# ---- config ------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_installed_copy_finds_the_shipped_configs(tmp_path):
    """A non-editable install carries configs/ as package data: the preset and catalogue
    loaders find them inside the installed copy (not in a source tree)."""
    import shutil

    root, src, site = Path(__file__).resolve().parents[1], tmp_path / "src", tmp_path / "site"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "cli.py"):
        shutil.copy(root / name, src / name)
    for name in ("interp", "probes", "activations", "configs"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(src)],
                   check=True, capture_output=True)
    code = ("from interp.train.config import load_config, resolve_config_path\n"
            "from probes.features import CATALOGUE, load_catalogue\n"
            "print(resolve_config_path('easy')); print(CATALOGUE)\n"
            "assert load_config(resolve_config_path('easy')).ppo.num_envs == 64 and load_catalogue()\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(site)})
    assert r.returncode == 0, r.stderr
    preset, catalogue = r.stdout.split()
    assert preset == str(site / "configs" / "train" / "easy.yaml")
    assert catalogue == str(site / "configs" / "features.yaml")


def test_presets_load_with_paper_settings():
    names = {p.stem for p in PRESET_DIR.glob("*.yaml")}
    assert {"easy", "hard-500", "coinrun-easy", "maze-top-right-easy",
            "maze-yellow-line"} <= names
    for name in names:
        load_config(PRESET_DIR / f"{name}.yaml")
    easy = load_config(PRESET_DIR / "easy.yaml").ppo
    assert (easy.num_envs, easy.num_steps, easy.epochs, easy.minibatch_size) == (64, 256, 3, 2048)
    assert (easy.gamma, easy.gae_lambda, easy.lr, easy.clip, easy.entropy_coef) == (
        0.999, 0.95, 5e-4, 0.2, 0.01)
    hard = load_config(PRESET_DIR / "hard-500.yaml")
    assert (hard.ppo.num_envs, hard.ppo.minibatch_size, hard.run.total_steps) == (
        256, 8192, 200_000_000)
    assert hard.env["distribution_mode"] == "hard" and hard.ppo.epochs == 3
    coin = load_config(PRESET_DIR / "coinrun-easy.yaml")
    assert "coinrun-random-coin" in coin.run.eval_variants and coin.ppo.num_envs == 64


def test_inherit_merges_sections(tmp_path):
    _yaml(tmp_path, "inherit: easy\nppo: {lr: 1.0e-3}\nrun: {seed: 4}\n", "parent.yaml")
    cfg = load_config(_yaml(tmp_path, "preset: parent\nppo: {epochs: 1}\n"))
    assert (cfg.ppo.lr, cfg.ppo.epochs, cfg.ppo.num_envs, cfg.run.seed) == (1e-3, 1, 64, 4)
    assert cfg.with_overrides(steps=1000, seed=7).run.total_steps == 1000


@pytest.mark.parametrize("text, message", [
    ("inherit: easy\nppo: {lrr: 0.1}\n", "unknown key ppo.lrr (did you mean 'lr'?); valid keys"),
    ("inherit: easy\nfoo: 1\n", "unknown key foo"),
    ("inherit: easy\nppo: {clip: big}\n", "ppo.clip must be float, got 'big'"),
    ("inherit: easy\nppo: {num_envs: true}\n", "ppo.num_envs must be int"),
    ("inherit: easy\nppo: {gamma: 2}\n", "ppo.gamma must be in [0, 1]"),
    ("inherit: easy\nppo: {num_minibatches: 7}\n", "must divide num_envs * num_steps"),
    ("inherit: easy\nrun: {env_groups: 3}\n", "run.env_groups (3) must divide ppo.num_envs"),
    ("inherit: easy\nmodel: {width: 0}\n", "model: ModelConfig.width must be a positive int"),
    ("inherit: easy\nmodel: {gru_hidden: 64}\n", "trains feed-forward agents only"),
    ("inherit: easy\nenv: {variant: maze, levels: 3}\n", "unknown key env.levels"),
    ("inherit: nowhere\n", "config 'nowhere' not found"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load_config(_yaml(tmp_path, text))
    assert message in str(e.value)


def test_inherit_cycle(tmp_path):
    _yaml(tmp_path, "inherit: b\n", "a.yaml")
    _yaml(tmp_path, "inherit: a\n", "b.yaml")
    with pytest.raises(ConfigError, match="inherit cycle: a.yaml -> b.yaml -> a.yaml"):
        load_config(tmp_path / "a.yaml")


def test_variant_names_checked_at_run_time(tmp_path):
    cfg = load_config(_yaml(tmp_path, "inherit: easy\nenv: {variant: no-such-maze}\n"))
    with pytest.raises(EnvConfigError, match="no-such-maze"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# ---- PPO pieces --------------------------------------------------------------------------

def test_gae_hand_example():
    # gamma 0.9, lambda 0.8; the action at t=1 ends the episode.
    adv = gae(torch.tensor([[1.0], [0.0], [2.0]]), torch.tensor([[0.5], [0.2], [0.1]]),
              torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([0.3]), 0.9, 0.8)
    # t=2: 2 + .9*.3 - .1 = 2.17; t=1: 0 - .2 (no bootstrap); t=0: 1 + .9*.2 - .5 + .72*(-.2)
    torch.testing.assert_close(adv.squeeze(1), torch.tensor([0.536, -0.2, 2.17]))


def test_gae_matches_direct_sum():
    g = torch.Generator().manual_seed(0)
    T, N, gamma, lam = 12, 5, 0.99, 0.9
    r, v = torch.randn(T, N, generator=g), torch.randn(T, N, generator=g)
    d, last = torch.rand(T, N, generator=g) < 0.2, torch.randn(N, generator=g)
    adv = gae(r, v, d, last, gamma, lam)
    nxt = torch.cat([v[1:], last[None]])
    delta = r + gamma * nxt * ~d - v
    for t in range(T):
        for n in range(N):  # A_t = sum_k (gamma lam)^k delta_{t+k}, stopping after a done
            want, w = 0.0, 1.0
            for k in range(t, T):
                want += w * delta[k, n].item()
                if d[k, n]:
                    break
                w *= gamma * lam
            assert adv[t, n].item() == pytest.approx(want, abs=1e-5)


def test_ppo_loss_pieces():
    logits = torch.zeros(2, 4)  # uniform: logp = -log 4, entropy = log 4
    actions = torch.tensor([0, 1])
    old_logp = torch.log(torch.tensor([0.25 / 1.5, 0.25]))  # ratios 1.5 and 1.0
    adv = torch.tensor([1.0, -2.0])
    values, old_values = torch.tensor([1.0, 0.6]), torch.tensor([0.5, 0.5])
    returns = torch.tensor([1.0, 1.0])
    loss, s = ppo_loss(logits, values, actions, old_logp, old_values, adv, returns, clip=0.2,
                       clip_value_loss=True, value_coef=0.5, entropy_coef=0.01)
    # policy: -mean(min(1.5*1, 1.2*1), min(1*-2, 1*-2)) = -(1.2 - 2) / 2
    assert s["policy_loss"].item() == pytest.approx(0.4)
    # value: v=1.0 clipped to 0.7 -> (0.3)^2 = .09 beats 0; v=0.6 -> .16 both ways
    assert s["value_loss"].item() == pytest.approx(0.5 * (0.09 + 0.16) / 2)
    assert s["entropy"].item() == pytest.approx(np.log(4))
    assert s["clip_frac"].item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(0.4 + 0.5 * 0.0625 - 0.01 * np.log(4), abs=1e-6)
    _, s = ppo_loss(logits, values, actions, old_logp, old_values, adv, returns, clip=0.2,
                    clip_value_loss=False, value_coef=0.5, entropy_coef=0.01)
    assert s["value_loss"].item() == pytest.approx(0.5 * (0.0 + 0.16) / 2)


def test_reward_normalizer_resets_returns_after_done():
    norm = RewardNormalizer(2, gamma=0.5, clip=10.0)
    rewards = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 4.0]])
    dones = np.array([[False, False], [True, False], [False, False]])
    out = norm(rewards, dones)
    assert norm.ret.tolist() == [1.0, 4.0]  # env 0 restarted after t=1
    assert out.shape == (3, 2) and np.all(np.abs(out) <= 10)
    assert out[2, 1] == pytest.approx(4.0 / np.sqrt(norm.rms.var + 1e-8))


class _CountingEnv:
    """Episodes of fixed length; reward 1 on the step that ends one. obs encodes the time."""

    def __init__(self, spec, num, seed=0, num_threads=1):
        self.num, self.t, self.length = num, np.zeros(num, dtype=int), 5
        self.first = np.ones(num, dtype=bool)
        self.reward = np.zeros(num, dtype=np.float32)

    def observe(self):
        obs = np.broadcast_to(self.t[:, None, None, None], (self.num, 64, 64, 3))
        return self.reward.copy(), obs.astype(np.uint8), self.first.copy()

    def act(self, actions):
        self.t += 1
        self.first = self.t == self.length
        self.reward = self.first.astype(np.float32)
        self.t[self.first] = 0

    def close(self):
        pass


def test_rollout_time_convention(monkeypatch):
    """reward[t] and done[t] belong to the action at t; obs[t] is what that action saw."""
    import interp.envs

    monkeypatch.setattr(interp.envs, "make_env", _CountingEnv)
    from interp.train import Trainer

    cfg = TrainConfig.from_dict({"env": {"variant": "maze"}, "ppo": {
        "num_envs": 4, "num_steps": 12, "num_minibatches": 2, "epochs": 1},
        "run": {"total_steps": 48, "device": "cpu", "env_groups": 2}})
    trainer = Trainer(cfg, torch.device("cpu"))
    trainer.collect()
    t_seen = trainer.buf_obs[:, :, 0, 0, 0].numpy()
    assert t_seen[:, 0].tolist() == [0, 1, 2, 3, 4] * 2 + [0, 1]
    np.testing.assert_array_equal(trainer.dones, t_seen == 4)  # the 5th action ends it
    np.testing.assert_array_equal(trainer.rewards, (t_seen == 4).astype(np.float32))
    trainer.update()
    assert trainer.finished == [(1.0, 5)] * 8 and trainer.steps == 48


# ---- training runs -----------------------------------------------------------------------

def test_train_writes_logs_and_checkpoints(tmp_path):
    cfg = load_config(_yaml(tmp_path, TINY))
    summary = train(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert summary["status"] == "complete" and summary["steps"] == 512
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"agent_256.pt", "agent_512.pt"}
    rows = _rows(run)
    assert [int(r["steps"]) for r in rows] == list(range(128, 513, 128))
    assert {"ep_return", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac",
            "explained_var", "lr", "fps"} <= set(rows[0])
    assert float(rows[0]["lr"]) == 5e-4 and float(rows[-1]["lr"]) == pytest.approx(1.25e-4)
    agent = load_agent(run / "checkpoints" / "agent_256.pt")
    assert agent.manifest["steps"] == 256 and agent.manifest["env_spec"]["variant"] == "maze"
    assert agent.optimizer_state is None
    assert load_agent(run / "latest.pt").manifest["extra"]["trainer"]["steps"] == 512
    assert load_config(run / "config.yaml").to_dict() == cfg.to_dict()
    assert (run / "curve.png").stat().st_size > 0

    with pytest.raises(ConfigError, match="not empty; pass --resume"):
        train(cfg, run, progress=False)
    with pytest.raises(ConfigError, match=r"ppo.lr: run has 0.0005, now 0.001"):
        train(TrainConfig.from_dict({**cfg.to_dict(), "ppo": {**cfg.to_dict()["ppo"],
                                                               "lr": 1e-3}}),
              run, resume=True, progress=False)


def test_package_run_copies_the_final_agent_with_a_manifest(tmp_path):
    run = tmp_path / "run"
    train(load_config(_yaml(tmp_path, TINY)), run, progress=False)
    m = package_run(run, tmp_path / "agents" / "tiny")
    pkg = tmp_path / "agents" / "tiny"
    assert {p.name for p in pkg.iterdir()} == {"agent.pt", "config.yaml", "progress.csv",
                                               "curve.png", "manifest.json"}
    assert m["steps"] == 512 and m["source_checkpoint"] == "agent_512.pt"
    assert verify_package(pkg)["sha256"] == m["sha256"]
    assert load_agent(pkg / "agent.pt").optimizer_state is None
    with pytest.raises(OutputError, match="already holds files; pass --overwrite"):
        package_run(run, pkg)
    (pkg / "agent.pt").write_bytes(b"version https://git-lfs.github.com/spec/v1")
    with pytest.raises(PackageError, match="does not match its manifest"):
        verify_package(pkg)
    (run / "run.json").write_text('{"status": "interrupted", "steps": 256, "total_steps": 512}')
    with pytest.raises(PackageError, match="interrupted at 256 of 512 steps"):
        package_run(run, tmp_path / "other")


def test_resume_is_exact(tmp_path):
    cfg = load_config(_yaml(tmp_path, TINY))
    whole = train(cfg, tmp_path / "whole", progress=False)
    part = train(cfg, tmp_path / "chunked", progress=False, stop_at=256)
    assert part["status"] == "interrupted" and part["steps"] == 256
    train(cfg, tmp_path / "chunked", resume=True, progress=False)
    a, b = load_agent(tmp_path / "whole/latest.pt"), load_agent(tmp_path / "chunked/latest.pt")
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert all(torch.equal(x, y) for x, y in zip(
        a.optimizer_state["state"][0].values(), b.optimizer_state["state"][0].values()))
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "fps")}  # noqa: E731
                         for r in rows]
    assert drop(_rows(tmp_path / "whole")) == drop(_rows(tmp_path / "chunked"))
    assert sum(int(r["episodes"]) for r in _rows(tmp_path / "whole")) > 0
    assert whole["steps"] == 512


def test_init_from_starts_at_an_agents_weights_and_records_it(tmp_path, capsys):
    cfg = load_config(_yaml(tmp_path, TINY))
    train(cfg, tmp_path / "first", progress=False, stop_at=256)
    parent = tmp_path / "first" / "checkpoints" / "agent_256.pt"
    d = cfg.to_dict()
    d["run"] = {**d["run"], "init_from": str(parent), "total_steps": 128, "seed": 1}
    child_cfg = TrainConfig.from_dict(d)
    train(child_cfg, tmp_path / "child", progress=False)
    assert "starting from the weights of" in capsys.readouterr().out
    child = load_agent(tmp_path / "child" / "checkpoints" / "agent_128.pt")
    init = child.manifest["extra"]["init_from"]
    assert init["steps"] == 256 and init["file"] == str(parent) and len(init["sha256"]) == 64
    assert child.manifest["steps"] == 128
    assert package_run(tmp_path / "child", tmp_path / "pkg")["init_from"] == init
    # One update away from the parent, far from the child's own seed's initialisation.
    torch.manual_seed(1)
    fresh = ImpalaAgent(ModelConfig.from_dict(cfg.model)).state_dict()
    dist = lambda a: sum(float((child.model.state_dict()[k] - v).norm())  # noqa: E731
                         for k, v in a.items())
    assert 0 < dist(load_agent(parent).model.state_dict()) < dist(fresh) / 2

    d["run"]["init_from"] = str(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="run.init_from: .*missing.pt is not a file"):
        train(TrainConfig.from_dict(d), tmp_path / "x", progress=False)
    d["run"]["init_from"] = str(parent)
    d["model"] = {**d["model"], "width": 2}
    with pytest.raises(ConfigError, match="another architecture than model"):
        train(TrainConfig.from_dict(d), tmp_path / "y", progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_max_minutes_stops_resumably(tmp_path):
    cfg = load_config(_yaml(tmp_path, TINY))
    s = train(cfg, tmp_path / "run", max_minutes=0, progress=False)
    assert s["status"] == "interrupted" and s["stopped_by"] == "time" and s["steps"] == 0
    assert (tmp_path / "run/latest.pt").is_file()
    s = train(cfg, tmp_path / "new", resume=True, max_minutes=0, progress=False)
    assert s["status"] == "interrupted" and (tmp_path / "new/config.yaml").is_file()


def test_resume_never_erases_a_folder_without_latest_pt(tmp_path, capsys):
    cfg = load_config(_yaml(tmp_path, TINY))
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    (run / "latest.pt").unlink()  # as in a packaged agent folder: config and log, no latest.pt
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="holds config.yaml, run.json, progress.csv.* but no "
                                          "latest.pt.*nothing was changed.*--overwrite"):
        train(cfg, run, resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    with pytest.raises(ConfigError, match="pass one of them"):
        train(cfg, run, resume=True, overwrite=True, progress=False)
    (run / "notes.txt").write_text("mine")
    s = train(cfg, run, overwrite=True, stop_at=128, progress=False)
    assert s["steps"] == 128 and [int(r["steps"]) for r in _rows(run)] == [128]
    assert (run / "notes.txt").read_text() == "mine"  # only the run's own files are removed
    assert "removed the previous run's" in capsys.readouterr().out


def test_plan_says_when_one_rollout_exceeds_the_steps_and_skips_long_evals(tmp_path, capsys,
                                                                          monkeypatch):
    import interp.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "evaluate_policy", lambda *a, **k: pytest.fail("evaluated"))
    d = load_config(_yaml(tmp_path, TINY)).to_dict()
    d["run"].update(total_steps=50, eval_every=10_000, eval_variants=["maze"])
    s = train(TrainConfig.from_dict(d), tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert s["steps"] == 128
    assert "one rollout is 128 steps, more than the 50 asked for" in out
    assert "no evaluation: the run is shorter than run.eval_every (10,000 steps)" in out


def test_ctrl_c_during_an_evaluation_skips_it_and_saves(tmp_path, monkeypatch):
    import signal

    import interp.train.trainer as trainer_mod

    def interrupted_eval(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler raises inside the evaluation
        pytest.fail("the evaluation went on after Ctrl-C")

    monkeypatch.setattr(trainer_mod, "evaluate_policy", interrupted_eval)
    d = load_config(_yaml(tmp_path, TINY)).to_dict()
    d["run"].update(eval_every=256, eval_variants=["maze"])
    s = train(TrainConfig.from_dict(d), tmp_path / "run", progress=False)
    assert s["status"] == "interrupted" and s["stopped_by"] == "interrupt"
    assert s["steps"] == 256
    assert load_agent(tmp_path / "run/latest.pt").manifest["extra"]["trainer"]["steps"] == 256
    row = _rows(tmp_path / "run")[-1]
    assert row["steps"] == "256" and row["eval_maze_success"] == ""


def test_log_progress_lines_with_eta(tmp_path, capsys):
    train(load_config(_yaml(tmp_path, TINY)), tmp_path / "run", progress=True)
    err = capsys.readouterr()
    assert "train: 512 / 512 steps (100.0%)" in err.out and "ETA" in err.out


def test_periodic_eval_columns(tmp_path, monkeypatch):
    import interp.train.trainer as trainer_mod

    calls = []

    def fake_eval(model, spec, episodes, seed, device, **kw):
        calls.append((spec.variant, episodes, seed))
        return {"n": episodes, "mean_return": 5.0, "success_rate": 0.5, "mean_length": 9.0}

    monkeypatch.setattr(trainer_mod, "evaluate_policy", fake_eval)
    d = load_config(_yaml(tmp_path, TINY)).to_dict()
    d["run"].update(eval_every=256, eval_variants=["maze"], eval_episodes=6)
    cfg = TrainConfig.from_dict(d)
    train(cfg, tmp_path / "run", progress=False)
    rows = {int(r["steps"]): r for r in _rows(tmp_path / "run")}
    assert calls == [("maze", 6, 1)] * 2
    assert rows[256]["eval_maze_success"] == "0.5" and rows[128]["eval_maze_return"] == ""


def test_evaluate_policy_first_k_episodes_per_env():
    from interp.models import ImpalaAgent

    model = ImpalaAgent()
    with torch.no_grad():
        model.fc_policy.bias[8] = 20.0  # RIGHT+UP: short CoinRun episodes
    r1 = evaluate_policy(model, "coinrun", episodes=4, seed=3, num_envs=2)
    r2 = evaluate_policy(model, "coinrun", episodes=4, seed=3, num_envs=2)
    assert r1 == r2 and r1["n"] == 4 and len(r1["returns"]) == 4
    assert set(r1["returns"]) <= {0.0, 10.0}
    assert r1["success_rate"] == pytest.approx(np.mean([x == 10.0 for x in r1["returns"]]))


@pytest.mark.slow
def test_cli_train_end_to_end(tmp_path):
    cfg = _yaml(tmp_path, TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "cli", "train"]
    p = subprocess.run([*cli, str(cfg), "--out", str(tmp_path / "run"), "--steps", "128"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "complete: 128 / 128 steps" in p.stdout
    assert (tmp_path / "run/checkpoints/agent_128.pt").is_file()
    bad = _yaml(tmp_path, "inherit: easy\nppo: {lrr: 1}\n", "bad.yaml")
    p = subprocess.run([*cli, str(bad), "--out", str(tmp_path / "x")], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 2 and "unknown key ppo.lrr" in p.stderr
    assert "Traceback" not in p.stderr


def test_eval_specs_inherit_training_options_on_the_training_variant(tmp_path):
    cfg = load_config(_yaml(tmp_path, """
inherit: easy
env: {variant: coinrun-permeable-wall, options: {coin: end}}
run:
  eval_variants: [coinrun-permeable-wall, {variant: coinrun-permeable-wall,
                  options: {coin: none}}, coinrun]
"""))
    specs = list(cfg.eval_specs().values())
    assert [s.options for s in specs] == [{"coin": "end"}, {"coin": "none"}, {}]
