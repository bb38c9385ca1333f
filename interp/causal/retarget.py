"""Retargeting: clamp a few channels at the feature-map position of a chosen maze cell and
measure how often the agent goes there (Mini, Turner et al. 2023: channel 55 of their maze
agent clamped at a cell pulled the mouse there).

For each target cell the agent plays the same levels three ways, all in one batched rollout
(:func:`interp.ablate.run_conditions`): unpatched (the baseline rate of visiting that cell),
the chosen channels clamped there, and a random channel set of the same size clamped there
(the control). An episode counts for a target when the target is a free cell of its level
other than the start; *reached* = the agent stood on it before the episode ended. A cell maps
to the feature-map position under its centre pixel (the maze view is fixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp import hooks
from interp.ablate import collect_stats, layer_shape, run_conditions
from interp.causal.vectors import SteerError
from interp.envs import EnvSpec, GameState, get_variant, make_env
from interp.envs.geometry import to_pixels
from interp.envs.maze import WALL, agent_cell
from interp.rollout import Step, as_spec, check_agent_env
from interp.stats import bootstrap_mean, rate
from interp.tables import fmt, md_table, write_csv

KINDS = ("baseline", "chosen", "random")


def cell_position(state: GameState, cell: tuple[int, int], hw: tuple[int, int]) -> tuple[int, int]:
    """(row, col) of the feature-map position (of an H x W map) under ``cell``'s centre."""
    px, py = to_pixels(state, cell[0] + 0.5, cell[1] + 0.5)
    h, w = hw
    return min(max(int(py * h / 64), 0), h - 1), min(max(int(px * w / 64), 0), w - 1)


def default_targets(states: list[GameState], grid: int) -> list[tuple[int, int]]:
    """About ``grid`` x ``grid`` cells spread evenly over the free cells of ``states``."""
    free = np.zeros_like(states[0].grid, dtype=bool)
    for s in states:
        free |= s.grid != WALL
    ys, xs = np.nonzero(free)
    cols = np.unique(np.round(np.linspace(xs.min(), xs.max(), grid)).astype(int))
    rows = np.unique(np.round(np.linspace(ys.min(), ys.max(), grid)).astype(int))
    return [(int(x), int(y)) for y in rows for x in cols]


@dataclass
class RetargetResult:
    """``reached[kind][t]`` / ``eligible[t]``: per target, per episode (envs * episodes), did
    the agent stand on the target (NaN where the target is a wall or the start)."""

    spec: EnvSpec
    layer: str
    channels: tuple[int, ...]
    random_channels: tuple[int, ...]
    values: tuple[float, float]  # clamp value of the chosen and the random channels
    targets: list[tuple[int, int]]
    positions: list[tuple[int, int]]
    reached: dict[str, np.ndarray]  # kind -> (targets, episodes) with NaN

    def table(self) -> list[dict]:
        rows = []
        for t, (cell, pos) in enumerate(zip(self.targets, self.positions)):
            r = {"x": cell[0], "y": cell[1], "row": pos[0], "col": pos[1]}
            for k in KINDS:
                v = self.reached[k][t]
                r["n"] = int((~np.isnan(v)).sum())
                r[k], r[f"{k}_lo"], r[f"{k}_hi"] = rate(v)
            for k in KINDS[1:]:
                r[f"d_{k}"], r[f"d_{k}_lo"], r[f"d_{k}_hi"] = bootstrap_mean(
                    self.reached[k][t] - self.reached["baseline"][t])
            rows.append(r)
        return rows

    def pooled(self) -> dict[str, tuple[float, float, float]]:
        """Each kind's rate over every (target, episode) pair, and the paired differences."""
        out = {k: rate(self.reached[k]) for k in KINDS}
        for k in KINDS[1:]:
            out[f"d_{k}"] = bootstrap_mean(self.reached[k] - self.reached["baseline"])
        return out

    def markdown(self) -> str:
        rows, p = self.table(), self.pooled()
        n = int((~np.isnan(self.reached["baseline"])).sum())
        body = [((r["x"], r["y"]), (r["row"], r["col"]), r["n"],
                 fmt(r["baseline"], r["baseline_lo"], r["baseline_hi"], pct=True),
                 fmt(r["chosen"], r["chosen_lo"], r["chosen_hi"], pct=True),
                 fmt(r["random"], r["random_lo"], r["random_hi"], pct=True),
                 fmt(r["d_chosen"], r["d_chosen_lo"], r["d_chosen_hi"], pct=True))
                for r in rows]
        return (f"Clamping channels {list(self.channels)} of `{self.layer}` to "
                f"{self.values[0]:.3g} at a target cell; control: channels "
                f"{list(self.random_channels)} clamped to {self.values[1]:.3g}. Env "
                f"`{self.spec.variant}`. Over all {n} (target, episode) pairs the agent reached "
                f"the target in {fmt(*p['baseline'], pct=True)} unpatched, "
                f"{fmt(*p['chosen'], pct=True)} with the chosen channels clamped (difference "
                f"{fmt(*p['d_chosen'], pct=True)}) and {fmt(*p['random'], pct=True)} with the "
                f"random channels (difference {fmt(*p['d_random'], pct=True)}); Wilson / paired "
                "bootstrap 95% intervals.\n\n"
                + md_table(body, ["target (x, y)", "map (row, col)", "n", "unpatched",
                                  "chosen clamped", "random clamped", "Δ chosen"]))

    def write(self, out: str | Path) -> list[Path]:
        """``retarget.csv``, ``retarget.md`` and the heatmap ``retarget.png``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        md = out / "retarget.md"
        md.write_text(f"# Retargeting: `{self.layer}`\n\n{self.markdown()}\n")
        return [write_csv(out / "retarget.csv", self.table()), md,
                self.plot(out / "retarget.png")]

    def plot(self, path: Path) -> Path:
        from interp.plots import pyplot, save_figure

        plt = pyplot()
        rows = self.table()
        xs, ys = [r["x"] for r in rows], [r["y"] for r in rows]
        fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
        for ax, k, title in zip(axes, KINDS, ("unpatched", f"channels {list(self.channels)} "
                                              "clamped at the target",
                                              f"random channels {list(self.random_channels)}")):
            img = np.full((max(ys) - min(ys) + 1, max(xs) - min(xs) + 1), np.nan)
            for r in rows:
                img[r["y"] - min(ys), r["x"] - min(xs)] = r[k]
            im = ax.imshow(img, origin="lower", cmap="viridis", vmin=0, vmax=1,
                           extent=(min(xs) - 0.5, max(xs) + 0.5, min(ys) - 0.5, max(ys) + 0.5))
            for r in rows:
                if r["n"]:
                    ax.text(r["x"], r["y"], f"{100 * r[k]:.0f}", ha="center", va="center",
                            fontsize=7, color="white" if r[k] < 0.6 else "black")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("target cell x")
        axes[0].set_ylabel("target cell y")
        fig.colorbar(im, ax=axes, fraction=0.02, label="P(agent reaches the target cell)")
        fig.suptitle(f"Retargeting at {self.layer} on {self.spec.variant}: how often the agent "
                     f"reaches each target cell (n up to {max(r['n'] for r in rows)} episodes "
                     "per cell; blank: no maze has a free cell there)", fontsize=9)
        return save_figure(fig, path)


@torch.no_grad()
def retarget(model: nn.Module, env: str | EnvSpec, layer: str, channels, *,
             targets: list[tuple[int, int]] | None = None, grid: int = 5,
             value: float | None = None, value_scale: float = 2.0, random_seed: int = 0,
             episodes: int = 32, num_envs: int = 16, seed: int = 0,
             max_steps: int | None = None, batch: int = 16,
             device: torch.device | str | None = None) -> RetargetResult:
    """Clamp ``channels`` of ``layer`` at each target cell (default: a ``grid`` x ``grid``
    spread over the free cells of the first levels) to ``value`` (default: ``value_scale``
    times the largest activation of those channels on 256 of the agent's frames; the random
    control gets the same rule on its own channels)."""
    spec = as_spec(env)
    check_agent_env(model, spec)
    if get_variant(spec.variant).game != "maze":
        raise SteerError(f"retargeting moves the agent to maze cells; {spec.variant!r} is not "
                         "a maze")
    device = torch.device(device or next(model.parameters()).device)
    shape = layer_shape(model, layer)
    if len(shape) != 3:
        raise SteerError(f"{layer!r} has no spatial map ({shape}); pick a conv layer")
    channels = tuple(sorted({int(c) for c in channels}))
    if not channels or not all(0 <= c < shape[0] for c in channels) \
            or len(channels) >= shape[0]:
        raise SteerError(f"channels {list(channels)}: give some (not all) of 0-{shape[0] - 1}")
    rest = np.setdiff1d(np.arange(shape[0]), channels)
    random_channels = tuple(sorted(np.random.default_rng(random_seed).choice(
        rest, size=min(len(channels), len(rest)), replace=False).tolist()))
    E = min(num_envs, episodes)
    with make_env(spec, num=E, seed=seed) as venv:
        first = [venv.get_state(i) for i in range(E)]
    targets = [tuple(map(int, t)) for t in (targets or default_targets(first, grid))]
    world = first[0].grid.shape
    bad = [t for t in targets if not (0 <= t[0] < world[1] and 0 <= t[1] < world[0])]
    if bad:
        raise SteerError(f"target cells {bad} lie outside the {world[1]}x{world[0]} world")
    positions = [cell_position(first[0], t, shape[1:]) for t in targets]
    if value is None:
        stats = collect_stats(model, spec, layer, seed=seed + 1, device=device).samples
        peak = stats.amax(dim=(0, 2, 3))
        values = (value_scale * float(peak[list(channels)].max()),
                  value_scale * float(peak[list(random_channels)].max()))
    else:
        values = (float(value), float(value))

    G = 1 + 2 * len(targets)
    chan = torch.zeros(G, shape[0], dtype=torch.bool)
    where = torch.zeros(G, *shape[1:], dtype=torch.bool)
    val = torch.zeros(G)
    for t, (r, c) in enumerate(positions):
        for j, (chs, v) in enumerate(((channels, values[0]), (random_channels, values[1]))):
            g = 1 + 2 * t + j
            chan[g, list(chs)], where[g, r, c], val[g] = True, True, v
    chan, where, val = chan.to(device), where.to(device), val.to(device)

    def patch_of(cond: torch.Tensor, env_idx: np.ndarray, t: int) -> hooks.HookFn:
        return hooks.clamp(val[cond], chan[cond], where[cond])

    K = -(-episodes // E)
    visited = np.zeros((G, E, K, *world), bool)
    starts: dict[tuple[int, int], GameState] = {}

    def on_step(step: Step) -> None:
        visited[step.group, step.env, step.episode, step.labels["agent_cell_y"],
                step.labels["agent_cell_x"]] = True
        for i in np.flatnonzero((step.group == 0) & (step.step == 0)):
            starts[int(step.env[i]), int(step.episode[i])] = step.state_of(int(step.rows[i]))

    ep = run_conditions(model, spec, layer, patch_of, G, episodes=episodes, num_envs=num_envs,
                        seed=seed, max_steps=max_steps, batch=batch, on_step=on_step,
                        step_labels=True, device=device, progress="retarget conditions")
    reached = {k: np.full((len(targets), E * K), np.nan) for k in KINDS}
    for (e, k), s in starts.items():
        for t, (x, y) in enumerate(targets):
            if s.grid[y, x] == WALL or agent_cell(s) == (x, y):
                continue
            for j, kind in enumerate(KINDS):
                g = 0 if j == 0 else 2 * t + j
                if ep.valid[g, e, k]:
                    reached[kind][t, e * K + k] = visited[g, e, k, y, x]
    return RetargetResult(spec, layer, channels, random_channels, values, targets, positions,
                          reached)
