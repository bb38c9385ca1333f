"""PPO training throughput in env steps/s against the env-stepping ceiling, in one run.

    python benchmarks/train_throughput.py --device cuda                     # paper easy preset
    python benchmarks/train_throughput.py --device cuda --preset hard-500   # 256 envs
    python benchmarks/train_throughput.py --device cpu --num-envs 16 --num-steps 32

For each --env-groups value it measures (a) env stepping alone (random actions, same envs,
groups and threads), (b) rollouts only (policy inference + env) and (c) full PPO
(rollout + update with the preset's epochs/minibatches), and prints (b)/(a) and (c)/(a).
Needs only the repo and the procgen wheel.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from interp.device import resolve_device
from interp.envs import make_env
from interp.train import TrainConfig, Trainer, load_config
from interp.train.config import resolve_config_path
from interp.train.trainer import _group_seed


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
    fn()  # warm-up (torch.compile, cuDNN autotuning, allocator)
    _sync(trainer.device)
    t = time.perf_counter()
    for _ in range(rollouts):
        fn()
    _sync(trainer.device)
    return rollouts * trainer.config.ppo.batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="easy", help="config name or path (default: easy)")
    ap.add_argument("--variant", default="coinrun")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-envs", type=int, help="override ppo.num_envs")
    ap.add_argument("--num-steps", type=int, help="override ppo.num_steps")
    ap.add_argument("--width", type=int, default=1)
    ap.add_argument("--env-groups", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--env-threads", type=int, default=0, help="per group; 0 = cores/groups")
    ap.add_argument("--rollouts", type=int, default=3, help="timed rollouts per measurement")
    ap.add_argument("--torch-threads", type=int, help="torch.set_num_threads (CPU runs)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-amp", action="store_true")
    args = ap.parse_args()

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    base = load_config(resolve_config_path(args.preset)).to_dict()
    base["env"].update(variant=args.variant)
    base["model"].update(width=args.width)
    base["ppo"].update({k: v for k, v in (("num_envs", args.num_envs),
                                          ("num_steps", args.num_steps)) if v})
    base["run"].update(device=args.device, compile=args.compile, amp=not args.no_amp,
                       env_threads=args.env_threads, total_steps=10**9)
    device = resolve_device(args.device)
    ppo = base["ppo"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads); {args.variant} "
          f"{base['env'].get('distribution_mode', 'easy')}, width {args.width}, "
          f"{ppo['num_envs']} envs x {ppo['num_steps']} steps, {ppo['epochs']} epochs x "
          f"{ppo['num_minibatches']} minibatches, amp={not args.no_amp} compile={args.compile}")
    print(f"{'groups':>6s} {'(a) env only':>14s} {'(b) rollout':>18s} {'(c) PPO':>18s}")
    for groups in args.env_groups:
        base["run"]["env_groups"] = groups
        trainer = Trainer(TrainConfig.from_dict(base), device)
        try:
            a = env_ceiling(trainer, max(50, ppo["num_steps"]))
            b = timed(trainer.collect, trainer, args.rollouts)
            c = timed(lambda: (trainer.collect(), trainer.update()), trainer, args.rollouts)
        finally:
            trainer.close()
        print(f"{groups:6d} {a:14.0f} {b:11.0f} ({b / a:.2f}) {c:11.0f} ({c / a:.2f})",
              flush=True)


if __name__ == "__main__":
    main()
