"""Read the GPTDynamics layout (see docs/formats.md and the reference data description).

Accepted locations:

* a root holding ``runs/<task>/<run dir>/`` beside ``gptdynamics/{it_tasks,sft_tasks}``;
* a single ``runs/<task>`` folder;
* a single run directory.

Every problem is a :class:`DataError` naming the file, line and field.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdabench.data import ExampleSet, Run, Trajectory
from tdabench.errors import DataError
from tdabench.formats.jsonl import read_jsonl, require
from tdabench.formats.names import parse_run_name

BATCHES_FILE = "train_samples_id.json"
LOG_FILE = "log.out"
TRAJECTORY_PREFIX, TRAJECTORY_SUFFIX = "all_", "_trajectory.out"
TEST_FILE_WORDS = ("validation", "eval", "dev", "test")


def is_run_dir(path: Path) -> bool:
    """A run directory holds its batches and at least the loss trajectory."""
    return (path / BATCHES_FILE).is_file()


def find_run_dirs(path: Path) -> list[Path]:
    """Every run directory under ``path`` (a root, a ``runs/<task>`` folder or a run)."""
    if not path.is_dir():
        raise DataError(path, "directory not found")
    if is_run_dir(path):
        return [path]
    # A runs/<task> folder, a runs folder, or a root holding runs/<task>/<run>.
    patterns = ("*/", "*/*/", "runs/*/*/")
    return sorted({p.parent for pat in patterns for p in path.glob(pat + BATCHES_FILE)})


def read_batches(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``train_samples_id.json`` -> (steps int64 [T] = 1..T, batches int64 [T, B] -1 padded)."""
    steps: list[int] = []
    rows: list[list[int]] = []
    lines: list[int] = []
    for lineno, obj in read_jsonl(path):
        step = require(obj, "step", int, path, lineno)
        ids = require(obj, "samples_id", list, path, lineno)
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise DataError(path, f"expected a non-empty list of ids >= 0, got {ids!r}", line=lineno, field="samples_id")
        steps.append(step)
        rows.append(ids)
        lines.append(lineno)
    if not steps:
        raise DataError(path, "no steps recorded")
    step_arr = np.asarray(steps, dtype=np.int64)
    _check_steps(path, step_arr, lines, start=1)
    width = max(len(r) for r in rows)
    batches = np.full((len(rows), width), -1, dtype=np.int64)
    for t, r in enumerate(rows):
        batches[t, : len(r)] = r
    return step_arr, batches


def _check_steps(path: Path, steps: np.ndarray, lines: list[int], *, start: int) -> None:
    """Steps must run ``start..T`` with no duplicate and no gap."""
    seen: dict[int, int] = {}
    for step, line in zip(steps.tolist(), lines):
        if step in seen:
            raise DataError(path, f"duplicate step {step} (first at line {seen[step]})", line=line, field="step")
        seen[step] = line
    expected = np.arange(start, start + len(steps))
    if not np.array_equal(np.sort(steps), expected):
        missing = sorted(set(expected.tolist()) - set(steps.tolist()))
        raise DataError(path, f"missing step {missing[0]} (steps must run {start}..{start + len(steps) - 1})", field="step")
    if not np.all(np.diff(steps) > 0):
        bad = int(np.argmin(np.diff(steps) > 0)) + 1
        raise DataError(path, "steps out of order", line=lines[bad], field="step")


def read_trajectories(path: Path, n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``all_<metric>_trajectory.out`` -> (test ids [n], steps [K], values [n, K]).

    Rows come sorted by test id. Every line must list the same steps, within ``0..n_steps``.
    """
    ids: list[int] = []
    lines: list[int] = []
    all_steps: list[list[int]] = []
    all_vals: list[list[float]] = []
    for lineno, obj in read_jsonl(path):
        ids.append(require(obj, "id", int, path, lineno))
        key = next((k for k in obj if k.endswith("_trajectory")), "loss_trajectory")
        entries = require(obj, key, list, path, lineno)
        try:
            all_steps.append([e["step"] for e in entries])
            all_vals.append([e["loss"] for e in entries])
        except (KeyError, TypeError) as exc:
            raise DataError(path, f"each entry needs 'step' and 'loss' ({exc!r} missing)", line=lineno, field=key) from None
        lines.append(lineno)
    if not ids:
        raise DataError(path, "no test examples")
    # The most common step list is the reference, so the odd line out is the one blamed.
    first = list(Counter(map(tuple, all_steps)).most_common(1)[0][0])
    for steps, line in zip(all_steps, lines):
        if steps != first:
            raise DataError(path, f"trajectory has {len(steps)} steps, other lines have {len(first)}", line=line, field="loss_trajectory")
    steps_arr = np.asarray(first, dtype=np.int64)
    _check_trajectory_steps(path, steps_arr, n_steps, lines[0])
    try:
        values = np.asarray(all_vals, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(i for i, v in enumerate(all_vals) if not all(isinstance(x, (int, float)) for x in v))
        raise DataError(path, "values must be numbers", line=lines[bad], field="loss") from None
    finite = np.isfinite(values)
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        raise DataError(path, f"value {values[row, col]} at step {first[col]} is not finite", line=lines[row], field="loss")
    id_arr = np.asarray(ids, dtype=np.int64)
    order = np.argsort(id_arr, kind="stable")
    dup = np.flatnonzero(np.diff(id_arr[order]) == 0)
    if len(dup):
        raise DataError(path, f"duplicate test id {id_arr[order][dup[0]]}", line=lines[order[dup[0] + 1]], field="id")
    return id_arr[order], steps_arr, values[order]


def _check_trajectory_steps(path: Path, steps: np.ndarray, n_steps: int, line: int) -> None:
    if len(steps) < 2:
        raise DataError(path, f"a trajectory needs at least 2 steps, got {len(steps)}", line=line, field="loss_trajectory")
    diffs = np.diff(steps)
    if np.any(diffs == 0):
        raise DataError(path, f"duplicate step {int(steps[np.argmin(diffs)])}", line=line, field="step")
    if np.any(diffs < 0):
        raise DataError(path, "steps out of order", line=line, field="step")
    if steps[0] < 0 or steps[-1] > n_steps:
        raise DataError(path, f"trajectory runs to step {int(steps[-1])} but {BATCHES_FILE} has {n_steps} steps", line=line, field="loss_trajectory")
    consecutive = bool(np.all(diffs == 1))
    if consecutive and steps[-1] != n_steps:
        raise DataError(
            path,
            f"trajectory has {len(steps)} steps ({int(steps[0])}..{int(steps[-1])}) but {BATCHES_FILE} has {n_steps}",
            line=line,
            field="loss_trajectory",
        )


def read_log(path: Path, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``log.out`` (Python-dict lines) -> (lr [T], train loss [T]); NaN where absent."""
    lr = np.full(n_steps, np.nan)
    loss = np.full(n_steps, np.nan)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = ast.literal_eval(line.strip())
            except (ValueError, SyntaxError):
                raise DataError(path, "malformed log line (expected a Python dict)", line=lineno) from None
            if not isinstance(obj, dict) or "step" not in obj:
                continue  # published logs interleave other records
            step = obj["step"]
            if isinstance(step, int) and 1 <= step <= n_steps:
                lr[step - 1] = float(obj.get("lr", obj.get("learning_rate", np.nan)))
                loss[step - 1] = float(obj.get("loss", np.nan))
    return lr, loss


def inferred_lr(settings: dict[str, str], n_steps: int) -> np.ndarray:
    """The published schedule (AdamW, linear decay to 0, no warmup) from the run name's ``lr``."""
    try:
        lr0 = float(settings["lr"])
    except (KeyError, ValueError):
        return np.full(n_steps, np.nan)
    return lr0 * (1.0 - np.arange(n_steps) / n_steps)


@dataclass(frozen=True)
class RawRun:
    """A run as read, before it is aligned to its benchmark's test ids."""

    run: Run
    test_ids: np.ndarray
    path: Path


def read_run(path: Path, *, seed_fallback: int = 0) -> RawRun:
    """Read one run directory."""
    steps, batches = read_batches(path / BATCHES_FILE)
    n_steps = len(steps)
    settings = parse_run_name(path.name)
    trajectories: dict[str, Trajectory] = {}
    test_ids: np.ndarray | None = None
    ref_file: Path | None = None
    files = sorted(path.glob(TRAJECTORY_PREFIX + "*" + TRAJECTORY_SUFFIX))
    if not any(f.name == "all_loss_trajectory.out" for f in files):
        raise DataError(path / "all_loss_trajectory.out", "file not found")
    for f in files:
        metric = f.name[len(TRAJECTORY_PREFIX) : -len(TRAJECTORY_SUFFIX)]
        ids, tsteps, values = read_trajectories(f, n_steps)
        if test_ids is None:
            test_ids, ref_file = ids, f
        elif not np.array_equal(ids, test_ids):
            diff = np.setxor1d(ids, test_ids)
            raise DataError(f, f"test ids differ from {ref_file.name}: e.g. id {int(diff[0])}", field="id")
        trajectories[metric] = Trajectory(tsteps, values)
    if (path / LOG_FILE).is_file():
        lr, train_loss = read_log(path / LOG_FILE, n_steps)
    else:
        lr, train_loss = inferred_lr(settings, n_steps), None
    seed = int(settings["seed"]) if settings.get("seed", "").lstrip("-").isdigit() else seed_fallback
    run = Run(path.name, seed, batches, lr, trajectories, settings, train_loss)
    assert test_ids is not None
    return RawRun(run, test_ids, path)


def read_examples(path: Path) -> ExampleSet:
    """An example file (JSON Lines with ``id``, ``input``, ``context``; other keys ignored)."""
    ids: list[int] = []
    prompts: list[str] = []
    texts: list[str] = []
    first_line: dict[int, int] = {}
    for lineno, obj in read_jsonl(path):
        i = require(obj, "id", int, path, lineno)
        if i in first_line:
            raise DataError(path, f"duplicate id {i} (first at line {first_line[i]})", line=lineno, field="id")
        first_line[i] = lineno
        text = require(obj, "input", str, path, lineno)
        context = obj.get("context", "")
        if not isinstance(context, str):
            raise DataError(path, f"expected str, got {context!r}", line=lineno, field="context")
        ids.append(i)
        prompts.append(context)
        texts.append(text)
    targets = tuple(t[len(c) :] if t.startswith(c) else "" for t, c in zip(texts, prompts))
    return ExampleSet(np.asarray(ids, dtype=np.int64), tuple(prompts), targets, tuple(texts))


def find_example_files(start: Path, task: str) -> tuple[Path, Path] | None:
    """(train file, test file) for ``task``, searched in ``gptdynamics/`` at or above ``start``."""
    for base in [start, *start.parents][:4]:
        gd = base / "gptdynamics"
        if not gd.is_dir():
            continue
        if task == "flan" or task.startswith(("flan", "it")):
            pair = _pick_pair(sorted((gd / "it_tasks").glob("*.json")))
        else:
            folders = sorted(p for p in (gd / "sft_tasks").glob("*") if p.is_dir())
            folder = next((p for p in folders if p.name == task), None) or next(
                (p for p in folders if task.startswith(p.name) or p.name.startswith(task)), None
            )
            pair = _pick_pair(sorted(folder.glob("*.json"))) if folder else None
        if pair:
            return pair
    return None


def _pick_pair(files: Iterable[Path]) -> tuple[Path, Path] | None:
    files = list(files)
    train = next((f for f in files if "train" in f.name), None)
    test = next((f for f in files if "train" not in f.name and any(w in f.name for w in TEST_FILE_WORDS)), None)
    return (train, test) if train and test else None
