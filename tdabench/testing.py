"""Conformance checks for simulators, in the spirit of scikit-learn's estimator checks.

Run them on any registered method, yours included::

    # tests/test_conformance.py of your package: one line
    from tdabench.testing import conformance_test
    test_my_method = conformance_test("my-method")

or call :func:`check_method` directly. Each check raises ``AssertionError`` with a message
that says what the contract requires.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tdabench.context import Context
from tdabench.data import Benchmark, Trajectory
from tdabench.simulator import FitData, MethodSpec, Query
from tdabench.synthetic import simfluence_benchmark
from tdabench.views import fit_data, not_applicable, split_view

Check = Callable[["Case"], None]


@dataclasses.dataclass
class Case:
    """One method under test on one benchmark."""

    spec: MethodSpec
    config: Any
    bench: Benchmark
    metric: str = "loss"
    seed: int = 0
    cache_dir: str | None = None

    def fit(self, bench: Benchmark | None = None, seed: int | None = None) -> Any:
        """A freshly built and fitted simulator."""
        sim = self.spec.create(self.config)
        return sim.fit(self.fit_data(bench, seed))

    def fit_data(self, bench: Benchmark | None = None, seed: int | None = None) -> FitData:
        """The fit data the runner would build."""
        caps = self.spec.capabilities
        return fit_data(
            bench or self.bench, self.metric, seed=self.seed if seed is None else seed,
            with_model=caps.needs_checkpoints, cache_dir=self.cache_dir, device="cpu",
        )

    def query(self, split: str = "seen", bench: Benchmark | None = None) -> Query:
        """The query of a split."""
        return split_view(bench or self.bench, split, self.metric, seed=self.seed).query


def small_benchmark() -> Benchmark:
    """The default benchmark of the checks: small, with texts, all four splits, loss and BLEU."""
    bench, _ = simfluence_benchmark(n_train=16, n_test=10, n_runs=8, n_unseen_runs=2, sample=8, batch=2, epochs=2, noise=0.002, metrics=("loss", "bleu"))
    return bench


def corrupt_evaluation(bench: Benchmark, seed: int = 1) -> Benchmark:
    """``bench`` with every evaluation run's values after the initial point replaced by noise.

    A method that only sees what it may (fit data, and queries' initial values) predicts
    exactly the same on both.
    """
    rng = np.random.default_rng(seed)
    eval_names = set(bench.split.eval_runs) | set(bench.split.unseen_train_runs)
    runs = []
    for r in bench.runs:
        if r.name in eval_names:
            traj = {}
            for m, tr in r.trajectories.items():
                v = tr.values.copy()
                v[:, 1:] = rng.normal(size=v[:, 1:].shape)
                traj[m] = Trajectory(tr.steps, v)
            r = dataclasses.replace(r, trajectories=traj)
        runs.append(r)
    return dataclasses.replace(bench, runs=tuple(runs))


# -- the checks -------------------------------------------------------------------------------
def check_fit_returns_self(case: Case) -> None:
    """``fit`` returns the simulator itself, so ``Method(cfg).fit(data).simulate(q)`` works."""
    sim = case.spec.create(case.config)
    assert sim.fit(case.fit_data()) is sim, "fit() must return self"


def check_output_shape_and_dtype(case: Case) -> None:
    """``simulate`` returns a float array of shape (runs, test examples, recorded steps)."""
    q = case.query()
    out = np.asarray(case.fit().simulate(q))
    assert out.shape == q.shape, f"simulate() returned shape {out.shape}, expected {q.shape}"
    assert np.issubdtype(out.dtype, np.floating), f"simulate() must return floats, got {out.dtype}"


def check_finite(case: Case) -> None:
    """No NaN or inf in the predictions."""
    out = np.asarray(case.fit().simulate(case.query()), dtype=np.float64)
    assert np.isfinite(out).all(), "simulate() returned NaN or inf"


def check_initial_value(case: Case) -> None:
    """Column 0 is the observed initial value: the rollout starts from it."""
    q = case.query()
    out = np.asarray(case.fit().simulate(q), dtype=np.float64)
    np.testing.assert_allclose(out[:, :, 0], q.initial, rtol=1e-5, atol=1e-6, err_msg="column 0 must equal query.initial")


def check_deterministic(case: Case) -> None:
    """Two fits with the same seed give the same predictions."""
    q = case.query()
    a = np.asarray(case.fit().simulate(q))
    b = np.asarray(case.fit().simulate(q))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg="same seed, different predictions")


def check_query_only(case: Case) -> None:
    """Predictions depend on the query alone: not on evaluation values a query must not carry,
    and not on earlier ``simulate`` calls."""
    other = corrupt_evaluation(case.bench)
    sim = case.fit()
    first = np.asarray(sim.simulate(case.query()))
    sim.simulate(case.query("unseen-test") if case.spec.capabilities.unseen_test else case.query())
    again = np.asarray(sim.simulate(case.query(bench=other)))
    np.testing.assert_allclose(first, again, rtol=1e-6, atol=1e-9, err_msg="simulate() depends on something outside the query")


def check_capabilities(case: Case) -> None:
    """Every declared capability is exercised: unseen test examples, unseen training
    examples, metric trajectories; undeclared splits are reported n/a by the runner."""
    caps = case.spec.capabilities
    sim = case.fit()
    for split in ("unseen-test", "unseen-train", "unseen-both"):
        if not_applicable(case.bench, split, case.metric, caps) is None:
            q = case.query(split)
            out = np.asarray(sim.simulate(q), dtype=np.float64)
            assert out.shape == q.shape and np.isfinite(out).all(), f"declared support for {split}, but its predictions are malformed"
    if caps.metric_trajectories and "bleu" in case.bench.metrics:
        other = dataclasses.replace(case, metric="bleu")
        q = other.query()
        out = np.asarray(other.fit().simulate(q), dtype=np.float64)
        assert out.shape == q.shape and np.isfinite(out).all(), "declared metric_trajectories, but BLEU predictions are malformed"


def check_pickle(case: Case) -> None:
    """Fitted and unfitted simulators pickle (parallel runs send them to other processes)."""
    pickle.dumps(case.spec.create(case.config))
    sim = case.fit()
    q = case.query()
    clone = pickle.loads(pickle.dumps(sim))
    np.testing.assert_allclose(np.asarray(clone.simulate(q)), np.asarray(sim.simulate(q)), rtol=1e-6, atol=1e-9)


CHECKS: tuple[Check, ...] = (
    check_fit_returns_self,
    check_output_shape_and_dtype,
    check_finite,
    check_initial_value,
    check_deterministic,
    check_query_only,
    check_capabilities,
    check_pickle,
)


def make_case(name: str, *, config: Mapping[str, Any] | None = None, benchmark: Benchmark | None = None, context: Context | None = None, cache_dir: str | None = None) -> Case:
    """A :class:`Case` for the registered method ``name``."""
    ctx = context or Context.create(progress=False)
    spec = ctx.registry.method(name)
    bench = benchmark or small_benchmark()
    if spec.capabilities.needs_checkpoints and bench.model is None:
        raise ValueError(f"method {name!r} needs checkpoints: pass a benchmark with a model (benchmark=...)")
    return Case(spec, spec.make_config(dict(config or {})), bench, cache_dir=cache_dir)


def check_method(name: str, **kwargs: Any) -> None:
    """Run every check on the registered method ``name``; the first failure raises."""
    case = make_case(name, **kwargs)
    for check in CHECKS:
        check(case)


def conformance_test(*names: str, config: Mapping[str, Any] | None = None, benchmark: Callable[[], Benchmark] | None = None) -> Callable[..., None]:
    """A pytest test function parametrized over ``names`` x every check.

    Assign it to a ``test_*`` name in a test module; ``benchmark`` is a factory called once
    per case (default :func:`small_benchmark`).
    """
    import pytest

    cases = [(n, c) for n in names for c in CHECKS]

    @pytest.mark.parametrize(("method", "check"), cases, ids=[f"{n}-{c.__name__[6:]}" for n, c in cases])
    def test_conformance(method: str, check: Check, tmp_path: Any) -> None:
        check(make_case(method, config=config, benchmark=benchmark() if benchmark else None, cache_dir=str(tmp_path)))

    return test_conformance
