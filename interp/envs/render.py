"""Pictures of a variant's levels: a whole-level overview beside the agent's 64x64 view."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from interp.envs.geometry import FRAME, to_pixels
from interp.envs.labels import state_labels
from interp.envs.make import make_env
from interp.envs.registry import get_variant
from interp.envs.spec import EnvSpec
from interp.envs.vecenv import VecEnv

HIRES = 512  # the engine's render_mode="rgb_array" frame
MARKS = {"goal": "cyan", "distractor": "magenta"}


def render_variant(variant: str, out: str | Path, *, seed: int = 0, levels: int = 3,
                   distribution_mode: str = "easy", options: dict | None = None,
                   overwrite: bool = False) -> Path:
    """Save a PNG of ``levels`` levels of ``variant`` (overview | agent view, goal and
    distractor cells boxed) and return its path (``out``, with ``.png`` added if it has no
    extension). An existing file is replaced only with ``overwrite``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from interp.outputs import check_output

    out = check_output(out, "file", overwrite=overwrite, suffix=".png")
    spec = EnvSpec(variant, distribution_mode, options=dict(options or {}))
    v = get_variant(variant)
    opts = spec.resolved_options()
    env = make_env(spec, num=levels, seed=seed)
    _, obs, _ = env.observe()
    lab = env.labels()
    overview = None
    if v.assets is None and v.engine is None:  # same levels and edits, another camera
        overview = VecEnv(spec, num=levels, seed=seed,
                          engine_options={"center_agent": False, "render_mode": "rgb_array"})
        frames = [info["rgb"] for info in overview.get_info()]
    fig, axes = plt.subplots(levels, 2, figsize=(9, 3.2 * levels), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})
    for i in range(levels):
        ax_o, ax_a = axes[i]
        if overview is not None:
            state = overview.get_state(i)
            ax_o.imshow(frames[i])
            _mark(ax_o, state, state_labels(state, v, opts), HIRES, Rectangle)
            if v.game == "coinrun":  # show the level, not the whole 64x64-tile world
                x1, _ = to_pixels(state, lab["end_wall_x"][i] + 3, 0, HIRES)
                _, y0 = to_pixels(state, 0, _level_top(state) + 3, HIRES)
                ax_o.set_xlim(0, min(x1, HIRES))
                ax_o.set_ylim(HIRES, max(y0, 0))
        else:  # own sprites or own engine: the agent's view already shows the whole level
            ax_o.imshow(obs[i])
            _mark(ax_o, env.get_state(i), {k: lab[k][i] for k in lab}, FRAME, Rectangle)
        ax_o.set_title(f"level {int(lab['level_seed'][i])}: overview", fontsize=9)
        if "region_size" in opts and overview is not None:
            _mark_region(ax_o, state, opts["region_size"], Rectangle)
        ax_a.imshow(obs[i])
        _mark(ax_a, env.get_state(i), {k: lab[k][i] for k in lab}, FRAME, Rectangle)
        ax_a.set_title("agent view (64x64)", fontsize=9)
        for ax in (ax_o, ax_a):
            ax.set_xticks([])
            ax.set_yticks([])
    opt_text = ", ".join(f"{k}={val}" for k, val in opts.items())
    legend = "cyan box: goal cell, magenta box: distractor"
    if "region_size" in opts:
        legend += ", dashed yellow: cheese region"
    title = f"{variant} ({distribution_mode}{', ' + opt_text if opt_text else ''}, seed {seed})"
    fig.suptitle("\n".join(textwrap.wrap(title, 90) + [legend]), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    env.close()
    if overview is not None:
        overview.close()
    return out


def _mark(ax, state, labels: dict, size: int, Rectangle) -> None:
    """Box the goal and distractor cells."""
    for name, colour in MARKS.items():
        present = labels["goal_present" if name == "goal" else "distractor_present"]
        if not present:
            continue
        x0, y0 = to_pixels(state, labels[f"{name}_x"], labels[f"{name}_y"] + 1, size)
        x1, _ = to_pixels(state, labels[f"{name}_x"] + 1, 0, size)
        w = x1 - x0
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, w, fill=False, ec=colour,
                               lw=2 if size > FRAME else 1))


def _mark_region(ax, state, size: int, Rectangle) -> None:
    """Dashed outline of the maze's top-right size x size region (clipped to the maze)."""
    from interp.envs.maze import corner_cell, maze_bounds

    cx, cy = corner_cell(state)
    n = min(size, maze_bounds(state)[1])
    x0, y0 = to_pixels(state, cx + 1 - n, cy + 1, HIRES)
    x1, y1 = to_pixels(state, cx + 1, cy + 1 - n, HIRES)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", ls="--", lw=1.5))


def _level_top(state) -> int:
    """Highest row holding anything but the coinrun world's border and sky."""
    inner = np.abs(state.grid[1:-1, 1:-1])
    rows = np.flatnonzero(((inner != 100) & (inner != 15)).any(axis=1))
    return int(rows[-1]) + 1 if rows.size else 10
