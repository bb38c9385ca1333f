"""Caching and patching activations by dotted module name (TransformerLens / circrl style).

Names are those of :func:`hook_names` (leaf modules: ``input``, the observation,
``embedder.block2.res1.resadd``, ``fc_policy``, ``fc_value``...; a recurrent agent adds
``gru.state_in``, the hidden state carried in, and ``gru.gru``, the new one); every function also
accepts fnmatch globs (``"*.resadd"``).
A recurrent agent's forward functions take its hidden state as ``hx=`` (None: zeros).
A hook or patch function has the signature ``fn(output, name) -> new_output | None``.
Hooks are always removed on exit, also when the forward pass raises.

    (logits, value), cache = run_with_cache(model, x, ["embedder.block2.*"])
    with patch(model, {"embedder.block2.res1.resadd": zero(channels=[55, 77])}):
        logits, value = model(x)

``channels`` is an index, a list of indices, or a bool mask: (C,) for every row, or (N, C)
to patch a different channel set in each batch row (one forward pass, many ablations).
``at`` (for :func:`clamp`) picks spatial positions the same way: a (row, col) pair, a bool
mask (H, W) for every row, or (N, H, W) for a different position set per row.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from interp.errors import InterpError
from interp.models.impala import OBS_SIZE

HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]
Channels = int | Sequence[int] | torch.Tensor | None


class UnknownLayerError(InterpError, ValueError):
    """A layer name or pattern that matches no hookable module."""


def hook_names(model: nn.Module) -> list[str]:
    """All hookable (leaf) module names in definition order; the model itself excluded."""
    return [n for n, m in model.named_modules() if n and next(m.children(), None) is None]


def resolve_names(model: nn.Module, patterns: str | Iterable[str],
                  valid: list[str] | None = None) -> list[str]:
    """Expand exact names and fnmatch globs into hook names, in model order, without repeats
    (``valid``: the model's :func:`hook_names`, if the caller has them already)."""
    valid = hook_names(model) if valid is None else valid
    chosen: set[str] = set()
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        matched = fnmatch.filter(valid, pattern) if any(c in pattern for c in "*?[") else (
            [pattern] if pattern in valid else [])
        if not matched:
            close = difflib.get_close_matches(pattern, valid, n=5, cutoff=0.5)
            rest = [n for n in valid if n not in close]
            raise UnknownLayerError(
                f"no layer matches {pattern!r}. "
                + (f"Did you mean: {', '.join(close)}? " if close else "")
                + f"Valid names: {', '.join(rest)}")
        chosen.update(matched)
    return [n for n in valid if n in chosen]


class ActivationCache(dict):
    """``name -> tensor`` mapping returned by :func:`run_with_cache`."""

    def __missing__(self, key: str) -> torch.Tensor:
        raise KeyError(f"{key!r} not in cache; cached layers: {', '.join(self) or '(none)'}")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.items())
        return f"ActivationCache({shapes})"


@contextlib.contextmanager
def use_hooks(model: nn.Module, fwd_hooks: Iterable[tuple[str, HookFn]]) -> Iterator[None]:
    """Register ``(name_or_glob, fn)`` forward hooks for the duration of the block."""
    handles = []

    def wrap(fn: HookFn, name: str) -> Callable[..., Any]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            try:
                new = fn(output, name)
            except Exception as e:
                e.add_note(f"(in hook on layer {name!r})")
                raise
            if new is not None and isinstance(output, torch.Tensor) and new.shape != output.shape:
                raise ValueError(f"hook on {name!r} returned shape {tuple(new.shape)}, "
                                 f"expected {tuple(output.shape)}")
            return new
        return hook

    valid = hook_names(model)  # one module walk, not one per pattern
    try:
        for pattern, fn in fwd_hooks:
            if not callable(fn):
                raise TypeError(f"hook for {pattern!r} must be callable(output, name), got {fn!r}")
            for name in resolve_names(model, pattern, valid):
                handles.append(model.get_submodule(name).register_forward_hook(wrap(fn, name)))
        yield
    finally:
        for h in handles:
            h.remove()


def patch(model: nn.Module, patches: Mapping[str, HookFn]) -> contextlib.AbstractContextManager:
    """Context manager applying ``{name_or_glob: patch_fn}`` to every forward pass inside it."""
    return use_hooks(model, patches.items())


def forward(model: nn.Module, x: torch.Tensor, hx: torch.Tensor | None = None) -> Any:
    """``model(x)``, or ``model(x, hx)`` with a recurrent agent's hidden state."""
    return model(x) if hx is None else model(x, hx)


def run_with_hooks(model: nn.Module, x: torch.Tensor,
                   fwd_hooks: Iterable[tuple[str, HookFn]] = (), *,
                   hx: torch.Tensor | None = None) -> Any:
    """One forward pass with temporary hooks; returns the model's output."""
    with use_hooks(model, fwd_hooks):
        return forward(model, x, hx)


def run_with_cache(model: nn.Module, x: torch.Tensor, names: str | Iterable[str] | None = None,
                   *, detach: bool = True, to_cpu: bool = False,
                   hx: torch.Tensor | None = None) -> tuple[Any, ActivationCache]:
    """Forward pass returning ``(output, cache)`` (output: the model's, e.g. ``(logits,
    value)``); ``names`` defaults to all layers.

    Patches active around the call are seen by the cache (it records what flows downstream).
    Use ``detach=False`` to keep cached tensors in the autograd graph.
    """
    cache = ActivationCache()

    def record(output: torch.Tensor, name: str) -> None:
        if name in cache:
            raise RuntimeError(f"layer {name!r} ran twice in one forward pass (reused module?)")
        t = output.detach() if detach else output
        cache[name] = t.cpu() if to_cpu else t

    selected = hook_names(model) if names is None else resolve_names(model, names)
    with use_hooks(model, [(n, record) for n in selected]):
        output = forward(model, x, hx)
    return output, cache


@torch.no_grad()
def layer_shapes(model: nn.Module, names: str | Iterable[str] | None = None
                 ) -> dict[str, tuple[int, ...]]:
    """``{name: per-sample output shape}`` of the layers ``names`` (default: all), from one
    forward pass of a blank observation."""
    x = torch.zeros(1, model.config.in_channels, OBS_SIZE, OBS_SIZE,
                    device=next(model.parameters()).device)
    return {n: tuple(t.shape[1:]) for n, t in run_with_cache(model, x, names)[1].items()}


# --- patch factories: each returns fn(output, name) -> patched output -------------------------

def _mask(output: torch.Tensor, channels: Channels) -> torch.Tensor:
    """Boolean mask over dim 1 shaped to broadcast against ``output`` (True = patch).

    A bool tensor of shape (N, C) gives each batch row its own channel set (per-sample patch).
    """
    if channels is None:
        return torch.ones((), dtype=torch.bool, device=output.device)
    n = output.shape[1]
    if isinstance(channels, torch.Tensor) and channels.dtype == torch.bool:
        if channels.shape not in ((n,), (output.shape[0], n)):
            raise ValueError(f"channel mask of shape {tuple(channels.shape)} does not fit output "
                             f"{tuple(output.shape)}; use ({n},) or ({output.shape[0]}, {n})")
        rows = channels.shape[0] if channels.ndim == 2 else 1
        return channels.to(output.device).reshape(rows, n, *[1] * (output.ndim - 2))
    idx = torch.as_tensor(channels, dtype=torch.long).reshape(-1)
    if idx.numel() and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"channels {idx.tolist()} out of range for {n} channels")
    mask = torch.zeros(n, dtype=torch.bool)
    mask[idx] = True
    return mask.to(output.device).reshape(1, n, *[1] * (output.ndim - 2))


def _like(values: torch.Tensor | float, output: torch.Tensor) -> torch.Tensor:
    """``values`` on ``output``'s device/dtype; 1-D per-channel values broadcast over H, W."""
    v = torch.as_tensor(values).to(device=output.device, dtype=output.dtype)
    if v.ndim == 1 and output.ndim > 2 and v.shape[0] == output.shape[1]:
        v = v.reshape(-1, *[1] * (output.ndim - 2))
    return v


def _where(output: torch.Tensor, new: torch.Tensor, channels: Channels) -> torch.Tensor:
    return torch.where(_mask(output, channels), new, output)


def zero(channels: Channels = None) -> HookFn:
    """Set ``channels`` (dim 1; all if None) to zero."""
    return lambda out, name: _where(out, torch.zeros((), dtype=out.dtype, device=out.device),
                                    channels)


def mean(values: torch.Tensor, channels: Channels = None) -> HookFn:
    """Replace ``channels`` with ``values``, e.g. a dataset mean: a full activation (C, H, W),
    per-channel (C,) (broadcast over H, W), or anything broadcastable to one activation."""
    return replace(values, channels)


def replace(tensor: torch.Tensor, channels: Channels = None) -> HookFn:
    """Replace ``channels`` with ``tensor`` (a whole batch (N, ...) or one broadcast activation)."""
    return lambda out, name: _where(out, _like(tensor, out), channels)


def add(vector: torch.Tensor, channels: Channels = None, scale: float = 1.0) -> HookFn:
    """Add ``scale * vector`` to ``channels``: one activation (broadcast to every row) or a
    batch (N, ...) of per-row vectors (a steering sweep in one forward pass)."""
    return lambda out, name: _where(out, out + scale * _like(vector, out), channels)


def clamp(value: float | torch.Tensor, channels: Channels = None,
          at: tuple[int, int] | torch.Tensor | None = None) -> HookFn:
    """Set ``channels`` of a (N, C, H, W) map to ``value`` at the positions ``at`` (None: all),
    e.g. a few channels at one cell to retarget a maze agent (value: a number or (N,) per row)."""
    def fn(out: torch.Tensor, name: str) -> torch.Tensor:
        if out.ndim != 4:
            raise ValueError(f"clamp needs a (N, C, H, W) map; layer {name!r} gives "
                             f"{tuple(out.shape)}")
        mask = _mask(out, channels) & _positions(out, at)
        v = torch.as_tensor(value, dtype=out.dtype, device=out.device)
        return torch.where(mask, v.reshape(-1, 1, 1, 1) if v.ndim else v, out)
    return fn


def _positions(output: torch.Tensor, at: tuple[int, int] | torch.Tensor | None) -> torch.Tensor:
    """Bool mask over H, W shaped (1 or N, 1, H, W); True = patch."""
    n, _, h, w = output.shape
    if at is None:
        return torch.ones((), dtype=torch.bool, device=output.device)
    if not isinstance(at, torch.Tensor):
        row, col = at
        if not (0 <= row < h and 0 <= col < w):
            raise IndexError(f"position {(row, col)} outside the {h}x{w} map")
        at = torch.zeros(h, w, dtype=torch.bool)
        at[row, col] = True
    if at.dtype != torch.bool or at.shape not in ((h, w), (n, h, w)):
        raise ValueError(f"position mask of {at.dtype} {tuple(at.shape)} does not fit output "
                         f"{tuple(output.shape)}; use a bool ({h}, {w}) or ({n}, {h}, {w}) mask")
    return at.to(output.device).reshape(-1, 1, h, w)


def resample(source: torch.Tensor, channels: Channels = None, *, seed: int | None = None
             ) -> HookFn:
    """Replace ``channels`` of each sample with those of a random row of ``source`` (M, ...),
    drawn with replacement on every call (resample ablation); ``seed`` makes draws repeatable."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None

    def fn(out: torch.Tensor, name: str) -> torch.Tensor:
        if source.shape[1:] != out.shape[1:]:
            raise ValueError(f"resample source rows have shape {tuple(source.shape[1:])}, "
                             f"layer {name!r} has {tuple(out.shape[1:])}")
        rows = torch.randint(len(source), (len(out),), generator=gen)
        return _where(out, _like(source[rows.to(source.device)], out), channels)
    return fn
