"""Time `run_probe` on every default recorded layer of a synthetic 50k-step recording.

The file follows the recording schema (docs/recording-format.md) with the real width-1 layer
shapes of `interp record`'s default layer set, float32, uncompressed (the recorder's default),
Gaussian activations with the feature planted in two block2 channels, random frames, and
levels of 100 steps. It is written directly with h5py (a benchmark fixture: a real 50k-step
recording takes ~30 min on the 2-core VM). The baseline, in the same run, is one plain read of
every layer and the frames in the same batches (the I/O floor of a streaming probe).

    .venv/bin/python benchmarks/probe_speed.py --rows 50000 --file /tmp/probe_bench.h5
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import h5py
import numpy as np
import torch

import activations
from interp.envs.labels import LABEL_DOCS
from interp import hooks
from interp.models import ImpalaAgent, ModelConfig
from interp.record import DEFAULT_LAYERS
from probes import run_probe

LEVEL_STEPS = 100
LABELS = ("level_seed", "goal_present", "goal_visible", "goal_dx")


def layer_shapes() -> dict[str, tuple[int, ...]]:
    model = ImpalaAgent(ModelConfig())
    return hooks.layer_shapes(model, DEFAULT_LAYERS)


def write_fixture(path: Path, rows: int, block: int = 1000) -> None:
    """A recording-schema file: planted goal_visible in block2 channels 5 and 9 at (4, 10)."""
    shapes = layer_shapes()
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs.update({
            "schema_version": 1, "status": "complete", "num_rows": rows,
            "num_episodes": rows // LEVEL_STEPS, "episodes_target": rows // LEVEL_STEPS,
            "config": json.dumps({"layers": list(shapes)}),
            "env_spec": json.dumps({"variant": "coinrun-random-coin"}),
            "agent_manifest": json.dumps({"model_config": ModelConfig().to_dict()}),
            "layers": json.dumps({k: list(v) for k, v in shapes.items()}),
            "label_docs": json.dumps({k: LABEL_DOCS[k] for k in LABELS})})
        for name, shape in shapes.items():
            chunk = max(1, min(4096, rows, 2**20 // (4 * int(np.prod(shape)))))
            f.create_dataset(f"activations/{name}", (rows, *shape), np.float32,
                             chunks=(chunk, *shape))
        f.create_dataset("steps/obs", (rows, 64, 64, 3), np.uint8, chunks=(85, 64, 64, 3))
        level = np.arange(rows) // LEVEL_STEPS
        visible = (rng.random(rows) < 0.35).astype(np.float32)
        f["labels/level_seed"] = level
        f["labels/goal_present"] = np.ones(rows, np.float32)
        f["labels/goal_visible"] = visible
        f["labels/goal_dx"] = rng.normal(size=rows).astype(np.float32)
        for i in range(0, rows, block):
            j = min(i + block, rows)
            for name, shape in shapes.items():
                x = rng.standard_normal((j - i, *shape), dtype=np.float32)
                if name.startswith("embedder.block2"):
                    x[:, [5, 9], 4, 10] += 1.5 * visible[i:j, None]
                f[f"activations/{name}"][i:j] = x
            f["steps/obs"][i:j] = rng.integers(0, 256, (j - i, 64, 64, 3), dtype=np.uint8)


def read_everything(path: Path, batch: int) -> float:
    t = time.perf_counter()
    with activations.open(path) as rec:
        for name in [*(f"activations/{n}" for n in rec.layers), "steps/obs"]:
            ds = rec.dataset(name)
            for i in range(0, rec.num_steps, batch):
                ds[i:i + batch]
    return time.perf_counter() - t


def _rows(path: Path) -> int:
    with activations.open(path) as rec:
        return rec.num_steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--file", type=Path, default=Path("/tmp/probe_bench.h5"))
    p.add_argument("--feature", default="coin_visible")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--no-umap", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.torch_threads)

    if not args.file.exists() or _rows(args.file) != args.rows:
        t = time.perf_counter()
        write_fixture(args.file, args.rows)
        print(f"wrote {args.file} ({args.file.stat().st_size / 2**30:.1f} GiB) in "
              f"{time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    res = run_probe(args.file, args.feature, umap=not args.no_umap, log=print)
    total = time.perf_counter() - t
    read = read_everything(args.file, 1024)
    s = res.info["seconds"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, torch threads "
          f"{args.torch_threads}; {args.rows:,} rows, {len(res.layers)} layers")
    print(f"probe total {total:.0f} s = pass {s['pass']:.0f} (reads, reduces, random agent on "
          f"{res.info['rows_per_probe'].get('random_agent', 0):,} rows) + fit & score "
          f"{s['fit']:.0f} + channels {s.get('channels', 0):.0f} + spatial "
          f"{s.get('spatial', 0):.0f} + umap {s.get('umap', 0):.0f}")
    print(f"plain read of every layer and the frames: {read:.0f} s "
          f"(probe / read = {total / read:.1f}x)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB; "
          f"file {args.file.stat().st_size / 2**30:.1f} GiB")
    best = res.score("agent", res.best_layer).value
    peak = np.unravel_index(np.nanargmax(res.spatial), res.spatial.shape)
    print(f"best layer {res.best_layer}: {res.metric} {best:.3f}; spatial peak at {peak}; "
          f"top channels {[r['channel'] for r in res.channels[:3]]}")


if __name__ == "__main__":
    main()
