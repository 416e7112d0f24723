"""GPTfluence (Chai et al., EMNLP 2024, arXiv 2404.07840): the featurized training-run simulator.

A plugin package (entry point ``gptfluence``): the hook implementation lives here, the method in
private modules: ``_model`` (config, simulator, factors), ``_encoder`` (frozen encoder and
embedding cache), ``_nets`` (``dot`` and ``concat`` factor networks), ``_train`` (teacher-forced
training, interval, early stopping and rollout). Equations, options and conventions:
docs/methods.md, section "GPTfluence".
"""

from __future__ import annotations

import dataclasses
from functools import partial

from tdabench import Capabilities, MethodSpec, Residual, hookimpl, torch_threads
from tdabench_plugins.gptfluence._model import GPTfluence, GPTfluenceConfig, PairFactors

__all__ = ["GPTfluence", "GPTfluenceConfig", "PairFactors", "tdabench_methods", "torch_threads"]


#: 2: a training example the fit did not see stands in by its nearest fitted ones (``unseen_train``).
#: 5: residual form on the zero line.
#: 6: ``max_steps_per_epoch`` (default 500): on large fits the minibatch grows so an epoch takes at
#: most 500 steps (GPTDynamics' instruction-tuning shape: 123 x 123 blocks, 7,965 steps instead of
#: about 111,000 for the seen fit). Fits under the cap, the bank's included, are unchanged;
#: ``max_steps_per_epoch=0`` restores version 5's fixed ``batch_size`` blocks.
VERSION = "6"

_CAPS = Capabilities(unseen_test=True, unseen_train=True, text_trajectories=True, needs_text=True, self_influence=True, stochastic=True)


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """GPTfluence, and GPTfluence nesting the zero line."""
    return [
        MethodSpec(
            name="gptfluence",
            factory=GPTfluence,
            config_cls=GPTfluenceConfig,
            capabilities=_CAPS,
            version=VERSION,
            summary="GPTfluence: featurized simulator, factors from frozen text-encoder features (Chai et al. 2024)",
        ),
        MethodSpec(
            name="gptfluence-residual",
            factory=partial(Residual, GPTfluence, "shrink"),
            config_cls=GPTfluenceConfig,
            capabilities=dataclasses.replace(_CAPS, any_length=False),
            version=VERSION,
            summary="GPTfluence on the deviation from the zero line (falls back to it without signal)",
        ),
    ]
