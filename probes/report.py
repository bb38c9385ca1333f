"""Write a probe's results (``res``: a :class:`~probes.run.ProbeResults`) to a directory:
tables, plots and run metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from interp.plots import pyplot, save_figure
from interp.tables import write_csv
from probes.evaluate import FEW_LEVELS

WEIGHTS_FILE = "weights.npz"
PROBE_NAMES = {"agent": "agent", "shuffled": "agent, shuffled labels",
               "random_agent": "random-init agent", "pixels": "raw pixels",
               "majority": "majority / mean"}
METRIC_NAMES = {"auroc": "AUROC", "accuracy": "accuracy", "r2": "R²"}
STYLE = {"agent": dict(color="C0", marker="o", lw=2),
         "random_agent": dict(color="C1", marker="s", ls="--"),
         "shuffled": dict(color="0.5", marker=".", ls=":")}


def short(layer: str) -> str:
    return layer.removeprefix("embedder.")


def _fmt(s) -> str:
    if s is None:
        return "–"
    if np.isnan(s.lo):
        return f"{s.value:.3f}"
    return f"{s.value:.3f} [{s.lo:.3f}, {s.hi:.3f}]"


def write_report(res, out: Path, top_channels: int = 16) -> list[Path]:
    """Write every output; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_csv(out / "results.csv", res.table()), _markdown(res, out / "results.md"),
             _score_plot(res, out / "score_by_layer.png"), _metadata(res, out / "run.json")]
    if res.weights:
        paths.append(_weights(res, out / WEIGHTS_FILE))
    if res.channels:
        paths += [write_csv(out / "channels.csv", res.channels),
                  _channel_plot(res, out / "channels.png", top_channels)]
    if res.spatial is not None:
        paths.append(_spatial_plot(res, out / "spatial.png"))
    if res.umap is not None:
        paths.append(_umap_plot(res, out / "umap.png"))
    return paths


def _markdown(res, path: Path) -> Path:
    m, info = METRIC_NAMES[res.metric], res.info
    f = res.feature
    lines = [f"# Probe: `{f.name}` ({f.kind})", "", f"{f.description}", "",
             f"- value: `{f.value}`" + (f", rows where `{f.where}`" if f.where else ""),
             f"- {info['rows']:,} rows from {info['levels']:,} levels; {info['folds']}-fold CV "
             f"grouped by level; ridge on standardized inputs, penalty by inner grouped CV",
             f"- headline metric: {m} with 95% level-bootstrap intervals (widened for fold "
             f"correlation, see docs/probes.md); input: `{info['pool']}`, "
             f"max_dim {info['max_dim']}"]
    if res.classes is not None:
        lines.append(f"- classes: {res.classes}")
    lines += [f"- note: {n}" for n in info["notes"]]
    lines += ["", f"| layer | input | {m} | shuffled labels | selectivity | random-init agent |",
              "|---|---|---|---|---|---|"]
    for layer in res.layers:
        best = " **(best)**" if layer == res.best_layer else ""
        lines.append(f"| `{short(layer)}`{best} | {res.views[layer]} | "
                     f"{_fmt(res.score('agent', layer))} | {_fmt(res.score('shuffled', layer))} | "
                     f"{_fmt(res.selectivity(layer))} | "
                     f"{_fmt(res.score('random_agent', layer))} |")
    lines += ["", "| baseline | " + " | ".join(METRIC_NAMES[x] for x in res.metrics) + " |",
              "|---|" + "---|" * len(res.metrics)]
    for probe in ("majority", "pixels"):
        if (probe, "") in res.scores:
            lines.append(f"| {PROBE_NAMES[probe]} | "
                         + " | ".join(_fmt(res.score(probe, "", x)) for x in res.metrics) + " |")
    if "random_agent" in info["rows_per_probe"]:
        n = info["rows_per_probe"]["random_agent"]
        lines.append(f"\nThe random-init agent is probed on {n:,} rows (whole levels).")
    if res.channels:
        lines += ["", f"## Top channels of `{short(res.channel_layer)}` "
                  f"({info['channel_view']})", "",
                  f"| rank | channel | L1 weight (std.) | L1 path entry | single-channel {m} |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['rank']} | {r['channel']} | {r['l1_weight']:+.3f} | {r['l1_entry']} | "
                  f"{r['single_channel']:.3f} |" for r in res.channels[:10]]
    if res.spatial is not None:
        i, j = np.unravel_index(np.nanargmax(res.spatial), res.spatial.shape)
        lines += ["", f"Spatial probe on `{short(res.spatial_layer)}`: best position (row {i}, "
                  f"col {j}) of {res.spatial.shape[0]}x{res.spatial.shape[1]}, out-of-fold R² "
                  f"{np.nanmax(res.spatial):.3f}."]
    path.write_text("\n".join(lines) + "\n")
    return path


def _weights(res, path: Path) -> Path:
    """``weights.npz``: per layer the probe's weights on its view's inputs (dim, targets) and
    the view (JSON in ``meta``), enough to map a probe direction back onto the activations."""
    meta = {"feature": res.feature.name, "kind": res.feature.kind, "classes": res.classes,
            "layers": {layer: {"key": f"w{i}", "shape": list(v.shape), "pool": v.pool,
                               "max_dim": v.max_dim, "grid": v.grid}
                       for i, (layer, (v, _)) in enumerate(res.weights.items())}}
    np.savez(path, meta=np.array(json.dumps(meta)),
             **{f"w{i}": w for i, (_, w) in enumerate(res.weights.values())})
    return path


def _metadata(res, path: Path) -> Path:
    info = {k: v for k, v in res.info.items() if k not in ("dims", "ridge_lambda")}
    info["ridge_lambda"] = {f"{p}/{lay}" if lay else p: v
                            for (p, lay), v in res.info["ridge_lambda"].items()}
    meta = {"feature": {"name": res.feature.name, "kind": res.feature.kind,
                        "value": res.feature.value, "where": res.feature.where},
            "metric": res.metric, "classes": res.classes, "layers": res.layers,
            "best_layer": res.best_layer, "spatial_layer": res.spatial_layer, **info}
    path.write_text(json.dumps(meta, indent=1, default=float) + "\n")
    return path


def _band(ax, x, scores, label, style):
    v = np.array([s.value for s in scores])
    lo, hi = np.array([s.lo for s in scores]), np.array([s.hi for s in scores])
    ax.plot(x, v, label=label, **style)
    ax.fill_between(x, lo, hi, color=style["color"], alpha=0.15, lw=0)



def _score_plot(res, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(7.5, 0.7 * len(res.layers) + 4.5), 4.6))
    x = np.arange(len(res.layers))
    for probe in ("agent", "random_agent", "shuffled"):
        scores = [res.score(probe, layer) for layer in res.layers]
        if all(s is not None for s in scores):
            _band(ax, x, scores, PROBE_NAMES[probe], STYLE[probe])
    if res.score("pixels") is not None:
        s = res.score("pixels")
        ax.axhline(s.value, color="C2", lw=1.5, label=PROBE_NAMES["pixels"])
        ax.axhspan(s.lo, s.hi, color="C2", alpha=0.12, lw=0)
    s = res.score("majority")
    ax.axhline(s.value, color="k", ls="--", lw=1, label=f"{PROBE_NAMES['majority']} (chance)")
    b = res.layers.index(res.best_layer)
    best = res.score("agent", res.best_layer)
    ax.plot(x[b], best.value, "*", color="C3", ms=14, zorder=5,
            label="best layer" if best.lo > s.value else "best layer (CI covers chance)")
    ax.set_xticks(x, [short(n) for n in res.layers], rotation=35, ha="right")
    ax.set_ylabel(f"out-of-fold {METRIC_NAMES[res.metric]}")
    ax.set_title(f"{res.feature.name}: linear probe by layer\n{res.info['rows']:,} rows, "
                 f"{res.info['levels']:,} levels, {res.info['folds']}-fold CV grouped by level; "
                 "bands: 95% intervals" + (f"\nfew levels (< {FEW_LEVELS}): scores are noisy and "
                 "can fall below chance" if res.info["levels"] < FEW_LEVELS else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return save_figure(fig, path)


def _channel_plot(res, path: Path, k: int) -> Path:
    plt = pyplot()
    rows = res.channels[:k]
    labels = [f"ch {r['channel']}" for r in rows]
    y = np.arange(len(rows))[::-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 0.32 * len(rows) + 1.8), sharey=True)
    w = [r["l1_weight"] for r in rows]
    a1.barh(y, w, color=["C3" if v > 0 else "C0" for v in w])
    a1.axvline(0, color="k", lw=0.8)
    a1.set_yticks(y, labels)
    a1.xaxis.set_major_locator(MaxNLocator(5))
    a1.set_xlabel("L1 probe weight (standardized input)")
    a1.set_title("sparse probe (CV-chosen penalty)", fontsize=9)
    if not any(w):
        a1.text(0.5, 0.5, "every weight is 0 at the\nCV-chosen penalty: no channel\n"
                "helps out of fold", transform=a1.transAxes, ha="center", va="center",
                fontsize=9, color="0.3")
    a2.barh(y, [r["single_channel"] for r in rows], color="0.55")
    a2.axvline(res.score("majority").value, color="k", ls="--", lw=1, label="chance")
    a2.set_xlabel(f"single-channel probe {METRIC_NAMES[res.metric]}")
    a2.set_title("probe on this channel alone", fontsize=9)
    a2.legend(fontsize=8, loc="lower right")
    lo = min([r["single_channel"] for r in rows] + [res.score("majority").value])
    a2.set_xlim(lo - 0.05 * abs(lo) - 0.02, None)
    fig.suptitle(f"{res.feature.name}: top {len(rows)} channels of {short(res.channel_layer)} "
                 f"by L1 path entry ({res.info['channel_view']})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _spatial_plot(res, path: Path) -> Path:
    plt = pyplot()
    grid = res.spatial
    panels = 2 if res.mean_obs is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels + 0.6, 4.4), squeeze=False)
    ax = axes[0, 0]
    vmax = max(float(np.nanmax(grid)), 1e-3)
    im = ax.imshow(grid, cmap="magma", vmin=0, vmax=vmax, extent=(0, 64, 64, 0))
    i, j = np.unravel_index(np.nanargmax(grid), grid.shape)
    cell = 64 / grid.shape[0]
    ax.plot((j + 0.5) * cell, (i + 0.5) * cell, "c*", ms=12)
    ax.set_title(f"out-of-fold R² per position\n(best {np.nanmax(grid):.2f} at row {i}, col {j})",
                 fontsize=9)
    ax.set_xlabel("x (frame pixels)")
    ax.set_ylabel("y (frame pixels)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if panels == 2:
        ax = axes[0, 1]
        ax.imshow(res.mean_obs.astype(np.uint8), extent=(0, 64, 64, 0))
        shown = np.ma.masked_less(grid, 0.2 * vmax)
        ax.imshow(shown, cmap="magma", alpha=0.7, vmin=0, vmax=vmax, extent=(0, 64, 64, 0))
        ax.set_title("over the mean observation (R² ≥ 20% of the best)", fontsize=9)
        ax.set_xlabel("x (frame pixels)")
    fig.suptitle(f"{res.feature.name}: where {short(res.spatial_layer)} "
                 f"({grid.shape[0]}x{grid.shape[1]}) holds it", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _umap_plot(res, path: Path) -> Path:
    plt = pyplot()
    u = res.umap
    emb, y = u["embedding"], u["y"]
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    if res.classes is None:
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=y, s=6, cmap="viridis", alpha=0.8)
        fig.colorbar(sc, ax=ax, label=res.feature.name)
    else:
        for c, value in enumerate(res.classes):
            m = y == c
            ax.scatter(emb[m, 0], emb[m, 1], s=6, alpha=0.7, color=f"C{c % 10}",
                       label=f"{res.feature.name} = {value:g} (n={m.sum()})")
        ax.legend(fontsize=8, markerscale=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"UMAP of {short(u['layer'])} probe inputs ({len(y):,} random rows), "
                 f"coloured by {res.feature.name}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
