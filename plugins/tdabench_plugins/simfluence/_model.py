"""The Simfluence simulators: Simfluence-Linear (Guu et al. 2023) and its two variants.

One pair of factors (A_iz, B_iz) per training example i and test example z::

    linear:          y_t = (sum_{i in c_t} A_iz) y_{t-1} + sum_{i in c_t} B_iz
    additive:        y_t = y_{t-1} + sum_{i in c_t} B_iz
    multiplicative:  y_t = (sum_{i in c_t} A_iz) y_{t-1}

Fitting is closed-form ridge regression on the teacher-forced transitions of the fit runs,
per test example and batched across them, shrinking toward a neutral prior (A = 1/batch size,
B = 0); the ridge strength is chosen from a small grid by rollout MSE on the validation runs.
Equations, options and conventions: docs/methods.md, section "Simfluence-Linear".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tdabench import FitData, Query, fitted_values, guard_range, guarded, option, validate_options, widened_range
from tdabench_plugins.simfluence._design import Design, build_design, id_positions
from tdabench_plugins.simfluence._rollout import factor_sums, query_transitions, rollout, rollout_mse
from tdabench_plugins.simfluence._solve import solve_cg, solve_direct

PRIORS = ("neutral", "zero")
UNSEEN_RULES = ("neutral", "mean")
SOLVERS = ("auto", "direct", "cg")
DEFAULT_LAMBDAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: ``solver=auto`` falls back to dense Cholesky, up to this many parameters per test example,
#: when CG has not converged within ``AUTO_CG_ITER`` iterations.
AUTO_DIRECT_MAX_PARAMS = 1024
AUTO_CG_ITER = 200


@dataclass(frozen=True)
class SimfluenceConfig:
    """Options shared by the three Simfluence variants (docs/methods.md)."""

    lambdas: tuple[float, ...] = option(
        DEFAULT_LAMBDAS,
        "ridge strengths tried, relative to the data (1 = the prior weighs as much as a typical "
        "training example's observations); the one with the lowest validation rollout MSE is kept",
        gt=0, nonempty=True,
    )
    prior: str = option(
        "neutral",
        "what the ridge shrinks toward: neutral (A = 1/batch size, B = 0, a batch keeps the value) "
        "or zero (plain ridge, A = B = 0)",
        choices=PRIORS,
    )
    unseen: str = option(
        "neutral",
        "factors of a training example absent from the fit runs: neutral (A = 1/batch size, B = 0, "
        "a batch of them keeps the value) or mean (the test example's mean fitted A and B)",
        choices=UNSEEN_RULES,
    )
    solver: str = option(
        "auto",
        f"dense batched Cholesky (direct), preconditioned conjugate gradients (cg), or auto (cg; "
        f"direct if cg needs more than {AUTO_CG_ITER} iterations and a test example has at most "
        f"{AUTO_DIRECT_MAX_PARAMS} parameters)",
        choices=SOLVERS,
    )
    cg_tol: float = option(1e-8, "cg: stop when every test example's relative residual is below this", gt=0)
    cg_max_iter: int = option(2000, "cg: iteration limit per lambda", ge=1)
    clip: bool = option(True, "clip every rollout step to the fitted value range widened by its span on each side, "
                        "and the returned predictions also at 0 when no fitted value is negative")

    def __post_init__(self) -> None:
        validate_options(self)


class SimfluenceBase:
    """A Simfluence variant; subclasses set ``VARIANT``.

    Learned state (set by :meth:`fit`): ``train_ids_`` (the training examples of the fit
    runs), ``test_ids_``, ``A_`` and ``B_`` ([n_train, n_test]; ``None`` for the part a variant
    does not have), ``lambda_``, ``lambda_scores_`` (selection rollout MSE per lambda),
    ``selected_on_`` ("validation" or "fit"), ``batch_size_`` (its inverse is the neutral A),
    ``a_unseen_`` and ``b_unseen_`` ([n_test], the factors of an unseen training example),
    ``level_`` (mean fitted y_{t-1} per test example), ``bounds_`` (the per-step clip),
    ``guard_`` (the clip of returned predictions), ``solver_``, ``cg_iters_``.
    """

    VARIANT: ClassVar[str] = "linear"

    def __init__(self, config: SimfluenceConfig) -> None:
        self.config = config

    # -- fitting -------------------------------------------------------------------------
    def fit(self, data: FitData) -> SimfluenceBase:
        """Ridge-fit every lambda of the grid, keep the one with the best validation rollout."""
        cfg = self.config
        train_ids = data.train.ids
        n_test = len(data.test)
        if data.values.shape[1] != n_test or data.validation_values.shape[1] != n_test:
            raise ValueError(f"FitData values have {data.values.shape[1]} test rows, FitData.test has {n_test}")
        design = build_design(self.VARIANT, data.runs, data.values, train_ids)
        neutral = cfg.prior == "neutral"
        lambdas = [float(v) for v in cfg.lambdas]
        sols, self.solver_, self.cg_iters_ = self._solve(design, lambdas, neutral, data.device)
        # Only examples that occur in the fit runs have learned factors; any other (validation
        # only, or never seen) is "unseen" and gets the rule of option `unseen`.
        observed = np.asarray(design.counts.sum(axis=0)).ravel() > 0
        sols = [sol[:, observed] for sol in sols]
        self.train_ids_ = np.array(train_ids[observed], copy=True)
        self.test_ids_ = np.array(data.test.ids, copy=True)
        self.batch_size_ = design.batch_size
        self.level_ = design.x.sum(axis=0) / np.maximum(design.mask.sum(axis=0), 1.0)
        self.bounds_ = widened_range(fitted_values(data)) if cfg.clip else None
        self.guard_ = guard_range(fitted_values(data)) if cfg.clip else None
        # Model selection: validation runs only; without any, the fit runs (docs/methods.md).
        if len(data.validation):
            runs, truth, self.selected_on_ = data.validation, data.validation_values, "validation"
        else:
            runs, truth, self.selected_on_ = data.runs, data.values, "fit"
        qt = query_transitions(runs, self.train_ids_)
        scores = []
        for sol in sols:
            A, B = self._split(sol)
            SA, SB = factor_sums(qt, A, B, *self._unseen_factors(A, B))
            scores.append(rollout_mse(rollout(SA, SB, truth[:, :, 0], self.bounds_), truth))
        # Lowest MSE; ties (and an all-NaN grid) go to the strongest regularization.
        key = [(s if math.isfinite(s) else math.inf, -lam) for s, lam in zip(scores, lambdas)]
        best = min(range(len(lambdas)), key=key.__getitem__)
        self.lambda_ = lambdas[best]
        self.lambda_scores_ = dict(zip(lambdas, scores))
        self.A_, self.B_ = self._split(sols[best])
        self.a_unseen_, self.b_unseen_ = self._unseen_factors(self.A_, self.B_)
        return self

    def _unseen_factors(self, A: np.ndarray | None, B: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) of an unseen training example for each test example, float64 [n_test] each."""
        nz = len(self.test_ids_)
        if self.config.unseen == "mean" and len(self.train_ids_):
            a = np.full(nz, 1.0 / self.batch_size_) if A is None else A.mean(axis=0)
            return a, (np.zeros(nz) if B is None else B.mean(axis=0))
        return np.full(nz, 1.0 / self.batch_size_), np.zeros(nz)

    def _solve(self, design: Design, lambdas: list[float], neutral: bool, device: str) -> tuple[list[np.ndarray], str, list[int] | None]:
        """(solution per lambda, solver used, CG iterations per lambda or None)."""
        cfg = self.config
        n_params = len(design.blocks) * design.n_train
        if cfg.solver in ("auto", "cg"):
            small = cfg.solver == "auto" and n_params <= AUTO_DIRECT_MAX_PARAMS
            # auto: CG first (fast on shuffled runs); if it stalls and dense is affordable, Cholesky.
            max_iter = min(cfg.cg_max_iter, AUTO_CG_ITER) if small else cfg.cg_max_iter
            sols, iters, converged = solve_cg(design, lambdas, neutral, cfg.cg_tol, max_iter)
            if converged or not small:
                if not converged:
                    warnings.warn(f"simfluence-{self.VARIANT}: CG did not reach cg_tol={cfg.cg_tol:g} in {max_iter} iterations", RuntimeWarning, stacklevel=3)
                return sols, "cg", iters
        return solve_direct(design, lambdas, neutral, device), "direct", None

    def _split(self, sol: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(A, B) from a solution [n_blocks, n_train, n_test] in the variant's block order."""
        if self.VARIANT == "linear":
            return sol[0], sol[1]
        return (None, sol[0]) if self.VARIANT == "additive" else (sol[0], None)

    # -- simulation ----------------------------------------------------------------------
    def simulate(self, query: Query) -> np.ndarray:
        """Roll out every query run from its initial values; float64 [R, n_test, K]."""
        cols = id_positions(query.test.ids, self.test_ids_)
        if np.any(cols < 0):
            bad = query.test.ids[cols < 0][:5].tolist()
            raise ValueError(f"simfluence-{self.VARIANT} cannot predict test examples it was not fitted on: {bad}")
        qt = query_transitions(query.runs, self.train_ids_)
        A = None if self.A_ is None else self.A_[:, cols]
        B = None if self.B_ is None else self.B_[:, cols]
        SA, SB = factor_sums(qt, A, B, self.a_unseen_[cols], self.b_unseen_[cols])
        return guarded(rollout(SA, SB, query.initial, self.bounds_), self.guard_)

    # -- what was learned ----------------------------------------------------------------
    def fit_info(self) -> dict[str, object]:
        """What fitting chose, JSON-ready: the lambda, where it was selected, the MSE per lambda."""
        return {
            "lambda": self.lambda_,
            "lambda_selected_on": self.selected_on_,
            "lambda_mse": {f"{k:g}": (v if math.isfinite(v) else None) for k, v in self.lambda_scores_.items()},
            "solver": self.solver_,
            "batch_size": self.batch_size_,
        }

    def factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(train ids, test ids, A, B), A and B float64 [n_train, n_test] (copies).

        The additive variant reports A = 1/batch size (its multiplicative part is exactly 1 per
        transition); the multiplicative variant reports B = 0.
        """
        shape = (len(self.train_ids_), len(self.test_ids_))
        A = np.full(shape, 1.0 / self.batch_size_) if self.A_ is None else self.A_.copy()
        B = np.zeros(shape) if self.B_ is None else self.B_.copy()
        return self.train_ids_.copy(), self.test_ids_.copy(), A, B

    def attribution(self, level: np.ndarray | float | None = None) -> np.ndarray:
        """float64 [n_train, n_test]: (A_iz - 1/batch) y + B_iz, the one-step change of y_z from
        having i in a batch rather than a neutral example, at value y = ``level``.

        ``level`` defaults to each test example's mean fitted y_{t-1}. For a loss, negative
        means training on i lowers z's loss (i helps z).
        """
        _, _, A, B = self.factors()
        y = self.level_ if level is None else np.broadcast_to(np.asarray(level, dtype=np.float64), (A.shape[1],))
        return (A - 1.0 / self.batch_size_) * y[None, :] + B

    def self_influence(self, ids: np.ndarray) -> np.ndarray:
        """float64 [n]: :meth:`attribution` of each example on itself, at its own mean fitted
        level; NaN for an id that is not both a fitted training and a fitted test example."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows, cols = id_positions(ids, self.train_ids_), id_positions(ids, self.test_ids_)
        out = np.full(len(ids), np.nan)
        ok = (rows >= 0) & (cols >= 0)
        _, _, A, B = self.factors()
        a, b = A[rows[ok], cols[ok]], B[rows[ok], cols[ok]]
        out[ok] = (a - 1.0 / self.batch_size_) * self.level_[cols[ok]] + b
        return out


class SimfluenceLinear(SimfluenceBase):
    """y_t = (sum A) y_{t-1} + sum B."""

    VARIANT = "linear"


class SimfluenceAdditive(SimfluenceBase):
    """y_t = y_{t-1} + sum B."""

    VARIANT = "additive"


class SimfluenceMultiplicative(SimfluenceBase):
    """y_t = (sum A) y_{t-1}."""

    VARIANT = "multiplicative"

