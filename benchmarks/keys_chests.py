"""Keys and Chests (our numpy game) against stock Heist: env steps/s, labels, state get/set.

    .venv/bin/python benchmarks/keys_chests.py [--num 64] [--steps 300] [--repeats 3]

Random actions. Per round, in this order: stock ``heist`` (the Procgen engine, ``num_threads``
threads), ``keys-chests`` (training preset) and ``keys-chests-test``; each plain
(``act`` + ``observe``), with ``labels()`` after every step, and the per-env cost of
``get_state_bytes`` + ``set_state``. Rounds are interleaved so the ratios share one machine
state; the table shows medians over rounds and ratios against heist measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from interp.envs import make_env

VARIANTS = ("heist", "keys-chests", "keys-chests-test")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--label-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2, help="Procgen threads (heist)")
    ap.add_argument("--repeats", type=int, default=3)
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


if __name__ == "__main__":
    main()
