"""``interp sweep eval``: every agent of a folder x every test setting, as Ray tasks, into one
table with per-agent rates and means and their 95% intervals.

Each (agent, setting) pair is one :func:`interp.evaluate.evaluate_agent` call with the same
env seed, so every agent plays the same fixed levels with the same random numbers. Output
folder (default ``DIR/eval``)::

    eval.json              what was evaluated: settings, episodes, seeds, code version, the
                           agents' folder (relative to eval.json's) and files (relative to it)
    parts/<agent>@<i>.json one finished pair (an interrupted eval keeps them and resumes)
    population.csv         one row per (agent, setting): see docs/sweeps.md for the columns
    population.parquet     the same, when pyarrow is importable
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from interp.checkpoint import LoadedAgent, file_sha256, load_agent
from interp.errors import InterpError
from interp.tables import write_csv
from interp.version import code_version

from .runner import SweepError, connect, one_line, run_tasks, write_json

TABLE = "population.csv"


@dataclass(frozen=True)
class Setting:
    """A test env: a variant and the options given for it (the agent's training options
    still apply on its training variant, as in ``interp eval``)."""

    variant: str
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.variant}[{opts}]" if opts else self.variant


def parse_settings(items: list[str]) -> list[Setting]:
    """``--env`` / ``-o`` values in command-line order: a value without ``=`` starts a
    setting (a variant name), each ``KEY=VALUE`` after it is one of its options (JSON values
    where they parse)."""
    settings: list[tuple[str, dict]] = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            settings.append((item, {}))
            continue
        if not settings:
            raise SweepError(f"option {item!r} comes before any --env; put each -o after the "
                             "--env it belongs to")
        try:
            settings[-1][1][key] = json.loads(value)
        except json.JSONDecodeError:
            settings[-1][1][key] = value
    if not settings:
        raise SweepError("give at least one --env VARIANT")
    out = [Setting(v, o) for v, o in settings]
    if len({s.label for s in out}) != len(out):
        raise SweepError("the same --env setting is given twice")
    return out


@dataclass(frozen=True)
class AgentFile:
    """A checkpoint found in the folder, named by its path relative to the folder."""

    name: str
    path: Path
    manifest: dict

    def env_spec(self, setting: Setting, distribution_mode: str | None):
        """The setting's env for this agent, as :meth:`LoadedAgent.env_spec` builds it."""
        return LoadedAgent(None, self.manifest, None, "", path=self.path).env_spec(
            setting.variant, distribution_mode, setting.options)


def find_agents(folder: str | os.PathLike) -> list[AgentFile]:
    """The agents of ``folder``: every packaged ``agent.pt`` below it (named by its folder)
    and every other ``*.pt`` directly in it (named by the file); in a sweep folder those of
    ``DIR/agents``. Each must load; ``checkpoints/`` and ``latest.pt`` of run folders are not
    agents."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SweepError(f"{folder} is not a folder")
    root = folder / "agents" if (folder / "sweep.json").is_file() else folder
    paths = sorted(root.rglob("agent.pt")) + sorted(
        p for p in root.glob("*.pt") if p.name not in ("agent.pt", "latest.pt"))
    if not paths:
        raise SweepError(f"no agents in {folder}: expected packaged agents (*/agent.pt) or "
                         "checkpoint files (*.pt)")
    agents, names = [], set()
    for p in paths:
        name = (p.parent if p.name == "agent.pt" else p.with_suffix("")).relative_to(root)
        name = str(name) if str(name) != "." else root.name
        if name in names:
            raise SweepError(f"two agents in {folder} are both named {name!r}; rename one")
        names.add(name)
        try:
            agents.append(AgentFile(name, p, load_agent(p).manifest))
        except InterpError as e:
            raise SweepError(f"{p} is not a readable agent: {e}") from None
    return agents


def evaluate_part(agent: dict, setting: dict, request: dict, device: str, threads: int,
                  part: str) -> dict:
    """One (agent, setting) task: evaluate, write the row to ``part`` atomically, return it."""
    import torch

    from interp.evaluate import evaluate_agent

    torch.set_num_threads(threads)
    try:
        r = evaluate_agent(agent["path"], setting["variant"], request["episodes"],
                           seed=request["seed"], num_envs=request["num_envs"], device=device,
                           distribution_mode=request["distribution_mode"],
                           options=setting["options"])
    except Exception as e:  # reported per pair; the others go on
        return {"status": "failed", "error": one_line(e)}
    row = {"agent": agent["name"], "train_seed": agent["seed"], "steps": agent["steps"],
           "setting": Setting(**setting).label, "variant": r.env_spec["variant"],
           "distribution_mode": r.env_spec["distribution_mode"],
           "options": json.dumps(r.env_spec["options"], sort_keys=True), "n": r.n,
           "truncated": r.truncated, "sha256": agent["sha256"]}
    for m in r.metrics:
        row.update({m.name: m.value, f"{m.name}_lo": m.lo, f"{m.name}_hi": m.hi,
                    f"{m.name}_n": m.n})
    row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
    write_json(Path(part), row)
    return {"status": "done", "row": row}


def _request(settings, episodes, seed, num_envs, distribution_mode) -> dict:
    return {"settings": [s.__dict__ for s in settings], "episodes": episodes, "seed": seed,
            "num_envs": num_envs, "distribution_mode": distribution_mode}


def _prepare(out: Path, request: dict, overwrite: bool) -> None:
    """Check that ``out`` is new or holds an eval of the same request (to resume); with
    ``overwrite``, remove a previous eval's files."""
    meta = out / "eval.json"
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out} is a file; choose a folder")
    if overwrite:
        for p in (out / "parts", meta, out / TABLE, out / "population.parquet"):
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    elif meta.is_file():
        old = json.loads(meta.read_text())
        differ = [k for k in request if old.get(k) != request[k]]
        if differ:
            raise SweepError(f"{out} holds an evaluation with other {', '.join(differ)}; pass "
                             "--overwrite to replace it, or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise SweepError(f"{out} is not empty and holds no evaluation (no eval.json); choose "
                         "another --out")


def sweep_eval(folder: str | os.PathLike, settings: list[Setting], episodes: int = 256, *,
               seed: int = 0, num_envs: int = 64, distribution_mode: str | None = None,
               out: str | os.PathLike | None = None, overwrite: bool = False,
               address: str | None = None, cpus_per_task: int = 1, gpus_per_task: float = 0.0,
               tick: float = 30.0) -> Path:
    """Evaluate every agent of ``folder`` (:func:`find_agents`) on every setting, one Ray task
    per pair (``cpus_per_task`` torch threads; on a GPU when ``gpus_per_task`` > 0); write the
    table to ``out`` (default ``folder/eval``) and return the CSV's path.

    Finished pairs of an interrupted run (same settings, episodes, seeds) are kept; a pair
    whose agent file changed since is evaluated again. A failed pair is reported and left out
    of the table; the command can be rerun to retry it.
    """
    if episodes < 1 or num_envs < 1 or cpus_per_task < 1 or gpus_per_task < 0:
        raise SweepError("--episodes, --num-envs and --cpus-per-task must be >= 1, "
                         "--gpus-per-task >= 0")
    agents = find_agents(folder)
    for a in agents:  # every pair's env spec must be valid before any work
        for s in settings:
            try:
                a.env_spec(s, distribution_mode)
            except InterpError as e:
                raise SweepError(f"--env {s.label} for {a.name}: {e}") from None
    out = Path(out) if out is not None else Path(folder) / "eval"
    request = _request(settings, episodes, seed, num_envs, distribution_mode)
    _prepare(out, request, overwrite)
    digests = {a.name: file_sha256(a.path) for a in agents}
    rows: dict[tuple[str, int], dict] = {}
    todo = []
    for a in agents:
        for i, s in enumerate(settings):
            part = out / "parts" / f"{a.name.replace(os.sep, '__')}@{i}.json"
            row = json.loads(part.read_text()) if part.is_file() else None
            if row is not None and row.get("sha256") == digests[a.name]:
                rows[a.name, i] = row
            else:
                todo.append((a, i, s, part))
    print(f"sweep eval: {len(agents)} agent(s) x {len(settings)} setting(s), {episodes} "
          f"episodes each (seed {seed}); {len(rows)} pair(s) already done, {len(todo)} to run",
          flush=True)
    failed, stopped = [], False
    ray = connect(address, cpus_per_task, gpus_per_task, "task") if todo else None
    (out / "parts").mkdir(parents=True, exist_ok=True)
    root = os.path.relpath(folder, out)  # agents are found again from the eval folder
    write_json(out / "eval.json", {**request, "folder": root, "agents": {
        a.name: os.path.relpath(a.path, folder) for a in agents}, "code_version": code_version()})
    if todo:
        task = ray.remote(evaluate_part).options(num_cpus=cpus_per_task,
                                                 num_gpus=gpus_per_task)
        device = "cuda" if gpus_per_task else "cpu"
        refs = {task.remote({"name": a.name, "path": str(a.path), "seed": a.manifest["seed"],
                             "steps": a.manifest["steps"], "sha256": digests[a.name]},
                            s.__dict__, request, device, cpus_per_task, str(part)): (a.name, i)
                for a, i, s, part in todo}

        def on_result(key: tuple[str, int], result: dict) -> None:
            if result["status"] == "done":
                rows[key] = result["row"]
            else:
                failed.append(f"{key[0]} on {settings[key[1]].label}: "
                              f"{result.get('error', result['status'])}")
                print(f"FAILED {failed[-1]}", flush=True)

        def on_tick() -> None:
            print(f"sweep eval: {len(rows)} / {len(agents) * len(settings)} pairs done",
                  flush=True)

        stopped = run_tasks(ray, refs, on_result, on_tick, tick)
    table = [rows[a.name, i] for a in agents for i in range(len(settings))
             if (a.name, i) in rows]
    path = _write_table(out, table)
    if stopped:
        raise SweepError(f"stopped by Ctrl-C with {len(table)} of {len(agents) * len(settings)} "
                         f"pair(s) done (in {path}); rerun the same command to finish")
    if failed:
        raise SweepError(f"{len(failed)} of {len(agents) * len(settings)} pair(s) failed "
                         f"({failed[0]}{'; ...' if len(failed) > 1 else ''}); {path} has the "
                         "others. Rerun the same command to retry them")
    return path


def _write_table(out: Path, rows: list[dict]) -> Path:
    """population.csv (+ .parquet with pyarrow), every row with the union of the columns."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    rows = [{k: r.get(k) for k in columns} for r in rows]
    tmp = out / f".{TABLE}.tmp"
    write_csv(tmp, rows)
    os.replace(tmp, out / TABLE)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return out / TABLE
    tmp = out / ".population.parquet.tmp"
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, out / "population.parquet")
    return out / TABLE
