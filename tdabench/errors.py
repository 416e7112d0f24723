"""Errors that reach the user as one line, naming where the problem is and how to fix it."""

from __future__ import annotations

from pathlib import Path


class TDABenchError(Exception):
    """Base class of every error tdabench reports to the user without a traceback."""


class DataError(TDABenchError):
    """Bad input data: names the file, the line (1-based) and the field at fault.

    The message is built as ``FILE:LINE: field 'FIELD': PROBLEM`` so that editors and
    terminals can jump to the place.
    """

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.problem = problem
        where = str(self.path) + (f":{line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{problem}")


class UnknownNameError(TDABenchError):
    """An unknown method, benchmark, split, score or trajectory, with a "did you mean" hint."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        import difflib

        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = f" (known: {', '.join(sorted(known))})" if len(known) <= 12 else ""
        super().__init__(f"unknown {kind} {name!r}{hint}{listing}")
        self.kind = kind
        self.name = name


class ConfigError(TDABenchError):
    """An invalid configuration value: names the key and the allowed values."""


class PluginError(TDABenchError):
    """A plugin that cannot be used: duplicate names, bad hook implementations."""
