"""Run an agent in vectorized envs and stream activations, observations and labels to HDF5.

    summary = record("agent.pt", "rollouts.h5", env="coinrun-random-coin", episodes=256)

Every env contributes its first ``k`` episodes (``episodes`` split evenly over envs), never
"the first N episodes to end", which over-samples short episodes. Actions are sampled with a
counter-based generator keyed by ``(seed, env, episode index, step)``, so an env's episodes
depend on nothing but the agent, the env seed and ``seed``: that makes ``resume`` (continue an
interrupted file from its last flush) and ``append`` (add episodes) reproduce exactly what one
uninterrupted run would have written. The file layout is documented in docs/recording-format.md
and read back with the ``activations`` package.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import torch

from activations.schema import (
    BULK,
    EPISODE_COLUMNS,
    EPISODE_GROUP,
    ROW_GROUPS,
    SCHEMA_VERSION,
    STATE_GROUP,
    schema_problem,
)
from interp.device import resolve_device
from interp.errors import InterpError
from interp.outputs import check_output
from interp.progress import Progress
from interp.rollout import Rollout, Step, check_agent_env

DEFAULT_LAYERS = ("embedder.block*.res*.resadd", "embedder.relufc", "fc_policy", "fc_value")
RECURRENT_LAYERS = ("gru.gru",)  # added to the defaults for a recurrent agent
COMPRESSIONS = ("gzip", "lzf", "none")
CHUNK_BYTES = 1 << 20  # target HDF5 chunk size along the step axis
FLUSH_STEPS = 256  # flush at least every this many vectorized steps


class RecordError(InterpError, RuntimeError):
    """A recording that cannot be started, resumed or written; the message says what to do."""


@dataclass(frozen=True)
class RecordConfig:
    """What a recording file was made with; stored as the ``config`` root attribute."""

    episodes: int  # total target, split evenly over envs
    num_envs: int
    seed: int
    layers: tuple[str, ...]
    float16: bool
    greedy: bool
    compression: str

    def quotas(self) -> np.ndarray:
        """Episodes to record per env."""
        e = np.arange(self.num_envs)
        return self.episodes // self.num_envs + (e < self.episodes % self.num_envs)


@dataclass
class RecordSummary:
    path: Path
    rows: int
    episodes: int
    mean_return: float
    status: str
    seconds: float  # rollout and writing, setup excluded
    levels: str = ""  # which levels, beside the agent's training levels (describe_levels)


# -- helpers -----------------------------------------------------------------------------------
def agent_digest(model: torch.nn.Module) -> str:
    """sha256 of the parameters: identifies the agent when a file is resumed or appended to."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _json(obj) -> str:
    return json.dumps(obj, default=str)


# -- HDF5 writer --------------------------------------------------------------------------------
class _Rows:
    """Preallocated column buffers for one flush: the loop copies each step's rows in (one copy,
    with the dtype conversion), the writer writes views of them. Reused across flushes, so the
    loop allocates nothing per step and the forward pass's tensors are freed at once."""

    def __init__(self, budget_bytes: int, min_rows: int, max_rows: int, tensor_dtype: np.dtype):
        self.budget, self.min_rows, self.max_rows = budget_bytes, min_rows, max_rows
        self.tensor_dtype = tensor_dtype  # storage dtype of torch tensors (activations)
        self.cols: dict[str, np.ndarray] = {}
        self.capacity = self.n = 0

    def add(self, row: dict[str, np.ndarray | torch.Tensor]) -> slice:
        """Append one step's rows (all columns the same length); returns where they went."""
        k = len(row["steps/env"])
        if not self.cols:
            row_bytes = sum(v.element_size() * v.numel() if isinstance(v, torch.Tensor)
                            else v.nbytes for v in row.values()) / k
            self.capacity = int(min(self.max_rows, max(self.min_rows, self.budget // row_bytes)))
        where = slice(self.n, self.n + k)
        self.fill(where, row)
        self.n += k
        return where

    def fill(self, where: slice, columns: dict[str, np.ndarray | torch.Tensor]) -> None:
        """Write ``columns`` into the rows ``where`` (columns may come after the others)."""
        for name, v in columns.items():
            col = self.cols.get(name)
            if col is None:
                dtype = v.dtype if isinstance(v, np.ndarray) else self.tensor_dtype
                col = self.cols[name] = np.empty((self.capacity, *v.shape[1:]), dtype)
            if isinstance(v, torch.Tensor):
                torch.from_numpy(col[where]).copy_(v)
            else:
                col[where] = v

    def full(self) -> bool:
        """No room for another step of every env."""
        return self.n + self.min_rows > self.capacity


class _Writer:
    """Appends row batches to resizable chunked datasets from a background thread.

    Each submitted batch carries the loop state after its last row (``resume`` group): data
    and resume point are written together, then the file is flushed. Two :class:`_Rows` buffers
    alternate: the loop fills one while the thread writes the other.
    """

    def __init__(self, f: h5py.File, compression: str, path: Path, buffer_bytes: int,
                 num_envs: int, tensor_dtype: np.dtype):
        self.f, self.path = f, path
        self.compression = None if compression == "none" else compression
        self.queue: queue.Queue = queue.Queue()
        self.free: queue.Queue = queue.Queue()
        for _ in range(2):
            self.free.put(_Rows(buffer_bytes // 2, num_envs, FLUSH_STEPS * num_envs,
                                tensor_dtype))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self.thread.start()

    def rows(self) -> _Rows:
        """An empty buffer to fill (waits while the thread still writes both)."""
        self._check()
        return self.free.get()

    def submit(self, batch: dict) -> None:
        self._check()
        self.queue.put(batch)

    def close(self) -> None:
        """Write what is queued, stop the thread, raise the first write error if any."""
        self.queue.put(None)
        self.thread.join()
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise RecordError(
                f"writing {self.path} failed: {self.error}. The file is left marked incomplete; "
                "fix the cause (disk space, permissions) and rerun with --resume, which restarts "
                "from the last successful flush.") from self.error

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._write(batch)
                except BaseException as e:  # noqa: BLE001 - reported to the main thread
                    self.error = e
            batch["rows"].n = 0
            self.free.put(batch["rows"])

    def _dataset(self, name: str, sample: np.ndarray, compress: bool) -> h5py.Dataset:
        if name in self.f:
            return self.f[name]
        shape = sample.shape[1:]
        rows = max(1, min(4096, CHUNK_BYTES // max(1, sample[0].nbytes)))
        comp = self.compression if compress else "gzip"
        return self.f.create_dataset(
            name, shape=(0, *shape), maxshape=(None, *shape), dtype=sample.dtype,
            chunks=(rows, *shape), compression=comp,
            compression_opts=1 if comp == "gzip" else None, shuffle=comp is not None)

    def _write(self, batch: dict) -> None:
        rows = batch["rows"]
        start = batch["resume"]["rows"] - rows.n
        for name, col in rows.cols.items():
            arr = col[:rows.n]
            bulk = name in BULK or name.startswith("activations/")
            ds = self._dataset(name, arr, compress=bulk)
            ds.resize(start + len(arr), axis=0)
            ds[start:] = arr
        eps = batch["episodes"]
        start = batch["resume"]["episodes"] - len(eps)
        for col, dtype in EPISODE_COLUMNS.items():
            values = np.array([e[col] for e in eps], dtype=dtype)
            ds = self.f.require_dataset(f"{EPISODE_GROUP}/{col}", shape=(0,), maxshape=(None,),
                                        dtype=dtype, chunks=(4096,), exact=True)
            ds.resize(start + len(values), axis=0)
            ds[start:] = values
        write_resume_point(self.f, batch["resume"], batch["states"], batch["hidden"])
        self.f.flush()


def write_resume_point(f: h5py.File, meta: dict, states: list[bytes],
                       hidden: np.ndarray | None) -> None:
    """Store the loop counters, env states and (recurrent agents) hidden states from which
    ``--resume`` continues."""
    g = f.require_group(STATE_GROUP)
    if hidden is not None:  # a recurrent agent's memory, per env
        g.require_dataset("hidden_state", hidden.shape, np.float32, exact=True)[...] = hidden
    width = max(map(len, states))
    if "env_states" not in g:
        g.create_dataset("env_states", shape=(len(states), width), maxshape=(len(states), None),
                         dtype=np.uint8, chunks=(1, width))
    ds = g["env_states"]
    if ds.shape[1] < width:
        ds.resize(width, axis=1)
    buf = np.zeros(ds.shape, dtype=np.uint8)
    for i, raw in enumerate(states):
        buf[i, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    ds[...] = buf
    g.attrs["state_sizes"] = np.array([len(s) for s in states], dtype=np.int64)
    g.attrs["loop"] = _json({k: v for k, v in meta.items() if k not in ("rows", "episodes")})
    f.attrs["num_rows"] = meta["rows"]
    f.attrs["num_episodes"] = meta["episodes"]


# -- the recording loop ---------------------------------------------------------------------------
class _Loop:
    """A recording on a :class:`~interp.rollout.Rollout`: copies each step's rows into the
    writer's buffers (while the remote env steps), ends episodes, flushes with resume points.
    The rollout's counters, ``touched`` and the env states are everything needed to continue
    it exactly."""

    def __init__(self, cfg: RecordConfig, env, layers: list[str], model, device,
                 writer: _Writer):
        self.cfg, self.env, self.layers, self.model = cfg, env, layers, model
        self.quota = cfg.quotas()
        # channels_last: the convolutions' fast layout on CPU
        self.rollout = Rollout(model, [env], self.quota, seed=cfg.seed, greedy=cfg.greedy,
                               labels=True, device=device,
                               memory_format=torch.channels_last if device.type == "cpu"
                               else torch.contiguous_format)
        self.writer = writer
        # called every step with the episodes it finished (lines in a log even while none ends)
        self.progress: Callable[[int], None] = lambda n: None
        n = cfg.num_envs
        self.touched = np.zeros(n, bool)
        self.frozen: list[bytes | None] = [None] * n  # state when the env met its quota
        self.rows = self.episodes = 0
        self.returns: list[float] = []

    # resume state -----------------------------------------------------------------------------
    def restore(self, f: h5py.File) -> None:
        g, r = f[STATE_GROUP], self.rollout
        loop = json.loads(g.attrs["loop"])
        r.count[:], r.step[:], r.ret[:] = loop["done"], loop["step"], loop["ret"]
        self.touched = np.array(loop["touched"], bool)
        self.rows, self.episodes = int(f.attrs["num_rows"]), int(f.attrs["num_episodes"])
        self.returns = list(f[f"{EPISODE_GROUP}/return"][:self.episodes]) if self.episodes else []
        raw = g["env_states"][...]
        states = [bytes(raw[i, :s]) for i, s in enumerate(g.attrs["state_sizes"])]
        self.env.set_all_states(states)
        self.frozen = [s if d >= q else None for s, d, q in zip(states, r.count, self.quota)]
        if r.runner.hx is not None:
            r.runner.hx.copy_(torch.from_numpy(g["hidden_state"][...]))

    def resume_point(self) -> tuple[dict, list[bytes], np.ndarray | None]:
        """(counters, env states, hidden states or None): what ``--resume`` continues from."""
        r = self.rollout
        states = [s if s is not None else self.env.get_state_bytes(i)
                  for i, s in enumerate(self.frozen)]
        meta = {"rows": self.rows, "episodes": self.episodes, "done": r.count.tolist(),
                "step": r.step.tolist(), "ret": r.ret.tolist(), "touched": self.touched.tolist()}
        hidden = r.runner.state()
        return meta, states, None if hidden is None else hidden.cpu().numpy()

    # main loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        from interp.hooks import use_hooks

        self._buffer, self._episodes, self._steps = self.writer.rows(), [], 0
        self._cache: dict[str, torch.Tensor] = {}
        keep = [(name, lambda out, name: self._cache.__setitem__(name, out))
                for name in self.layers]
        with use_hooks(self.model, keep), torch.inference_mode():
            self.rollout.run(on_act=self._add_rows, on_observe=self._after_step)

    def _add_rows(self, step: Step) -> None:
        """Copy the step's rows into the buffer (the env steps meanwhile)."""
        labels = step.labels
        # goal_touched from the recorder's own flags: exact across resumes (the env's flag
        # restarts with set_state)
        self.touched[step.rows] |= labels["agent_on_goal"] > 0
        labels["goal_touched"] = self.touched[step.rows].astype(labels["agent_on_goal"].dtype)
        row = {
            "obs": step.obs, "action": step.actions.astype(np.int32), "probs": step.probs,
            "value": step.value, "env": step.rows.astype(np.int32),
            "episode": (step.episode * self.cfg.num_envs + step.rows).astype(np.int64),
            "step": step.step.astype(np.int32),
            "level_seed": np.asarray(labels["level_seed"], dtype=np.int64),
        }
        row = {f"steps/{k}": v for k, v in row.items()}
        row.update({f"labels/{k}": np.asarray(v) for k, v in labels.items()})
        for name in self.layers:
            row[f"activations/{name}"] = self._cache.pop(name)
        self._where = self._buffer.add(row)

    def _after_step(self, step: Step) -> None:
        """The step's rewards and ends; episodes ended; a flush when due."""
        self._buffer.fill(self._where, {"steps/reward": step.reward.astype(np.float32),
                                        "steps/done": step.done})
        self.rows += len(step.rows)
        for j in np.flatnonzero(step.done):
            self._episodes.append(self._end_episode(step, j))
        self.progress(int(step.done.sum()))
        self._steps += 1
        finished = not (self.rollout.count < self.quota).any()
        if self._buffer.full() or self._steps % FLUSH_STEPS == 0 or finished:
            self._flush(self._buffer, self._episodes)
            self._buffer, self._episodes = (None if finished else self.writer.rows()), []

    def _end_episode(self, step: Step, j: int) -> dict:
        i, k = int(step.rows[j]), int(step.episode[j])
        ep = {"id": k * self.cfg.num_envs + i, "env": i, "index": k,
              "level_seed": int(step.labels["level_seed"][j]), "length": int(step.step[j]) + 1,
              "return": float(step.returns[j]),
              "level_complete": bool(step.infos[i].get("prev_level_complete", False))}
        self.returns.append(ep["return"])
        self.episodes += 1
        self.touched[i] = False
        if self.rollout.count[i] >= self.quota[i]:
            self.frozen[i] = self.env.get_state_bytes(i)  # the next episode's start
        return ep

    def _flush(self, rows: _Rows, episodes: list) -> None:
        meta, states, hidden = self.resume_point()
        self.writer.submit({"rows": rows, "episodes": episodes, "resume": meta,
                            "states": states, "hidden": hidden})


# -- public entry point ---------------------------------------------------------------------------
def record(checkpoint: str | Path, out: str | Path, *, env: str | None = None,
           episodes: int | None = None, layers: list[str] | None = None,
           num_envs: int | None = None, seed: int | None = None, device: str = "auto",
           float16: bool | None = None, greedy: bool | None = None,
           distribution_mode: str | None = None, options: dict | None = None,
           compression: str | None = None, mode: str = "create", command: str = "",
           buffer_mb: float = 128, progress: str | None = None,
           num_levels: int | None = None, start_level: int | None = None,
           training_levels: bool = False) -> RecordSummary:
    """Record ``episodes`` episodes of ``checkpoint``'s agent into the HDF5 file ``out``.

    ``mode``: ``"create"`` (refuse an existing file), ``"overwrite"``, ``"resume"`` (finish an
    incomplete file) or ``"append"`` (add ``episodes`` more to a complete file). With resume and
    append, options left as None come from the file; options given must match it.
    ``buffer_mb``: memory for the two row buffers that alternate between the loop and the
    writer thread (a flush writes one, at least one step of every env each).
    ``options``: variant options (on the agent's training variant they override its training
    options, see :meth:`~interp.checkpoint.LoadedAgent.env_spec`). Levels: ``num_levels``
    from ``start_level``, or with ``training_levels`` the agent's own (default unrestricted).
    Defaults for a new file: the agent's training env (variant and distribution mode), 64 envs,
    seed 0, the layers of ``DEFAULT_LAYERS`` (and ``RECURRENT_LAYERS`` for a recurrent agent),
    float32, sampled actions, uncompressed
    activations and observations (labels and the other step data are always gzip-compressed).
    ``progress``: label of the progress of finished episodes (None: silent).

    A new file appears at ``out`` only once its header and starting point are written, so an
    interrupted recording can always be resumed. On Ctrl-C the KeyboardInterrupt carries a note
    saying what ``out`` holds and what to do.
    """
    out = Path(out)
    try:
        return _record(checkpoint, out, env=env, episodes=episodes, layers=layers,
                       num_envs=num_envs, seed=seed, device=device, float16=float16,
                       greedy=greedy, distribution_mode=distribution_mode, options=options,
                       compression=compression, mode=mode, command=command,
                       buffer_mb=buffer_mb, progress=progress, num_levels=num_levels,
                       start_level=start_level, training_levels=training_levels)
    except KeyboardInterrupt as e:
        e.add_note(_state_of(out))
        raise


def _state_of(out: Path) -> str:
    """What an interrupted run left at ``out``, and what to do."""
    if not out.exists():
        return f"nothing was written to {out}"
    try:
        with h5py.File(out, "r") as f:
            status = f.attrs.get("status")
    except OSError:
        return f"{out} cannot be read; start again with --overwrite"
    if status == "incomplete":
        return f"{out} is marked incomplete; continue it with the same command plus --resume"
    return f"{out} is unchanged ({status})"


def _record(checkpoint, out: Path, *, env, episodes, layers, num_envs, seed, device, float16,
            greedy, distribution_mode, options, compression, mode, command, buffer_mb,
            progress, num_levels, start_level, training_levels) -> RecordSummary:
    from interp.checkpoint import load_agent
    from interp.envs import make_env
    from interp.evaluate import describe_levels
    from interp.hooks import resolve_names
    from interp.version import code_version

    dev = resolve_device(device)
    agent = load_agent(checkpoint, dev)
    model, manifest = agent.model, agent.manifest
    digest = agent_digest(model)
    given = {"num_envs": num_envs, "seed": seed, "float16": float16, "greedy": greedy,
             "compression": compression}
    levels = dict(zip(("num_levels", "start_level"),
                      agent.levels(num_levels, start_level, training_levels)))

    if mode in ("resume", "append"):
        f, cfg, spec = _reopen(out, mode, digest, given, env, distribution_mode, options, layers,
                               model, levels)
        if mode == "append":
            if not episodes or episodes < 1:
                raise RecordError("--append needs --episodes N (how many episodes to add)")
            cfg = RecordConfig(**{**asdict(cfg), "episodes": cfg.episodes + episodes})
        elif episodes is not None and episodes != cfg.episodes:
            raise RecordError(f"{out} was started for {cfg.episodes} episodes, not {episodes}; "
                              "resume with the same --episodes (or none), then --append more")
    elif mode in ("create", "overwrite"):
        if not episodes or episodes < 1:
            raise RecordError("--episodes must be a positive number of episodes")
        check_output(out, "file", overwrite=True)
        if out.exists() and mode == "create":
            raise RecordError(f"{out} already exists; use --resume to finish it, --append to "
                              "add episodes, or --overwrite to replace it")
        spec = agent.env_spec(env, distribution_mode, options, **levels)
        n = min(num_envs or 64, episodes)
        cfg = RecordConfig(episodes=episodes, num_envs=n, seed=0 if seed is None else seed,
                           layers=tuple(resolve_names(model, layers or DEFAULT_LAYERS + (
                               RECURRENT_LAYERS if model.config.recurrent else ()))),
                           float16=bool(float16), greedy=bool(greedy),
                           compression=compression or "none")
        if cfg.compression not in COMPRESSIONS:
            raise RecordError(f"compression {cfg.compression!r} is not one of {COMPRESSIONS}")
        f = None
    else:
        raise ValueError(f"mode must be create, overwrite, resume or append, not {mode!r}")

    venv = make_env(spec, num=cfg.num_envs, seed=cfg.seed, remote=True)
    partial = None  # a new file is written here, then renamed to ``out``
    try:
        check_agent_env(model, spec)
        if f is None:
            partial = out.with_name(f".{out.name}.partial")
            f = _create(partial, cfg, manifest, digest, spec, model, checkpoint, command,
                        code_version())
        elif command:
            f.attrs["commands"] = _json(json.loads(f.attrs["commands"]) + [command])
        f.attrs["config"] = _json(asdict(cfg))
        f.attrs["status"] = "incomplete"
        f.attrs["episodes_target"] = cfg.episodes
        writer = _Writer(f, cfg.compression, out, int(buffer_mb * 2**20), cfg.num_envs,
                         np.dtype(np.float16 if cfg.float16 else np.float32))
        try:
            loop = _Loop(cfg, venv, list(cfg.layers), model, dev, writer)
            if STATE_GROUP in f:
                loop.restore(f)
                _truncate(f, loop.rows, loop.episodes)
            else:  # the start is the first resume point, written before the first step
                write_resume_point(f, *loop.resume_point())
                f.flush()
            if partial is not None:
                os.replace(partial, out)
                partial = None
            t0 = time.perf_counter()
            with Progress(cfg.episodes - loop.episodes, progress or "",
                          enabled=progress is not None) as bar:
                loop.progress = bar.update
                loop.run()
        finally:
            writer.close()  # writes what was queued; a crash leaves a consistent resume point
        f.attrs["status"] = "complete"
        f.attrs["finished"] = _now()
        f.flush()
        returns = np.asarray(loop.returns)
        return RecordSummary(out, loop.rows, loop.episodes,
                             float(returns.mean()) if returns.size else float("nan"), "complete",
                             time.perf_counter() - t0,
                             describe_levels(spec.to_dict(), manifest["env_spec"]))
    except OSError as e:
        if f is None or partial is not None:
            raise RecordError(f"cannot create {out}: {e}; choose a writable path") from e
        raise RecordError(f"writing {out} failed: {e}. The file stays marked incomplete; fix "
                          "the cause and rerun with --resume") from e
    finally:
        venv.close()
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        if partial is not None:  # stopped before the file was whole enough to resume
            partial.unlink(missing_ok=True)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _create(out: Path, cfg: RecordConfig, manifest: dict, digest: str, spec, model, checkpoint,
            command: str, version: str) -> h5py.File:
    from interp.envs.labels import LABEL_DOCS, label_keys
    from interp.hooks import layer_shapes

    game = spec.get_variant().game
    shapes = layer_shapes(model, list(cfg.layers))
    out.parent.mkdir(parents=True, exist_ok=True)
    f = h5py.File(out, "w")
    f.attrs.update({
        "schema_version": SCHEMA_VERSION, "status": "incomplete", "created": _now(),
        "code_version": version, "commands": _json([command] if command else []),
        "agent_checkpoint": str(checkpoint), "agent_sha256": digest,
        "agent_manifest": _json(manifest), "env_spec": _json(spec.to_dict()), "game": game,
        "layers": _json({n: list(shapes[n]) for n in cfg.layers}),
        "label_docs": _json({k: LABEL_DOCS[k] for k in label_keys(game)}),
        "num_rows": 0, "num_episodes": 0,
    })
    return f


def _reopen(out: Path, mode: str, digest: str, given: dict, env, distribution_mode, options,
            layers, model, levels: dict):
    from interp.envs import EnvSpec
    from interp.hooks import resolve_names

    if not out.exists():
        raise RecordError(f"--{mode}: {out} does not exist; start it without --{mode}")
    try:
        f = h5py.File(out, "r+")
    except OSError as e:
        raise RecordError(f"cannot open {out} for --{mode}: {e}") from e
    try:
        if not f.attrs and not len(f):
            raise RecordError(f"{out} holds nothing (a recording stopped before its header was "
                              "written); start it again with --overwrite")
        problem = schema_problem(f.attrs)
        if problem:
            raise RecordError(f"{out} {problem}")
        status = f.attrs["status"]
        if mode == "resume" and status == "complete":
            raise RecordError(f"{out} is already complete; use --append --episodes N to add more")
        if mode == "append" and status != "complete":
            raise RecordError(f"{out} is incomplete; finish it with --resume before --append")
        if f.attrs["agent_sha256"] != digest:
            raise RecordError(f"{out} was recorded with another agent "
                              f"({f.attrs['agent_checkpoint']}); pass that checkpoint")
        cfg_dict = json.loads(f.attrs["config"])
        cfg = RecordConfig(**{**cfg_dict, "layers": tuple(cfg_dict["layers"])})
        spec = EnvSpec.from_dict(json.loads(f.attrs["env_spec"]))
        wanted = {**{k: v for k, v in given.items() if v is not None},
                  **({"layers": tuple(resolve_names(model, layers))} if layers else {})}
        if env is not None and env != spec.variant:
            wanted["variant"] = env
        if distribution_mode is not None and distribution_mode != spec.distribution_mode:
            wanted["distribution_mode"] = distribution_mode
        if options:
            wanted["options"] = {**spec.options, **options}
        wanted.update({k: v for k, v in levels.items() if v is not None})
        stored = {**asdict(cfg), **spec.to_dict()}
        diff = {k: (stored[k], v) for k, v in wanted.items() if stored[k] != v}
        if diff:
            raise RecordError(f"--{mode} must use the settings {out} was recorded with; differs: "
                              + "; ".join(f"{k}: file has {a!r}, given {b!r}"
                                          for k, (a, b) in diff.items()))
    except BaseException:
        f.close()
        raise
    return f, cfg, spec


def _truncate(f: h5py.File, rows: int, episodes: int) -> None:
    """Drop rows written after the last resume point (a run killed mid-flush)."""
    for group, n in [(g, rows) for g in ROW_GROUPS] + [(EPISODE_GROUP, episodes)]:
        if group in f:
            f[group].visititems(lambda _, ds: ds.resize(n, axis=0)
                                if isinstance(ds, h5py.Dataset) and len(ds) > n else None)
