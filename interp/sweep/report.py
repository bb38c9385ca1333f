"""``interp sweep report``: a population report from an ``interp sweep eval`` table.

Per test setting, Ramanauskas & Simsek's two measures for every agent: *preference* = goal
first / (goal first + distractor first) (settings with a distractor; else the success rate)
and *capability* = mean steps to the first object reached (else the mean episode length);
their distributions across seeds; and outlier seeds by the rule of
:mod:`interp.sweep.outliers` on success, preference and capability, with example
trajectories of every outlier beside a typical agent on the same levels.

Writes ``report.md``, ``scatter.png``, ``distributions.png``, ``outliers.csv`` (every test) and
``trajectories-<k>.png`` (one per flagged agent and setting, at most :data:`MAX_EXAMPLES`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from interp.plots import pyplot, save_figure
from interp.stats import Z95
from interp.tables import fmt, md_table, write_csv

from .evaluation import TABLE, AgentFile, Setting
from .outliers import MIN_AGENTS, adjust, metric_tests
from .runner import SweepError

MAX_EXAMPLES = 8  # flagged (agent, setting) pairs that get example trajectories
FRAMES = 8  # frames per example episode
TEXT_COLUMNS = {"agent", "setting", "variant", "distribution_mode", "options", "sha256"}
MAX_PER_AGENT_ROWS = 100  # per-agent tables in report.md up to this many agents


def load_eval(source: str | os.PathLike) -> tuple[Path, dict, list[dict]]:
    """(eval folder, eval.json, rows) from a table, its eval folder or a sweep folder."""
    source = Path(source)
    candidates = [source.parent] if source.is_file() else [source, source / "eval"]
    folder = next((f for f in candidates if (f / TABLE).is_file()
                   and (f / "eval.json").is_file()), None)
    if folder is None:
        raise SweepError(f"no {TABLE} with its eval.json at {source}: pass the output of "
                         "`interp sweep eval` (its folder, or the sweep folder)")
    with open(folder / TABLE, newline="") as f:
        rows = [{k: v if k in TEXT_COLUMNS else _number(v) for k, v in r.items()}
                for r in csv.DictReader(f)]
    if not rows:
        raise SweepError(f"{folder / TABLE} has no rows")
    return folder, json.loads((folder / "eval.json").read_text()), rows


def _number(text: str):
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


def measures(rows: list[dict]) -> dict[str, dict]:
    """``{metric: {"kind", "label", "value", "lo", "hi", "n"}}`` (arrays over ``rows``, one
    setting): success, preference where there is a distractor, and capability."""
    have = lambda col: any(not _missing(r.get(col)) for r in rows)  # noqa: E731
    objects = have("steps_to_object")
    out = {}
    for metric, col, kind, label in (
            ("success", "success", "rate", "success rate"),
            ("preference", "preference", "rate",
             "preference: goal first / (goal first + distractor first)"),
            ("capability", "steps_to_object" if objects else "length", "mean",
             "capability: mean steps " + ("to the first object" if objects else
                                          "per episode"))):
        if have(col):
            out[metric] = {"kind": kind, "label": label, **{
                k: np.array([_float(r.get(f"{col}{suffix}")) for r in rows])
                for k, suffix in (("value", ""), ("lo", "_lo"), ("hi", "_hi"), ("n", "_n"))}}
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _float(v) -> float:
    return math.nan if _missing(v) else float(v)


def population_report(source: str | os.PathLike, out: str | os.PathLike | None = None, *,
                      alpha: float = 0.05, examples: int = 3, overwrite: bool = False,
                      device: str = "cpu") -> list[Path]:
    """Write the report of an eval table (see the module doc) to ``out`` (default
    ``<eval folder>/report``); outliers at false-discovery rate ``alpha``, ``examples``
    example episodes per outlier. Returns the written paths, report.md first."""
    if not 0 < alpha < 1 or examples < 0:
        raise SweepError("--alpha must be in (0, 1) and --examples >= 0")
    folder, meta, rows = load_eval(source)
    out = Path(out) if out is not None else folder / "report"
    if (out / "report.md").exists() and not overwrite:
        raise SweepError(f"{out}/report.md exists; pass --overwrite to replace the report")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("trajectories-*.png"):  # of a report being replaced
        old.unlink()
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    by_setting = {s: [r for r in rows if r["setting"] == s] for s in settings}
    stats = {s: measures(by_setting[s]) for s in settings}

    tests = []
    for s in settings:
        names = [r["agent"] for r in by_setting[s]]
        for metric, m in stats[s].items():
            if m["kind"] == "rate":
                k = np.where(m["n"] > 0, np.round(np.nan_to_num(m["value"]) * m["n"]), 0)
                tests += metric_tests(names, s, metric, m["value"],
                                      counts=(k, np.nan_to_num(m["n"])))
            else:
                tests += metric_tests(names, s, metric, m["value"],
                                      se=(m["hi"] - m["lo"]) / (2 * Z95))
    tests = adjust(tests)
    flagged = sorted((t for t in tests if t.flagged(alpha)), key=lambda t: t.q)
    outlier_keys = {(t.agent, t.setting) for t in flagged}

    paths = [out / "report.md",
             _scatter(by_setting, stats, outlier_keys, out / "scatter.png"),
             _distributions(by_setting, stats, outlier_keys, out / "distributions.png"),
             write_csv(out / "outliers.csv", [{**t.__dict__, "flagged": t.flagged(alpha)}
                                              for t in tests])]
    examples_md = []
    pairs = list(dict.fromkeys((t.agent, t.setting) for t in flagged))[:MAX_EXAMPLES]
    if examples:
        agents_dir = folder / meta["folder"]
        for k, (agent, setting) in enumerate(pairs):
            first = next(t for t in flagged if (t.agent, t.setting) == (agent, setting))
            typical = _typical(by_setting[setting], stats[setting][first.metric]["value"],
                               {t.agent for t in flagged if t.setting == setting})
            path = _trajectories(agents_dir, meta, setting, [agent, typical], examples,
                                 device, out / f"trajectories-{k}.png",
                                 f"{setting}: outlier {agent} ({first.metric}) vs typical "
                                 f"{typical}, same levels")
            paths.append(path)
            examples_md.append(f"- `{agent}` on `{setting}`: [{path.name}]({path.name}) "
                               f"(beside `{typical}`)")
    (out / "report.md").write_text(_markdown(folder, meta, settings, by_setting, stats, tests,
                                             flagged, alpha, examples_md))
    return paths


def _typical(rows: list[dict], values: np.ndarray, exclude: set[str]) -> str:
    """The agent nearest the median of ``values`` among those not in ``exclude`` (those
    flagged; the outlier is always among them)."""
    ok = [i for i, r in enumerate(rows) if r["agent"] not in exclude
          and not math.isnan(values[i])] or [i for i, r in enumerate(rows)
                                             if not math.isnan(values[i])]
    med = np.median(values[ok])
    return str(rows[min(ok, key=lambda i: abs(values[i] - med))]["agent"])


# ---- markdown ------------------------------------------------------------------------------

def _estimate(m: dict, i: int) -> str:
    v, lo, hi = m["value"][i], m["lo"][i], m["hi"][i]
    return fmt(v, lo, hi, pct=True) if m["kind"] == "rate" else fmt(v, lo, hi)


def _markdown(folder, meta, settings, by_setting, stats, tests, flagged, alpha,
              examples_md) -> str:
    n_agents = len({r["agent"] for rows in by_setting.values() for r in rows})
    per_env = -(-meta["episodes"] // min(meta["num_envs"], meta["episodes"]))
    lines = [f"# Population report: {n_agents} agents, {len(settings)} test setting(s)", "",
             f"From `{folder / TABLE}`. Every agent played the same levels with the same random "
             f"numbers: per setting the first {per_env} episode(s) of each of "
             f"{min(meta['num_envs'], meta['episodes'])} envs (env seed {meta['seed']}). Rates "
             "with Wilson 95% intervals, means with bootstrap 95% intervals (per agent); "
             "across agents the median, interquartile range and range.", "",
             "![preference vs capability](scatter.png)", "",
             "![distributions across seeds](distributions.png)", ""]
    for s in settings:
        rows, st = by_setting[s], stats[s]
        lines += [f"## `{s}`", ""]
        summary = []
        for m in st.values():
            v = m["value"][~np.isnan(m["value"])]
            if not len(v):
                continue
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            f = (lambda x: f"{100 * x:.0f}%") if m["kind"] == "rate" else (
                lambda x: f"{x:.1f}")
            summary.append((m["label"], len(v), f(med), f"{f(q1)} - {f(q3)}",
                            f"{f(v.min())} - {f(v.max())}"))
        lines += [md_table(summary, ["metric", "agents", "median", "IQR", "range"]), ""]
        if len(rows) <= MAX_PER_AGENT_ROWS:
            head = ["agent", "train seed", "steps", "episodes"] + list(st)
            table = [(r["agent"], _int(r["train_seed"]), _int(r["steps"]), _int(r["n"]),
                      *(_estimate(m, i) for m in st.values())) for i, r in enumerate(rows)]
            lines += [md_table(table, head), ""]
    lines += ["## Outliers", "",
              f"Rule: each agent against the rest of its population, per setting and metric "
              f"(success, preference, capability): the studentized deleted residual of a "
              "random-effects model (rates on the Freeman-Tukey double-arcsine scale, means "
              "with their bootstrap standard error; the rest's between-seed variance by "
              "DerSimonian-Laird), two-sided p from Student's t with agents - 2 df; "
              f"Benjamini-Hochberg over all {len(tests)} tests, false-discovery rate "
              f"{alpha:g}. An outlier is an agent unlikely to be one more seed of the same "
              f"population as the others (docs/sweeps.md). Needs {MIN_AGENTS}+ agents with a "
              "value.", ""]
    if flagged:
        lines += [md_table([(t.agent, f"`{t.setting}`", t.metric, _estimate(
            stats[t.setting][t.metric], _index(by_setting[t.setting], t.agent)),
            f"{t.rest_median:.3g}", f"{t.t:+.2f}", f"{t.p:.2g}", f"{t.q:.2g}") for t in flagged],
            ["agent", "setting", "metric", "value [95% CI]", "median of the rest", "t", "p",
             "q (BH)"]), ""]
        if examples_md:
            lines += ["Example trajectories (frames from the start to the first object reached, "
                      "else to the episode's end; the outlier's row above the typical agent's "
                      "on the same level):", "", *examples_md, ""]
    elif tests:
        best = min(tests, key=lambda t: t.q)
        lines += [f"No outlier at false-discovery rate {alpha:g} among {len(tests)} tests; "
                  f"the smallest q is {best.q:.2g} ({best.agent}, {best.metric} on "
                  f"`{best.setting}`: {best.value:.3g} vs the rest's median "
                  f"{best.rest_median:.3g}).", ""]
    else:
        lines += [f"Not tested: fewer than {MIN_AGENTS} agents with a value.", ""]
    lines += ["Every test (agent, setting, metric, value, median of the rest, t, p, q) is in "
              "`outliers.csv`.", ""]
    return "\n".join(lines)


def _int(v) -> str:
    return "unknown" if _missing(v) or isinstance(v, str) else f"{int(v):,}"


def _index(rows: list[dict], agent: str) -> int:
    return next(i for i, r in enumerate(rows) if r["agent"] == agent)


# ---- figures -------------------------------------------------------------------------------

def _scatter(by_setting, stats, outliers, path: Path) -> Path:
    """Preference (or success) vs capability, one point per agent with 95% CIs, per setting."""
    plt = pyplot()
    settings = [s for s in by_setting if "capability" in stats[s]]
    fig, axes = plt.subplots(1, max(len(settings), 1), figsize=(5.2 * max(len(settings), 1),
                                                                 4.4), squeeze=False)
    for ax, s in zip(axes[0], settings):
        xm = stats[s].get("preference", stats[s]["success"])
        ym, rows = stats[s]["capability"], by_setting[s]
        for i, r in enumerate(rows):
            bad = (r["agent"], s) in outliers
            x, y = xm["value"][i], ym["value"][i]
            ax.errorbar(x, y, xerr=[[np.nan_to_num(x - xm["lo"][i])],
                                    [np.nan_to_num(xm["hi"][i] - x)]],
                        yerr=[[np.nan_to_num(y - ym["lo"][i])], [np.nan_to_num(ym["hi"][i] - y)]],
                        fmt="o", color="tab:red" if bad else "tab:blue", ecolor="lightgrey",
                        ms=6 if bad else 4, capsize=0, zorder=3 if bad else 2)
            if bad or len(rows) <= 30:
                ax.annotate(r["agent"], (x, y), fontsize=7, xytext=(3, 3),
                            textcoords="offset points", color="tab:red" if bad else "black")
        ax.set_xlim(-0.05, 1.05)
        ax.set_xlabel(xm["label"], fontsize=8)
        ax.set_ylabel(ym["label"], fontsize=8)
        ax.set_title(s, fontsize=9)
    fig.suptitle("One point per agent (95% CIs); red: outliers", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _distributions(by_setting, stats, outliers, path: Path) -> Path:
    """Every metric across agents, sorted, with 95% CIs and the median; one row per setting."""
    plt = pyplot()
    metrics = list(dict.fromkeys(m for s in by_setting for m in stats[s]))
    fig, axes = plt.subplots(len(by_setting), len(metrics), squeeze=False,
                             figsize=(4.2 * len(metrics), 2.8 * len(by_setting)))
    for row_axes, s in zip(axes, by_setting):
        for ax, metric in zip(row_axes, metrics):
            m = stats[s].get(metric)
            if m is None:
                ax.axis("off")
                continue
            order = [i for i in np.argsort(m["value"]) if not np.isnan(m["value"][i])]
            v = m["value"][order]
            colours = ["tab:red" if (by_setting[s][i]["agent"], s) in outliers
                       else "tab:blue" for i in order]
            y = np.arange(len(order))
            ax.errorbar(v, y, xerr=[np.nan_to_num(v - m["lo"][order]),
                                    np.nan_to_num(m["hi"][order] - v)],
                        fmt="none", ecolor="lightgrey")
            ax.scatter(v, y, c=colours, s=14, zorder=3)
            if len(v):
                ax.axvline(np.median(v), color="grey", ls="--", lw=0.8)
            if m["kind"] == "rate":
                ax.set_xlim(-0.03, 1.03)
            if len(order) <= 30:
                ax.set_yticks(y, [by_setting[s][i]["agent"] for i in order], fontsize=6)
            else:
                ax.set_yticks([])
            ax.set_xlabel(m["label"], fontsize=7)
            ax.set_title(s, fontsize=8)
    fig.suptitle("Across seeds: each agent's value (95% CI), sorted; dashed: median; red: "
                 "outliers", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _trajectories(agents_dir: Path, meta: dict, setting: str, names: list[str], examples: int,
                  device: str, path: Path, title: str) -> Path:
    """The first episode of ``examples`` envs (same env seed for every agent, so the same
    levels): frames spread from the start to the first object reached (else the episode's
    end), one row per (level, agent)."""
    from interp.checkpoint import load_agent
    from interp.evaluate import OBJECT_KEYS
    from interp.rollout import StepTrace
    from interp.rollout import run_episodes

    spec_of = {Setting(**s).label: Setting(**s) for s in meta["settings"]}
    runs = []
    for name in names:
        agent = load_agent(agents_dir / meta["agents"][name], device)
        file = AgentFile(name, agents_dir / meta["agents"][name], agent.manifest)
        spec = file.env_spec(spec_of[setting], meta["distribution_mode"])
        objects = bool(spec.resolved_options().get("distractor"))
        trace = StepTrace(OBJECT_KEYS if objects else (),
                          keep_obs=lambda step: np.ones(len(step.rows), bool))
        ep = run_episodes(agent.model, spec, episodes=examples, num_envs=examples,
                          seed=meta["seed"], on_step=trace, step_labels=objects,
                          device=device, progress=None)
        runs.append((name, trace, _outcomes(ep, trace, objects)))
    plt = pyplot()
    fig, axes = plt.subplots(examples * len(names), FRAMES, squeeze=False,
                             figsize=(1.25 * FRAMES, 1.45 * examples * len(names)))
    for e in range(examples):
        for j, (name, trace, (outcome, until)) in enumerate(runs):
            steps, frames = trace.obs_of(0, e, 0)
            last = int(np.searchsorted(steps, until[e], side="right")) - 1
            pick = np.unique(np.linspace(0, last, FRAMES).round().astype(int))
            row = axes[e * len(names) + j]
            for ax in row:
                ax.axis("off")
            for ax, i in zip(row, pick):
                ax.imshow(frames[i])
                ax.set_title(f"step {steps[i]}", fontsize=6)
            row[0].text(-0.1, 0.5, f"{name}\nlevel {e + 1}\n{outcome[e]}", fontsize=6,
                        ha="right", va="center", transform=row[0].transAxes,
                        color="tab:red" if j == 0 else "black")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def _outcomes(ep, trace, objects: bool) -> tuple[list[str], np.ndarray]:
    """Per episode of env 0..n-1: a few words on what it reached first and when, and the step
    up to which its frames are shown (the first object reached, else the end)."""
    from interp.evaluate import object_outcomes
    from interp.rollout import episode_outcomes

    o = episode_outcomes(ep)
    if not objects:
        return ([f"{'goal' if ok else 'no goal'}, {n:.0f} steps" for ok, n in
                 zip(o["success"] > 0, o["length"])], o["length"])
    b = object_outcomes(ep, trace)
    words = [("goal first" if g else "distractor first" if d else "neither object") +
             (f" at step {s:.0f}" if not math.isnan(s) else "")
             for g, d, s in zip(b["goal_first"], b["distractor_first"], b["steps"])]
    return words, np.where(np.isnan(b["steps"]), o["length"], b["steps"])
