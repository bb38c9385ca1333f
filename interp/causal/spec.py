"""Patches and steers as small JSON files, so that a result can be rerun exactly.

A *patch spec* lists interventions on named layers::

    {"format": "interp-patch", "version": 1,
     "patches": [{"layer": "embedder.block2.res1.resadd", "op": "add",
                  "vector": "patch.0.npy", "sha256": "...", "coefficient": -1.0},
                 {"layer": "embedder.block2.res1.resadd", "op": "clamp",
                  "channels": [7, 55], "value": 5.5, "at": [[3, 12]]},
                 {"layer": "embedder.block3.conv", "op": "zero", "channels": [1, 2]}],
     "source": {...how the vector was made...}}

``add`` adds ``coefficient * vector`` (one activation, stored beside the JSON as ``.npy`` with
its SHA-256, checked on load); ``clamp`` sets ``channels`` to ``value`` at the feature-map
positions ``at`` ([row, col] pairs; omitted: everywhere); ``zero`` zeroes ``channels``.

    spec = PatchSpec.load("out/patch.json")
    with spec.apply(model):
        logits, value = model(x)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from interp import hooks
from interp.errors import InterpError

FORMAT, VERSION = "interp-patch", 1
OPS = ("add", "clamp", "zero")


class SpecError(InterpError, ValueError):
    """A patch or run spec that cannot be read, or does not fit the model."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, np.float32))
    return buf.getvalue()


@dataclass(frozen=True)
class Patch:
    """One intervention on one layer (see the module docstring for the ops)."""

    layer: str
    op: str
    channels: tuple[int, ...] | None = None
    vector: np.ndarray | None = field(default=None, compare=False)
    coefficient: float = 1.0
    value: float | None = None
    at: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise SpecError(f"patch op {self.op!r} is not one of {', '.join(OPS)}")
        if self.op == "add" and self.vector is None:
            raise SpecError(f"an add patch on {self.layer!r} needs a vector")
        if self.op == "clamp" and (self.value is None or not self.channels):
            raise SpecError(f"a clamp patch on {self.layer!r} needs channels and a value")
        if self.op == "zero" and not self.channels:
            raise SpecError(f"a zero patch on {self.layer!r} needs channels")

    def scaled(self, coefficient: float) -> Patch:
        """This add patch at another coefficient."""
        return replace(self, coefficient=float(coefficient))

    def hook(self, device: torch.device | str = "cpu") -> hooks.HookFn:
        chans = list(self.channels) if self.channels is not None else None
        if self.op == "add":
            return hooks.add(torch.as_tensor(self.vector, device=device), chans,
                             self.coefficient)
        if self.op == "zero":
            return hooks.zero(chans)
        if self.at is None:
            return hooks.clamp(self.value, chans)
        fns = [hooks.clamp(self.value, chans, tuple(rc)) for rc in self.at]

        def clamp_all(out: torch.Tensor, name: str) -> torch.Tensor:
            for fn in fns:
                out = fn(out, name)
            return out
        return clamp_all


@dataclass
class PatchSpec:
    """A list of patches plus free-form ``source`` notes (how a vector was made)."""

    patches: list[Patch]
    source: dict = field(default_factory=dict)

    @contextlib.contextmanager
    def apply(self, model: nn.Module) -> Iterator[None]:
        """Context manager applying every patch (in order) to forward passes inside it."""
        self.check(model)
        device = next(model.parameters()).device
        with hooks.use_hooks(model, [(p.layer, p.hook(device)) for p in self.patches]):
            yield

    def check(self, model: nn.Module) -> None:
        """Raise :class:`SpecError` unless every layer exists (exactly) and every vector and
        channel fits it."""
        from interp.ablate import layer_shape

        for p in self.patches:
            shape = layer_shape(model, p.layer)
            if p.vector is not None and tuple(p.vector.shape) != shape:
                raise SpecError(f"the vector of the patch on {p.layer!r} has shape "
                                f"{tuple(p.vector.shape)}; the layer gives {shape}: was it "
                                "made for another agent?")
            bad = [c for c in p.channels or () if not 0 <= c < shape[0]]
            if bad:
                raise SpecError(f"channels {bad} not in {p.layer!r} (0-{shape[0] - 1})")
            if p.at is not None and (len(shape) != 3 or any(
                    not (0 <= r < shape[1] and 0 <= c < shape[2]) for r, c in p.at)):
                raise SpecError(f"clamp positions {list(p.at)} do not fit {p.layer!r}, whose "
                                f"activations are {shape}")

    def save(self, path: str | Path) -> Path:
        """Write the JSON and one ``<stem>.<i>.npy`` per vector beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        items = []
        for i, p in enumerate(self.patches):
            d = {"layer": p.layer, "op": p.op}
            if p.channels is not None:
                d["channels"] = [int(c) for c in p.channels]
            if p.op == "add":
                data = _npy_bytes(p.vector)
                name = f"{path.stem}.{i}.npy"
                (path.parent / name).write_bytes(data)
                d.update(vector=name, sha256=sha256_bytes(data), shape=list(p.vector.shape),
                         norm=float(np.linalg.norm(p.vector)), coefficient=p.coefficient)
            if p.op == "clamp":
                d["value"] = float(p.value)
                if p.at is not None:
                    d["at"] = [[int(r), int(c)] for r, c in p.at]
            items.append(d)
        text = json.dumps({"format": FORMAT, "version": VERSION, "patches": items,
                           "source": self.source}, indent=1)
        path.write_text(text + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PatchSpec:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:  # ValueError: not JSON / not text
            raise SpecError(f"cannot read patch spec {path}: {e}") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SpecError(f"{path} is not an {FORMAT} file (a steer run's settings are "
                            "steer.json; its patch is patch.json beside it)")
        if d.get("version") != VERSION:
            raise SpecError(f"{path}: {FORMAT} version {d.get('version')} is not {VERSION}")
        patches = []
        for i, p in enumerate(d.get("patches") or []):
            try:
                vector = None
                if p["op"] == "add":
                    raw = (path.parent / p["vector"]).read_bytes()
                    if sha256_bytes(raw) != p["sha256"]:
                        raise SpecError(f"{path.parent / p['vector']} does not match the "
                                        f"sha256 in {path}: the vector was changed")
                    vector = np.load(io.BytesIO(raw))
                patches.append(Patch(
                    p["layer"], p["op"],
                    tuple(p["channels"]) if p.get("channels") is not None else None, vector,
                    float(p.get("coefficient", 1.0)), p.get("value"),
                    tuple(tuple(rc) for rc in p["at"]) if p.get("at") is not None else None))
            except (KeyError, TypeError, OSError, ValueError) as e:
                if isinstance(e, SpecError):
                    raise
                raise SpecError(f"{path}: patch {i} is malformed ({type(e).__name__}: {e})") \
                    from None
        if not patches:
            raise SpecError(f"{path} lists no patches")
        return cls(patches, dict(d.get("source") or {}))
