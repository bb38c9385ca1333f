"""One-page answer to "what goal did my agent learn, and where in the network is it?".

:func:`summarize` reads what ``interp eval --json`` and ``interp probe --out`` wrote and
writes ``summary.md`` and ``summary.png``: the behaviour (every rate the variant measures,
with n and 95% intervals) and, per probed feature, the layers where the feature is readable
*beyond its controls*: a layer counts only when the lower end of the agent's interval lies
above the upper ends of the random-init agent's interval at that layer and of the raw-pixel
probe's interval. Nothing is recomputed, so the page states exactly what the runs measured.
"""

from __future__ import annotations

import csv
import json
import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

from interp.errors import InterpError
from interp.outputs import check_output
from interp.plots import pyplot, save_figure
from interp.tables import fmt, md_table


class SummaryError(InterpError, ValueError):
    """An input that is not an ``interp eval --json`` file or an ``interp probe`` folder."""


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float

    def clears(self, *others: Interval | None) -> bool:
        """The whole interval lies above every other interval given (None: no such control)."""
        return all(o is None or self.lo > o.hi for o in others)


@dataclass
class ProbeVerdict:
    feature: str
    metric: str
    rows: int
    levels: int
    layers: list[str]
    agent: dict[str, Interval]
    random_init: dict[str, Interval]
    pixels: Interval | None
    chance: Interval | None

    @property
    def clearing(self) -> list[str]:
        """Layers whose score clears the random-init and pixel controls."""
        return [la for la in self.layers
                if self.agent[la].clears(self.random_init.get(la), self.pixels)]

    @property
    def best(self) -> str:
        """The clearing layer with the highest score (else the highest-scoring layer)."""
        pool = self.clearing or self.layers
        return max(pool, key=lambda la: self.agent[la].value)


def read_eval(path: Path) -> dict:
    """An ``interp eval --json`` file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SummaryError(f"--eval {path}: not a readable JSON file ({e}); write one with "
                           "`interp eval ... --json FILE`") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise SummaryError(f"--eval {path}: no 'metrics' in it; is it from `interp eval --json`?")
    try:
        data["env_spec"]["variant"], data["n"], data["episodes_per_env"], data["num_envs"]
        for m in data["metrics"].values():  # null: a rate over no episodes (NaN, n/a)
            m.update({k: math.nan if m[k] is None else float(m[k])
                      for k in ("value", "lo", "hi")}, kind=str(m["kind"]), label=str(m["label"]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SummaryError(f"--eval {path}: not the layout of `interp eval --json` (missing or "
                           f"bad {e}); write it again with `interp eval ... --json FILE`") from None
    return data


def read_probe(folder: Path) -> ProbeVerdict:
    """The scores of an ``interp probe --out`` folder (its run.json and results.csv)."""
    folder = Path(folder)
    try:
        run = json.loads((folder / "run.json").read_text())
        with (folder / "results.csv").open() as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError) as e:
        raise SummaryError(f"--probe {folder}: not an `interp probe --out` folder ({e})") from None

    def interval(r: dict) -> Interval:
        return Interval(*(float(r[k]) for k in ("value", "ci_low", "ci_high")))

    try:
        metric = run["metric"]
        scores: dict[str, dict[str, Interval]] = {}
        for r in rows:
            if r["metric"] == metric:
                scores.setdefault(r["probe"], {})[r["layer"]] = interval(r)
        if not scores.get("agent"):
            raise SummaryError(f"--probe {folder}: results.csv has no agent scores")
        return ProbeVerdict(run["feature"]["name"], metric, int(run["rows"]),
                            int(run["levels"]), list(run["layers"]), scores["agent"],
                            scores.get("random_agent", {}), scores.get("pixels", {}).get(""),
                            scores.get("majority", scores.get("shuffled", {})).get(""))
    except (KeyError, TypeError, ValueError) as e:
        raise SummaryError(f"--probe {folder}: not an `interp probe --out` folder (its run.json "
                           f"or results.csv lacks {e})") from None


def _pct(m: dict) -> str:
    return fmt(m["value"], m["lo"], m["hi"], pct=True)


def _measured_rates(ev: dict) -> list[dict]:
    """The rate metrics with at least one episode (a rate over none is NaN)."""
    return [m for m in ev["metrics"].values()
            if m["kind"] == "rate" and not math.isnan(m["value"])]


def _headline(ev: dict) -> str:
    """The variant's outcomes on one line, most frequent first."""
    rates = sorted((m for m in _measured_rates(ev) if not m["label"].startswith("-")),
                   key=lambda m: -m["value"])
    return (f"On `{ev['env_spec']['variant']}` (n = {ev['n']}): "
            + "; ".join(f"{m['label']} {_pct(m)}" for m in rates) + ".")


def _behaviour_lines(ev: dict) -> list[str]:
    spec = ev["env_spec"]
    opts = " ".join(f"-o {k}={v}" for k, v in (spec.get("options") or {}).items())
    head = (f"On `{spec['variant']}`{' ' + opts if opts else ''} ({spec['distribution_mode']}; "
            f"n = {ev['n']} episodes, the first {ev['episodes_per_env']} of each of "
            f"{ev['num_envs']} envs, seed {ev['seed']}"
            + (f"; {ev['levels']}" if ev.get("levels") else "") + "):")
    rates = [m for m in ev["metrics"].values() if m["kind"] == "rate"]
    return [head, "", md_table([(m["label"], _pct(m)) for m in rates],
                               ("outcome", "rate [95% CI]"))]


def _probe_lines(p: ProbeVerdict) -> list[str]:
    name = p.metric.upper() if p.metric == "auroc" else p.metric
    rows = []
    for la in p.layers:
        a, r = p.agent[la], p.random_init.get(la)
        rows.append((f"`{la}`" + (" **clears**" if la in p.clearing else ""),
                     fmt(a.value, a.lo, a.hi),
                     fmt(r.value, r.lo, r.hi) if r else "n/a"))
    px = fmt(p.pixels.value, p.pixels.lo, p.pixels.hi) if p.pixels else "not run"
    if p.clearing:
        b = p.agent[p.best]
        verdict = (f"**`{p.feature}` is linearly readable beyond the controls** at "
                   f"{len(p.clearing)} of {len(p.layers)} layers; best `{p.best}`: {name} "
                   f"{fmt(b.value, b.lo, b.hi)}.")
    else:
        verdict = (f"**No layer reads `{p.feature}` beyond the controls** at 95%: no claim about "
                   "where it is represented.")
    return [verdict, "", f"Probe of `{p.feature}` ({name}, {p.rows:,} rows from {p.levels} "
            f"levels, folds grouped by level; 95% level-bootstrap intervals). Raw-pixel probe: "
            f"{px}. A layer **clears** when its interval lies above both the random-init "
            "agent's interval at that layer and the pixel probe's.", "",
            md_table(rows, ("layer", f"agent {name}", f"random-init agent {name}"))]


def summarize(agent: str | os.PathLike, evals: list[Path], probes: list[Path],
              out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``out/summary.md`` and ``out/summary.png``; returns the markdown path."""
    if not evals and not probes:
        raise SummaryError("nothing to summarize: pass at least one --eval or --probe")
    out = Path(out)
    for name in ("summary.md", "summary.png"):  # the folder may hold other results
        check_output(out / name, "file", overwrite=overwrite)
    ev_data = [read_eval(p) for p in evals]
    verdicts = [read_probe(p) for p in probes]
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# What goal did `{agent}` learn, and where is it?", "",
             "**Answer.** " + " ".join([*(_headline(ev) for ev in ev_data),
                                        *(_probe_lines(v)[0] for v in verdicts)]), "",
             "## Behaviour", ""]
    for ev in ev_data:
        lines += _behaviour_lines(ev) + [""]
    lines += ["## In the network", ""]
    for v in verdicts:
        lines += _probe_lines(v) + [""]
    lines += ["Sources: " + ", ".join(f"`{p}`" for p in [*evals, *probes]) + ".",
              "![summary](summary.png)", ""]
    (out / "summary.md").write_text("\n".join(lines))
    _figure(str(agent), ev_data, verdicts, out / "summary.png")
    return out / "summary.md"


def _figure(agent: str, evals: list[dict], verdicts: list[ProbeVerdict], path: Path) -> None:
    plt = pyplot()
    panels = len(evals) + len(verdicts)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.6), squeeze=False)
    for ax, ev in zip(axes[0], evals):
        rates = _measured_rates(ev)[::-1]
        y = range(len(rates))
        v = [100 * m["value"] for m in rates]
        err = [[100 * (m["value"] - m["lo"]) for m in rates],
               [100 * (m["hi"] - m["value"]) for m in rates]]
        ax.barh(y, v, xerr=err, color="tab:orange", alpha=0.85, capsize=3)
        ax.set_yticks(list(y), [textwrap.fill(m["label"], 34) for m in rates], fontsize=7)
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of episodes (95% CI)")
        ax.set_title(f"behaviour on {ev['env_spec']['variant']} (n={ev['n']})", fontsize=10)
    for ax, p in zip(axes[0][len(evals):], verdicts):
        x = range(len(p.layers))
        short = [la.replace("embedder.", "") for la in p.layers]

        def band(scores: dict[str, Interval], label: str, colour: str) -> None:
            pts = [scores.get(la, Interval(math.nan, math.nan, math.nan)) for la in p.layers]
            ax.plot(x, [s.value for s in pts], "o-", color=colour, label=label, ms=4)
            ax.fill_between(x, [s.lo for s in pts], [s.hi for s in pts], color=colour, alpha=0.2)

        band(p.agent, "agent", "tab:blue")
        if p.random_init:
            band(p.random_init, "random-init agent", "tab:grey")
        if p.pixels:
            ax.axhspan(p.pixels.lo, p.pixels.hi, color="tab:green", alpha=0.2,
                       label="raw pixels (95% CI)")
        if p.chance:
            ax.axhline(p.chance.value, color="black", ls=":", lw=1, label="chance")
        for i, la in enumerate(p.layers):
            if la in p.clearing:
                ax.annotate("*", (i, p.agent[la].hi), ha="center", va="bottom", fontsize=12)
        ax.set_xticks(list(x), short, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(p.metric)
        ax.set_title(f"where `{p.feature}` is readable (* clears controls)", fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(agent, fontsize=10)
    save_figure(fig, path)
