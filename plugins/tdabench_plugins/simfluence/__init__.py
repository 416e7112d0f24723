"""Simfluence-Linear (Guu et al. 2023, arXiv 2303.08114) and its additive and multiplicative variants.

A plugin package (entry point ``simfluence``): the hook implementation lives here, the method
in private modules: ``_model`` (config and simulators), ``_design`` (the teacher-forced
regression), ``_solve`` (batched ridge solves), ``_rollout`` (batched rollouts). Equations,
options and conventions: docs/methods.md, section "Simfluence-Linear".
"""

from __future__ import annotations

import dataclasses
from functools import partial

from tdabench import Capabilities, MethodSpec, Residual, hookimpl
from tdabench_plugins.simfluence._model import (
    SimfluenceAdditive,
    SimfluenceBase,
    SimfluenceConfig,
    SimfluenceLinear,
    SimfluenceMultiplicative,
)

__all__ = ["SimfluenceAdditive", "SimfluenceBase", "SimfluenceConfig", "SimfluenceLinear", "SimfluenceMultiplicative", "tdabench_methods"]

#: The version of every Simfluence variant (they share their code): bump it when their numbers change.
VERSION = "4"  # 4: residual form on the zero line

_CAPS = Capabilities(unseen_test=False, unseen_train=True, text_trajectories=True, self_influence=True)


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """The three Simfluence variants, and Simfluence-Linear nesting the zero line."""
    return [
        MethodSpec(
            name="simfluence-linear",
            factory=SimfluenceLinear,
            config_cls=SimfluenceConfig,
            capabilities=_CAPS,
            version=VERSION,
            summary="Simfluence-Linear: y_t = (sum A) y_{t-1} + sum B, ridge-fitted per pair",
        ),
        MethodSpec(
            name="simfluence-additive",
            factory=SimfluenceAdditive,
            config_cls=SimfluenceConfig,
            capabilities=_CAPS,
            version=VERSION,
            summary="Simfluence additive: y_t = y_{t-1} + sum B",
        ),
        MethodSpec(
            name="simfluence-residual",
            factory=partial(Residual, SimfluenceLinear, "shrink"),
            config_cls=SimfluenceConfig,
            capabilities=dataclasses.replace(_CAPS, any_length=False),
            version=VERSION,
            summary="Simfluence-Linear on the deviation from the zero line (falls back to it without signal)",
        ),
        MethodSpec(
            name="simfluence-multiplicative",
            factory=SimfluenceMultiplicative,
            config_cls=SimfluenceConfig,
            capabilities=_CAPS,
            version=VERSION,
            summary="Simfluence multiplicative: y_t = (sum A) y_{t-1}",
        ),
    ]
