"""The runner: plans the grid of units (method x benchmark x metric) and hands it to an executor.

Each unit fits once, then simulates and scores every split (:mod:`tdabench.cells`); only the
runner's views (:mod:`tdabench.views`) read evaluation trajectories. Every cell writes its
result atomically as soon as it is known; a cell whose result exists with the same key is
reused unless ``force``; a failing method is recorded and the run goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tdabench.cells import MethodChoice, Unit, lost_cells, run_unit
from tdabench.config import parse_method_arg, read_method_file
from tdabench.context import Context
from tdabench.data import SPLITS
from tdabench.errors import ConfigError, TDABenchError
from tdabench.executors import Executor, Job, SerialExecutor
from tdabench.results import CellResult
from tdabench.simulator import BenchmarkRef
from tdabench.views import check_split_name

__all__ = ["MethodChoice", "RunPlan", "choose_methods", "execute"]


def choose_methods(context: Context, args: Sequence[str], config_file: str | Path | None = None) -> list[MethodChoice]:
    """Methods from ``--method NAME[:key=value,...]`` values and a ``--config`` file.

    With neither, every registered method under its default config. Display names must be
    distinct: the same method under two configs gets ``NAME:key=value`` or its file label.
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
        if any(c.display == display for c in out):
            raise ConfigError(f"method {display!r} is given twice; give one a different label or options")
        out.append(MethodChoice(display, spec, spec.make_config(overrides)))
    return out


@dataclass(frozen=True)
class RunPlan:
    """What ``tdabench run`` evaluates; validated on construction."""

    benchmarks: tuple[BenchmarkRef, ...]
    methods: tuple[MethodChoice, ...]
    out: Path
    splits: tuple[str, ...] = SPLITS
    metrics: tuple[str, ...] = ("loss",)
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for s in self.splits:
            check_split_name(s)
        if not self.benchmarks:
            raise TDABenchError("nothing to run: no benchmark selected")
        if not self.methods:
            raise TDABenchError("nothing to run: no method is registered (see `tdabench list methods`)")


def execute(context: Context, plan: RunPlan, executor: Executor | None = None) -> list[CellResult]:
    """Run every cell of ``plan`` on ``executor`` (default: in this process).

    Returns the results (reused, new, n/a and failed); progress shows units done, running
    and failed.
    """
    benches = [ref.load() for ref in plan.benchmarks]
    jobs = [
        (Unit(choice, bench.id, metric, plan.splits, plan.out.resolve(), plan.force, context.seed, str(Path(context.cache_dir).resolve()), context.device), b)
        for b, bench in enumerate(benches)
        for metric in (bench.metrics if plan.metrics == ("all",) else plan.metrics)
        for choice in plan.methods
    ]
    results: list[CellResult] = []
    with tqdm(total=len(jobs), desc="units", unit="unit", disable=None if plan.progress else True, leave=False) as bar:
        failed = 0

        def report(i: int, cells: list[CellResult] | None, error: str | None, running: int) -> None:
            nonlocal failed
            if cells is None:  # run_unit records its own failures; this unit never finished
                unit, b = jobs[i]
                cells = lost_cells(unit, benches[b], error or "worker lost")
            results.extend(cells)
            failed += any(c.status == "failed" for c in cells)
            bar.set_postfix(running=running, failed=failed, refresh=False)
            bar.update(1)

        work = [Job(unit, b, unit.choice.spec.resources) for unit, b in jobs]
        (executor or SerialExecutor()).map(run_unit, work, benches, report)
    return results
