"""The Simulator contract: what a method receives to fit, what it is asked to predict.

A simulator is any object with

* ``fit(data: FitData) -> self``: learn from recorded runs;
* ``simulate(query: Query) -> ndarray [n_runs, n_test, K]``: predict, for each query run
  and each query test example, the trajectory (loss, BLEU, ...) at every recorded step, starting from the
  observed initial value (column 0 must equal ``query.initial``).

Its constructor only stores its config. What it can serve is declared as data, in
:class:`Capabilities`, on its :class:`MethodSpec`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from tdabench.data import Benchmark, BenchmarkMeta, ExampleSet, ModelAccess


@dataclass(frozen=True)
class Capabilities:
    """What a method can serve, declared as data and checked by the runner.

    Attributes:
        unseen_test: predicts test examples absent from fitting.
        unseen_train: predicts runs whose batches hold training examples absent from fitting.
        text_trajectories: handles trajectories other than loss (BLEU, ROUGE-L of generated text).
        needs_checkpoints: needs the model and its checkpoints (``FitData.model``).
        needs_text: needs the example texts.
        any_length: predicts runs of another length than the fit runs (a batch-blind
            prediction exists only for runs as long as the fit runs).
        self_influence: ranks training examples by their effect on themselves: the fitted
            simulator has ``self_influence(ids)`` (:class:`SelfInfluence`; ``tdabench mislabel``).
        stochastic: its fit depends on the seed (random initialization, projections, clustering):
            ``tdabench run --seeds N`` runs it under N seeds, and the leaderboard shows their spread.
        reference: not a method but a reference point (``retrain``: the training it replaces),
            shown beside the methods and never ranked.
    """

    unseen_test: bool = False
    unseen_train: bool = False
    text_trajectories: bool = True
    needs_checkpoints: bool = False
    needs_text: bool = False
    any_length: bool = True
    self_influence: bool = False
    stochastic: bool = False
    reference: bool = False


@dataclass(frozen=True)
class Resources:
    """What one unit of a method needs from an executor (Ray schedules by it).

    Attributes:
        cpus: CPU cores.
        gpus: GPUs (fractions allowed).
        memory_mb: memory to reserve, or None for no reservation.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None


@dataclass(frozen=True, eq=False)
class RunBatches:
    """The inputs of a set of runs that share T and the recorded steps: no trajectory values.

    Attributes:
        names: run names.
        seeds: int64 [R].
        batches: int64 [R, T, B], training ids of steps 1..T, ``-1`` padded.
        lr: float64 [R, T], learning rate per step (NaN where unknown).
        steps: int64 [K], the recorded steps; column 0 is the initial point.
    """

    names: tuple[str, ...]
    seeds: np.ndarray
    batches: np.ndarray
    lr: np.ndarray
    steps: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def transitions(self) -> np.ndarray:
        """int64 [R, K-1, M]: training ids consumed by each transition, ``-1`` padded.

        Transition ``k`` (into column ``k + 1``) uses the batches of steps
        ``steps[k] + 1 .. steps[k + 1]``; with one value per step that is one batch.
        """
        cached = self.__dict__.get("_transitions")
        if cached is not None:
            return cached
        R, T, B = self.batches.shape
        steps = self.steps
        per = np.diff(steps)  # steps per transition
        width = int(per.max()) * B if len(per) else B
        out = np.full((R, max(len(steps) - 1, 0), width), -1, dtype=np.int64)
        for k in range(len(steps) - 1):  # K iterations only, vectorized over runs
            block = self.batches[:, steps[k] : steps[k + 1], :]  # steps are 1-based rows
            out[:, k, : block.shape[1] * B] = block.reshape(R, -1)
        out.setflags(write=False)
        object.__setattr__(self, "_transitions", out)
        return out

    def transition_lr(self) -> np.ndarray:
        """float64 [R, K-1]: summed learning rate over the steps of each transition."""
        csum = np.concatenate([np.zeros((len(self), 1)), np.nancumsum(self.lr, axis=1)], axis=1)
        return csum[:, self.steps[1:]] - csum[:, self.steps[:-1]]


@dataclass(frozen=True, eq=False)
class FitData:
    """Everything a simulator may learn from.

    Attributes:
        trajectory: what is simulated ("loss", "bleu", "rougeL", ...).
        runs: the fit runs' inputs.
        values: float64 [R, n_test, K], the fit runs' trajectories for ``test``.
        validation: the validation runs' inputs, for model selection and early stopping.
        validation_values: float64 [R_val, n_test, K].
        train: the training examples that occur in the fit and validation runs.
        test: the test examples being fitted (rows of ``values``).
        meta: the benchmark's metadata.
        seed: the seed a stochastic method must use.
        model: model and checkpoints, only for methods that declare ``needs_checkpoints``.
        cache_dir: where a method may cache derived data (embeddings, gradients).
        device: torch device string requested by the user.
    """

    trajectory: str
    runs: RunBatches
    values: np.ndarray
    validation: RunBatches
    validation_values: np.ndarray
    train: ExampleSet
    test: ExampleSet
    meta: BenchmarkMeta
    seed: int = 0
    model: ModelAccess | None = None
    cache_dir: str | None = None
    device: str = "cpu"


@dataclass(frozen=True, eq=False)
class Query:
    """What a simulator is asked to predict: only what a user knows before training.

    It never holds evaluation trajectories beyond their initial values.

    Attributes:
        trajectory: what to predict ("loss", "bleu", ...).
        runs: the runs' inputs (batches, learning rates, recorded steps); in a run they are named
            ``query-0``, ``query-1``, ... with seeds ``0, 1, ...``: nothing names an evaluation run's files.
        test: the test examples to predict (rows of the output).
        initial: float64 [R, n_test], the observed value at ``runs.steps[0]``.
        train: every training example the runs may use, with texts where known.
        seed: the seed a stochastic method must use.
    """

    trajectory: str
    runs: RunBatches
    test: ExampleSet
    initial: np.ndarray
    train: ExampleSet
    seed: int = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape ``simulate`` must return: (runs, test examples, recorded steps)."""
        return (len(self.runs), len(self.test), len(self.runs.steps))


@runtime_checkable
class Simulator(Protocol):
    """The contract every method implements."""

    def fit(self, data: FitData) -> Simulator:
        """Learn from the fit (and validation) runs; return ``self``."""
        ...

    def simulate(self, query: Query) -> np.ndarray:
        """Predict float [n_runs, n_test, K], column 0 equal to ``query.initial``."""
        ...


@runtime_checkable
class SelfInfluence(Protocol):
    """What a method with ``Capabilities.self_influence`` adds once fitted."""

    def self_influence(self, ids: np.ndarray) -> np.ndarray:
        """float64 [n]: the predicted change of each training example's own value (the trajectory) from one
        step on a batch holding it rather than a neutral example, in the method's own terms.

        ``ids`` are training ids whose example is also a test example of the fit (the same
        text on both sides); negative means training on the example lowers its own loss.
        A flipped label is learned against the grain, so it is expected to move its own loss
        the most: ``tdabench mislabel`` inspects the most negative first. NaN where the method
        knows nothing of an example.
        """
        ...


@dataclass(frozen=True)
class NoConfig:
    """The config of a method without options."""


#: A method's config type: what its factory takes and ``config_cls`` builds.
ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class MethodSpec(Generic[ConfigT]):
    """A registered method: how to build it, its config and what it can serve.

    Generic in its config: ``MethodSpec[MyConfig]`` builds simulators from ``MyConfig``
    instances, so a factory that takes another config is a type error.

    Attributes:
        name: unique name, as used on the command line.
        factory: called with a config instance, returns a fresh (unfitted) simulator.
        config_cls: a dataclass whose fields are the method's options.
        capabilities: what it can serve.
        summary: one line for ``tdabench list methods``.
        version: the method's own version. Bump it whenever the code changes the numbers it
            produces: results are keyed by it, so old results are then recomputed, never reused.
        origin: the plugin that registered it (filled in by the registry).
        distribution: ``name version`` of the installed package that registered it (registry).
        resources: what one unit of the method needs (cores, GPUs, memory).
        expected_failures: conformance check name -> why this method is known to fail it
            (``tdabench.testing`` marks those checks xfail, like scikit-learn's ``_xfail_checks``).
    """

    name: str
    factory: Callable[[ConfigT], Simulator]
    # NoConfig is the default only for a method without options (ConfigT = NoConfig); mypy
    # cannot tie a field default to one solution of the type variable.
    config_cls: type[ConfigT] = NoConfig  # type: ignore[assignment]
    capabilities: Capabilities = field(default_factory=Capabilities)
    summary: str = ""
    version: str = "0"
    origin: str = ""
    distribution: str = ""
    resources: Resources = field(default_factory=Resources)
    expected_failures: Mapping[str, str] = field(default_factory=dict)

    def make_config(self, overrides: Mapping[str, Any] | None = None) -> ConfigT:
        """A validated config instance from string or typed overrides."""
        from tdabench.config import build_config

        config: ConfigT = build_config(self.config_cls, overrides or {}, method=self.name)
        return config

    def create(self, config: ConfigT | None = None) -> Simulator:
        """A fresh simulator with this config (default config when None)."""
        return self.factory(config if config is not None else self.make_config())


def config_dict(config: Any) -> dict[str, Any]:
    """A config as a JSON-ready dict (for results and cache keys)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type) else {}


@dataclass(frozen=True)
class BenchmarkRef:
    """A benchmark that can be loaded: cheap to list, loaded on demand.

    Attributes:
        id: e.g. ``gptdynamics/ft/pythia-410m/rte``.
        description: one line for ``tdabench list benchmarks``.
        load: returns the :class:`Benchmark`.
        origin: the plugin that provided it (set by the registry).
        default: part of the default slice that ``tdabench run`` uses with no ``--benchmark``.
        properties: what its source measured of its runs, where known (the bank's: its targets,
            label accuracy and BLEU / ROUGE-L at both ends, headroom, the fit runs' mean test
            trajectory, the cost of recording one run; docs/benchmarks.md), for
            ``tdabench list benchmarks -v`` and the leaderboard.
    """

    id: str
    description: str
    load: Callable[[], Benchmark]
    origin: str = ""
    default: bool = False
    properties: Mapping[str, Any] = field(default_factory=dict)
