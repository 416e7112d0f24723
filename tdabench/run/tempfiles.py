"""tdabench's own temporary files and folders, and a sweep that removes only those.

Everything tdabench writes goes to a temporary name first and is renamed into place. A
temporary's name starts with :data:`PREFIX` and names its process:
``.tdabench-tmp.<pid>.<name>.<random>.tmp`` (files) or ``...<random>.d`` (folders, which also
hold a :data:`MARKER` file written when they are made). A process killed with SIGKILL cannot
clean up after itself, so the next command that writes in the same place sweeps what dead
processes of the same user left behind.

The sweep removes a file only if its name carries the prefix, and a folder only if its name
carries the prefix *and* it holds the marker; a live process's temporaries, anything of
another user, and anything else (a user's ``.notes.2023.txt``, ``.snapshot.55555.d/``) are
never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

#: The start of every temporary's name: nobody else names files like this.
PREFIX = ".tdabench-tmp."
#: The file inside every temporary folder: the proof that tdabench made it.
MARKER = ".tdabench-temporary"
_OURS = re.compile(r"^\.tdabench-tmp\.(?P<pid>\d+)\.(?P<name>.*)\.[A-Za-z0-9_]+\.(?P<kind>tmp|d)$")
#: Temporaries younger than this are left alone even if their pid is gone (a pid may be reused
#: by a new process only after the old one ended, so this guards clock-skewed file systems).
MIN_AGE_S = 2.0


def _prefix(name: str) -> str:
    return f"{PREFIX}{os.getpid()}.{name}."


def temp_file(folder: Path, name: str) -> tuple[int, str]:
    """A new temporary file in ``folder`` for what will become ``folder/name``: ``(fd, path)``, as ``mkstemp``."""
    return tempfile.mkstemp(dir=folder, prefix=_prefix(name), suffix=".tmp")


def temp_dir(folder: Path, name: str) -> Path:
    """A new temporary folder in ``folder`` for what will become ``folder/name``, holding the marker.

    Remove the marker (:func:`unmark`) just before renaming the folder into place.
    """
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=_prefix(name), suffix=".d"))
    (tmp / MARKER).write_bytes(b"")
    return tmp


def unmark(folder: Path) -> None:
    """Remove a temporary folder's marker (it is about to become a real folder)."""
    (Path(folder) / MARKER).unlink(missing_ok=True)


def owner_pid(path: Path) -> int | None:
    """The pid a tdabench temporary's name carries; None for any other name."""
    m = _OURS.match(Path(path).name)
    return int(m.group("pid")) if m else None


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # not a pid at all
        return False
    return True


def _stale(p: Path, now: float, uid: int | None) -> bool:
    """Whether ``p`` is a temporary of ours whose process is dead: ours by name, by owner, by marker."""
    pid = owner_pid(p)
    if pid is None or alive(pid):
        return False
    try:
        st = p.lstat()
    except OSError:
        return False
    if (uid is not None and st.st_uid != uid) or now - st.st_mtime < MIN_AGE_S:
        return False
    if p.name.endswith(".d"):  # a folder: only a real folder that holds our marker
        if p.is_symlink() or not p.is_dir():
            return False
        try:
            return (p / MARKER).lstat().st_size == 0 and (p / MARKER).is_file()
        except OSError:
            return False
    return p.is_file() or p.is_symlink()


def sweep(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Remove tdabench's temporaries under ``folder`` whose process is dead; return what was removed.

    ``recursive`` walks the tree below (not following symbolic links, and not into temporaries).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    uid = os.getuid() if hasattr(os, "getuid") else None
    removed = []
    for root, dirs, files in os.walk(folder) if recursive else [next(os.walk(folder), (str(folder), [], []))]:
        for name in [n for n in dirs + files if n.startswith(PREFIX)]:
            p = Path(root) / name
            if not _stale(p, now, uid):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
        dirs[:] = [d for d in dirs if not d.startswith(PREFIX)]
    return removed
