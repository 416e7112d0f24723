"""Write every output file of a leaderboard."""

from __future__ import annotations

from pathlib import Path

from tdabench.leaderboard.build import Leaderboard, write_text
from tdabench.leaderboard.exports import to_csv, to_json
from tdabench.leaderboard.html import page
from tdabench.leaderboard.markdown import group_page, summary_page


def write_all(lb: Leaderboard, out: Path) -> list[Path]:
    """``README.md``, ``<group>.md`` per group, ``index.html``, ``leaderboard.csv`` and ``.json``."""
    paths = [write_text(out / "README.md", summary_page(lb))]
    paths += [write_text(out / f"{g}.md", group_page(lb, g)) for g in lb.groups]
    paths.append(write_text(out / "index.html", page(lb)))
    paths.append(write_text(out / "leaderboard.csv", to_csv(lb)))
    paths.append(write_text(out / "leaderboard.json", to_json(lb)))
    return paths
