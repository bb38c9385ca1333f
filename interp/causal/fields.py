"""Policy vector fields on mazes and decision squares (procgen-tools' pictures, any maze agent).

A *vector field* places the agent on every free cell of a level by state edit, renders the
frame, and draws the policy's mean grid step there, ``sum_a p(a) * step(a)`` (actions that
move: left / right, including the diagonals, which move horizontally; up; down), as an arrow.
Under a patch or a steer the same frames give a second field; their difference shows what the
intervention changes.

The *decision square* is where the ways from the agent's start to the goal and to the proxy
part (the proxy: the maze's top-right corner on cheese mazes, the distractor object on
variants with one; :func:`interp.envs.maze.decision_square`). ``P(goal | decision square)``:
with the agent placed there, the probability of a step towards the goal over that of a step
towards the goal or the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.causal.spec import PatchSpec
from interp.causal.vectors import render
from interp.envs import EnvSpec, GameState, get_variant, make_env
from interp.envs.colour_shape import DISTRACTOR
from interp.envs.base import NUM_ACTIONS
from interp.envs.maze import (
    ACTION_STEPS,
    CHEESE,
    WALL,
    agent_cell,
    corner_cell,
    decision_square,
    distances,
    free_cells,
    place_agent,
    steps_towards,
)
from interp.errors import InterpError
from interp.models import preprocess
from interp.rollout import as_spec, check_agent_env
from interp.tables import md_table, write_csv

# (15, 2): the grid step (dx, dy) of each action; zero for actions that do not move
STEPS = np.array([ACTION_STEPS.get(a, (0, 0)) for a in range(NUM_ACTIONS)], float)


class FieldError(InterpError, ValueError):
    """An env or level that has no vector field (not a maze, no goal)."""


def _tile_cell(state: GameState, tile: int) -> tuple[int, int] | None:
    ys, xs = np.nonzero(state.grid == tile)
    return (int(xs[0]), int(ys[0])) if xs.size else None


def proxy_name(spec: EnvSpec) -> str | None:
    """What competes with the goal: "distractor", "corner" (cheese mazes) or None."""
    v = get_variant(spec.variant)
    if v.game != "maze":
        return None
    if spec.resolved_options().get("distractor"):
        return "distractor"
    return "corner" if v.assets is None else None


def targets(state: GameState, spec: EnvSpec) -> tuple[tuple | None, tuple | None]:
    """(goal cell, proxy cell) of a maze level (None where absent)."""
    proxy = proxy_name(spec)
    goal = _tile_cell(state, CHEESE)
    if proxy == "distractor":
        return goal, _tile_cell(state, DISTRACTOR)
    return goal, corner_cell(state) if proxy == "corner" else None


@dataclass(frozen=True)
class Decision:
    """A level's decision square and the actions that step towards the goal / the proxy."""

    cell: tuple[int, int]
    goal_actions: np.ndarray  # bool (15,)
    proxy_actions: np.ndarray  # bool (15,)

    def goal_share(self, probs: np.ndarray) -> np.ndarray:
        """P(step to goal) / (P(step to goal) + P(step to proxy)) for probs (..., 15)."""
        g = probs[..., self.goal_actions].sum(-1)
        return g / (g + probs[..., self.proxy_actions].sum(-1))


def _actions(steps: set[tuple[int, int]]) -> np.ndarray:
    return np.array([ACTION_STEPS.get(a) in steps for a in range(NUM_ACTIONS)])


def decision(state: GameState, spec: EnvSpec) -> Decision | None:
    """The decision square of a level's state (from the agent's cell), or None."""
    goal, proxy = targets(state, spec)
    if goal is None or proxy is None:
        return None
    cell = decision_square(state, goal, proxy)
    if cell is None:
        return None
    return Decision(cell, _actions(steps_towards(distances(state, goal), cell)),
                    _actions(steps_towards(distances(state, proxy), cell)))


def placed_frames(spec: EnvSpec, placements: list[tuple[GameState, tuple[int, int]]],
                  seed: int = 0) -> np.ndarray:
    """Frames (n, 64, 64, 3) of each state with the agent moved to the given cell."""
    return render(spec, [place_agent(s, c) for s, c in placements], seed)


@torch.no_grad()
def _probs(model: nn.Module, frames: np.ndarray, patch: PatchSpec | None) -> np.ndarray:
    x = preprocess(frames, next(model.parameters()).device)
    if patch is None:
        return torch.softmax(model.step(x)[0].double(), -1).cpu().numpy()
    with patch.apply(model):
        return torch.softmax(model.step(x)[0].double(), -1).cpu().numpy()


@dataclass
class VectorField:
    """One level's field: free ``cells`` (n, 2) as (x, y), the action ``probs`` (n, 15) there
    and, under an intervention, ``patched`` (n, 15)."""

    level_seed: int
    walls: np.ndarray  # bool grid[y, x]
    cells: np.ndarray
    probs: np.ndarray
    patched: np.ndarray | None
    start: tuple[int, int]
    goal: tuple[int, int] | None
    proxy: tuple[int, int] | None
    proxy_name: str | None
    decision: Decision | None

    def arrows(self, probs: np.ndarray | None = None) -> np.ndarray:
        """Mean grid step (n, 2) = sum_a p(a) step(a) (``probs``: default the clean ones)."""
        return (self.probs if probs is None else probs) @ STEPS

    def goal_share(self, patched: bool = False) -> float:
        """P(goal | decision square) (NaN without one)."""
        if self.decision is None:
            return float("nan")
        i = int(np.flatnonzero((self.cells == self.decision.cell).all(1))[0])
        return float(self.decision.goal_share((self.patched if patched else self.probs)[i]))


def vector_fields(model: nn.Module, env: str | EnvSpec, levels: int = 4, *, seed: int = 0,
                  patch: PatchSpec | None = None) -> list[VectorField]:
    """Fields of the first level of ``levels`` envs (env seed ``seed``), clean and, with a
    ``patch``, patched."""
    spec = as_spec(env)
    check_agent_env(model, spec)
    if get_variant(spec.variant).game != "maze":
        raise FieldError(f"vector fields need a maze variant (the agent moves on a grid); "
                         f"{spec.variant!r} is {get_variant(spec.variant).game}")
    if patch is not None:
        patch.check(model)
    with make_env(spec, num=levels, seed=seed) as venv:
        states = [venv.get_state(i) for i in range(levels)]
    out = []
    for state in states:
        goal, proxy = targets(state, spec)
        cells = np.array([c for c in free_cells(state) if c != goal])
        frames = placed_frames(spec, [(state, tuple(c)) for c in cells], seed)
        out.append(VectorField(
            int(state["current_level_seed"]), state.grid == WALL, cells,
            _probs(model, frames, None), _probs(model, frames, patch) if patch else None,
            agent_cell(state), goal, proxy, proxy_name(spec), decision(state, spec)))
    return out


# -- output --------------------------------------------------------------------------------
def plot_fields(fields: list[VectorField], path: str | Path, title: str = "") -> Path:
    """One row per level: the clean field, the patched field and their difference (red)."""
    from interp.plots import pyplot, save_figure

    plt = pyplot()
    cols = 3 if fields[0].patched is not None else 1
    fig, axes = plt.subplots(len(fields), cols, figsize=(3.6 * cols, 3.6 * len(fields)),
                             squeeze=False)
    for row, f in zip(axes, fields):
        panels = [("policy", f.arrows(), "black")]
        if f.patched is not None:
            panels += [("patched", f.arrows(f.patched), "tab:blue"),
                       ("patched - policy", f.arrows(f.patched) - f.arrows(), "tab:red")]
        for ax, (name, arrows, colour) in zip(row, panels):
            _maze(ax, f)
            ax.quiver(f.cells[:, 0] + 0.5, f.cells[:, 1] + 0.5, arrows[:, 0], arrows[:, 1],
                      color=colour, angles="xy", scale_units="xy", scale=1.25, width=0.012)
            share = {"policy": f.goal_share(), "patched": f.goal_share(True)}.get(name, np.nan)
            extra = "" if np.isnan(share) else f"\nP(goal | decision sq.) {share:.2f}"
            ax.set_title(f"level {f.level_seed}: {name}{extra}", fontsize=8)
    handles = [plt.Line2D([], [], marker=m, color=c, ls="", label=lab, ms=7, mfc=fc)
               for m, c, fc, lab in (("s", "gold", "gold", "goal"),
                                     ("s", "tab:purple", "none", fields[0].proxy_name or "proxy"),
                                     ("o", "tab:green", "none", "start"),
                                     ("o", "tab:red", "none", "decision square"))]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97 if title else 1))
    return save_figure(fig, Path(path))


def _maze(ax, f: VectorField) -> None:
    ys, xs = np.nonzero(~f.walls)
    ax.imshow(np.where(f.walls, 0.35, 1.0), cmap="gray", vmin=0, vmax=1, origin="lower",
              extent=(0, f.walls.shape[1], 0, f.walls.shape[0]))
    if f.goal is not None:
        ax.add_patch(_square(f.goal, "gold", fill=True))
    if f.proxy is not None:
        ax.add_patch(_square(f.proxy, "tab:purple", fill=False))
    ax.plot(f.start[0] + 0.5, f.start[1] + 0.5, "o", mfc="none", mec="tab:green", ms=11, mew=2)
    if f.decision is not None:
        x, y = f.decision.cell
        ax.plot(x + 0.5, y + 0.5, "o", mfc="none", mec="tab:red", ms=13, mew=2)
    ax.set_xlim(xs.min() - 0.5, xs.max() + 1.5)
    ax.set_ylim(ys.min() - 0.5, ys.max() + 1.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _square(cell, colour: str, fill: bool):
    from matplotlib.patches import Rectangle

    return Rectangle((cell[0] + 0.1, cell[1] + 0.1), 0.8, 0.8, fill=fill, alpha=0.7 if fill else 1,
                     ec=colour, fc=colour if fill else "none", lw=2)


def write_fields(fields: list[VectorField], out: str | Path, title: str = "") -> list[Path]:
    """``vector-field.csv`` (per cell: mean steps, clean and patched), ``vector-field.png`` and
    ``vector-field.md`` (P(goal | decision square) per level)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in fields:
        a = f.arrows()
        b = f.arrows(f.patched) if f.patched is not None else np.full_like(a, np.nan)
        for (x, y), (dx, dy), (px, py) in zip(f.cells, a, b):
            rows.append({"level_seed": f.level_seed, "x": int(x), "y": int(y), "dx": float(dx),
                         "dy": float(dy), "patched_dx": float(px), "patched_dy": float(py),
                         "decision_square": int(f.decision is not None
                                                and (x, y) == f.decision.cell)})
    patched = fields[0].patched is not None
    table = md_table([(f.level_seed, f.decision.cell if f.decision else "none",
                       f"{f.goal_share():.3f}",
                       f"{f.goal_share(True):.3f}" if patched else "")
                      for f in fields],
                     ["level", "decision square (x, y)", "P(goal | decision sq.)",
                      "patched" if patched else ""])
    md = out / "vector-field.md"
    md.write_text(f"# Policy vector fields{': ' + title if title else ''}\n\n"
                  "Arrows: the policy's mean grid step with the agent placed on each free cell "
                  "(state edit). Decision square: where the ways from the start to the goal and "
                  f"to the {fields[0].proxy_name or 'proxy'} part.\n\n{table}\n")
    return [write_csv(out / "vector-field.csv", rows), plot_fields(fields, out /
                                                                   "vector-field.png", title), md]
