"""Channel ablations: knock out channels of a layer (or the R/G/B input colours) and measure
what changes against the unablated agent on the same levels.

    result = ablate(model, "coinrun-random-coin", "embedder.block2.res1.resadd", mode="zero")
    result.table(rank_by="return")[:5]          # ranked conditions with 95% intervals
    result.write_report("reports/block2")       # CSV, markdown, PNG

Every condition (a channel set) and the baseline (nothing ablated) run as groups of one
:func:`~interp.rollout.run_episodes` batch: same level seeds, same action random numbers,
one forward pass per step with a per-row channel mask, so a sweep over every channel costs
about one evaluation of a large batch, not one evaluation per channel. Output effects (KL of
the policy, |change of value|) are measured on the baseline agent's own observations.

Common random numbers make a tiny change of the policy look like an effect: one different
action and the episode diverges from the baseline's. The noise floor measures what divergence
alone does: the unablated agent replayed on the same levels with other action seeds
(``NULL_REPEATS`` times) against the baseline. An effect no larger than the floor
(:meth:`AblationResult.noise_floor`) is reported as within noise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from interp import hooks
from interp.envs import EnvSpec
from interp.errors import InterpError
from interp.models import preprocess
from interp.rollout import (
    Episodes,
    Step,
    as_spec,
    check_agent_env,
    episode_metrics,
    run_episodes,
    sample_frames,
)
from interp.stats import bootstrap_mean, rate, resampled_means
from interp.tables import write_csv

INPUT = "input"  # the preprocessed observation, channels R, G, B
COLOURS = "RGB"
MODES = ("zero", "mean", "resample")
OUTPUT_METRICS = ("kl", "dvalue")  # KL(policy || ablated policy), |value - ablated value|
NULL_REPEATS = 2  # reruns of the unablated agent with other action seeds (the noise floor)


class AblationError(InterpError, ValueError):
    """Bad layer, channels, mode or statistics for an ablation."""


# -- layers and statistics ---------------------------------------------------------------------
def layer_shape(model: nn.Module, layer: str) -> tuple[int, ...]:
    """Shape of one activation of ``layer`` (an exact hook name, e.g. ``"input"``), e.g.
    (C, H, W) for a conv map."""
    names = hooks.resolve_names(model, layer)  # raises UnknownLayerError listing valid names
    if len(names) != 1 or names[0] != layer:
        raise AblationError(f"give one exact layer name, not a pattern ({layer!r} matches "
                            f"{', '.join(names)})")
    return hooks.layer_shapes(model, layer)[layer]


def layer_channels(model: nn.Module, layer: str) -> int:
    """Number of channels (dim 1) of ``layer`` (an exact hook name, e.g. ``"input"``)."""
    return layer_shape(model, layer)[0]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def activations(model: nn.Module, layer: str, obs: np.ndarray,
                device: torch.device | str | None = None, batch: int = 256,
                hx: torch.Tensor | None = None) -> torch.Tensor:
    """``layer``'s activations (n, ...) on uint8 frames, on the CPU (``hx``: a recurrent
    agent's memory entering each frame)."""
    device = device or _device(model)
    return torch.cat([hooks.run_with_cache(
        model, preprocess(obs[i:i + batch], device), layer,
        hx=None if hx is None else hx[i:i + batch].to(device))[1][layer].cpu()
        for i in range(0, len(obs), batch)])


@dataclass
class ActivationStats:
    """Activations of one layer on the unablated agent's frames: ``mean`` (one activation,
    averaged per channel and position) for mean ablation, ``samples`` (M, ...) for resampling."""

    layer: str
    mean: torch.Tensor
    samples: torch.Tensor

    def save(self, path: str | Path) -> Path:
        torch.save({"layer": self.layer, "mean": self.mean, "samples": self.samples}, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ActivationStats:
        if not Path(path).is_file():
            raise AblationError(f"no activation-stats file at {path}")
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            return cls(d["layer"], d["mean"], d["samples"])
        except Exception as e:
            raise AblationError(f"{path}: not an activation-stats file (written by "
                                "collect_stats(...).save(path)); it fails to load with "
                                f"{type(e).__name__}") from e


@torch.no_grad()
def collect_stats(model: nn.Module, env: str | EnvSpec, layer: str, *, frames: int = 256,
                  seed: int = 0, device: torch.device | str | None = None) -> ActivationStats:
    """Activation statistics of ``layer`` over ``frames`` frames of the agent's own play
    (:func:`~interp.rollout.sample_frames`, every 5th step of 8 envs with env seed ``seed``)."""
    layer_channels(model, layer)
    device = device or _device(model)
    fr = sample_frames(model, env, frames, seed=seed, labels=False, device=device)
    acts = activations(model, layer, fr.obs, device, hx=fr.hx)
    return ActivationStats(layer, acts.mean(0), acts)


def check_rank_by(spec: EnvSpec, rank_by: str) -> str:
    """Validate a ranking metric for ablations on ``spec`` (before any episode runs)."""
    valid = episode_metrics(spec) + list(OUTPUT_METRICS)
    if rank_by not in valid:
        raise AblationError(f"cannot rank by {rank_by!r} on {spec.variant}; choose one of "
                            f"{', '.join(valid)}")
    return rank_by


# -- per-row patched policy --------------------------------------------------------------------
PatchOf = Callable[[torch.Tensor, np.ndarray, int], "hooks.HookFn | None"]


def _patched_fn(mode: str, stats: ActivationStats | None):
    """``fn(masks, donors) -> patch`` ablating channels ``masks[i]`` of row i; in resample mode
    row i takes its values from ``stats.samples[donors[i]]``."""
    def fn(masks: torch.Tensor, donors: np.ndarray | None = None) -> hooks.HookFn:
        if mode == "zero":
            return hooks.zero(masks)
        if mode == "mean":
            return hooks.mean(stats.mean, masks)
        return hooks.replace(stats.samples[torch.as_tensor(donors)], masks)
    return fn


def patched_step(model: nn.Module, layer: str, x: torch.Tensor, patch: hooks.HookFn | None,
                 hx: torch.Tensor | None = None):
    """``model.step(x, hx) -> (logits, value, new hx)`` with ``patch`` on ``layer`` (``"input"``:
    the observation); a recurrent agent carries the patched memory on."""
    if patch is None:
        return model.step(x, hx)
    with hooks.patch(model, {layer: patch}):
        return model.step(x, hx)


def run_conditions(model: nn.Module, env: str | EnvSpec, layer: str, patch_of: PatchOf,
                   conditions: int, *, episodes: int = 32, num_envs: int = 16, seed: int = 0,
                   max_steps: int | None = None, batch: int = 16, keep_frames: int = 0,
                   on_step: Callable[[Step], bool | None] | None = None,
                   step_labels: bool = False, action_seeds: Sequence[int] | None = None,
                   device: torch.device | str | None = None,
                   progress: str = "conditions") -> Episodes:
    """Play ``conditions`` interventions on the same levels with the same action random
    numbers: up to ``batch`` conditions share one :func:`~interp.rollout.run_episodes`
    rollout (one forward pass per step for all of them).

    ``patch_of(cond, env, t)`` returns the patch of ``layer`` for a batch of rows (or None):
    ``cond`` is each row's condition index (a long tensor on the device), ``env`` its env,
    ``t`` the rollout's step. ``action_seeds``: one per condition (default ``seed``). Returns
    the episodes, shaped (conditions, envs, episodes), with ``keep_frames`` observations of
    condition 0. ``on_step`` sees ``Step.group`` as the condition index.
    """
    spec = as_spec(env)
    device = torch.device(device or _device(model))
    E = min(num_envs, episodes)
    seeds = np.full(conditions, seed) if action_seeds is None else np.asarray(action_seeds)
    parts = []
    for start in range(0, conditions, batch):
        size, t = min(batch, conditions - start), [0]

        def policy(x, rows, hx, start=start, t=t):
            cond = torch.as_tensor(rows // E + start, device=device)
            out = patched_step(model, layer, x, patch_of(cond, rows % E, t[0]), hx)
            t[0] += 1
            return out

        def shifted(step: Step, start=start) -> bool | None:
            return on_step(dataclasses.replace(step, group=step.group + start))

        parts.append(run_episodes(
            model, spec, groups=size, episodes=episodes, num_envs=num_envs, seed=seed,
            policy=policy, max_steps=max_steps, keep_frames=keep_frames if start == 0 else 0,
            on_step=shifted if on_step else None, step_labels=step_labels, device=device,
            action_seeds=seeds[start:start + size],
            progress=f"{progress}: {start}-{start + size - 1} of {conditions}"))
    return Episodes.concat(parts)


@torch.no_grad()
def forward_conditions(model: nn.Module, layer: str, x: torch.Tensor, patch_of: PatchOf,
                       conditions: int, hx: torch.Tensor | None = None,
                       rows_per_pass: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames ``x`` (n, ...) under every condition at once: logits (conditions, n, A) and
    values (conditions, n). ``patch_of(cond, frame, t)`` as in :func:`run_conditions`, with
    each row's frame index instead of its env and ``t`` counting the forward passes. ``hx``:
    a recurrent agent's memory entering each frame (None: feed-forward, or empty memory)."""
    n = len(x)
    per_pass = max(1, rows_per_pass // max(n, 1))
    logits, values = [], []
    for t, start in enumerate(range(0, conditions, per_pass)):
        m = min(per_pass, conditions - start)
        cond = torch.arange(start, start + m, device=x.device).repeat_interleave(n)
        lg, v, _ = patched_step(model, layer, x.repeat(m, *[1] * (x.ndim - 1)),
                                patch_of(cond, np.tile(np.arange(n), m), t),
                                None if hx is None else hx.repeat(m, 1))
        logits.append(lg.reshape(m, n, -1))
        values.append(v.reshape(m, n))
    return torch.cat(logits), torch.cat(values)


# -- statistics --------------------------------------------------------------------------------
def _nanmean(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else math.nan


# -- result ------------------------------------------------------------------------------------
@dataclass
class AblationResult:
    """Episodes of the baseline (group 0) and every condition (group c + 1), on the same levels;
    ``kl`` / ``dvalue``: (conditions, envs * episodes) per-episode means over sampled frames;
    ``null``: the unablated agent rerun on the same levels with other action seeds (one group
    per rerun), for the noise floor."""

    layer: str
    mode: str
    conditions: list[tuple[int, ...]]
    episodes: Episodes
    kl: np.ndarray
    dvalue: np.ndarray
    spec: EnvSpec
    null: Episodes

    @property
    def names(self) -> list[str]:
        if self.layer == INPUT:
            return ["+".join(COLOURS[c] for c in cond) for cond in self.conditions]
        return ["ch " + "+".join(map(str, cond)) for cond in self.conditions]

    @property
    def behaviour_metrics(self) -> list[str]:
        return list(self.episodes.metrics)

    def _per_episode(self, metric: str, group: int, episodes: Episodes | None = None
                     ) -> np.ndarray:
        ep = self.episodes if episodes is None else episodes
        v = ep.metrics[metric][group].reshape(-1).copy()
        v[~ep.valid[group].reshape(-1)] = np.nan
        return v

    @cached_property
    def noise_floor(self) -> dict[str, float]:
        """Behaviour metric -> the largest |mean difference| (95th percentile) that the
        unablated agent produces against itself over as many paired episodes as a condition
        has: per-episode differences of the reruns (other action seeds, same levels) minus the
        baseline, pooled, resampled ``n`` at a time. A condition whose |Δ| is no larger is
        within noise: divergence under common random numbers, not evidence of an effect."""
        n = max(1, int(self.episodes.valid[0].sum()))
        floor = {}
        for m in self.behaviour_metrics:
            base = self._per_episode(m, 0)
            diffs = np.concatenate([self._per_episode(m, r, self.null) - base
                                    for r in range(self.null.valid.shape[0])])
            diffs = diffs[~np.isnan(diffs)]
            floor[m] = (float(np.percentile(np.abs(resampled_means(diffs, n)), 95))
                        if len(diffs) else math.nan)
        return floor

    def within_noise(self, row: dict, metric: str) -> bool:
        """Whether an :attr:`effects` row's change of ``metric`` is within the noise floor."""
        return bool(abs(row[f"d_{metric}"]) <= self.noise_floor[metric])

    def noise_summary(self, rank_by: str) -> str:
        """One paragraph: the noise floor and how many effects on ``rank_by`` are within it."""
        reruns = self.null.valid.shape[0]
        if not reruns:
            return "No noise floor was measured (no reruns of the unablated agent)."
        floors = ", ".join(f"|Δ{m}| ≤ {v:.3g}" for m, v in self.noise_floor.items()
                           if m != "steps_to_goal")
        text = (f"Noise floor (the unablated agent against itself: {reruns} reruns with other "
                f"action seeds on the same levels): {floors}. Effects within it (marked ≈) "
                "are what divergence under common random numbers produces, not evidence of an "
                "effect.")
        if rank_by not in OUTPUT_METRICS:
            k = sum(self.within_noise(r, rank_by) for r in self.effects)
            text += (f" {k} of {len(self.effects)} conditions change {rank_by} by no more than "
                     "the noise floor" + (": more --episodes would tell effects from noise."
                                          if k else "."))
        return text

    def baseline(self) -> dict[str, tuple[float, float, float]]:
        """Baseline behaviour: metric -> (mean, lo, hi)."""
        return {m: bootstrap_mean(self._per_episode(m, 0)) for m in self.behaviour_metrics}

    def rates(self, metric: str) -> list[tuple[float, float, float]]:
        """(rate, lo, hi) of a 0/1 behaviour metric (Wilson 95% interval) for the baseline,
        then every condition."""
        return [rate(self._per_episode(metric, g)) for g in range(len(self.conditions) + 1)]

    @cached_property
    def effects(self) -> list[dict]:
        """One row per condition (in condition order): behaviour effects (ablated minus
        baseline, paired by level) and output effects, each with a 95% bootstrap interval."""
        rows = []
        for c, (name, cond) in enumerate(zip(self.names, self.conditions)):
            both = self.episodes.valid[0].reshape(-1) & self.episodes.valid[c + 1].reshape(-1)
            row = {"condition": name, "channels": " ".join(map(str, cond)), "n": int(both.sum())}
            for m in self.behaviour_metrics:
                base, abl = self._per_episode(m, 0), self._per_episode(m, c + 1)
                row[f"{m}_base"], row[f"{m}_ablated"] = _nanmean(base), _nanmean(abl)
                row[f"d_{m}"], row[f"d_{m}_lo"], row[f"d_{m}_hi"] = bootstrap_mean(abl - base)
                row[f"d_{m}_within_noise"] = self.within_noise(row, m)
            for m, values in (("kl", self.kl), ("dvalue", self.dvalue)):
                row[m], row[f"{m}_lo"], row[f"{m}_hi"] = bootstrap_mean(values[c])
            rows.append(row)
        return rows

    def table(self, rank_by: str = "return") -> list[dict]:
        """:attr:`effects` ranked by the size of the effect on ``rank_by`` (a behaviour metric,
        or ``kl`` / ``dvalue``)."""
        check_rank_by(self.spec, rank_by)
        key = rank_by if rank_by in OUTPUT_METRICS else f"d_{rank_by}"
        rows = sorted(self.effects,
                      key=lambda r: -abs(r[key]) if not math.isnan(r[key]) else math.inf)
        return [{"rank": i + 1, **r} for i, r in enumerate(rows)]

    def markdown(self, rank_by: str = "return", top: int | None = None) -> str:
        """The noise summary, then the ranked table as markdown (effects with 95% intervals;
        ≈ marks effects within the noise floor)."""
        rows = self.table(rank_by)[:top]
        metrics = [m for m in self.behaviour_metrics if m != "steps_to_goal"]
        head = ["rank", "condition", "n"] + [f"Δ{m}" for m in metrics] + ["KL", "|Δvalue|"]

        def ci(r, m):
            k = f"d_{m}"
            return (("≈ " if r[f"{k}_within_noise"] else "")
                    + f"{r[k]:+.3g} [{r[k + '_lo']:+.3g}, {r[k + '_hi']:+.3g}]")
        lines = [self.noise_summary(rank_by), "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(head)]
        for r in rows:
            cells = [str(r["rank"]), r["condition"], str(r["n"])]
            cells += [ci(r, m) for m in metrics]
            cells += [f"{r[k]:.3g} [{r[k + '_lo']:.3g}, {r[k + '_hi']:.3g}]"
                      for k in OUTPUT_METRICS]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write_report(self, out: str | Path, rank_by: str = "return", top: int = 30
                     ) -> list[Path]:
        """Write ``ablation.csv``, ``ablation.md``, ``ablate-effects.png`` and
        ``ablate-behaviour.png`` (the ``top`` conditions) to ``out``; returns the paths."""
        from interp import plots

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        rows = self.table(rank_by)
        write_csv(out / "ablation.csv", rows)
        base = self.baseline()
        n = int(self.episodes.valid[0].sum())
        summary = ", ".join(f"{m} {v[0]:.3g} [{v[1]:.3g}, {v[2]:.3g}]" for m, v in base.items())
        (out / "ablation.md").write_text(
            f"# Ablation: {self.mode} on `{self.layer}`, env `{self.spec.variant}`\n\n"
            f"Baseline (unablated, n={n} episodes): {summary}.\n\n"
            f"Ranked by |effect on {rank_by}|. Behaviour effects are ablated minus baseline, "
            "paired by level (same env, same episode index); KL(policy ‖ ablated) and "
            "|Δvalue| are means over the baseline agent's sampled frames (per-episode means). "
            "Brackets: 95% percentile-bootstrap intervals over episodes.\n\n"
            f"{self.markdown(rank_by)}\n")
        paths = [out / "ablation.csv", out / "ablation.md"]
        paths.append(plots.ablation_effects(self, rows[:top], rank_by, out / "ablate-effects.png"))
        order = [self.names.index(r["condition"]) for r in rows[:top]]
        paths.append(plots.ablation_behaviour(self, order, out / "ablate-behaviour.png"))
        return paths


# -- the experiment ----------------------------------------------------------------------------
def check_conditions(model: nn.Module, layer: str,
                     conditions: Sequence[Sequence[int]] | None) -> list[tuple[int, ...]]:
    """Validate channel sets (None: every channel alone); the error lists the valid range."""
    n = layer_channels(model, layer)
    if conditions is None:
        return [(c,) for c in range(n)]
    valid = ("R, G, B (0-2)" if layer == INPUT else f"0-{n - 1}")
    out = []
    for cond in conditions:
        cond = tuple(int(c) for c in cond)
        bad = [c for c in cond if not 0 <= c < n]
        if not cond or bad:
            raise AblationError(f"channel(s) {bad or '(none)'} not in layer {layer!r}, which has "
                                f"{n} channels: {valid}")
        out.append(cond)
    return out


@torch.no_grad()
def ablate(model: nn.Module, env: str | EnvSpec, layer: str,
           conditions: Sequence[Sequence[int]] | None = None, *, mode: str = "zero",
           stats: ActivationStats | None = None, episodes: int = 32, num_envs: int = 16,
           seed: int = 0, max_steps: int | None = None, frames: int = 256,
           batch: int = 16, null_repeats: int = NULL_REPEATS,
           device: torch.device | str | None = None) -> AblationResult:
    """Ablate each channel set in ``conditions`` (None: every channel of ``layer`` alone).

    ``layer``: a hook name or ``"input"`` (channels 0/1/2 = R/G/B of the observation).
    ``mode``: ``zero``; ``mean`` (the channel's mean activation map) or ``resample`` (the
    channel's activation on a random frame), both from ``stats``, collected from 256 frames
    of the unablated agent on env seed ``seed + 1`` when not given. ``episodes`` per condition
    (split over ``num_envs`` envs); up to ``batch`` conditions share one batched rollout;
    ``frames``: baseline observations for the KL / |Δvalue| measurements. ``null_repeats``:
    reruns of the unablated agent with other action seeds for the noise floor (0: none).
    """
    if mode not in MODES:
        raise AblationError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    spec = as_spec(env)
    check_agent_env(model, spec)
    conditions = check_conditions(model, layer, conditions)
    device = torch.device(device or _device(model))
    if mode == "zero":
        stats = None
    else:
        stats = stats or collect_stats(model, spec, layer, seed=seed + 1, device=device)
        if stats.layer != layer:
            raise AblationError(f"stats are for layer {stats.layer!r}, not {layer!r}")
        stats = ActivationStats(layer, stats.mean.to(device), stats.samples.to(device))
    n = layer_channels(model, layer)
    # groups: the baseline, NULL_REPEATS unablated reruns (other action seeds), the conditions
    first = 1 + null_repeats
    masks = torch.zeros(first + len(conditions), n, dtype=torch.bool, device=device)
    for g, cond in enumerate(conditions, first):
        masks[g, list(cond)] = True
    action_seeds = np.full(len(masks), seed)
    action_seeds[1:first] = seed + np.arange(1, first)

    fn, E = _patched_fn(mode, stats), min(num_envs, episodes)

    def patch_of(cond: torch.Tensor, env: np.ndarray, t: int) -> hooks.HookFn:
        # resample donors: one draw per env and step, the same in every batch of conditions
        donors = np.random.default_rng([seed, t]).integers(len(stats.samples), size=E)[env] \
            if mode == "resample" else None
        return fn(masks[cond], donors)

    every = run_conditions(
        model, spec, layer, patch_of, len(masks), episodes=episodes, num_envs=num_envs,
        seed=seed, max_steps=max_steps, batch=batch, keep_frames=frames, device=device,
        action_seeds=action_seeds,
        progress=f"{layer}: groups (0: baseline, then {null_repeats} reruns)")
    episodes_all = every.take([0, *range(first, len(masks))])
    kl, dvalue = _output_effects(model, layer, mode, stats, masks[first:], every.frames,
                                 episodes_all.valid.shape[1:], seed, device)
    return AblationResult(layer, mode, conditions, episodes_all, kl, dvalue, spec,
                          every.take(range(1, first)))


def _output_effects(model, layer, mode, stats, masks, frames, shape, seed, device
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode mean KL(policy || ablated) and |Δvalue| on the baseline's frames (a recurrent
    agent's with the memory it had there, ablated at this step only)."""
    E, K = shape
    kl = np.full((len(masks), E * K), np.nan)
    dvalue = kl.copy()
    if frames is None or not len(frames):
        return kl, dvalue
    x, hx = preprocess(frames.obs, device), frames.hx
    logits, value, _ = model.step(x, hx)
    logp = torch.log_softmax(logits.double(), -1)
    fn = _patched_fn(mode, stats)

    def patch_of(cond: torch.Tensor, frame: np.ndarray, t: int) -> hooks.HookFn:
        donors = np.random.default_rng([seed, t]).integers(len(stats.samples), size=len(cond)) \
            if mode == "resample" else None
        return fn(masks[cond], donors)
    a_logits, a_value = forward_conditions(model, layer, x, patch_of, len(masks), hx)
    a_logp = torch.log_softmax(a_logits.double(), -1)
    frame_kl = (logp.exp() * (logp - a_logp)).sum(-1).cpu().numpy()
    frame_dv = (a_value - value).abs().cpu().numpy()
    episode_id = frames.env * K + frames.episode
    for e in np.unique(episode_id):
        sel = episode_id == e
        kl[:, e], dvalue[:, e] = frame_kl[:, sel].mean(1), frame_dv[:, sel].mean(1)
    return kl, dvalue
