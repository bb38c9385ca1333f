"""Keys and Chests (our numpy game) against stock Heist: env steps/s, labels, state get/set,
and PPO training steps/s against a stock-engine config of the same size.

    .venv/bin/python benchmarks/keys_chests.py [--num 64] [--steps 300] [--repeats 3]
        [--ppo-rollouts 2]

Random actions. Per round, in this order: stock ``heist`` (the Procgen engine, ``num_threads``
threads), ``keys-chests`` (training preset) and ``keys-chests-test``; each plain
(``act`` + ``observe``), with ``labels()`` after every step, and the per-env cost of
``get_state_bytes`` + ``set_state``. With ``--ppo-rollouts N``: N rollouts + updates of the
trainer on ``keys-chests-cpu.yaml`` and on ``maze-top-right-cpu.yaml`` (same PPO sizes, both
with the same ``amp``). Rounds are interleaved so the ratios share one machine state; the
tables show medians over rounds and ratios against the stock engine measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from interp.envs import make_env

VARIANTS = ("heist", "keys-chests", "keys-chests-test")
PPO_CONFIGS = ("maze-top-right-cpu", "keys-chests-cpu")  # the stock-engine baseline first


def measure(variant: str, num: int, steps: int, label_steps: int, threads: int) -> dict:
    env = make_env(variant, num=num, seed=0, num_threads=threads)
    actions = np.random.default_rng(0).integers(0, 15, (steps + 10, num))
    for a in actions[:10]:  # warm up (sprites, caches)
        env.act(a)
        env.observe()
    t = time.perf_counter()
    for a in actions[10:]:
        env.act(a)
        env.observe()
    plain = steps * num / (time.perf_counter() - t)
    t = time.perf_counter()
    for a in actions[:label_steps]:
        env.act(a)
        env.observe()
        env.labels()
    labelled = label_steps * num / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(num):
        env.set_state(i, env.get_state_bytes(i))
    state_ms = (time.perf_counter() - t) / num * 1000
    env.close()
    return {"plain": plain, "labels": labelled, "state_ms": state_ms}


def ppo_steps_per_s(config: str, rollouts: int, amp: bool) -> float:
    """Full PPO (rollout + update) env steps/s of a training config on the CPU."""
    import torch

    from interp.train import TrainConfig, Trainer, load_config
    from interp.train.config import resolve_config_path

    d = load_config(resolve_config_path(config)).to_dict()
    d["run"].update(device="cpu", amp=amp, total_steps=10**9)
    trainer = Trainer(TrainConfig.from_dict(d), torch.device("cpu"))
    try:
        trainer.collect()  # warm up
        trainer.update()
        t = time.perf_counter()
        for _ in range(rollouts):
            trainer.collect()
            trainer.update()
        return rollouts * trainer.config.ppo.batch_size / (time.perf_counter() - t)
    finally:
        trainer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--label-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2, help="Procgen threads (heist)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ppo-rollouts", type=int, default=0, help="0: skip the PPO comparison")
    ap.add_argument("--no-amp", action="store_true", help="PPO in fp32 (default: bf16 autocast)")
    args = ap.parse_args()
    runs = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for v in VARIANTS:
            runs[v].append(measure(v, args.num, args.steps, args.label_steps, args.threads))
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    base = med["heist"]
    print(f"num={args.num} threads={args.threads} repeats={args.repeats}; medians "
          "(ratio vs heist in this run)")
    print(f"{'variant':18s} {'steps/s plain':>20s} {'steps/s labels':>20s} "
          f"{'get+set ms/env':>16s}")
    for v, m in med.items():
        print(f"{v:18s} {m['plain']:12.0f} ({m['plain'] / base['plain']:4.2f}) "
              f"{m['labels']:12.0f} ({m['labels'] / base['labels']:4.2f}) "
              f"{m['state_ms']:9.3f} ({m['state_ms'] / base['state_ms']:4.2f})")
    if not args.ppo_rollouts:
        return
    ppo = {c: [] for c in PPO_CONFIGS}
    for _ in range(args.repeats):
        for c in PPO_CONFIGS:
            ppo[c].append(ppo_steps_per_s(c, args.ppo_rollouts, not args.no_amp))
    first = statistics.median(ppo[PPO_CONFIGS[0]])
    print(f"\nPPO, {args.ppo_rollouts} rollouts + updates per round, amp={not args.no_amp}; "
          "env steps/s, medians (ratio vs the first)")
    for c, v in ppo.items():
        print(f"{c:22s} {statistics.median(v):9.0f} ({statistics.median(v) / first:4.2f})")


if __name__ == "__main__":
    main()
