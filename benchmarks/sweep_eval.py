"""Evaluating a population of agents: Ray tasks on all cores vs a serial loop, in one run.

    .venv/bin/python benchmarks/sweep_eval.py [--agents 8] [--episodes 64] [--num-envs 32]

Makes ``--agents`` random-init colour-shape agents (width 1, one init seed each) in a temporary
folder and evaluates all of them on Langosco et al.'s Maze II test (red line vs yellow gem),
the same levels and episodes for both arms:

- serial: :func:`interp.evaluate.evaluate_agent` on each agent in turn, in this process, with
  ``--serial-threads`` torch threads (default: every core, what a user without Ray gets; on
  a machine loaded by other jobs 1 thread is much faster, see docs/benchmarks.md);
- Ray: :func:`interp.sweep.sweep_eval` on the folder, one task per agent with 1 CPU each on a
  local Ray instance over all cores (``ray.init`` timed on its own).

Prints both wall times, their ratio, and whether the two tables agree agent by agent.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from interp.checkpoint import save_agent
from interp.evaluate import evaluate_agent
from interp.models import ImpalaAgent, ModelConfig
from interp.sweep import Setting, sweep_eval

TRAIN = {"variant": "colour-shape", "distribution_mode": "easy", "num_levels": 0,
         "start_level": 0, "options": {"goal": "yellow-line", "distractor": None,
                                       "background": "black", "maze_size": 5,
                                       "dead_ends": False}}
TEST = Setting("colour-shape", {"goal": "red-line", "distractor": "yellow-gem"})
COMPARED = ("success", "preference", "length")


def make_agents(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        torch.manual_seed(i)
        paths.append(save_agent(folder / f"agent-{i}.pt", ImpalaAgent(ModelConfig()),
                                env_spec=TRAIN, seed=i, steps=0))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--num-envs", type=int, default=32)
    ap.add_argument("--serial-threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(args.serial_threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pop"
        paths = make_agents(folder, args.agents)

        t0 = time.perf_counter()
        serial = {}
        for p in paths:
            r = evaluate_agent(p, TEST.variant, args.episodes, num_envs=args.num_envs,
                               device="cpu", options=TEST.options)
            serial[p.stem] = {m: r[m].value for m in COMPARED}
        t_serial = time.perf_counter() - t0

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        t_init = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = sweep_eval(folder, [TEST], args.episodes, num_envs=args.num_envs,
                           out=Path(tmp) / "eval", cpus_per_task=1, tick=600)
        t_ray = time.perf_counter() - t0
        ray.shutdown()
        with open(table, newline="") as f:
            parallel = {r["agent"]: {m: float(r[m] or "nan") for m in COMPARED}
                        for r in csv.DictReader(f)}
    same = all(math.isclose(serial[a][m], parallel[a][m], rel_tol=1e-5)  # CSV: 6 digits
               or math.isnan(serial[a][m]) and math.isnan(parallel[a][m])
               for a in serial for m in COMPARED)
    print(f"{args.agents} agents x {args.episodes} episodes ({args.num_envs} envs) of "
          f"{TEST.label}, {cores} cores, torch {torch.__version__}")
    print(f"serial loop (torch threads {torch.get_num_threads()}): {t_serial:.1f} s")
    print(f"Ray, {cores} tasks of 1 CPU at a time:      {t_ray:.1f} s (+ {t_init:.1f} s "
          "ray.init)")
    print(f"speed-up serial / Ray: {t_serial / t_ray:.2f}x ({t_serial / (t_ray + t_init):.2f}x "
          "with ray.init)")
    print(f"same results agent by agent ({', '.join(COMPARED)}): {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
