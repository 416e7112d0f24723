"""Training a recorded benchmark's own model again, on a plan: the check of every what-if answer.

A benchmark recorded by ``tdabench record`` (the built-in bank included) ships its base model
and its settings (``record.json``), and runs are deterministic given their batches, so
training on a plan with the recorder's own loop gives the trajectories that plan really
produces. :func:`trainer_for` says, in one line, when a benchmark cannot be retrained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tdabench.data import Benchmark, ExampleSet
from tdabench.errors import TDABenchError


@dataclass(frozen=True)
class Trainer:
    """What retraining a benchmark needs.

    Attributes:
        base_model: the directory of the starting weights and tokenizer.
        schedule: the recording's optimizer settings (a :class:`~tdabench.recorder.train.Schedule`).
        loss_type: how the recorded loss masks tokens.
        train: every training example the plan may use.
    """

    base_model: Path
    schedule: object
    loss_type: str
    train: ExampleSet


def trainer_for(bench: Benchmark) -> Trainer:
    """How to retrain ``bench``, or a one-line error saying why it cannot be."""
    from tdabench.recorder.train import read_schedule

    settings = (bench.root / "record.json") if bench.root is not None else None
    if bench.model is None or bench.model.base_model is None or settings is None or not settings.is_file():
        raise TDABenchError(f"{bench.id} cannot be retrained: training needs its base model and its record.json, which benchmarks "
                            "recorded by `tdabench record` (the built-in bank included) have and GPTDynamics copies do not")
    schedule = read_schedule(settings)
    return Trainer(Path(bench.model.base_model), schedule, bench.meta.loss_type, bench.train)


def observe(trainer: Trainer, batches: np.ndarray, test: ExampleSet, steps: np.ndarray, *, device: str = "cpu",
            progress: bool = False, label: str = "training") -> np.ndarray:
    """float64 [n_test, K]: the loss of every test example at each of ``steps`` (0 = before
    training) when the base model is trained on ``batches`` [T, B] (``-1`` padded)."""
    from tdabench.methods.lm import encode, evaluate
    from tdabench.recorder.models import load_model, quiet_loading
    from tdabench.recorder.train import train

    with quiet_loading():
        loaded = load_model(str(trainer.base_model), device)
    train_enc = encode(loaded.tokenizer, trainer.train.prompts, trainer.train.targets, trainer.loss_type)
    test_enc = encode(loaded.tokenizer, test.prompts, test.targets, trainer.loss_type)
    rows = np.where(batches >= 0, trainer.train.positions(batches), -1)
    if np.any((batches >= 0) & (rows < 0)):
        raise TDABenchError(f"the plan uses training id {int(batches[(batches >= 0) & (rows < 0)][0])}, which the benchmark does not have")
    want = {int(s): k for k, s in enumerate(steps)}
    out = np.full((len(test), len(steps)), np.nan)
    if 0 in want:
        out[:, want[0]] = evaluate(loaded.model, test_enc, bf16=False)

    def hook(t: int, model: object, _loss: float) -> None:
        if t in want:
            out[:, want[t]] = evaluate(model, test_enc, bf16=False)  # type: ignore[arg-type]

    with tqdm(total=len(rows), desc=label, unit="step", leave=False, disable=not progress) as bar:
        train(loaded.model, train_enc, rows, trainer.schedule, hook, progress=bar)  # type: ignore[arg-type]
    return out


def label_accuracy(trainer: Trainer, batches: np.ndarray, test: ExampleSet, *, device: str = "cpu") -> tuple[float, float]:
    """(mean test loss, accuracy) of the model trained on ``batches``, for a two-label task:
    an answer is right when the true label's loss is below the other label's."""
    from tdabench.methods.lm import encode, evaluate
    from tdabench.recorder.models import load_model, quiet_loading
    from tdabench.recorder.train import train

    labels = sorted(set(test.targets))
    if len(labels) != 2:
        raise TDABenchError(f"accuracy needs a task with two labels; the test set has {len(labels)}")
    with quiet_loading():
        loaded = load_model(str(trainer.base_model), device)
    rows = np.where(batches >= 0, trainer.train.positions(batches), -1)
    train_enc = encode(loaded.tokenizer, trainer.train.prompts, trainer.train.targets, trainer.loss_type)
    train(loaded.model, train_enc, rows, trainer.schedule)  # type: ignore[arg-type]
    other = {labels[0]: labels[1], labels[1]: labels[0]}
    right = evaluate(loaded.model, encode(loaded.tokenizer, test.prompts, test.targets, trainer.loss_type), bf16=False)
    wrong = evaluate(loaded.model, encode(loaded.tokenizer, test.prompts, [other[t] for t in test.targets], trainer.loss_type), bf16=False)
    return float(right.mean()), float((right < wrong).mean())
