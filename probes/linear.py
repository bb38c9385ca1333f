"""Linear probes fitted from per-fold sufficient statistics, in one streaming pass.

For each cross-validation fold ``k`` :class:`FoldStats` accumulates ``n, sum x, sum x x^T,
sum x y^T, sum y, sum y^2`` (float64, on data shifted by the first batch's mean to avoid
cancellation). Any union of folds is then a training set, so grouped nested CV needs no
second pass: for each outer fold ``k`` the ridge strength is chosen by inner CV over the other
folds ``j`` (train on all folds but ``{k, j}``, validate on ``j``, squared error from the
statistics), then the probe is refit on all folds but ``k``. Features are standardized with
the training set's mean and standard deviation; the penalty ``lam`` is per sample on
standardized features, ``(R + lam I) w = r`` with ``R`` the training correlation matrix.
Classification is ridge regression on class indicators (scikit-learn's ``RidgeClassifier``).

Statistics may carry a leading batch axis ``P`` of independent probes on the same rows (one
per feature-map position for the spatial probe); everything below is vectorized over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAMBDAS = np.logspace(-4, 3, 8)


class FoldStats:
    """Sufficient statistics of ``X`` (rows, P, D) against targets ``Y`` (rows, T), per fold."""

    def __init__(self, folds: int, dim: int, targets: int, positions: int = 1):
        k, p, d, t = folds, positions, dim, targets
        self.n, self.sy, self.syy = np.zeros(k), np.zeros((k, t)), np.zeros((k, t))
        self.sx, self.sxx = np.zeros((k, p, d)), np.zeros((k, p, d, d))
        self.sxy = np.zeros((k, p, d, t))
        self.shift: np.ndarray | None = None

    @property
    def folds(self) -> int:
        return len(self.n)

    def add(self, x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> None:
        """Accumulate rows ``x`` (B, D) or (B, P, D), targets ``y`` (B, T), fold ids (B,)."""
        x = np.asarray(x, dtype=np.float32).reshape(len(x), *self.sx.shape[1:])
        if self.shift is None:
            self.shift = x.mean(0)
        x = np.ascontiguousarray((x - self.shift).transpose(1, 0, 2))  # (P, B, D): BLAS-able
        y = y.astype(np.float64)
        for k in np.unique(fold):
            sel = fold == k
            xk, yk = x[:, sel], y[sel]
            self.n[k] += sel.sum()
            self.sy[k] += yk.sum(0)
            self.syy[k] += (yk ** 2).sum(0)
            self.sx[k] += xk.sum(1)
            self.sxx[k] += xk.transpose(0, 2, 1) @ xk
            self.sxy[k] += xk.transpose(0, 2, 1) @ yk.astype(np.float32)

    def subset(self, features=None, targets=None) -> FoldStats:
        """Statistics of some feature columns (e.g. one channel) and/or target columns."""
        f = slice(None) if features is None else np.asarray(features)
        t = slice(None) if targets is None else np.asarray(targets)
        out = FoldStats.__new__(FoldStats)
        out.n, out.sy, out.syy = self.n, self.sy[:, t], self.syy[:, t]
        out.sx, out.sxy = self.sx[..., f], self.sxy[:, :, f][..., t]
        out.sxx = self.sxx[:, :, f][..., f]
        out.shift = None if self.shift is None else self.shift[..., f]
        return out

    def total(self, exclude: tuple[int, ...] = ()) -> tuple[np.ndarray, ...]:
        """``(n, sx, sxx, sxy, sy, syy)`` summed over all folds but ``exclude``."""
        keep = [k for k in range(self.folds) if k not in exclude]
        return tuple(a[keep].sum(0) for a in (self.n, self.sx, self.sxx, self.sxy, self.sy,
                                               self.syy))

    def fold(self, k: int) -> tuple[np.ndarray, ...]:
        return self.n[k], self.sx[k], self.sxx[k], self.sxy[k], self.sy[k], self.syy[k]


def _standardize(n, sx, sxx, sxy, sy):
    """Training mean, sd, correlation matrix R (P, D, D) and standardized cross term r."""
    mu, ybar = sx / n, sy / n
    cov = sxx / n - mu[..., :, None] * mu[..., None, :]
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    sd = np.sqrt(np.clip(var, 0, None))
    ok = sd > 1e-6 * max(float(sd.max(initial=0)), 1e-12)
    sd = np.where(ok, sd, 1.0)
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    corr = np.where(ok[..., :, None] & ok[..., None, :], corr, 0)
    r = (sxy / n - mu[..., :, None] * ybar) / sd[..., :, None]
    return mu, ybar, sd, corr, np.where(ok[..., :, None], r, 0)


def _ridge_path(train, lams):
    """Weights (L, P, D, T) and intercepts (L, P, T) on shifted inputs, one per ``lam``."""
    n, sx, sxx, sxy, sy, _ = train
    mu, ybar, sd, corr, r = _standardize(n, sx, sxx, sxy, sy)
    evals, vecs = np.linalg.eigh(corr)  # (P, D), (P, D, D)
    proj = vecs.transpose(0, 2, 1) @ r  # (P, D, T)
    lams = np.asarray(lams)[:, None, None, None]
    w = vecs @ (proj / (np.clip(evals, 0, None)[..., None] + lams)) / sd[..., None]
    b = ybar - np.einsum("pd,lpdt->lpt", mu, w)
    return w, b


def sse(w: np.ndarray, b: np.ndarray, val) -> np.ndarray:
    """Squared error (..., P, T) of ``x w + b`` on a fold from its statistics."""
    n, sx, sxx, sxy, sy, syy = val
    quad = (w * (sxx @ w)).sum(-2)
    return (syy - 2 * (w * sxy).sum(-2) - 2 * b * sy + quad
            + 2 * b * (sx[..., None] * w).sum(-2) + n * b ** 2)


@dataclass
class RidgeFit:
    """Out-of-fold ridge probes: fold ``k``'s model was fitted without fold ``k``."""

    w: np.ndarray       # (K, P, D, T) on inputs minus ``shift``
    b: np.ndarray       # (K, P, T)
    lam: np.ndarray     # (K, P, tasks): chosen penalty per outer fold and task
    shift: np.ndarray   # (P, D)
    oof_sse: np.ndarray  # (P, T): held-out squared error summed over folds

    def predict(self, x: np.ndarray, fold: np.ndarray, position: int = 0) -> np.ndarray:
        """Out-of-fold predictions (B, T) for rows ``x`` (B, D) in folds ``fold``."""
        xs = x.astype(np.float32) - self.shift[position]
        out = np.empty((len(x), self.w.shape[-1]))
        for k in np.unique(fold):
            sel = fold == k
            out[sel] = xs[sel] @ self.w[k, position] + self.b[k, position]
        return out


def fit_ridge(stats: FoldStats, tasks: list[np.ndarray], lams=LAMBDAS) -> RidgeFit:
    """Grouped nested-CV ridge from per-fold statistics.

    ``tasks`` partitions the target columns; each task gets its own penalty (e.g. the real
    labels and the shuffled-label control), chosen by the summed inner-fold squared error.
    """
    kf = stats.folds
    cache: dict[frozenset, tuple[np.ndarray, np.ndarray]] = {}

    def path(exclude):
        key = frozenset(exclude)
        if key not in cache:
            cache[key] = _ridge_path(stats.total(tuple(key)), lams)
        return cache[key]

    k_, p_, d_, t_ = stats.sxy.shape
    w = np.zeros((kf, p_, d_, t_))
    b = np.zeros((kf, p_, t_))
    lam = np.zeros((kf, p_, len(tasks)))
    oof = np.zeros((p_, t_))
    for k in range(kf):
        inner = sum(sse(*path((k, j)), stats.fold(j)) for j in range(kf) if j != k)  # (L,P,T)
        wk, bk = path((k,))
        for i, cols in enumerate(tasks):
            best = inner[..., cols].sum(-1).argmin(0)  # (P,)
            pos = np.arange(p_)
            w[k][..., cols] = wk[best, pos][..., cols]
            b[k][..., cols] = bk[best, pos][..., cols]
            lam[k, :, i] = np.asarray(lams)[best]
        oof += sse(w[k], b[k], stats.fold(k))
    return RidgeFit(w, b, lam, stats.shift if stats.shift is not None else np.zeros((p_, d_)),
                    oof)


def oof_r2(fit: RidgeFit, stats: FoldStats) -> np.ndarray:
    """Out-of-fold R^2 per position (P,) from the statistics, target columns pooled:
    1 - held-out SSE / total sum of squares around the overall mean."""
    n, sy, syy = stats.n.sum(), stats.sy.sum(0), stats.syy.sum(0)
    sst = (syy - sy ** 2 / n).sum()
    return 1 - fit.oof_sse.sum(-1) / sst if sst > 0 else np.full(len(fit.oof_sse), np.nan)


def _lasso(corr: np.ndarray, r: np.ndarray, lams: np.ndarray, iters: int = 2000,
           tol: float = 1e-6) -> np.ndarray:
    """min_w 1/2 w'Rw - w'r + lam |w|_1 for each lam (warm-started FISTA): (L, D, T)."""
    step = 1 / max(float(np.linalg.eigvalsh(corr)[-1]), 1e-12)
    w, out = np.zeros_like(r), []
    for lam in lams:
        z, t = w.copy(), 1.0
        for _ in range(iters):
            g = z - step * (corr @ z - r)
            new = np.sign(g) * np.maximum(np.abs(g) - step * lam, 0)
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            z = new + (t - 1) / t_next * (new - w)
            done = np.abs(new - w).max(initial=0) < tol
            w, t = new, t_next
            if done:
                break
        out.append(w)
    return np.array(out)


def lasso_path(stats: FoldStats, n_lams: int = 30, ratio: float = 1e-3):
    """L1 path on standardized features of all rows (P must be 1).

    Returns ``(lams, weights (L, D, T) standardized, entry (D,), cv_sse (L,))``: ``entry`` is
    the path index where each feature first gets a non-zero weight (``L`` if never), and
    ``cv_sse`` the grouped-CV held-out squared error per penalty (summed over targets).
    """
    def fit(train):
        n, sx, sxx, sxy, sy, _ = train
        mu, ybar, sd, corr, r = _standardize(n, sx, sxx, sxy, sy)
        wz = _lasso(corr[0], r[0], lams)
        w = wz / sd[0][:, None]
        return wz, w, ybar - np.einsum("d,ldt->lt", mu[0], w)

    n, sx, sxx, sxy, sy, _ = stats.total()
    lam_max = max(float(np.abs(_standardize(n, sx, sxx, sxy, sy)[-1]).max()), 1e-12)
    lams = lam_max * np.logspace(0, np.log10(ratio), n_lams)
    cv = np.zeros(n_lams)
    for k in range(stats.folds):
        _, w, b = fit(stats.total((k,)))
        cv += sse(w[:, None], b[:, None], stats.fold(k)).sum((-1, -2))
    wz, _, _ = fit(stats.total())
    nonzero = np.abs(wz).max(-1) > 0  # (L, D)
    entry = np.where(nonzero.any(0), nonzero.argmax(0), n_lams)
    return lams, wz, entry, cv
