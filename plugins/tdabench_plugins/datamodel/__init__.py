"""The cluster datamodel: a batch-aware baseline over kinds of training examples.

A plugin package (entry point ``datamodel``): the hook implementation lives here, the method in
private modules: ``_model`` (config and simulator) and ``_solve`` (k-means, cluster counts, the
per-step ridge). It answers "how far does knowing only which kind of example a run trained on,
and when, get?", the bar a per-example method must clear to show it attributes to examples
(docs/methods.md, section "Cluster datamodel").
"""

from __future__ import annotations

from tdabench import Capabilities, MethodSpec, hookimpl
from tdabench_plugins.datamodel._model import ClusterDatamodel, ClusterDatamodelConfig

__all__ = ["ClusterDatamodel", "ClusterDatamodelConfig", "tdabench_methods"]


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """The cluster datamodel."""
    return [
        MethodSpec(
            name="cluster-datamodel",
            factory=ClusterDatamodel,
            config_cls=ClusterDatamodelConfig,
            # Weights per recorded step: no runs of another length. A new training example joins
            # its nearest cluster; a new test example borrows its nearest fitted ones' weights.
            capabilities=Capabilities(unseen_test=True, unseen_train=True, text_trajectories=True, any_length=False, needs_text=True,
                                      stochastic=True),
            version="5",
            summary="zero line + per-step ridge on log cumulative counts of k-means clusters of the training examples",
        ),
    ]
