"""Outlier seeds in a population of agents: each agent against the rest, with FDR control.

The rule (Viechtbauer & Cheung 2010, the studentized deleted residual of a random-effects
meta-analysis, with a Student-t reference and Benjamini-Hochberg):

1. Every agent's metric is an estimate ``y_i`` with a sampling variance ``v_i``: a rate
   ``k / n`` on the Freeman-Tukey double-arcsine scale (``v = 1 / (n + 0.5)``, whatever the
   rate), a mean with ``v = se^2``.
2. Leave agent ``i`` out; fit the rest with a random-effects model (DerSimonian-Laird
   between-seed variance ``tau^2``, inverse-variance mean ``mu``).
3. ``t_i = (y_i - mu) / sqrt(v_i + tau^2 + Var(mu))``: the agent's distance from the rest in
   units of what one more seed would scatter (its own episodes' noise plus the seeds' spread).
   Two-sided p from Student's t with ``m - 2`` degrees of freedom (``m`` agents; the rest's
   ``m - 1`` estimates fit two parameters); with 8 agents whose seeds differ, the normal
   reference flags some agent in ~24% of populations without an outlier (docs/sweeps.md).
4. Benjamini-Hochberg over every test of a report (agents x metrics x settings) at ``q``.

Null hypothesis of one test: "agent i is one more seed of the same population as the others".
Testing each agent against the *pooled* rest with a binomial test instead asks whether its
rate equals the rest's average; when seeds really differ (Ramanauskas & Simsek's point) that
flags most of a population with many episodes per agent, so it does not find outliers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_AGENTS = 4  # the rest must give a between-seed variance and still leave a t with df >= 2


def freeman_tukey(k, n) -> tuple[np.ndarray, np.ndarray]:
    """Double-arcsine transform of rates ``k / n`` and its sampling variance ``1 / (n + 0.5)``."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    y = np.arcsin(np.sqrt(k / (n + 1))) + np.arcsin(np.sqrt((k + 1) / (n + 1)))
    return y, 1 / (n + 0.5)


def random_effects(y, v) -> tuple[float, float, float]:
    """DerSimonian-Laird fit of estimates ``y`` with variances ``v``: (mu, tau^2, Var(mu))."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    tau2 = max(0.0, (q - (len(y) - 1)) / (w.sum() - (w ** 2).sum() / w.sum()))
    ws = 1 / (v + tau2)
    return float((ws * y).sum() / ws.sum()), tau2, float(1 / ws.sum())


def leave_one_out(y, v) -> tuple[np.ndarray, np.ndarray]:
    """Studentized deleted residual ``t`` of every estimate and its two-sided p (Student t,
    ``len(y) - 2`` df). Needs :data:`MIN_AGENTS` estimates; variances must be > 0."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    m = len(y)
    if m < MIN_AGENTS:
        raise ValueError(f"need at least {MIN_AGENTS} agents, got {m}")
    t = np.empty(m)
    for i in range(m):
        rest = np.arange(m) != i
        mu, tau2, var_mu = random_effects(y[rest], v[rest])
        t[i] = (y[i] - mu) / math.sqrt(v[i] + tau2 + var_mu)
    return t, 2 * stats.t.sf(np.abs(t), m - 2)


@dataclass(frozen=True)
class OutlierTest:
    """One agent's test on one metric of one setting."""

    agent: str
    setting: str
    metric: str
    value: float  # on the metric's own scale (a rate or a mean)
    rest_median: float  # median of the other agents' values
    t: float
    p: float
    q: float = math.nan  # BH-adjusted over every test of the family

    def flagged(self, alpha: float) -> bool:
        return self.q <= alpha


def metric_tests(agents: list[str], setting: str, metric: str, values, *, counts=None,
                se=None) -> list[OutlierTest]:
    """Each agent against the rest on one metric: a rate (``counts`` = (k, n) per agent) or a
    mean (``se`` per agent). Agents without a value (NaN, n = 0, se not > 0) are left out;
    returns [] when fewer than :data:`MIN_AGENTS` remain."""
    values = np.asarray(values, float)
    if counts is not None:
        k, n = (np.asarray(c, float) for c in counts)
        ok = n > 0
        y, v = freeman_tukey(k, n)
    else:
        se = np.asarray(se, float)
        ok = ~np.isnan(values) & (se > 0)
        y, v = values, se ** 2
    idx = np.flatnonzero(ok)
    if len(idx) < MIN_AGENTS:
        return []
    t, p = leave_one_out(y[idx], v[idx])
    return [OutlierTest(agents[i], setting, metric, float(values[i]),
                 float(np.median(np.delete(values[idx], j))), float(t[j]), float(p[j]))
            for j, i in enumerate(idx)]


def adjust(tests: list[OutlierTest]) -> list[OutlierTest]:
    """The tests with Benjamini-Hochberg q-values over all of them (one family): flagging
    those with ``q <= alpha`` controls the false-discovery rate at alpha."""
    q = stats.false_discovery_control([x.p for x in tests], method="bh") if tests else []
    return [OutlierTest(**{**x.__dict__, "q": float(qi)}) for x, qi in zip(tests, q)]
