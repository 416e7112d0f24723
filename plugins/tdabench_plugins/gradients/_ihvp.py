"""Inverse-Hessian-vector products for influence functions.

* :class:`Curvature`: exact products ``v -> H v`` with ``torch.func``, where ``H`` is the
  Hessian (``jvp`` of ``grad``) or the generalized Gauss-Newton matrix ``J^T H_logits J``
  (``jvp`` then ``vjp``; positive semi-definite, so CG is always well posed) of the mean
  recorded loss over a fixed sample of training examples, for the selected parameters.
  Products are batched over vectors with ``vmap`` and accumulated over example chunks.
* :func:`multishift_cg`: batched CG on ``(H + lambda I) x = b`` in its Lanczos form, one
  Krylov space per right-hand side serving every damping value at once (so choosing the
  damping on the validation runs costs no extra products).
* :func:`lissa`: the truncated Neumann series of Agarwal et al. (2017) as used by Koh & Liang.
* :class:`FisherSolver`: the fast path, a damped empirical Fisher ``G^T G / n + lambda I`` on
  projected gradients, eigendecomposed once so every damping value costs one product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import functional_call, grad, jvp, vjp, vmap

from tdabench import Encoded, token_losses
from tdabench_plugins.gradients._per_example import GradientEngine

CURVATURES: tuple[str, ...] = ("gauss-newton", "hessian")
SOLVERS: tuple[str, ...] = ("cg", "lissa", "fisher")
MatVec = Callable[[torch.Tensor], torch.Tensor]


class Curvature:
    """``V [v, D] -> H V`` for the engine's selected parameters at one checkpoint.

    Args:
        engine: gives the model, the selected names and the flattening order.
        params: every parameter at the checkpoint.
        enc: the training examples whose mean loss defines ``H``.
        kind: "gauss-newton" or "hessian".
        memory_bytes: bounds the vectors and examples processed together.
    """

    def __init__(self, engine: GradientEngine, params: dict[str, torch.Tensor], enc: Encoded, kind: str, memory_bytes: int) -> None:
        if kind not in CURVATURES:
            raise ValueError(f"curvature must be one of {', '.join(CURVATURES)}, got {kind!r}")
        self.engine, self.kind, self.enc = engine, kind, enc
        self.sel = {k: params[k] for k in engine.names}
        self.rest = {k: v for k, v in params.items() if k not in self.sel}
        self.shapes = {k: params[k].shape for k in engine.names}
        self.device = next(iter(params.values())).device
        width = int(enc.attention_mask.sum(1).max()) if len(enc) else 1
        vocab, hidden, layers = engine._vocab, engine._hidden, engine._layers
        per_example_vector = width * (6 * vocab + 60 * hidden * layers) * 4 + 16 * engine.n_params // max(len(enc), 1)
        pairs = max(1, memory_bytes // max(per_example_vector, 1))  # (example, vector) pairs per pass
        self.ex_chunk = int(max(1, min(len(enc), 16, pairs)))
        self.vec_chunk = int(max(1, min(32, pairs // self.ex_chunk)))
        self.n_products = 0

    def _unflat(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: flat[..., a:b].reshape(*flat.shape[:-1], *self.shapes[k]) for k, (a, b) in self.engine.offsets.items()}

    def _flat(self, tree: dict[str, torch.Tensor], v: int) -> torch.Tensor:
        return torch.cat([tree[k].reshape(v, -1) for k in self.engine.names], dim=1)

    def _logits(self, sel: dict[str, torch.Tensor], part: Encoded) -> torch.Tensor:
        out = functional_call(self.engine.model, {**self.rest, **sel}, (), {"input_ids": part.input_ids, "attention_mask": part.attention_mask, "use_cache": False})
        return out.logits.float()

    def _chunk_product(self, tangents: dict[str, torch.Tensor], part: Encoded, n_total: int) -> dict[str, torch.Tensor]:
        if self.kind == "hessian":
            def loss(sel: dict[str, torch.Tensor]) -> torch.Tensor:
                return token_losses(self._logits(sel, part), part.input_ids, part.loss_mask).sum() / n_total

            return vmap(lambda t: jvp(grad(loss), (self.sel,), (t,))[1])(tangents)
        # Gauss-Newton: J^T H_ce J, with H_ce of the masked mean cross-entropy per example.
        # torch.func.vjp returns (output, vjp_fn) without has_aux; its annotation always counts an aux.
        z, pullback = vjp(lambda s: self._logits(s, part), self.sel)  # type: ignore[misc]
        jz = vmap(lambda t: jvp(lambda s: self._logits(s, part), (self.sel,), (t,))[1])(tangents)
        w = part.loss_mask / part.loss_mask.sum(-1, keepdim=True).clamp_min(1.0) / n_total  # [n, L-1]
        p = torch.softmax(z[:, :-1], dim=-1)
        u = jz[:, :, :-1]
        pu = p * u
        hu = w[None, :, :, None] * (pu - p * pu.sum(-1, keepdim=True))
        hu = torch.nn.functional.pad(hu, (0, 0, 0, 1))  # the last position predicts nothing
        return vmap(lambda c: pullback(c)[0])(hu)

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        """float32 [v, D]: the curvature times each row of ``vectors``."""
        v_all = vectors.shape[0]
        out = torch.zeros_like(vectors)
        n = len(self.enc)
        for vlo in range(0, v_all, self.vec_chunk):
            vhi = min(v_all, vlo + self.vec_chunk)
            tangents = self._unflat(vectors[vlo:vhi])
            for lo in range(0, n, self.ex_chunk):
                part = self.enc.rows(np.arange(lo, min(n, lo + self.ex_chunk))).to(self.device)
                prod = self._chunk_product(tangents, part, n)
                out[vlo:vhi] += self._flat(prod, vhi - vlo)
        self.n_products += v_all
        return out


def top_eigenvalue(matvec: MatVec, dim: int, *, iters: int = 12, seed: int = 0, device: torch.device | str = "cpu") -> float:
    """The largest-magnitude eigenvalue of the operator, by power iteration (its absolute value)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(1, dim, generator=g).to(device)
    v /= v.norm()
    value = 0.0
    for _ in range(iters):
        hv = matvec(v)
        value = float((v * hv).sum())
        norm = float(hv.norm())
        if norm == 0.0:
            return 0.0
        v = hv / norm
    return abs(value)


def multishift_cg(
    matvec: MatVec, b: torch.Tensor, dampings: Sequence[float], *, max_iter: int, tol: float
) -> tuple[list[torch.Tensor], int, list[float]]:
    """Solve ``(H + lambda I) x = b_r`` for every row ``r`` of ``b`` and every ``lambda``.

    CG in its Lanczos form: the Krylov space of ``H`` does not depend on the shift, so one
    run of ``k`` products per row gives, for every damping, exactly the CG iterate after
    ``k`` steps (x = |b| Q (T + lambda I)^{-1} e_1). Lanczos vectors are fully
    re-orthogonalized. A row stops contributing once every shifted residual
    ``beta_{k+1} |e_k^T y|`` is below ``tol |b|``.

    Returns:
        (one [v, D] solution per damping, Lanczos steps taken, the worst relative residual
        over rows for each damping).
    """
    v = b.shape[0]
    bnorm = b.norm(dim=1).clamp_min(1e-30)
    shifts = torch.tensor([float(d) for d in dampings], dtype=torch.float64)
    basis = [b / bnorm[:, None]]
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    residuals = [float("inf")] * len(shifts)
    ys = torch.zeros(len(shifts), v, 1, dtype=torch.float64)
    dead = torch.zeros(v, dtype=torch.bool, device=b.device)
    for k in range(max_iter):
        w = matvec(basis[k])
        if k > 0:
            w -= betas[-1].to(w)[:, None] * basis[k - 1]
        alpha = (w * basis[k]).sum(1)
        w -= alpha[:, None] * basis[k]
        for q in basis:  # full re-orthogonalization keeps the Krylov basis exact
            w -= (w * q).sum(1)[:, None] * q
        beta = w.norm(dim=1)
        # A row whose Krylov space is exhausted stops: zero next vector, decoupled unit entry.
        alpha = torch.where(dead, torch.ones_like(alpha), alpha)
        dead = dead | (beta <= 1e-6 * (alpha.abs() + (betas[-1].to(beta) if betas else 0.0)))
        beta = torch.where(dead, torch.zeros_like(beta), beta)
        alphas.append(alpha.double().cpu())
        tri = torch.diag_embed(torch.stack(alphas, 1))
        if betas:
            off = torch.stack(betas, 1).double().cpu()
            tri = tri + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
        rhs = torch.zeros(v, k + 1, dtype=torch.float64)
        rhs[:, 0] = 1.0
        eye = torch.eye(k + 1, dtype=torch.float64)
        ys = torch.linalg.solve(tri[None] + shifts[:, None, None, None] * eye, rhs[None].expand(len(shifts), -1, -1))
        residuals = (beta.double().cpu()[None] * ys[:, :, -1].abs()).amax(dim=1).tolist()
        if max(residuals) <= tol or k == max_iter - 1:
            break
        betas.append(beta.cpu())
        basis.append(torch.where(dead[:, None], torch.zeros_like(w), w / beta.clamp_min(1e-30)[:, None]))
    stack = torch.stack(basis[: ys.shape[-1]])  # [k, v, D]
    sols = [torch.einsum("kv,kvd->vd", (ys[j] * bnorm.double().cpu()[:, None]).T.to(stack), stack) for j in range(len(shifts))]
    return sols, len(alphas), residuals


def lissa(matvec: MatVec, b: torch.Tensor, damping: float, *, scale: float, depth: int) -> torch.Tensor:
    """``(H + damping I)^{-1} b`` as ``(1/s) sum_j (I - (H + damping I)/s)^j b`` (needs ``s`` above
    the top eigenvalue of ``H + damping I``)."""
    x = b.clone()
    for _ in range(depth):
        x = b + x - (matvec(x) + damping * x) / scale
    return x / scale


class FisherSolver:
    """``(G^T G / n + lambda I)^{-1}`` on projected gradients ``G`` [n, d], for any lambda."""

    def __init__(self, g: torch.Tensor) -> None:
        g64 = g.double()
        fisher = g64.T @ g64 / max(g.shape[0], 1)
        evals, self.evecs = torch.linalg.eigh(fisher)
        self.evals = evals.clamp_min(0.0)

    @property
    def top(self) -> float:
        """The largest eigenvalue of the empirical Fisher."""
        return float(self.evals.max()) if len(self.evals) else 0.0

    def solve(self, b: torch.Tensor, damping: float) -> torch.Tensor:
        """float32 [m, d]: each row of ``b`` times the damped inverse."""
        coef = (b.double() @ self.evecs) / (self.evals + damping)
        return (coef @ self.evecs.T).float()
