"""Options of the kronfluence methods (documented in docs/methods.md, "The field's libraries")."""

from __future__ import annotations

from dataclasses import dataclass

from tdabench import option
from tdabench_plugins.gradients._config import CHECKPOINT_CHOICES, GradientConfig


@dataclass(frozen=True)
class KronfluenceConfig(GradientConfig):
    """The gradient methods' shared options (``params`` defaults to ``linear``: kronfluence's factors
    cover nn.Linear modules only) and kronfluence's own."""

    params: str = option("linear", "parameters whose curvature and gradients are used: linear (every nn.Linear layer, weights "
                         "and biases) or last-layer (the output layer); kronfluence cannot serve 'all' (embeddings, norms)",
                         choices=("all", "linear", "last-layer"))
    checkpoints: str = option("final", "checkpoints whose curvature is used: the final one, or each (summed like TracIn-CP)", choices=CHECKPOINT_CHOICES)
    hessian_examples: int = option(0, "training examples of the fit runs defining the curvature, drawn with the seed (0: every one)", ge=0)
    empirical_fisher: bool = option(False, "fit the curvature on the recorded targets (empirical Fisher) instead of labels sampled "
                                    "from the model (true Fisher, kronfluence's default)")
    damping: float = option(0.0, "damping lambda added to the curvature (0: chosen on the validation runs from damping_grid)", ge=0)
    # Up to 1e6: on bank v2 the validation runs chose the top of the old grid (1e3) in every diagonal and KFAC
    # cell; with this grid they choose inside it (docs/methods.md, "Damping").
    damping_grid: tuple[float, ...] = option((1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6), "candidate dampings, relative to "
                                             "the curvature's mean eigenvalue over the tracked modules (kronfluence's heuristic: 0.1 per module)",
                                             gt=0, nonempty=True)
    batch_size: int = option(16, "examples per kronfluence batch (factors and scores)", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.params == "all":
            raise ValueError("option 'params'=all: kronfluence tracks nn.Linear modules only; use params=linear or last-layer")
        if self.projection_dim:
            raise ValueError("option 'projection_dim': kronfluence works on its Kronecker factors, not on projected gradients; leave it 0")
        if self.published:
            raise ValueError("option 'published' is TracIn-CP's; kronfluence methods have no published in-sample form")


@dataclass(frozen=True)
class CalibratedKronfluenceConfig(KronfluenceConfig):
    """The same options, calibrated by default."""

    calibrate: bool = option(True, "fit one global scale of the predicted change by least squares on the fit runs")
