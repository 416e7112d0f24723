"""Small helpers that methods share (built-in and third-party alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


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
