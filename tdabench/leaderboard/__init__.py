"""Leaderboards generated from result files: markdown pages, a self-contained HTML page, exports.

Entry points: :func:`tdabench.leaderboard.build.build` (read, assemble, write) and
:func:`tdabench.leaderboard.build.check` (regenerate and compare, apart from the date line);
``tdabench leaderboard`` on the command line (:mod:`tdabench.leaderboard.cli`).
"""

from tdabench.leaderboard.build import Leaderboard, assemble, build, check, stable_lines
from tdabench.leaderboard.collect import Collection, collect
from tdabench.leaderboard.samples import TruthSource

__all__ = ["Collection", "Leaderboard", "TruthSource", "assemble", "build", "check", "collect", "stable_lines"]
