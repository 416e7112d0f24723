"""tdabench: a benchmark harness for training-data-attribution methods that simulate training runs.

The public API, everything a method author or a user needs, importable from here:

* the Simulator contract: :class:`Simulator`, :class:`SelfInfluence`, :class:`Capabilities`,
  :class:`Resources`, :class:`MethodSpec`, :class:`NoConfig`, :class:`FitData`, :class:`Query`,
  :class:`RunBatches`, :class:`BenchmarkRef`, and :data:`hookimpl` to register methods;
* method configs: :func:`option`, :func:`validate_options`;
* the data model: :class:`Benchmark`, :class:`ExampleSet`, :class:`Trajectory`, :class:`Run`, ...;
* the method toolkit: :class:`ZeroLine` (the batch-blind zero line every ranking is measured
  against), :class:`MeanChange`, :class:`Residual`, the guards (:func:`guard_range`, ...) and the
  language-model loss (:func:`encode`, :func:`token_losses`, ...);
* scores: :class:`Score`, :func:`score`, :data:`SCORES`;
* errors: :class:`TDABenchError` and its kinds.

``tdabench.testing`` holds the conformance suite for a method package's own tests. Names load
on first use, so ``import tdabench`` stays cheap (torch loads only with the LM toolkit).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from tdabench.compat import hide_mismatched_builds

# Before anything imports transformers: a torchvision built for CUDA next to the CPU torch breaks
# every transformers model import (tdabench/compat.py says how).
hide_mismatched_builds()

try:
    __version__ = version("tdabench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("Simulator", "SelfInfluence", "Capabilities", "Resources", "MethodSpec", "NoConfig", "FitData", "Query",
                     "RunBatches", "BenchmarkRef", "config_dict"), "tdabench.simulator"),
    "hookimpl": "tdabench.hookspecs",
    **dict.fromkeys(("option", "validate_options"), "tdabench.config"),
    **dict.fromkeys(("Benchmark", "BenchmarkMeta", "DesignInfo", "ExampleSet", "ModelAccess", "Run", "SplitSpec", "Trajectory",
                     "SPLITS", "TRAJECTORIES"), "tdabench.data"),
    **dict.fromkeys(("TDABenchError", "DataError", "ConfigError", "PluginError", "UnknownNameError"), "tdabench.errors"),
    **dict.fromkeys(("Score", "ScoreSpec", "SCORES"), "tdabench.scores"),
    "score": "tdabench.scoring",
    **dict.fromkeys(("ZeroLine", "MeanChange"), "tdabench.methods.zero_line"),
    **dict.fromkeys(("Residual", "residual_values"), "tdabench.methods.residual"),
    **dict.fromkeys(("guard_range", "guarded", "widened_range", "fitted_values", "torch_threads"), "tdabench.methods.guards"),
    **dict.fromkeys(("Encoded", "encode", "token_losses", "per_example_loss", "LOSS_TYPES"), "tdabench.methods.lm"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tdabench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from tdabench.config import option, validate_options
    from tdabench.data import (
        SPLITS,
        TRAJECTORIES,
        Benchmark,
        BenchmarkMeta,
        DesignInfo,
        ExampleSet,
        ModelAccess,
        Run,
        SplitSpec,
        Trajectory,
    )
    from tdabench.errors import ConfigError, DataError, PluginError, TDABenchError, UnknownNameError
    from tdabench.hookspecs import hookimpl
    from tdabench.methods.guards import fitted_values, guard_range, guarded, torch_threads, widened_range
    from tdabench.methods.lm import LOSS_TYPES, Encoded, encode, per_example_loss, token_losses
    from tdabench.methods.residual import Residual, residual_values
    from tdabench.methods.zero_line import MeanChange, ZeroLine
    from tdabench.scores import SCORES, Score, ScoreSpec
    from tdabench.scoring import score
    from tdabench.simulator import (
        BenchmarkRef,
        Capabilities,
        FitData,
        MethodSpec,
        NoConfig,
        Query,
        Resources,
        RunBatches,
        SelfInfluence,
        Simulator,
        config_dict,
    )
