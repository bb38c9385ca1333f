"""PPO training throughput in env steps/s: settings side by side in one run, with ratios.

    python benchmarks/train_throughput.py --device cuda                     # paper easy preset
    python benchmarks/train_throughput.py --device cuda --preset hard-500   # 256 envs
    python benchmarks/train_throughput.py --device cpu --preset coinrun-cpu \\
        --settings amp=0 amp=1 amp=1,threads=1 amp=1,compile=1 amp=1,groups=2

Each ``--settings`` entry is a comma-separated list of overrides of the preset: ``amp`` (bf16
autocast of the conv trunk), ``compile`` (torch.compile of the trunk), ``threads`` (torch
threads), ``groups`` (run.env_groups), ``env_threads``, ``envs`` / ``steps`` (rollout size),
``minibatches``, ``epochs``. The first entry is the baseline. For every setting it measures
(a) env stepping alone (random actions, same envs, groups and threads), (b) rollouts only
(policy inference + env) and (c) full PPO (rollout + update); the settings are measured in
interleaved rounds (``--rounds``) and each figure is the median over rounds, so a slow spell
of a shared machine hits every setting alike. Prints (c)/(a) and (c) against the baseline's (c).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from interp.device import native_bf16, resolve_device
from interp.envs import make_env
from interp.train import TrainConfig, Trainer, load_config
from interp.train.config import resolve_config_path
from interp.train.trainer import _group_seed

KEYS = {"amp": ("run", "amp", bool), "compile": ("run", "compile", bool),
        "groups": ("run", "env_groups", int), "env_threads": ("run", "env_threads", int),
        "envs": ("ppo", "num_envs", int), "steps": ("ppo", "num_steps", int),
        "minibatches": ("ppo", "num_minibatches", int), "epochs": ("ppo", "epochs", int),
        "threads": (None, "threads", int)}


def parse_setting(text: str) -> dict:
    """``"amp=1,threads=2"`` -> ``{"amp": True, "threads": 2}`` (an empty string: the preset)."""
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in KEYS or not value:
            raise SystemExit(f"bad setting {item!r}: use KEY=VALUE with KEY in {sorted(KEYS)}")
        out[key] = KEYS[key][2](int(value))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def env_ceiling(trainer: Trainer, steps: int) -> float:
    """Random actions into separate VecEnvs like the trainer's: all groups step together."""
    cfg = trainer.config
    groups, per = cfg.run.env_groups, cfg.ppo.num_envs // cfg.run.env_groups
    threads = cfg.run.env_threads or max(1, (os.cpu_count() or 1) // groups)
    envs = [make_env(trainer.env_spec, num=per, seed=_group_seed(1, g), num_threads=threads)
            for g in range(groups)]
    actions = np.random.default_rng(0).integers(0, 15, (steps, per))
    for a in actions[:5]:
        for env in envs:
            env.act(a)
            env.observe()
    t = time.perf_counter()
    for a in actions:
        for env in envs:
            env.act(a)
        for env in envs:
            env.observe()
    dt = time.perf_counter() - t
    for env in envs:
        env.close()
    return steps * cfg.ppo.num_envs / dt


def timed(fn, trainer: Trainer, rollouts: int) -> float:
    _sync(trainer.device)
    t = time.perf_counter()
    for _ in range(rollouts):
        fn()
    _sync(trainer.device)
    return rollouts * trainer.config.ppo.batch_size / (time.perf_counter() - t)


class Bench:
    """One setting: its trainer is built once (warm-up included) and measured every round."""

    def __init__(self, base: dict, setting: dict, device: torch.device):
        cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
        for key, value in setting.items():
            section, name, _ = KEYS[key]
            if section:
                cfg[section][name] = value
        self.threads = setting.get("threads", torch.get_num_threads())
        torch.set_num_threads(self.threads)
        self.trainer = Trainer(TrainConfig.from_dict(cfg), device)
        self.trainer.collect()  # warm-up: torch.compile, cuDNN autotuning, allocator
        self.trainer.update()
        self.a, self.b, self.c = [], [], []

    def measure(self, rollouts: int) -> None:
        torch.set_num_threads(self.threads)
        t = self.trainer
        self.a.append(env_ceiling(t, max(50, t.config.ppo.num_steps)))
        self.b.append(timed(t.collect, t, rollouts))
        self.c.append(timed(lambda: (t.collect(), t.update()), t, rollouts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="easy", help="config name or path (default: easy)")
    ap.add_argument("--variant", default="coinrun")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=int, default=1)
    ap.add_argument("--settings", nargs="+", default=["amp=1", "amp=1,groups=2"],
                    help="override lists, the first is the baseline (default: amp=1 "
                         "amp=1,groups=2)")
    ap.add_argument("--rollouts", type=int, default=2, help="timed rollouts per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = ap.parse_args()

    settings = [parse_setting(s) for s in args.settings]
    base = load_config(resolve_config_path(args.preset)).to_dict()
    base["env"].update(variant=args.variant)
    base["model"].update(width=args.width)
    base["run"].update(device=args.device, total_steps=10**9, eval_variants=[])
    device = resolve_device(args.device)
    ppo = base["ppo"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, {os.cpu_count()} cores, torch {torch.__version__}, native bf16: "
          f"{native_bf16(device)}; {args.variant} {base['env'].get('distribution_mode', 'easy')}"
          f", width {args.width}; preset {args.preset}: {ppo['num_envs']} envs x "
          f"{ppo['num_steps']} steps, {ppo['epochs']} epochs x {ppo['num_minibatches']} "
          f"minibatches; {args.rounds} rounds x {args.rollouts} rollouts per setting")
    benches = [Bench(base, s, device) for s in settings]
    try:
        for r in range(args.rounds):
            for bench in benches:
                bench.measure(args.rollouts)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    finally:
        for bench in benches:
            bench.trainer.close()
    med = statistics.median
    c0 = med(benches[0].c)
    print(f"\n{'setting':<32s} {'(a) env only':>12s} {'(b) rollout':>12s} {'(c) PPO':>9s} "
          f"{'(c)/(a)':>8s} {'vs first':>9s} {'(c) range':>13s}")
    for text, bench in zip(args.settings, benches):
        a, b, c = med(bench.a), med(bench.b), med(bench.c)
        print(f"{text or '(preset)':<32s} {a:12.0f} {b:12.0f} {c:9.0f} {c / a:8.3f} "
              f"{c / c0:8.2f}x {min(bench.c):6.0f}-{max(bench.c):<6.0f}")


if __name__ == "__main__":
    main()
