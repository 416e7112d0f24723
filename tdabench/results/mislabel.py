"""Mislabel identification: what a ranking of training examples finds, and its result files.

A label-noise benchmark (``builtin/mislabel/...``, or GPTDynamics' SST-2 debug runs) knows which
training labels were flipped (``Benchmark.design.flips``) and has each trained example as a
test example too, so a method can score every example on itself. A ranking is a
*suspicion* per candidate (higher: inspect first); :func:`detection` scores it as the field
does. The pipeline that fits the methods and retrains on the fixed data is
:mod:`tdabench.run.mislabel`; this module holds the definitions and the file format.

Definitions (docs/metrics.md, "Mislabel identification"):

* ``fraction_found[f]``: the share of the flipped examples among the first ``round(f N)``
  inspected, of N candidates.
* ``auc``: dattri's ``mislabel_detection_auc``: inspecting 1, 2, ..., N examples in order
  traces true-positive rate (flipped found / flipped) against false-positive rate (clean
  inspected / clean); the area under it by the trapezoid rule (0.5: chance, 1: every flip first).
  Tied suspicions are inspected as one group (average ranks: the Mann-Whitney statistic), so the
  AUC does not depend on the candidates' order; on distinct scores it is dattri's exactly
  (tests/test_field_crosscheck.py). dattri breaks ties by position, which moved a tied ranking's
  AUC by up to 0.037.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from tdabench.data import Benchmark
from tdabench.errors import DataError, TDABenchError
from tdabench.formats.jsonl import load_json_text
from tdabench.results.record import Record, benchmark_dir, escape, record_key, write_json
from tdabench.scores import MISLABEL_FRACTIONS, Score

#: Shares of the candidates inspected, as GPTfluence reports them.
FRACTIONS: tuple[float, ...] = MISLABEL_FRACTIONS
#: Random orders drawn for the ``random`` baseline: its scores are the mean over them (their
#: expectations are 0.5 for the AUC and ``f`` for the share found at ``f``), its interval their spread.
RANDOM_DRAWS = 1000
#: The share inspected and fixed before retraining.
FIX_FRACTION = 0.4
BASELINES: tuple[str, ...] = ("random", "training-loss")


@dataclass(frozen=True)
class Candidates:
    """The examples a ranking orders: trained in the fit runs and scored as test examples.

    Attributes:
        ids: sorted candidate ids.
        flipped: bool [n], whether each candidate's label was flipped.
        clean: flipped id -> the id of its correctly labelled copy (itself when there is none).
    """

    ids: np.ndarray
    flipped: np.ndarray
    clean: Mapping[int, int]


def candidates(bench: Benchmark) -> Candidates:
    """The candidates of ``bench``, or one line saying why it has none."""
    flips = dict(bench.design.flips) if bench.design is not None else {}
    if not flips:
        raise TDABenchError(f"{bench.id} records no flipped labels: mislabel identification needs a label-noise benchmark "
                            "(builtin/mislabel/..., `tdabench record --design label-noise`) or GPTDynamics' SST-2 debug runs")
    trained = np.concatenate([bench.run(n).batches.ravel() for n in bench.split.fit_runs])
    ids = np.intersect1d(np.unique(trained[trained >= 0]), bench.test.ids)
    flipped = np.isin(ids, np.fromiter(flips, dtype=np.int64))
    if not flipped.any() or flipped.all():
        raise TDABenchError(f"{bench.id}: of its {len(ids)} examples that are both trained and tested, {int(flipped.sum())} are flipped; "
                            "a ranking needs both flipped and clean ones")
    return Candidates(ids, flipped, {int(k): int(v) for k, v in flips.items()})


def inspection_order(suspicion: np.ndarray) -> np.ndarray:
    """Positions from most to least suspect; NaN last, ties by position (stable)."""
    s = np.where(np.isfinite(suspicion), suspicion, -np.inf)
    return np.argsort(-s, kind="stable")


def fraction_found(flipped_in_order: np.ndarray, fractions: Sequence[float] = FRACTIONS) -> dict[str, float]:
    """``{"0.1": ..., ...}``: the share of flips among the first round(f N) inspected."""
    n, total = len(flipped_in_order), int(flipped_in_order.sum())
    found = np.concatenate([[0], np.cumsum(flipped_in_order)])
    return {f"{f:g}": float(found[int(math.floor(f * n + 0.5))] / total) for f in fractions}


def detection_auc(flipped_in_order: np.ndarray) -> float:
    """dattri's ``mislabel_detection_auc`` of an inspection order (see the module docstring)."""
    hits = np.asarray(flipped_in_order, dtype=np.float64)
    tp = np.concatenate([[0.0], np.cumsum(hits)])
    fp = np.concatenate([[0.0], np.cumsum(1.0 - hits)])
    tpr, fpr = tp / hits.sum(), fp / (len(hits) - hits.sum())
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))  # the trapezoid rule


def ranked_auc(suspicion: np.ndarray, flipped: np.ndarray) -> float:
    """The detection AUC with tied suspicions at their average rank (NaN ranks last): the share of
    (flipped, clean) pairs whose flipped one is more suspect, ties counting one half."""
    from scipy.stats import rankdata

    s = np.where(np.isfinite(suspicion), suspicion, -np.inf)
    f = np.asarray(flipped, dtype=bool)
    n_f, n_c = int(f.sum()), int((~f).sum())
    ranks = rankdata(s, method="average")
    return float((ranks[f].sum() - n_f * (n_f + 1) / 2.0) / (n_f * n_c))


def detection(suspicion: np.ndarray, flipped: np.ndarray) -> tuple[np.ndarray, dict[str, float], float]:
    """(inspection order, fraction found, auc) of one ranking of the candidates (auc: :func:`ranked_auc`)."""
    suspicion = np.asarray(suspicion, dtype=np.float64)
    order = inspection_order(suspicion)
    hits = np.asarray(flipped, dtype=bool)[order]
    return order, fraction_found(hits), ranked_auc(suspicion, flipped)


def baseline_suspicion(name: str, bench: Benchmark, ids: np.ndarray, seed: int) -> np.ndarray:
    """``random``: a seeded permutation; ``training-loss``: each example's own loss at the end
    of training, averaged over the fit runs (a flipped label is learned last, if at all)."""
    if name == "random":
        return np.random.default_rng([seed, 20240607]).permutation(len(ids)).astype(np.float64)
    if name == "training-loss":
        rows = bench.test.positions(ids)
        finals = [bench.run(n).trajectories["loss"].values[rows, -1] for n in bench.split.fit_runs]
        return np.mean(finals, axis=0)
    raise TDABenchError(f"unknown baseline {name!r}; the baselines are {', '.join(BASELINES)}")


@dataclass(frozen=True)
class Outcome:
    """Test loss and accuracy of the model retrained on some data, over the retrained runs."""

    loss: float
    accuracy: float
    runs: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready."""
        return {"loss": self.loss, "accuracy": self.accuracy, "runs": self.runs}


def detection_scores(suspicion: np.ndarray, flipped: np.ndarray) -> tuple[np.ndarray, dict[str, Score]]:
    """(inspection order, scores) of one ranking: ``auc`` and ``found_at_<f>`` (one value each, n candidates)."""
    order, found, auc = detection(suspicion, flipped)
    n = len(order)
    nan = float("nan")
    scores = {"auc": Score(auc, nan, (nan, nan), n), **{f"found_at_{k}": Score(v, nan, (nan, nan), n) for k, v in found.items()}}
    return order, scores


def random_scores(flipped: np.ndarray, seed: int, draws: int = RANDOM_DRAWS) -> dict[str, Score]:
    """The ``random`` baseline as an expectation: each score's mean over ``draws`` seeded random
    orders, their standard deviation, and the 2.5-97.5 percentiles as the interval."""
    rng = np.random.default_rng([seed, 20240607])
    flipped = np.asarray(flipped, dtype=bool)
    per: dict[str, list[float]] = {}
    for _ in range(draws):
        hits = flipped[rng.permutation(len(flipped))]
        per.setdefault("auc", []).append(detection_auc(hits))
        for k, v in fraction_found(hits).items():
            per.setdefault(f"found_at_{k}", []).append(v)
    out = {}
    for name, vals in per.items():
        a = np.asarray(vals)
        lo, hi = np.percentile(a, [2.5, 97.5])
        out[name] = Score(float(a.mean()), float(a.std()), (float(lo), float(hi)), len(flipped))
    return out


@dataclass(frozen=True, kw_only=True)
class MislabelResult(Record):
    """One ranking's result on one benchmark: the envelope of :class:`~tdabench.results.record.Record`
    (``method`` is the ranking's label: a method's display name or a baseline's) and:

    Attributes:
        ranker: ``method`` or ``baseline``.
        n_candidates, n_flipped: the candidates ranked.
        ranking: candidate ids in inspection order.
        fixing: the top :data:`FIX_FRACTION` relabelled and retrained: ``inspected``, ``fixed``,
            ``retrained_runs`` (the evaluation runs retrained), ``before``, ``after``,
            ``all_fixed`` (:class:`Outcome` dicts), or ``reason`` when it could not be done.

    Its scores are ``auc`` and ``found_at_<f>`` (:data:`tdabench.scores.MISLABEL_SCORE_NAMES`).
    """

    KIND: ClassVar[str] = "mislabel"
    SCHEMA: ClassVar[str] = "tdabench.mislabel/2"

    ranker: Literal["method", "baseline"] = "method"
    n_candidates: int = 0
    n_flipped: int = 0
    ranking: tuple[int, ...] = ()
    fixing: Mapping[str, Any] = field(default_factory=dict)

    def _extra_to_dict(self, d: dict[str, Any]) -> dict[str, Any]:
        d["config"], d["fixing"], d["ranking"] = dict(self.config), dict(self.fixing), list(self.ranking)
        return d

    @classmethod
    def _extra_from_dict(cls, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("ranker") not in ("method", "baseline"):
            raise ValueError("'ranker' must be 'method' or 'baseline'")
        for name, s in body["scores"].items():
            if not (s.mean != s.mean or 0.0 <= s.mean <= 1.0):
                raise ValueError(f"score {name!r} must be a share in [0, 1], got {s.mean}")
        body["ranking"] = tuple(int(i) for i in body.get("ranking", ()))
        return body

    @property
    def auc(self) -> float | None:
        """The detection AUC (None unless ok)."""
        s = self.scores.get("auc")
        return None if s is None else s.mean

    @property
    def fraction_found(self) -> dict[str, float]:
        """``{"0.1": share found, ...}`` from the ``found_at_<f>`` scores."""
        return {k.removeprefix("found_at_"): s.mean for k, s in self.scores.items() if k.startswith("found_at_")}

    @property
    def accuracy_gain(self) -> float | None:
        """Accuracy after fixing minus before (None without retraining)."""
        before, after = self.fixing.get("before"), self.fixing.get("after")
        return None if not before or not after else float(after["accuracy"]) - float(before["accuracy"])


def result_key(bench: Benchmark, parts: Mapping[str, Any]) -> str:
    """The key a ranking is reused by (:func:`~tdabench.results.record.record_key` of the data and ``parts``)."""
    return record_key(MislabelResult.KIND, {"data": bench.content_hash, **parts})


def result_path(out: Path, benchmark: str, label: str, seed: int = 0) -> Path:
    """``out/<benchmark>/mislabel/<label>/seed-<seed>.json``, the benchmark named as in run results
    and every part escaped, so it stays inside ``out``."""
    return benchmark_dir(out, benchmark) / "mislabel" / escape(label) / f"seed-{int(seed)}.json"


def write(out: Path, result: MislabelResult) -> MislabelResult:
    """Write atomically; return the result as it reads back (JSON types: lists, not tuples)."""
    path = result_path(out, result.benchmark, result.method, result.seed)
    write_json(path, result)
    return read(path)


def read(path: Path) -> MislabelResult:
    """Read and validate one result file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    return MislabelResult.from_dict(load_json_text(raw, Path(path)), str(path))


def reusable(out: Path, benchmark: str, label: str, key: str, seed: int = 0) -> MislabelResult | None:
    """The finished result with this key, if one is on disk."""
    path = result_path(out, benchmark, label, seed)
    try:
        got = read(path)
    except (DataError, OSError):
        return None
    return got if got.key == key and got.status == "ok" else None
