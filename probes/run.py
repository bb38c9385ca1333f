"""``run_probe``: where in the network is a feature linearly readable, and by which channels?

One streaming pass over the recording feeds every probe (each layer, the raw-pixel and
random-agent controls, the majority baseline) into per-fold sufficient statistics
(:mod:`probes.linear`) and writes each probe's reduced inputs to a temporary ``.npy`` memmap;
fitting is then linear algebra, and out-of-fold predictions are read back from the memmaps.
Memory is bounded by the batch size and ``folds * max_dim**2`` per probe, not by the number of
rows. A second pass over the best convolutional layer fits the spatial (per-position) probe.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probes.data import as_recording, select_layers
from probes.evaluate import FEW_LEVELS, Evaluator, Score, group_folds
from probes.features import Feature, ProbeError, get_feature
from probes.linear import FoldStats, fit_ridge, lasso_path, oof_r2
from probes.views import PIXEL_GRID, POOLS, View, pixels

CONTROLS = ("shuffled", "pixels", "random_agent")
MAX_CLASSES = 32
CHANNEL_UNITS = 1024  # vector layers up to this wide are ranked unit by unit
MAX_BOOT = 10_000  # bootstrap resamples: counts of (n_boot, levels) are held in memory


@dataclass
class ProbeResults:
    """Everything ``interp probe`` reports; :meth:`save` writes the tables and plots.

    ``scores[(probe, layer)]`` maps metric name to :class:`~probes.evaluate.Score`; probes are
    the keys of ``probes.report.PROBE_NAMES`` and ``layer`` is ``""`` for the layer-free
    baselines.
    """

    feature: Feature
    metric: str                 # headline metric (auroc, accuracy or r2)
    metrics: tuple[str, ...]
    classes: list | None        # classification: feature value of each class index
    layers: list[str]
    views: dict[str, str]       # layer -> what the probe read
    scores: dict[tuple[str, str], dict[str, Score]]
    best_layer: str
    channel_layer: str | None = None
    channels: list[dict] = field(default_factory=list)
    spatial_layer: str | None = None
    spatial: np.ndarray | None = None  # (H, W) out-of-fold R^2 per position
    mean_obs: np.ndarray | None = None
    umap: dict | None = None           # layer, embedding (n, 2), y (n,)
    info: dict = field(default_factory=dict)
    # layer -> (view, weights (dim, targets)): the agent probe's ridge weights on the view's
    # inputs, averaged over the CV folds (for steering along the probe, interp.causal)
    weights: dict[str, tuple[View, np.ndarray]] = field(default_factory=dict)

    def score(self, probe: str, layer: str = "", metric: str | None = None) -> Score | None:
        return self.scores.get((probe, layer), {}).get(metric or self.metric)

    def selectivity(self, layer: str) -> Score | None:
        """Headline score minus the shuffled-label score, paired bootstrap interval."""
        a, s = self.score("agent", layer), self.score("shuffled", layer)
        return a - s if a is not None and s is not None else None

    def table(self) -> list[dict]:
        """One row per (probe, layer, metric)."""
        rows = []
        for (probe, layer), by_metric in self.scores.items():
            for metric, s in by_metric.items():
                rows.append({"probe": probe, "layer": layer, "metric": metric,
                             "value": s.value, "ci_low": s.lo, "ci_high": s.hi,
                             "rows": self.info["rows_per_probe"].get(probe, self.info["rows"]),
                             "dim": self.info["dims"].get((probe, layer), 0)})
        for layer in self.layers:
            s = self.selectivity(layer)
            if s is not None:
                rows.append({"probe": "selectivity", "layer": layer, "metric": self.metric,
                             "value": s.value, "ci_low": s.lo, "ci_high": s.hi,
                             "rows": self.info["rows"], "dim": self.info["dims"][("agent", layer)]})
        return rows

    def save(self, out_dir: str | Path, *, top_channels: int = 16) -> list[Path]:
        """Write results.csv/.md, score_by_layer.png, channels.csv/.png, spatial.png, umap.png."""
        from probes.report import write_report  # matplotlib only when a report is written

        return write_report(self, Path(out_dir), top_channels=top_channels)


class _Probe:
    """One probe's input stream: its statistics and its rows stored for prediction."""

    def __init__(self, name: str, layer: str, view: Callable | None, dim: int, rows: np.ndarray,
                 folds: int, targets: int, store_dir: Path):
        self.name, self.layer, self.view, self.dim = name, layer, view, dim
        self.rows = rows  # indices into the probed rows
        self.stats = FoldStats(folds, dim, targets)
        self.store = None if dim == 0 else np.lib.format.open_memmap(
            store_dir / f"{name}-{layer or 'none'}-{dim}.npy", mode="w+", dtype=np.float32,
            shape=(len(rows), dim))
        self.filled = 0

    def add(self, x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> None:
        self.stats.add(x, y, fold)
        if self.store is not None:
            self.store[self.filled:self.filled + len(x)] = x
        self.filled += len(x)

    def predictions(self, fit, fold: np.ndarray, cols: list[int] | slice = slice(None),
                    chunk: int = 8192) -> np.ndarray:
        """Out-of-fold predictions (rows, T) from the stored inputs (columns ``cols``)."""
        if self.store is None:
            return fit.predict(np.zeros((len(self.rows), 0), np.float32), fold)
        return np.concatenate([fit.predict(self.store[i:i + chunk, cols], fold[i:i + chunk])
                               for i in range(0, len(self.rows), chunk)])


@dataclass(frozen=True)
class ProbeOptions:
    """Settings of :func:`run_probe` (all keyword arguments of it)."""

    pool: str = "flat"              # probe input: flat | mean | max | meanmax (probes.views)
    max_dim: int = 512              # width cap of a probe input
    folds: int = 5                  # grouped CV folds (>= 3: nested CV)
    controls: tuple[str, ...] = CONTROLS
    random_agent_rows: int = 10_000  # rows (whole levels) re-run through the random agent
    channels: bool = True           # L1 + single-channel ranking of the best layer
    spatial: bool = True            # per-position probe of the best conv layer
    umap: bool = True
    umap_layer: str | None = None   # default: the best layer
    umap_rows: int = 2000
    n_boot: int = 1000              # bootstrap resamples of levels
    batch_size: int = 1024          # rows read at a time
    seed: int = 0                   # folds, shuffled labels, random agent, bootstrap, UMAP
    workdir: str | None = None      # where the temporary probe inputs go (default: $TMPDIR)

    def __post_init__(self) -> None:
        object.__setattr__(self, "controls", tuple(self.controls))
        unknown = set(self.controls) - set(CONTROLS)
        if unknown:
            raise ProbeError(f"unknown control(s) {sorted(unknown)}; choose from {CONTROLS}")
        if self.pool not in POOLS:
            raise ProbeError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.folds < 3:
            raise ProbeError("folds must be >= 3 (nested CV picks the penalty on other folds)")
        if self.max_dim < 1 or self.batch_size < 1 or self.n_boot < 1:
            raise ProbeError("max_dim, batch_size and n_boot must be >= 1")
        if self.n_boot > MAX_BOOT:
            raise ProbeError(f"n_boot {self.n_boot:,} is more resamples than a 95% interval "
                             f"needs and than memory holds; use at most {MAX_BOOT:,}")


@dataclass
class _Targets:
    """The probed rows and everything fitted against them."""

    rows: np.ndarray      # recording row of each probed row
    keep: np.ndarray      # (num_steps,) bool
    y: np.ndarray         # class index or value
    y_shuf: np.ndarray    # the shuffled-label control's targets
    classes: list | None
    groups: np.ndarray    # level seed
    fold: np.ndarray
    columns: np.ndarray   # (rows, 2T): encoded real targets, then shuffled
    tasks: list[np.ndarray]


def _targets(feature: Feature, labels: dict, opts: ProbeOptions) -> _Targets:
    y_raw, keep = feature.compute(labels)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise ProbeError(f"feature {feature.name!r} is defined on no row of this recording "
                         f"(where: {feature.where})")
    y, classes = y_raw[rows], None
    if feature.kind == "regression":
        if np.ptp(y) == 0:
            raise ProbeError(f"feature {feature.name!r} is constant ({y[0]:g}) on the "
                             f"{len(y)} rows it is defined on; nothing to probe")
    else:
        values, y = np.unique(y, return_inverse=True)
        if len(values) < 2:
            raise ProbeError(f"feature {feature.name!r} has a single class ({values[0]:g}) in "
                             f"the {len(y)} rows it is defined on; a probe needs at least two. "
                             "Record an env or agent where it varies")
        if len(values) > MAX_CLASSES:
            raise ProbeError(f"feature {feature.name!r} has {len(values)} classes; use kind: "
                             "regression for a continuous quantity")
        classes = [v.item() for v in values]
    groups = np.asarray(labels["level_seed"])[rows]
    y_shuf = y[np.random.default_rng(opts.seed).permutation(len(y))]
    columns = np.concatenate([_encode(y, classes), _encode(y_shuf, classes)], axis=1)
    t = columns.shape[1] // 2
    return _Targets(rows, keep, y, y_shuf, classes, groups,
                    group_folds(groups, opts.folds, opts.seed), columns,
                    [np.arange(t), np.arange(t, 2 * t)])


def _encode(y: np.ndarray, classes: list | None) -> np.ndarray:
    """Target columns: the value, the class-1 indicator (binary) or one-hot classes."""
    if classes is None:
        return y[:, None].astype(np.float64)
    if len(classes) == 2:
        return (y == 1).astype(np.float64)[:, None]
    return np.eye(len(classes))[y]


def _level_subset(groups: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Rows of randomly chosen whole levels, at least ``limit`` rows (all if fewer)."""
    if limit >= len(groups):
        return np.ones(len(groups), bool)
    uniq, inv, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed + 1).permutation(len(uniq))
    take = order[:np.searchsorted(np.cumsum(sizes[order]), limit) + 1]
    return np.isin(inv, take)


def _random_agent(config: dict, shapes: dict[str, tuple], seed: int) -> Callable:
    """``forward(obs (B, 64, 64, 3), env, step) -> {layer: activations}`` of a freshly
    initialised agent. A recurrent one carries a hidden state per env across calls (rows in
    recording order), zeroed at step 0 of an episode; a feed-forward one ignores env and step."""
    import torch

    from interp.hooks import UnknownLayerError, layer_shapes, run_with_cache
    from interp.models import ImpalaAgent, ModelConfig, preprocess

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ImpalaAgent(ModelConfig.from_dict(config)).eval()
    names, memory = list(shapes), {}

    @torch.inference_mode()
    def forward(obs: np.ndarray, env: np.ndarray | None = None,
                step: np.ndarray | None = None) -> dict[str, np.ndarray]:
        x = preprocess(obs)
        if not model.config.recurrent:
            return {k: v.numpy() for k, v in run_with_cache(model, x, names)[1].items()}
        zero = torch.zeros(model.config.gru_hidden)
        parts = []  # one part per run of rows with increasing env ids: one vectorized step
        for rows in np.split(np.arange(len(x)), np.flatnonzero(np.diff(env) <= 0) + 1):
            hx = torch.stack([zero if step[r] == 0 else memory.get(env[r], zero) for r in rows])
            cache = run_with_cache(model, x[rows], [*names, "gru.gru"], hx=hx)[1]
            memory.update(zip(env[rows].tolist(), cache["gru.gru"]))
            parts.append(cache)
        return {k: torch.cat([c[k] for c in parts]).numpy() for k in names}
    forward.recurrent = model.config.recurrent

    try:
        got = layer_shapes(model, names)
    except UnknownLayerError as e:
        raise ProbeError(f"the random-agent control cannot hook a recorded layer: {e}") from None
    if got != shapes:
        raise ProbeError(f"recorded layer shapes {shapes} do not match the model config "
                         f"{config} ({got}); run without the random_agent control")
    return forward


def run_probe(recording: Any, feature: str | Feature, layers: list[str] | None = None, *,
              features_file: str | Path | None = None,
              log: Callable[[str], None] | None = None, **options: Any) -> ProbeResults:
    """Fit linear probes for ``feature`` (a catalogue name or a :class:`Feature`) on each of
    ``layers`` (names or globs; default: all recorded layers) of ``recording`` (a path, an
    open ``activations.Recording`` or an :class:`ArrayRecording`).

    ``options`` are the fields of :class:`ProbeOptions`. Folds group rows by level seed.
    Controls: ``shuffled`` (same probe, labels permuted across rows), ``pixels`` (raw frames),
    ``random_agent`` (a fresh agent of the recording's architecture); the majority/mean
    baseline is always fitted. ``log`` receives progress lines. See docs/probes.md.
    """
    opts = ProbeOptions(**options)
    feat = feature if isinstance(feature, Feature) else get_feature(feature, features_file)
    rec = as_recording(recording)
    try:
        return _probe(rec, feat, layers, opts, log or (lambda msg: None))
    finally:
        if rec is not recording and hasattr(rec, "close"):
            rec.close()


def _probe(rec, feat: Feature, layers: list[str] | None, opts: ProbeOptions,
           log: Callable[[str], None]) -> ProbeResults:
    t0 = time.perf_counter()
    if feat.games and rec.game and rec.game not in feat.games:
        raise ProbeError(f"feature {feat.name!r} is defined for {', '.join(feat.games)} "
                         f"recordings; this one is {rec.game}")
    layers = select_layers(list(rec.layer_shapes), layers)
    if not layers:
        raise ProbeError("the recording has no activation layers")
    if opts.umap_layer is not None:
        select_layers(layers, [opts.umap_layer])  # must be one of the probed layers
    missing = [k for k in (*feat.labels, "level_seed") if k not in rec.label_names]
    if missing:
        raise ProbeError(f"feature {feat.name!r} needs label(s) {', '.join(missing)}, which the "
                         f"recording lacks; its labels: {', '.join(rec.label_names)}")
    labels = rec.read_labels(sorted({*feat.labels, "level_seed"}))
    tg = _targets(feat, labels, opts)
    log(f"{feat.name}: {len(tg.rows):,} of {rec.num_steps:,} rows, "
        f"{len(np.unique(tg.groups)):,} levels, {opts.folds} folds, {len(layers)} layers")

    notes = []
    levels = len(np.unique(tg.groups))
    if levels < FEW_LEVELS:
        notes.append(f"only {levels} levels: grouped-CV scores are noisy and can fall below "
                     f"chance; record >= {FEW_LEVELS} levels (more episodes) for a reading")
    use_pixels = "pixels" in opts.controls and rec.has_obs
    use_random = "random_agent" in opts.controls and opts.random_agent_rows > 0 and rec.has_obs
    if {"pixels", "random_agent"} & set(opts.controls) and not rec.has_obs:
        notes.append("the recording has no observations: no pixel or random-agent control")
    if use_random and not rec.model_config:
        use_random = False
        notes.append("the recording does not give the agent's model config: no random-agent "
                     "control")
    recurrent = use_random and bool(rec.model_config.get("gru_hidden"))
    if recurrent and not rec.has_steps:
        use_random = False
        notes.append("a recurrent agent's random-agent control needs each row's env and step "
                     "(to carry its memory): none in this recording, no random-agent control")
    ra_mask = ra_rows = None
    if use_random:
        ra_mask = _level_subset(tg.groups, opts.random_agent_rows, opts.seed)
        # the rows the random agent runs on: the chosen rows, or for a recurrent agent every
        # row of the chosen levels (its memory needs whole episodes, in order)
        ra_rows = np.isin(labels["level_seed"], tg.groups[ra_mask]) if recurrent else \
            np.isin(np.arange(rec.num_steps), tg.rows[ra_mask])
    views = {name: View.make(rec.layer_shapes[name], opts.pool, opts.max_dim) for name in layers}

    with tempfile.TemporaryDirectory(prefix="probe-", dir=opts.workdir) as store:
        def probe(name, layer, view, dim, subset=None):
            rows = np.arange(len(tg.rows)) if subset is None else np.flatnonzero(subset)
            return _Probe(name, layer, view, dim, rows, opts.folds, tg.columns.shape[1],
                          Path(store))

        plan = {("majority", ""): ("majority", "", None, 0, None)}
        for name, v in views.items():
            plan[("agent", name)] = ("agent", name, v, v.dim, None)
            ch = View.make(v.shape, "meanmax", max(opts.max_dim, CHANNEL_UNITS))
            if opts.channels and (len(v.shape) == 3 or ch.dim != v.dim):  # else: same inputs
                plan[("channels", name)] = ("channels", name, ch, ch.dim, None)
            if use_random:
                plan[("random_agent", name)] = ("random_agent", name, v, v.dim, ra_mask)
        if use_pixels:
            plan[("pixels", "")] = ("pixels", "", pixels, 3 * PIXEL_GRID ** 2, None)
        _check_memory([p[3] for p in plan.values()], opts.folds, tg.columns.shape[1])
        probes = {key: probe(*p) for key, p in plan.items()}
        forward = _random_agent(rec.model_config, {n: rec.layer_shapes[n] for n in layers},
                                opts.seed) if use_random else None
        mean_obs = _stream(rec, tg, probes, layers, forward, ra_mask, ra_rows, opts, log, t0)
        t_pass = time.perf_counter() - t0

        scores, fits, metrics = _score(probes, tg, ra_mask, opts)
        best = max(layers, key=lambda n: scores[("agent", n)][metrics[0]].value)
        t_fit = time.perf_counter() - t0 - t_pass
        log(f"fitted {len(fits)} probes in {t_fit:.0f} s; best layer {best}")
        results = ProbeResults(
            feature=feat, metric=metrics[0], metrics=metrics, classes=tg.classes,
            layers=layers, views={n: v.describe() for n, v in views.items()}, scores=scores,
            best_layer=best, mean_obs=mean_obs,
            weights={n: (views[n], fits[("agent", n)].w[:, 0][..., tg.tasks[0]].mean(0))
                     for n in layers},
            info={"rows": len(tg.rows), "levels": int(len(np.unique(tg.groups))),
                  **{k: v for k, v in asdict(opts).items() if k != "workdir"},
                  "notes": notes,
                  "rows_per_probe": {"random_agent": int(ra_mask.sum())} if use_random else {},
                  "dims": {**{k: p.dim for k, p in probes.items()},
                           **{("shuffled", n): views[n].dim for n in layers}},
                  "ridge_lambda": {k: float(np.median(f.lam[..., 0])) for k, f in fits.items()},
                  "seconds": {"pass": t_pass, "fit": t_fit}})
        if opts.channels:
            _channels(results, probes, tg, best)
        if opts.spatial:
            _spatial(results, rec, tg, opts.batch_size)
        if opts.umap:
            _umap(results, probes[("agent", opts.umap_layer or best)], tg.y, opts.umap_rows,
                  opts.seed)
        probes.clear()  # release the memmaps before the directory goes
    results.info["seconds"]["total"] = time.perf_counter() - t0
    return results


def _check_memory(dims: list[int], folds: int, targets: int) -> None:
    """Refuse, before the pass, probes whose statistics (``folds * dim**2`` per probe, twice
    over while fitting) would not fit in this machine's memory."""
    import os

    need = 2 * 8 * folds * sum(d * (d + targets + 1) for d in dims)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have // 2:
        raise ProbeError(f"these probes would hold about {need / 2**30:.1f} GiB of statistics "
                         f"({len(dims)} probes of up to {max(dims):,} inputs, {folds} folds); "
                         f"this machine has {have / 2**30:.1f} GiB: lower --max-dim "
                         "(default 512) or probe fewer --layers")


def _stream(rec, tg: _Targets, probes: dict, layers: list[str], forward, ra_mask, ra_rows,
            opts: ProbeOptions, log, t0: float) -> np.ndarray | None:
    """The one pass over the recording; returns the mean observation of the probed rows."""
    obs_sum = np.zeros((64, 64, 3)) if rec.has_obs else None
    last = t0
    for start in range(0, rec.num_steps, opts.batch_size):
        stop = min(start + opts.batch_size, rec.num_steps)
        local = tg.keep[start:stop]
        run = ra_rows[start:stop] if forward is not None else None  # random-agent rows
        if not local.any():
            if run is not None and run.any():  # a recurrent random agent's memory needs them
                forward(np.asarray(rec.read_obs(start, stop))[run],
                        *(v[run] for v in rec.read_steps(start, stop)))
            continue
        i0, i1 = np.searchsorted(tg.rows, [start, stop])
        fb, yb = tg.fold[i0:i1], tg.columns[i0:i1]
        probes[("majority", "")].add(np.zeros((i1 - i0, 0), np.float32), yb, fb)
        for name in layers:
            raw = np.asarray(rec.read(name, start, stop))[local]
            for kind in ("agent", "channels"):
                p = probes.get((kind, name))
                if p is not None:
                    p.add(p.view(raw), yb, fb)
        if obs_sum is not None:
            batch = np.asarray(rec.read_obs(start, stop))
            obs = batch[local]
            obs_sum += obs.sum(0)
            if ("pixels", "") in probes:
                probes[("pixels", "")].add(pixels(obs), yb, fb)
            if run is not None and run.any():
                env, step = rec.read_steps(start, stop) if forward.recurrent else (None, None)
                acts = forward(batch[run], *(None if v is None else v[run] for v in (env, step)))
                m, use = ra_mask[i0:i1], local[run]  # the probed ones among the rows run
                for name in layers if m.any() else ():
                    p = probes[("random_agent", name)]
                    p.add(p.view(acts[name][use]), yb[m], fb[m])
        if time.perf_counter() - last >= 10 or stop == rec.num_steps:
            last = time.perf_counter()
            log(f"read {i1:,}/{len(tg.rows):,} rows ({last - t0:.0f} s)")
    return obs_sum / len(tg.rows) if obs_sum is not None else None


def _score(probes: dict, tg: _Targets, ra_mask, opts: ProbeOptions):
    """Fit every probe from its statistics and score its out-of-fold predictions."""
    k, boot = len(tg.classes or ()), (opts.n_boot, opts.seed)
    ev = Evaluator(tg.y, tg.groups, tg.fold, k, *boot)
    evals = {"shuffled": Evaluator(tg.y_shuf, tg.groups, tg.fold, k, *boot)}
    if ra_mask is not None:
        evals["random_agent"] = Evaluator(tg.y[ra_mask], tg.groups[ra_mask], tg.fold[ra_mask],
                                          k, *boot)
    scores, fits = {}, {}
    for (name, layer), p in probes.items():
        if name == "channels":
            continue
        fit = fits[(name, layer)] = fit_ridge(p.stats, tg.tasks)
        pred = p.predictions(fit, tg.fold[p.rows])
        scores[(name, layer)] = evals.get(name, ev).score(pred[:, tg.tasks[0]])
        if name == "agent" and "shuffled" in opts.controls:
            scores[("shuffled", layer)] = evals["shuffled"].score(pred[:, tg.tasks[1]])
    return scores, fits, ev.metrics


def _channels(results: ProbeResults, probes: dict, tg: _Targets, best: str) -> None:
    """Rank the best layer's channels (mean and max over space per channel; units of a vector
    layer): order of entry on the L1 path, L1 weight at the CV-chosen penalty, and the score of
    a probe on that channel alone."""
    p = probes.get(("channels", best)) or probes[("agent", best)]
    shape = p.view.shape
    n = shape[0] if len(shape) == 3 else p.dim
    if len(shape) == 1 and p.dim < int(np.prod(shape)):
        results.info["notes"].append(f"{best} is randomly projected: no channel ranking")
        return
    t0 = time.perf_counter()
    ev = Evaluator(tg.y, tg.groups, tg.fold, len(tg.classes or ()), n_boot=1)
    real = p.stats.subset(targets=tg.tasks[0])
    lams, wz, entry, cv = lasso_path(real)
    chosen = int(cv.argmin())
    rows = []
    for c in range(n):
        cols = [c, n + c] if len(shape) == 3 else [c]
        fit = fit_ridge(real.subset(cols), [np.arange(len(tg.tasks[0]))])
        single = ev.score(p.predictions(fit, tg.fold[p.rows], cols=cols), intervals=False)
        w = wz[chosen][cols].ravel()
        rows.append({"channel": c, "l1_weight": float(w[np.abs(w).argmax()]),
                     "l1_entry": int(entry[cols].min()),
                     "single_channel": single[results.metric].value})
    rows.sort(key=lambda r: (r["l1_entry"], -abs(r["l1_weight"]), -r["single_channel"]))
    for rank, r in enumerate(rows):
        r["rank"] = rank + 1
    results.channel_layer, results.channels = best, rows
    results.info["l1_lambda"] = float(lams[chosen])
    results.info["channel_view"] = p.view.describe()
    results.info["seconds"]["channels"] = time.perf_counter() - t0


def _spatial(results: ProbeResults, rec, tg: _Targets, batch_size: int) -> None:
    """Per-position probes over the channel vector of the best convolutional layer."""
    conv = [n for n in results.layers if len(rec.layer_shapes[n]) == 3]
    if not conv:
        results.info["notes"].append("no convolutional layer probed: no spatial map")
        return
    t0 = time.perf_counter()
    layer = max(conv, key=lambda n: results.score("agent", n).value)
    c, h, w = rec.layer_shapes[layer]
    targets = tg.columns[:, tg.tasks[0]]
    stats = FoldStats(results.info["folds"], c, targets.shape[1], positions=h * w)
    for start in range(0, rec.num_steps, batch_size):
        stop = min(start + batch_size, rec.num_steps)
        local = tg.keep[start:stop]
        if local.any():
            i0, i1 = np.searchsorted(tg.rows, [start, stop])
            x = np.asarray(rec.read(layer, start, stop), np.float32)[local]
            stats.add(x.reshape(len(x), c, h * w).transpose(0, 2, 1), targets[i0:i1],
                      tg.fold[i0:i1])
    fit = fit_ridge(stats, [np.arange(targets.shape[1])])
    results.spatial_layer, results.spatial = layer, oof_r2(fit, stats).reshape(h, w)
    results.info["seconds"]["spatial"] = time.perf_counter() - t0


def _umap(results: ProbeResults, probe: _Probe, y: np.ndarray, n: int, seed: int) -> None:
    """2-D UMAP of a subsample of one layer's probe inputs, for colouring by the feature."""
    import umap

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(probe.rows), min(n, len(probe.rows)), replace=False))
    x = np.asarray(probe.store[idx], np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)
    emb = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1).fit_transform(x)
    results.umap = {"layer": probe.layer, "embedding": emb, "y": y[probe.rows[idx]]}
    results.info["seconds"]["umap"] = time.perf_counter() - t0
