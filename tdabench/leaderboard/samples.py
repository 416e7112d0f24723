"""Sample trajectories for the plots, and the benchmarks behind results.

Every ok cell stores a few predicted and true trajectories of one evaluation run
(``CellResult.samples``), so the pages' plots need neither the predictions files nor the
benchmarks. :class:`TruthSource` finds a result's benchmark (``--benchmark ID|DIR``, or the
result's id among the registered benchmarks) when its data hash matches, for what only the
benchmark knows: the mean and spread of its fit runs' trajectories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdabench.run.context import Context
from tdabench.data import Benchmark
from tdabench.errors import TDABenchError
from tdabench.leaderboard.collect import Entry
from tdabench.simulator import BenchmarkRef
from tdabench.sources.gptdynamics import resolve_benchmarks

N_SAMPLES = 3


class TruthSource:
    """Finds the benchmark behind a result, loading each at most once.

    ``names`` are ``--benchmark`` values (ids, prefixes or directories); without them, the
    context's registered benchmarks are searched by id. ``context=None`` disables lookups.
    """

    def __init__(self, context: Context | None, names: Sequence[str] = ()) -> None:
        self.context = context
        self.names = list(names)
        self._refs: dict[str, BenchmarkRef] | None = None
        self._error: str | None = None
        self._loaded: dict[str, Benchmark | str] = {}

    def _index(self) -> dict[str, BenchmarkRef]:
        if self._refs is None:
            self._refs = {}
            ctx = self.context
            try:
                refs = [] if ctx is None else resolve_benchmarks(ctx, self.names) if self.names else list(ctx.registry.benchmarks(ctx).values())
                self._refs = {r.id: r for r in refs}
            except TDABenchError as exc:
                self._error = str(exc)
        return self._refs

    def properties(self, benchmark: str) -> Mapping[str, Any]:
        """What the benchmark's source measured of its runs (``BenchmarkRef.properties``), without loading it."""
        if self.context is None:
            return {}
        ref = self._index().get(benchmark)
        return dict(ref.properties) if ref is not None else {}

    def cached(self, benchmark: str) -> Benchmark | None:
        """The benchmark if an earlier :meth:`lookup` loaded it (whatever its data hash)."""
        found = self._loaded.get(benchmark)
        return found if isinstance(found, Benchmark) else None

    def lookup(self, benchmark: str, data_hash: str) -> tuple[Benchmark | None, str]:
        """(the benchmark, "") when found with matching data, else (None, why not)."""
        if self.context is None:
            return None, "true trajectories not loaded (--no-truth)"
        if benchmark not in self._loaded:
            ref = self._index().get(benchmark)
            if ref is None:
                why = f" ({self._error})" if self._error else ""
                self._loaded[benchmark] = f"benchmark {benchmark!r} is not available here{why}; pass --benchmark ID|DIR"
            else:
                try:
                    self._loaded[benchmark] = ref.load()
                except TDABenchError as exc:
                    self._loaded[benchmark] = f"loading {benchmark!r} failed: {exc}"
        found = self._loaded[benchmark]
        if isinstance(found, str):
            return None, "true trajectories not shown: " + found
        if found.content_hash != data_hash:
            return None, f"true trajectories not shown: the copy of {benchmark!r} found here has other data ({found.content_hash[:19]}… vs {data_hash[:19]}…)"
        return found, ""


@dataclass(frozen=True)
class Samples:
    """A few test examples of one evaluation run, predicted by each method, with the truth if known.

    Attributes:
        steps: int [K] recorded steps.
        test_ids: int [s] the sampled test examples.
        truth: float [s, K], or None when unavailable (``note`` says why).
        preds: method -> float [s, K], in the table's order.
    """

    benchmark: str
    trajectory: str
    split: str
    run: str
    steps: np.ndarray
    test_ids: np.ndarray
    truth: np.ndarray | None
    preds: dict[str, np.ndarray]
    note: str


def sample_trajectories(entries: Sequence[Entry], truth: TruthSource, problems: list[str] | None = None) -> Samples | None:
    """Samples for the ok cells of one (benchmark, trajectory, split), in the given order, from the
    samples each cell stores (no predictions file or benchmark needed); a cell without them, or
    with samples of other test examples, run or steps than the first one's, is left out of the plot."""
    problems = [] if problems is None else problems
    ok = [e for e in entries if e.result.status == "ok"]
    with_samples = [e for e in ok if e.result.samples.get("predicted")]
    for e in ok:
        if e not in with_samples:
            problems.append(f"{e.path}: no plot samples in the cell; {e.result.method} is left out of the plot")
    if not with_samples:
        return None
    first = with_samples[0].result.samples
    run, ids, steps = str(first["run"]), np.asarray(first["test_ids"], dtype=np.int64), np.asarray(first["steps"], dtype=np.int64)
    preds: dict[str, np.ndarray] = {}
    for e in with_samples:
        got = e.result.samples
        if str(got["run"]) != run or list(got["test_ids"]) != ids.tolist() or list(got["steps"]) != steps.tolist():
            continue
        preds[e.result.method] = np.asarray(got["predicted"], dtype=np.float64)
    r0 = with_samples[0].result
    values = np.asarray(first["true"], dtype=np.float64) if first.get("true") is not None else None
    note = "" if values is not None else "true trajectories not stored in the cells"
    return Samples(r0.benchmark, r0.trajectory, r0.split, run, steps, ids, values, preds, note)
