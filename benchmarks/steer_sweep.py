"""Cost of a steering sweep: batched (`interp.causal.steer.steer`: the baseline, the vector
and the random control at every coefficient in one rollout) against a loop (one patched
`run_episodes` per condition, tracing the same labels), in the same run, on the same levels;
checks that both give the same episodes.

    .venv/bin/python benchmarks/steer_sweep.py --coefs -3 -2 -1 1 2 3
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from interp import hooks
from interp.causal.steer import steer
from interp.causal.vectors import random_like
from interp.checkpoint import load_agent
from interp.envs import EnvSpec
from interp.evaluate import outcome_keys
from interp.rollout import StepTrace, run_episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agent", default="agents/maze-top-right-cpu/agent.pt")
    p.add_argument("--env", default="maze")
    p.add_argument("--layer", default="embedder.block2.res1.resadd")
    p.add_argument("--coefs", type=float, nargs="+", default=[-3, -2, -1, 1, 2, 3])
    p.add_argument("--episodes", type=int, default=8, help="per condition")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    model = load_agent(args.agent).model
    spec = EnvSpec(args.env)
    vector = np.random.default_rng(0).standard_normal(
        hooks.layer_shapes(model, args.layer)[args.layer]).astype(np.float32)
    run = dict(episodes=args.episodes, num_envs=args.num_envs, max_steps=args.max_steps)
    run_episodes(model, spec, **{**run, "max_steps": 5})  # warm-up: imports, allocator

    t = time.perf_counter()
    res = steer(model, spec, args.layer, vector, args.coefs, frames=0, batch=64, **run)
    t_batched = time.perf_counter() - t

    control, keys = random_like(vector, 0), outcome_keys(spec)
    t = time.perf_counter()
    loop = []
    for c in res.conditions:
        v = {"baseline": 0 * vector, "steer": vector, "random": control}[c.kind]
        with hooks.patch(model, {args.layer: hooks.add(torch.as_tensor(v), scale=c.coefficient)}):
            loop.append(run_episodes(model, spec, on_step=StepTrace(keys),
                                     step_labels=bool(keys), **run))
    t_loop = time.perf_counter() - t

    same = all(np.array_equal(ep.metrics[k][0], res.episodes.metrics[k][g], equal_nan=True)
               for g, ep in enumerate(loop) for k in ep.metrics)
    steps = sum(int(ep.metrics["length"][ep.valid].sum()) for ep in loop)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}")
    print(f"{args.agent} on {args.env}, {args.layer}: {len(res.conditions)} conditions "
          f"(baseline + vector and random at {len(args.coefs)} coefficients), "
          f"{args.episodes} episodes each ({args.num_envs} envs, max {args.max_steps} steps), "
          f"{steps} agent steps")
    print(f"batched sweep : {t_batched:7.1f} s")
    print(f"loop          : {t_loop:7.1f} s  (one patched evaluation per condition)")
    print(f"speed-up      : {t_loop / t_batched:7.2f}x   identical episodes: {same}")


if __name__ == "__main__":
    main()
