"""Shared pieces of the experiments: CSV / markdown / PNG output and their error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interp.errors import InterpError
from interp.tables import fmt, md_table, write_csv  # noqa: F401  (re-exported)
from interp.plots import pyplot as plt  # noqa: F401  (re-exported for the experiments)
from interp.plots import save_figure as save  # noqa: F401


class ExperimentError(InterpError, ValueError):
    """Bad experiment name, checkpoints or options; the message says what to do instead."""


# -- output -----------------------------------------------------------------------------------
def write_summary(out: Path, title: str, body: str) -> Path:
    path = Path(out) / "summary.md"
    path.write_text(f"# {title}\n\n{body.strip()}\n")
    return path


def errbars(ax, x, stats, **kw) -> None:
    """Points with 95% interval bars; ``stats``: (mean, lo, hi) triples."""
    m, lo, hi = (np.asarray(v, float) for v in zip(*stats)) if len(stats) else ([], [], [])
    ax.errorbar(x, m, yerr=[np.nan_to_num(m - lo), np.nan_to_num(hi - m)], capsize=3, **kw)


def truncation_note(k: int) -> str:
    return (f" {k} episode(s) were cut short by max_steps and count as they stood."
            if k else "")
