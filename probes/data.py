"""Where probes read rows from: an HDF5 recording (through the ``activations`` reader) or
arrays in memory (:class:`ArrayRecording`, for notebooks and tests). Both expose the small
interface :func:`run_probe <probes.run.run_probe>` uses: layer shapes, label columns, row
slices of a layer or of the observations, the agent's model config and the game.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probes.features import ProbeError


@dataclass
class ArrayRecording:
    """A recording held in memory: ``activations[layer]`` (N, *shape), ``labels[key]`` (N,),
    optional uint8 ``obs`` (N, 64, 64, 3), ``model_config`` (``ModelConfig.to_dict()``),
    ``game`` and each row's ``env`` and ``step`` in its episode (rows in the order played; a
    recurrent agent's random-agent control needs them). ``labels`` must include
    ``level_seed`` (the grouping key)."""

    activations: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    obs: np.ndarray | None = None
    model_config: dict | None = None
    game: str | None = None
    env: np.ndarray | None = None
    step: np.ndarray | None = None
    layer_shapes: dict[str, tuple[int, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.layer_shapes = {k: tuple(v.shape[1:]) for k, v in self.activations.items()}
        lengths = {len(v) for v in [*self.activations.values(), *self.labels.values()]}
        if self.obs is not None:
            lengths.add(len(self.obs))
        if len(lengths) > 1:
            raise ProbeError(f"ArrayRecording arrays differ in length: {sorted(lengths)}")

    @property
    def num_steps(self) -> int:
        return len(next(iter(self.labels.values())))

    @property
    def has_obs(self) -> bool:
        return self.obs is not None

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    @property
    def has_steps(self) -> bool:
        return self.env is not None and self.step is not None

    def read_steps(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(env, step in episode) of rows ``start:stop``."""
        return self.env[start:stop], self.step[start:stop]

    def read_labels(self, keys: list[str]) -> dict[str, np.ndarray]:
        return {k: np.asarray(self.labels[k]) for k in keys if k in self.labels}

    def read(self, layer: str, start: int, stop: int) -> np.ndarray:
        return self.activations[layer][start:stop]

    def read_obs(self, start: int, stop: int) -> np.ndarray:
        return self.obs[start:stop]


class _FileRecording:
    """Adapter over a recording opened with ``activations.open``."""

    def __init__(self, rec: Any):
        self.rec = rec
        self.layer_shapes = dict(rec.layers)
        self.num_steps = int(rec.num_steps)
        self.has_obs = "steps/obs" in rec.file
        self.model_config = (rec.agent_manifest or {}).get("model_config")
        self.game = rec.game
        self.label_names = list(rec.labels)
        self.has_steps = True

    def read_steps(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return (self.rec.dataset("steps/env")[start:stop],
                self.rec.dataset("steps/step")[start:stop])

    def read_labels(self, keys: list[str]) -> dict[str, np.ndarray]:
        return {k: self.rec.dataset(f"labels/{k}")[:self.num_steps] for k in keys
                if k in self.rec.labels}

    def read(self, layer: str, start: int, stop: int) -> np.ndarray:
        return self.rec.dataset(f"activations/{layer}")[start:stop]

    def read_obs(self, start: int, stop: int) -> np.ndarray:
        return self.rec.dataset("steps/obs")[start:stop]

    def close(self) -> None:
        self.rec.close()


def as_recording(recording: Any) -> ArrayRecording | _FileRecording:
    """A path (opened read-only), an open ``activations.Recording`` or an
    :class:`ArrayRecording`."""
    import activations

    if isinstance(recording, (ArrayRecording, _FileRecording)):
        return recording
    if isinstance(recording, activations.Recording):
        return _FileRecording(recording)
    try:
        return _FileRecording(activations.open(recording))
    except activations.RecordingError as e:
        raise ProbeError(str(e)) from None


def select_layers(available: list[str], wanted: list[str] | None) -> list[str]:
    """Exact names or fnmatch globs, in recording order; default: all layers."""
    if not wanted:
        return list(available)
    chosen: set[str] = set()
    for pattern in wanted:
        found = fnmatch.filter(available, pattern) if any(c in pattern for c in "*?[") else (
            [pattern] if pattern in available else [])
        if not found:
            raise ProbeError(f"layer {pattern!r} is not in the recording; its layers: "
                             + ", ".join(available))
        chosen.update(found)
    return [name for name in available if name in chosen]
