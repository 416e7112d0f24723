"""TRAK through traker (Park et al. 2023), as a training-run simulator.

A plugin package (entry point ``trak``). ``trak`` is an additive simulator over one TRAK table
computed with the benchmark's checkpoints as TRAK's ensemble (the gradient plugin's simulator form,
guard, caching and self-influence), calibrated by default since traker's scores have no loss
scale; ``trak-residual`` nests the zero line. Private modules: ``_output`` (the causal-LM margin
traker asks for), ``_simulator``, ``_config``. Details: docs/methods.md, "The field's libraries".
"""

from __future__ import annotations

import dataclasses
from functools import partial

from tdabench import Capabilities, MethodSpec, Residual, hookimpl
from tdabench_plugins.trak._config import TrakConfig
from tdabench_plugins.trak._simulator import TRAK

CAPABILITIES = Capabilities(unseen_test=True, unseen_train=True, text_trajectories=False, needs_checkpoints=True,
                            needs_text=True, self_influence=True)
#: The version of both TRAK methods: bump it when their numbers change.
VERSION = "2"


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """TRAK, calibrated, and nesting the zero line."""
    summary = "TRAK (traker): JL-projected margin gradients, Phi (Phi^T Phi + lambda I)^-1 over the checkpoints as the ensemble"
    return [
        MethodSpec(name="trak", factory=TRAK, config_cls=TrakConfig, capabilities=CAPABILITIES, version=VERSION,
                   summary=summary + "; B_i = -(eta/|c_t|) s S[i, z] (one least-squares scale s on the fit runs)"),
        MethodSpec(name="trak-residual", factory=partial(Residual, TRAK, "fit"), config_cls=TrakConfig,
                   capabilities=dataclasses.replace(CAPABILITIES, any_length=False), version=VERSION,
                   summary=summary + ", on the deviation from the zero line (0 without signal: the zero line)"),
    ]
