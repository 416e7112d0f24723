"""Guards and small helpers that methods share (built-in and third-party alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tdabench.simulator import FitData


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (0: leave torch's setting), then restore.

    Small tensors on a shared CPU run faster on one thread: torch factors a batch of small
    matrices one at a time and lets BLAS thread each, which costs more than it saves.
    """
    import torch

    before = torch.get_num_threads()
    if n > 0 and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def widened_range(values: np.ndarray) -> tuple[float, float] | None:
    """The range of the finite ``values``, widened by its span on each side (None if there are none).

    Simulators clip every rollout step to it: a guard against a rollout that runs away, far
    looser than any value a trajectory took while fitting.
    """
    vals = np.asarray(values, dtype=np.float64).ravel()
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return None
    lo, hi = float(vals.min()), float(vals.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return lo - span, hi + span


def guard_range(values: np.ndarray) -> tuple[float, float] | None:
    """:func:`widened_range`, but not below 0 when no finite value is negative.

    Every method but the baselines clips the predictions it returns to it (never what fitting
    or model selection sees). A loss, BLEU or ROUGE cannot go below 0, so on such data the
    floor only ever moves a returned prediction closer to the truth.
    """
    bounds = widened_range(values)
    if bounds is None:
        return None
    vals = np.asarray(values, dtype=np.float64).ravel()
    negative = bool(np.any(vals[np.isfinite(vals)] < 0))
    return (bounds[0] if negative else max(bounds[0], 0.0)), bounds[1]


def fitted_values(data: FitData) -> np.ndarray:
    """Every value of the fit and validation runs, flat (what the guard ranges are taken from)."""
    return np.concatenate([np.asarray(data.values).ravel(), np.asarray(data.validation_values).ravel()])


def guarded(pred: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """``pred`` clipped to ``bounds`` (unchanged when None)."""
    return np.clip(pred, *bounds) if bounds is not None else pred
