"""The typed, numpy-backed data model: examples, runs, benchmarks.

Conventions, shared by every module:

* A run makes ``T`` optimizer steps, numbered ``1..T``. ``Run.batches[t - 1]`` holds the
  training-example ids of step ``t`` (``-1`` pads a short batch).
* A trajectory (loss, BLEU, ROUGE-L) is recorded at steps ``Trajectory.steps`` (sorted, a subset of
  ``0..T``); column 0 is the initial point. The transition into column ``k`` consumes the
  batches of steps ``steps[k-1] + 1 .. steps[k]``. With one value per step (GPTDynamics),
  that is exactly the batch of step ``steps[k]``.
* Example ids are integers that need not be dense; ``ExampleSet.positions`` maps ids to rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.errors import TDABenchError

#: The splits every benchmark defines (see docs/benchmarks.md).
SPLITS: tuple[str, ...] = ("seen", "unseen-train", "unseen-test", "unseen-both")
#: The trajectories GPTDynamics records (a benchmark may record others): name -> what it is.
TRAJECTORIES: dict[str, str] = {
    "loss": "the per-example loss after every step (nats; masked as the benchmark's loss type)",
    "bleu": "sentence BLEU of the generated answer (0-100)",
    "rougeL": "ROUGE-L F1 of the generated answer (0-1)",
    "rouge1": "ROUGE-1 F1 of the generated answer (0-1)",
    "rouge2": "ROUGE-2 F1 of the generated answer (0-1)",
}


@dataclass(frozen=True, eq=False)
class ExampleSet:
    """Training or test examples, stored column-wise.

    Attributes:
        ids: int64 ids, unique, sorted ascending.
        prompts: the prompt (GPTDynamics ``context``) of each example.
        targets: the answer the model is trained to produce.
        texts: the full text (GPTDynamics ``input``), prompt plus target.
    """

    ids: np.ndarray
    prompts: tuple[str, ...]
    targets: tuple[str, ...]
    texts: tuple[str, ...]

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64)
        n = len(ids)
        if not (len(self.prompts) == len(self.targets) == len(self.texts) == n):
            raise ValueError("ExampleSet columns must all have the same length")
        if n and np.any(np.diff(ids) <= 0):
            order = np.argsort(ids, kind="stable")
            if np.any(np.diff(ids[order]) == 0):
                raise ValueError("ExampleSet ids must be unique")
            # Keep every column in id order so positions() can use a binary search.
            object.__setattr__(self, "prompts", tuple(self.prompts[i] for i in order))
            object.__setattr__(self, "targets", tuple(self.targets[i] for i in order))
            object.__setattr__(self, "texts", tuple(self.texts[i] for i in order))
            ids = ids[order]
        ids.setflags(write=False)
        object.__setattr__(self, "ids", ids)

    @classmethod
    def from_ids(cls, ids: np.ndarray | list[int]) -> ExampleSet:
        """Examples known only by id (texts empty), for data that ships no example files."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        empty = ("",) * len(ids)
        return cls(ids, empty, empty, empty)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_text(self) -> bool:
        """Whether the example texts are known (some data ships ids only)."""
        return any(self.texts)

    def positions(self, ids: np.ndarray, *, missing: int = -1) -> np.ndarray:
        """Row of each id (any shape); ``-1`` ids and unknown ids map to ``missing``."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.full(ids.shape, missing, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos_c = np.minimum(pos, len(self.ids) - 1)
        found = (self.ids[pos_c] == ids) & (ids >= 0)
        return np.where(found, pos_c, missing)

    def subset(self, ids: np.ndarray) -> ExampleSet:
        """The examples with these ids (all must exist), in id order."""
        pos = self.positions(np.unique(np.asarray(ids, dtype=np.int64)))
        if np.any(pos < 0):
            raise KeyError(f"ids not in this ExampleSet: {np.unique(np.asarray(ids))[pos < 0][:5]}")
        return ExampleSet(
            self.ids[pos],
            tuple(self.prompts[i] for i in pos),
            tuple(self.targets[i] for i in pos),
            tuple(self.texts[i] for i in pos),
        )


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One trajectory's values for every test example of a run.

    Attributes:
        steps: int64 [K], the optimizer step of each column, sorted; column 0 is the initial point.
        values: float64 [n_test, K], rows in the benchmark's test-id order.
    """

    steps: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        steps = np.asarray(self.steps, dtype=np.int64)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(steps):
            raise ValueError(f"trajectory values {values.shape} do not match {len(steps)} steps")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True, eq=False)
class Run:
    """One recorded training run.

    Attributes:
        name: the run's directory name, unique within its benchmark.
        seed: the seed that chose its training subset and order.
        batches: int64 [T, B], training ids of steps 1..T, ``-1`` padded.
        lr: float64 [T], the learning rate used at each step (NaN where unknown).
        trajectories: trajectory name (loss, bleu, ...) -> Trajectory.
        settings: the run's settings as strings (from its directory name or manifest).
        train_loss: float64 [T] training loss of each step, NaN where not recorded.
        test_ids: the rows of its trajectories, when they are not the benchmark's test ids:
            an unseen-train run recorded on a subset of them (GPTDynamics' ``flan_ood``).
    """

    name: str
    seed: int
    batches: np.ndarray
    lr: np.ndarray
    trajectories: Mapping[str, Trajectory]
    settings: Mapping[str, str] = field(default_factory=dict)
    train_loss: np.ndarray | None = None
    test_ids: np.ndarray | None = None

    @property
    def n_steps(self) -> int:
        """T, the number of optimizer steps."""
        return int(self.batches.shape[0])

    def train_ids(self) -> np.ndarray:
        """The distinct training ids this run uses."""
        ids = np.unique(self.batches)
        return ids[ids >= 0]


@dataclass(frozen=True)
class BenchmarkMeta:
    """What a benchmark is: model, task, setting and how its values were measured."""

    model: str
    task: str
    setting: str  # "ft" (fine-tuning) or "it" (instruction tuning)
    loss_type: str = "unknown"  # "output-tokens", "last-token", "whole-sequence"
    n_params: int | None = None
    trajectories: tuple[str, ...] = ("loss",)
    source: str = "gptdynamics"
    description: str = ""


@dataclass(frozen=True)
class SplitSpec:
    """Which runs and test examples each split uses; stored as data in the manifest.

    Attributes:
        fit_runs: runs a simulator is fitted on.
        validation_runs: runs for model selection and early stopping.
        eval_runs: evaluation runs over the fit runs' training pool.
        unseen_train_runs: evaluation runs holding training examples no fit run contains.
        heldout_test_ids: test examples withheld from fitting, for ``unseen-test``.
        rule: a sentence saying how the split was made, for the docs and the results.
    """

    fit_runs: tuple[str, ...]
    validation_runs: tuple[str, ...]
    eval_runs: tuple[str, ...]
    unseen_train_runs: tuple[str, ...] = ()
    heldout_test_ids: tuple[int, ...] = ()
    rule: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, as stored in ``tdabench.json``."""
        return {
            "fit_runs": list(self.fit_runs),
            "validation_runs": list(self.validation_runs),
            "eval_runs": list(self.eval_runs),
            "unseen_train_runs": list(self.unseen_train_runs),
            "heldout_test_ids": [int(i) for i in self.heldout_test_ids],
            "rule": self.rule,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SplitSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            fit_runs=tuple(d["fit_runs"]),
            validation_runs=tuple(d["validation_runs"]),
            eval_runs=tuple(d["eval_runs"]),
            unseen_train_runs=tuple(d.get("unseen_train_runs", ())),
            heldout_test_ids=tuple(int(i) for i in d.get("heldout_test_ids", ())),
            rule=str(d.get("rule", "")),
        )


@dataclass(frozen=True)
class ModelAccess:
    """The model and checkpoints that gradient-based methods may use.

    Attributes:
        base_model: a directory loadable by ``AutoModelForCausalLM.from_pretrained``.
        checkpoints: run name -> {step: safetensors file with the weights after that step}.
        loss_type: how the recorded loss masks tokens, for per-example gradients.
    """

    base_model: Path | None
    checkpoints: Mapping[str, Mapping[int, Path]]
    loss_type: str = "unknown"


@dataclass(frozen=True)
class DesignInfo:
    """How the runs of a recorded benchmark differ (``tdabench record --design``).

    Attributes:
        name: the design (``uniform``, ``mixture``, ``drop-group``, ...).
        options: the design's options (``alpha``, ``group_by``, ...).
        runs: run name -> what the design chose for it (weights, the dropped group, ...).
        flips: flipped-label training id -> the id of the example it flips (``label-noise``).
    """

    name: str = "uniform"
    options: Mapping[str, Any] = field(default_factory=dict)
    runs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flips: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Benchmark:
    """A set of recorded runs with its examples, metadata and split.

    The fit, validation and evaluation runs have the same number of steps and recorded steps
    for each trajectory, and their trajectories' rows follow ``test.ids``. Unseen-train runs
    share those among themselves; they may be of another length (another training setting)
    and cover a subset of the test ids (``Run.test_ids``).

    Attributes:
        test_groups: group name -> test ids, for benchmarks scored per group and averaged
            (a mixture's tasks, FLAN's five tasks); empty for a single task.
        design: how the runs differ, when the recorder wrote it down.
    """

    id: str
    meta: BenchmarkMeta
    train: ExampleSet
    test: ExampleSet
    runs: tuple[Run, ...]
    split: SplitSpec
    root: Path | None = None
    model: ModelAccess | None = None
    test_groups: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    design: DesignInfo | None = None

    def run(self, name: str) -> Run:
        """The run with this name."""
        for r in self.runs:
            if r.name == name:
                return r
        raise TDABenchError(f"benchmark {self.id!r} has no run named {name!r}")

    @property
    def trajectories(self) -> tuple[str, ...]:
        """Trajectory names recorded in every run (loss first)."""
        if not self.runs:
            return ()
        names = set(self.runs[0].trajectories)
        for r in self.runs[1:]:
            names &= set(r.trajectories)
        return tuple(sorted(names, key=lambda m: (m != "loss", m)))

    def rows(self, run: Run, test_ids: np.ndarray) -> np.ndarray:
        """Rows of ``run``'s trajectories holding ``test_ids`` (all must be there)."""
        ids = np.asarray(test_ids, dtype=np.int64)
        if run.test_ids is None:
            return self.test.positions(ids)
        pos = np.searchsorted(run.test_ids, ids).clip(max=len(run.test_ids) - 1)
        if not np.array_equal(run.test_ids[pos], ids):
            raise TDABenchError(f"run {run.name!r} of {self.id!r} has no trajectories for some of these test ids")
        return pos

    @property
    def content_hash(self) -> str:
        """sha256 over every array and text, in a canonical order; names the data exactly."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = content_hash(self)
            object.__setattr__(self, "_hash", cached)
        return cached


def content_hash(bench: Benchmark) -> str:
    """Hash a benchmark's data (not its id or paths) so results can name what they scored."""
    h = hashlib.sha256()
    for ex in (bench.train, bench.test):
        h.update(ex.ids.tobytes())
        for col in (ex.prompts, ex.targets, ex.texts):
            h.update("\x1f".join(col).encode("utf-8"))
    for run in sorted(bench.runs, key=lambda r: r.name):
        h.update(run.name.encode())
        h.update(np.ascontiguousarray(run.batches, dtype=np.int64).tobytes())
        if run.test_ids is not None:
            h.update(b"test_ids" + np.ascontiguousarray(run.test_ids, dtype=np.int64).tobytes())
        for metric in sorted(run.trajectories):
            tr = run.trajectories[metric]
            h.update(metric.encode())
            h.update(tr.steps.tobytes())
            h.update(np.ascontiguousarray(tr.values).tobytes())
    for name in sorted(bench.test_groups):  # groups change the scores, so they name the data too
        h.update(name.encode() + b"\x1f" + np.asarray(bench.test_groups[name], dtype=np.int64).tobytes())
    return "sha256:" + h.hexdigest()
