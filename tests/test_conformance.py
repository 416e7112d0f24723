"""The conformance suite runs over every registered method, and catches broken ones."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tdabench.run.context import Context
from tdabench.hookspecs import hookimpl
from tdabench.simulator import Capabilities, MethodSpec
from tdabench.testing import CAPABILITY_CHECKS, CHECKS, Case, check_initial_value, check_query_only, parametrize_with_checks, small_benchmark

_REGISTERED = Context.create(progress=False).registry.methods()
# Slow-to-train methods run the suite with a short training budget (each method its own config).
_FAST = {"gptfluence": {"epochs": 3}}
_METHODS = sorted(n for n, s in _REGISTERED.items() if not s.capabilities.needs_checkpoints)


@parametrize_with_checks([(n, _FAST.get(n, {})) for n in _METHODS])
def test_registered_methods(check, case: Case, tmp_path) -> None:  # noqa: ANN001
    import dataclasses

    check(dataclasses.replace(case, cache_dir=str(tmp_path)))


class _Stateful:
    """Broken on purpose: each simulate call drifts (depends on call history)."""

    def __init__(self, config: object) -> None:
        self.config = config

    def fit(self, data: object) -> _Stateful:
        self.calls_ = 0
        return self

    def simulate(self, query) -> np.ndarray:  # noqa: ANN001
        self.calls_ += 1
        out = np.repeat(query.initial[:, :, None], query.shape[2], axis=2)
        out[:, :, 1:] += self.calls_
        return out


class _Offset(_Stateful):
    """Broken on purpose: ignores the initial value."""

    def simulate(self, query) -> np.ndarray:  # noqa: ANN001
        return np.zeros(query.shape)


@pytest.mark.parametrize(("cls", "check", "message"), [(_Stateful, check_query_only, "outside the query"), (_Offset, check_initial_value, "query.initial")])
def test_checks_catch_broken_methods(cls: type, check: object, message: str) -> None:
    spec = MethodSpec("broken", cls, capabilities=Capabilities(unseen_test=True, unseen_train=True))
    case = Case(spec, spec.make_config(), small_benchmark())
    with pytest.raises(AssertionError, match=message):
        check(case)  # type: ignore[operator]


def test_every_check_is_documented() -> None:
    assert all(c.__doc__ for c in (*CHECKS, *CAPABILITY_CHECKS))
    assert len({c.__name__ for c in (*CHECKS, *CAPABILITY_CHECKS)}) == 15


def test_needs_checkpoints_without_model_is_explained() -> None:
    ctx = Context.create(progress=False)
    ctx.registry.register(SimpleNamespace(tdabench_methods=hookimpl(lambda: [MethodSpec("ckpt", _Stateful, capabilities=Capabilities(needs_checkpoints=True))])), "ckpt-plugin")
    from tdabench.testing import make_case

    with pytest.raises(ValueError, match="needs checkpoints"):
        make_case("ckpt", context=ctx)
