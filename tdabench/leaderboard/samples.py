"""Sample trajectories for the plots: predictions from the ``.npz`` files, truth from the benchmark.

A result file holds predictions but not the true trajectories (they belong to the benchmark),
so the truth is read from the benchmark itself when it can be found (``--benchmark ID|DIR``,
or the result's id among the registered benchmarks) and its data hash equals the result's.
Otherwise the plot shows predictions only and says why.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

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
    metric: str
    split: str
    run: str
    steps: np.ndarray
    test_ids: np.ndarray
    truth: np.ndarray | None
    preds: dict[str, np.ndarray]
    note: str


def _load(entry: Entry, problems: list[str]) -> dict[str, np.ndarray] | None:
    """The predictions of an ok cell, or None with a line in ``problems`` saying why not."""
    name = entry.result.predictions
    path = entry.path.parent / name if name else None
    if path is None or not path.is_file():
        problems.append(f"{path or entry.path}: predictions file missing; {entry.result.method} is left out of the plot")
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if not {"pred", "runs", "test_ids", "steps"} <= set(z.files):
                raise ValueError("arrays missing")
            return {k: z[k] for k in ("pred", "runs", "test_ids", "steps")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        problems.append(f"{path}: predictions unreadable ({type(exc).__name__}); {entry.result.method} is left out of the plot")
        return None


def sample_trajectories(entries: Sequence[Entry], truth: TruthSource, problems: list[str] | None = None) -> Samples | None:
    """Samples for the ok cells of one (benchmark, trajectory, split), in the given order; a cell
    whose predictions cannot be read is left out, with a line in ``problems``."""
    problems = [] if problems is None else problems
    loaded = [(e, _load(e, problems)) for e in entries if e.result.status == "ok"]
    loaded = [(e, z) for e, z in loaded if z is not None and z["pred"].ndim == 3 and z["pred"].shape[0] > 0]
    if not loaded:
        return None
    first = loaded[0][1]
    run = str(first["runs"][0])
    ids = np.asarray(first["test_ids"], dtype=np.int64)
    # Evenly spaced over the sorted ids: deterministic, and not cherry-picked.
    picks = np.unique(np.linspace(0, len(ids) - 1, min(N_SAMPLES, len(ids))).round().astype(int))
    test_ids = np.sort(ids)[picks]
    steps = np.asarray(first["steps"], dtype=np.int64)
    preds: dict[str, np.ndarray] = {}
    for e, z in loaded:
        runs = [str(r) for r in z["runs"]]
        pos = {int(t): i for i, t in enumerate(np.asarray(z["test_ids"], dtype=np.int64))}
        if run not in runs or not all(int(t) in pos for t in test_ids) or not np.array_equal(z["steps"], steps):
            continue
        preds[e.result.method] = np.asarray(z["pred"][runs.index(run)][[pos[int(t)] for t in test_ids]], dtype=np.float64)
    r0 = loaded[0][0].result
    bench, note = truth.lookup(r0.benchmark, r0.data_hash)
    values = None
    if bench is not None:
        try:
            tr = bench.run(run).trajectories[r0.metric]
            rows = bench.test.positions(test_ids)
            if np.any(rows < 0) or not np.array_equal(tr.steps, steps):
                raise TDABenchError("the predictions do not match the benchmark's test ids or steps")
            values = tr.values[rows]
        except (TDABenchError, KeyError) as exc:
            note = f"true trajectories not shown: {exc}"
    return Samples(r0.benchmark, r0.metric, r0.split, run, steps, test_ids, values, preds, note)
