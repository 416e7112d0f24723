"""EK-FAC, KFAC and diagonal influence through kronfluence (Grosse et al. 2023), as training-run simulators.

A plugin package (entry point ``kronfluence``). Each method is an additive simulator over the
benchmark's checkpoints like the hand-written ``influence`` (the gradient plugin's simulator
form, calibration, guard, caching and self-influence), with its score tables from kronfluence:
``S[c, i, z] = grad loss(z)^T (G_c + lambda I)^-1 grad loss(i)`` under kronfluence's curvature
``G_c``. Registered raw, ``-calibrated`` and ``-residual`` (nesting the zero line). Private
modules: ``_task`` (the causal-LM task kronfluence asks for), ``_simulator``, ``_config``.
Equations, options and costs: docs/methods.md, "The field's libraries".
"""

from __future__ import annotations

import dataclasses
from typing import Any
from functools import partial

from tdabench import Capabilities, MethodSpec, Residual, hookimpl
from tdabench_plugins.kronfluence._config import CalibratedKronfluenceConfig, KronfluenceConfig
from tdabench_plugins.kronfluence._simulator import KronfluenceInfluence

#: As the hand-written gradient methods: any text, loss trajectories only, checkpoints needed.
CAPABILITIES = Capabilities(unseen_test=True, unseen_train=True, text_trajectories=False, needs_checkpoints=True,
                            needs_text=True, self_influence=True)
#: The version of every kronfluence method: bump it when their numbers change.
VERSION = "2"
#: method name -> (kronfluence strategy, summary)
METHODS: dict[str, tuple[str, str]] = {
    "ekfac-influence": ("ekfac", "EK-FAC influence (kronfluence): eigenvalue-corrected Kronecker-factored curvature"),
    "kfac-influence": ("kfac", "KFAC influence (kronfluence): Kronecker-factored curvature"),
    "diagonal-influence": ("diagonal", "diagonal influence (kronfluence): the Fisher's diagonal"),
}


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """EK-FAC, KFAC and diagonal influence, raw, calibrated and nesting the zero line."""
    out: list[MethodSpec[Any]] = []
    for name, (strategy, summary) in METHODS.items():
        factory = partial(KronfluenceInfluence, strategy)
        out += [
            MethodSpec(name=name, factory=factory, config_cls=KronfluenceConfig, capabilities=CAPABILITIES, version=VERSION,
                       summary=f"{summary}; B_i = -(eta/|c_t|) g_z^T (G + lambda I)^-1 g_i (raw scale)"),
            MethodSpec(name=f"{name}-calibrated", factory=factory, config_cls=CalibratedKronfluenceConfig, capabilities=CAPABILITIES,
                       version=VERSION, summary=f"{summary} (one least-squares scale on the fit runs)"),
            MethodSpec(name=f"{name}-residual", factory=partial(Residual, factory, "fit"), config_cls=KronfluenceConfig,
                       capabilities=dataclasses.replace(CAPABILITIES, any_length=False), version=VERSION,
                       summary=f"{summary}, on the deviation from the zero line (0 without signal: the zero line)"),
        ]
    return out
