"""The plugin module named by the ``tdabench`` entry point."""

from __future__ import annotations

from tdabench import Capabilities, MethodSpec, hookimpl
from tdabench_knn.simulator import KNNConfig, KNNSimulator


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """Register ``knn``."""
    return [
        MethodSpec(
            name="knn",
            factory=KNNSimulator,
            config_cls=KNNConfig,
            version="1",  # bump whenever a change alters the numbers knn produces
            capabilities=Capabilities(unseen_test=True, unseen_train=True, text_trajectories=True, needs_text=True),
            summary="additive simulator from averaged observed changes, nearest neighbours for unseen examples",
        )
    ]
