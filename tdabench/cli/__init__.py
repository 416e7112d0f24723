"""The ``tdabench`` command line: run, list, record, leaderboard, simulate, mislabel.

Each subcommand lives in its own module with its parser and handler (``set_defaults(func=...)``);
:mod:`tdabench.cli.common` holds what they share. Errors the user can fix are printed as one
line (``tdabench: error: ...``) with exit status 2; a run with failed cells exits 1 after
writing every result.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from tdabench import __version__
from tdabench.cli import leaderboard, listing, mislabel, record, run, simulate
from tdabench.errors import TDABenchError

SUBCOMMANDS = (run, listing, record, leaderboard, simulate, mislabel)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``tdabench run: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = _Parser(prog="tdabench", description="Benchmark training-run simulators.")
    parser.add_argument("--version", action="version", version=f"tdabench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: workers are ended, finished cells kept


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tdabench`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["tdabench", *argv])
    previous = signal.signal(signal.SIGTERM, _interrupt) or signal.SIG_DFL
    try:
        return int(args.func(args))
    except TDABenchError as exc:
        print(f"tdabench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tdabench: interrupted; finished cells are saved, rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
