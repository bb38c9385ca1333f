"""``interp goals``: which goal does an agent's behaviour pursue? Inverse planning on its episodes.

The agent plays the first episodes of every env (the protocol of :func:`~interp.rollout.
run_episodes`); each step's labels and each episode's first state give the geometry. An episode
is weighed up to the first step at which it stands on a candidate goal (the *window*; an episode
that reaches the rewarded goal ends there): what an agent does after reaching a goal is not
what pursuing that goal predicts (in games whose goals renew, Keys and Chests: "the nearest
key", the whole episode is weighed). :func:`~interp.goals.likelihood.weigh` gives the posterior
over the goals and "no goal", comparing the goals on the window's informative steps (where they
disagree); the episode is *best explained* by the hypothesis with the highest posterior.

Controls on the same levels (same env seed): a scripted agent per candidate goal, epsilon-greedy
towards it with ``control_noise``, and a uniformly random agent. Their recovered goals say how
far the inference can be trusted in this env (a goal the geometry cannot tell apart from another
shows up as undecided or confused episodes there, not only in the agent's).
"""

from __future__ import annotations

import math
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import softmax

from interp.envs import EnvSpec
from interp.evaluate import Metric, describe_levels, outcome_keys, variant_metrics
from interp.outputs import check_output
from interp.plots import pyplot, save_figure
from interp.rollout import Episodes, Step, StepTrace, run_episodes, split_episodes
from interp.stats import bootstrap_mean, wilson
from interp.tables import fmt, md_table, write_csv

from .games import N_ACTIONS, Goal, GoalError, GoalGame, goal_game, resolve_goals
from .likelihood import NO_GOAL, UNDECIDED, Evidence, log_likelihoods, weigh

AGENT, RANDOM = "agent", "random agent"
EpisodeKey = tuple[int, int, int]  # (group, env, episode)


@dataclass
class EpisodeGoals:
    """One episode weighed: where it went first and which goal explains it best."""

    source: str  # AGENT, "scripted: <goal>" or RANDOM
    env: int
    episode: int
    level_seed: int
    steps: int
    first_reached: str  # the first candidate goal stood on (or the rewarded one collected), or none
    success: bool
    truncated: bool
    evidence: Evidence
    cols: dict  # per-step label columns and actions (for the maps)
    layout: object

    def row(self) -> dict:
        ev = self.evidence
        return {"source": self.source, "env": self.env, "episode": self.episode,
                "level_seed": self.level_seed, "steps": self.steps, "window_steps": ev.steps,
                "informative_steps": ev.informative, "first_reached": self.first_reached,
                "success": int(self.success), "truncated": int(self.truncated), "best": ev.best,
                **{f"posterior[{n}]": float(p) for n, p in zip(ev.names, ev.posterior)},
                **{f"loglik[{n}]": float(v) for n, v in zip(ev.names, ev.loglik)}}


class _Recorder:
    """``on_step`` collector: the label trace plus every episode's layout (first state)."""

    def __init__(self, game: GoalGame, keys):
        self.game, self.trace, self.layouts = game, StepTrace(keys), {}

    def new_episodes(self, step: Step) -> None:
        for j in np.flatnonzero(step.step == 0):
            key = (int(step.group[j]), int(step.env[j]), int(step.episode[j]))
            self.layouts[key] = self.game.layout(step.state_of(int(step.rows[j])))

    def __call__(self, step: Step) -> None:
        self.new_episodes(step)
        self.trace(step)


def weigh_episode(game: GoalGame, goals: tuple[Goal, ...], layout, cols: dict,
                  success: bool) -> tuple[Evidence, str]:
    """(evidence over the window, first goal reached) of one episode's per-step ``cols``: the
    window ends at the first step on a candidate goal, unless the game's goals renew."""
    preds = [game.predict(layout, cols, g.target) for g in goals]
    optimal, reached = np.stack([p[0] for p in preds]), np.stack([p[1] for p in preds])
    hit = reached.any(0)
    t = int(np.argmax(hit))
    window = len(hit) if game.renewing or not hit.any() else t
    if hit.any():
        first = "+".join(g.name for g, r in zip(goals, reached[:, t]) if r)
    else:  # the rewarded goal ends the episode on arrival, so its arrival is never seen
        first = next((g.name for g in goals if g.rewarded and success), "none")
    ev = weigh(tuple(g.name for g in goals), optimal[:, :window], cols["action"][:window])
    return ev, first


def _episodes(source: str, game: GoalGame, goals, rec: _Recorder,
              ep: Episodes) -> list[EpisodeGoals]:
    """The episodes ``rec`` traced, weighed; success and truncation from ``ep``."""
    out = []
    for key, cols in split_episodes(rec.trace.arrays()):
        success = bool(ep.metrics["success"][key] > 0)
        ev, first = weigh_episode(game, goals, rec.layouts[key], cols, success)
        out.append(EpisodeGoals(source, key[1], key[2], int(cols["level_seed"][0]),
                                len(cols["action"]), first, success, bool(ep.truncated[key]),
                                ev, cols, rec.layouts[key]))
    return out


def scripted_episodes(spec: EnvSpec, goal: Goal | None, goals: tuple[Goal, ...], *,
                      noise: float = 0.3, episodes: int = 64, num_envs: int = 64, seed: int = 0,
                      max_steps: int | None = None) -> list[EpisodeGoals]:
    """A scripted agent on the first episodes of every env, weighed like an agent: epsilon-greedy
    towards ``goal`` (uniformly among the actions that make progress; a random action with
    probability ``noise``), or uniformly random for ``goal=None``."""
    game = goal_game(spec)
    rec = _Recorder(game, (*game.keys, "level_seed"))
    name = RANDOM if goal is None else f"scripted: {goal.name}"
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])

    def choose(step: Step) -> np.ndarray:
        rec.new_episodes(step)
        actions = np.empty(len(step.rows), int)
        for j, r in enumerate(step.rows):
            if goal is None or rng.random() < noise:
                actions[j] = rng.integers(N_ACTIONS)
            else:
                opt, _ = game.predict(rec.layouts[0, r, step.episode[j]],
                                      {k: step.labels[k][j:j + 1] for k in game.keys},
                                      goal.target)
                actions[j] = rng.choice(np.flatnonzero(opt[0]))
        return actions

    ep = run_episodes(None, spec, episodes=episodes, num_envs=num_envs, seed=seed,
                      max_steps=max_steps, on_step=rec.trace, step_labels=True,
                      label_metrics=False, progress=f"goals: {name}", choose=choose)
    return _episodes(name, game, goals, rec, ep)


# -- summaries ----------------------------------------------------------------------------------
def summarise(results: list[EpisodeGoals], seed: int = 0) -> list[dict]:
    """Per source and hypothesis: the share of decided episodes it explains best (Wilson 95%)
    and its mean posterior over them (bootstrap 95%), with episode and step counts."""
    rows = []
    for source in dict.fromkeys(r.source for r in results):
        sel = [r for r in results if r.source == source]
        decided = [r for r in sel if r.evidence.best != UNDECIDED]
        inf = np.array([r.evidence.informative for r in sel])
        for i, name in enumerate(sel[0].evidence.names):
            share = wilson(sum(r.evidence.best == name for r in decided), len(decided))
            post = bootstrap_mean([r.evidence.posterior[i] for r in decided], seed)
            rows.append({"source": source, "hypothesis": name, "episodes": len(sel),
                         "decided": len(decided), "steps": sum(r.steps for r in sel),
                         "window_steps": sum(r.evidence.steps for r in sel),
                         "informative_steps": int(inf.sum()),
                         "median_informative": float(np.median(inf)),
                         "best_share": share[0], "best_lo": share[1], "best_hi": share[2],
                         "mean_posterior": post[0], "posterior_lo": post[1],
                         "posterior_hi": post[2]})
    return rows


def _shares_table(rows: list[dict]) -> str:
    names = list(dict.fromkeys(r["hypothesis"] for r in rows))
    out = []
    for source in dict.fromkeys(r["source"] for r in rows):
        sel = {r["hypothesis"]: r for r in rows if r["source"] == source}
        r0 = sel[names[0]]
        out.append((source, r0["episodes"], r0["decided"],
                    f"{r0['informative_steps']:,} / {r0['window_steps']:,} "
                    f"({r0['median_informative']:g})",
                    *(fmt(sel[n]["best_share"], sel[n]["best_lo"], sel[n]["best_hi"], pct=True)
                      for n in names)))
    return md_table(out, ["episodes of", "n", "decided", "informative / weighed steps (median "
                          "per episode)", *(f"best: {n}" for n in names)])


def _crosstab(results: list[EpisodeGoals]) -> str:
    firsts = list(dict.fromkeys(r.first_reached for r in results))
    names = [*results[0].evidence.names, UNDECIDED]
    rows = [(f, *(sum(r.first_reached == f and r.evidence.best == n for r in results)
                  for n in names)) for f in firsts]
    return md_table(rows, ["first reached \\ best explained by", *names])


def _metrics_table(metrics: list[Metric]) -> str:
    return md_table([(m.label, m.n, m.estimate()) for m in metrics],
                    ["metric (same episodes)", "n", "estimate [95% CI]"])


# -- figures -----------------------------------------------------------------------------------
COLOURS = ("tab:orange", "tab:purple", "tab:blue", "tab:green", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan")


def _plot_shares(rows: list[dict], title: str, path: Path) -> Path:
    plt = pyplot()
    names = list(dict.fromkeys(r["hypothesis"] for r in rows))
    sources = list(dict.fromkeys(r["source"] for r in rows))
    colour = {n: ("tab:grey" if n == NO_GOAL else COLOURS[i % len(COLOURS)])
              for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(sources) * len(names) / 2.5, 3.8))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        sel = [next(r for r in rows if r["source"] == s and r["hypothesis"] == n)
               for s in sources]
        m, lo, hi = (np.nan_to_num(np.array([r[k] for r in sel], float))
                     for k in ("best_share", "best_lo", "best_hi"))
        x = np.arange(len(sources)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, m, width, color=colour[n], label=n)
        ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="none", ecolor="black", capsize=2, lw=0.8)
    decided = {r["source"]: r["decided"] for r in rows}
    ax.set_xticks(np.arange(len(sources)),
                  [f"{s}\n(n={decided[s]})" for s in sources], fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of decided episodes best explained\n(Wilson 95% CI)")
    ax.legend(fontsize=8, title="hypothesis", title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1, 1))
    ax.set_title(textwrap.fill(title, 80), fontsize=9)
    return save_figure(fig, path)


MARKERS = {"goal": ("*", "gold", 14), "distractor": ("D", "deepskyblue", 8),
           "corner": ("s", "white", 9), "end": (">", "white", 9)}


def _target_cell(goal: Goal, cols: dict) -> tuple[int, int] | None:
    if isinstance(goal.target, tuple):
        return goal.target
    x, y = (int(cols[f"{goal.target}_{a}"][0]) for a in "xy")
    return (x, y) if x >= 0 else None


def _plot_maps(game: GoalGame, goals: tuple[Goal, ...], examples: list[EpisodeGoals],
               path: Path) -> Path:
    """Posterior over every walkable cell as the goal (uniform prior, all steps of the window)
    for each example episode, with its path and the candidate goals."""
    plt = pyplot()
    from matplotlib.colors import Normalize

    n = len(examples)
    cols_n = min(n, 4)
    fig, axes = plt.subplots(math.ceil(n / cols_n), cols_n,
                             figsize=(3.9 * cols_n, 3.9 * math.ceil(n / cols_n)), squeeze=False)
    norm, image = Normalize(-4, 0), None
    for ax, ex in zip(axes.ravel(), examples):
        free, cols, w = ex.layout, ex.cols, ex.evidence.steps
        cells = game.cells(free)
        window = {k: v[:w] for k, v in cols.items()}
        optimal = np.stack([game.predict(free, window, c)[0] for c in cells])
        post = softmax(log_likelihoods(optimal, window["action"]))
        grid = np.full(free.shape, np.nan)
        for (x, y), p in zip(cells, post):
            grid[y, x] = np.log10(max(p, 1e-12))
        ys, xs = np.nonzero(free)
        image = ax.imshow(np.clip(grid, -4, 0), origin="lower", cmap="viridis", norm=norm)
        ax.set_facecolor("black")
        ax.set_xlim(xs.min() - 0.6, xs.max() + 0.6)
        ax.set_ylim(ys.min() - 0.6, ys.max() + 0.6)
        px, py = cols["agent_cell_x"], cols["agent_cell_y"]
        ax.plot(px[:w + 1], py[:w + 1], "-", color="white", lw=1.4)
        ax.plot(px[w:], py[w:], ":", color="lightgrey", lw=1)
        ax.plot(px[0], py[0], "o", color="white", mec="black", ms=6)
        for g in goals:
            cell = _target_cell(g, cols)
            if cell is not None:
                marker, colour, size = MARKERS.get(g.target if isinstance(g.target, str)
                                                   else "", ("X", "red", 9))
                ax.plot(*cell, marker, color=colour, mec="black", ms=size, mfc=colour
                        if g.target != "corner" else "none")
        ev = ex.evidence
        post_txt = textwrap.fill(", ".join(f"{nm} {p:.2f}"
                                           for nm, p in zip(ev.names, ev.posterior)), 44)
        ax.set_title(f"env {ex.env} episode {ex.episode}: best {ev.best}\n{post_txt}\n"
                     f"steps: {ev.informative} informative, {ev.steps} weighed, {ex.steps} in all",
                     fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7,
                 label="log10 P(goal = cell | path up to the first goal)")
    fig.suptitle("Posterior over every cell as the goal (● start, white path weighed, dotted: "
                 "after the first goal; ★ rewarded object, ◆ distractor, □ corner, ✕ user cell)",
                 fontsize=8)
    return save_figure(fig, path)


def _examples(results: list[EpisodeGoals], k: int, informative: int = 5) -> list[EpisodeGoals]:
    """Up to ``k`` decided episodes, those with at least ``informative`` informative steps
    first: for each hypothesis the first it explains best, then the others in order."""
    decided = sorted((r for r in results if r.evidence.best != UNDECIDED),
                     key=lambda r: -min(r.evidence.informative, informative))  # stable
    picked = [next(r for r in decided if r.evidence.best == name)
              for name in (results[0].evidence.names if results else ())
              if any(r.evidence.best == name for r in decided)]
    picked += [r for r in decided if r not in picked]
    return sorted(picked[:k], key=lambda r: (r.env, r.episode))


# -- the command ---------------------------------------------------------------------------------
@torch.no_grad()
def infer_goals(checkpoint: str | Path, env: str, out: str | Path, *, episodes: int = 256,
                goals=(), default_goals: bool = True, seed: int = 0, num_envs: int = 64,
                device: str = "auto", distribution_mode: str | None = None,
                options: dict | None = None, num_levels: int | None = None,
                start_level: int | None = None, training_levels: bool = False,
                max_steps: int | None = None, maps: int = 4, controls: int = 64,
                control_noise: float = 0.3, overwrite: bool = False) -> list[Path]:
    """Which candidate goal explains each of an agent's episodes on variant ``env``.

    ``goals`` adds candidates (names or ``cell:X,Y``) to the game's defaults (none with
    ``default_goals=False``). ``controls`` episodes of a scripted agent per goal (noise
    ``control_noise``) and of a random agent run on the same levels (0: none); ``maps``
    example episodes get a posterior map over cells (mazes). Levels as in
    :func:`~interp.evaluate.evaluate_agent`. Writes ``summary.md``, ``goals.png``,
    ``goals-maps.png`` (mazes), ``goals-episodes.csv`` and ``goals.csv`` to the folder ``out``
    (empty unless ``overwrite``).
    """
    from interp.checkpoint import load_agent
    from interp.device import resolve_device

    out = Path(out)
    if episodes < 1 or num_envs < 1 or maps < 0 or controls < 0:
        raise GoalError(f"episodes and num_envs must be >= 1, maps and controls >= 0 (got "
                        f"{episodes}, {num_envs}, {maps}, {controls})")
    if not 0 <= control_noise <= 1:
        raise GoalError(f"control noise must be in [0, 1] (got {control_noise})")
    check_output(out, "dir", overwrite=overwrite)
    dev = resolve_device(device)
    agent = load_agent(checkpoint, dev)
    spec = agent.env_spec(env, distribution_mode, options, num_levels=num_levels,
                          start_level=start_level, training_levels=training_levels)
    game = goal_game(spec)
    candidates = resolve_goals(spec, goals, default_goals)
    keys = sorted({*game.keys, "level_seed", *outcome_keys(spec)})

    rec = _Recorder(game, keys)
    ep = run_episodes(agent.model, spec, episodes=episodes, num_envs=num_envs, seed=seed,
                      max_steps=max_steps, on_step=rec, step_labels=True, device=dev,
                      progress=f"goals: agent on {spec.variant}")
    results = _episodes(AGENT, game, candidates, rec, ep)
    metrics = variant_metrics(spec, ep, rec.trace, seed)
    for goal in (*candidates, None) if controls else ():
        results += scripted_episodes(spec, goal, candidates, noise=control_noise,
                                     episodes=controls, num_envs=num_envs, seed=seed,
                                     max_steps=max_steps)

    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(results, seed)
    mine = [r for r in results if r.source == AGENT]
    opts = ", ".join(f"{k}={v}" for k, v in spec.options.items())
    title = f"{Path(checkpoint)} on {spec.variant}" + (f" ({opts})" if opts else "")
    paths = [write_csv(out / "goals-episodes.csv", [r.row() for r in results]),
             write_csv(out / "goals.csv", rows), _plot_shares(rows, title, out / "goals.png")]
    examples = _examples(mine, maps) if game.cells else []
    if examples:
        paths.append(_plot_maps(game, candidates, examples, out / "goals-maps.png"))
    protocol = (f"the first {ep.valid.shape[2]} of each of {ep.valid.shape[1]} envs, "
                f"{describe_levels(spec.to_dict(), agent.manifest['env_spec'])}")
    paths.append(_write_summary(out, title, spec, game, candidates, rows, mine, metrics, seed,
                                protocol, controls, control_noise))
    return paths


def _write_summary(out: Path, title: str, spec: EnvSpec, game: GoalGame,
                   goals: tuple[Goal, ...], rows: list[dict], mine: list[EpisodeGoals], metrics: list[Metric],
                   seed: int, protocol: str, controls: int, noise: float) -> Path:
    cut = sum(r.truncated for r in mine)
    cut_text = f" {cut} episode(s) were cut short by max_steps." if cut else ""
    goal_list = "\n".join(f"- `{g.name}`: {g.description}" for g in goals)
    agent_rows = [r for r in rows if r["source"] == AGENT]
    posts = md_table([(r["hypothesis"], fmt(r["mean_posterior"], r["posterior_lo"],
                                            r["posterior_hi"])) for r in agent_rows],
                     ["hypothesis", "mean posterior over decided episodes [95% CI]"])
    control_text = (f"Controls on the same levels: {controls} episodes each of a scripted agent "
                    f"per goal (epsilon-greedy towards it, noise {noise}) and of a uniformly "
                    "random agent." if controls else "No controls were run (--controls 0).")
    window = ("The goals renew (after one object, the next nearest), so each episode is weighed "
              "whole." if game.renewing else "Each episode is weighed up to the first step at "
              "which it stands on a candidate goal.")
    text = f"""# Which goal does the behaviour pursue? {title}

Env `{spec.variant}`, {spec.distribution_mode} mode: {len(mine)} episodes of the agent,
{protocol} (env and action seed {seed}).{cut_text}
{control_text}

Candidate goals, plus "{NO_GOAL}" (uniformly random actions), uniform prior:
{goal_list}

Model: per step, epsilon-greedy over the 15 actions towards the goal (the actions that make
shortest-path progress; all actions once it is reached), epsilon integrated over [0, 1]
exactly. {window}
The goals are compared on the *informative* steps only (where they prescribe different
actions); the other steps count the same for every goal and only weigh the goals against "no
goal" (epsilon integrated separately over the two sets). *Decided*: one hypothesis explains
the episode best (goals that agree on every step tie unless "no goal" beats them); shares are
over decided episodes with Wilson 95% intervals.

{_shares_table(rows)}

The agent's mean posteriors (bootstrap 95% intervals):

{posts}

The agent's episodes by the goal they reached first and the hypothesis that explains them best:

{_crosstab(mine)}

The variant's outcome rates on the same episodes (as `interp eval` reports them):

{_metrics_table(metrics)}
"""
    path = out / "summary.md"
    path.write_text(text)
    return path
