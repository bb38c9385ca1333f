"""Gradient attributions of the critic and the actor (captum), Fig. 9 style maps, and the share
of attribution mass on each object of the frame.

    result = attribute(model, "coinrun-random-coin", ["value", "action"], "gradient", frames=64)
    result.shares                   # per object: share of |attribution| per target, uniform share
    result.write("out/attr")        # attribute-grid.png, attribute-shares.csv/.png

Targets: ``value`` (critic), ``action`` (log-probability of the action the agent took),
``action-logit`` (its logit), ``logit:K`` (the logit of action K). Pixel methods attribute to
the (N, 3, 64, 64) input; layer methods to a layer's (N, C, h, w) output (``layer=``).
A recurrent agent is attributed at each frame with the hidden state it brought there (``hx``,
held fixed: the attribution is to the current frame, given the agent's memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from interp import hooks
from interp.envs import EnvSpec
from interp.envs.geometry import to_pixels
from interp.envs.keys_chests_draw import ICON_H, ICON_W
from interp.envs.registry import get_game
from interp.errors import InterpError
from interp.models import preprocess
from interp.rollout import Frames, as_spec, check_agent_env, sample_frames
from interp.stats import bootstrap_mean
from interp.tables import write_csv

PIXEL_METHODS = ("gradient", "saliency", "integrated-gradients", "input-x-gradient")
LAYER_METHODS = ("layer-integrated-gradients", "gradcam")
METHODS = PIXEL_METHODS + LAYER_METHODS
NEEDS_BASELINE = ("integrated-gradients", "layer-integrated-gradients")
SIGNED = ("gradient", "integrated-gradients", "input-x-gradient", "layer-integrated-gradients")
BASELINES = ("black", "mean", "blur", "none")
TARGETS = ("value", "action", "action-logit", "logit:K")
FRAME = 64


class AttributionError(InterpError, ValueError):
    """Bad target, method, layer or baseline."""


# -- targets -----------------------------------------------------------------------------------
def check_target(target: str, num_actions: int) -> str:
    """Validate a target name (see module docstring); returns it."""
    if target in TARGETS[:3]:
        return target
    kind, _, k = target.partition(":")
    if kind == "logit" and k.isdigit() and int(k) < num_actions:
        return target
    raise AttributionError(f"unknown target {target!r}; choose value, action, action-logit or "
                           f"logit:K with K in 0-{num_actions - 1}")


class TargetHead(nn.Module):
    """An agent seen as one score table: value (N, 1), action log-probs or logits (N, A).
    :func:`captum_target` picks the column per sample."""

    def __init__(self, model: nn.Module, target: str):
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        logits, value = hooks.forward(self.model, x, hx)
        if self.target == "value":
            return value.reshape(-1, 1)
        return torch.log_softmax(logits, -1) if self.target == "action" else logits


def captum_target(target: str, actions: torch.Tensor | None) -> int | torch.Tensor:
    if target == "value":
        return 0
    if target.startswith("logit:"):
        return int(target.split(":")[1])
    if actions is None:
        raise AttributionError(f"target {target!r} needs the chosen actions")
    return actions


# -- methods -----------------------------------------------------------------------------------
def check_method(model: nn.Module, method: str, layer: str | None, baseline) -> None:
    """Raise :class:`AttributionError` for an unknown method, a layer method without a spatial
    layer (or a pixel method with one), or a baseline method without a baseline."""
    if method not in METHODS:
        raise AttributionError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method in LAYER_METHODS:
        if layer is None:
            raise AttributionError(f"{method} attributes to a layer: give --layer, e.g. "
                                   "embedder.block3.res2.resadd (`interp` lists valid names "
                                   "when one is wrong)")
        hooks.resolve_names(model, layer)
        if layer not in hooks.hook_names(model):
            raise AttributionError(f"give one exact layer name, not a pattern: {layer!r}")
        shape = hooks.layer_shapes(model, layer)[layer]
        if len(shape) != 3:
            raise AttributionError(f"layer {layer!r} has shape {shape}, "
                                   "no spatial map; pick a conv/relu/pool/resadd layer")
    elif layer is not None:
        raise AttributionError(f"{method} attributes to pixels and takes no layer; layer "
                               f"methods: {', '.join(LAYER_METHODS)}")
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise AttributionError(f"unknown baseline {baseline!r}; choose one of "
                               f"{', '.join(BASELINES)}")
    if method in NEEDS_BASELINE and (baseline is None or baseline == "none"):
        raise AttributionError(f"{method} needs a baseline: black, mean or blur")


def make_baseline(baseline: str | torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """``black`` (zeros), ``mean`` (the mean of the frames ``x``), ``blur`` (each frame blurred,
    kernel 15, sigma 5: objects vanish), ``none``, or a tensor broadcastable to ``x``."""
    if baseline is None or isinstance(baseline, torch.Tensor):
        return baseline
    return {"black": lambda: torch.zeros_like(x), "mean": lambda: x.mean(0, keepdim=True),
            "blur": lambda: gaussian_blur(x, 15, 5.0), "none": lambda: None}[baseline]()


def attributions(model: nn.Module, x: torch.Tensor, target: str, method: str, *,
                 actions: torch.Tensor | None = None, layer: str | None = None,
                 baseline: str | torch.Tensor | None = "black", n_steps: int = 32,
                 hx: torch.Tensor | None = None) -> torch.Tensor:
    """Raw captum attributions of ``target`` for frames ``x`` (float NCHW): shaped like ``x``
    for pixel methods, like the layer's output for layer methods ((N, 1, h, w) for gradcam).
    ``gradient`` is the plain signed gradient; ``saliency`` its absolute value. ``hx``: a
    recurrent agent's hidden state at each frame (None: zeros)."""
    check_method(model, method, layer, baseline)
    return _attributions(model, x, target, method, actions, layer, make_baseline(baseline, x),
                         n_steps, hx)


def _attributions(model: nn.Module, x: torch.Tensor, target: str, method: str,
                  actions: torch.Tensor | None, layer: str | None, base: torch.Tensor | None,
                  n_steps: int, hx: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`attributions` for a checked method and a made baseline tensor (or None)."""
    import captum.attr as ca

    head = TargetHead(model, target)
    kw = {"target": captum_target(target, actions),
          **({"additional_forward_args": (hx,)} if hx is not None else {})}
    x = x.detach().requires_grad_()
    if method in ("gradient", "saliency"):
        return ca.Saliency(head).attribute(x, abs=method == "saliency", **kw).detach()
    if method == "input-x-gradient":
        return ca.InputXGradient(head).attribute(x, **kw).detach()
    if method == "integrated-gradients":
        return ca.IntegratedGradients(head).attribute(
            x, baselines=base, n_steps=n_steps, internal_batch_size=256, **kw).detach()
    module = model.get_submodule(layer)
    if method == "layer-integrated-gradients":
        return ca.LayerIntegratedGradients(head, module).attribute(
            x, baselines=base, n_steps=n_steps, internal_batch_size=256, **kw).detach()
    return ca.LayerGradCam(head, module).attribute(x, relu_attributions=True, **kw).detach()


def _to_frame(a: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) -> (N, 64, 64), bilinear."""
    return F.interpolate(a, size=(FRAME, FRAME), mode="bilinear", align_corners=False)[:, 0]


def pixel_map(attr: torch.Tensor, method: str) -> torch.Tensor:
    """(N, 64, 64) map: channel mean for pixel methods (Fig. 9), channel sum upsampled to the
    frame for layer methods."""
    return attr.mean(1) if method in PIXEL_METHODS else _to_frame(attr.sum(1, keepdim=True))


def mass_map(attr: torch.Tensor, method: str) -> torch.Tensor:
    """(N, 64, 64) attribution mass: |attr| summed over colour channels for pixel methods,
    |channel-summed map| upsampled for layer methods."""
    return attr.abs().sum(1) if method in PIXEL_METHODS else _to_frame(
        attr.sum(1, keepdim=True)).abs()


def gaussian_blur(x: torch.Tensor, kernel: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Separable Gaussian blur of (N, H, W) or (N, C, H, W) maps, reflect padding."""
    r = torch.arange(kernel, dtype=x.dtype, device=x.device) - (kernel - 1) / 2
    k = torch.exp(-r**2 / (2 * sigma**2))
    k = k / k.sum()
    y = x.reshape(-1, 1, *x.shape[-2:])
    pad = kernel // 2
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), k.reshape(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), k.reshape(1, 1, -1, 1))
    return y.reshape(x.shape)


def fig9_map(m: torch.Tensor) -> torch.Tensor:
    """Langosco et al. Fig. 9: divide each frame's map by its largest |value|, then blur (5, 5)."""
    scale = m.abs().amax((-2, -1), keepdim=True).clamp_min(1e-12)
    return gaussian_blur(m / scale, 5, 5.0)


# -- object masks ------------------------------------------------------------------------------
def _box(px: np.ndarray, py: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(N, 64, 64) bool: pixels whose centre lies in the w x h box centred at (px, py)."""
    u = np.arange(FRAME) + 0.5
    inx = np.abs(u[None, :] - np.asarray(px, float)[:, None]) < np.asarray(w)[:, None] / 2
    iny = np.abs(u[None, :] - np.asarray(py, float)[:, None]) < np.asarray(h)[:, None] / 2
    return iny[:, :, None] & inx[:, None, :]


def object_masks(labels: dict[str, np.ndarray], game: str) -> dict[str, np.ndarray]:
    """A partition of every frame into object regions (N, 64, 64) bool, from the labels and the
    view geometry (``view_dim``, ``center_x``, ``center_y``; one tile = 64 / view_dim px).

    Regions, each one tile square unless said: ``goal`` (coin / cheese cell, drawn or not;
    keys-chests: the nearest chest), ``distractor`` (its cell, maze variants with one;
    keys-chests: the nearest key), ``agent`` (centred on the agent), ``end_wall`` (coinrun: the
    end wall's first column, full height), ``inventory`` (keys-chests: the key icons of the
    keys held), ``corner`` (maze: the top-right maze cell), ``other`` (the rest). Where regions
    overlap, the earlier one in this order keeps the pixel, so the regions partition the frame.
    Which regions a game has is declared by its :class:`~interp.envs.base.Game` (``regions``).
    """
    cell = FRAME / labels["view_dim"]
    px = lambda x, y: to_pixels(labels, np.asarray(x, float), np.asarray(y, float))  # noqa: E731
    absent = lambda flag, v: np.where(np.asarray(flag) > 0, v, np.nan)  # noqa: E731

    def distractor() -> np.ndarray | None:
        if not (labels["distractor_present"] > 0).any():
            return None
        dx, dy = px(labels["distractor_x"] + 0.5, labels["distractor_y"] + 0.5)
        return _box(absent(labels["distractor_present"], dx), dy, cell, cell)

    def end_wall() -> np.ndarray:
        left, _ = px(labels["end_wall_x"], 0)
        return _box(left + cell / 2, np.full_like(cell, FRAME / 2), cell,
                    np.full_like(cell, 2 * FRAME))

    def inventory() -> np.ndarray:  # the key icons, top right
        width = ICON_W * np.asarray(labels["keys_held"], float)
        return _box(FRAME - width / 2, np.full_like(width, ICON_H / 2), width,
                    np.full_like(width, ICON_H))

    region = {
        "goal": lambda: _box(absent(labels["goal_present"], labels["goal_px"]),
                             labels["goal_py"], cell, cell),
        "distractor": distractor,
        "agent": lambda: _box(labels["agent_px"], labels["agent_py"], cell, cell),
        "end_wall": end_wall, "inventory": inventory,
        "corner": lambda: _box(*px(labels["corner_x"] + 0.5, labels["corner_y"] + 0.5),
                               cell, cell)}
    taken = np.zeros((len(cell), FRAME, FRAME), bool)
    out = {}
    for name in get_game(game).regions:
        mask = region[name]()
        if mask is not None:
            out[name] = mask & ~taken
            taken |= mask
    out["other"] = ~taken
    return out


def mass_shares(mass: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-frame share of total attribution mass in each region: name -> (N,); NaN where a
    frame has no mass. Over a partition the shares of a frame sum to 1."""
    total = mass.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {k: np.where(total > 0, (mass * m).sum((1, 2)) / total, np.nan)
                for k, m in masks.items()}


# -- the experiment ----------------------------------------------------------------------------
@dataclass
class AttributionResult:
    """Attributions of several targets on the same frames; maps are (N, 64, 64) arrays."""

    method: str
    targets: list[str]
    frames: Frames
    values: np.ndarray  # critic value per frame
    maps: dict[str, np.ndarray]  # target -> signed pixel map (see pixel_map)
    mass: dict[str, np.ndarray]  # target -> attribution mass (see mass_map)
    masks: dict[str, np.ndarray]  # object -> region (see object_masks)
    spec: EnvSpec

    @property
    def signed(self) -> bool:
        return self.method in SIGNED

    @cached_property
    def display_maps(self) -> dict[str, np.ndarray]:
        """Fig. 9 maps (normalised per frame, blurred) for the overlays."""
        return {t: fig9_map(torch.from_numpy(m)).numpy() for t, m in self.maps.items()}

    @cached_property
    def shares(self) -> list[dict]:
        """One row per object: ``frames`` (frames where it is in view), ``uniform`` (share a
        uniform map would give: mean area fraction), per target the mean share over frames with
        its 95% bootstrap interval (over frames) and ``{target}_ratio`` = share / uniform."""
        per_target = {t: mass_shares(self.mass[t], self.masks) for t in self.targets}
        rows = []
        for obj, mask in self.masks.items():
            area = mask.mean((1, 2))
            row = {"object": obj, "frames": int((area > 0).sum()), "uniform": float(area.mean())}
            for t in self.targets:
                mean, lo, hi = bootstrap_mean(per_target[t][obj])
                row.update({t: mean, f"{t}_lo": lo, f"{t}_hi": hi,
                            f"{t}_ratio": mean / row["uniform"] if row["uniform"] else math.nan})
            rows.append(row)
        return rows

    def grid_indices(self, n: int) -> list[int]:
        """``n`` frames evenly spread over those showing the goal (over all if too few)."""
        shown = np.flatnonzero(self.frames.labels.get("goal_visible", np.zeros(0)) > 0)
        pool = shown if len(shown) >= n else np.arange(len(self.frames))
        picks = np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)
        return sorted({int(pool[i]) for i in picks})

    def write(self, out: str | Path, grid: int = 6) -> list[Path]:
        """Write ``attribute-grid.png`` (``grid`` frames), ``attribute-shares.csv`` and
        ``attribute-shares.png`` to ``out``; returns the paths."""
        from interp import plots

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        rows = self.shares
        write_csv(out / "attribute-shares.csv", rows)
        return [plots.attribution_grid(self, self.grid_indices(grid), out / "attribute-grid.png"),
                out / "attribute-shares.csv",
                plots.attribution_shares(rows, self.targets, out / "attribute-shares.png")]


def attribute(model: nn.Module, env: str | EnvSpec, targets: Sequence[str] = ("value", "action"),
              method: str = "gradient", *, layer: str | None = None,
              baseline: str | torch.Tensor | None = "black", frames: int = 32, num_envs: int = 8,
              every: int = 5, seed: int = 0, n_steps: int = 32, chunk: int = 32,
              device: torch.device | str | None = None) -> AttributionResult:
    """Attribute each target on ``frames`` frames of the agent's own play (every ``every``-th
    step of ``num_envs`` envs, env seed ``seed``); ``action`` targets the action it took."""
    spec = as_spec(env)
    check_agent_env(model, spec)
    targets = [check_target(t, model.config.num_actions) for t in targets]
    check_method(model, method, layer, baseline)
    device = torch.device(device or next(model.parameters()).device)
    fr = sample_frames(model, spec, frames, num_envs=num_envs, every=every, seed=seed,
                       device=device)
    x = preprocess(fr.obs, device)
    actions = torch.as_tensor(fr.actions, device=device)
    base = make_baseline(baseline, x)
    with torch.no_grad():
        values = model(x, fr.hx)[1].cpu().numpy()
    maps, mass = {}, {}
    for t in targets:
        raw = [_attributions(model, x[i:i + chunk], t, method, actions[i:i + chunk], layer,
                             base if base is None or base.shape[0] == 1 else base[i:i + chunk],
                             n_steps, None if fr.hx is None else fr.hx[i:i + chunk])
               for i in range(0, len(x), chunk)]
        maps[t] = torch.cat([pixel_map(r, method) for r in raw]).cpu().numpy()
        mass[t] = torch.cat([mass_map(r, method) for r in raw]).cpu().numpy()
    masks = object_masks(fr.labels, spec.get_variant().game)
    return AttributionResult(method, targets, fr, values, maps, mass, masks, spec)
