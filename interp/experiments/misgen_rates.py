"""Fig. 2 of Langosco et al.: capability failure and goal misgeneralization against the
fraction of training levels with a random coin.

Per agent (its fraction read from the checkpoint's env spec):

- *training levels* (the checkpoint's own env spec: variant, options, level range):
  capability failure = neither the coin nor the end reached; split into *died* (the episode
  ended before the 1000-step CoinRun timeout) and *stuck* (timed out or cut short);
- *test levels* (``coinrun-random-coin``, unrestricted levels): goal misgeneralization = the
  agent reached the end (``reached_end``) without the coin; coin = the coin was collected;
- *chance baseline* (``coinrun-invisible-coin``): the invisible coin was touched
  (``agent_on_goal`` at some step): how often a coin at a random spot is collected by
  a policy that ignores it.

Rates are over episodes with Wilson 95% intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from interp.checkpoint import LoadedAgent
from interp.envs import EnvSpec
from interp.evaluate import (
    COINRUN_TIMEOUT,
    INVISIBLE_COIN_KEYS,
    coinrun_outcomes,
    invisible_coin_outcomes,
)
from interp.rollout import StepTrace, run_episodes
from interp.stats import rate

from .common import (ExperimentError, fmt, md_table, plt, save, truncation_note, write_csv,
                     write_summary)

FRACTION_OF = {"coinrun": 0.0, "coinrun-random-coin": 1.0}
METRICS = (("train", "capability_failure", "capability failure (training levels)"),
           ("train", "died", "  died"), ("train", "stuck", "  stuck (timeout)"),
           ("test", "goal_misgeneralization", "goal misgeneralization (random-coin levels)"),
           ("test", "coin", "coin collected (random-coin levels)"),
           ("test", "capability_failure", "capability failure (random-coin levels)"),
           ("chance", "invisible_coin", "invisible coin touched (chance baseline)"))


def random_coin_fraction(agent: LoadedAgent, name: str = "agent") -> tuple[float, EnvSpec]:
    """(fraction of training levels with a random coin, training env spec) of a checkpoint."""
    d = agent.manifest.get("env_spec")
    if not d:
        raise ExperimentError(f"{name}: the checkpoint stores no env spec (a file trained "
                              "elsewhere), so its training levels and random-coin fraction are "
                              "unknown; import it once: interp agents import CKPT --env coinrun "
                              "--distribution-mode easy|hard [--num-levels N] --out agent.pt")
    spec = EnvSpec.from_dict(d)
    if spec.variant == "coinrun-coin-mix":
        return float(spec.resolved_options()["random_coin_fraction"]), spec
    if spec.variant in FRACTION_OF:
        return FRACTION_OF[spec.variant], spec
    raise ExperimentError(f"{name} was trained on {spec.variant!r}; misgen-rates needs CoinRun "
                          "agents trained on coinrun, coinrun-coin-mix or coinrun-random-coin")


@torch.no_grad()
def misgen_rates(agents: list[tuple[str, LoadedAgent]], out: str | Path, *,
                 episodes: int = 256, num_envs: int = 64, seed: int = 0,
                 max_steps: int | None = None, device: str | None = None) -> list[Path]:
    """Run the experiment for ``(name, agent)`` pairs; write ``misgen-rates.csv``,
    ``misgen-rates.png`` and ``summary.md``."""
    specs = [random_coin_fraction(a, name) for name, a in agents]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, cut = [], 0
    for (name, agent), (fraction, train_spec) in sorted(zip(agents, specs),
                                                        key=lambda t: t[1][0]):
        mode = train_spec.distribution_mode
        run = dict(episodes=episodes, num_envs=num_envs, seed=seed, max_steps=max_steps,
                   device=device)
        flags = {}
        for where, spec in (("train", train_spec), ("test", EnvSpec("coinrun-random-coin", mode))):
            ep = run_episodes(agent.model, spec, **run)
            flags[where] = coinrun_outcomes(ep)
            cut += int(ep.truncated.sum())
        trace = StepTrace(INVISIBLE_COIN_KEYS)
        ep = run_episodes(agent.model, EnvSpec("coinrun-invisible-coin", mode), on_step=trace,
                          step_labels=True, **run)
        cut += int(ep.truncated.sum())
        flags["chance"] = invisible_coin_outcomes(trace)
        for where, metric, _ in METRICS:
            f = flags[where][metric]
            r, lo, hi = rate(f)
            rows.append({"checkpoint": name, "random_coin_fraction": fraction, "levels": where,
                         "metric": metric, "n": len(f), "count": int(f.sum()), "rate": r,
                         "ci_lo": lo, "ci_hi": hi})
    paths = [write_csv(out / "misgen-rates.csv", rows), _plot(rows, out / "misgen-rates.png")]
    labels = {(w, m): lab.strip() for w, m, lab in METRICS}
    table = md_table([(r["checkpoint"], f"{r['random_coin_fraction']:g}",
                       labels[r["levels"], r["metric"]], r["n"],
                       fmt(r["rate"], r["ci_lo"], r["ci_hi"], pct=True)) for r in rows],
                     ["checkpoint", "fraction", "metric", "n", "rate [95% Wilson CI]"])
    paths.append(write_summary(out, "Capability failure and goal misgeneralization vs random-coin "
                                    "fraction", f"""
{len(agents)} agent(s); per agent and env, the first {-(-episodes // min(num_envs, episodes))}
episode(s) of each of {min(num_envs, episodes)} envs (env seed {seed}). Training levels: each
checkpoint's env spec; test levels: `coinrun-random-coin`; chance: `coinrun-invisible-coin`.
Capability failure = neither coin nor end reached (died: ended before the {COINRUN_TIMEOUT}-step
timeout; stuck: timed out); goal misgeneralization = reached the end without the coin.
{truncation_note(cut)}

{table}
"""))
    return paths


def _plot(rows: list[dict], path: Path) -> Path:
    from matplotlib.transforms import ScaledTranslation

    p = plt()
    fig, ax = p.subplots(figsize=(6.4, 4))
    show = (("train", "capability_failure", "tab:red", "capability failure (training levels)"),
            ("test", "goal_misgeneralization", "tab:purple",
             "goal misgeneralization (random-coin levels)"),
            ("test", "coin", "tab:orange", "coin collected (random-coin levels)"),
            ("chance", "invisible_coin", "tab:grey", "invisible coin touched (chance)"))
    for j, (where, metric, colour, label) in enumerate(show):
        sel = [r for r in rows if r["levels"] == where and r["metric"] == metric]
        x = np.array([r["random_coin_fraction"] for r in sel])
        m, lo, hi = (np.array([r[k] for r in sel]) for k in ("rate", "ci_lo", "ci_hi"))
        dodge = ScaledTranslation((j - 1.5) * 4 / 72, 0, fig.dpi_scale_trans)  # 4 pt apart
        ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o", color=colour, label=label, capsize=3,
                    ms=4, lw=1, ls="--" if where == "chance" else "-",
                    transform=ax.transData + dodge)
    fractions = sorted({r["random_coin_fraction"] for r in rows})
    positive = [f for f in fractions if f > 0]
    if positive and max(fractions) / min(positive) > 20:
        ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xlim(-0.5 * min(positive), 1.3 * max(fractions))
    else:  # the dodge transform hides the points from autoscaling
        span = max(fractions[-1] - fractions[0], 0.1)
        ax.set_xlim(fractions[0] - 0.06 * span, fractions[-1] + 0.06 * span)
    ax.set_xlabel("fraction of training levels with a random coin")
    ax.set_ylabel("rate over episodes (95% Wilson CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    ax.set_title("Goal misgeneralization vs training mix (cf. Langosco et al. Fig. 2)",
                 fontsize=10)
    return save(fig, path)
