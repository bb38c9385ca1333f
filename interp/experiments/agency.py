"""Agents vs devices (Orseau et al. 2018) as in Langosco et al. Sec. 3.5, Table 1.

Gridworld: an empty ``size`` x ``size`` grid, actions up / down / left / right (a move into the
border stays put); a trajectory is cells s_0..s_T and actions a_0..a_{T-1}. Two hypotheses,
equal prior (1/2 each), each a mixture over a uniform prior:

- *agent*: for a goal cell g (uniform over all cells) and an epsilon (uniform on [0, 1]),
  epsilon-greedy w.r.t. the optimal policy for reaching g: pi(a|s) = (1 - eps) [a in A*_g(s)]
  / |A*_g(s)| + eps / 4, where A*_g(s) are the actions that shorten the distance to g (ties
  split evenly; all 4 at g itself). p_agt = mean_g int_0^1 prod_t pi(a_t|s_t) d eps.
- *device*: a table cell -> action (the device sees the cell it is in; uniform prior over all
  4^(size^2) tables) with the same epsilon noise: p(a|s) = (1 - eps)[a = table(s)] + eps / 4.
  The prior factorises over cells: p_dev = int_0^1 prod_cells (1/4) sum_a' prod_{t: s_t = cell}
  p(a_t | a') d eps. A cell visited once contributes exactly 1/4, whatever eps.

Both epsilon integrals are of polynomials of degree T and are computed exactly, in log space,
with Gauss-Legendre quadrature of ceil((T + 1) / 2) + 1 nodes. p(agent | tau) = p_agt /
(p_agt + p_dev).

Trajectory types (random start; the training goal is the top-right corner; competent policies
are epsilon-greedy with ``behaviour_eps``): *IID* heads for the corner, which is the rewarded
goal; *goal misgeneralization* heads for the corner while the rewarded goal is elsewhere (off
its path); *robust* heads for a rewarded goal elsewhere; *capability failure* takes uniformly
random actions for ``random_steps`` steps (or until it hits the rewarded goal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from interp.goals.likelihood import eps_nodes, log_eps_greedy
from interp.stats import bootstrap_mean, wilson

from .common import fmt, md_table, plt, save, write_csv, write_summary

MOVES = np.array([(0, 1), (0, -1), (-1, 0), (1, 0)])  # up, down, left, right as (dx, dy)
A = len(MOVES)
TYPES = ("IID", "goal misgeneralization", "capability failure", "robust")
# Langosco et al. Table 1: -log p_agt, -log p_dev, p(agent | tau)
PAPER = {"IID": (5.7, 20.8, 0.9999), "goal misgeneralization": (14.1, 30.0, 0.9999),
         "capability failure": (72.0, 69.0, 0.0674), "robust": (10.5, 30.5, 0.9999)}


@dataclass
class Trajectory:
    kind: str
    cells: np.ndarray  # int (T + 1, 2): (x, y) of s_0..s_T
    actions: np.ndarray  # int (T,)
    goal: tuple[int, int]  # the rewarded goal of the level


def step(cell: np.ndarray, action: int, size: int) -> np.ndarray:
    return np.clip(cell + MOVES[action], 0, size - 1)


def optimal_actions(cell: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Bool (..., 4): the actions that shorten the grid distance to ``goal``; all at the goal."""
    d = goal - cell
    good = np.stack([d[..., 1] > 0, d[..., 1] < 0, d[..., 0] < 0, d[..., 0] > 0], -1)
    return good | (d == 0).all(-1)[..., None]


def log_p_agent(cells: np.ndarray, actions: np.ndarray, size: int) -> np.ndarray:
    """log p(tau | agent, goal g) for every goal g (flattened, index y * size + x)."""
    gy, gx = np.divmod(np.arange(size * size), size)
    goals = np.stack([gx, gy], 1)[:, None, :]  # (G, 1, 2)
    opt = optimal_actions(cells[None, :-1], goals)  # (G, T, 4)
    took = np.take_along_axis(opt, actions[None, :, None], -1)[..., 0]  # (G, T)
    return log_eps_greedy(took, opt.sum(-1), A)


def log_p_device(cells: np.ndarray, actions: np.ndarray, size: int) -> float:
    """log p(tau | device): uniform prior over cell -> action tables, integrated over eps."""
    eps, logw = eps_nodes(len(actions))
    idx = cells[:-1, 1] * size + cells[:-1, 0]
    counts = np.zeros((size * size, A), int)
    np.add.at(counts, (idx, actions), 1)
    counts = counts[counts.sum(1) > 0]  # (cells visited, 4)
    n = counts.sum(1, keepdims=True)
    hit, miss = np.log(1 - eps + eps / A), np.log(eps / A)  # (nodes,)
    # per visited cell and node: log (1/4) sum_a' (hit)^{c_a'} (miss)^{n - c_a'}
    per = logsumexp(counts[..., None] * hit + (n - counts)[..., None] * miss, axis=1) - math.log(A)
    return float(logsumexp(per.sum(0) + logw))


def classify(t: Trajectory, size: int) -> dict:
    """-log p_agt, -log p_dev, p(agent | tau) and the agent posterior on the rewarded goal."""
    per_goal = log_p_agent(t.cells, t.actions, size)
    la = float(logsumexp(per_goal) - math.log(size * size))
    ld = log_p_device(t.cells, t.actions, size)
    gx, gy = t.goal
    return {"nll_agent": -la, "nll_device": -ld, "p_agent": float(1 / (1 + math.exp(ld - la))),
            "p_goal_rewarded": float(math.exp(per_goal[gy * size + gx] - logsumexp(per_goal)))}


# -- trajectories -----------------------------------------------------------------------------
def _rollout(start, target, goal, rng, size, eps, max_steps) -> tuple[np.ndarray, np.ndarray]:
    """Epsilon-greedy towards ``target`` (None: uniformly random actions) until it reaches the
    target or the rewarded ``goal``, or ``max_steps``."""
    cells, actions = [np.asarray(start)], []
    while len(actions) < max_steps:
        c = cells[-1]
        if (target is not None and (c == target).all()) or (c == goal).all():
            break
        if target is None or rng.random() < eps:
            a = int(rng.integers(A))
        else:
            a = int(rng.choice(np.flatnonzero(optimal_actions(c, np.asarray(target)))))
        actions.append(a)
        cells.append(step(c, a, size))
    return np.array(cells), np.array(actions, int)


def make_trajectory(kind: str, rng: np.random.Generator, size: int = 20,
                    behaviour_eps: float = 0.05, random_steps: int = 50) -> Trajectory:
    """One random trajectory of a type in ``TYPES`` (see the module docstring)."""
    corner = np.array([size - 1, size - 1])
    while True:
        start = rng.integers(size, size=2)
        goal = rng.integers(size, size=2)
        if kind == "IID":
            goal = corner
        if (start == corner).all() or (start == goal).all() or (
                kind != "IID" and (goal == corner).all()):
            continue
        target = {"IID": corner, "goal misgeneralization": corner, "robust": goal,
                  "capability failure": None}[kind]
        # a misgeneralizing agent ignores the goal: place it off the agent's path
        free = np.array([size * 4, size * 4]) if kind == "goal misgeneralization" else goal
        cells, actions = _rollout(start, target, free, rng, size, behaviour_eps,
                                  random_steps if target is None else 4 * size * size)
        if kind == "goal misgeneralization" and (cells == goal).all(1).any():
            continue
        if len(actions):
            return Trajectory(kind, cells, actions, (int(goal[0]), int(goal[1])))


# -- experiment -------------------------------------------------------------------------------
def agency(out: str | Path, *, trajectories: int = 200, seed: int = 0, size: int = 20,
           behaviour_eps: float = 0.05, random_steps: int = 50) -> list[Path]:
    """Classify ``trajectories`` random trajectories of each type; write ``agency.csv`` (per
    trajectory), ``agency-summary.csv``, ``agency.png`` and ``summary.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, examples = [], {}
    for kind in TYPES:
        for i in range(trajectories):
            t = make_trajectory(kind, rng, size, behaviour_eps, random_steps)
            examples.setdefault(kind, t)
            rows.append({"type": kind, "index": i, "steps": len(t.actions),
                         "distinct_cells": len({tuple(c) for c in t.cells[:-1]}),
                         **classify(t, size)})
    summary = []
    for kind in TYPES:
        sel = [r for r in rows if r["type"] == kind]
        col = lambda k: np.array([r[k] for r in sel])  # noqa: E731
        agent = wilson(int((col("p_agent") > 0.5).sum()), len(sel))
        summary.append({"type": kind, "n": len(sel),
                        **_ci("nll_agent", col("nll_agent"), seed),
                        **_ci("nll_device", col("nll_device"), seed),
                        "median_p_agent": float(np.median(col("p_agent"))),
                        "classified_agent": agent[0], "classified_agent_lo": agent[1],
                        "classified_agent_hi": agent[2],
                        **_ci("p_goal_rewarded", col("p_goal_rewarded"), seed),
                        "mean_steps": float(col("steps").mean()),
                        "example_nll_agent": sel[0]["nll_agent"],
                        "example_nll_device": sel[0]["nll_device"],
                        "example_p_agent": sel[0]["p_agent"],
                        "paper_nll_agent": PAPER[kind][0], "paper_nll_device": PAPER[kind][1],
                        "paper_p_agent": PAPER[kind][2]})
    paths = [write_csv(out / "agency.csv", rows), write_csv(out / "agency-summary.csv", summary),
             _plot(rows, examples, size, out / "agency.png")]
    table = md_table([(s["type"], s["n"], f"{s['mean_steps']:.1f}",
                       fmt(s["nll_agent"], s["nll_agent_lo"], s["nll_agent_hi"]),
                       fmt(s["nll_device"], s["nll_device_lo"], s["nll_device_hi"]),
                       f"{s['median_p_agent']:.4g}",
                       fmt(s["classified_agent"], s["classified_agent_lo"],
                           s["classified_agent_hi"], pct=True),
                       fmt(s["p_goal_rewarded"], s["p_goal_rewarded_lo"],
                           s["p_goal_rewarded_hi"]),
                       f"{s['example_nll_agent']:.1f} / {s['example_nll_device']:.1f} / "
                       f"{s['example_p_agent']:.4g}",
                       " / ".join(f"{v:g}" for v in PAPER[s["type"]])) for s in summary],
                     ["trajectory", "n", "mean steps", "−log p_agt", "−log p_dev",
                      "median p(agent\\|τ)", "classified agent",
                      "P(goal = rewarded \\| agent, τ)",
                      "first trajectory: −log p_agt / −log p_dev / p(agent\\|τ)",
                      "paper (one trajectory)"])
    paths.append(write_summary(out, "Agents vs devices on gridworld trajectories", f"""
{size}x{size} empty gridworld, {trajectories} random trajectories per type (seed {seed};
competent policies epsilon-greedy with eps = {behaviour_eps}; capability failures take uniformly
random actions for up to {random_steps} steps). Agent: epsilon-greedy w.r.t. the optimal policy
for a goal cell, uniform prior over the {size * size} cells, epsilon integrated over [0, 1];
device: uniform prior over cell -> action tables, same epsilon integral; prior 1/2 each.
Means with bootstrap 95% CIs over trajectories; "classified agent" = p(agent|τ) > 0.5, Wilson
95% CI. The paper's trajectories are single, unpublished random draws: compare the
classification and the order of magnitude, not the digits.

{table}
"""))
    return paths


def _ci(name: str, values: np.ndarray, seed: int) -> dict:
    m, lo, hi = bootstrap_mean(values, seed=seed)
    return {name: m, f"{name}_lo": lo, f"{name}_hi": hi}


def _plot(rows: list[dict], examples: dict[str, Trajectory], size: int, path: Path) -> Path:
    p = plt()
    fig = p.figure(figsize=(11, 5))
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 0.15, 2.2], wspace=0.3, hspace=0.35)
    colours = dict(zip(TYPES, ("tab:blue", "tab:purple", "tab:red", "tab:green")))
    for i, kind in enumerate(TYPES):
        ax = fig.add_subplot(grid[i // 2, i % 2])
        t = examples[kind]
        ax.plot(t.cells[:, 0], t.cells[:, 1], "-", color=colours[kind], lw=1.2)
        ax.plot(*t.cells[0], "o", color="black", ms=4)
        ax.plot(*t.goal, "*", color="gold", mec="black", ms=11)
        ax.plot(size - 1, size - 1, "s", mfc="none", mec="grey", ms=7)
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(-0.5, size - 0.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        r = next(r for r in rows if r["type"] == kind)
        ax.set_title(f"{kind}\np(agent|τ) = {r['p_agent']:.3g}", fontsize=8)
    ax = fig.add_subplot(grid[:, 3])
    for kind in TYPES:
        sel = [r for r in rows if r["type"] == kind]
        ax.scatter([r["nll_device"] for r in sel], [r["nll_agent"] for r in sel], s=8,
                   alpha=0.5, color=colours[kind], label=kind)
        ax.scatter(PAPER[kind][1], PAPER[kind][0], marker="X", s=90, color=colours[kind],
                   edgecolor="black", zorder=3)
    top = max(max(r["nll_agent"] for r in rows), max(r["nll_device"] for r in rows))
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    ax.text(top, 0.02 * top, "below the line: agent", ha="right", fontsize=8, color="grey")
    ax.set_xlabel("−log p(τ | device)")
    ax.set_ylabel("−log p(τ | agent)")
    ax.legend(fontsize=8, title="● ours, ✕ paper (Table 1)", title_fontsize=8)
    fig.suptitle(f"Agents vs devices: example trajectories (● start, ★ rewarded goal, □ training "
                 f"corner) and all {len(rows)} trajectories", fontsize=10)
    return save(fig, path)
