"""Fig. 7 of Langosco et al.: with a permeable end wall, does the actor walk through it, and
where does the critic's value peak?

The agent plays ``coinrun-permeable-wall`` (coin removed, end wall drawn but not solid).
Per episode: *crossed* = the agent's centre got past the wall's first column
(``agent_x > end_wall_x``) at some step; the *crossing step* is the first such step; the
*peak step* is the step of the critic's highest value in the episode. The peak is reported
relative to the crossing, in steps and in tiles (``agent_x - end_wall_x`` at the peak).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.envs import EnvSpec
from interp.evaluate import COINRUN_TIMEOUT
from interp.rollout import StepTrace, run_episodes, split_episodes
from interp.stats import bootstrap_mean, rate

from .common import fmt, plt, save, truncation_note, write_csv, write_summary

EXAMPLE_ENVS = 4  # frames are kept for the first episode of these envs (one becomes the example)
THUMBNAILS = 6
AFTER_CROSSING = 10  # steps past the crossing shown in the last thumbnail


@torch.no_grad()
def permeable_wall(model: nn.Module, out: str | Path, *, episodes: int = 128,
                   num_envs: int = 32, seed: int = 0, distribution_mode: str = "easy",
                   max_steps: int | None = None, device: str | None = None) -> list[Path]:
    """Run the experiment; write ``permeable-wall.csv`` (per episode),
    ``permeable-wall-example.csv`` (the example's value trace), ``permeable-wall.png`` and
    ``summary.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = EnvSpec("coinrun-permeable-wall", distribution_mode, options={"coin": "none"})
    trace = StepTrace(("agent_x", "end_wall_x", "level_seed"),
                      keep_obs=lambda s: (s.env < EXAMPLE_ENVS) & (s.episode == 0))
    ep = run_episodes(model, spec, episodes=episodes, num_envs=num_envs, seed=seed,
                      max_steps=max_steps, on_step=trace, step_labels=True, device=device)
    rows, traces = [], {}
    for (_, env, k), e in split_episodes(trace.arrays()):
        past = np.flatnonzero(e["agent_x"] > e["end_wall_x"])
        peak = int(np.argmax(e["value"]))
        cross = int(e["step"][past[0]]) if len(past) else None
        rows.append({"env": env, "episode": k, "level_seed": int(e["level_seed"][0]),
                     "steps": len(e["step"]), "truncated": bool(ep.truncated[0, env, k]),
                     "crossed": cross is not None,
                     "cross_step": np.nan if cross is None else cross,
                     "peak_step": int(e["step"][peak]), "peak_value": float(e["value"][peak]),
                     "peak_minus_cross_steps": np.nan if cross is None
                     else int(e["step"][peak]) - cross,
                     "peak_dx_tiles": float(e["agent_x"][peak] - e["end_wall_x"][peak])})
        traces[(env, k)] = e
    crossed = np.array([r["crossed"] for r in rows])
    # an episode that neither crossed nor ran to the timeout ended early: the agent died
    died = ~crossed & np.array([r["steps"] < COINRUN_TIMEOUT and not r["truncated"]
                                for r in rows])
    offsets = np.array([r["peak_minus_cross_steps"] for r in rows], float)
    dx = np.array([r["peak_dx_tiles"] for r in rows], float)
    example = next((r for r in rows if r["env"] < EXAMPLE_ENVS and r["episode"] == 0
                    and r["crossed"]), rows[0])
    e = traces[(example["env"], example["episode"])]
    steps, frames = trace.obs_of(0, example["env"], example["episode"])
    paths = [write_csv(out / "permeable-wall.csv", rows),
             write_csv(out / "permeable-wall-example.csv",
                       [{"step": int(s), "value": float(v), "agent_x": float(x),
                         "end_wall_x": int(w)} for s, v, x, w in
                        zip(e["step"], e["value"], e["agent_x"], e["end_wall_x"])])]
    paths.append(_plot(e, example, steps, frames, offsets, dx, out / "permeable-wall.png"))
    r, lo, hi = rate(crossed)
    off = bootstrap_mean(offsets[crossed], seed=seed)
    pos = bootstrap_mean(dx, seed=seed)
    before = rate(dx[crossed] < 0)
    paths.append(write_summary(out, "Permeable end wall: actor crossing and critic peak", f"""
Env `coinrun-permeable-wall` (coin none, {distribution_mode}), n = {len(rows)} episodes (first
{ep.valid.shape[2]} of each of {ep.valid.shape[1]} envs, env seed {seed}).{truncation_note(
        int(ep.truncated.sum()))}

- walked through the wall (agent_x > end_wall_x at some step): {fmt(r, lo, hi, pct=True)}
  ({int(crossed.sum())}/{len(rows)}; Wilson 95% CI)
- did not cross: {int(died.sum())} died before the wall (ended before the
  {COINRUN_TIMEOUT}-step timeout), {int((~crossed & ~died).sum())} ran to the timeout (or max_steps)
- walked through, among episodes not ended by a death before the wall:
  {fmt(*rate(crossed[~died]), pct=True)} ({int(crossed.sum())}/{int((~died).sum())})
- value peak minus crossing step, crossing episodes: mean {fmt(*off)} steps (bootstrap 95% CI;
  median {np.nanmedian(offsets) if crossed.any() else float('nan'):.3g})
- agent_x − end_wall_x at the value peak, all episodes: mean {fmt(*pos)} tiles
- value peak left of the wall's first column, crossing episodes: {fmt(*before, pct=True)}
- example: env {example['env']} episode {example['episode']} (level {example['level_seed']}),
  crossing step {example['cross_step']}, peak step {example['peak_step']}
"""))
    return paths


def _thumbnail_indices(steps: np.ndarray, example: dict) -> np.ndarray:
    """Indices into ``steps`` of the thumbnails: the approach to the wall, the value peak, the
    crossing and the agent beyond the wall (evenly spaced over the episode if it never
    crossed)."""
    if not len(steps):
        return np.zeros(0, int)
    if not example["crossed"]:
        want = np.linspace(steps[0], steps[-1], THUMBNAILS)
    else:
        c = example["cross_step"]
        want = [0, c // 2, c - 3, example["peak_step"], c, c + AFTER_CROSSING]
    idx = np.unique(np.searchsorted(steps, np.round(want)).clip(0, len(steps) - 1))
    return idx[:THUMBNAILS]


def _window(e, example) -> tuple[float, float]:
    """x range of the example trace: the whole episode, or up to a while past the crossing (an
    agent beyond the wall idles there until the timeout)."""
    last = float(e["step"][-1])
    if not example["crossed"]:
        return 0, last
    c = max(example["cross_step"], example["peak_step"])
    return 0, min(last, c + max(3 * AFTER_CROSSING, c // 2))


def _plot(e, example, steps, frames, offsets, dx, path: Path) -> Path:
    p = plt()
    fig = p.figure(figsize=(11, 6.2))
    grid = fig.add_gridspec(3, THUMBNAILS, height_ratios=[2.2, 1.2, 2.2], hspace=0.5)
    ax = fig.add_subplot(grid[0, :])
    ax.plot(e["step"], e["value"], color="tab:blue", lw=1.2)
    if example["crossed"]:
        ax.axvline(example["cross_step"], color="tab:red", ls="--", lw=1,
                   label="agent passes the wall's first column")
    ax.axvline(example["peak_step"], color="tab:green", ls=":", lw=1.2, label="value peak")
    pick = _thumbnail_indices(steps, example)
    for j, i in enumerate(pick):
        ax.plot(steps[i], np.interp(steps[i], e["step"], e["value"]), "ko", ms=4)
        ax.annotate(chr(97 + j), (steps[i], np.interp(steps[i], e["step"], e["value"])),
                    textcoords="offset points", xytext=(3, 4), fontsize=8)
        tax = fig.add_subplot(grid[1, j])
        tax.imshow(frames[i])
        tax.set_title(f"{chr(97 + j)}: step {steps[i]}", fontsize=8)
        tax.axis("off")
    ax.set_xlim(*_window(e, example))
    ax.set_xlabel("step" if ax.get_xlim()[1] >= e["step"][-1] else
                  f"step (the episode goes on to step {int(e['step'][-1])})")
    ax.set_ylabel("critic value")
    ax.set_title(f"Example episode (env {example['env']}, level {example['level_seed']})",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    h1 = fig.add_subplot(grid[2, :THUMBNAILS // 2])
    ok = offsets[~np.isnan(offsets)]
    h1.hist(ok, bins=min(30, max(5, len(ok))), color="tab:green", alpha=0.8)
    h1.axvline(0, color="tab:red", ls="--", lw=1)
    h1.set_xlabel("value-peak step − crossing step")
    h1.set_ylabel("episodes")
    h1.set_title(f"Peak vs crossing (n = {len(ok)} crossing episodes)", fontsize=10)
    h2 = fig.add_subplot(grid[2, THUMBNAILS // 2:])
    h2.hist(dx, bins=min(30, max(5, len(dx))), color="tab:blue", alpha=0.8)
    h2.axvline(0, color="tab:red", ls="--", lw=1)
    h2.set_xlabel("agent_x − end_wall_x at the value peak (tiles)")
    h2.set_title(f"Where the value peaks (n = {len(dx)} episodes)", fontsize=10)
    return save(fig, path)
