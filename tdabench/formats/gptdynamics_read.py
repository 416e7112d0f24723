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
from tdabench.formats.gptdynamics_release import EXAMPLE_FILES, is_debug_file, run_role
from tdabench.formats.jsonl import check_int, check_number, read_jsonl, require
from tdabench.formats.names import parse_run_name

BATCHES_FILE = "train_samples_id.json"
LOG_FILE = "log.out"
TRAJECTORY_PREFIX, TRAJECTORY_SUFFIX = "all_", "_trajectory.out"
TEST_FILE_WORDS = ("validation", "eval", "dev", "test")
#: The largest magnitude a recorded value may have (losses, BLEU 0-100, ROUGE 0-1 are far below);
#: beyond it squared errors overflow. Learning rates are bounded likewise.
MAX_VALUE = 1e6
MAX_LR = 10.0


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
        step = check_int(require(obj, "step", int, path, lineno), path, lineno, "step", lo=1)
        ids = require(obj, "samples_id", list, path, lineno)
        if not ids:
            raise DataError(path, "expected a non-empty list of ids, got []", line=lineno, field="samples_id")
        for i in ids:
            check_int(i, path, lineno, "samples_id", lo=0)
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
            steps_row = [e["step"] for e in entries]
            vals_row = [e["loss"] for e in entries]
        except (KeyError, TypeError) as exc:
            raise DataError(path, f"each entry needs 'step' and 'loss' ({exc!r} missing)", line=lineno, field=key) from None
        if not all(type(v) is int for v in steps_row):  # noqa: E721 - a bool or float is not a step
            bad = next(v for v in steps_row if type(v) is not int)  # noqa: E721
            check_int(bad, path, lineno, "step")
        if not all(type(v) is float or type(v) is int for v in vals_row):  # noqa: E721 - no strings, no booleans
            bad = next(v for v in vals_row if not (type(v) is float or type(v) is int))  # noqa: E721
            check_number(bad, path, lineno, "loss")
        all_steps.append(steps_row)
        all_vals.append(vals_row)
        lines.append(lineno)
    if not ids:
        raise DataError(path, "no test examples")
    # The most common step list is the reference, so the odd line out is the one blamed.
    first = list(Counter(map(tuple, all_steps)).most_common(1)[0][0])
    for steps, line in zip(all_steps, lines):
        if steps != first:
            if min(steps, default=0) < 0:
                raise DataError(path, f"step {min(steps)} is negative (steps run 0..{n_steps})", line=line, field="step")
            if len(steps) != len(first):
                raise DataError(path, f"trajectory has {len(steps)} steps, other lines have {len(first)}", line=line, field="loss_trajectory")
            k = next(i for i, (a, b) in enumerate(zip(steps, first)) if a != b)
            raise DataError(path, f"entry {k + 1} is step {steps[k]} where the other lines have step {first[k]}", line=line, field="step")
    steps_arr = np.asarray(first, dtype=np.int64)
    _check_trajectory_steps(path, steps_arr, n_steps, lines[0])
    try:
        values = np.asarray(all_vals, dtype=np.float64)
    except OverflowError:
        raise DataError(path, f"a value is too large for a float (beyond {MAX_VALUE:g})", field="loss") from None
    finite = np.isfinite(values) & (np.abs(values) <= MAX_VALUE)
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        v = values[row, col]
        what = "is not finite" if not np.isfinite(v) else f"is beyond ±{MAX_VALUE:g} (its squared errors would overflow)"
        raise DataError(path, f"value {v} at step {first[col]} {what}", line=lines[row], field="loss")
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
    if steps[0] < 0:
        raise DataError(path, f"step {int(steps[0])} is negative (steps run 0..{n_steps})", line=line, field="step")
    if steps[-1] > n_steps:
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
    """``log.out`` (Python-dict lines) -> (lr [T], train loss [T]); NaN where absent.

    A line may carry a progress-bar prefix (a tqdm line without its newline) before the
    dict; the prefix is skipped, as the authors' preprocessing does. ``None`` is absent; a
    string or a boolean where a number belongs is an error.
    """
    lr = np.full(n_steps, np.nan)
    loss = np.full(n_steps, np.nan)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not valid UTF-8 text (byte {exc.start + 1})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        start = line.find("{")
        if start < 0:
            continue  # progress bars and other output between the records
        try:
            obj = ast.literal_eval(line[start:].strip())
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            raise DataError(path, "malformed log line (expected a Python dict)", line=lineno) from None
        if not isinstance(obj, dict) or "step" not in obj:
            continue  # published logs interleave other records
        step = check_int(obj["step"], path, lineno, "step")
        if not 1 <= step <= n_steps:
            continue
        for key, out, hi in (("lr", lr, MAX_LR), ("learning_rate", lr, MAX_LR), ("loss", loss, MAX_VALUE)):
            if obj.get(key) is not None:
                out[step - 1] = check_number(obj[key], path, lineno, key, lo=0.0, hi=hi)
    return lr, loss


def inferred_lr(settings: dict[str, str], n_steps: int) -> np.ndarray:
    """The published schedule (AdamW, linear decay to 0, no warmup) from the run name's ``lr``."""
    try:
        lr0 = float(settings["lr"])
    except (KeyError, ValueError):
        return np.full(n_steps, np.nan)
    return lr0 * (1.0 - np.arange(n_steps) / n_steps)


def filled_lr(lr: np.ndarray, settings: dict[str, str]) -> np.ndarray:
    """``lr`` with steps the log left out taken from the published schedule (where the name gives it)."""
    return np.where(np.isfinite(lr), lr, inferred_lr(settings, len(lr)))


@dataclass(frozen=True)
class RawRun:
    """A run as read, before it is aligned to its benchmark's test ids.

    Attributes:
        run: the run, every trajectory file included (rows in each file's own id order).
        metric_ids: trajectory -> its test ids (a metric file may cover a subset: FLAN's BLEU).
        path: the run directory.
    """

    run: Run
    metric_ids: dict[str, np.ndarray]
    path: Path

    @property
    def test_ids(self) -> np.ndarray:
        """The loss file's test ids."""
        return self.metric_ids["loss"]


def read_run(path: Path, *, seed_fallback: int = 0) -> RawRun:
    """Read one run directory."""
    steps, batches = read_batches(path / BATCHES_FILE)
    n_steps = len(steps)
    settings = parse_run_name(path.name)
    trajectories: dict[str, Trajectory] = {}
    metric_ids: dict[str, np.ndarray] = {}
    files = sorted(path.glob(TRAJECTORY_PREFIX + "*" + TRAJECTORY_SUFFIX))
    if not any(f.name == "all_loss_trajectory.out" for f in files):
        raise DataError(path / "all_loss_trajectory.out", "file not found")
    for f in files:
        metric = f.name[len(TRAJECTORY_PREFIX) : -len(TRAJECTORY_SUFFIX)]
        metric_ids[metric], tsteps, values = read_trajectories(f, n_steps)
        trajectories[metric] = Trajectory(tsteps, values)
    if (path / LOG_FILE).is_file():
        lr, train_loss = read_log(path / LOG_FILE, n_steps)
        lr = filled_lr(lr, settings)
    else:
        lr, train_loss = inferred_lr(settings, n_steps), None
    seed = int(settings["seed"]) if settings.get("seed", "").lstrip("-").isdigit() else seed_fallback
    run = Run(path.name, seed, batches, lr, trajectories, settings, train_loss)
    return RawRun(run, metric_ids, path)


def read_examples(path: Path) -> ExampleSet:
    """An example file (JSON Lines with ``id``, ``input``, ``context``; other keys ignored)."""
    ids: list[int] = []
    prompts: list[str] = []
    texts: list[str] = []
    first_line: dict[int, int] = {}
    for lineno, obj in read_jsonl(path):
        i = check_int(require(obj, "id", int, path, lineno), path, lineno, "id")
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
    if not ids:
        raise DataError(path, "the example file holds no examples")
    targets = tuple(t[len(c) :] if t.startswith(c) else "" for t, c in zip(texts, prompts))
    return ExampleSet(np.asarray(ids, dtype=np.int64), tuple(prompts), targets, tuple(texts))


#: Keys an example file may use to mark an example whose label was flipped (the mislabel use case).
MISLABEL_KEYS: tuple[str, ...] = ("is_mislabelled", "is_mislabeled", "mislabelled", "mislabeled", "is_flipped", "flipped")


def read_flipped(path: Path, train: ExampleSet, test: ExampleSet) -> np.ndarray:
    """The ids of ``path``'s examples whose label was flipped (the SST-2 debug files).

    A boolean key of :data:`MISLABEL_KEYS` marks them where the file has one; otherwise an
    example is flipped when its target differs from the test file's example of the same id
    (the debug evaluation file keeps the true labels). Empty when neither says anything.
    """
    marked: list[int] = []
    keyed = False
    for lineno, obj in read_jsonl(path):
        key = next((k for k in MISLABEL_KEYS if k in obj), None)
        if key is None:
            continue
        keyed = True
        if not isinstance(obj[key], (bool, int)) or obj[key] not in (0, 1):
            raise DataError(path, f"expected true or false, got {obj[key]!r}", line=lineno, field=key)
        if obj[key]:
            marked.append(int(obj["id"]))
    if keyed:
        return np.asarray(sorted(marked), dtype=np.int64)
    common = np.intersect1d(train.ids, test.ids)
    a, b = train.positions(common), test.positions(common)
    return common[[train.targets[i].strip() != test.targets[j].strip() for i, j in zip(a, b)]] if len(common) else common


def find_example_files(start: Path, folder: str, task: str) -> tuple[Path | None, Path | None, Path] | None:
    """(train file, test file, the ``gptdynamics/`` folder searched) for the runs of ``runs/<folder>``
    whose name says ``task``, in ``gptdynamics/`` at or up to three levels above ``start``.

    Files are picked by role, never by sort order: the published file names of the task first
    (:data:`~tdabench.formats.gptdynamics_release.EXAMPLE_FILES`), else the task's folder's
    train file and its validation/eval/dev/test file; files of the mislabel use case (``debug``,
    ``mislabel``) only for runs of that use case. A file of the pair that is missing is None.
    """
    role = run_role(folder, task)
    for base in [start, *start.parents][:4]:
        gd = base / "gptdynamics"
        if not gd.is_dir():
            continue
        published: tuple[Path | None, Path | None, Path] | None = None
        if role.examples in EXAMPLE_FILES:
            sub_name, train_name, test_name = EXAMPLE_FILES[role.examples]
            pair = (gd / sub_name / train_name, gd / sub_name / test_name)
            if pair[0].is_file() and pair[1].is_file():
                return (*pair, gd / sub_name)
            if pair[0].is_file() or pair[1].is_file():  # half a published pair: a recorder's own pair may share a name
                published = (pair[0] if pair[0].is_file() else None, pair[1] if pair[1].is_file() else None, gd / sub_name)
        debug = is_debug_file(folder) or is_debug_file(task)
        if role.task.startswith(("flan", "it")):
            found: tuple[Path | None, Path | None] | None = _pick_pair(sorted((gd / "it_tasks").glob("*.json")), debug)
            where = gd / "it_tasks"
        else:
            folders = sorted(p for p in (gd / "sft_tasks").glob("*") if p.is_dir())
            sub = next((p for p in folders if p.name == role.task), None) or next(
                (p for p in folders if role.task.startswith(p.name) or p.name.startswith(role.task)), None
            )
            found, where = (_pick_pair(sorted(sub.glob("*.json")), debug), sub) if sub else (None, gd)
        if found and found[0] and found[1]:
            return (*found, where)
        if published is not None:
            return published
        if found and (found[0] or found[1]):
            return (*found, where)
    return None


def _pick_pair(files: Iterable[Path], debug: bool) -> tuple[Path | None, Path | None]:
    files = [f for f in files if is_debug_file(f.name) == debug]
    train = next((f for f in files if "train" in f.name), None)
    test = next((f for f in files if "train" not in f.name and any(w in f.name for w in TEST_FILE_WORDS)), None)
    return train, test
