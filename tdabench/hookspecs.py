"""Hook specifications: the only way methods and benchmark sources enter tdabench.

A plugin is a module (or object) with functions named like these specs and decorated with
:data:`hookimpl`, exposed through a ``tdabench`` entry point in its package metadata::

    [project.entry-points.tdabench]
    my_method = "my_package.plugin"

Built-in methods (``tdabench_plugins``) and benchmark sources (``tdabench.sources.gptdynamics``) are
registered through exactly the same group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from tdabench.run.context import Context
    from tdabench.simulator import MethodSpec
    from tdabench.simulator import BenchmarkRef

PROJECT = "tdabench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tdabench_methods() -> list[MethodSpec]:
    """Return the methods this plugin provides.

    Each :class:`~tdabench.simulator.MethodSpec` names the method (unique across all
    plugins: a duplicate is an error), gives a factory that builds a fresh simulator from a
    config instance, the config dataclass, and the method's capabilities as data.

    Called once per :class:`~tdabench.run.context.Context`; all results are collected.
    """
    raise NotImplementedError  # a specification: pluggy calls the plugins' implementations, never this


@hookspec
def tdabench_benchmarks(context: Context) -> list[BenchmarkRef]:
    """Return the benchmarks this plugin can provide in ``context``.

    A :class:`~tdabench.simulator.BenchmarkRef` holds the benchmark id, a one-line
    description and a zero-argument loader; listing must be cheap, so loading happens only
    when the loader is called. ``context.data_dir`` is where the user keeps local data
    (``--data-dir`` or ``TDABENCH_GPTDYNAMICS``).
    """
    raise NotImplementedError  # a specification: pluggy calls the plugins' implementations, never this
