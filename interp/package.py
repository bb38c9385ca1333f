"""Package a finished training run as a committed agent: the final checkpoint (no optimizer)
with the config, training log and curve that produced it, and a manifest with its SHA-256.

Layout of ``agents/<name>/``::

    agent.pt          final agent (interp-agent format: model config, env spec, seed, steps)
    config.yaml       the run's resolved training config
    progress.csv      training log, one row per rollout (see docs/training.md)
    curve.png         training curve drawn from progress.csv
    manifest.json     sha256 and size of agent.pt, steps, seed, env spec, code version, run status
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from interp.checkpoint import file_sha256, load_agent
from interp.errors import InterpError
from interp.outputs import check_output
from interp.plots import training_curve

RUN_FILES = ("config.yaml", "progress.csv")


class PackageError(InterpError, ValueError):
    """A run that cannot be packaged (missing, unfinished) or a destination in the way."""


def final_checkpoint(run_dir: Path) -> Path:
    """The agent checkpoint with the most steps in ``run_dir/checkpoints``."""
    found = sorted(run_dir.glob("checkpoints/agent_*.pt"),
                   key=lambda p: int(p.stem.split("_")[1]))
    if not found:
        raise PackageError(f"{run_dir} has no checkpoints/agent_*.pt; is it an `interp train` "
                           "run directory?")
    return found[-1]


def package_run(run_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> dict:
    """Copy ``run_dir``'s final agent and records into ``out``; return the manifest."""
    run_dir, out = Path(run_dir), Path(out)
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except FileNotFoundError:
        raise PackageError(f"{run_dir}/run.json not found: pass an `interp train` run "
                           "directory") from None
    if run.get("status") != "complete":
        raise PackageError(f"{run_dir} is {run.get('status')} at {run.get('steps')} of "
                           f"{run.get('total_steps')} steps; finish it with `interp train ... "
                           "--resume` before packaging")
    for name in RUN_FILES:
        if not (run_dir / name).exists():
            raise PackageError(f"{run_dir}/{name} is missing")
    if out.resolve() == run_dir.resolve():
        raise PackageError(f"--out {out} is the run directory itself; package into another "
                           "folder, e.g. agents/<name>")
    check_output(out, "dir", overwrite=overwrite)
    ckpt = final_checkpoint(run_dir)
    agent = load_agent(ckpt)
    m = agent.manifest
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ckpt, out / "agent.pt")
    for name in RUN_FILES:
        shutil.copyfile(run_dir / name, out / name)
    training_curve(out / "progress.csv", out / "curve.png",
                   f"{out.name}: {m['env_spec']['variant']}, seed {m['seed']}, "
                   f"{m['steps']:,} steps")
    manifest = {
        "agent": "agent.pt", "sha256": file_sha256(out / "agent.pt"),
        "bytes": (out / "agent.pt").stat().st_size, "steps": m["steps"], "seed": m["seed"],
        "env_spec": m["env_spec"], "model_config": m["model_config"],
        "code_version": m["code_version"], "created": m["created"],
        "params": agent.model.num_params(), "source_checkpoint": ckpt.name,
        "run": {k: run.get(k) for k in ("status", "steps", "device", "started", "wall_time")},
        "final_metrics": m["metrics"],
        **({"init_from": m["extra"]["init_from"]}
           if (m["extra"] or {}).get("init_from") else {}),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def verify_package(directory: str | Path) -> dict:
    """Check ``agent.pt`` against ``manifest.json`` (size and SHA-256); return the manifest."""
    directory = Path(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    digest = file_sha256(directory / manifest["agent"])
    if digest != manifest["sha256"]:
        raise PackageError(f"{directory}/{manifest['agent']} does not match its manifest "
                           f"(sha256 {digest[:12]}..., manifest {manifest['sha256'][:12]}...): "
                           "the file was changed or is a Git LFS pointer")
    return manifest
