"""Configs of the gradient-based methods (options documented in docs/methods.md)."""

from __future__ import annotations

from dataclasses import dataclass

from tdabench.config import option
from tdabench_plugins.grad_ihvp import CURVATURES, SOLVERS
from tdabench_plugins.grad_per_example import PARAM_SETS
from tdabench_plugins.grad_project import PROJECTION_KINDS

REDUCTIONS: tuple[str, ...] = ("mean", "sum")
CHECKPOINT_CHOICES: tuple[str, ...] = ("final", "all")


def _check_choice(key: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"option '{key}' must be one of {', '.join(map(str, allowed))}; got {value!r}")


@dataclass(frozen=True)
class GradientConfig:
    """Options shared by TracIn-CP, Grad-Dot and influence functions."""

    params: str = option("all", "parameters whose gradients are used ('last-layer': the output layer, as the published TracIn-CP baseline)", choices=PARAM_SETS)
    projection_dim: int = option(0, "project gradients to this many dimensions with a seeded random map (0: no projection)")
    projection: str = option("sketch", "kind of random projection (sketch: CountSketch, any size; gaussian: dense)", choices=PROJECTION_KINDS)
    checkpoint_run: str = option("", "run whose checkpoints are used (default: the first fit run that has checkpoints)")
    max_checkpoints: int = option(0, "use at most this many checkpoints, evenly spaced, first and last kept (0: all)")
    batch_reduction: str = option("mean", "how the training loss reduced a batch: mean divides each step by its batch size", choices=REDUCTIONS)
    calibrate: bool = option(False, "fit one global scale of the predicted change by least squares on the fit runs")
    max_length: int = option(256, "tokens per example; longer prompts lose tokens from the start")
    memory_mb: int = option(2048, "working-memory budget for gradients in MB; peak use stays below about twice this")

    def __post_init__(self) -> None:
        _check_choice("params", self.params, PARAM_SETS)
        _check_choice("projection", self.projection, PROJECTION_KINDS)
        _check_choice("batch_reduction", self.batch_reduction, REDUCTIONS)
        if self.projection_dim < 0:
            raise ValueError(f"option 'projection_dim' must be >= 0 (0: no projection); got {self.projection_dim}")
        if self.max_checkpoints < 0:
            raise ValueError(f"option 'max_checkpoints' must be >= 0 (0: all); got {self.max_checkpoints}")
        if self.max_length < 2:
            raise ValueError(f"option 'max_length' must be >= 2; got {self.max_length}")
        if not 64 <= self.memory_mb <= 4096:
            raise ValueError(f"option 'memory_mb' must be between 64 and 4096 (peak stays under 8 GB); got {self.memory_mb}")


@dataclass(frozen=True)
class CalibratedGradientConfig(GradientConfig):
    """The same options, calibrated by default."""

    calibrate: bool = option(True, "fit one global scale of the predicted change by least squares on the fit runs")


@dataclass(frozen=True)
class InfluenceConfig(GradientConfig):
    """Options of influence functions, on top of the shared ones."""

    checkpoints: str = option("final", "checkpoints whose Hessians are used: the final one, or each (summed like TracIn-CP)", choices=CHECKPOINT_CHOICES)
    solver: str = option("cg", "inverse-Hessian-vector products: cg (exact products), lissa, or fisher (projected damped empirical Fisher, needs projection_dim)", choices=SOLVERS)
    curvature: str = option("gauss-newton", "the matrix H of cg and lissa: the Gauss-Newton matrix (PSD) or the exact Hessian", choices=CURVATURES)
    hessian_examples: int = option(0, "training examples defining H (0: 16 for cg and lissa, all for fisher)")
    damping: float = option(0.0, "damping lambda added to H (0: chosen on the validation runs from damping_grid)")
    damping_grid: tuple[float, ...] = option((1e-3, 1e-2, 1e-1, 1.0), "candidate dampings, relative to the top eigenvalue of H")
    cg_max_iter: int = option(10, "CG (Lanczos) steps per right-hand side")
    cg_tol: float = option(1e-3, "CG stops when every relative residual is below this")
    lissa_depth: int = option(50, "terms of the LiSSA series")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("checkpoints", self.checkpoints, CHECKPOINT_CHOICES)
        _check_choice("solver", self.solver, SOLVERS)
        _check_choice("curvature", self.curvature, CURVATURES)
        if self.solver == "fisher" and self.projection_dim == 0:
            raise ValueError("option 'solver'=fisher needs 'projection_dim' > 0 (it inverts a d x d matrix)")
        if self.hessian_examples < 0:
            raise ValueError(f"option 'hessian_examples' must be >= 0; got {self.hessian_examples}")
        if self.damping < 0:
            raise ValueError(f"option 'damping' must be >= 0 (0: chosen on validation runs); got {self.damping}")
        if not self.damping_grid or any(not d > 0 for d in self.damping_grid):
            raise ValueError(f"option 'damping_grid' must hold positive values; got {self.damping_grid!r}")
        if self.cg_max_iter < 1 or self.lissa_depth < 1:
            raise ValueError("options 'cg_max_iter' and 'lissa_depth' must be >= 1")
        if not self.cg_tol > 0:
            raise ValueError(f"option 'cg_tol' must be > 0; got {self.cg_tol}")


@dataclass(frozen=True)
class CalibratedInfluenceConfig(InfluenceConfig):
    """Influence options, calibrated by default."""

    calibrate: bool = option(True, "fit one global scale of the predicted change by least squares on the fit runs")
