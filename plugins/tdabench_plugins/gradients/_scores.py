"""Gradient inner products between two example sets, in blocks that bound peak memory.

``cross_scores`` holds a block of "left" gradients (optionally transformed, e.g. by an
inverse-Hessian solve, into several variants) and streams the "right" examples through in
chunks, so at most ``left block + right chunk + one gradient chunk`` exist at once, whatever
the number of examples. When the left set fits one block (the usual case: the test
examples), every gradient is computed exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tdabench import Encoded
from tdabench_plugins.gradients._per_example import GradientEngine

#: Maps a block of left gradients [m, dim] to one or more transformed blocks [m, dim].
LeftMap = Callable[[torch.Tensor], list[torch.Tensor]]


def check_fits(engine: GradientEngine, budget_bytes: int) -> None:
    """A ValueError when even one example's gradient exceeds the budget."""
    need = 4 * engine.dim
    if need > budget_bytes:
        raise ValueError(
            f"one example's gradient needs {need / 2**20:.0f} MB, over memory_mb={budget_bytes / 2**20:.0f}: "
            "set projection_dim (e.g. 4096) or params=last-layer"
        )


def _rows(enc: Encoded, lo: int, hi: int) -> Encoded:
    return enc.rows(np.arange(lo, hi))


def cross_scores(
    engine: GradientEngine,
    params: dict[str, torch.Tensor],
    left: Encoded,
    right: Encoded,
    *,
    budget_bytes: int,
    left_map: LeftMap | None = None,
    n_maps: int = 1,
) -> np.ndarray:
    """float64 [n_maps, n_left, n_right]: ``<map_j(g_left), g_right>`` for every pair.

    Args:
        engine: computes per-example gradients.
        params: every parameter of the model at the checkpoint.
        left, right: the two example sets.
        budget_bytes: memory for the held left block (the right chunk takes half as much).
        left_map: turns a left block into ``n_maps`` blocks (identity when None).
        n_maps: how many blocks ``left_map`` returns.
    """
    check_fits(engine, budget_bytes // 2)
    n_l, n_r = len(left), len(right)
    out = np.zeros((n_maps, n_l, n_r))
    if n_l == 0 or n_r == 0:
        return out
    row_bytes = 4 * engine.dim
    hold = max(1, budget_bytes // (row_bytes * (1 + n_maps)))
    if left_map is None and n_l > hold and n_r < n_l:
        # Without a transform the product is symmetric: hold the smaller side.
        return cross_scores(engine, params, right, left, budget_bytes=budget_bytes).transpose(0, 2, 1)
    stream = int(max(1, min(n_r, budget_bytes // 2 // row_bytes)))
    device = next(iter(params.values())).device
    buffer = torch.empty(stream, engine.dim, device=device)
    for lo in range(0, n_l, hold):
        hi = min(n_l, lo + hold)
        g_left = engine.grads(params, _rows(left, lo, hi))
        blocks = left_map(g_left) if left_map is not None else [g_left]
        if len(blocks) != n_maps:
            raise ValueError(f"left_map returned {len(blocks)} blocks, expected {n_maps}")
        del g_left
        for rlo in range(0, n_r, stream):
            rhi = min(n_r, rlo + stream)
            g_right = engine.grads(params, _rows(right, rlo, rhi), out=buffer[: rhi - rlo])
            for j, block in enumerate(blocks):
                out[j, lo:hi, rlo:rhi] = (block @ g_right.T).double().cpu().numpy()
        del blocks
    return out


def self_scores(
    engine: GradientEngine,
    params: dict[str, torch.Tensor],
    enc: Encoded,
    *,
    budget_bytes: int,
    left_map: LeftMap | None = None,
    n_maps: int = 1,
) -> np.ndarray:
    """float64 [n_maps, n]: ``<map_j(g_i), g_i>`` of each example with itself."""
    check_fits(engine, budget_bytes // 2)
    n = len(enc)
    out = np.zeros((n_maps, n))
    hold = max(1, budget_bytes // (4 * engine.dim * (1 + n_maps)))
    for lo in range(0, n, hold):
        hi = min(n, lo + hold)
        g = engine.grads(params, _rows(enc, lo, hi))
        blocks = left_map(g) if left_map is not None else [g]
        for j, block in enumerate(blocks):
            out[j, lo:hi] = (block * g).sum(1).double().cpu().numpy()
    return out
