"""Env steps/s of each variant vs its stock game (random actions), with and without labels.

    python benchmarks/env_throughput.py [--num 64] [--steps 300] [--label-steps 30]

Stock games are measured in the same run; ratios are against them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from interp.envs import list_variants, make_env


def steps_per_s(variant: str, num: int, steps: int, labels: bool, threads: int) -> float:
    env = make_env(variant, num=num, seed=0, num_threads=threads)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 15, (steps, num))
    for a in actions[:10]:  # warm up
        env.act(a)
    t = time.perf_counter()
    for a in actions:
        env.act(a)
        env.observe()
        if labels:
            env.labels()
    dt = time.perf_counter() - t
    env.close()
    return steps * num / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--label-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    variants = [v for v in list_variants() if v.game in ("coinrun", "maze", "heist")
                and v.assets is None]
    stock = {}
    print(f"num={args.num} threads={args.threads}; steps/s (ratio vs stock game)")
    print(f"{'variant':28s} {'plain':>16s} {'with labels':>16s}")
    for v in sorted(variants, key=lambda v: (v.game, v.name != v.game, v.name)):
        plain = steps_per_s(v.name, args.num, args.steps, False, args.threads)
        lab = steps_per_s(v.name, args.num, args.label_steps, True, args.threads)
        base = stock.setdefault(v.game, (plain, lab))
        print(f"{v.name:28s} {plain:9.0f} ({plain / base[0]:4.2f}) "
              f"{lab:9.0f} ({lab / base[1]:4.2f})")


if __name__ == "__main__":
    main()
