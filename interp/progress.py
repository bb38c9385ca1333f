"""Progress of long loops: a bar on a terminal, plain lines in a log or a pipe.

    with Progress(256, "eval", unit="episode") as bar:
        bar.update(4)

On a terminal it is a tqdm bar that disappears when done. Anywhere else (a log file, a pipe,
a notebook) it writes a line to stderr when it starts, at the first update after every
``PLAIN_EVERY_S`` seconds, and when it closes:
``eval: 120/256 episodes (47%), 35 s, about 40 s left``.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

PLAIN_EVERY_S = 30.0


class Progress:
    """Counts finished items of ``total``; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, desc: str, unit: str = "episode",
                 enabled: bool = True):
        self.total, self.desc, self.unit = total, desc, unit
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False,
                        disable=None if enabled else True)  # None: a bar only on a terminal
        self.plain = enabled and self.bar.disable
        self.n, self.start = 0, time.monotonic()
        self.last = self.start
        if self.plain:
            self._line()

    def update(self, n: int = 1) -> None:
        self.n += n
        self.bar.update(n)
        if self.plain and time.monotonic() - self.last >= PLAIN_EVERY_S:
            self._line()

    def close(self) -> None:
        self.bar.close()
        if self.plain:
            self._line()
            self.plain = False

    def _line(self) -> None:
        self.last = now = time.monotonic()
        spent = now - self.start
        text = (f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}s "
                f"({100 * self.n / max(self.total, 1):.0f}%), {spent:.0f} s")
        if 0 < self.n < self.total:
            text += f", about {spent * (self.total - self.n) / self.n:.0f} s left"
        print(text, file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
