"""Influence functions (Koh & Liang 2017) as an additive training-run simulator.

At checkpoint ``c`` the score of training example ``i`` for test example ``z`` is
``S[c, i, z] = g_z^T (H_c + lambda I)^{-1} g_i``, with ``H_c`` the Gauss-Newton matrix or the
Hessian of the mean recorded loss over a seeded sample of training examples. The simulator
form is TracIn's with this score: ``B_i = -(eta_t / |c_t|) S`` (see _rollout).

The inverse is applied to the test gradients (one solve per test example, shared by every
training example) by CG with exact products (:func:`~tdabench_plugins.gradients._ihvp.multishift_cg`),
LiSSA, or the damped empirical Fisher on projected gradients. Unless ``damping`` is given,
lambda is ``r * top eigenvalue of H`` with ``r`` chosen from ``damping_grid`` by rollout MSE
on the validation runs; CG and the Fisher path get every candidate from one solve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tdabench import Encoded, FitData
from tdabench_plugins.gradients._config import InfluenceConfig
from tdabench_plugins.gradients._ihvp import Curvature, FisherSolver, lissa, multishift_cg, top_eigenvalue
from tdabench_plugins.gradients._model import encode_examples
from tdabench_plugins.gradients._scores import cross_scores, self_scores
from tdabench_plugins.gradients._tracin import GradientSimulator

#: Training examples defining H for cg and lissa when ``hessian_examples`` is 0.
DEFAULT_HESSIAN_EXAMPLES = 16
Solve = Callable[[torch.Tensor, list[float]], list[torch.Tensor]]


class Influence(GradientSimulator):
    """Influence functions with an inverse-Hessian solve at the final (or every) checkpoint."""

    config: InfluenceConfig
    table_kind = "influence"

    def _checkpoints(self) -> str:
        return self.config.checkpoints

    def _prepare(self, data: FitData) -> None:
        cfg = self.config
        n_h = cfg.hessian_examples or (len(data.train) if cfg.solver == "fisher" else DEFAULT_HESSIAN_EXAMPLES)
        rng = np.random.default_rng(data.seed)
        ids = np.sort(rng.choice(data.train.ids, size=min(n_h, len(data.train)), replace=False))
        self.h_enc_: Encoded = encode_examples(self.handle_, data.train.subset(ids), cfg.max_length)
        self.grid_: dict[int, list[float]] = {}  # checkpoint step -> absolute candidate dampings
        self.damping_: dict[int, float] = {}  # checkpoint step -> chosen damping
        self.top_: dict[int, float] = {}
        self.solve_log_: list[dict[str, Any]] = []

    def _chosen(self, variant: int) -> None:
        self.damping_ = {step: grid[variant] for step, grid in self.grid_.items()}

    def _solver(self, params: dict[str, torch.Tensor], step: int, need_top: bool) -> tuple[Solve, float]:
        """A function solving ``(H + lambda I) x = g`` for rows of g and several lambdas, and the
        top eigenvalue of H (0 when not needed)."""
        cfg, engine = self.config, self.engine_
        if cfg.solver == "fisher":
            fisher = FisherSolver(engine.grads(params, self.h_enc_))
            return (lambda g, lams: [fisher.solve(g, lam) for lam in lams]), max(fisher.top, 1e-12)
        curv = Curvature(engine, params, self.h_enc_, cfg.curvature, self.budget_ // 4)
        top = 0.0
        if need_top or cfg.solver == "lissa":
            top = self.top_.get(step) or max(top_eigenvalue(curv, engine.dim, seed=step, device=self.handle_.device), 1e-12)
            self.top_[step] = top
        if cfg.solver == "lissa":
            depth = cfg.lissa_depth
            return (lambda g, lams: [lissa(curv, g, lam, scale=1.1 * (top + lam), depth=depth) for lam in lams]), top

        def cg(g: torch.Tensor, lams: list[float]) -> list[torch.Tensor]:
            rows = max(1, (self.budget_ // 2) // (4 * engine.dim * (cfg.cg_max_iter + 2 + len(lams))))
            outs: list[list[torch.Tensor]] = [[] for _ in lams]
            for lo in range(0, g.shape[0], rows):
                sols, steps, res = multishift_cg(curv, g[lo : lo + rows], lams, max_iter=cfg.cg_max_iter, tol=cfg.cg_tol)
                self.solve_log_.append({"step": step, "lanczos_steps": steps, "residuals": dict(zip(lams, res))})
                for j, x in enumerate(sols):
                    outs[j].append(x)
            return [torch.cat(o) for o in outs]

        return cg, top

    def _dampings(self, step: int, top: float, variants: bool) -> list[float]:
        if not variants:
            return [self.damping_[step]]
        grid = [self.config.damping] if self.config.damping > 0 else [r * top for r in self.config.damping_grid]
        self.grid_[step] = grid
        return grid

    def _checkpoint_table(self, params: dict[str, torch.Tensor], step: int, test: Encoded, train: Encoded, *, variants: bool) -> np.ndarray:
        self.log_mark_ = len(self.solve_log_)  # this table's solves are logged from here (saved with it)
        need_top = variants and self.config.damping == 0
        solve, top = self._solver(params, step, need_top)
        lams = self._dampings(step, top, variants)
        return cross_scores(self.engine_, params, test, train, budget_bytes=self.budget_, left_map=lambda g: solve(g, lams), n_maps=len(lams))

    def _self_table(self, params: dict[str, torch.Tensor], step: int, enc: Encoded) -> np.ndarray:
        solve, _ = self._solver(params, step, need_top=False)
        lams = [self.damping_[step]]
        return self_scores(self.engine_, params, enc, budget_bytes=self.budget_, left_map=lambda g: solve(g, lams))[0]

    def _table_salt(self, step: int, variants: bool) -> dict[str, Any]:
        # a fit computes every candidate damping (set by the options); a query only the chosen one
        return {} if variants else {"damping": self.damping_[step]}

    def _table_state(self, step: int) -> dict[str, Any]:
        log = [{"step": e["step"], "lanczos_steps": e["lanczos_steps"], "residuals": list(map(list, e["residuals"].items()))}
               for e in self.solve_log_[self.log_mark_ :]]
        return {"top": self.top_.get(step), "grid": self.grid_.get(step), "solve_log": log}

    def _restore_state(self, step: int, state: dict[str, Any]) -> None:
        if state.get("top") is not None:
            self.top_[step] = float(state["top"])
        if state.get("grid") is not None:
            self.grid_[step] = [float(x) for x in state["grid"]]
        for e in state.get("solve_log", []):
            self.solve_log_.append({"step": e["step"], "lanczos_steps": e["lanczos_steps"], "residuals": {float(k): v for k, v in e["residuals"]}})

    def fit_info(self) -> dict[str, Any]:
        """TracIn's fit info plus the dampings and the solver's convergence."""
        info = super().fit_info()
        # CG's worst relative residual at the chosen damping, as the Lanczos recurrence estimates
        # it (float32 products floor the true residual near 1e-4)
        worst = max((e["residuals"][self.damping_[e["step"]]] for e in self.solve_log_ if self.damping_.get(e["step"]) in e["residuals"]), default=None)
        info.update(
            solver=self.config.solver,
            curvature=self.config.curvature if self.config.solver != "fisher" else "empirical-fisher",
            hessian_examples=len(self.h_enc_),
            top_eigenvalue={str(k): v for k, v in self.top_.items()},
            damping_candidates={str(k): v for k, v in self.grid_.items()},
            damping={str(k): v for k, v in self.damping_.items()},
            cg_residual_estimate=worst,
        )
        return info
