"""Configs of the gradient-based methods (options documented in docs/methods.md)."""

from __future__ import annotations

from dataclasses import dataclass

from tdabench import option, validate_options
from tdabench_plugins.gradients._ihvp import CURVATURES, SOLVERS
from tdabench_plugins.gradients._per_example import PARAM_SETS
from tdabench_plugins.gradients._project import PROJECTION_KINDS

REDUCTIONS: tuple[str, ...] = ("mean", "sum")
CHECKPOINT_CHOICES: tuple[str, ...] = ("final", "all")


@dataclass(frozen=True)
class GradientConfig:
    """Options shared by TracIn-CP, Grad-Dot and influence functions (``published`` applies its
    settings in ``__post_init__``, so results show the options that ran)."""

    params: str = option("all", "parameters whose gradients are used: all; linear (the nn.Linear layers' weights and biases, "
                         "what kronfluence covers); last-layer (the output layer, as the published TracIn-CP baseline)", choices=PARAM_SETS)
    projection_dim: int = option(0, "project gradients to this many dimensions with a seeded random map (0: no projection)", ge=0)
    projection: str = option("sketch", "kind of random projection (sketch: CountSketch, any size; gaussian: dense)", choices=PROJECTION_KINDS)
    checkpoint_run: str = option("", "run whose checkpoints are used (default: the first fit run that has checkpoints)")
    max_checkpoints: int = option(0, "use at most this many checkpoints, evenly spaced, first and last kept (0: all)", ge=0)
    batch_reduction: str = option("mean", "how the training loss reduced a batch: mean divides each step by its batch size", choices=REDUCTIONS)
    calibrate: bool = option(False, "fit one global scale of the predicted change by least squares on the fit runs")
    clip: bool = option(True, "clip the returned predictions to the fitted value range widened by its span on each side, "
                        "and at 0 when no fitted value is negative (a loss cannot be)")
    max_length: int = option(256, "tokens per example; longer prompts lose tokens from the start", ge=2)
    published: bool = option(False, "TracIn-CP as the authors ran it: sets params=last-layer (the output embedding), "
                             "batch_reduction=sum and calibrate=false, and asks the runner for one global scale least-squares "
                             "fitted on the evaluated run itself: in-sample, so such cells are marked and never ranked")
    memory_mb: int = option(2048, "working-memory budget for gradients in MB; peak use stays below about twice this (peak under 8 GB)", ge=64, le=4096)

    def __post_init__(self) -> None:
        validate_options(self)
        if self.published:
            for key, value in (("params", "last-layer"), ("batch_reduction", "sum"), ("calibrate", False)):
                object.__setattr__(self, key, value)


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
    hessian_examples: int = option(0, "training examples defining H (0: 16 for cg and lissa, all for fisher)", ge=0)
    damping: float = option(0.0, "damping lambda added to H (0: chosen on the validation runs from damping_grid)", ge=0)
    damping_grid: tuple[float, ...] = option((1e-3, 1e-2, 1e-1, 1.0), "candidate dampings, relative to the top eigenvalue of H", gt=0, nonempty=True)
    cg_max_iter: int = option(10, "CG (Lanczos) steps per right-hand side", ge=1)
    cg_tol: float = option(1e-3, "CG stops when every relative residual is below this", gt=0)
    lissa_depth: int = option(50, "terms of the LiSSA series", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.solver == "fisher" and self.projection_dim == 0:
            raise ValueError("option 'solver'=fisher needs 'projection_dim' > 0 (it inverts a d x d matrix)")


@dataclass(frozen=True)
class CalibratedInfluenceConfig(InfluenceConfig):
    """Influence options, calibrated by default."""

    calibrate: bool = option(True, "fit one global scale of the predicted change by least squares on the fit runs")
