"""Does bf16 autocast learn as well as fp32? Paired short PPO runs over several seeds.

    python benchmarks/bf16_learning.py --preset coinrun-cpu --seeds 1 2 3 4 --steps 61440

For each seed it trains the preset twice from the same initialisation and levels, once in
fp32 and once with the conv trunk in bf16 autocast (``run.amp``), for ``--steps`` env steps
each (LR annealed over that length, no periodic evaluation), fp32 and bf16 runs alternating.
Per run it reports the mean training-episode return over the last third of the run, whether
any episode was rewarded, and the steps/s; then per precision the mean over seeds with a 95%
bootstrap interval, and the paired difference (bf16 - fp32). Run directories go to a
temporary folder (``--keep DIR`` to keep them); runs that a previous call finished in the
``--keep`` folder with the same length are reused, so seeds can be added one call at a time.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np

from interp.stats import bootstrap_mean
from interp.train import TrainConfig, load_config, train
from interp.train.config import resolve_config_path


def late_return(run_dir: Path, steps: int) -> tuple[float, bool]:
    """(mean return of the episodes that ended in the last third, any episode rewarded)."""
    with (run_dir / "progress.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["ep_return"]]
    late = [(float(r["ep_return"]), int(r["episodes"])) for r in rows
            if int(r["steps"]) > 2 * steps / 3]
    n = sum(k for _, k in late)
    mean = sum(v * k for v, k in late) / n if n else float("nan")
    return mean, any(float(r["ep_return"]) > 0 for r in rows)


def finished_run(run_dir: Path, steps: int) -> dict | None:
    """run.json of a run that completed ``steps`` steps in ``run_dir``, else None."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    done = info.get("status") == "complete" and info.get("total_steps") == steps
    return info if done else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="coinrun-cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=61440)
    ap.add_argument("--keep", type=Path, help="keep the run directories here")
    args = ap.parse_args()

    base = load_config(resolve_config_path(args.preset)).to_dict()
    base["run"].update(device="cpu", total_steps=args.steps, eval_variants=[], eval_every=0,
                       checkpoint_every=0)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bf16-learning-"))
    print(f"{args.preset} ({base['env']['variant']}), {args.steps:,} steps per run, seeds "
          f"{args.seeds}; runs in {root}")
    results: dict[bool, list[tuple[float, bool]]] = {False: [], True: []}
    for seed in args.seeds:
        for amp in (False, True):
            cfg = TrainConfig.from_dict({**base, "run": {**base["run"], "seed": seed, "amp": amp}})
            out = root / f"seed{seed}-{'bf16' if amp else 'fp32'}"
            info = finished_run(out, cfg.total_steps)
            if info is None:
                summary = train(cfg, out, progress=False, overwrite=out.exists())
                speed = f"{summary['session_steps_per_s']:.0f} steps/s"
            else:
                speed = f"reused ({info['steps'] / info['wall_time']:.0f} steps/s when it ran)"
            ret, rewarded = late_return(out, args.steps)
            results[amp].append((ret, rewarded))
            print(f"seed {seed} {'bf16' if amp else 'fp32'}: late return {ret:.2f}, "
                  f"rewarded episodes: {'yes' if rewarded else 'none'}, "
                  f"{speed}", flush=True)
    print()
    for amp in (False, True):
        rets = np.array([r for r, _ in results[amp]])
        m, lo, hi = bootstrap_mean(rets)
        found = sum(f for _, f in results[amp])
        print(f"{'bf16' if amp else 'fp32'}: late return {m:.2f} [{lo:.2f}, {hi:.2f}] over "
              f"{len(rets)} seeds; rewarded in {found}/{len(rets)} runs")
    diff = np.array([b[0] - a[0] for a, b in zip(results[False], results[True])])
    m, lo, hi = bootstrap_mean(diff)
    print(f"paired difference bf16 - fp32: {m:+.2f} [{lo:+.2f}, {hi:+.2f}]")


if __name__ == "__main__":
    main()
