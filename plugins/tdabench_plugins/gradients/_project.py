"""Seeded random projections of per-example gradients to ``d`` dimensions.

A projection ``P`` (``D -> d``) is applied one parameter tensor at a time, so the full
``D x d`` matrix never has to exist. Two kinds:

* ``sketch`` (default): CountSketch. Coordinate ``j`` of parameter block ``p`` goes to
  bucket ``h_p(j)`` in ``0..d-1`` with sign ``s_p(j)`` = +-1, both drawn from a generator
  seeded by ``(seed, p)``. It costs O(D) per example, needs no stored matrix (the hash is
  regenerated per call) and works for any model size.
* ``gaussian``: dense i.i.d. N(0, 1/d) entries, drawn per block from the same seeds; cached
  when ``D * d`` floats fit in :data:`GAUSSIAN_CACHE_BYTES`, otherwise regenerated per call
  (correct but slow).

Both are unbiased, ``E <Pa, Pb> = <a, b>``, with variance at most
``(|a|^2 |b|^2 + <a, b>^2) / d <= 2 |a|^2 |b|^2 / d``. The documented error: the inner
product error has standard deviation at most ``sqrt(2 / d) |a| |b|``, and 99% of pairs fall
within ``3 sqrt(2 / d) |a| |b|`` (checked in tests/test_gradients.py on real gradients).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

PROJECTION_KINDS: tuple[str, ...] = ("sketch", "gaussian")
GAUSSIAN_CACHE_BYTES = 512 * 2**20


def error_bound(dim: int) -> float:
    """The documented standard deviation of the inner-product error, relative to ``|a| |b|``."""
    return (2.0 / dim) ** 0.5


class Projector:
    """A seeded linear map from named gradient blocks to ``[m, dim]``.

    Args:
        sizes: parameter name -> number of entries, in a fixed order (the block index).
        dim: output dimension ``d``.
        kind: one of :data:`PROJECTION_KINDS`.
        seed: the seed of every block's generator.
        device: where outputs are built.
    """

    def __init__(self, sizes: Mapping[str, int], dim: int, kind: str, seed: int, device: torch.device | str = "cpu") -> None:
        if kind not in PROJECTION_KINDS:
            raise ValueError(f"projection kind must be one of {', '.join(PROJECTION_KINDS)}, got {kind!r}")
        if dim < 1:
            raise ValueError(f"projection dimension must be >= 1, got {dim}")
        self.sizes = dict(sizes)
        self.dim = int(dim)
        self.kind = kind
        self.seed = int(seed)
        self.device = torch.device(device)
        self._block = {name: i for i, name in enumerate(self.sizes)}
        self._cache: dict[str, torch.Tensor] = {}
        total = sum(self.sizes.values())
        self._cache_gaussian = kind == "gaussian" and total * dim * 4 <= GAUSSIAN_CACHE_BYTES

    def _generator(self, name: str) -> torch.Generator:
        g = torch.Generator(device="cpu")
        # Block seeds are spread apart so neighbouring blocks do not share streams.
        g.manual_seed(self.seed * 1_000_003 + self._block[name] * 7919 + 17)
        return g

    def _sketch(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        n, g = self.sizes[name], self._generator(name)
        bucket = torch.randint(0, self.dim, (n,), generator=g)
        sign = torch.randint(0, 2, (n,), generator=g).to(torch.float32).mul_(2).sub_(1)
        return bucket.to(self.device), sign.to(self.device)

    def _gaussian(self, name: str) -> torch.Tensor:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        mat = torch.randn(self.sizes[name], self.dim, generator=self._generator(name)).div_(self.dim**0.5).to(self.device)
        if self._cache_gaussian:
            self._cache[name] = mat
        return mat

    def add_block(self, out: torch.Tensor, name: str, grad: torch.Tensor) -> None:
        """``out [m, dim] += P_name grad``, for ``grad`` [m, *shape] of parameter ``name``."""
        flat = grad.reshape(grad.shape[0], -1).to(torch.float32)
        if self.kind == "sketch":
            bucket, sign = self._sketch(name)
            out.index_add_(1, bucket, flat * sign)
        else:
            out.addmm_(flat, self._gaussian(name))

    def __call__(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Project named gradient blocks (each [m, *shape]) to [m, dim]."""
        m = next(iter(grads.values())).shape[0]
        out = torch.zeros(m, self.dim, device=self.device)
        for name, g in grads.items():
            self.add_block(out, name, g)
        return out
