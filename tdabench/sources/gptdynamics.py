"""Benchmark sources: a local GPTDynamics copy, and any directory given by path.

This module is itself a plugin (entry point ``gptdynamics``), registered like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tdabench.errors import DataError, TDABenchError, UnknownNameError
from tdabench.formats.gptdynamics_load import scan_benchmarks
from tdabench.hookspecs import hookimpl
from tdabench.simulator import BenchmarkRef

if TYPE_CHECKING:
    from tdabench.run.context import Context


def refs_from_dir(path: Path, *, progress: bool = False) -> list[BenchmarkRef]:
    """Every benchmark under ``path`` as a ref; a broken one's ref raises its error when loaded."""
    return [BenchmarkRef(f.id, f.description or str(path), f.load) for f in scan_benchmarks(path, progress=progress)]


@hookimpl
def tdabench_benchmarks(context: Context) -> list[BenchmarkRef]:
    """The benchmarks of the local GPTDynamics copy at ``context.data_dir``, if set."""
    if context.data_dir is None:
        return []
    if not context.data_dir.is_dir():
        raise DataError(context.data_dir, "GPTDynamics directory not found (--data-dir / TDABENCH_GPTDYNAMICS)")
    return refs_from_dir(context.data_dir, progress=context.progress)


def resolve_benchmarks(context: Context, names: list[str]) -> list[BenchmarkRef]:
    """Refs for ``names``: registered ids (or id prefixes), or paths to directories in the
    GPTDynamics layout. A name that is both (a folder ``gptdynamics`` in the working directory)
    is the registered id; write ``./gptdynamics`` for the folder. With no names, the registered
    default slice.
    """
    if not names:
        refs = [r for r in context.registry.benchmarks(context).values() if r.default]
        if not refs:
            raise TDABenchError("no default benchmark is registered: pass --benchmark ID or DIR (see `tdabench list benchmarks`)")
        return refs
    known: dict[str, BenchmarkRef] | None = None
    out: list[BenchmarkRef] = []
    for name in names:
        path = Path(name)
        explicit = name.startswith((".", "/", "~"))  # ./gptdynamics is a folder, gptdynamics an id prefix first
        if not explicit:
            if known is None:
                known = context.registry.benchmarks(context)
            matches = [r for bid, r in known.items() if bid == name or bid.startswith(name.rstrip("/") + "/")]
            if matches:
                out.extend(matches)
                continue
        if path.exists() or explicit:
            out.extend(refs_from_dir(path.expanduser(), progress=context.progress))
            continue
        raise UnknownNameError("benchmark", name, list(known or {}))
    return out
