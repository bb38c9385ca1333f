"""Fig. 6 of Langosco et al.: does the critic's value change when a coin is in view?

The agent plays ``coinrun-random-coin`` (coin at a random ground cell left of the end). Every
frame is put in a *stage* by the ``progress`` label (agent_x / end_wall_x; see ``STAGES``).
For each frame with the coin in view (``goal_visible``) the critic also sees a
*counterfactual* frame: the same game state with the coin tile erased, rendered by the engine.
The comparison is therefore paired: same level, same position, same enemies and the same
moment, only the coin's pixels differ, so the agent's behaviour (which would change where frames
come from if coin and no-coin frames came from different runs) cannot confound it. Frames with
no coin in view are reported as a third, unpaired line for reference.

The unit of resampling is the episode: per episode and stage the frames' values are averaged,
and the 95% intervals are percentile bootstraps over episodes (frames of one episode are not
independent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.envs import EnvSpec, make_env
from interp.envs.coinrun import COIN
from interp.envs.state import SPACE
from interp.models import preprocess
from interp.rollout import Step, StepTrace, run_episodes, split_episodes
from interp.stats import bootstrap_mean

from .common import errbars, fmt, md_table, plt, save, truncation_note, write_csv, write_summary

# (name, lower, upper) bounds on progress = agent_x / end_wall_x; the last stage ends at the
# wall's first column (progress 1), frames past it (none in stock levels) are dropped.
STAGES = (("start", 0.0, 0.1), ("early", 0.1, 0.4), ("middle", 0.4, 0.7),
          ("late", 0.7, 0.9), ("before wall", 0.9, 1.0))
CONDITIONS = ("coin in view", "same frame, coin erased", "no coin in view")


def stage_of(progress: np.ndarray) -> np.ndarray:
    """Stage index of each progress value; -1 outside every stage."""
    out = np.full(len(progress), -1)
    for i, (_, lo, hi) in enumerate(STAGES):
        out[(progress >= lo) & (progress < hi if i < len(STAGES) - 1 else progress <= hi)] = i
    return out


@torch.no_grad()
def value_vs_stage(model: nn.Module, out: str | Path, *, episodes: int = 256,
                   num_envs: int = 32, seed: int = 0, distribution_mode: str = "easy",
                   max_steps: int | None = None, device: str | None = None) -> list[Path]:
    """Run the experiment; write ``value-vs-stage.csv``, ``value-vs-stage.png``, ``summary.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = EnvSpec("coinrun-random-coin", distribution_mode)
    device = torch.device(device or next(model.parameters()).device)
    scratch = make_env(spec, num=1, seed=seed)  # renders the counterfactual frames

    def erased_value(step: Step) -> dict[str, np.ndarray]:
        v = np.full(len(step.rows), np.nan)
        seen = np.flatnonzero(step.labels["goal_visible"] > 0)
        if len(seen):
            frames = []
            for i in seen:
                state = step.state_of(int(step.rows[i]))
                state.grid[state.grid == COIN] = SPACE
                scratch.set_state(0, state)
                frames.append(scratch.observe()[1][0])
            hx = None if step.hx is None else step.hx[seen]  # a recurrent agent's memory
            v[seen] = model(preprocess(np.stack(frames), device), hx)[1].float().cpu().numpy()
        return {"value_erased": v}

    trace = StepTrace(("progress", "goal_visible", "level_seed"), also=erased_value)
    try:
        ep = run_episodes(model, spec, episodes=episodes, num_envs=num_envs, seed=seed,
                          max_steps=max_steps, on_step=trace, step_labels=True, device=device)
    finally:
        scratch.close()
    cols = trace.arrays()
    stage = stage_of(cols["progress"])
    coin = cols["goal_visible"] > 0
    # per (episode, stage): mean value in each condition and the paired difference
    per_ep = {c: [[] for _ in STAGES] for c in (*CONDITIONS, "difference")}
    for _, e in split_episodes({**cols, "stage": stage, "coin": coin}):
        for s in range(len(STAGES)):
            here, seen = e["stage"] == s, (e["stage"] == s) & e["coin"]
            if seen.any():
                per_ep[CONDITIONS[0]][s].append(e["value"][seen].mean())
                per_ep[CONDITIONS[1]][s].append(e["value_erased"][seen].mean())
                per_ep["difference"][s].append((e["value"] - e["value_erased"])[seen].mean())
            if (here & ~e["coin"]).any():
                per_ep[CONDITIONS[2]][s].append(e["value"][here & ~e["coin"]].mean())

    rows = []
    for s, (name, lo, hi) in enumerate(STAGES):
        for c in (*CONDITIONS, "difference"):
            m, a, b = bootstrap_mean(per_ep[c][s], seed=seed)
            frames = int(((stage == s) & (coin if c != CONDITIONS[2] else ~coin)).sum())
            rows.append({"stage": name, "progress_lo": lo, "progress_hi": hi, "condition": c,
                         "episodes": len(per_ep[c][s]), "frames": frames, "mean_value": m,
                         "ci_lo": a, "ci_hi": b})
    paths = [write_csv(out / "value-vs-stage.csv", rows)]
    paths.append(_plot(rows, out / "value-vs-stage.png"))
    n_eps = int(ep.valid.sum())
    table = md_table([(r["stage"], r["condition"], r["episodes"], r["frames"],
                       fmt(r["mean_value"], r["ci_lo"], r["ci_hi"])) for r in rows],
                     ["stage", "condition", "episodes", "frames", "mean value [95% CI]"])
    stages = ", ".join(f"{n} [{lo}, {hi})" for n, lo, hi in STAGES)
    paths.append(write_summary(out, "Critic value by level stage, with and without a coin", f"""
Env `coinrun-random-coin` ({distribution_mode}), {n_eps} episodes (first
{ep.valid.shape[2]} of each of {ep.valid.shape[1]} envs, env seed {seed}), {len(stage)} frames.
Stages by progress = agent_x / end_wall_x: {stages}. "Coin erased" is the critic's value on
the same game state with the coin tile removed and re-rendered (paired with "coin in view");
"difference" = coin in view minus erased. Means over episodes of per-episode stage means;
95% percentile-bootstrap intervals over episodes.{truncation_note(int(ep.truncated.sum()))}

{table}
"""))
    return paths


def _plot(rows: list[dict], path: Path) -> Path:
    p = plt()
    fig, (ax, ax2) = p.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(STAGES))
    for j, (c, colour) in enumerate(zip(CONDITIONS, ("tab:orange", "tab:blue", "tab:grey"))):
        stats = [(r["mean_value"], r["ci_lo"], r["ci_hi"]) for r in rows if r["condition"] == c]
        errbars(ax, x + (j - 1) * 0.12, stats, fmt="o-", color=colour, label=c, ms=4, lw=1)
    ax.set_xticks(x, [s[0] for s in STAGES])
    ax.set_ylabel("mean critic value")
    ax.set_title("Value by level stage (95% bootstrap CI over episodes)", fontsize=10)
    ax.legend(fontsize=8)
    stats = [(r["mean_value"], r["ci_lo"], r["ci_hi"]) for r in rows
             if r["condition"] == "difference"]
    errbars(ax2, x, stats, fmt="o", color="black", ms=4)
    ax2.axhline(0, color="grey", lw=0.6)
    ax2.set_xticks(x, [s[0] for s in STAGES], rotation=30, ha="right")
    ax2.set_title("coin in view − same frame erased", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
