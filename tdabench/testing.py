"""Conformance checks for simulators, in the shape of scikit-learn's ``parametrize_with_checks``.

Run them on any registered method, yours included, each under its own config::

    # tests/test_conformance.py of your package
    from tdabench.testing import parametrize_with_checks

    @parametrize_with_checks(["my-method", ("my-method", {"order": 2})])
    def test_conformance(check, case):
        check(case)

or in one line, ``test_my_method = conformance_test("my-method")``; or call
:func:`check_method` directly. Only the checks a method's capabilities call for are yielded
(an unseen-test check only for a method that declares ``unseen_test``), each with its own
test id; a check named in ``MethodSpec.expected_failures`` is marked xfail (strict) with the
reason given. Each check raises ``AssertionError`` with a message that says what the
contract requires.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tdabench.run.context import Context
from tdabench.data import Benchmark, Trajectory
from tdabench.errors import TDABenchError
from tdabench.simulator import FitData, MethodSpec, Query
from tdabench.sources.synthetic import simfluence_benchmark
from tdabench.run.views import FIT_ALL, SPLIT_FIT, fit_data, not_applicable, split_view

Check = Callable[["Case"], None]
#: A method to check: a registered name, (name, options), or a spec (with options).
MethodArg = str | MethodSpec | tuple[str | MethodSpec, Mapping[str, Any]]


@dataclasses.dataclass
class Case:
    """One method under test on one benchmark (``source``: the benchmark, or a factory called
    the first time it is needed, so a test collection never builds benchmarks)."""

    spec: MethodSpec
    config: Any
    source: Benchmark | Callable[[], Benchmark]
    trajectory: str = "loss"
    seed: int = 0
    cache_dir: str | None = None
    label: str = ""

    @property
    def bench(self) -> Benchmark:
        """The benchmark (built now if ``source`` is a factory)."""
        if callable(self.source):
            self.source = self.source()
        return self.source

    def fit(self, bench: Benchmark | None = None, seed: int | None = None, split: str = "seen") -> Any:
        """A freshly built simulator, fitted by the fit that serves ``split``."""
        sim = self.spec.create(self.config)
        return sim.fit(self.fit_data(bench, seed, SPLIT_FIT[split]))

    def fit_data(self, bench: Benchmark | None = None, seed: int | None = None, fit: str = FIT_ALL) -> FitData:
        """The fit data the runner would build."""
        caps = self.spec.capabilities
        return fit_data(
            bench or self.bench, self.trajectory, fit=fit, seed=self.seed if seed is None else seed,
            with_model=caps.needs_checkpoints, cache_dir=self.cache_dir, device="cpu",
        )

    def query(self, split: str = "seen", bench: Benchmark | None = None) -> Query:
        """The query of a split."""
        return split_view(bench or self.bench, split, self.trajectory, seed=self.seed).query

    def truth(self, split: str = "seen", bench: Benchmark | None = None) -> np.ndarray:
        """The true trajectories [R, n, K] of a split's evaluation runs, which the runner alone
        holds: for a plugin's own tests to score what its method predicts for :meth:`query`."""
        return split_view(bench or self.bench, split, self.trajectory, seed=self.seed).truth


def small_benchmark() -> Benchmark:
    """The default benchmark of the checks: small, with texts, all four splits, loss and BLEU."""
    bench, _ = simfluence_benchmark(n_train=16, n_test=10, n_runs=8, n_unseen_runs=2, sample=8, batch=2, epochs=2, noise=0.002, trajectories=("loss", "bleu"))
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


def _simulate(case: Case, split: str = "seen") -> np.ndarray:
    return np.asarray(case.fit(split=split).simulate(case.query(split)), dtype=np.float64)


# -- the checks every method gets -----------------------------------------------------------
def check_constructor_stores_config(case: Case) -> None:
    """The constructor only stores the config: no learned state (``name_`` attributes) and no
    work before ``fit``."""
    sim = case.spec.create(case.config)
    state = vars(sim) if hasattr(sim, "__dict__") else {}
    learned = sorted(k for k in state if k.endswith("_") and not k.startswith("_"))
    assert not learned, f"the constructor set learned state {learned}: set it in fit()"
    assert any(v is case.config for v in state.values()) or not state, "the constructor must store the config it is given"


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
    assert np.isfinite(_simulate(case)).all(), "simulate() returned NaN or inf"


def check_initial_value(case: Case) -> None:
    """Column 0 is the observed initial value: the rollout starts from it."""
    q = case.query()
    np.testing.assert_allclose(_simulate(case)[:, :, 0], q.initial, rtol=1e-5, atol=1e-6, err_msg="column 0 must equal query.initial")


def check_deterministic(case: Case) -> None:
    """Two fits with the same seed give the same predictions."""
    np.testing.assert_allclose(_simulate(case), _simulate(case), rtol=1e-6, atol=1e-9, err_msg="same seed, different predictions")


def check_refit(case: Case) -> None:
    """Fitting the same instance again gives what a fresh fit gives: ``fit`` resets all state."""
    sim = case.spec.create(case.config)
    q = case.query()
    first = np.asarray(sim.fit(case.fit_data(seed=case.seed + 1)).fit(case.fit_data()).simulate(q))
    np.testing.assert_allclose(first, _simulate(case), rtol=1e-6, atol=1e-9, err_msg="a refit kept state from the earlier fit")


def check_query_only(case: Case) -> None:
    """Predictions depend on the query alone: not on evaluation values a query must not carry,
    and not on earlier ``simulate`` calls."""
    other = corrupt_evaluation(case.bench)
    sim = case.fit()
    first = np.asarray(sim.simulate(case.query()))
    sim.simulate(case.query("unseen-train") if case.spec.capabilities.unseen_train else case.query())
    again = np.asarray(sim.simulate(case.query(bench=other)))
    np.testing.assert_allclose(first, again, rtol=1e-6, atol=1e-9, err_msg="simulate() depends on something outside the query")


def check_fit_info_json(case: Case) -> None:
    """``fit_info()``, where a method has one, returns a JSON object as it is."""
    sim = case.fit()
    if not hasattr(sim, "fit_info"):
        return
    info = sim.fit_info()
    assert isinstance(info, dict), f"fit_info() must return a dict, got {type(info).__name__}"
    json.dumps(info, allow_nan=True)  # raises TypeError on numpy scalars, arrays, objects


def check_pickle(case: Case) -> None:
    """Fitted and unfitted simulators pickle (parallel runs send them to other processes)."""
    pickle.dumps(case.spec.create(case.config))
    sim = case.fit()
    q = case.query()
    clone = pickle.loads(pickle.dumps(sim))
    np.testing.assert_allclose(np.asarray(clone.simulate(q)), np.asarray(sim.simulate(q)), rtol=1e-6, atol=1e-9)


# -- the checks a capability calls for ------------------------------------------------------
def _check_split(case: Case, split: str) -> None:
    why = not_applicable(case.bench, split, case.trajectory, case.spec.capabilities)
    assert why is None, f"{split} cannot be checked on this benchmark ({why}): pass one that has it"
    q = case.query(split)
    out = _simulate(case, split)
    assert out.shape == q.shape and np.isfinite(out).all(), f"declared support for {split}, but its predictions are malformed"
    np.testing.assert_allclose(out[:, :, 0], q.initial, rtol=1e-5, atol=1e-6, err_msg=f"{split}: column 0 must equal query.initial")


def check_unseen_test(case: Case) -> None:
    """Declared ``unseen_test``: test examples withheld from the fit get well-formed predictions."""
    _check_split(case, "unseen-test")


def check_unseen_train(case: Case) -> None:
    """Declared ``unseen_train``: runs on training examples absent from the fit get well-formed predictions."""
    _check_split(case, "unseen-train")


def check_unseen_both(case: Case) -> None:
    """Declared both: unseen training and test examples at once."""
    _check_split(case, "unseen-both")


def check_text_trajectories(case: Case) -> None:
    """Declared ``text_trajectories``: BLEU trajectories (0-100 scale) get well-formed predictions."""
    assert "bleu" in case.bench.trajectories, "BLEU trajectories cannot be checked: the benchmark records none"
    other = dataclasses.replace(case, trajectory="bleu")
    q = other.query()
    out = np.asarray(other.fit().simulate(q), dtype=np.float64)
    assert out.shape == q.shape and np.isfinite(out).all(), "declared text_trajectories, but BLEU predictions are malformed"


def pool_benchmark(bench: Benchmark) -> Benchmark:
    """``bench`` whose test examples are its first training examples (their texts, the same
    recorded rows), as in mislabel search: every trained example is also scored on itself."""
    k = min(len(bench.test), len(bench.train))
    new_ids = bench.train.ids[:k]
    old_to_new = dict(zip(bench.test.ids[:k].tolist(), new_ids.tolist()))
    runs = []
    for r in bench.runs:
        own = r.test_ids if r.test_ids is not None else bench.test.ids
        keep = np.isin(own, list(old_to_new))
        traj = {m: Trajectory(t.steps, t.values[keep]) for m, t in r.trajectories.items()}
        sub = None if r.test_ids is None else np.array(sorted(old_to_new[int(i)] for i in own[keep]), dtype=np.int64)
        runs.append(dataclasses.replace(r, trajectories=traj, test_ids=sub))
    held = tuple(old_to_new[i] for i in bench.split.heldout_test_ids if i in old_to_new)
    split = dataclasses.replace(bench.split, heldout_test_ids=held)
    return dataclasses.replace(bench, test=bench.train.subset(new_ids), runs=tuple(runs), split=split, test_groups={})


def check_self_influence(case: Case) -> None:
    """Declared ``self_influence``: once fitted on runs whose training examples are also test
    examples, ``self_influence(ids)`` returns one finite float per id, in the order asked."""
    bench = pool_benchmark(case.bench)
    sim = case.spec.create(case.config).fit(case.fit_data(bench))
    assert hasattr(sim, "self_influence"), "declared self_influence, but the fitted simulator has no self_influence(ids) method"
    trained = np.concatenate([bench.run(n).batches.ravel() for n in bench.split.fit_runs])
    ids = np.intersect1d(trained[trained >= 0], bench.test.ids)
    out = np.asarray(sim.self_influence(ids))
    assert out.shape == ids.shape and np.issubdtype(out.dtype, np.floating), f"self_influence returned {out.shape} {out.dtype} for {len(ids)} ids"
    assert np.isfinite(out).all(), "self_influence of examples both trained and tested must be finite"
    back = np.asarray(sim.self_influence(ids[::-1]))
    np.testing.assert_allclose(back, out[::-1], rtol=1e-6, atol=1e-12, err_msg="self_influence must follow the order of the ids asked for")


CHECKS: tuple[Check, ...] = (
    check_constructor_stores_config,
    check_fit_returns_self,
    check_output_shape_and_dtype,
    check_finite,
    check_initial_value,
    check_deterministic,
    check_refit,
    check_query_only,
    check_fit_info_json,
    check_pickle,
)
CAPABILITY_CHECKS: tuple[Check, ...] = (check_unseen_test, check_unseen_train, check_unseen_both, check_text_trajectories, check_self_influence)


def checks_for(case: Case) -> Iterator[Check]:
    """The checks the method's capabilities call for (on a built benchmark: those it can serve)."""
    yield from CHECKS
    caps = case.spec.capabilities
    built = not callable(case.source)
    wants = {"unseen-test": caps.unseen_test, "unseen-train": caps.unseen_train, "unseen-both": caps.unseen_test and caps.unseen_train}
    for check, split in ((check_unseen_test, "unseen-test"), (check_unseen_train, "unseen-train"), (check_unseen_both, "unseen-both")):
        if wants[split] and (not built or not_applicable(case.bench, split, case.trajectory, caps) is None):
            yield check
    if caps.text_trajectories and (not built or "bleu" in case.bench.trajectories):
        yield check_text_trajectories
    if caps.self_influence:
        yield check_self_influence


def _resolve(method: MethodArg, ctx: Context) -> tuple[MethodSpec, dict[str, Any]]:
    name, config = (method if isinstance(method, tuple) else (method, {}))
    spec = ctx.registry.method(name) if isinstance(name, str) else name
    return spec, dict(config)


def make_case(name: str | MethodSpec, *, config: Mapping[str, Any] | None = None,
              benchmark: Benchmark | Callable[[], Benchmark] | None = None,
              context: Context | None = None, cache_dir: str | None = None) -> Case:
    """A :class:`Case` for the registered method ``name`` (or a spec) under ``config``."""
    ctx = context or Context.create(progress=False)
    spec, _ = _resolve(name, ctx)
    if spec.capabilities.needs_checkpoints and benchmark is None:
        raise ValueError(f"method {spec.name!r} needs checkpoints: pass a benchmark with a model (benchmark=...)")
    label = spec.name + (":" + ",".join(f"{k}={v}" for k, v in sorted((config or {}).items())) if config else "")
    return Case(spec, spec.make_config(dict(config or {})), benchmark if benchmark is not None else small_benchmark(),
                cache_dir=cache_dir, label=label)


def check_method(name: str | MethodSpec, **kwargs: Any) -> None:
    """Run every applicable check on the method ``name``; the first failure raises."""
    case = make_case(name, **kwargs)
    for check in checks_for(case):
        check(case)


def parametrize_with_checks(methods: Sequence[MethodArg], *, benchmark: Callable[[], Benchmark] | None = None,
                            context: Context | None = None) -> Callable[[Callable[..., Any]], Any]:
    """A pytest decorator: one test per (configured method, applicable check), each with its id.

    The decorated test takes ``check`` and ``case`` and calls ``check(case)``. ``benchmark``
    is a factory called once per method (default :func:`small_benchmark`); checks a
    ``MethodSpec`` lists in ``expected_failures`` are xfail (strict) with its reason.
    """
    try:
        import pytest  # tdabench.testing needs pytest only here
    except ImportError:
        raise TDABenchError("parametrize_with_checks needs pytest: pip install 'tdabench[testing]'") from None

    ctx = context or Context.create(progress=False)
    params = []
    for method in methods:
        spec, config = _resolve(method, ctx)
        case = make_case(spec, config=config, benchmark=benchmark or small_benchmark, context=ctx)
        for check in checks_for(case):
            short = check.__name__.removeprefix("check_")
            why = spec.expected_failures.get(short) or spec.expected_failures.get(check.__name__)
            marks = [pytest.mark.xfail(reason=why, strict=True)] if why else []
            params.append(pytest.param(check, case, id=f"{case.label}-{short}", marks=marks))
    return pytest.mark.parametrize(("check", "case"), params)


def conformance_test(*names: MethodArg, config: Mapping[str, Any] | None = None,
                     benchmark: Callable[[], Benchmark] | None = None) -> Callable[..., None]:
    """A ready pytest test over ``names`` x their applicable checks; assign it to a ``test_*``
    name (``config`` applies to plain names)."""
    methods: list[MethodArg] = [(n, config) if isinstance(n, (str, MethodSpec)) and config else n for n in names]

    @parametrize_with_checks(methods, benchmark=benchmark)
    def test_conformance(check: Check, case: Case, tmp_path: Any) -> None:
        check(dataclasses.replace(case, cache_dir=str(tmp_path)))

    return test_conformance
