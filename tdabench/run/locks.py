"""Cell locks: two runs on one ``--out`` never compute the same cell twice, and never wait on each other in a cycle.

A run locks every cell of its grid before it starts, in one global order (by the cell's
hash), each a one-byte POSIX record lock (``fcntl.lockf``) in one lock file per ``--out``.
The lock file lives in the cache (``<cache>/locks/``), named by the ``--out`` folder's device
and inode, so nothing is written into the results tree and any spelling of the folder (a
symbolic link, ``./out/``) finds the same file. Two runs with the same cells therefore never
hold one each while waiting for the other's: the second waits, then reuses what the first
wrote. A run never waits on itself: record locks belong to the process, so a cell its grid
names twice is simply held (counted) twice. A unit releases its cells when it ends; the
kernel releases all of them when the process dies.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from tdabench.errors import TDABenchError


def lock_file(out: Path, cache_dir: Path) -> Path:
    """The lock file of the results folder ``out`` (which must exist), under ``cache_dir``."""
    st = os.stat(out)
    return Path(cache_dir) / "locks" / f"out-{st.st_dev:x}-{st.st_ino:x}.lock"


def _offset(cell: str) -> int:
    """The byte that stands for ``cell`` (a result path relative to ``--out``)."""
    return int(hashlib.sha256(cell.encode()).hexdigest()[:15], 16)


class CellLocks:
    """The cell locks of one run on one ``--out``: :meth:`acquire` all at once, :meth:`release` per unit."""

    def __init__(self, out: Path, cache_dir: Path) -> None:
        path = lock_file(out, cache_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise TDABenchError(f"cannot create the lock file {path} ({exc.strerror}); set TDABENCH_CACHE to a writable folder") from None
        self.path = path
        self._held: dict[int, int] = {}  # byte -> how many of this run's cells hold it

    def acquire(self, cells: Iterable[str], *, wait_note: str = "") -> None:
        """Lock every cell, in the global order; say once on stderr (``wait_note``) if another run holds one."""
        wanted: dict[int, int] = {}
        for c in cells:
            off = _offset(c)
            wanted[off] = wanted.get(off, 0) + 1
        said = False
        for off in sorted(wanted):
            if off not in self._held:
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, off)
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                    if wait_note and not said:
                        print(f"tdabench: {wait_note}", file=sys.stderr, flush=True)
                        said = True
                    fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, off)
            self._held[off] = self._held.get(off, 0) + wanted[off]

    def release(self, cells: Iterable[str]) -> None:
        """Release one hold on each cell; a cell no hold is left on is free for other runs."""
        for c in cells:
            off = _offset(c)
            n = self._held.get(off, 0) - 1
            if n > 0:
                self._held[off] = n
            elif n == 0:
                del self._held[off]
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, off)

    def close(self) -> None:
        """Release every cell (closing the file drops all of this process's locks on it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._held.clear()
