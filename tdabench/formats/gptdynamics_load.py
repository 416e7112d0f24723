"""Assemble :class:`Benchmark` objects from directories in the GPTDynamics layout.

Runs are grouped by their task and settings (everything in the directory name but the seed).
Out-of-distribution runs (``<task>-ood``, ``runs/flan_ood``) join their task's group as its
unseen-train runs. Each group is one benchmark with id ``gptdynamics/<setting>/<model>/<task>``
unless a ``tdabench.json`` manifest at the root names it; a trajectory file that covers other
test ids than the loss file (FLAN's BLEU and ROUGE-L cover WebNLG and WMT16) makes a benchmark
of its own, ``<id>+<trajectories>``. A group that cannot be read is reported, with its
benchmark, and never stops the others (:func:`scan_benchmarks`).
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tdabench.data import Benchmark, BenchmarkMeta, DesignInfo, ExampleSet, Run, SplitSpec, Trajectory
from tdabench.errors import DataError, TDABenchError
from tdabench.formats.gptdynamics_read import BATCHES_FILE, RawRun, find_example_files, find_run_dirs, read_examples, read_flipped, read_run
from tdabench.formats.gptdynamics_release import flan_groups, is_debug_file, published_split, run_role
from tdabench.formats.manifest import Manifest, read_manifest
from tdabench.formats.names import model_slug, parse_run_name
from tdabench.sources.splits import check_split, default_split

IT_TASKS = ("flan",)


@dataclass(frozen=True)
class Found:
    """A benchmark found in a folder: its id, and a loader (which raises its one-line error)."""

    id: str
    description: str
    load: Callable[[], Benchmark]
    settings: tuple[tuple[str, str], ...] = ()


def scan_benchmarks(path: Path, *, progress: bool = False) -> list[Found]:
    """Every benchmark at ``path`` (a root, a ``runs/<task>`` folder or a run), each loadable on
    its own: a broken run directory spoils only its benchmark, whose loader raises its error."""
    path = Path(path)
    run_dirs = find_run_dirs(path)
    if not run_dirs:
        raise DataError(path, f"no run directories found (expected runs/<task>/<run>/{BATCHES_FILE})")
    manifest = read_manifest(path)
    groups = _group(run_dirs)
    if manifest is not None and len(groups) > 1:
        raise DataError(path / "tdabench.json", f"a manifest describes one benchmark, but the runs form {len(groups)} groups of settings")
    found: list[Found] = []
    with tqdm(total=len(run_dirs), desc="reading runs", unit="run", disable=None if progress else True, leave=False) as bar:
        for key, dirs in groups.items():
            guess = manifest.id if manifest is not None else _base_id(key[1], dict(key[2]))
            try:
                raws = [read_run(d, seed_fallback=i) for i, d in enumerate(dirs)]
                benches = _assemble(raws, manifest, key[1])
            except DataError as error:
                found.append(Found(guess, f"broken: {error}", _raiser(error), key[2]))
            else:
                found += [Found(b.id, b.meta.description, _loader(b), key[2]) for b in benches]
            bar.update(len(dirs))
    return sorted(_disambiguate(found), key=lambda f: f.id)


def load_benchmarks(path: Path, *, progress: bool = False) -> list[Benchmark]:
    """Every benchmark at ``path``; the first one that cannot be read raises its error."""
    return [f.load() for f in scan_benchmarks(path, progress=progress)]


def _loader(bench: Benchmark) -> Callable[[], Benchmark]:
    return lambda: bench


def _raiser(error: DataError) -> Callable[[], Benchmark]:
    def load() -> Benchmark:
        raise error

    return load


def _group(run_dirs: list[Path]) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Path]]:
    """Run directories by (root, task, settings); out-of-distribution runs join their task's main group."""
    main: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Path]] = defaultdict(list)
    ood: list[tuple[str, str, dict[str, str], Path]] = []
    for d in run_dirs:
        settings = parse_run_name(d.name)
        role = run_role(d.parent.name, settings.get("task") or d.parent.name)
        root = str(_runs_root(d))
        rest = {k: v for k, v in settings.items() if k not in ("seed", "task")}
        if role.ood:
            ood.append((root, role.task, rest, d))
        else:
            main[(root, role.task, tuple(sorted(rest.items())))].append(d)
    for root, task, rest, d in ood:
        # Its task's group of the same model (the first by settings, should there be several).
        home = next((k for k in sorted(main) if k[0] == root and k[1] == task and dict(k[2]).get("model") == rest.get("model")), None)
        main[home or (root, task, tuple(sorted(rest.items())))].append(d)
    return main


def _runs_root(d: Path) -> Path:
    return d.parent.parent.parent if d.parent.parent.name == "runs" else d.parent


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


def _base_id(task: str, settings: dict[str, str]) -> str:
    return f"gptdynamics/{_setting_of(task)}/{model_slug(settings.get('model', 'unknown'))}/{task}"


def _assemble(raws: list[RawRun], manifest: Manifest | None, task: str) -> list[Benchmark]:
    """The benchmark of one group, and one more per set of test ids a trajectory file covers."""
    raws = sorted(raws, key=lambda r: (r.run.seed, r.run.name))
    ood = {r.run.name for r in raws if run_role(r.path.parent.name, r.run.settings.get("task") or r.path.parent.name).ood}
    main = [r for r in raws if r.run.name not in ood] or raws
    first = main[0]
    _check_consistent(main, ood_runs=False)
    _check_consistent([r for r in raws if r.run.name in ood], ood_runs=True)
    _check_distinct_seeds(main)
    _check_distinct_seeds([r for r in raws if r.run.name in ood])
    examples = _examples(first, task)
    parts: dict[tuple[int, ...], list[str]] = defaultdict(list)  # test ids -> the trajectories recorded on them
    for metric, recorded_ids in first.metric_ids.items():
        parts[tuple(recorded_ids.tolist())].append(metric)
    loss_ids = tuple(first.test_ids.tolist())
    out = []
    for ids, metrics in sorted(parts.items(), key=lambda kv: kv[0] != loss_ids):
        metrics = sorted(metrics, key=lambda m: (m != "loss", m))
        out.append(_benchmark(raws, ood, np.asarray(ids, dtype=np.int64), metrics, examples, manifest, task, ids != loss_ids))
    return out


def _benchmark(raws: list[RawRun], ood: set[str], test_ids: np.ndarray, metrics: list[str], examples: tuple[ExampleSet, ExampleSet, str, DesignInfo | None] | None,
               manifest: Manifest | None, task: str, extra: bool) -> Benchmark:
    first = next(r for r in raws if r.run.name not in ood) if len(ood) < len(raws) else raws[0]
    runs = []
    for raw in raws:
        traj = {m: raw.run.trajectories[m] for m in metrics if m in raw.metric_ids}
        own = raw.metric_ids[metrics[0]] if metrics[0] in raw.metric_ids else None
        if own is None or len(traj) != len(metrics):
            if raw.run.name in ood:
                continue  # an out-of-distribution run recorded without these trajectories: not in this benchmark
            missing = next(m for m in metrics if m not in raw.metric_ids)
            raise DataError(raw.path / f"all_{missing}_trajectory.out", "file not found (the other runs of its benchmark record it)")
        sub = None if np.array_equal(own, test_ids) else own
        if sub is not None and (raw.run.name not in ood or np.setdiff1d(own, test_ids).size):
            raise DataError(raw.path / f"all_{metrics[0]}_trajectory.out", f"test ids differ from run {first.run.name}: e.g. id {int(np.setxor1d(own, test_ids)[0])}", field="id")
        runs.append(dataclasses.replace(raw.run, trajectories=traj, test_ids=sub))
    runs_t = tuple(runs)
    train_ids = np.unique(np.concatenate([r.train_ids() for r in runs_t]))
    if examples is not None:
        train, test, train_name, flips = examples
        _check_ids_known(raws, train, train_name)
        absent = np.setdiff1d(test_ids, test.ids)
        if len(absent):
            raise DataError(first.path / f"all_{metrics[0]}_trajectory.out", f"test id {int(absent[0])} is not in the test example file", field="id")
        test = test.subset(test_ids)
    else:
        train, test, flips = ExampleSet.from_ids(train_ids), ExampleSet.from_ids(test_ids), None
    settings = dict(first.run.settings)
    setting = _setting_of(task)
    model = settings.get("model", "unknown")
    groups: dict[str, tuple[int, ...]] = flan_groups(test_ids) if task == "flan" else {}
    if manifest is not None:
        bench_id, meta, split, access = manifest.id, manifest.meta, manifest.split, manifest.model
        groups, design = dict(manifest.test_groups), manifest.design
    else:
        bench_id = _base_id(task, settings)
        meta = BenchmarkMeta(model=model, task=task, setting=setting, loss_type=_loss_type(settings, setting), n_params=_n_params(model),
                             trajectories=tuple(metrics), source="gptdynamics", description=f"GPTDynamics {setting} runs of {model} on {task}")
        split, access, design = None, None, flips
    if extra:
        bench_id += "+" + "-".join(metrics)
        meta = dataclasses.replace(meta, trajectories=tuple(metrics), description=f"{meta.description}: {', '.join(metrics)} on their own test ids")
    root = _runs_root(first.path)
    where = str(root / "tdabench.json") if manifest else str(first.path.parent)
    if split is None:
        published = published_split(task, {r.name: r.seed for r in runs_t}, ood & {r.name for r in runs_t})
        split = default_split(runs_t, test_ids) if published is None else _split_of(published, test_ids)
    check_split(split, runs_t, test_ids, where)
    unknown = sorted({i for ids in groups.values() for i in ids} - set(test_ids.tolist()))
    if unknown:
        raise DataError(where, f"test group lists test id {unknown[0]}, which is not in the benchmark", field="test_groups")
    return Benchmark(bench_id, meta, train, test, runs_t, split, root=root, model=access, test_groups=groups, design=design)


def _split_of(published: tuple[list[str], list[str], list[str], list[str], str], test_ids: np.ndarray) -> SplitSpec:
    from tdabench.sources.splits import HELDOUT_FRACTION, HELDOUT_SEED, heldout_test_ids

    fit, validation, evaluation, unseen, rule = published
    held = tuple(int(i) for i in heldout_test_ids(test_ids))
    return SplitSpec(tuple(fit), tuple(validation), tuple(evaluation), tuple(unseen), held,
                     f"{rule}; {HELDOUT_FRACTION:.0%} of test ids withheld for unseen-test (seed {HELDOUT_SEED})")


def _examples(first: RawRun, task: str) -> tuple[ExampleSet, ExampleSet, str, DesignInfo | None] | None:
    """The group's (train, test) examples, and the flips of a mislabel debug file; both example
    files, or neither, must be found."""
    files = find_example_files(first.path.parent, first.path.parent.name, first.run.settings.get("task") or task)
    if files is None:
        return None
    train_file, test_file, where = files
    if train_file is None or test_file is None:
        missing = "training" if train_file is None else "test"
        have = test_file if train_file is None else train_file
        assert have is not None  # one of the pair was found (files is not None)
        raise DataError(where, f"the {missing} example file of {task} is missing (found {have.name}); text-based methods need both")
    train, test = read_examples(train_file), read_examples(test_file)
    design = None
    if is_debug_file(train_file.name):
        flipped = read_flipped(train_file, train, test)
        if len(flipped):  # the clean copy is not a training example: each flip maps to itself
            design = DesignInfo("label-noise", {"fraction": round(len(flipped) / len(train), 4)}, {}, {int(i): int(i) for i in flipped})
    return train, test, train_file.name, design


def _check_distinct_seeds(group: list[RawRun]) -> None:
    """Runs of one role have distinct seeds (named in their directory): a copied run would
    otherwise serve as a fit or validation run and be scored as an evaluation run too."""
    seen: dict[int, RawRun] = {}
    for raw in group:
        if "seed" not in raw.run.settings:
            continue  # no seed in its name: numbered by position, nothing to compare
        other = seen.setdefault(raw.run.seed, raw)
        if other is not raw:
            raise DataError(raw.path, f"run {raw.run.name} has seed {raw.run.seed}, as run {other.run.name} does; a benchmark's "
                                      "runs need distinct seeds (remove the copy, or rename it with its own seed)", field="seed")


def _check_consistent(group: list[RawRun], *, ood_runs: bool) -> None:
    """Runs of one role share test ids, T and the recorded steps of each trajectory."""
    if not group:
        return
    ref = group[0]
    for raw in group[1:]:
        for metric, ids in raw.metric_ids.items():
            other = ref.metric_ids.get(metric)
            if other is not None and not np.array_equal(ids, other):
                diff = np.setxor1d(ids, other)
                raise DataError(raw.path / f"all_{metric}_trajectory.out", f"test ids differ from run {ref.run.name}: e.g. id {int(diff[0])}", field="id")
        if raw.run.n_steps != ref.run.n_steps:
            what = "out-of-distribution run" if ood_runs else "run"
            raise DataError(raw.path / BATCHES_FILE, f"{raw.run.n_steps} steps, but {what} {ref.run.name} has {ref.run.n_steps}", field="step")
        for metric, tr in raw.run.trajectories.items():
            other_tr: Trajectory | None = ref.run.trajectories.get(metric)
            if other_tr is not None and not np.array_equal(tr.steps, other_tr.steps):
                raise DataError(raw.path / f"all_{metric}_trajectory.out", f"recorded steps differ from run {ref.run.name}", field="step")


def _check_ids_known(group: list[RawRun], train: ExampleSet, train_name: str) -> None:
    """Every training id in every batch must be in the example file."""
    lo, hi = int(train.ids.min()), int(train.ids.max())
    for raw in group:
        b = raw.run.batches
        bad = (b >= 0) & (train.positions(b) < 0)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise DataError(
                raw.path / BATCHES_FILE,
                f"training id {int(b[row, col])} is out of range: {train_name} has ids {lo}..{hi}",
                line=row + 1,
                field="samples_id",
            )


def _disambiguate(found: list[Found]) -> list[Found]:
    """Benchmarks that would share an id get the settings that tell them apart appended (``+loss-last-token``)."""
    by_id: dict[str, list[Found]] = defaultdict(list)
    for f in found:
        by_id[f.id].append(f)
    out = []
    for same in by_id.values():
        if len(same) < 2:
            out += same
            continue
        settings = [dict(f.settings) for f in same]
        keys = sorted({k for s in settings for k in s if k not in ("seed", "task", "model")})
        differing = [k for k in keys if len({s.get(k) for s in settings}) > 1]
        if not differing:
            raise TDABenchError(f"two benchmarks would both be {same[0].id!r} with the same settings; give each folder a tdabench.json manifest")
        for f, s in zip(same, settings):
            new = f.id.split("+", 1)[0] + "+" + "+".join(f"{k}-{s.get(k, 'none')}" for k in differing) + ("+" + f.id.split("+", 1)[1] if "+" in f.id else "")
            out.append(Found(new, f.description, _renamed(f.load, new), f.settings))
    return out


def _renamed(load: Callable[[], Benchmark], new_id: str) -> Callable[[], Benchmark]:
    def renamed() -> Benchmark:
        return dataclasses.replace(load(), id=new_id)

    return renamed


__all__ = ["Found", "load_benchmarks", "scan_benchmarks", "Run"]
