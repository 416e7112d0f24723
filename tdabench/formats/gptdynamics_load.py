"""Assemble :class:`Benchmark` objects from directories in the GPTDynamics layout.

Runs are grouped by their settings (everything in the directory name but the seed); each
group is one benchmark with id ``gptdynamics/<setting>/<model>/<task>`` unless a
``tdabench.json`` manifest at the root names it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tdabench.data import Benchmark, BenchmarkMeta, ExampleSet, Trajectory
from tdabench.errors import DataError, TDABenchError
from tdabench.formats.gptdynamics_read import (
    BATCHES_FILE,
    RawRun,
    find_example_files,
    find_run_dirs,
    read_examples,
    read_run,
)
from tdabench.formats.manifest import read_manifest
from tdabench.formats.names import model_slug
from tdabench.splits import check_split, default_split

IT_TASKS = ("flan",)


def load_benchmarks(path: Path, *, progress: bool = False) -> list[Benchmark]:
    """Every benchmark found at ``path`` (a root, a ``runs/<task>`` folder or a run)."""
    path = Path(path)
    run_dirs = find_run_dirs(path)
    if not run_dirs:
        raise DataError(path, f"no run directories found (expected runs/<task>/<run>/{BATCHES_FILE})")
    raws: list[RawRun] = []
    # A context manager closes the bar before an error propagates, so the error stays one line.
    with tqdm(total=len(run_dirs), desc="reading runs", unit="run", disable=None if progress else True, leave=False) as bar:
        for i, d in enumerate(run_dirs):
            raws.append(read_run(d, seed_fallback=i))
            bar.update(1)
    manifest = read_manifest(path)
    groups: dict[tuple, list[RawRun]] = defaultdict(list)
    for raw in raws:
        settings = {k: v for k, v in raw.run.settings.items() if k != "seed"}
        groups[(str(raw.path.parent), tuple(sorted(settings.items())))].append(raw)
    if manifest is not None and len(groups) > 1:
        raise DataError(path / "tdabench.json", f"a manifest describes one benchmark, but the runs form {len(groups)} groups of settings")
    benches = [_assemble(group, manifest) for group in groups.values()]
    _disambiguate_ids(benches)
    return sorted(benches, key=lambda b: b.id)


def _setting_of(task: str) -> str:
    return "it" if task.startswith(IT_TASKS) else "ft"


def _loss_type(settings: dict[str, str], setting: str) -> str:
    loss = settings.get("loss", "")
    if loss.startswith("last"):
        return "last-token"
    if loss.startswith("output"):
        return "output-tokens"
    return "output-tokens" if setting == "it" else "whole-sequence"


def _n_params(model: str) -> int | None:
    m = re.search(r"(\d+(?:\.\d+)?)([mb])\b", model.lower())
    if not m:
        return None
    return int(float(m.group(1)) * (1e6 if m.group(2) == "m" else 1e9))


def _assemble(group: list[RawRun], manifest) -> Benchmark:  # noqa: ANN001 - Manifest | None
    group = sorted(group, key=lambda r: (r.run.seed, r.run.name))
    first = group[0]
    settings = dict(first.run.settings)
    task = settings.get("task") or first.path.parent.name
    setting = _setting_of(task)
    _check_consistent(group)
    test_ids = first.test_ids
    train_ids = np.unique(np.concatenate([r.run.train_ids() for r in group]))
    files = find_example_files(first.path.parent, task)
    if files:
        train, test = read_examples(files[0]), read_examples(files[1])
        _check_ids_known(group, train, files[0])
        missing = np.setdiff1d(test_ids, test.ids)
        if len(missing):
            raise DataError(first.path / "all_loss_trajectory.out", f"test id {int(missing[0])} is not in {files[1]}", field="id")
        test = test.subset(test_ids)
    else:
        train, test = ExampleSet.from_ids(train_ids), ExampleSet.from_ids(test_ids)
    runs = tuple(r.run for r in group)
    model = settings.get("model", "unknown")
    if manifest is not None:
        bench_id, meta, split, access = manifest.id, manifest.meta, manifest.split, manifest.model
        groups, design = manifest.test_groups, manifest.design
    else:
        bench_id = f"gptdynamics/{setting}/{model_slug(model)}/{task}"
        meta = BenchmarkMeta(
            model=model,
            task=task,
            setting=setting,
            loss_type=_loss_type(settings, setting),
            n_params=_n_params(model),
            metrics=tuple(sorted(first.run.trajectories, key=lambda m: (m != "loss", m))),
            source="gptdynamics",
            description=f"GPTDynamics {setting} runs of {model} on {task}",
        )
        split, access = None, None
        groups, design = {}, None
    where = str(first.path.parent.parent.parent / "tdabench.json") if manifest else str(first.path.parent)
    if split is None:
        split = default_split(runs, test_ids)
    check_split(split, runs, test_ids, where)
    root = first.path.parent.parent.parent if first.path.parent.parent.name == "runs" else first.path.parent
    unknown = sorted({i for ids in groups.values() for i in ids} - set(test_ids.tolist()))
    if unknown:
        raise DataError(where, f"test group lists test id {unknown[0]}, which is not in the benchmark", field="test_groups")
    return Benchmark(bench_id, meta, train, test, runs, split, root=root, model=access, test_groups=groups, design=design)


def _check_consistent(group: list[RawRun]) -> None:
    """All runs of a benchmark share test ids, T and the recorded steps of each metric."""
    ref = group[0]
    for raw in group[1:]:
        if not np.array_equal(raw.test_ids, ref.test_ids):
            diff = np.setxor1d(raw.test_ids, ref.test_ids)
            raise DataError(raw.path / "all_loss_trajectory.out", f"test ids differ from run {ref.run.name}: e.g. id {int(diff[0])}", field="id")
        if raw.run.n_steps != ref.run.n_steps:
            raise DataError(raw.path / BATCHES_FILE, f"{raw.run.n_steps} steps, but run {ref.run.name} has {ref.run.n_steps}", field="step")
        for metric, tr in raw.run.trajectories.items():
            other: Trajectory | None = ref.run.trajectories.get(metric)
            if other is not None and not np.array_equal(tr.steps, other.steps):
                raise DataError(raw.path / f"all_{metric}_trajectory.out", f"recorded steps differ from run {ref.run.name}", field="step")


def _check_ids_known(group: list[RawRun], train: ExampleSet, train_file: Path) -> None:
    """Every training id in every batch must be in the example file."""
    lo, hi = (int(train.ids.min()), int(train.ids.max())) if len(train) else (0, -1)
    for raw in group:
        b = raw.run.batches
        bad = (b >= 0) & (train.positions(b) < 0)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise DataError(
                raw.path / BATCHES_FILE,
                f"training id {int(b[row, col])} is out of range: {train_file.name} has ids {lo}..{hi}",
                line=row + 1,
                field="samples_id",
            )


def _disambiguate_ids(benches: list[Benchmark]) -> None:
    """Benchmarks that would share an id get the settings that tell them apart appended."""
    by_id: dict[str, list[Benchmark]] = defaultdict(list)
    for b in benches:
        by_id[b.id].append(b)
    for same in by_id.values():
        if len(same) < 2:
            continue
        keys = sorted({k for b in same for k in b.runs[0].settings if k not in ("seed", "task", "model")})
        for b in same:
            s = b.runs[0].settings
            differing = [k for k in keys if len({bb.runs[0].settings.get(k) for bb in same}) > 1]
            suffix = "+".join(f"{k}-{s.get(k, 'none')}" for k in differing) or b.runs[0].name
            object.__setattr__(b, "id", f"{b.id}+{suffix}")
    if len({b.id for b in benches}) != len(benches):
        raise TDABenchError("two benchmarks have the same id and settings; give them a tdabench.json manifest each")

