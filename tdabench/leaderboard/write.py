"""Write every output file of a leaderboard, and check a written one against its results.

Everything printed comes from the result files (and, for plots, the benchmarks' true
trajectories). Output is deterministic: the only line that changes between two
regenerations from the same results is the one that starts "Generated on" (the date, and
the generating machine and tdabench revision).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tdabench.formats.jsonl import atomic_write_text
from tdabench.leaderboard.collect import collect
from tdabench.leaderboard.exports import to_csv, to_json
from tdabench.leaderboard.html import page
from tdabench.leaderboard.markdown import group_page, summary_page
from tdabench.leaderboard.model import Leaderboard, assemble
from tdabench.leaderboard.samples import TruthSource
from tdabench.run.tempfiles import sweep

#: Matches the one line per output file that may differ between regenerations.
VOLATILE = re.compile(r"[Gg]enerated[ _]on")


def write_all(lb: Leaderboard, out: Path) -> list[Path]:
    """``README.md``, ``<group>.md`` per group, ``index.html``, ``leaderboard.csv`` and ``.json``."""
    paths = [write_text(out / "README.md", summary_page(lb))]
    paths += [write_text(out / f"{g}.md", group_page(lb, g)) for g in lb.groups]
    paths.append(write_text(out / "index.html", page(lb)))
    paths.append(write_text(out / "leaderboard.csv", to_csv(lb)))
    paths.append(write_text(out / "leaderboard.json", to_json(lb)))
    return paths


def build(results: Sequence[Path], out: Path, truth: TruthSource, command: str, *,
          allow_mixed_versions: bool = False) -> tuple[Leaderboard, list[Path]]:
    """Read ``results``, write the leaderboard files under ``out``; return it and the paths.

    Temporaries that killed tdabench processes left in ``results`` and ``out`` are swept first
    (tdabench's own only: :mod:`tdabench.run.tempfiles`).
    """
    for folder in [*results, out]:
        sweep(Path(folder), recursive=True)
    lb = assemble(collect(results, allow_mixed_versions=allow_mixed_versions), truth, command)
    return lb, write_all(lb, Path(out))


def stable_lines(text: str) -> list[str]:
    """The lines of an output file that must not change between regenerations."""
    return [line for line in text.splitlines() if not VOLATILE.search(line)]


def check(results: Sequence[Path], out: Path, truth: TruthSource, command: str, *,
          allow_mixed_versions: bool = False) -> list[str]:
    """Regenerate into a temporary directory; the files of ``out`` that differ (apart from the date)."""
    with tempfile.TemporaryDirectory() as tmp:
        _, paths = build(results, Path(tmp), truth, command, allow_mixed_versions=allow_mixed_versions)
        diffs = []
        for p in paths:
            rel = p.relative_to(tmp)
            old = Path(out) / rel
            if not old.is_file():
                diffs.append(f"{old}: missing")
            elif stable_lines(old.read_text(encoding="utf-8")) != stable_lines(p.read_text(encoding="utf-8")):
                diffs.append(f"{old}: differs")
        return diffs


def write_text(path: Path, text: str) -> Path:
    """Write one output file atomically (parents created), readable by all like any checkout file."""
    atomic_write_text(path, text)
    path.chmod(0o644)
    return path
