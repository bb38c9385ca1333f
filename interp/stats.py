"""95% intervals shared by every report: Wilson for rates, percentile bootstrap for means."""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP = 2000  # resamples of the percentile bootstrap
Z95 = 1.959963984540054


RESAMPLE_CELLS = 1 << 24  # indices drawn at once by resampled_means (128 MiB)


def resampled_means(values: np.ndarray, n: int, seed: int = 0,
                    resamples: int = BOOTSTRAP) -> np.ndarray:
    """Means of ``resamples`` draws (with replacement) of ``n`` of ``values``; memory stays
    bounded however large ``n`` is (the draws come in blocks)."""
    rng = np.random.default_rng(seed)
    if resamples * n <= RESAMPLE_CELLS:
        return values[rng.integers(len(values), size=(resamples, n))].mean(1)
    rows = max(1, RESAMPLE_CELLS // n)
    return np.concatenate([values[rng.integers(len(values), size=(min(rows, resamples - i), n))]
                           .mean(1) for i in range(0, resamples, rows)])


def bootstrap_mean(values, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval (2000 resamples) of ``values``, NaNs dropped;
    NaNs for no values."""
    v = np.asarray(values, float).ravel()
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan, math.nan, math.nan
    means = resampled_means(v, len(v), seed)
    return float(v.mean()), *map(float, np.percentile(means, [2.5, 97.5]))


def wilson(successes: int, n: int) -> tuple[float, float, float]:
    """Rate ``successes / n`` and its 95% Wilson score interval; NaNs when ``n`` is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return math.nan, math.nan, math.nan
    p, z2 = successes / n, Z95 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))  # rounding


def rate(flags) -> tuple[float, float, float]:
    """Wilson rate of a boolean array (NaNs dropped): the fraction of True with its interval."""
    f = np.asarray(flags, float).ravel()
    f = f[~np.isnan(f)]
    return wilson(int(f.sum()), len(f))
