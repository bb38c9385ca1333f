"""``interp sweep train``: one ``interp train`` run per training seed, as Ray tasks, each
packaged as an agent when it completes.

Sweep folder::

    DIR/config.yaml          the sweep's config (every seed's, but for run.seed)
    DIR/sweep.json           seeds with each one's status, steps and error
    DIR/runs/seed-<s>/       that seed's `interp train` run directory (resumable)
    DIR/agents/seed-<s>/     its packaged agent (`interp agents package` layout)
    DIR/logs/seed-<s>.log    its task's output: plan, progress lines, errors with tracebacks

Running the same command again skips packaged agents, resumes interrupted runs from their
``latest.pt`` and restarts runs that never saved. On a cluster, ``DIR`` must be a path that
every node sees (a shared filesystem), and every node needs the same interp install.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from pathlib import Path

from interp.train.config import TrainConfig, dump_config, load_config
from interp.train.trainer import _duration

from .runner import SweepError, connect, one_line, run_tasks, write_json

DONE = "packaged"


def parse_seeds(text: str) -> list[int]:
    """``0-7``, ``0,3,5`` or ``0-3,10-11`` -> sorted distinct non-negative seeds."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            first, last = -1, -1
        if not 0 <= first <= last:
            raise SweepError(f"cannot read seeds {text!r}: give e.g. 0-7, 0,3,5 or 0-3,10-11")
        seeds += range(first, last + 1)
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"seeds {text!r} repeat a seed")
    return sorted(seeds)


def _check_folder(config: TrainConfig, out: Path) -> None:
    """A new or empty folder, or this sweep's own folder with the same config."""
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out} is a file; choose a folder")
    saved = out / "config.yaml"
    if saved.is_file():
        differ = {k: v for k, v in config.diff(load_config(saved)).items() if k != "run.seed"}
        if differ:
            lines = "; ".join(f"{k}: sweep has {b!r}, now {a!r}" for k, (a, b) in differ.items())
            raise SweepError(f"{out} is a sweep with another config ({lines}); continue it with "
                             f"its own config {saved}, or choose a new --out")
    elif out.is_dir() and any(out.iterdir()):
        raise SweepError(f"{out} is not empty and not a sweep folder (no config.yaml); choose "
                         "a new --out")


def _last_steps(run_dir: Path) -> int:
    """Env steps of the last row of a run's progress.csv (0 without one)."""
    try:
        last = (run_dir / "progress.csv").read_text().rstrip("\n").rsplit("\n", 1)[-1]
        return int(last.split(",", 1)[0])
    except (FileNotFoundError, ValueError):
        return 0


def train_seed(config: dict, run_dir: str, agent_dir: str, log_path: str, threads: int,
               deadline: float | None) -> dict:
    """One seed's task: train (resuming from latest.pt when there is one, else afresh) until
    complete or ``deadline`` (epoch seconds), then package. Output goes to ``log_path``;
    errors come back as ``{"status": "failed", "error": ...}`` with the traceback in the log."""
    import torch

    from interp.package import package_run
    from interp.train import train

    torch.set_num_threads(threads)
    run, agent = Path(run_dir), Path(agent_dir)
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        print(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()} (pid "
              f"{os.getpid()}, {threads} thread(s))", flush=True)
        try:
            minutes = None if deadline is None else (deadline - time.time()) / 60
            if minutes is not None and minutes <= 0:
                return {"status": "not started", "steps": _last_steps(run)}
            resume = (run / "latest.pt").is_file()
            summary = train(TrainConfig.from_dict(config), run, resume=resume,
                            overwrite=not resume, max_minutes=minutes)
            if summary["status"] != "complete":
                return {"status": summary["status"], "steps": summary["steps"]}
            package_run(run, agent, overwrite=True)
            print(f"packaged {agent}", flush=True)
            return {"status": DONE, "steps": summary["steps"]}
        except Exception as e:  # reported per seed; the other seeds go on
            traceback.print_exc()
            return {"status": "failed", "error": one_line(e), "steps": _last_steps(run)}


def sweep_train(config: TrainConfig, seeds: list[int], out: str | os.PathLike, *,
                address: str | None = None, cpus_per_agent: int = 1,
                gpus_per_agent: float = 0.0, max_minutes: float | None = None,
                tick: float = 30.0) -> dict:
    """Train ``config`` once per seed as Ray tasks (``cpus_per_agent`` CPUs, torch threads
    and Procgen threads each; ``gpus_per_agent`` GPUs) and package each finished run.

    Resumable: packaged seeds are skipped, interrupted runs resume. ``max_minutes`` bounds the
    whole sweep: running seeds stop resumably, seeds not started by then are left for the
    next run. Prints a line per seed as it ends and a progress line every ``tick`` seconds.
    Returns ``{seed: {"status", "steps", "error"?}}`` (also in ``DIR/sweep.json``); a failed
    seed does not stop the others.
    """
    out = Path(out)
    if cpus_per_agent < 1 or gpus_per_agent < 0:
        raise SweepError("--cpus-per-agent must be >= 1 and --gpus-per-agent >= 0")
    if gpus_per_agent > 0 and config.run.device == "cpu":
        raise SweepError("the config trains on run.device cpu; pass --device cuda (or auto) "
                         "with --gpus-per-agent")
    config.env_spec()
    config.eval_specs()  # unknown variants fail here, before any work
    _check_folder(config, out)
    name = {s: f"seed-{s}" for s in seeds}
    state: dict[int, dict] = {}
    for s in seeds:
        done = (out / "agents" / name[s] / "manifest.json").is_file()
        state[s] = {"status": DONE if done else "pending", "steps": _last_steps(
            out / "runs" / name[s])}
    todo = [s for s in seeds if state[s]["status"] != DONE]
    ray = connect(address, cpus_per_agent, gpus_per_agent, "agent") if todo else None
    for sub in ("runs", "agents", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    total = config.total_steps
    print(f"sweep: {len(seeds)} seed(s) of {config.env.get('variant')}, {total:,} steps each; "
          f"{len(seeds) - len(todo)} already packaged, {len(todo)} to run "
          f"({cpus_per_agent} CPU{'s' * (cpus_per_agent > 1)}"
          f"{f', {gpus_per_agent:g} GPU' if gpus_per_agent else ''} per agent) in {out}",
          flush=True)

    def save_state() -> None:
        write_json(out / "sweep.json", {"config": "config.yaml", "total_steps": total,
                                        "seeds": {str(s): state[s] for s in seeds}})

    save_state()
    if not todo:
        return state
    deadline = None if max_minutes is None else time.time() + 60 * max_minutes
    task = ray.remote(train_seed).options(num_cpus=cpus_per_agent, num_gpus=gpus_per_agent)
    d = config.to_dict()
    d["run"]["env_threads"] = cpus_per_agent  # a runtime key: resume accepts a change
    refs = {}
    for s in todo:
        d["run"]["seed"] = s
        refs[task.remote(d, str(out / "runs" / name[s]), str(out / "agents" / name[s]),
                         str(out / "logs" / f"{name[s]}.log"), cpus_per_agent, deadline)] = s
    start = time.monotonic()
    steps0 = sum(state[s]["steps"] for s in todo)

    def on_result(s: int, result: dict) -> None:
        state[s] = {"steps": state[s]["steps"], **result}
        line = f"seed {s}: {result['status']} at {state[s]['steps']:,} / {total:,} steps"
        if result["status"] == DONE:
            line += f"; agent in {out / 'agents' / name[s]}"
        elif result["status"] == "failed":
            line += f"; {result.get('error')} (log: {out / 'logs' / name[s]}.log)"
        print(line, flush=True)
        save_state()

    def on_tick() -> None:
        running = []
        for s in todo:
            if state[s]["status"] == "pending":
                now = _last_steps(out / "runs" / name[s])
                if now != state[s]["steps"]:
                    running.append(f"seed {s} {100 * now / total:.0f}%")
                state[s]["steps"] = now
        done_steps = sum(state[s]["steps"] for s in todo)
        rate = (done_steps - steps0) / max(time.monotonic() - start, 1e-9)
        left = sum(total - state[s]["steps"] for s in todo if state[s]["status"] == "pending")
        count = {k: sum(state[s]["status"] == k for s in seeds) for k in (DONE, "failed")}
        print(f"sweep: {count[DONE]}/{len(seeds)} packaged, {count['failed']} failed; "
              f"{done_steps:,} / {len(todo) * total:,} steps of this run "
              f"({100 * done_steps / max(len(todo) * total, 1):.0f}%), {rate:.0f} steps/s, "
              f"ETA {_duration(left / rate if rate > 0 else float('nan'))}"
              f"{'; running: ' + ', '.join(running) if running else ''}", flush=True)

    run_tasks(ray, refs, on_result, on_tick, tick)
    save_state()
    return state
