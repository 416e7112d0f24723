"""Tasks the recorder fine-tunes on: built-in ones, JSON Lines files, ``datasets`` folders.

A task gives a training pool split into pool A (the runs of the main split sample from it)
and pool B (disjoint; the ``unseen-train`` runs sample from it), a test set, a loss type
and the metrics to record.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdabench.data import ExampleSet
from tdabench.errors import DataError, TDABenchError, UnknownNameError
from tdabench.formats.gptdynamics_read import read_examples

BANK_TASKS_DIR = Path(__file__).resolve().parents[1] / "bank" / "tasks"
FT_TASKS: dict[str, tuple[str, str]] = {  # name -> (loss type, GPTDynamics task it mirrors)
    "sentiment": ("last-token", "sst2"),
    "entailment": ("output-tokens", "rte"),
    "boolq": ("output-tokens", "boolq"),
    "webnlg": ("output-tokens", "webnlg"),
    "wmt": ("output-tokens", "wmt16_de_en"),
}
GENERATION_TASKS = ("webnlg", "wmt")
MIXTURE = "mixture"
BUILTIN_TASKS: tuple[str, ...] = (*FT_TASKS, MIXTURE)
POOL_SIZE = 200  # per fine-tuning task, as in GPTDynamics (128 of 200 sampled per run)
MIX_PER_TASK, MIX_TEST_PER_TASK, MIX_ID_STRIDE = 40, 25, 1000
TEXT_METRICS = ("bleu", "rougeL")


@dataclass(frozen=True, eq=False)
class Task:
    """A task ready to record.

    Attributes:
        name: the task part of run directory names.
        setting: ``ft`` or ``it``.
        train: every training example (pool A and pool B).
        pool_a: ids the main runs sample from.
        pool_b: disjoint ids the ``unseen-train`` runs sample from (may be empty).
        test: the test examples.
        loss_type: see :mod:`tdabench.methods.lm`.
        generation: whether BLEU / ROUGE-L of generated answers are meaningful.
        description: one line for the manifest.
        templates: training id -> how the prompt was built (the example file's ``template`` key), where known.
    """

    name: str
    setting: str
    train: ExampleSet
    pool_a: np.ndarray
    pool_b: np.ndarray
    test: ExampleSet
    loss_type: str
    generation: bool
    description: str
    templates: Mapping[int, str] = dataclasses.field(default_factory=dict)

    def groups(self, grouping: str) -> dict[int, str]:
        """Training id -> group: ``task`` (a mixture's task), ``label`` (the target),
        ``template`` or ``label+template``."""
        ids = self.train.ids
        if grouping == "task":
            return {int(i): _task_of(int(i)) if self.setting == "it" else self.name for i in ids}
        label = {int(i): t.strip() or "-" for i, t in zip(ids, self.train.targets)}
        if grouping == "label":
            return label
        tmpl = {int(i): self.templates.get(int(i) % FLIP_OFFSET, "-") for i in ids}
        if grouping == "template":
            return tmpl
        if grouping == "label+template":
            return {i: f"{label[i]}/{tmpl[i]}" for i in label}
        raise ValueError(f"unknown grouping {grouping!r}")

    def test_groups(self) -> dict[str, list[int]]:
        """A mixture's test examples by task (empty for a single task): scored per group."""
        if self.setting != "it":
            return {}
        out: dict[str, list[int]] = {}
        for i in self.test.ids.tolist():
            out.setdefault(_task_of(i), []).append(i)
        return out


def _task_of(mixture_id: int) -> str:
    """The built-in task of a mixture id (task k holds ids k * 1000 + i, flipped copies too)."""
    return list(FT_TASKS)[mixture_id % FLIP_OFFSET // MIX_ID_STRIDE]


#: Flipped-label copies (the ``label-noise`` design) carry ids ``id + FLIP_OFFSET``: far above
#: any built-in or published id range.
FLIP_OFFSET = 100_000


def with_flipped_labels(task: Task, flips: Mapping[int, int]) -> Task:
    """``task`` whose training set also holds the flipped copies ``{new id: original id}``:
    the same prompt with the other label (two-label tasks only)."""
    labels = sorted({t for t in task.train.targets})
    if len(labels) != 2:
        raise TDABenchError(f"label noise needs a task with two labels; {task.name} has {len(labels)}")
    other = {labels[0]: labels[1], labels[1]: labels[0]}
    src = task.train.subset(np.array(sorted(flips.values()), dtype=np.int64))
    new_ids = np.array(sorted(flips), dtype=np.int64)
    pos = src.positions(np.array([flips[int(i)] for i in new_ids]))
    prompts = tuple(src.prompts[p] for p in pos)
    targets = tuple(other[src.targets[p]] for p in pos)
    flipped = ExampleSet(new_ids, prompts, targets, tuple(c + t for c, t in zip(prompts, targets)))
    templates = {**task.templates, **{int(i): task.templates.get(flips[int(i)], "-") for i in new_ids}}
    return dataclasses.replace(task, train=_concat([task.train, flipped]), templates=templates)


def _templates(path: Path) -> dict[int, str]:
    """id -> ``template`` of an example file that records it (the built-in tasks do)."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                if isinstance(obj.get("template"), str):
                    out[int(obj["id"])] = obj["template"]
    return out


def _offset(ex: ExampleSet, offset: int, keep: np.ndarray) -> ExampleSet:
    sub = ex.subset(keep)
    return ExampleSet(sub.ids + offset, sub.prompts, sub.targets, sub.texts)


def _concat(parts: list[ExampleSet]) -> ExampleSet:
    return ExampleSet(
        np.concatenate([p.ids for p in parts]),
        tuple(x for p in parts for x in p.prompts),
        tuple(x for p in parts for x in p.targets),
        tuple(x for p in parts for x in p.texts),
    )


def builtin_task(name: str) -> Task:
    """One of :data:`BUILTIN_TASKS`, read from the shipped JSON Lines."""
    if name in FT_TASKS:
        loss, mirrors = FT_TASKS[name]
        train = read_examples(BANK_TASKS_DIR / name / "train.jsonl")
        test = read_examples(BANK_TASKS_DIR / name / "test.jsonl")
        ids = train.ids
        return Task(name, "ft", train, ids[:POOL_SIZE], ids[POOL_SIZE : 2 * POOL_SIZE], test, loss,
                    name in GENERATION_TASKS, f"built-in {name} task (mirrors GPTDynamics {mirrors})",
                    _templates(BANK_TASKS_DIR / name / "train.jsonl"))
    if name != MIXTURE:
        raise UnknownNameError("task", name, list(BUILTIN_TASKS))
    trains, tests, pool_a, pool_b = [], [], [], []
    templates: dict[int, str] = {}
    for k, task in enumerate(FT_TASKS):
        off = k * MIX_ID_STRIDE
        tr = read_examples(BANK_TASKS_DIR / task / "train.jsonl")
        te = read_examples(BANK_TASKS_DIR / task / "test.jsonl")
        a, b = np.arange(MIX_PER_TASK), POOL_SIZE + np.arange(MIX_PER_TASK)
        trains.append(_offset(tr, off, np.concatenate([a, b])))
        tests.append(_offset(te, off, np.arange(MIX_TEST_PER_TASK)))
        pool_a.append(a + off)
        pool_b.append(b + off)
        # Mixture test ids share the training ids' space (task k at k * 1000 + i).
        templates.update({i + off: v for i, v in _templates(BANK_TASKS_DIR / task / "train.jsonl").items()})
    return Task("it_mixture", "it", _concat(trains), np.concatenate(pool_a), np.concatenate(pool_b), _concat(tests),
                "output-tokens", True, "built-in instruction-tuning mixture of the five built-in tasks", templates)


def pretrain_examples(tasks: tuple[str, ...] = tuple(FT_TASKS)) -> ExampleSet:
    """The held-out pre-training examples of the task family (never in any train or test file)."""
    parts = [_offset(ex, k * 10_000, ex.ids) for k, ex in enumerate(read_examples(BANK_TASKS_DIR / t / "pretrain.jsonl") for t in tasks)]
    return _concat(parts)


def _file_task(examples: ExampleSet, test: ExampleSet | None, name: str, loss_type: str, n_test: int, shot: int | None, generation: bool, where: Path) -> Task:
    if test is None:
        n_test = min(n_test, len(examples) // 4)
        if n_test < 1:
            raise DataError(where, f"{len(examples)} examples are too few to hold out a test set")
        test = examples.subset(examples.ids[-n_test:])
        examples = examples.subset(examples.ids[:-n_test])
    ids = examples.ids
    shot = len(ids) if shot is None else shot
    if shot > len(ids) or shot < 1:
        raise TDABenchError(f"--shot {shot} must be between 1 and the {len(ids)} training examples of {where}")
    return Task(name, "ft", examples, ids[:shot], ids[shot:], test, loss_type, generation, f"task from {where}")


def _datasets_examples(path: Path) -> tuple[ExampleSet, ExampleSet | None]:
    """A folder written by ``datasets.save_to_disk``: columns context+input or prompt+completion."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(path, f"not a datasets folder ({exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(path, f"no 'train' split (splits: {', '.join(ds)})")
        test_name = next((s for s in ("test", "validation", "eval", "dev") if s in ds), None)
        return _from_rows(ds["train"], path), (_from_rows(ds[test_name], path) if test_name else None)
    return _from_rows(ds, path), None


def _from_rows(ds: object, path: Path) -> ExampleSet:
    cols = set(ds.column_names)  # type: ignore[attr-defined]
    if {"context", "input"} <= cols:
        prompts, texts = list(ds["context"]), list(ds["input"])  # type: ignore[index]
    else:
        target_col = next((c for c in ("completion", "target", "answer", "output") if c in cols), None)
        if "prompt" not in cols or target_col is None:
            raise DataError(path, f"needs columns context+input or prompt+completion, has {sorted(cols)}")
        prompts = list(ds["prompt"])  # type: ignore[index]
        texts = [p + t for p, t in zip(prompts, ds[target_col])]  # type: ignore[index]
    ids = np.asarray(ds["id"] if "id" in cols else np.arange(len(prompts)), dtype=np.int64)  # type: ignore[index]
    targets = tuple(t[len(c):] if t.startswith(c) else "" for t, c in zip(texts, prompts))
    return ExampleSet(ids, tuple(prompts), targets, tuple(texts))


def load_task(spec: str, *, loss_type: str = "output-tokens", n_test: int = 128, shot: int | None = None, generation: bool = False) -> Task:
    """A built-in task name, a JSON Lines file (GPTDynamics example format) or a ``datasets`` folder.

    A built-in task keeps its first ``n_test`` test examples and, with ``shot``, the first
    ``shot`` ids of its pool A. For files and folders without a
    test split, the last ``n_test`` examples by id (at most a quarter) are the test set; the first ``shot`` training ids form pool A, the rest pool B.
    """
    if spec in BUILTIN_TASKS:
        task = builtin_task(spec)
        if n_test < len(task.test):  # a smaller test set: its first n_test examples (of each task of a mixture)
            by_task = task.test_groups() or {task.name: task.test.ids.tolist()}
            per = -(-n_test // len(by_task))
            keep = np.sort(np.concatenate([np.asarray(ids[:per], dtype=np.int64) for ids in by_task.values()]))
            task = dataclasses.replace(task, test=task.test.subset(keep))
        if shot is not None:  # a smaller pool A: its first `shot` ids
            if not 1 <= shot <= len(task.pool_a):
                raise TDABenchError(f"--shot {shot} must be between 1 and the {len(task.pool_a)} examples of pool A of {spec}")
            task = dataclasses.replace(task, pool_a=task.pool_a[:shot])
        return task
    path = Path(spec).expanduser()
    if not path.exists():
        if "/" in spec or spec.endswith((".json", ".jsonl")):
            raise DataError(path, "file not found")
        raise UnknownNameError("task", spec, list(BUILTIN_TASKS))
    name = path.stem.replace("_", "-") if path.is_file() else path.name.replace("_", "-")
    if path.is_file():
        examples, test = read_examples(path), None
    else:
        examples, test = _datasets_examples(path)
    if not len(examples):
        raise DataError(path, "no examples")
    return _file_task(examples, test, name, loss_type, n_test, shot, generation, path)


def write_task_jsonl(path: Path, examples: ExampleSet) -> None:
    """Write examples in the GPTDynamics format (used by tests and users)."""
    path.write_text("".join(json.dumps({"id": int(i), "input": t, "context": c}) + "\n"
                            for i, t, c in zip(examples.ids, examples.texts, examples.prompts)), encoding="utf-8")
