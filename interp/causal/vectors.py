"""Steering vectors: from paired observations that differ only in one object, from a probe's
weights, and random vectors of the same norm (the control).

*Paired observations*: the agent plays the env; in each episode the first state in which the
object is in view is kept (one per level). Each state is rendered twice by the engine, as it
is and with the object's tile erased (a state edit), and the vector is the mean over levels of
``activation(with) - activation(without)`` at the layer (the cheese vector of Mini, Turner
et al. 2023 when the object is the maze's cheese).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.ablate import activations
from interp.envs import EnvSpec, GameState, get_variant, make_env
from interp.envs.colour_shape import DISTRACTOR
from interp.envs.labels import GOAL_TILE
from interp.envs.state import SPACE
from interp.errors import InterpError
from interp.rollout import Step, as_spec, run_episodes

OBJECTS = ("goal", "distractor")
# label that says the object is in view: the goal's own flag; a distractor exists only in
# the maze variants, whose view is the whole maze
VISIBLE = {"goal": "goal_visible", "distractor": "distractor_present"}


class SteerError(InterpError, ValueError):
    """A steering vector that cannot be made or used; the message says what to do."""


def object_tile(spec: EnvSpec, obj: str) -> int:
    """Tile id of ``obj`` ("goal" or "distractor") in the env, or a clear error."""
    if obj not in OBJECTS:
        raise SteerError(f"object must be one of {', '.join(OBJECTS)}, not {obj!r}")
    game = get_variant(spec.variant).game
    if obj == "distractor":
        if not spec.resolved_options().get("distractor"):
            raise SteerError(f"env {spec.variant!r} has no distractor object; use "
                             "-o distractor=<colour>-<shape> on a colour-shape variant")
        return DISTRACTOR
    if game not in GOAL_TILE:
        raise SteerError(f"{game} has no goal tile to erase (only "
                         f"{', '.join(GOAL_TILE)}); build the vector from a probe instead")
    return GOAL_TILE[game]


def erase(state: GameState, tile: int) -> GameState:
    """A copy of ``state`` without any tile ``tile``."""
    out = state.copy()
    out.grid[out.grid == tile] = SPACE
    return out


def render(spec: EnvSpec, states: list[GameState], seed: int = 0) -> np.ndarray:
    """The agent's 64x64 frames of ``states`` (uint8 (n, 64, 64, 3)), rendered by one env of
    ``spec`` through set_state."""
    frames = []
    with make_env(spec, num=1, seed=seed) as env:
        for s in states:
            env.set_state(0, s)
            frames.append(env.observe()[1][0].copy())
    return np.stack(frames) if frames else np.zeros((0, 64, 64, 3), np.uint8)


def states_with_object(model: nn.Module, env: str | EnvSpec, obj: str, levels: int, *,
                       num_envs: int = 64, seed: int = 0, max_steps: int = 1000,
                       device: torch.device | str | None = None
                       ) -> list[tuple[GameState, torch.Tensor | None]]:
    """Up to ``levels`` states of the agent's own play, one per episode: the first in which
    ``obj`` is in view (episodes that never show it within ``max_steps`` give none), each with
    a recurrent agent's memory entering that step (None: feed-forward)."""
    spec = as_spec(env)
    object_tile(spec, obj)
    key, kept = VISIBLE[obj], {}

    def keep(step: Step) -> bool:
        for i in np.flatnonzero(step.labels[key] > 0):
            ek = (int(step.env[i]), int(step.episode[i]))
            if ek not in kept:
                kept[ek] = (step.state_of(int(step.rows[i])),
                            None if step.hx is None else step.hx[i])
        return len(kept) >= levels
    run_episodes(model, spec, episodes=levels, num_envs=num_envs, seed=seed, on_step=keep,
                 step_labels=True, max_steps=max_steps, label_metrics=False, device=device,
                 progress="levels for the steering vector")
    return [kept[k] for k in sorted(kept)][:levels]


def object_vector(model: nn.Module, env: str | EnvSpec, layer: str, obj: str = "goal", *,
                  levels: int = 64, num_envs: int = 64, seed: int = 1,
                  device: torch.device | str | None = None) -> tuple[np.ndarray, dict]:
    """Mean over levels of activation(with ``obj``) - activation(same state, ``obj`` erased)
    at ``layer``; returns the vector and a ``source`` record (how it was made, n levels)."""
    spec = as_spec(env)
    tile = object_tile(spec, obj)
    kept = states_with_object(model, spec, obj, levels, num_envs=num_envs, seed=seed,
                              device=device)
    if not kept:
        raise SteerError(f"the {obj} was never in view in {levels} episodes of "
                         f"{spec.variant!r}; play more levels (--pairs)")
    states = [s for s, _ in kept]
    with_obj = render(spec, states, seed)
    without = render(spec, [erase(s, tile) for s in states], seed)
    changed = (with_obj != without).any(axis=(1, 2, 3))
    if not changed.all():
        raise SteerError(f"erasing the {obj} left {int((~changed).sum())} of {len(states)} "
                         "frames unchanged: the object is not drawn where the labels say")
    hx = None if kept[0][1] is None else torch.stack([h for _, h in kept])
    diff = (activations(model, layer, with_obj, device, hx=hx)
            - activations(model, layer, without, device, hx=hx))
    source = {"method": "paired-object", "object": obj, "layer": layer, "env": spec.to_dict(),
              "levels": len(states), "env_seed": seed,
              "level_seeds": sorted({int(s["current_level_seed"]) for s in states})}
    return diff.mean(0).numpy(), source


def probe_vector(probe_dir: str | Path, layer: str, shape: tuple[int, ...],
                 target: str | None = None) -> tuple[np.ndarray, dict]:
    """The smallest change of ``layer``'s activations that raises a saved probe's output by 1
    (for a binary feature: from class 0 to class 1): ``g / |g|^2`` with ``g`` the probe's
    weights pulled back onto one activation. ``target``: the class (multi-class probes)."""
    from probes.report import WEIGHTS_FILE
    from probes.views import View

    path = Path(probe_dir) / WEIGHTS_FILE
    if not path.exists():
        raise SteerError(f"{path} not found: give the --out folder of an `interp probe` run "
                         "(made by this version, which saves the probe weights)")
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        if layer not in meta["layers"]:
            raise SteerError(f"the probe in {probe_dir} was not fitted on {layer!r}; its "
                             f"layers: {', '.join(meta['layers'])}")
        lay = meta["layers"][layer]
        w = f[lay["key"]]
    view = View(tuple(lay["shape"]), lay["pool"], lay["max_dim"], lay["grid"])
    if tuple(view.shape) != tuple(shape):
        raise SteerError(f"the probe saw {layer!r} as {tuple(view.shape)}, this agent gives "
                         f"{tuple(shape)}: the probe was made on another architecture")
    classes = meta["classes"]
    if w.shape[1] == 1:
        col = 0
        if target is not None and classes is not None and str(target) != str(classes[-1]):
            raise SteerError(f"a binary probe's direction points to class {classes[-1]!r}; "
                             "use a negative coefficient for the other class")
    else:
        names = [str(c) for c in classes]
        if target is None or str(target) not in names:
            raise SteerError(f"the probe has {len(names)} classes; choose one with "
                             f"--probe-class ({', '.join(names)})")
        col = names.index(str(target))
    try:
        g = view.pullback(w[:, col])
    except ValueError as e:
        raise SteerError(f"cannot steer along this probe: {e}; rerun `interp probe` with "
                         "--pool flat or mean") from None
    norm2 = float((g ** 2).sum())
    if norm2 == 0:
        raise SteerError(f"the probe's weights on {layer!r} are all zero")
    source = {"method": "probe", "probe": str(probe_dir), "feature": meta["feature"],
              "layer": layer, "class": classes[-1] if w.shape[1] == 1 and classes else
              (classes[col] if classes else None), "pool": view.pool}
    return (g / norm2).astype(np.float32), source


def random_like(vector: np.ndarray, seed: int = 0) -> np.ndarray:
    """A Gaussian random vector of ``vector``'s shape and norm (the control)."""
    r = np.random.default_rng(seed).standard_normal(vector.shape)
    return (r * np.linalg.norm(vector) / np.linalg.norm(r)).astype(np.float32)
