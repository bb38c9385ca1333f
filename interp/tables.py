"""Small writers shared by every report: CSV rows, interval strings, markdown tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Sequence


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Rows of dicts (same keys) as CSV; floats with 6 significant digits."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    return Path(path)


def fmt(m: float, lo: float, hi: float, pct: bool = False) -> str:
    """``0.42 [0.31, 0.55]`` (or ``42% [31, 55]``); ``n/a`` for NaN."""
    if math.isnan(m):
        return "n/a"
    if pct:
        return f"{100 * m:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"
    return f"{m:.3g} [{lo:.3g}, {hi:.3g}]"


def md_table(rows: Iterable[Sequence], head: Sequence[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
