"""Grouped folds, probe scores and 95% intervals by bootstrapping over held-out levels.

Every row is predicted by the probe of the fold that held it out, so the pooled out-of-fold
predictions cover all rows once. Intervals are percentile intervals over ``n_boot`` resamples
of whole groups (levels) with replacement; the fitted probes stay fixed, so an interval says
how much the score depends on which levels were evaluated, not on refitting. All probes of one
run share the resamples, so differences (selectivity) get paired intervals.

R^2 and accuracy pool the out-of-fold predictions. AUROC is computed within each test fold and
averaged over folds: fold probes differ in intercept, and ranking rows across folds would bias a
pooled AUROC below 0.5 under the null.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from probes.features import ProbeError

FEW_LEVELS = 30  # below this, grouped-CV scores swing widely (seen: AUROC 0.3 on 8 levels)

_CHUNK = 256  # bootstrap replicates per vectorized block
_BINS = 1024
_RANGE = {"auroc": (0, 1), "accuracy": (0, 1), "r2": (-np.inf, 1)}


def group_folds(groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold id (0..k-1) per row; every group (level seed) lies in exactly one fold.

    Groups are shuffled, then placed largest first into the fold with fewest rows so far
    (scikit-learn's GroupKFold balancing, with a seeded order).
    """
    uniq, inv, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < k:
        raise ProbeError(f"{k}-fold grouped CV needs at least {k} distinct levels; the rows used "
                         f"span {len(uniq)}. Record more episodes or pass fewer folds")
    order = np.random.default_rng(seed).permutation(len(uniq))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of, load = np.empty(len(uniq), dtype=np.int64), np.zeros(k)
    for g in order:
        fold_of[g] = load.argmin()
        load[fold_of[g]] += sizes[g]
    return fold_of[inv]


@dataclass(frozen=True)
class Score:
    """A score with its 95% bootstrap interval; ``boot`` holds the replicate values."""

    value: float
    lo: float
    hi: float
    boot: np.ndarray

    def __sub__(self, other: Score) -> Score:
        """Paired difference (same resamples)."""
        d = self.boot - other.boot
        lo, hi = np.nanpercentile(d, [2.5, 97.5]) if np.isfinite(d).any() else (np.nan, np.nan)
        return Score(self.value - other.value, float(lo), float(hi), d)


def metrics(n_classes: int) -> tuple[str, ...]:
    """Metric names (``n_classes`` 0: regression); the first is the headline score."""
    if n_classes == 0:
        return ("r2",)
    return ("auroc", "accuracy") if n_classes == 2 else ("accuracy",)


class Evaluator:
    """Scores out-of-fold predictions of one target on fixed rows, with group bootstrap.

    ``y``: class indices (``n_classes`` > 1) or values (``n_classes`` 0, regression)."""

    def __init__(self, y: np.ndarray, groups: np.ndarray, fold: np.ndarray, n_classes: int,
                 n_boot: int = 1000, seed: int = 0):
        self.y, self.fold = y, fold
        _, first, self.ginv = np.unique(groups, return_index=True, return_inverse=True)
        self.group_fold = fold[first]
        k = max(len(np.unique(fold)), 2)
        self.inflation = np.sqrt(1 + k / (k - 1))  # Nadeau & Bengio (2003), see module doc
        n_groups = len(first)
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
        self.counts = np.stack([np.bincount(d, minlength=n_groups) for d in draws]).astype(float)
        self.metrics = metrics(n_classes)

    def score(self, pred: np.ndarray, intervals: bool = True) -> dict[str, Score]:
        """``pred`` (rows, T): regression value (T=1), P(class 1) (T=1) or one column per class.
        Without ``intervals`` the bounds are NaN and no resampling is done."""
        out = {}
        for m in self.metrics:
            value = float(self._metric(m, pred, None)[0])
            if not intervals:
                out[m] = Score(value, np.nan, np.nan, np.empty(0))
                continue
            boot = np.concatenate([self._metric(m, pred, self.counts[i:i + _CHUNK])
                                   for i in range(0, len(self.counts), _CHUNK)])
            boot = np.clip(value + self.inflation * (boot - value), *_RANGE[m])
            lo, hi = np.nanpercentile(boot, [2.5, 97.5]) if np.isfinite(boot).any() else (
                np.nan, np.nan)
            out[m] = Score(value, float(lo), float(hi), boot)
        return out

    def _group_sums(self, v: np.ndarray) -> np.ndarray:
        return np.bincount(self.ginv, weights=v, minlength=self.counts.shape[1])

    def _metric(self, name: str, pred: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
        """Metric per resample; ``counts`` (R, groups) are group multiplicities (None: all 1)."""
        y = self.y
        if counts is None and name != "auroc":
            counts = np.ones((1, self.counts.shape[1]))
        if name == "r2":
            p = pred[:, 0]
            n, sy, syy, sse = (counts @ self._group_sums(v)
                               for v in (np.ones_like(y), y, y * y, (y - p) ** 2))
            with np.errstate(invalid="ignore", divide="ignore"):
                return 1 - sse / (syy - sy ** 2 / n)
        if name == "accuracy":
            cls = (pred[:, 0] > 0.5).astype(int) if pred.shape[1] == 1 else pred.argmax(1)
            n, hit = (counts @ self._group_sums(v) for v in (np.ones_like(y), cls == y))
            return hit / n
        # Exact for the point estimate; resamples use per-level histograms over at most
        # _BINS score quantiles (ties within a bin count half: error < 1 / (2 * _BINS)).
        score, aucs = pred[:, 0], []
        for k in np.unique(self.fold):
            rows, groups = self.fold == k, self.group_fold == k
            if counts is None:
                _, b = np.unique(score[rows], return_inverse=True)
                aucs.append(_auroc(*(np.bincount(b, weights=y[rows] == c)[None] for c in (1, 0))))
                continue
            edges = np.unique(np.quantile(score[rows], np.linspace(0, 1, _BINS + 1)[1:-1]))
            b = np.searchsorted(edges, score[rows], side="right")
            g = np.searchsorted(np.flatnonzero(groups), self.ginv[rows])  # group index in fold
            nb, ng = len(edges) + 1, groups.sum()
            hist = [np.bincount(g * nb + b, weights=y[rows] == c, minlength=ng * nb)
                    .reshape(ng, nb) for c in (1, 0)]
            aucs.append(_auroc(counts[:, groups] @ hist[0], counts[:, groups] @ hist[1]))
        with warnings.catch_warnings():  # a fold with one class has no AUROC
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(aucs, axis=0)


def _auroc(hp: np.ndarray, hn: np.ndarray) -> np.ndarray:
    """AUROC from positive / negative weight per ascending score bin (R, B); ties count half."""
    below = np.cumsum(hn, 1) - hn
    with np.errstate(invalid="ignore", divide="ignore"):
        return (hp * (below + 0.5 * hn)).sum(1) / (hp.sum(1) * hn.sum(1))
