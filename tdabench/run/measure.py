"""Wall time and peak memory of a block of work."""

from __future__ import annotations

import resource
import threading
import time
from types import TracebackType

_PAGE = resource.getpagesize()


def rss_bytes() -> int:
    """Current resident set size of this process (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class Measure:
    """Context manager: ``seconds`` of wall time and ``peak_mb``, the RSS high-water mark
    above the level at entry, sampled every ``interval`` seconds by a background thread
    (so torch allocations count, which tracemalloc would miss)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.seconds = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> Measure:
        self._base = rss_bytes()
        self._peak = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes())

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, rss_bytes())
        self.peak_mb = max(0.0, (self._peak - self._base) / 2**20)
