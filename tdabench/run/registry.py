"""The one registry: a pluggy plugin manager filled from the ``tdabench`` entry-point group.

Built-in methods take the same path as third-party ones. A plugin that fails to import (an
exception or ``sys.exit()``), or whose hook raises, is reported with its distribution and
skipped; the session goes on.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

import tdabench.hookspecs as hookspecs
from tdabench.errors import PluginError, TDABenchError, UnknownNameError
from tdabench.simulator import MethodSpec

if TYPE_CHECKING:
    from tdabench.run.context import Context
    from tdabench.simulator import BenchmarkRef

ENTRY_POINT_GROUP = "tdabench"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used, and why (shown by ``tdabench list``)."""

    plugin: str
    distribution: str
    error: str


class Registry:
    """Methods and benchmark sources of one session, collected through pluggy hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.origins: dict[str, str] = {}  # plugin name -> "distribution version"
        self._methods: dict[str, MethodSpec] | None = None

    # -- loading -------------------------------------------------------------------------
    def load(self, plugin_args: list[str], *, autoload: bool = True) -> None:
        """Load entry-point plugins (if ``autoload``) and ``-p`` arguments, then validate."""
        for arg in plugin_args:
            if arg.startswith("no:"):
                self.pm.set_blocked(arg[3:])
        if autoload:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                    continue
                dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
                try:
                    module = ep.load()
                except (Exception, SystemExit) as exc:  # any import-time failure of a third party, sys.exit() included
                    self._fail(ep.name, dist, f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}")
                    continue
                self.register(module, ep.name, dist)
        for arg in plugin_args:
            if arg.startswith("no:"):
                continue
            if self.pm.is_blocked(arg) or self.pm.has_plugin(arg):
                continue
            try:
                module = importlib.import_module(arg)
            except (Exception, SystemExit) as exc:
                raise PluginError(f"-p {arg}: cannot import module {arg!r}: {type(exc).__name__}: {exc}") from None
            self.register(module, arg, "-p")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(f"plugin {name!r}: {exc} (a typo in a tdabench_* hook name?)") from None

    def register(self, plugin: object, name: str, origin: str = "") -> None:
        """Register one plugin object; a hook with a bad signature is reported and skipped."""
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            if self.pm.has_plugin(name):  # pluggy may have kept the hooks before the bad one
                self.pm.unregister(name=name)
            self._fail(name, origin, f"invalid hook implementation: {exc}")
            return
        except ValueError as exc:  # already registered or blocked
            raise PluginError(f"plugin {name!r}: {exc}") from None
        self.origins[name] = origin
        self._methods = None

    def _fail(self, name: str, dist: str, error: str) -> None:
        self.failures.append(PluginFailure(name, dist, error))
        print(f"tdabench: warning: plugin {name!r} ({dist}) skipped: {error}", file=sys.stderr)

    def _call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook`` separately, so a failing plugin is skipped."""
        out = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                result = impl.function(**{a: kwargs[a] for a in impl.argnames})
            except TDABenchError:
                raise  # the user's input is at fault (say, a missing data dir), not the plugin
            except (Exception, SystemExit) as exc:
                self._fail(impl.plugin_name, self.origins.get(impl.plugin_name, ""), f"{hook} raised {type(exc).__name__}: {exc}")
                continue
            out.append((impl.plugin_name, result or []))
        return out

    # -- methods -------------------------------------------------------------------------
    def methods(self) -> dict[str, MethodSpec]:
        """Every registered method by name; duplicate names are an error."""
        if self._methods is None:
            found: dict[str, MethodSpec] = {}
            for plugin, specs in reversed(self._call_each("tdabench_methods")):
                for spec in specs:
                    if not isinstance(spec, MethodSpec):
                        raise PluginError(f"plugin {plugin!r}: tdabench_methods must return MethodSpec objects, got {type(spec).__name__}")
                    if spec.name in found:
                        raise PluginError(f"method {spec.name!r} is registered twice: by {found[spec.name].origin!r} and by {plugin!r}")
                    dist = self.origins.get(plugin, "")
                    origin = plugin + (f" ({dist})" if dist else "")
                    found[spec.name] = dataclasses.replace(spec, origin=origin, distribution=dist)
            self._methods = found
        return self._methods

    def method(self, name: str) -> MethodSpec:
        """The method named ``name``, or an error with a "did you mean"."""
        methods = self.methods()
        if name not in methods:
            raise UnknownNameError("method", name, list(methods))
        return methods[name]

    # -- benchmarks ----------------------------------------------------------------------
    def benchmarks(self, context: Context) -> dict[str, BenchmarkRef]:
        """Every benchmark the sources can provide in ``context``, by id."""
        found: dict[str, BenchmarkRef] = {}
        for plugin, refs in self._call_each("tdabench_benchmarks", context=context):
            for ref in refs:
                if ref.id in found:
                    raise PluginError(f"benchmark {ref.id!r} is provided twice: by {found[ref.id].origin!r} and by {plugin!r}")
                found[ref.id] = dataclasses.replace(ref, origin=plugin)
        return found
