"""Gradient-based methods as training-run simulators: TracIn-CP, Grad-Dot, influence functions.

Each is registered twice: raw (faithful to its paper) and ``-calibrated`` (one global scale
of the predicted change fitted by least squares on the fit runs, like the published
rescaled TracIn); the calibrated name only changes the default of the ``calibrate`` option.

A plugin package (entry point ``gradients``); private modules: ``_model`` (the benchmark's
model and checkpoints), ``_per_example`` (per-example gradients with torch.func),
``_project`` (random projections), ``_scores`` (blocked inner products), ``_ihvp``
(inverse-Hessian-vector products), ``_rollout`` (the simulator form), ``_tracin`` and
``_influence`` (the simulators), ``_cache`` (score tables on disk), ``_config`` (options). Conventions and
equations: docs/methods.md, section "Gradient-based methods".
"""

from __future__ import annotations

import dataclasses
from functools import partial

from tdabench import Capabilities, MethodSpec, Residual, hookimpl
from tdabench_plugins.gradients._config import CalibratedGradientConfig, CalibratedInfluenceConfig, GradientConfig, InfluenceConfig
from tdabench_plugins.gradients._influence import Influence
from tdabench_plugins.gradients._tracin import GradDot, TracInCP

#: Gradients exist for any text, so unseen training and test examples are served; gradients
#: of the loss say nothing about BLEU or ROUGE, so only loss trajectories are.
CAPABILITIES = Capabilities(
    unseen_test=True,
    unseen_train=True,
    text_trajectories=False,
    needs_checkpoints=True,
    needs_text=True,
    self_influence=True,
)


#: The version of every gradient method (they share their code): bump it when their numbers change.
VERSION = "5"  # 5: residual forms on the zero line


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """TracIn-CP, Grad-Dot and influence functions, raw and calibrated; TracIn-CP and influence nesting the zero line."""
    specs = [
        ("tracin-cp", TracInCP, "TracIn-CP: y_t = y_{t-1} - eta_t/|c_t| sum <g_i, g_z> at the latest checkpoint"),
        ("grad-dot", GradDot, "Grad-Dot: TracIn-CP with the final checkpoint only"),
        ("influence", Influence, "influence functions: B_i = -(eta/|c_t|) g_z^T (H + lambda I)^-1 g_i"),
    ]
    out = []
    for name, cls, summary in specs:
        raw_cfg, cal_cfg = (InfluenceConfig, CalibratedInfluenceConfig) if cls is Influence else (GradientConfig, CalibratedGradientConfig)
        out.append(MethodSpec(name=name, factory=cls, config_cls=raw_cfg, capabilities=CAPABILITIES, version=VERSION,
                              summary=summary + " (raw scale)"))
        out.append(MethodSpec(name=f"{name}-calibrated", factory=cls, config_cls=cal_cfg, capabilities=CAPABILITIES,
                              version=VERSION, summary=summary + " (one least-squares scale on the fit runs)"))
    for name, cls, raw_cfg in (("tracin-cp", TracInCP, GradientConfig), ("influence", Influence, InfluenceConfig)):
        out.append(MethodSpec(name=f"{name}-residual", factory=partial(Residual, cls, "fit"), config_cls=raw_cfg,
                              capabilities=dataclasses.replace(CAPABILITIES, any_length=False),
                              version=VERSION, summary=f"{name} scores on the deviation from the zero line: centered over the fit "
                                                       "runs, one least-squares scale (0 without signal: the zero line)"))
    return out
