"""Leaderboards generated from result files: markdown pages, a self-contained HTML page, exports.

Entry points: :func:`tdabench.leaderboard.write.build` (read, assemble, write) and
:func:`tdabench.leaderboard.write.check` (regenerate and compare, apart from the date line);
``tdabench leaderboard`` on the command line (:mod:`tdabench.cli.leaderboard`).
"""
