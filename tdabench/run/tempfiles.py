"""Temporary files and folders that name their process, and a sweep for those a killed process left.

Everything tdabench writes goes to a temporary name first (``.<name>.<pid>.<random>[.tmp]``)
and is renamed into place. A process killed with SIGKILL cannot clean up after itself, so
the next process that writes in the same folder sweeps what dead processes of the same user
left behind (a live process's temporaries are never touched).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

_PID = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+(\.tmp)?$")
#: Temporaries younger than this are left alone even if their pid is gone (a pid may be reused
#: by a new process only after the old one ended, so this guards clock-skewed file systems).
MIN_AGE_S = 2.0


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Remove the temporaries under ``folder`` whose process is dead; return what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*") if recursive else folder.glob(".*")
    removed = []
    now = time.time()
    uid = os.getuid() if hasattr(os, "getuid") else None
    for p in list(candidates):
        m = _PID.match(p.name)
        if not m or alive(int(m.group("pid"))):
            continue
        try:
            st = p.lstat()
        except OSError:
            continue
        if (uid is not None and st.st_uid != uid) or now - st.st_mtime < MIN_AGE_S:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
