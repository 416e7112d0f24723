"""The ``tdabench`` command line: run, list, record, leaderboard.

Each subcommand lives in its own module with its parser and handler (``set_defaults(func=...)``);
:mod:`tdabench.cli.common` holds what they share. Errors the user can fix are printed as one
line (``tdabench: error: ...``) with exit status 2; a run with failed cells exits 1 after
writing every result.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tdabench import __version__
from tdabench.cli import leaderboard, listing, record, run
from tdabench.errors import TDABenchError

SUBCOMMANDS = (run, listing, record, leaderboard)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(prog="tdabench", description="Benchmark training-run simulators.")
    parser.add_argument("--version", action="version", version=f"tdabench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tdabench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TDABenchError as exc:
        print(f"tdabench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tdabench: interrupted; finished cells are saved, rerun the same command to resume", file=sys.stderr)
        return 130
