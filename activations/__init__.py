"""Read recordings made by ``interp record`` (schema: docs/recording-format.md).

    import activations
    with activations.open("rollouts.h5") as rec:
        rec.layers                       # {"embedder.block2.res1.resadd": (32, 16, 16), ...}
        rec.episodes["return"].mean()    # one row per episode
        sel = rec.select(episodes=range(10), where={"goal_visible": 1})
        x = sel.activations("embedder.block2.res1.resadd", as_="torch")
        y = sel.labels(["goal_px", "goal_py"])
        for batch in rec.iter_batches("embedder.relufc", 4096, labels=["goal_dx"]):
            ...                          # bounded memory: one batch at a time

Rows are vectorized-env steps in the order they were recorded (envs interleaved); select by
episode, by step within the episode, or by label values.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from activations.schema import (
    EPISODE_COLUMNS,
    EPISODE_GROUP,
    ROW_GROUPS,
    game_of,
    schema_problem,
)
from interp.errors import InterpError

READ_WINDOW_CHUNKS = 16  # rows of up to this many chunks are read in one call


class RecordingError(InterpError, ValueError):
    """Not a readable recording, or a name it does not hold."""


class IncompleteRecordingError(RecordingError):
    """The recording run did not finish; pass ``allow_incomplete=True`` to read what it wrote."""


def open(path: str | Path, *, allow_incomplete: bool = False) -> Recording:  # noqa: A001
    """Open a recording read-only; use as a context manager or call ``close()``."""
    return Recording(path, allow_incomplete=allow_incomplete)


@dataclass
class Batch:
    """One batch of :meth:`Selection.iter_batches`: row indices, activations and labels."""

    rows: np.ndarray
    activations: Any  # numpy array or torch tensor
    labels: dict[str, np.ndarray]


def _take(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for sorted rows, read in few large contiguous slices."""
    out = np.empty((len(rows), *ds.shape[1:]), dtype=ds.dtype)
    window = (ds.chunks[0] if ds.chunks else 1024) * READ_WINDOW_CHUNKS
    i = 0
    while i < len(rows):
        lo = rows[i]
        j = int(np.searchsorted(rows, lo + window, side="left"))
        out[i:j] = ds[lo:rows[j - 1] + 1][rows[i:j] - lo]
        i = j
    return out


def _convert(arr: np.ndarray, as_: str, dtype) -> Any:
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if as_ == "numpy":
        return arr
    if as_ == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(arr))
    raise ValueError(f"as_ must be 'numpy' or 'torch', not {as_!r}")


class Recording:
    """An open recording file. Attributes: ``layers``, ``labels``, ``num_steps``, ``episodes``,
    ``config``, ``env_spec``, ``game``, ``agent_manifest``, ``status``."""

    def __init__(self, path: str | Path, *, allow_incomplete: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"no recording file at {self.path}")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as e:
            raise RecordingError(f"cannot open {self.path} as HDF5: {e}") from e
        a = self.file.attrs
        problem = schema_problem(a)
        if problem:
            self.file.close()
            raise RecordingError(f"{self.path} {problem}")
        self.status = str(a["status"])
        if self.status != "complete":
            msg = (f"{self.path} is incomplete ({int(a['num_episodes'])} of "
                   f"{int(a['episodes_target'])} episodes written): the recording was "
                   "interrupted. Finish it with `interp record ... --resume`")
            if not allow_incomplete:
                self.file.close()
                raise IncompleteRecordingError(msg + ", or open it with allow_incomplete=True.")
            warnings.warn(msg + "; reading the rows written so far.", stacklevel=3)
        self.num_steps = int(a["num_rows"])
        self.config = json.loads(a["config"])
        self.env_spec = json.loads(a["env_spec"])
        self.game = game_of(a)
        self.agent_manifest = json.loads(a["agent_manifest"])
        self.layers = {k: tuple(v) for k, v in json.loads(a["layers"]).items()}
        self.labels = json.loads(a["label_docs"])
        self._episodes: np.ndarray | None = None

    # -- file handling ---------------------------------------------------------------------
    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Recording {self.path.name}: {self.status}, {self.num_steps} steps, "
                f"{len(self.episodes)} episodes of {self.env_spec['variant']}, "
                f"{len(self.layers)} layers, {len(self.labels)} labels>")

    # -- metadata ----------------------------------------------------------------------------
    @property
    def episodes(self) -> np.ndarray:
        """Structured array, one row per finished episode sorted by id: id, env, index (the
        env's n-th episode), level_seed, length, return, level_complete."""
        if self._episodes is None:
            n = int(self.file.attrs["num_episodes"])
            g = self.file.get(EPISODE_GROUP)
            cols = {c: g[c][:n] if g is not None else np.zeros(0) for c in EPISODE_COLUMNS}
            table = np.empty(n, dtype=[(c, col.dtype) for c, col in cols.items()])
            for c, col in cols.items():
                table[c] = col
            self._episodes = table[np.argsort(table["id"], kind="stable")]
        return self._episodes

    def dataset(self, name: str) -> h5py.Dataset:
        """The HDF5 dataset of a layer, step field or label (``"labels/step"`` when a bare
        name is ambiguous: bare names look in activations, then steps, then labels)."""
        for path in ([name] if "/" in name else [f"{g}/{name}" for g in ROW_GROUPS]):
            if path in self.file:
                return self.file[path]
        known = {g: sorted(self.file[g]) for g in ROW_GROUPS if g in self.file}
        raise RecordingError(f"{self.path} has no {name!r}; it has "
                             + "; ".join(f"{g}: {', '.join(v)}" for g, v in known.items()))

    def __getitem__(self, name: str) -> h5py.Dataset:
        """Lazy HDF5 dataset (slice it to read): ``rec["embedder.relufc"][:1000]``."""
        return self.dataset(name)

    # -- selections ----------------------------------------------------------------------------
    def select(self, episodes=None, steps=None, where=None) -> Selection:
        """Rows of the given episode ids, steps within the episode, and label conditions.

        ``episodes``: id or ids. ``steps``: step-in-episode int, slice or ints.
        ``where``: boolean mask over all rows, or ``{name: value | [values] | fn(array) -> mask}``
        (names as in :meth:`dataset`). All conditions must hold.
        """
        return self.all().select(episodes, steps, where)

    def all(self) -> Selection:
        return Selection(self, np.arange(self.num_steps))

    def iter_batches(self, layer: str, batch_size: int, labels: Iterable[str] = (),
                     as_: str = "numpy", dtype=None) -> Iterator[Batch]:
        """Every row in batches (see :meth:`Selection.iter_batches`)."""
        return self.all().iter_batches(layer, batch_size, labels, as_, dtype)

    def _column(self, name: str) -> np.ndarray:
        return self.dataset(name)[:self.num_steps]


class Selection:
    """A lazy set of rows (sorted indices into the recording); nothing is read until asked."""

    def __init__(self, rec: Recording, rows: np.ndarray):
        self.rec, self.rows = rec, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"<Selection of {len(self)} rows of {self.rec.path.name}>"

    def select(self, episodes=None, steps=None, where=None) -> Selection:
        """Narrow this selection further (same arguments as :meth:`Recording.select`)."""
        keep = np.ones(self.rec.num_steps, dtype=bool)
        if episodes is not None:
            keep &= np.isin(self.rec._column("steps/episode"), np.atleast_1d(episodes))
        if steps is not None:
            keep &= _match_steps(self.rec._column("steps/step"), steps)
        if where is not None:
            keep &= _where_mask(self.rec, where)
        return Selection(self.rec, self.rows[keep[self.rows]])

    def __getitem__(self, name: str) -> np.ndarray:
        """Any layer, step field or label for these rows, as numpy."""
        return _take(self.rec.dataset(name), self.rows)

    def activations(self, name: str, as_: str = "numpy", dtype=None) -> Any:
        """Activations of layer ``name`` for these rows, (rows, *shape)."""
        if name not in self.rec.layers:
            raise RecordingError(f"no recorded layer {name!r}; recorded: "
                                 f"{', '.join(self.rec.layers)}")
        return _convert(self[f"activations/{name}"], as_, dtype)

    def labels(self, names: str | Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """``{label: values}`` for these rows (all labels if ``names`` is None)."""
        names = list(self.rec.labels) if names is None else (
            [names] if isinstance(names, str) else list(names))
        unknown = [n for n in names if n not in self.rec.labels]
        if unknown:
            raise RecordingError(f"no label(s) {unknown}; labels: {', '.join(self.rec.labels)}")
        return {n: self[f"labels/{n}"] for n in names}

    def iter_batches(self, layer: str, batch_size: int, labels: Iterable[str] = (),
                     as_: str = "numpy", dtype=None) -> Iterator[Batch]:
        """Yield :class:`Batch` es of ``batch_size`` rows in file order; memory stays bounded."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        labels = [labels] if isinstance(labels, str) else list(labels)
        for i in range(0, len(self.rows), batch_size):
            part = Selection(self.rec, self.rows[i:i + batch_size])
            yield Batch(part.rows, part.activations(layer, as_, dtype), part.labels(labels))


def _match_steps(step: np.ndarray, steps) -> np.ndarray:
    if isinstance(steps, slice):
        lo, hi, by = steps.start or 0, steps.stop, steps.step or 1
        return (step >= lo) & ((step < hi) if hi is not None else True) & ((step - lo) % by == 0)
    return np.isin(step, np.atleast_1d(steps))


def _where_mask(rec: Recording, where) -> np.ndarray:
    if not isinstance(where, dict):
        mask = np.asarray(where)
        if mask.dtype != bool or mask.shape != (rec.num_steps,):
            raise ValueError(f"where must be a dict of conditions or a boolean mask of shape "
                             f"({rec.num_steps},), got {mask.dtype} {mask.shape}")
        return mask
    mask = np.ones(rec.num_steps, dtype=bool)
    for name, cond in where.items():
        col = rec._column(name)
        if callable(cond):
            mask &= np.asarray(cond(col), dtype=bool)
        elif isinstance(cond, (list, tuple, set, np.ndarray, range)):
            mask &= np.isin(col, list(cond))
        else:
            mask &= col == cond
    return mask


__all__ = ["Batch", "IncompleteRecordingError", "Recording", "RecordingError", "Selection", "open"]
