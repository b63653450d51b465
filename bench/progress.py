"""A plain-text progress bar on stderr (stdlib only: it runs in every bench venv)."""

from __future__ import annotations

import sys
import time

WIDTH = 30


class Bar:
    """``[#########.....]  45%  22,500/50,000  publish delay  3.1s``, redrawn in place."""

    def __init__(self, label: str, total: int, every_s: float = 0.25) -> None:
        self.label = label
        self.total = max(1, total)
        self.every_s = every_s
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._tty = sys.stderr.isatty()
        self._decile = -1

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < self.every_s:
            return
        self._drawn_at = now
        frac = min(1.0, max(0.0, done / self.total))
        filled = int(frac * WIDTH)
        line = (f"  [{'#' * filled}{'.' * (WIDTH - filled)}] {frac:4.0%} "
                f"{done:>9,}/{self.total:,}  {self.label}  {now - self.started:5.1f}s")
        if self._tty:
            sys.stderr.write("\r" + line)
        elif force or int(frac * 10) != self._decile:  # a log file: a line per 10%
            self._decile = int(frac * 10)
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self, note: str = "") -> None:
        self.update(self.total, force=True)
        sys.stderr.write(f"  {note}\n" if note else "\n")
        sys.stderr.flush()


class Waiting:
    """For phases whose progress cannot be counted: elapsed time against a limit."""

    def __init__(self, label: str, limit_s: float) -> None:
        self.bar = Bar(label, int(limit_s * 10), every_s=0.5)

    def tick(self) -> None:
        self.bar.update(int((time.monotonic() - self.bar.started) * 10))

    def done(self, note: str = "") -> None:
        sys.stderr.write("\n" if self.bar._tty else "")
        sys.stderr.write(f"  {self.bar.label}: {note}\n")
        sys.stderr.flush()
