"""Figures of the training curves and the ablation and attribution reports (matplotlib, Agg
backend, PNG files); ``result``: an :class:`~interp.ablate.AblationResult` or
:class:`~interp.attribute.AttributionResult`."""

from __future__ import annotations

from pathlib import Path
import numpy as np

ACTION_NAMES = ("left-down", "left", "left-up", "down", "noop", "up", "right-down", "right",
                "right-up", "D", "A", "W", "S", "Q", "E")
OUTLINE_COLOURS = ("yellow", "magenta", "white", "lime", "cyan")  # object masks, in mask order


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as PNG (tight, 110 dpi) and close it."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return Path(path)


def _hbars(ax, labels, mean, lo, hi, title, colour):
    y = np.arange(len(labels))[::-1]
    mean, lo, hi = (np.nan_to_num(np.asarray(v, float)) for v in (mean, lo, hi))
    ax.barh(y, mean, color=colour, alpha=0.8)
    ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="none", ecolor="black", capsize=2,
                lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_title(title, fontsize=10)


def ablation_effects(result, rows: list[dict], rank_by: str, path: Path) -> Path:
    """Ranked effect bars with 95% intervals: the ranking metric, KL and |Δvalue|."""
    plt = pyplot()
    labels = [r["condition"] for r in rows]
    panels = ([f"d_{rank_by}"] if rank_by not in ("kl", "dvalue") else []) + ["kl", "dvalue"]
    titles = {f"d_{rank_by}": f"Δ {rank_by} (ablated − baseline)",
              "kl": "KL(policy ‖ ablated policy)", "dvalue": "mean |Δ value|"}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 0.9 + 0.24 * len(rows)),
                             sharey=True, squeeze=False)
    for ax, key, colour in zip(axes[0], panels, ("tab:red", "tab:blue", "tab:green")):
        _hbars(ax, labels, [r[key] for r in rows], [r[f"{key}_lo"] for r in rows],
               [r[f"{key}_hi"] for r in rows], titles[key], colour)
        if key == f"d_{rank_by}":
            floor = result.noise_floor[rank_by]
            ax.axvspan(-floor, floor, color="0.85", zorder=0, label=f"noise floor ±{floor:.3g}")
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result.mode} ablation of {result.layer} on {result.spec.variant} "
                 f"(ranked by {rank_by}; 95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def ablation_behaviour(result, order: list[int], path: Path) -> Path:
    """Behaviour rates (success, reached end, distractor) per condition, one panel per metric;
    the dashed line is the baseline's rate."""
    plt = pyplot()
    metrics = [m for m in ("success", "reached_end", "distractor") if m in result.behaviour_metrics]
    labels = [result.names[c] for c in order]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 1.0 + 0.24 * len(order)),
                             sharey=True, squeeze=False)
    for ax, m, colour in zip(axes[0], metrics, ("tab:orange", "tab:purple", "tab:brown")):
        rates = result.rates(m)
        stats = np.array([rates[c + 1] for c in order]).reshape(-1, 3)
        _hbars(ax, labels, *stats.T, f"{m.replace('_', ' ')} rate", colour)
        ax.axvline(rates[0][0], color="black", ls="--", lw=1, label=f"baseline {rates[0][0]:.2f}")
        ax.set_xlim(0, 1.02)
        ax.legend(fontsize=7, loc="lower right")
    n = int(result.episodes.valid[0].sum())
    fig.suptitle(f"Behaviour per condition, {result.mode} ablation of {result.layer} "
                 f"(n={n} episodes each; 95% CI)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def attribution_grid(result, indices: list[int], path: Path) -> Path:
    """Rows of frames; columns: the frame, then one Fig. 9 style overlay per target."""
    plt = pyplot()
    cols = 1 + len(result.targets)
    fig, axes = plt.subplots(len(indices), cols, figsize=(2.3 * cols, 2.4 * len(indices)),
                             squeeze=False)
    signed = result.signed
    for row, i in zip(axes, indices):
        frame = result.frames.obs[i]
        row[0].imshow(frame)
        for (obj, mask), colour in zip(result.masks.items(), OUTLINE_COLOURS):
            if obj != "other" and mask[i].any():
                row[0].contour(mask[i], levels=[0.5], colors=colour, linewidths=0.8)
        row[0].set_title(f"V={result.values[i]:.2f}  a={ACTION_NAMES[result.frames.actions[i]]}",
                         fontsize=8)
        for ax, target in zip(row[1:], result.targets):
            m = result.display_maps[target][i]
            m = m / max(np.abs(m).max(), 1e-12)  # full colour range for each panel
            ax.imshow(frame.mean(-1), cmap="gray", vmin=0, vmax=255)
            ax.imshow(m, cmap="bwr" if signed else "inferno", vmin=-1 if signed else 0, vmax=1,
                      alpha=np.clip(np.abs(m), 0, 1) * 0.85)
            ax.set_title(target, fontsize=8)
        for ax in row:
            ax.axis("off")
    kind = "red +, blue −" if signed else "magnitude"
    outlines = ", ".join(f"{o} {c}" for o, c in zip(result.masks, OUTLINE_COLOURS) if o != "other")
    fig.suptitle(f"{result.method} attribution ({kind}); Fig. 9 processing: ÷ max |attr|, "
                 f"Gaussian blur (5, σ=5), full scale per panel\nobject masks: {outlines}",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def attribution_shares(rows: list[dict], targets: list[str], path: Path) -> Path:
    """Attribution mass share per object, one bar per target, beside the uniform-map share
    (the rest of the frame, ``other``, is given in the title)."""
    plt = pyplot()
    rest = next(r for r in rows if r["object"] == "other")
    rows = [r for r in rows if r["object"] != "other"]
    x = np.arange(len(rows))
    width = 0.8 / (len(targets) + 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(rows)), 3.4))
    for j, t in enumerate(targets):
        mean, lo, hi = (np.nan_to_num([r[f"{t}{s}"] for r in rows]) for s in ("", "_lo", "_hi"))
        ax.bar(x + j * width, mean, width, label=t, yerr=[mean - lo, hi - mean], capsize=2)
    ax.bar(x + len(targets) * width, [r["uniform"] for r in rows], width, label="uniform map",
           color="lightgrey", hatch="//", edgecolor="grey")
    ax.set_xticks(x + width * len(targets) / 2,
                  [f"{r['object']}\n(in {r['frames']} frames)" for r in rows], fontsize=8)
    ax.set_ylabel("share of |attribution|")
    ax.legend(fontsize=8)
    other = ", ".join(f"{t} {rest[t]:.3f}" for t in targets)
    ax.set_title(f"Attribution mass on objects (mean over frames, 95% CI)\n"
                 f"rest of the frame: {other}, uniform {rest['uniform']:.3f}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def training_curve(progress_csv: Path, path: Path, title: str = "") -> Path:
    """Four panels from a run's ``progress.csv``: training episode return and length, the
    periodic evaluations' success rate (Wilson 95% interval, n per point), entropy and the
    critic's explained variance."""
    import csv

    from interp.stats import wilson

    with open(progress_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{progress_csv} has no rows yet")

    def col(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r.get(name) not in (None, "") else np.nan
                         for r in rows])

    steps = col("steps")
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharex=True)
    for ax, key, label in ((axes[0, 0], "ep_return", "episode return (training envs)"),
                           (axes[0, 1], "ep_length", "episode length (training envs)")):
        y = col(key)
        k = max(1, len(y) // 25)  # rolling mean over ~4% of the run
        ok = ~np.isnan(y)
        ax.plot(steps, y, color="lightgrey" if k > 1 else "tab:blue", lw=0.8)
        if k > 1 and ok.sum() >= k:
            smooth = np.convolve(y[ok], np.ones(k) / k, mode="valid")
            ax.plot(steps[ok][k - 1:], smooth, color="tab:blue", label=f"mean of {k} log rows")
            ax.legend(fontsize=7)
        ax.set_title(label, fontsize=10)
    ax = axes[1, 0]
    evals = sorted({c[len("eval_"):-len("_success")] for c in rows[0]
                    if c.startswith("eval_") and c.endswith("_success")})
    for name in evals:
        p, n = col(f"eval_{name}_success"), col(f"eval_{name}_n")
        ok = ~np.isnan(p)
        if not ok.any():
            continue
        ci = np.array([wilson(round(a * b), int(b))[1:] for a, b in zip(p[ok], n[ok])])
        ax.errorbar(steps[ok], p[ok], yerr=np.vstack([p[ok] - ci[:, 0], ci[:, 1] - p[ok]]), marker="o",
                    capsize=3, label=f"{name} (n={int(n[ok][-1])})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("evaluation success rate (95% Wilson CI)", fontsize=10)
    if ax.has_data():
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no evaluation yet", ha="center", transform=ax.transAxes)
    ax = axes[1, 1]
    ax.plot(steps, col("entropy"), color="tab:purple", label="policy entropy (nats)")
    ax.plot(steps, col("explained_var"), color="tab:green", label="explained variance")
    ax.set_title("entropy and critic fit", fontsize=10)
    ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("env steps")
    fig.suptitle(title or str(progress_csv), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
