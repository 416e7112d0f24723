"""Options of ``trak`` and ``trak-residual`` (documented in docs/methods.md, "The field's libraries")."""

from __future__ import annotations

from dataclasses import dataclass

from tdabench import option
from tdabench_plugins.gradients._config import GradientConfig


@dataclass(frozen=True)
class TrakConfig(GradientConfig):
    """The gradient methods' shared options and TRAK's own; ``projection_dim`` is TRAK's JL dimension."""

    proj_dim: int = option(512, "TRAK's JL projection dimension (traker's own Gaussian projector, seeded)", ge=2)
    max_checkpoints: int = option(4, "checkpoints in TRAK's ensemble, evenly spaced, first and last kept (0: all)", ge=0)
    calibrate: bool = option(True, "fit one global scale of the predicted change by least squares on the fit runs "
                             "(traker normalizes its scores, so their raw scale is arbitrary)")
    damping: float = option(0.0, "damping lambda added to Phi^T Phi (0: chosen on the validation runs from damping_grid)", ge=0)
    # Up to 1e4: the validation runs chose the old top (10) in most bank v2 cells (docs/methods.md, "Damping").
    damping_grid: tuple[float, ...] = option((1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4), "candidate dampings, relative to the "
                                             "mean eigenvalue of Phi^T Phi (its trace over the dimension)", gt=0, nonempty=True)
    projector_block: int = option(256, "columns of traker's projection matrix generated at once (below projection_dim)", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.projection_dim:
            raise ValueError("option 'projection_dim': TRAK projects with traker's own projector; set proj_dim instead")
        if self.published:
            raise ValueError("option 'published' is TracIn-CP's; TRAK has no published in-sample form")
