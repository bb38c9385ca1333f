"""``interp steer``: add a steering vector at a layer at every step and measure what the agent
does, against the unsteered agent and a random vector of the same norm at the same layer.

    vector, source = object_vector(model, "maze-cheese-region", LAYER, "goal")   # cheese vector
    res = steer(model, spec, LAYER, vector, coefficients=(-1, 1))
    res.markdown(); res.write("out/cheese-vector")

Every condition (the baseline, the vector at each coefficient, the random vector at each
coefficient) is a group of one batched rollout (:func:`interp.ablate.run_conditions`): the same
levels, the same action random numbers, one forward pass per step, the vector picked per row.
Behaviour: goal reached; CoinRun: end reached without the coin; cheese mazes: top-right corner
first; variants with a distractor: goal first / distractor first; mazes with a proxy:
P(goal | decision square) from the policy with the agent placed on each level's decision
square (:mod:`interp.causal.fields`). Rates with Wilson 95% intervals, means and differences
(paired by level) with bootstrap 95% intervals; KL(policy || steered) on the baseline's frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp import hooks
from interp.ablate import forward_conditions, layer_shape, run_conditions
from interp.causal.common import outcome_measure, outcomes
from interp.causal.fields import decision, placed_frames, proxy_name
from interp.causal.vectors import SteerError, random_like
from interp.evaluate import outcome_keys
from interp.envs import EnvSpec, GameState
from interp.models import preprocess
from interp.rollout import Episodes, Step, StepTrace, as_spec, check_agent_env
from interp.stats import bootstrap_mean, rate
from interp.tables import fmt, md_table, write_csv

DECISION = "p_goal_decision"  # P(goal | decision square)


@dataclass(frozen=True)
class Condition:
    kind: str  # "baseline" | "steer" | "random"
    coefficient: float = 0.0

    @property
    def name(self) -> str:
        return "baseline" if self.kind == "baseline" else f"{self.kind} {self.coefficient:+g}"


def sweep(coefficients) -> list[Condition]:
    """The baseline, then the vector and the random control at each coefficient."""
    coefficients = [float(c) for c in coefficients]
    if not coefficients or 0.0 in coefficients or len(set(coefficients)) != len(coefficients):
        raise SteerError(f"coefficients {coefficients}: give distinct non-zero numbers (the "
                         "unsteered agent is always run)")
    return [Condition("baseline")] + [Condition(k, c) for c in coefficients
                                      for k in ("steer", "random")]


@dataclass
class SteerResult:
    """What :func:`steer` measured. ``per_episode[metric]`` is (conditions, episodes) with NaN
    where undefined; episode ``j`` is the same level in every condition. ``frame_probs``:
    action probabilities (conditions, frames, 15) on the baseline agent's frames."""

    spec: EnvSpec
    layer: str
    vector: np.ndarray
    control: np.ndarray
    conditions: list[Condition]
    episodes: Episodes
    per_episode: dict[str, np.ndarray]
    frame_probs: np.ndarray
    frame_episode: np.ndarray  # episode index (env * K + k) of each frame

    @property
    def coefficients(self) -> list[float]:
        return [c.coefficient for c in self.conditions if c.kind == "steer"]

    def kl(self) -> np.ndarray:
        """KL(baseline policy || condition) per frame (conditions, frames), nats."""
        p = np.clip(self.frame_probs, 1e-12, 1)
        return (p[0] * (np.log(p[0]) - np.log(p))).sum(-1)

    def estimate(self, metric: str, g: int) -> tuple[float, float, float]:
        """(value, lo, hi) of a metric in condition ``g``: Wilson for rates, bootstrap for
        means (``kl``: over episodes of the per-episode means)."""
        if metric == "kl":
            return bootstrap_mean(_episode_means(self.kl()[g], self.frame_episode))
        v = self.per_episode[metric][g]
        return rate(v) if _is_rate(metric) else bootstrap_mean(v)

    def effect(self, metric: str, g: int) -> tuple[float, float, float, int]:
        """Condition ``g`` minus the baseline, paired by level: (mean, lo, hi, n)."""
        d = self.per_episode[metric][g] - self.per_episode[metric][0]
        return (*bootstrap_mean(d), int((~np.isnan(d)).sum()))

    def metrics(self) -> list[str]:
        return list(self.per_episode)

    def table(self) -> list[dict]:
        """One row per condition: every metric with its interval, its paired difference from
        the baseline and n; the median of P(goal | decision square); the mean KL."""
        rows = []
        for g, c in enumerate(self.conditions):
            row = {"condition": c.name, "kind": c.kind, "coefficient": c.coefficient}
            for m in self.metrics():
                v = self.per_episode[m][g]
                row[f"{m}_n"] = int((~np.isnan(v)).sum())
                row[m], row[f"{m}_lo"], row[f"{m}_hi"] = self.estimate(m, g)
                row[f"d_{m}"], row[f"d_{m}_lo"], row[f"d_{m}_hi"], _ = self.effect(m, g)
            if DECISION in self.per_episode:
                v = self.per_episode[DECISION][g]
                row[f"{DECISION}_median"] = float(np.nanmedian(v)) if (~np.isnan(v)).any() \
                    else math.nan
            row["kl"], row["kl_lo"], row["kl_hi"] = self.estimate("kl", g)
            rows.append(row)
        return rows

    def markdown(self) -> str:
        rows, metrics = self.table(), self.metrics()
        n = int(self.episodes.valid[0].sum())
        head = ["condition"] + [_label(m) for m in metrics] + ["KL(policy ‖ steered)"]
        body = []
        for r in rows:
            cells = [r["condition"]]
            for m in metrics:
                pct = _is_rate(m) or m == DECISION
                est = fmt(r[m], r[f"{m}_lo"], r[f"{m}_hi"], pct=pct)
                if m == DECISION and not math.isnan(r[f"{m}_median"]):
                    est += f", median {100 * r[f'{m}_median']:.0f}%"
                cells.append(f"{est} (n={r[f'{m}_n']})")
            cells.append(fmt(r["kl"], r["kl_lo"], r["kl_hi"]))
            body.append(cells)
        effects = []
        for r in rows[1:]:
            effects.append([r["condition"]] + [
                fmt(r[f"d_{m}"], r[f"d_{m}_lo"], r[f"d_{m}_hi"],
                    pct=_is_rate(m) or m == DECISION)
                + ("" if r[f"d_{m}_lo"] > 0 or r[f"d_{m}_hi"] < 0 else " ~")
                for m in metrics])
        return (f"Steering at `{self.layer}` on `{self.spec.variant}` "
                f"({self.spec.distribution_mode}), {n} episodes per condition (the same levels "
                f"and action random numbers in every condition); vector norm "
                f"{np.linalg.norm(self.vector):.3g}, random control of the same norm.\n\n"
                + md_table(body, head)
                + "\n\nDifferences from the baseline, paired by level (bootstrap 95% CI; `~`: "
                "the interval contains 0, no effect shown):\n\n"
                + md_table(effects, ["condition"] + [f"Δ {_label(m)}" for m in metrics]))

    def write(self, out: str | Path) -> list[Path]:
        """``steer.csv``, ``steer-episodes.csv``, ``steer.md``, ``steer.png``, ``vector.png``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ep_rows = []
        level = self.episodes.level_seed.reshape(len(self.conditions), -1)
        for g, c in enumerate(self.conditions):
            for j in range(level.shape[1]):
                ep_rows.append({"condition": c.name, "episode": j, "level_seed": int(level[g, j]),
                                **{m: float(v[g, j]) for m, v in self.per_episode.items()}})
        md = out / "steer.md"
        md.write_text(f"# Steering: `{self.layer}`\n\n{self.markdown()}\n\n"
                      f"Channels carrying most of the vector (share of its squared norm): "
                      f"{_top_channels(self.vector)}.\n")
        return [write_csv(out / "steer.csv", self.table()),
                write_csv(out / "steer-episodes.csv", ep_rows), md,
                _plot(self, out / "steer.png"), plot_vector(self.vector, self.layer,
                                                            out / "vector.png")]


def _label(metric: str) -> str:
    return "P(goal | decision square)" if metric == DECISION else outcome_measure(metric).label


def _is_rate(metric: str) -> bool:
    m = outcome_measure(metric)
    return m is not None and m.kind == "rate"


def _episode_means(values: np.ndarray, episode: np.ndarray) -> np.ndarray:
    return np.array([values[episode == e].mean() for e in np.unique(episode)])


def _top_channels(vector: np.ndarray, k: int = 8) -> str:
    per = (vector.reshape(vector.shape[0], -1) ** 2).sum(1)
    share = per / per.sum() if per.sum() > 0 else per
    order = np.argsort(-share)[:k]
    return ", ".join(f"{c} ({100 * share[c]:.0f}%)" for c in order)


@torch.no_grad()
def steer(model: nn.Module, env: str | EnvSpec, layer: str, vector: np.ndarray,
          coefficients=(-1.0, 1.0), *, random_seed: int = 0, episodes: int = 64,
          num_envs: int = 32, seed: int = 0, max_steps: int | None = None, frames: int = 256,
          batch: int = 16, device: torch.device | str | None = None) -> SteerResult:
    """Add ``coefficient * vector`` to ``layer``'s output at every step, for each coefficient,
    beside the same with a random vector of equal norm (seed ``random_seed``) and the
    unsteered agent; all in one batched rollout (up to ``batch`` conditions per rollout) of
    ``episodes`` episodes each (the first of each of ``num_envs`` envs, env seed ``seed``)."""
    spec = as_spec(env)
    check_agent_env(model, spec)
    device = torch.device(device or next(model.parameters()).device)
    shape = layer_shape(model, layer)
    vector = np.asarray(vector, np.float32)
    if vector.shape != shape:
        raise SteerError(f"the vector has shape {vector.shape}; {layer!r} gives {shape}")
    if not np.linalg.norm(vector) > 0:
        raise SteerError("the steering vector is all zeros")
    conditions = sweep(coefficients)
    control = random_like(vector, random_seed)
    table = torch.stack([torch.zeros(shape) if c.kind == "baseline" else c.coefficient
                         * torch.as_tensor(vector if c.kind == "steer" else control)
                         for c in conditions]).to(device)

    def patch_of(cond: torch.Tensor, env_or_frame: np.ndarray, t: int) -> hooks.HookFn:
        return hooks.add(table[cond])

    keys = outcome_keys(spec)
    trace = StepTrace(keys) if keys else None
    starts: dict[tuple[int, int], GameState] = {}
    want_starts = proxy_name(spec) is not None

    def on_step(step: Step) -> None:
        if trace is not None:
            trace(step)
        if want_starts:
            for i in np.flatnonzero((step.group == 0) & (step.step == 0)):
                starts[int(step.env[i]), int(step.episode[i])] = step.state_of(int(step.rows[i]))

    ep = run_conditions(
        model, spec, layer, patch_of, len(conditions), episodes=episodes, num_envs=num_envs,
        seed=seed, max_steps=max_steps, batch=batch, keep_frames=frames,
        on_step=on_step if trace is not None or want_starts else None,
        step_labels=trace is not None, device=device, progress="steering conditions")
    kept, per_episode = ep.frames, outcomes(ep, spec, trace)
    K = ep.valid.shape[2]
    if want_starts:
        per_episode[DECISION] = _decision_shares(model, spec, layer, patch_of, len(conditions),
                                                 starts, K, ep.valid.shape[1] * K, seed, device)
    if kept is not None and len(kept):
        logits, _ = forward_conditions(model, layer, preprocess(kept.obs, device), patch_of,
                                       len(conditions), kept.hx)
        probs = torch.softmax(logits.double(), -1).cpu().numpy()
        frame_episode = kept.env * K + kept.episode
    else:
        probs, frame_episode = np.full((len(conditions), 0, 15), np.nan), np.zeros(0, int)
    return SteerResult(spec, layer, vector, control, conditions, ep, per_episode, probs,
                       frame_episode)


def _decision_shares(model, spec, layer, patch_of, conditions, starts, K, n, seed, device
                     ) -> np.ndarray:
    """P(goal | decision square) per condition and episode (NaN: no decision square)."""
    out = np.full((conditions, n), np.nan)
    found = [(e * K + k, d, s) for (e, k), s in starts.items()
             if (d := decision(s, spec)) is not None]
    if not found:
        return out
    obs = placed_frames(spec, [(s, d.cell) for _, d, s in found], seed)
    logits, _ = forward_conditions(model, layer, preprocess(obs, device), patch_of, conditions)
    probs = torch.softmax(logits.double(), -1).cpu().numpy()
    for i, (j, d, _) in enumerate(found):
        out[:, j] = d.goal_share(probs[:, i])
    return out


# -- figures --------------------------------------------------------------------------------------
def _plot(res: SteerResult, path: Path) -> Path:
    from interp.plots import pyplot, save_figure

    plt = pyplot()
    metrics = [m for m in res.metrics() if m not in ("return", "length")] + ["kl"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.2), squeeze=False)
    coefs = np.array(res.coefficients)
    for ax, m in zip(axes[0], metrics):
        ax.set_xlabel("coefficient")
        ax.set_title(_label(m) if m != "kl" else "KL(policy ‖ steered), nats", fontsize=9)
        base = res.estimate(m, 0)
        if math.isnan(base[0]):
            ax.text(0.5, 0.5, "no episode defines it", ha="center", transform=ax.transAxes)
            continue
        ax.axhline(base[0], color="0.3", ls="--", lw=1, label="unsteered")
        ax.axhspan(base[1], base[2], color="0.5", alpha=0.15, lw=0)
        for kind, colour, dx in (("steer", "tab:blue", -0.02), ("random", "tab:orange", 0.02)):
            est = [res.estimate(m, g) for g, c in enumerate(res.conditions) if c.kind == kind]
            v, lo, hi = (np.array(x, float) for x in zip(*est))
            span = np.ptp(coefs) if len(coefs) > 1 else 1.0
            ax.errorbar(coefs + dx * span, v, yerr=[np.nan_to_num(v - lo), np.nan_to_num(hi - v)],
                        fmt="o-", color=colour, capsize=3, ms=4,
                        label="steering vector" if kind == "steer" else "random, same norm")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Steering at {res.layer} on {res.spec.variant} "
                 f"(n={int(res.episodes.valid[0].sum())} episodes per condition, 95% CIs)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_vector(vector: np.ndarray, layer: str, path: Path) -> Path:
    """Per-channel norm of a vector, and for a conv layer its norm per position."""
    from interp.plots import pyplot, save_figure

    plt = pyplot()
    conv = vector.ndim == 3
    fig, axes = plt.subplots(1, 2 if conv else 1, figsize=(10 if conv else 6, 3.3),
                             squeeze=False, gridspec_kw={"width_ratios": [2.2, 1]} if conv else {})
    per = np.sqrt((vector.reshape(vector.shape[0], -1) ** 2).sum(1))
    ax = axes[0][0]
    ax.bar(np.arange(len(per)), per, color="tab:blue")
    for c in np.argsort(-per)[:5]:
        ax.annotate(str(c), (c, per[c]), ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("channel" if conv else "unit")
    ax.set_ylabel("L2 norm")
    ax.set_title(f"steering vector at {layer}: norm per {'channel' if conv else 'unit'}",
                 fontsize=9)
    if conv:
        im = axes[0][1].imshow(np.sqrt((vector ** 2).sum(0)), cmap="magma")
        axes[0][1].set_title("norm per position (over channels)", fontsize=9)
        fig.colorbar(im, ax=axes[0][1], fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path)
