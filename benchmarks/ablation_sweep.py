"""Cost of a full channel sweep: batched (`interp.ablate.ablate`, all conditions in one rollout)
against the naive loop (one evaluation per channel: a patched `run_episodes` per channel, plus
one baseline), in the same run, on the same levels; checks that both give the same episodes.

    .venv/bin/python benchmarks/ablation_sweep.py --layer embedder.block2.res1.resadd
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from interp import hooks
from interp.ablate import ablate
from interp.models import ImpalaAgent
from interp.rollout import run_episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="coinrun-random-coin")
    p.add_argument("--layer", default="embedder.block2.res1.resadd")
    p.add_argument("--episodes", type=int, default=8, help="per condition")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=33, help="conditions per batched rollout")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    torch.manual_seed(0)
    model = ImpalaAgent().to(args.device).eval()
    torch.nn.init.orthogonal_(model.fc_policy.weight, 1.0)  # a policy that depends on features
    run = dict(episodes=args.episodes, num_envs=args.num_envs, max_steps=args.max_steps,
               device=args.device)
    run_episodes(model, args.env, **{**run, "max_steps": 5})  # warm-up: imports, allocator

    t = time.perf_counter()
    sweep = ablate(model, args.env, args.layer, None, batch=args.batch, frames=0,
                   null_repeats=0, **run)  # the same work as the loop: no noise floor
    t_sweep = time.perf_counter() - t
    channels = len(sweep.conditions)

    t = time.perf_counter()
    loop = [run_episodes(model, args.env, **run)]
    for c in range(channels):
        with hooks.patch(model, {args.layer: hooks.zero([c])}):
            loop.append(run_episodes(model, args.env, **run))
    t_loop = time.perf_counter() - t

    same = all(np.array_equal(ep.metrics[k][0], sweep.episodes.metrics[k][g], equal_nan=True)
               for g, ep in enumerate(loop) for k in ep.metrics)
    steps = sum(int(ep.metrics["length"][ep.valid].sum()) for ep in loop)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, device {args.device}")
    print(f"{args.env}, {args.layer}: {channels} channels + baseline, {args.episodes} episodes "
          f"each ({args.num_envs} envs, max {args.max_steps} steps), {steps} agent steps")
    print(f"batched sweep : {t_sweep:7.1f} s")
    print(f"naive loop    : {t_loop:7.1f} s  (baseline + one evaluation per channel)")
    print(f"speed-up      : {t_loop / t_sweep:7.2f}x   identical episodes: {same}")


if __name__ == "__main__":
    main()
