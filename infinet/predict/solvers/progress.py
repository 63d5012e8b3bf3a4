"""Progress of long solves: a tqdm bar with an ETA when tqdm is installed, else plain lines.

``progress=False`` is silent. Without tqdm (the optional ``infinet[progress]`` extra)
a line with the count, the elapsed time and the ETA goes to stderr at most every 5 s.

Example:
    >>> with Progress(3, "demo", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.update()
    >>> bar.count
    3
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any


class Progress:
    """A counter shown as a tqdm bar or as plain lines.

    Args:
        total: expected number of steps (``None`` if unknown).
        desc: what is counted.
        enabled: show it at all.
        interval: seconds between plain lines.
    """

    def __init__(self, total: int | None, desc: str, enabled: bool, interval: float = 5.0):
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.interval = interval
        self.count = 0
        self._start = time.perf_counter()
        self._last = self._start
        self._bar: Any = None
        if enabled:
            try:
                import tqdm  # noqa: PLC0415
            except ImportError:
                self._bar = None
            else:
                self._bar = tqdm.tqdm(total=total, desc=desc, leave=False, file=sys.stderr)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def update(self, n: int = 1, note: str = "") -> None:
        """Advances by ``n`` steps; ``note`` (e.g. the residual) is shown next to it."""
        self.count += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            return
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            print(self._line(now, note), file=sys.stderr, flush=True)

    def _line(self, now: float, note: str) -> str:
        elapsed = now - self._start
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and self.count:
            eta = f", ETA {elapsed * (self.total - self.count) / self.count:.0f} s"
        return f"{self.desc}: {self.count}{of} ({elapsed:.0f} s{eta}) {note}".rstrip()

    def close(self) -> None:
        """Ends the bar (no-op when disabled)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
