"""The teacher-forced regression problem of Simfluence-Linear (docs/methods.md).

For test example z and transition t (run r, recorded column k -> k+1), with ``c_t`` the count
of each training example in the transition, ``x_t = y_{t-1}`` and ``u_t = y_t``, the linear
variant reads ``u_t = x_t (c_t . A_z) + c_t . B_z``. Each parameter *block* (A or B) has a
per-transition scale ``f``: ``x_t`` for A, 1 for B, so the design row of block j is
``f_j(t, z) c_t``, and the normal equations need, for every pair of blocks,
``G_jk(z) = sum_t m_tz f_j f_k c_t c_t^T`` and ``b_j(z) = sum_t m_tz f_j v_tz c_t``
(``m`` masks non-finite values, ``v`` is the regression target).

``G_jk(z)`` differs between test examples only through the per-transition weights, so all of
them come out of one sparse product: a matrix with a row per training pair (i, i') and a
column per transition, holding ``c_ti c_ti'``, times the dense weights [transitions, test].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tdabench import RunBatches

#: Position of an id that is absent from the fitted training examples.
UNSEEN = -2
#: Blocks of each variant: "A" (scaled by y_{t-1}) and/or "B" (scale 1), in parameter order.
VARIANT_BLOCKS: dict[str, tuple[str, ...]] = {
    "linear": ("A", "B"),
    "additive": ("B",),
    "multiplicative": ("A",),
}


def id_positions(ids: np.ndarray, train_ids: np.ndarray) -> np.ndarray:
    """Row of each id in the sorted ``train_ids``; -1 for padding, ``UNSEEN`` for unknown ids."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(train_ids) == 0:
        return np.where(ids < 0, -1, UNSEEN)
    pos = np.searchsorted(train_ids, ids).clip(max=len(train_ids) - 1)
    found = train_ids[pos] == ids
    return np.where(ids < 0, -1, np.where(found, pos, UNSEEN))


def count_matrix(pos: np.ndarray, n_train: int) -> sp.csr_matrix:
    """float64 [N, n_train] sparse: how often each training example occurs in each transition.

    ``pos`` is [N, M] positions; negative entries (padding, unseen) are left out.
    """
    N, M = pos.shape
    rows = np.repeat(np.arange(N, dtype=np.int64), M)
    cols = pos.ravel()
    keep = cols >= 0
    data = np.ones(int(keep.sum()))
    # Duplicate (row, col) entries are summed, which gives the multiplicity.
    return sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(N, n_train))


def pair_matrix(pos: np.ndarray, n_train: int) -> sp.csr_matrix:
    """float64 [n_train**2, N] sparse: entry (i * n_train + i', t) = c_ti c_ti'."""
    N, M = pos.shape
    a = np.broadcast_to(pos[:, :, None], (N, M, M))
    b = np.broadcast_to(pos[:, None, :], (N, M, M))
    t = np.broadcast_to(np.arange(N, dtype=np.int64)[:, None, None], (N, M, M))
    keep = (a >= 0) & (b >= 0)
    rows = a[keep] * n_train + b[keep]
    return sp.csr_matrix((np.ones(len(rows)), (rows, t[keep])), shape=(n_train * n_train, N))


@dataclass(frozen=True, eq=False)
class Design:
    """The teacher-forced regression of one variant over a set of runs, for every test example.

    Attributes:
        variant: "linear", "additive" or "multiplicative".
        pos: int64 [N, M], position of each id of each transition (-1 padding).
        counts: [N, n_train] sparse occurrence counts.
        x: float64 [N, n_test], y_{t-1} (0 where masked).
        target: float64 [N, n_test], the regression target (0 where masked).
        mask: float64 [N, n_test], 1 for usable transitions.
        batch_size: the most common number of ids per transition (its inverse is the neutral A).
        mean_obs: mean over occurring training examples of sum_t c_ti^2.
        scale_sq: float64 [n_test], mean of m x^2 over usable transitions (the A block's scale).
    """

    variant: str
    pos: np.ndarray
    counts: sp.csr_matrix
    x: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    batch_size: int
    mean_obs: float
    scale_sq: np.ndarray

    @property
    def blocks(self) -> tuple[str, ...]:
        """The parameter blocks, in order."""
        return VARIANT_BLOCKS[self.variant]

    @property
    def n_train(self) -> int:
        """Number of fitted training examples (rows of A and B)."""
        return int(self.counts.shape[1])

    @property
    def n_test(self) -> int:
        """Number of test examples (columns of A and B)."""
        return int(self.x.shape[1])

    def scale(self, block: str, cols: slice | np.ndarray = slice(None)) -> np.ndarray:
        """f_j [N, n_cols] of a block, masked: m x for A, m for B."""
        return self.mask[:, cols] * self.x[:, cols] if block == "A" else self.mask[:, cols]

    def rhs(self) -> np.ndarray:
        """float64 [n_blocks, n_train, n_test]: b_j = C^T (m f_j v)."""
        ct = self.counts.T.tocsr()
        return np.stack([ct @ (self.scale(j) * self.target) for j in self.blocks])

    def gram_diag(self) -> np.ndarray:
        """float64 [n_blocks, n_blocks, n_train, n_test]: diagonals of every G_jk."""
        sq = self.counts.multiply(self.counts).T.tocsr()
        nb = len(self.blocks)
        out = np.empty((nb, nb, self.n_train, self.n_test))
        for j in range(nb):
            for k in range(j, nb):
                # m f_j m f_k = m f_j f_k because m is 0 or 1.
                out[j, k] = out[k, j] = sq @ (self.scale(self.blocks[j]) * self.scale(self.blocks[k]))
        return out

    def gram(self, pairs: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
        """float64 [len(cols), P, P] dense Gram matrices of the test examples ``cols``.

        ``pairs`` is :func:`pair_matrix` of ``pos``; P = n_blocks * n_train.
        """
        n, nb, nz = self.n_train, len(self.blocks), len(cols)
        combos = [(j, k) for j in range(nb) for k in range(j, nb)]
        # m f_j f_k: the mask enters once (f_j and f_k both carry it, and m^2 = m).
        w = np.concatenate(
            [self.scale(self.blocks[j], cols) * (self.x[:, cols] if self.blocks[k] == "A" else 1.0) for j, k in combos],
            axis=1,
        )
        flat = np.asarray(pairs @ w)  # [n*n, len(combos) * nz]
        G = np.empty((nz, nb * n, nb * n))
        for c, (j, k) in enumerate(combos):
            blk = flat[:, c * nz : (c + 1) * nz].reshape(n, n, nz).transpose(2, 0, 1)
            G[:, j * n : (j + 1) * n, k * n : (k + 1) * n] = blk
            if j != k:  # each block is symmetric in (i, i'), so G_kj = G_jk
                G[:, k * n : (k + 1) * n, j * n : (j + 1) * n] = blk
        return G


def build_design(variant: str, runs: RunBatches, values: np.ndarray, train_ids: np.ndarray) -> Design:
    """The regression of ``variant`` on ``runs`` (values [R, n_test, K]) over ``train_ids``."""
    ids = runs.transitions()  # [R, K-1, M]
    R, K1, M = ids.shape
    pos = id_positions(ids, train_ids).reshape(R * K1, M)
    if np.any(pos == UNSEEN):
        missing = np.unique(ids.reshape(R * K1, M)[pos == UNSEEN])[:5]
        raise ValueError(f"fit runs use training ids absent from FitData.train: {missing.tolist()}")
    counts = count_matrix(pos, len(train_ids))
    n_ids = (pos >= 0).sum(axis=1)
    n_test = values.shape[1]
    x = values[:, :, :-1].transpose(0, 2, 1).reshape(R * K1, n_test)
    u = values[:, :, 1:].transpose(0, 2, 1).reshape(R * K1, n_test)
    # Non-finite values and transitions without ids carry no information about A or B.
    ok = np.isfinite(x) & np.isfinite(u) & (n_ids > 0)[:, None]
    x = np.where(ok, x, 0.0)
    u = np.where(ok, u, 0.0)
    target = u - x if variant == "additive" else u
    mask = ok.astype(np.float64)
    sizes = n_ids[n_ids > 0]
    batch_size = int(np.bincount(sizes).argmax()) if len(sizes) else 1
    occ = np.asarray(counts.multiply(counts).sum(axis=0)).ravel()
    mean_obs = float(occ[occ > 0].mean()) if np.any(occ > 0) else 1.0
    used = mask.sum(axis=0)
    scale_sq = (x * x).sum(axis=0) / np.maximum(used, 1.0)
    # A floor keeps the A block positive definite for a test example whose values are all 0.
    scale_sq = np.maximum(scale_sq, 1e-6 * max(float(scale_sq.max(initial=0.0)), 1e-12))
    return Design(variant, pos, counts, x, target, mask, batch_size, mean_obs, scale_sq)
