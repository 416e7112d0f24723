"""One training run: the seed's batches, AdamW with linear warmup and decay, and what is observed after each step.

:func:`plan_batches` is the only place randomness enters a run: the same seed gives the
same batches, and so (with no dropout and the same starting weights) the same losses.
:func:`train` also replays recorded batches, e.g. to regenerate checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tdabench.config import option, validate_options
from tdabench.recorder.designs import uniform_batches
from tdabench.methods.lm import Encoded, per_example_loss

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: Called after each step ``t`` (1..T) with the model and the step's training loss.
StepHook = Callable[[int, torch.nn.Module, float], None]


@dataclass(frozen=True)
class Schedule:
    """Optimizer settings of a run: AdamW, a linear warmup, then a linear decay to 0.

    GPTDynamics used no warmup (``warmup=0``); the bank warms up, because AdamW's first
    updates move every weight by about the learning rate and throw a small model's test loss
    up before it recovers (docs/benchmarks.md, "Recording protocol"). Each field's
    :func:`~tdabench.config.option` is also the ``tdabench record`` flag of that name.
    """

    lr: float = option(1e-3, "peak learning rate, reached after the warmup and decayed linearly to 0", gt=0)
    weight_decay: float = option(0.001, "AdamW weight decay", ge=0)
    batch_size: int = option(4, "batch size", ge=1)
    epochs: int = option(3, "epochs", ge=1)
    sample: int = option(128, "training examples each run samples from its pool", ge=1)
    warmup: float = option(0.1, "share of the steps over which the rate rises linearly to --lr (0: none, as GPTDynamics)", ge=0, le=0.9)

    def __post_init__(self) -> None:
        validate_options(self)

    @property
    def n_steps(self) -> int:
        """T = epochs * ceil(sample / batch_size)."""
        return self.epochs * -(-self.sample // self.batch_size)

    def warmup_steps(self, n_steps: int | None = None) -> int:
        """W = round(warmup * T)."""
        return int(round(self.warmup * (self.n_steps if n_steps is None else n_steps)))

    def learning_rates(self, n_steps: int | None = None) -> np.ndarray:
        """float64 [T]: the rate of each step t = 1..T (T: ``n_steps``, default the schedule's own;
        a user's plan may have another length).

        ``lr * t / W`` for t <= W, then ``lr * (T - t + 1) / (T - W)``: transformers'
        ``get_linear_schedule_with_warmup``, except that its first step trains at rate 0 and
        here the warmup ends one step earlier instead, so that every step moves the model.
        Without warmup this is GPTDynamics' ``lr * (1 - (t - 1) / T)``.
        """
        T = self.n_steps if n_steps is None else n_steps
        W = min(self.warmup_steps(T), max(T - 1, 0))
        t = np.arange(1, T + 1, dtype=np.float64)
        return self.lr * np.where(t <= W, t / max(W, 1), (T - t + 1) / max(T - W, 1))


def read_schedule(record_json: str | Path) -> Schedule:
    """The schedule stored in a recording's ``record.json``. Recordings made before warmup
    existed have no ``warmup`` key and trained without one."""
    stored = json.loads(Path(record_json).read_text(encoding="utf-8"))["schedule"]
    return Schedule(**{"warmup": 0.0, **stored})


def plan_batches(pool: np.ndarray, schedule: Schedule, seed: int) -> np.ndarray:
    """int64 [T, B]: ``sample`` ids of ``pool`` drawn by ``seed``, reshuffled every epoch, ``-1``
    padded (the ``uniform`` design, :mod:`tdabench.recorder.designs`)."""
    return uniform_batches(pool, schedule.sample, schedule.epochs, schedule.batch_size, seed)


def train(
    model: PreTrainedModel,
    train_data: Encoded,
    rows: np.ndarray,
    schedule: Schedule,
    on_step: StepHook | None = None,
    *,
    progress: object | None = None,
) -> np.ndarray:
    """Train ``model`` in place on ``rows`` (int [T, B] rows of ``train_data``, ``-1`` padded).

    The loss of a step is the mean of its examples' losses. Returns float64 [T] training losses.
    """
    device = next(model.parameters()).device
    lrs = schedule.learning_rates(len(rows))
    opt = torch.optim.AdamW(model.parameters(), lr=float(lrs[0]), weight_decay=schedule.weight_decay)
    losses = np.zeros(len(rows))
    model.train()
    for t, row in enumerate(rows, start=1):
        for group in opt.param_groups:
            group["lr"] = float(lrs[t - 1])
        batch = train_data.rows(row[row >= 0]).to(device)
        loss = per_example_loss(model, batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[t - 1] = float(loss.detach())
        if on_step is not None:
            on_step(t, model, losses[t - 1])
        if progress is not None:
            progress.update(1)  # type: ignore[attr-defined]
    return losses
