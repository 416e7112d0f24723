"""Wall time and peak memory of a block of work (docs/formats.md, "Peak memory").

On Linux the kernel keeps a process's resident-set high-water mark (``VmHWM`` in
``/proc/self/status``) and lets the process reset it (write ``5`` to ``/proc/self/clear_refs``).
:class:`Measure` releases memory freed by earlier work (``gc.collect``, glibc ``malloc_trim``),
resets the mark, and at the end reads it: the peak is exact (no sampling can miss a spike) and
does not depend on what an earlier unit in the same long-lived worker left behind. Child
processes count through ``RUSAGE_CHILDREN``. Where the mark cannot be reset (another OS, a
kernel that refuses), a background thread samples the resident set instead.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import sys
import threading
import time
from types import TracebackType

_PAGE = resource.getpagesize()
#: ``ru_maxrss`` is in KiB on Linux and in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
#: The measures open now, outermost first: an inner reset must not lose an outer one's peak.
_ACTIVE: list[Measure] = []


def rss_bytes() -> int:
    """Current resident set size of this process (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def hwm_bytes() -> int:
    """The kernel's resident-set high-water mark of this process (``VmHWM``; 0 if unreadable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def reset_hwm() -> bool:
    """Reset ``VmHWM`` to the current resident set; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return hwm_bytes() > 0


def release_freed() -> None:
    """Give memory that earlier work freed back to the OS, so the resident set is live memory:
    a garbage collection, then glibc's ``malloc_trim(0)`` (nothing elsewhere)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:  # the process's own symbols include libc's (no find_library: it spawns processes)
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
            pass


def children_maxrss_bytes() -> int:
    """The largest peak resident set of any finished, waited-for child process (0 if none)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * _MAXRSS_UNIT


class Measure:
    """Context manager: ``seconds`` of wall time and ``peak_mb``, the peak resident memory in
    MiB above the level at entry (after freed memory is released), plus the peak of a child
    process that finished during the block if it exceeds every earlier child's.

    ``method`` says how the peak was taken: ``hwm`` (the kernel's reset high-water mark) or
    ``sampled`` (the resident set read every ``interval`` seconds by a background thread).
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.seconds = 0.0
        self.peak_mb = 0.0
        self.method = "sampled"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Measure:
        release_freed()
        for outer in _ACTIVE:  # the reset below would lose what the open measures saw so far
            outer._peak = max(outer._peak, hwm_bytes())
        self.method = "hwm" if reset_hwm() else "sampled"
        self._base = rss_bytes()
        self._peak = self._base
        self._children = children_maxrss_bytes()
        if self.method == "sampled":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        _ACTIVE.append(self)
        self._t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes())

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._peak = max(self._peak, rss_bytes(), hwm_bytes() if self.method == "hwm" else 0)
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        own = max(0, self._peak - self._base)
        children = children_maxrss_bytes()
        child = children if children > self._children else 0
        self.peak_mb = (own + child) / 2**20
