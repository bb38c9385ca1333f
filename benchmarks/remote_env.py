"""Cost of running envs in a worker process (``RemoteVecEnv``, used for variants with their own
sprite set) against the same env in-process, in one run: stock maze, random actions.

    .venv/bin/python benchmarks/remote_env.py [--repeats 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from interp.envs import EnvSpec, VecEnv
from interp.envs.remote import RemoteVecEnv


def steps_per_second(env, steps: int) -> float:
    rng = np.random.default_rng(0)
    env.observe()
    for _ in range(20):  # warm-up
        env.act(rng.integers(0, 15, env.num))
        env.observe()
    t = time.perf_counter()
    for _ in range(steps):
        env.act(rng.integers(0, 15, env.num))
        env.observe()
    return steps * env.num / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=4)
    args = p.parse_args()
    spec = EnvSpec("maze")
    for num in (64, 1):
        steps = 6400 // num
        with VecEnv(spec, num=num) as local, RemoteVecEnv(spec, num=num) as remote:
            for _ in range(args.repeats):  # interleaved, so both meet the same machine state
                a, b = steps_per_second(local, steps), steps_per_second(remote, steps)
                print(f"num={num:3d}  in-process {a:8.0f}  remote {b:8.0f} env steps/s  "
                      f"ratio {b / a:.2f}x  (+{(num / b - num / a) * 1e3:.2f} ms per step)")


if __name__ == "__main__":
    main()
