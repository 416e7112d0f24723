"""The runner: plans the grid of units (method x benchmark x trajectory) and hands it to an executor.

Each unit fits once per fit it needs, then simulates and scores its splits
(:mod:`tdabench.run.cells`). Methods run in worker processes that receive fit data and queries
only (:mod:`tdabench.run.worker`); the runner alone holds evaluation trajectories. Every cell
writes its result atomically as soon as it is known; a cell whose result exists with the
same key is reused unless ``force``; a failing method is recorded and the run goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tdabench.run.cells import MethodChoice, Unit, UnitState, cell_names, finish_fit, finish_unit, plan_unit
from tdabench.config import parse_method_arg, read_method_file
from tdabench.run.context import Context
from tdabench.data import SPLITS, TRAJECTORIES, Benchmark
from tdabench.errors import ConfigError, TDABenchError, UnknownNameError
from tdabench.run.executors import Executor, Job, make_executor
from tdabench.run.locks import CellLocks
from tdabench.results.record import CellResult, escape
from tdabench.simulator import BenchmarkRef
from tdabench.run.tempfiles import sweep, temp_file
from tdabench.run.views import check_split_name
from tdabench.run.worker import run_method

__all__ = ["MethodChoice", "RunPlan", "RunResults", "choose_methods", "execute"]


def choose_methods(context: Context, args: Sequence[str], config_file: str | Path | None = None) -> list[MethodChoice]:
    """Methods from ``--method NAME[:key=value,...]`` values and a ``--config`` file.

    With neither, every registered method under its default config. Display names must be
    distinct, also as file names: the same method under two configs gets ``NAME:key=value``
    or its file label.
    """
    entries: list[tuple[str, str | None, dict[str, Any]]] = [(n, None, ov) for n, ov in map(parse_method_arg, args)]
    if config_file is not None:
        entries += read_method_file(config_file)
    if not entries:
        return [MethodChoice(name, spec, spec.make_config()) for name, spec in sorted(context.registry.methods().items())]
    out: list[MethodChoice] = []
    for name, label, overrides in entries:
        spec = context.registry.method(name)
        display = label or name + (":" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) if overrides else "")
        escape(display)  # a label that cannot name a file fails here, before any work
        if any(c.display == display for c in out):
            raise ConfigError(f"method {display!r} is given twice; give one a different label or options")
        clash = next((c for c in out if escape(c.display).lower() == escape(display).lower()), None)
        if clash is not None:
            raise ConfigError(f"methods {clash.display!r} and {display!r} would write the same result files; give one a different label or options")
        out.append(MethodChoice(display, spec, spec.make_config(overrides)))
    return out


@dataclass(frozen=True)
class RunPlan:
    """What ``tdabench run`` evaluates; validated on construction.

    Attributes:
        trajectories: what to simulate (``("all",)``: everything each benchmark records).
        seeds: how many seeds each method whose fit is stochastic runs under (``Capabilities.stochastic``):
            the context's seed and the next ones; other methods run once.
        command: the command line, recorded in every result's provenance.
    """

    benchmarks: tuple[BenchmarkRef, ...]
    methods: tuple[MethodChoice, ...]
    out: Path
    splits: tuple[str, ...] = SPLITS
    trajectories: tuple[str, ...] = ("loss",)
    force: bool = False
    seeds: int = 1
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        for s in self.splits:
            check_split_name(s)
        if not self.benchmarks:
            raise TDABenchError("nothing to run: no benchmark selected")
        if not self.methods:
            raise TDABenchError("nothing to run: no method is registered (see `tdabench list methods`)")
        if self.seeds < 1:
            raise TDABenchError(f"--seeds must be at least 1, got {self.seeds}")


class RunResults(list[CellResult]):
    """The cells of a run (reused, new, n/a and failed), with what the run did.

    Attributes:
        computed: cells computed by this run (ok or failed), as opposed to reused.
        reused: cells whose stored result was reused.
        replaced: unreadable result files this run recomputed.
        broken: benchmarks that could not be loaded, with the one-line reason.
    """

    computed: int = 0
    reused: int = 0
    replaced: list[str]
    broken: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.replaced, self.broken = [], []


def check_out(out: Path) -> Path:
    """``out`` as a writable results directory, checked before any work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TDABenchError(f"--out {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = temp_file(out, "probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise TDABenchError(f"--out {out} is not writable ({exc.strerror}); choose another directory") from None
    return out.resolve()


def _load(refs: Sequence[BenchmarkRef], results: RunResults) -> list[Benchmark]:
    """Every benchmark that loads, each once; a broken one is reported and spoils only itself.

    A benchmark given twice (``T`` and ``./T/``, or two copies with the same data) runs once;
    two benchmarks with one id and different data would write the same result files: refused.
    """
    benches: dict[str, Benchmark] = {}
    for ref in refs:
        try:
            bench = ref.load()
        except TDABenchError as exc:
            results.broken.append(f"{ref.id}: {exc}")
            continue
        first = benches.setdefault(bench.id, bench)
        if first is not bench and first.content_hash != bench.content_hash:
            where = " and ".join(str(b.root) if b.root is not None else "the registry" for b in (first, bench))
            raise TDABenchError(f"two benchmarks have the id {bench.id!r} but different data ({where}); "
                                "they would write the same result files: give one")
    if not benches and results.broken:  # nothing to run: the user's input is at fault
        raise TDABenchError(f"benchmark {results.broken[0]}")
    return list(benches.values())


def _trajectories(benches: Sequence[Benchmark], wanted: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Per benchmark, the trajectories to run; a name no benchmark or standard knows is an error."""
    if wanted == ("all",):
        return {b.id: b.trajectories for b in benches}
    known = sorted(set(TRAJECTORIES) | {m for b in benches for m in b.trajectories})
    for name in wanted:
        if name not in known:
            raise UnknownNameError("trajectory", name, known)
    return {b.id: wanted for b in benches}


def execute(context: Context, plan: RunPlan, executor: Executor | None = None) -> RunResults:
    """Run every cell of ``plan`` on ``executor`` (default: one worker process).

    Returns the results (reused, new, n/a and failed) with counts; progress shows units done,
    running and failed.
    """
    out = check_out(plan.out)
    sweep(out, recursive=True)  # temporaries of runs killed on this --out
    results = RunResults()
    benches = _load(plan.benchmarks, results)
    per_bench = _trajectories(benches, plan.trajectories)
    units = [
        (Unit(choice, bench.id, traj, plan.splits, out, plan.force, seed, str(Path(context.cache_dir).resolve()),
              context.device, plan.command), bench)
        for bench in benches for traj in per_bench[bench.id] for choice in plan.methods
        for seed in range(context.seed, context.seed + (plan.seeds if choice.spec.capabilities.stochastic else 1))
    ]
    locks = CellLocks(out, Path(context.cache_dir))
    states: list[UnitState] = []
    try:
        locks.acquire((c for unit, _ in units for c in cell_names(unit)),
                      wait_note=f"waiting for another run on {out} to finish the cells it shares with this one")
        return _execute(units, locks, states, results, plan, executor)
    finally:
        for state in states:
            state.release()
        locks.close()


def _execute(units: list[tuple[Unit, Benchmark]], locks: CellLocks, states: list[UnitState], results: RunResults, plan: RunPlan,
             executor: Executor | None) -> RunResults:
    """Plan each unit as a worker frees up, dispatch it, and score what comes back."""
    with tqdm(total=len(units), desc="units", unit="unit", disable=None if plan.progress else True, leave=False) as bar:
        failed = 0

        def jobs() -> Iterator[Job]:
            for unit, bench in units:
                planned = plan_unit(unit, bench, locks)
                results.extend(planned.done)
                results.reused += sum(1 for c in planned.done if c.status != "n/a")
                results.replaced += planned.replaced
                if planned.state is None or planned.job is None:
                    bar.update(1)
                    continue
                states.append(planned.state)
                yield Job(planned.job, 0, unit.choice.spec.resources)

        unit_failed: set[int] = set()

        def part(i: int, fitted: Any) -> None:
            cells = finish_fit(states[i], fitted)
            results.extend(cells)
            results.computed += len(cells)
            if any(c.status == "failed" for c in cells):
                unit_failed.add(i)

        def report(i: int, _value: Any, error: str | None, running: int) -> None:
            nonlocal failed
            cells = finish_unit(states[i], error)
            results.extend(cells)
            results.computed += len(cells)
            failed += bool(cells) or i in unit_failed
            bar.set_postfix(running=running, failed=failed, refresh=False)
            bar.update(1)

        (executor or make_executor("local")).map(run_method, jobs(), [], report, part)
    return results
