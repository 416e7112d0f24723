"""Ridge solves of the Simfluence-Linear normal equations, batched over test examples.

For every test example z and strength lambda the solution of

    min_theta  sum_t m_tz (v_tz - X_tz theta)^2 + sum_p w_pz lambda (theta_p - theta0_p)^2

is ``(G_z + lambda W_z) theta = b_z + lambda W_z theta0`` with W_z diagonal (docs/methods.md).
Two solvers give the same answer:

* ``direct``: dense Gram matrices, batched Cholesky (torch), in chunks of test examples that
  bound the memory; the Gram of a chunk is built once and reused for every lambda.
* ``cg``: block-Jacobi preconditioned conjugate gradients with sparse matrix products; the
  preconditioner inverts each training example's own (A_i, B_i) block exactly, and examples
  are coupled only through sharing batches, so it converges in tens of iterations on
  shuffled runs. It needs no dense [P, P] matrix, so it serves large training pools too.
  Lambdas are solved from the largest down, each warm-started from the previous solution.
  The sparse products, most of a large solve, run on torch's thread count
  (:class:`RowBlocks`): results are bit-identical to one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import scipy.sparse as sp
import torch

from tdabench import torch_threads
from tdabench_plugins.simfluence._design import Design, pair_matrix

#: Memory allowed for one chunk of dense Gram matrices (and their factorization).
DIRECT_CHUNK_BYTES = 256 * 2**20


class RowBlocks:
    """A CSR matrix cut into row blocks, multiplied by dense matrices on several threads.

    scipy's sparse kernels release the GIL, and each output row depends on its own matrix row
    only, so the product equals ``m @ v`` bit for bit whatever the threads. Smaller blocks also
    keep each output block in cache: on the GPTDynamics instruction-tuning shape a product
    took 30-70 ms in 8 blocks on 2 threads against 240 ms in one call (docs/scaling.md).
    """

    def __init__(self, m: sp.csr_matrix, pool: Executor | None, blocks: int) -> None:
        cuts = np.unique(np.linspace(0, m.shape[0], max(1, blocks) + 1).astype(np.int64))
        self.shape = m.shape
        self.spans = list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))
        self.parts = [m[a:b] for a, b in self.spans]
        self.pool = pool

    def each(self, fn: Callable[[sp.csr_matrix, int, int], None]) -> None:
        """``fn(block, first_row, end_row)`` for every row block, on the pool's threads."""
        if self.pool is None:
            for part, (a, b) in zip(self.parts, self.spans):
                fn(part, a, b)
        else:
            list(self.pool.map(lambda i: fn(self.parts[i], *self.spans[i]), range(len(self.parts))))

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        out = np.empty((self.shape[0], *v.shape[1:]), dtype=np.result_type(v.dtype, self.parts[0].dtype))

        def one(part: sp.csr_matrix, a: int, b: int) -> None:
            out[a:b] = part @ v

        self.each(one)
        return out


def product_threads() -> int:
    """Threads for the sparse products: torch's intra-op setting (the executors set it per worker)."""
    return max(1, torch.get_num_threads())


def penalty_weights(design: Design) -> np.ndarray:
    """float64 [n_blocks, n_test]: W per block (lambda-free), ``mean_obs * s_j(z)^2``.

    s_A^2 is the mean squared y_{t-1} of the test example and s_B^2 = 1, so lambda is a
    prior strength relative to the data: a training example seen ``mean_obs`` times has a
    data term of about lambda^-1 times its penalty, whatever the scale of the metric.
    """
    rows = [design.scale_sq if j == "A" else np.ones(design.n_test) for j in design.blocks]
    return design.mean_obs * np.stack(rows)


def prior_values(design: Design, neutral: bool) -> np.ndarray:
    """float64 [n_blocks]: theta0 per block; A -> 1/batch_size when ``neutral``, else 0; B -> 0."""
    return np.array([1.0 / design.batch_size if (j == "A" and neutral) else 0.0 for j in design.blocks])


def _one_cpu_thread(device: str) -> AbstractContextManager[None]:
    """Batched CPU factorizations single-threaded: torch factors a batch one matrix at a time and
    lets MKL thread each small factorization, which on a busy machine was several times slower
    than one thread (1.6 s against 0.2 s for 128 Cholesky factorizations of 400 x 400)."""
    return torch_threads(1) if str(device).startswith("cpu") else nullcontext()


def _spd_solve(H: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Solve batched symmetric positive definite systems; LU where Cholesky fails."""
    with _one_cpu_thread(str(H.device)):
        L, info = torch.linalg.cholesky_ex(H)
        # Two triangular solves: torch.cholesky_solve copies L first, which costs more here.
        y = torch.linalg.solve_triangular(L, r.unsqueeze(-1), upper=False)
        sol = torch.linalg.solve_triangular(L.mT, y, upper=True).squeeze(-1)
        bad = info != 0
        if bool(bad.any()):  # numerically indefinite (tiny lambda, collinear design)
            sol[bad] = torch.linalg.solve(H[bad], r[bad])
    return sol


def solve_direct(design: Design, lambdas: Sequence[float], neutral: bool, device: str = "cpu") -> list[np.ndarray]:
    """Solutions [n_blocks, n_train, n_test], one per lambda, with dense batched Cholesky."""
    nb, n, nz = len(design.blocks), design.n_train, design.n_test
    P = nb * n
    pairs = pair_matrix(design.pos, n)
    b = design.rhs()  # [nb, n, nz]
    w = penalty_weights(design)  # [nb, nz]
    theta0 = torch.as_tensor(np.repeat(prior_values(design, neutral), n), device=device)  # [P]
    out = [np.empty((nb, n, nz)) for _ in lambdas]
    chunk = max(1, DIRECT_CHUNK_BYTES // (3 * P * P * 8))
    for start in range(0, nz, chunk):
        cols = np.arange(start, min(nz, start + chunk))
        G = torch.as_tensor(design.gram(pairs, cols), device=device)  # [c, P, P]
        rhs = torch.as_tensor(b[:, :, cols].transpose(2, 0, 1).reshape(len(cols), P), device=device)
        pw = torch.as_tensor(np.repeat(w[:, cols].T, n, axis=1), device=device)  # [c, P]
        diag = G.diagonal(dim1=-2, dim2=-1)
        d0 = diag.clone()
        for li, lam in enumerate(lambdas):
            pen = lam * pw
            diag.add_(pen)  # in place: copying the whole Gram per lambda costs more than the solve
            sol = _spd_solve(G, rhs + pen * theta0)
            diag.copy_(d0)
            out[li][:, :, cols] = sol.reshape(len(cols), nb, n).permute(1, 2, 0).cpu().numpy()
    return out


def solve_cg(
    design: Design,
    lambdas: Sequence[float],
    neutral: bool,
    tol: float = 1e-8,
    max_iter: int = 2000,
) -> tuple[list[np.ndarray], list[int], bool]:
    """Solutions as :func:`solve_direct` by preconditioned CG, the iterations per lambda, and
    whether every lambda converged within ``max_iter``.

    numpy and scipy.sparse on the CPU: on CPU, scipy's sparse products are far faster than
    torch's sparse CSR kernels, and every other operation is elementwise.
    """
    threads = product_threads()
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        return _solve_cg(design, lambdas, neutral, tol, max_iter, pool, max(8, 4 * threads))
    finally:
        if pool is not None:
            pool.shutdown()


def _solve_cg(
    design: Design, lambdas: Sequence[float], neutral: bool, tol: float, max_iter: int, pool: Executor | None, blocks: int,
) -> tuple[list[np.ndarray], list[int], bool]:
    nb, n, nz = len(design.blocks), design.n_train, design.n_test
    C = RowBlocks(design.counts, pool, blocks)  # [N, n]
    Ct = RowBlocks(design.counts.T.tocsr(), pool, blocks)
    F = [design.scale(j) for j in design.blocks]  # [N, nz] each, masked
    b = design.rhs()  # [nb, n, nz]
    diag = design.gram_diag().transpose(2, 3, 0, 1)  # [n, nz, nb, nb]
    w = penalty_weights(design)[:, None, :]  # [nb, 1, nz]
    theta0 = prior_values(design, neutral)[:, None, None]

    U = np.empty((nb, C.shape[0], nz))  # F_j * (m X v), reused by every product

    def gram_apply(V: np.ndarray) -> np.ndarray:
        # Row blocks of C on the threads, the elementwise work with them (numpy releases the GIL too).
        def transitions(part: sp.csr_matrix, a: int, b: int) -> None:
            s = F[0][a:b] * (part @ V[0])
            for j in range(1, nb):
                s += F[j][a:b] * (part @ V[j])  # s = m X v, [rows, nz]
            for j in range(nb):
                np.multiply(F[j][a:b], s, out=U[j, a:b])

        out = np.empty((nb, n, nz))

        def examples(part: sp.csr_matrix, a: int, b: int) -> None:
            for j in range(nb):
                out[j, a:b] = part @ U[j]

        C.each(transitions)
        Ct.each(examples)
        return out

    def dot(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.einsum("jiz,jiz->z", a, c)  # one inner product per test example

    order = sorted(range(len(lambdas)), key=lambda i: -lambdas[i])
    out: list[np.ndarray] = [np.empty(0)] * len(lambdas)
    iters = [0] * len(lambdas)
    converged = True
    X = np.broadcast_to(theta0, (nb, n, nz)).copy()
    for li in order:
        pen = lambdas[li] * w  # [nb, 1, nz]
        rhs = b + pen * theta0
        # Block-Jacobi: invert the nb x nb (A_i, B_i) block of every (i, z).
        blocks = diag.copy()
        idx = np.arange(nb)
        blocks[:, :, idx, idx] += pen[:, 0, :].T[None]
        Minv = np.ascontiguousarray(np.linalg.inv(blocks).transpose(2, 3, 0, 1))  # [nb, nb, n, nz]

        def precond(R: np.ndarray, Minv: np.ndarray = Minv) -> np.ndarray:
            out = Minv[:, 0] * R[0]  # nb is 1 or 2: elementwise beats einsum here
            for k in range(1, nb):
                out += Minv[:, k] * R[k]
            return out

        R = rhs - (gram_apply(X) + pen * X)
        Z = precond(R)
        Pd = Z.copy()
        rz = dot(R, Z)
        bnorm = np.maximum(np.sqrt(dot(rhs, rhs)), 1e-300)
        it = 0
        while it < max_iter and np.any(np.sqrt(dot(R, R)) > tol * bnorm):
            HP = gram_apply(Pd) + pen * Pd
            den = dot(Pd, HP)
            # Converged test examples have rz = 0; keep them where they are.
            alpha = np.divide(rz, den, out=np.zeros(nz), where=den > 0)
            X += alpha * Pd
            R -= alpha * HP
            Z = precond(R)
            rz_new = dot(R, Z)
            beta = np.divide(rz_new, rz, out=np.zeros(nz), where=rz > 0)
            Pd = Z + beta * Pd
            rz = rz_new
            it += 1
        out[li] = X.copy()
        iters[li] = it
        converged &= not bool(np.any(np.sqrt(dot(R, R)) > tol * bnorm))
    return out, iters, converged
