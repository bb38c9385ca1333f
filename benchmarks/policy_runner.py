"""Cost of running agents through `PolicyRunner` (the object every episode loop uses to carry a
recurrent agent's memory) against calling the model directly, per vectorized step.

Baseline, in the same run: a feed-forward width-1 agent called as ``model(x)``. Measured: the
same agent through a runner (a call plus ``reset`` from the ``first`` flags, as the loops do),
and a recurrent agent (GRU, hidden 256) through a runner. Rounds interleave the three, medians
of per-round means are reported.

    .venv/bin/python benchmarks/policy_runner.py [--batch 64] [--rounds 7] [--steps 20]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from interp.models import ImpalaAgent
from interp.rollout import PolicyRunner


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ff, rec = ImpalaAgent().eval(), ImpalaAgent(gru_hidden=256).eval()
    x = torch.rand(args.batch, 3, 64, 64)
    rows = np.arange(args.batch)
    first = np.random.default_rng(0).random(args.batch) < 0.02  # ~ episode starts per step
    runners = {"ff runner": PolicyRunner(ff, args.batch),
               "gru runner": PolicyRunner(rec, args.batch)}

    def through(runner):
        def step():
            runner(x, rows)
            runner.reset(first)
        return step

    cases = {"ff direct": lambda: ff(x), "ff runner": through(runners["ff runner"]),
             "gru runner": through(runners["gru runner"])}
    times: dict[str, list[float]] = {k: [] for k in cases}
    with torch.inference_mode():
        for fn in cases.values():
            fn()
        for _ in range(args.rounds):
            for name, fn in cases.items():
                t = time.perf_counter()
                for _ in range(args.steps):
                    fn()
                times[name].append((time.perf_counter() - t) / args.steps)
    base = np.median(times["ff direct"])
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), batch {args.batch}, {args.rounds} rounds x {args.steps} "
          "steps")
    for name, t in times.items():
        print(f"{name:11s} {np.median(t) * 1e3:8.2f} ms/step  ratio {np.median(t) / base:.3f}")


if __name__ == "__main__":
    main()
