"""The PPO training loop with logging, periodic evaluation, checkpoints and exact resume.

Run directory::

    config.yaml        resolved config (resume refuses a different one)
    run.json           status (running / interrupted / complete) and steps
    progress.csv       one row per log interval (see docs/training.md)
    curve.png          training curve from progress.csv, redrawn at every checkpoint
    tb/                TensorBoard events, if tensorboard is installed
    checkpoints/agent_<steps>.pt   agents (interp.checkpoint format, no optimizer)
    latest.pt          agent + optimizer + full trainer state in ``extra["trainer"]``
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.checkpoint import load_agent, save_agent
from interp.device import native_bf16, resolve_device
from interp.evaluate import evaluate_policy
from interp.models import ImpalaAgent, ModelConfig, preprocess
from interp.plots import training_curve
from interp.train.config import ConfigError, TrainConfig, dump_config, load_config
from interp.train.ppo import RewardNormalizer, explained_variance, gae, ppo_loss, sample_actions

BASE_COLUMNS = ("steps", "time", "fps", "episodes", "ep_return", "ep_length", "policy_loss",
                "value_loss", "entropy", "approx_kl", "clip_frac", "explained_var", "lr")
EVAL_FIELDS = ("return", "success", "length", "n")


def _group_seed(seed: int, group: int) -> int:
    return int(np.random.SeedSequence([seed, group]).generate_state(1)[0] % 2**31)


class Trainer:
    """PPO on ``ppo.num_envs`` envs split into ``run.env_groups`` VecEnvs.

    With several groups, ``act`` on one group returns at once (Procgen steps in its own
    threads) and the policy evaluates the next group meanwhile. :meth:`collect` fills the
    rollout buffer; :meth:`update` normalises rewards, computes GAE and runs the PPO epochs.
    """

    def __init__(self, config: TrainConfig, device: torch.device):
        from interp.envs import make_env

        self.config, self.device = config, device
        ppo, run = config.ppo, config.run
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # a few fixed batch shapes
        torch.manual_seed(run.seed)
        self.model = ImpalaAgent(ModelConfig.from_dict(config.model)).to(
            device, memory_format=torch.channels_last)
        self.amp = run.amp and native_bf16(device)
        self.trunk = (torch.compile(self.model.embedder) if run.compile
                      else self.model.embedder)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=ppo.lr, eps=ppo.adam_eps)
        self.generator = torch.Generator(device).manual_seed(run.seed)

        self.env_spec = config.env_spec()
        groups, per = run.env_groups, ppo.num_envs // run.env_groups
        threads = run.env_threads or max(1, (os.cpu_count() or 1) // groups)
        self.envs = [make_env(self.env_spec, num=per, seed=_group_seed(run.seed, g),
                              num_threads=threads) for g in range(groups)]
        self.slices = [slice(g * per, (g + 1) * per) for g in range(groups)]
        self.obs = [env.observe()[1] for env in self.envs]  # latest obs per group (host)

        T, N = ppo.num_steps, ppo.num_envs
        shape = (T, N, *self.obs[0].shape[1:])
        self.buf_obs = torch.empty(shape, dtype=torch.uint8, device=device)
        self.actions = torch.empty((T, N), dtype=torch.long, device=device)
        self.logp = torch.empty((T, N), device=device)
        self.values = torch.empty((T, N), device=device)
        self.rewards = np.zeros((T, N), dtype=np.float32)
        self.dones = np.zeros((T, N), dtype=bool)
        self.reward_norm = RewardNormalizer(N, ppo.reward_norm_gamma, ppo.reward_clip)
        self.ep_ret, self.ep_len = np.zeros(N), np.zeros(N, dtype=np.int64)
        self.finished: list[tuple[float, int]] = []  # episodes ended since the last log row
        self.steps = 0
        self.total_steps = config.total_steps

    # ---- rollout -----------------------------------------------------------------------
    def _forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 NHWC on the device -> fp32 (logits, value); the conv trunk may run in bf16."""
        x = preprocess(obs, memory_format=torch.channels_last)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            h = self.trunk(x)
        h = h.float()
        return self.model.fc_policy(h), self.model.fc_value(h).squeeze(-1)

    @torch.no_grad()
    def _act(self, g: int, t: int) -> None:
        sl = self.slices[g]
        obs = self.buf_obs[t, sl]
        obs.copy_(torch.from_numpy(self.obs[g]))
        logits, value = self._forward(obs)
        actions, logp = sample_actions(logits, self.generator)
        self.actions[t, sl], self.logp[t, sl], self.values[t, sl] = actions, logp, value
        self.envs[g].act(actions.cpu().numpy())

    def _observe(self, g: int, t: int) -> None:
        sl = self.slices[g]
        rew, self.obs[g], first = self.envs[g].observe()
        self.rewards[t, sl], self.dones[t, sl] = rew, first

    def collect(self) -> None:
        """One rollout of ``num_steps`` steps in every env into the buffers."""
        groups = range(len(self.envs))
        for t in range(self.config.ppo.num_steps):
            for g in groups:
                if t:
                    self._observe(g, t - 1)
                self._act(g, t)
        for g in groups:
            self._observe(g, self.config.ppo.num_steps - 1)

    def _track_episodes(self) -> None:
        for rew, done in zip(self.rewards, self.dones):
            self.ep_ret += rew
            self.ep_len += 1
            self.finished += [(float(self.ep_ret[i]), int(self.ep_len[i]))
                              for i in np.flatnonzero(done)]
            self.ep_ret[done], self.ep_len[done] = 0, 0

    # ---- update ------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        """PPO epochs on the collected rollout; advances ``steps``; returns mean loss stats."""
        ppo, dev = self.config.ppo, self.device
        self._track_episodes()
        rewards = (self.reward_norm(self.rewards, self.dones) if ppo.norm_reward
                   else self.rewards)
        with torch.no_grad():
            _, last_value = self._forward(torch.from_numpy(np.concatenate(self.obs)).to(dev))
        adv = gae(torch.from_numpy(rewards).to(dev), self.values,
                  torch.from_numpy(self.dones).to(dev), last_value, ppo.gamma, ppo.gae_lambda)
        returns = (adv + self.values).flatten()
        adv = adv.flatten()
        if ppo.norm_adv:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        lr = ppo.lr * (1 - self.steps / self.total_steps) if ppo.anneal_lr else ppo.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        B, mb = ppo.batch_size, ppo.minibatch_size
        micro = ppo.microbatch_size or mb
        obs = self.buf_obs.flatten(0, 1)
        actions, old_logp, old_values = (x.flatten() for x in (self.actions, self.logp,
                                                                self.values))
        sums: dict[str, torch.Tensor] = {}
        for _ in range(ppo.epochs):
            perm = torch.randperm(B, generator=self.generator, device=dev)
            for start in range(0, B, mb):
                self.optimizer.zero_grad(set_to_none=True)
                for idx in perm[start:start + mb].split(micro):
                    logits, values = self._forward(obs[idx])
                    loss, stats = ppo_loss(
                        logits, values, actions[idx], old_logp[idx], old_values[idx], adv[idx],
                        returns[idx], clip=ppo.clip, clip_value_loss=ppo.clip_value_loss,
                        value_coef=ppo.value_coef, entropy_coef=ppo.entropy_coef)
                    (loss * (len(idx) / mb)).backward()
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0) + v
                nn.utils.clip_grad_norm_(self.model.parameters(), ppo.max_grad_norm)
                self.optimizer.step()
        n = ppo.epochs * (B // micro)
        out = {k: float(v) / n for k, v in sums.items()}
        out["explained_var"] = explained_variance(old_values, returns)
        out["lr"] = lr
        self.steps += B
        return out

    # ---- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything besides model and optimizer needed to continue bit-exactly."""
        np_state = np.random.get_state()
        return {
            "steps": self.steps,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                              *np_state[2:]],
                    "python": random.getstate(), "generator": self.generator.get_state()},
            "env_states": [[torch.frombuffer(bytearray(s), dtype=torch.uint8)
                            for s in env.get_all_states()] for env in self.envs],
            "obs": [torch.from_numpy(o.copy()) for o in self.obs],
            "reward_norm": self.reward_norm.state_dict(),
            "ep_ret": torch.from_numpy(self.ep_ret.copy()),
            "ep_len": torch.from_numpy(self.ep_len.copy()),
            "finished": [list(e) for e in self.finished],
        }

    def load_state_dict(self, s: dict) -> None:
        self.steps = s["steps"]
        rng = s["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        n = rng["numpy"]
        np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
        random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
        self.generator.set_state(rng["generator"])
        for env, states in zip(self.envs, s["env_states"], strict=True):
            env.set_all_states([t.numpy().tobytes() for t in states])
        self.obs = [o.numpy().copy() for o in s["obs"]]
        self.reward_norm.load_state_dict(s["reward_norm"])
        self.ep_ret, self.ep_len = s["ep_ret"].numpy().copy(), s["ep_len"].numpy().copy()
        self.finished = [(float(r), int(n)) for r, n in s["finished"]]

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ---- run directory -----------------------------------------------------------------------

class _Log:
    """progress.csv (+ TensorBoard when importable) with a fixed column set."""

    def __init__(self, out: Path, columns: list[str], resume_steps: int | None):
        self.path, self.columns = out / "progress.csv", columns
        rows = []
        if resume_steps is not None and self.path.exists():  # drop rows past the checkpoint
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["steps"]) <= resume_steps]
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, columns)
            w.writeheader()
            w.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(out / "tb", purge_step=resume_steps)
        except ImportError:
            self.tb = None

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(
                {k: ("" if v is None else v) for k, v in row.items()})
        if self.tb is not None:
            for k, v in row.items():
                if k != "steps" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k.replace("eval_", "eval/", 1), v, row["steps"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


RUN_FILES = ("config.yaml", "run.json", "progress.csv", "curve.png", "latest.pt", "checkpoints",
             "tb")  # what a run writes; --overwrite removes exactly these


def _prepare_run_dir(config: TrainConfig, out: Path, resume: bool,
                     overwrite: bool = False) -> dict | None:
    """Check the run dir before any work; returns the saved run.json when resuming, else None.

    Nothing already in ``out`` is changed unless ``overwrite`` (which removes the run's own
    files and starts afresh) or a resume that continues from ``latest.pt``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a directory")
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite discards it; "
                          "pass one of them")
    if overwrite:
        found = [n for n in RUN_FILES if (out / n).exists()]
        for name in found:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        if found:
            print(f"{out}: removed the previous run's {', '.join(found)} (--overwrite)")
    elif out.is_dir() and any(out.iterdir()):
        if not resume:
            raise ConfigError(f"run dir {out} is not empty; pass --resume to continue the run in "
                              "it, --overwrite to start afresh there, or choose a new --out")
        if not (out / "latest.pt").is_file():
            what = ", ".join(n for n in RUN_FILES if (out / n).exists()) or "other files"
            raise ConfigError(f"cannot resume {out}: it holds {what} but no latest.pt (a packaged "
                              "agent, or a run that never saved); nothing was changed. Pass "
                              "--overwrite to start a new run there, or choose a new --out")
        if not (out / "config.yaml").is_file():
            raise ConfigError(f"cannot resume {out}: it has latest.pt but no config.yaml")
        differ = config.diff(load_config(out / "config.yaml"))
        if differ:
            lines = "; ".join(f"{k}: run has {b!r}, now {a!r}" for k, (a, b) in differ.items())
            raise ConfigError(f"cannot resume {out} with a different config ({lines}). Resume "
                              f"with the run's own config: {out / 'config.yaml'}")
        return json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    elif resume:
        print(f"{out}: no run to resume; starting a new one")
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    return None


class _EvalInterrupted(Exception):
    """Ctrl-C while a periodic evaluation runs: skip it, save, stop."""


@contextlib.contextmanager
def _stop_on_sigint(flag: dict):
    """First Ctrl-C: stop at the next rollout boundary, saving latest.pt first (an evaluation
    in progress is abandoned); second: abort."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = "interrupt"
        if flag.get("evaluating"):
            print("\nevaluation abandoned; saving latest.pt and stopping (Ctrl-C again to "
                  "abort)", flush=True)
            raise _EvalInterrupted
        print("\nstopping after this rollout and saving latest.pt (Ctrl-C again to abort)",
              flush=True)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def train(config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
          overwrite: bool = False, max_minutes: float | None = None,
          stop_at: int | None = None, progress: bool = True) -> dict:
    """Train a PPO agent as ``config`` says, writing the run dir ``out_dir``.

    ``resume`` continues the run in ``out_dir`` exactly (same RNG streams) from latest.pt;
    ``overwrite`` discards a previous run there. ``max_minutes`` stops before a rollout that
    would not finish in time; ``stop_at`` stops once that many env steps are done; either way
    (and on Ctrl-C) latest.pt is written and the run can be resumed. Prints the plan (rollouts,
    evaluations) first. Returns a summary dict (status, steps, timings, last metrics).
    """
    out = Path(out_dir)
    device = resolve_device(config.run.device)
    config.env_spec()
    eval_specs = config.eval_specs()  # unknown variant names fail here, before any work
    init = _load_init(config) if config.run.init_from else None
    init_from = None
    run_info = _prepare_run_dir(config, out, resume, overwrite)
    resuming = run_info is not None
    if run_info and run_info.get("status") == "complete":
        print(f"{out}: run already complete ({run_info['steps']} steps)")
        return {**run_info, "out_dir": str(out)}
    run = config.run
    plan, evaluate = _plan(config, eval_specs)
    print(plan, flush=True)

    trainer = Trainer(config, device)
    prev_wall = 0.0
    latest = out / "latest.pt"
    if resuming:
        loaded = load_agent(latest, device)
        trainer.model.load_state_dict(loaded.model.state_dict())
        trainer.optimizer.load_state_dict(loaded.optimizer_state)
        state = loaded.manifest["extra"]["trainer"]
        trainer.load_state_dict(state)
        prev_wall = state["wall_time"]
        init_from = loaded.manifest["extra"].get("init_from")
        print(f"resuming {out} at step {trainer.steps:,}", flush=True)
    elif init is not None:
        weights, init_from = init
        trainer.model.load_state_dict(weights)
        print(f"starting from the weights of {init_from['file']} "
              f"({_fmt_steps(init_from['steps'])}; fresh optimizer)", flush=True)
    columns = list(BASE_COLUMNS) + [f"eval_{label}_{f}" for label in eval_specs
                                    for f in EVAL_FIELDS]
    log = _Log(out, columns, trainer.steps if resuming else None)

    start, steps0 = time.perf_counter(), trainer.steps
    info = {"status": "running", "steps": trainer.steps, "total_steps": trainer.total_steps,
            "device": str(device),
            "started": (run_info or {}).get("started") or time.strftime("%Y-%m-%dT%H:%M:%S"),
            **({"init_from": init_from} if init_from else {})}
    _write_json(out / "run.json", info)

    def wall() -> float:
        return prev_wall + time.perf_counter() - start

    def save(path: Path, metrics: dict | None, full: bool) -> None:
        extra = {"trainer": {**trainer.state_dict(), "wall_time": wall()}} if full else {}
        if init_from:
            extra["init_from"] = init_from
        save_agent(path, trainer.model, env_spec=trainer.env_spec.to_dict(), seed=run.seed,
                   steps=trainer.steps, optimizer=trainer.optimizer if full else None,
                   train_config=config.to_dict(), metrics=metrics, extra=extra or None)

    def crossed(every: int, before: int) -> bool:
        return every > 0 and trainer.steps // every > before // every

    flag = {"stop": None, "evaluating": False}
    row: dict = {}
    last_iter, row_steps, row_time = 0.0, trainer.steps, 0.0
    bar = _Progress(trainer, progress)
    try:
        with _stop_on_sigint(flag):
            while trainer.steps < trainer.total_steps:
                if stop_at is not None and trainer.steps >= stop_at:
                    flag["stop"] = "stop_at"
                if max_minutes is not None and (time.perf_counter() - start + last_iter
                                                > max_minutes * 60):
                    flag["stop"] = "time"
                if flag["stop"]:
                    break
                t0, before = time.perf_counter(), trainer.steps
                trainer.collect()
                stats = trainer.update()
                row_time += time.perf_counter() - t0
                final = trainer.steps >= trainer.total_steps
                do_eval = evaluate and (crossed(run.eval_every, before) or final)
                if do_eval or final or run.log_every == 0 or crossed(run.log_every, before):
                    eps = trainer.finished
                    row = {"steps": trainer.steps, "time": round(wall(), 2),
                           "fps": round((trainer.steps - row_steps) / row_time, 1),
                           "episodes": len(eps),
                           "ep_return": float(np.mean([e[0] for e in eps])) if eps else None,
                           "ep_length": float(np.mean([e[1] for e in eps])) if eps else None,
                           **stats}
                    if do_eval and not flag["stop"]:  # a stop asked for: save, do not evaluate
                        flag["evaluating"] = True
                        try:
                            row.update(_evaluate(trainer, eval_specs))
                        except _EvalInterrupted:
                            pass
                        finally:
                            flag["evaluating"] = False
                    log.write(row)
                    trainer.finished, row_steps, row_time = [], trainer.steps, 0.0
                bar.update(trainer.steps, row.get("ep_return"))
                if final or crossed(run.checkpoint_every, before):
                    save(out / "checkpoints" / f"agent_{trainer.steps}.pt", row or None, False)
                    save(latest, row or None, True)
                    training_curve(log.path, out / "curve.png",
                                   f"{config.env.get('variant')} seed {run.seed} ({out.name})")
                    info["steps"] = trainer.steps
                    _write_json(out / "run.json", info)
                last_iter = time.perf_counter() - t0  # with eval and saving
            done = trainer.steps >= trainer.total_steps
            if not done:
                save(latest, row or None, True)
            info.update(status="complete" if done else "interrupted", steps=trainer.steps,
                        wall_time=round(wall(), 2))
            if flag["stop"]:
                info["stopped_by"] = flag["stop"]
    finally:
        bar.close()
        log.close()
        trainer.close()
        if info["status"] == "running":  # an exception: the last checkpoint stands
            info["status"] = "interrupted"
        _write_json(out / "run.json", info)
    elapsed = time.perf_counter() - start
    return {**info, "out_dir": str(out), "session_steps": trainer.steps - steps0,
            "session_seconds": round(elapsed, 2),
            "session_steps_per_s": round((trainer.steps - steps0) / max(elapsed, 1e-9), 1),
            "last_metrics": row}


def _load_init(config: TrainConfig) -> tuple[dict, dict]:
    """``run.init_from``'s weights and provenance (file, sha256, steps, env spec), checked
    against ``config.model`` before any work."""
    from interp.checkpoint import file_sha256

    path = Path(config.run.init_from)
    if not path.is_file():
        raise ConfigError(f"run.init_from: {path} is not a file; name an agent checkpoint "
                          "(e.g. agents/coinrun-cpu/agent.pt)")
    agent = load_agent(path)
    want = ModelConfig.from_dict(config.model).to_dict()
    have = agent.model.config.to_dict()
    if want != have:
        differ = ", ".join(f"{k}: agent {have.get(k)!r}, config {want.get(k)!r}"
                           for k in sorted(want.keys() | have.keys()) if want.get(k) != have.get(k))
        raise ConfigError(f"run.init_from: {path} has another architecture than model: "
                          f"({differ}); set model: to match the agent")
    m = agent.manifest
    return agent.model.state_dict(), {"file": str(path), "sha256": file_sha256(path),
                                      "steps": m.get("steps"), "env_spec": m.get("env_spec")}


def _fmt_steps(steps: int | None) -> str:
    return "steps unknown" if steps is None else f"{steps:,} steps"


def _plan(config: TrainConfig, eval_specs: dict) -> tuple[str, bool]:
    """What the run will do, in words, and whether it evaluates at all. A run shorter than one
    evaluation interval skips evaluation (it would dwarf the training)."""
    ppo, run = config.ppo, config.run
    B, total = ppo.batch_size, config.total_steps
    lines = [f"plan: {total:,} env steps = {total // B:,} rollout(s) of {B:,} "
             f"({ppo.num_envs} envs x {ppo.num_steps} steps)"]
    if run.total_steps < B:
        lines.append(f"  one rollout is {B:,} steps, more than the {run.total_steps:,} asked "
                     "for: the run stops after it")
    elif total != run.total_steps:
        lines.append(f"  {run.total_steps:,} rounded up to whole rollouts")
    evaluate = bool(eval_specs) and run.eval_every <= total
    if eval_specs and not evaluate:
        lines.append(f"  no evaluation: the run is shorter than run.eval_every "
                     f"({run.eval_every:,} steps); use `interp eval` on latest.pt afterwards")
    elif evaluate:
        when = (f"every {run.eval_every:,} steps and at the end" if run.eval_every
                else "at the end")
        lines.append(f"  evaluation {when}: {', '.join(eval_specs)} "
                     f"({run.eval_episodes} episodes each)")
    return "\n".join(lines), evaluate


def _evaluate(trainer: Trainer, specs: dict) -> dict:
    out = {}
    run = trainer.config.run
    for label, spec in specs.items():
        r = evaluate_policy(trainer.model, spec, run.eval_episodes, run.eval_seed,
                            trainer.device, num_envs=run.eval_envs, amp=trainer.amp)
        out.update({f"eval_{label}_return": r["mean_return"],
                    f"eval_{label}_success": r["success_rate"],
                    f"eval_{label}_length": r["mean_length"], f"eval_{label}_n": r["n"]})
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


class _Progress:
    """Training progress with an ETA: a bar on a terminal, a plain line every 30 s in a log."""

    def __init__(self, trainer: Trainer, enabled: bool):
        from tqdm.auto import tqdm

        self.total, self.enabled = trainer.total_steps, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.steps0, self.t0, self.last_line = trainer.steps, time.perf_counter(), 0.0
        self.bar = tqdm(total=self.total, initial=trainer.steps, unit="step", unit_scale=True,
                        dynamic_ncols=True, smoothing=0.1) if self.tty else None

    def update(self, steps: int, ep_return: float | None) -> None:
        elapsed = time.perf_counter() - self.t0
        rate = (steps - self.steps0) / max(elapsed, 1e-9)
        if self.bar is not None:
            self.bar.update(steps - self.bar.n)
            self.bar.set_postfix(ret=_fmt(ep_return), refresh=False)
        elif self.enabled and (elapsed - self.last_line >= 30 or steps >= self.total):
            self.last_line = elapsed
            eta = (self.total - steps) / rate if rate > 0 else float("nan")
            print(f"train: {steps:,} / {self.total:,} steps ({100 * steps / self.total:.1f}%), "
                  f"{rate:.0f} steps/s, return {_fmt(ep_return)}, ETA {_duration(eta)}",
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    m, sec = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{sec:02d}s"
