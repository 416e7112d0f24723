"""Plugins: entry points, -p, blocking, failures, duplicates and typos."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace

import pytest

from tdabench.run.context import Context
from tdabench.errors import PluginError, UnknownNameError
from tdabench.hookspecs import hookimpl
from tdabench.simulator import MethodSpec
from tdabench_plugins.baselines import Constant


def test_builtins_come_through_entry_points() -> None:
    ctx = Context.create()
    methods = ctx.registry.methods()
    assert {"constant", "mean-trajectory"} <= set(methods)
    assert methods["constant"].origin.startswith("baselines (tdabench ")


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDABENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert Context.create().registry.methods() == {}
    ctx = Context.create(plugins=["tdabench_plugins.baselines"])
    assert set(ctx.registry.methods()) == {"constant", "mean-trajectory", "zero-line"}


def test_block_a_plugin() -> None:
    ctx = Context.create(plugins=["no:baselines"])
    assert "constant" not in ctx.registry.methods()


def test_duplicate_method_name_is_an_error() -> None:
    ctx = Context.create()
    ns = SimpleNamespace(tdabench_methods=hookimpl(lambda: [MethodSpec("constant", Constant)]))
    ctx.registry.register(ns, "copycat")
    with pytest.raises(PluginError, match="'constant' is registered twice"):
        ctx.registry.methods()


def test_unknown_method_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'constant'"):
        Context.create().registry.method("constnat")


def test_plugin_import_failure_is_reported_and_skipped(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tdabench.run.registry as reg

    real = reg.entry_points

    def fake(group: str) -> list[EntryPoint]:
        return [*real(group=group), EntryPoint("broken", "no_such_module_xyz", "tdabench")]

    monkeypatch.setattr(reg, "entry_points", fake)
    ctx = Context.create()
    assert "constant" in ctx.registry.methods()
    (failure,) = ctx.registry.failures
    assert failure.plugin == "broken" and "ModuleNotFoundError" in failure.error
    assert "plugin 'broken'" in capsys.readouterr().err


def test_hook_with_wrong_signature_is_named_and_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = Context.create()
    ns = SimpleNamespace(tdabench_benchmarks=hookimpl(lambda context, colour: []))
    ctx.registry.register(ns, "wrong-args")
    assert ctx.registry.failures[-1].plugin == "wrong-args"
    assert "invalid hook implementation" in ctx.registry.failures[-1].error
    assert not ctx.registry.pm.has_plugin("wrong-args")


def test_hook_typo_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "typo_plugin.py").write_text(
        "from tdabench.hookspecs import hookimpl\n@hookimpl\ndef tdabench_method():\n    return []\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(PluginError, match="typo_plugin"):
            Context.create(plugins=["typo_plugin"])
    finally:
        sys.modules.pop("typo_plugin", None)


def test_raising_hook_is_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = Context.create()

    def bad() -> list[MethodSpec]:
        raise RuntimeError("kaput")

    ctx.registry.register(SimpleNamespace(tdabench_methods=hookimpl(bad)), "kaput-plugin")
    assert "constant" in ctx.registry.methods()
    assert "kaput" in ctx.registry.failures[-1].error
