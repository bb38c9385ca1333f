"""Ray plumbing of the sweep commands: import Ray with a one-line hint, connect (a local
instance by default, a cluster by address), run tasks to the end while reporting each result,
keep going past a failed task, and stop cleanly on Ctrl-C.

Only this package imports Ray, and only inside functions: the rest of interp never needs it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from interp.errors import InterpError

EXTRA = "pip install -e '.[sweep]' (or pip install 'ray>=2.9')"


class SweepError(InterpError, ValueError):
    """Bad sweep input (seeds, folders, settings, resources) or Ray not installed."""


def require_ray():
    """The ``ray`` module, or a :class:`SweepError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise SweepError(f"interp sweep runs on Ray, which is not installed: {EXTRA}") from None
    return ray


def connect(address: str | None, cpus: float, gpus: float, per: str):
    """Start a local Ray instance (``address`` None) or join a cluster (``auto``,
    ``HOST:PORT``, ``ray://HOST:PORT``); check that one task's ``cpus``/``gpus`` fit on it
    (``per``: what a task is, for the option names in the message)."""
    ray = require_ray()
    if address not in (None, "auto"):  # fail fast: Ray itself retries for minutes
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            raise SweepError(f"cannot reach Ray at {address} ({e}); give HOST:PORT of a "
                             "running cluster (`ray start --head` prints it) or leave out "
                             "--address for a local instance") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise SweepError(f"cannot connect to Ray at {address!r}: {e}".splitlines()[0]
                             ) from None
    have = ray.cluster_resources()
    for name, need in (("CPU", cpus), ("GPU", gpus)):
        if need > have.get(name, 0):
            raise SweepError(f"one task needs {need:g} {name}(s) but the Ray cluster has "
                             f"{have.get(name, 0):g}; lower --{name.lower()}s-per-{per} or add "
                             "nodes")
    return ray


def run_tasks(ray, pending: dict, on_result: Callable[[Any, dict], None],
              on_tick: Callable[[], None], tick: float = 30.0) -> bool:
    """Wait for every task of ``pending`` ({ObjectRef: key}) and call ``on_result(key,
    result)`` as each ends. A task that raised or whose worker died gives ``{"status":
    "failed", "error": ...}``; one cancelled before it started ``{"status": "cancelled"}``.
    ``on_tick()`` runs every ``tick`` seconds. The first Ctrl-C cancels every task (a running
    one gets SIGINT: a training saves at its next rollout boundary) and keeps collecting; a
    second one aborts. Returns whether a Ctrl-C stopped the run."""
    pending, stopped, last = dict(pending), False, time.monotonic()
    while pending:
        try:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=min(tick, 5.0))
            for ref in done:
                try:
                    result = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    result = {"status": "cancelled"}
                except ray.exceptions.RayError as e:
                    result = {"status": "failed", "error": one_line(e)}
                on_result(pending[ref], result)
                del pending[ref]
            if time.monotonic() - last >= tick:
                on_tick()
                last = time.monotonic()
        except KeyboardInterrupt:
            if stopped:
                raise
            stopped = True
            print("stopping: running tasks save and stop, queued ones are cancelled (Ctrl-C "
                  "again to abort)", flush=True)
            for ref in pending:
                ray.cancel(ref)
    return stopped


def one_line(err: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
