"""``tdabench mislabel``: rank a label-noise benchmark's training examples, fix the top, retrain.

Each method with ``Capabilities.self_influence`` is fitted on the benchmark's fit runs in a
worker process (a crash or a timeout spoils only its own ranking) and scores every candidate
on itself; the baselines are a random order and the examples' own final training loss. The
top :data:`~tdabench.results.mislabel.FIX_FRACTION` of each ranking is inspected: its flipped examples
are replaced by their correctly labelled copies in the benchmark's evaluation runs, and the
model is retrained on them through the recorder's loop (:mod:`tdabench.recorder.retrain`); test loss
and accuracy on the task's clean test set are reported before and after, and with every flip
fixed. Every ranking and every retrained outcome is written as soon as it exists, so a rerun
resumes where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tdabench.run.cells import MethodChoice
from tdabench.data import Benchmark, ExampleSet
from tdabench.errors import TDABenchError
from tdabench.run.executors import Job, make_executor
from tdabench.formats.jsonl import atomic_write_text
from tdabench.results.mislabel import (
    BASELINES,
    FIX_FRACTION,
    FRACTIONS,
    Candidates,
    MislabelResult,
    Outcome,
    baseline_suspicion,
    candidates,
    detection_scores,
    random_scores,
    result_key,
    result_path,
    reusable,
    write,
)
from tdabench.results.provenance import provenance
from tdabench.recorder.retrain import Trainer, label_accuracy, trainer_for
from tdabench.simulator import FitData, MethodSpec, SelfInfluence, config_dict
from tdabench.run.views import fit_data


@dataclass(frozen=True, eq=False)
class RankJob:
    """One method to fit and ask for the candidates' self-influence."""

    spec: MethodSpec
    config: Any
    data: FitData
    ids: np.ndarray


def rank_in_worker(job: RankJob, _shared: object = None) -> np.ndarray:
    """The method's self-influence of every candidate (runs in a worker process)."""
    sim = job.spec.create(job.config).fit(job.data)
    if not isinstance(sim, SelfInfluence):
        raise TypeError(f"method {job.spec.name!r} declares Capabilities(self_influence=True), but its fitted "
                        f"{type(sim).__name__} has no self_influence(ids) method: add one or drop the capability")
    got = np.asarray(sim.self_influence(job.ids), dtype=np.float64)
    if got.shape != job.ids.shape:
        raise ValueError(f"self_influence returned shape {got.shape} for {len(job.ids)} ids")
    return got


@dataclass(frozen=True, eq=False)
class RetrainJob:
    """One run's batches to train on, and the clean test set to measure."""

    trainer: Trainer
    batches: np.ndarray
    test: ExampleSet
    device: str


def retrain_in_worker(job: RetrainJob, _shared: object = None) -> tuple[float, float]:
    """(test loss, accuracy) after training on the batches (runs in a worker process)."""
    return label_accuracy(job.trainer, job.batches, job.test, device=job.device)


@dataclass(frozen=True)
class Ranker:
    """A ranking to compute: a method (``choice``) or a baseline (``choice`` None)."""

    label: str
    choice: MethodChoice | None

    def parts(self, seed: int, retrain: bool) -> dict[str, Any]:
        """What its result depends on besides the data."""
        c = self.choice
        method = {} if c is None else {"name": c.spec.name, "version": c.spec.version, "distribution": c.spec.distribution,
                                       "config": config_dict(c.config)}
        return {"label": self.label, "method": method, "seed": seed, "fractions": FRACTIONS, "fix": FIX_FRACTION, "retrain": retrain}

    def key_parts(self, s: Settings) -> dict[str, Any]:
        """:meth:`parts` under ``s``, with the retraining runs."""
        return {**self.parts(s.seed, s.retrain), "retrain_runs": s.retrain_runs}


def rankers(choices: Sequence[MethodChoice]) -> list[Ranker]:
    """The baselines, then every chosen method; a method that cannot rank is an error naming the ones that can."""
    cannot = [c.display for c in choices if not c.spec.capabilities.self_influence]
    if cannot:
        raise TDABenchError(f"{cannot[0]} declares no self-influence, so it cannot rank training examples; "
                            "methods that can say so with Capabilities(self_influence=True) (`tdabench list methods`)")
    return [Ranker(b, None) for b in BASELINES] + [Ranker(c.display, c) for c in choices]


@dataclass(frozen=True)
class Settings:
    """How one ``tdabench mislabel`` runs."""

    out: Path
    seed: int = 0
    jobs: int = 1
    timeout: float | None = None
    executor: str = "local"
    ray_address: str | None = None
    retrain: bool = True
    retrain_runs: int | None = None
    cache_dir: str | None = None
    device: str = "cpu"
    progress: bool = False
    command: str = ""


def identify(bench: Benchmark, choices: Sequence[MethodChoice], s: Settings) -> list[MislabelResult]:
    """Every ranking of ``bench`` (baselines first), computed or reused, fixed and retrained."""
    cands = candidates(bench)
    todo = rankers(choices)
    keys = {r.label: result_key(bench, r.key_parts(s)) for r in todo}
    done = {r.label: got for r in todo if (got := reusable(s.out, bench.id, r.label, keys[r.label], s.seed)) is not None}
    for r in todo:
        if r.label not in done and r.choice is None:
            done[r.label] = _write_ranking(bench, cands, r, keys[r.label], baseline_suspicion(r.label, bench, cands.ids, s.seed), None, s)
    pending = [r for r in todo if r.label not in done]

    def finished(r: Ranker, suspicion: np.ndarray | None, error: str | None) -> None:
        done[r.label] = _write_ranking(bench, cands, r, keys[r.label], suspicion, error, s)  # written as each one ends

    _rank_methods(bench, cands, pending, s, finished)
    results = [done[r.label] for r in todo]
    if s.retrain:
        results = _fix_all(bench, cands, results, s)
    return results


def _rank_methods(bench: Benchmark, cands: Candidates, pending: list[Ranker], s: Settings,
                  finished: Callable[[Ranker, np.ndarray | None, str | None], None]) -> None:
    """Fit each pending method in a worker; hand over its suspicion (minus self-influence) or its error as it ends."""
    if not pending:
        return
    datas: dict[bool, FitData] = {}
    for r in pending:
        need = r.choice.spec.capabilities.needs_checkpoints  # type: ignore[union-attr]
        if need not in datas:
            datas[need] = fit_data(bench, "loss", seed=s.seed, with_model=need, cache_dir=s.cache_dir, device=s.device)
    jobs = [Job(RankJob(r.choice.spec, r.choice.config, datas[r.choice.spec.capabilities.needs_checkpoints], cands.ids))  # type: ignore[union-attr]
            for r in pending]
    with tqdm(total=len(jobs), desc=f"ranking {bench.id}", unit="method", disable=not s.progress) as bar:
        def report(i: int, value: Any, error: str | None, _running: int) -> None:
            finished(pending[i], None if error else -np.asarray(value, dtype=np.float64), error)
            bar.update(1)

        make_executor(s.executor, s.jobs, s.ray_address, timeout=s.timeout).map(rank_in_worker, jobs, [], report)


def _write_ranking(bench: Benchmark, cands: Candidates, r: Ranker, key: str, suspicion: np.ndarray | None, error: str | None,
                   s: Settings) -> MislabelResult:
    c = r.choice
    base = MislabelResult(
        key=key, status="failed", benchmark=bench.id, data_hash=bench.content_hash, method=r.label, error=error,
        method_name="" if c is None else c.spec.name, method_version="" if c is None else c.spec.version,
        distribution="" if c is None else c.spec.distribution, origin="" if c is None else c.spec.origin,
        config={} if c is None else config_dict(c.config), seed=s.seed, provenance=provenance(s.seed, s.command),
        ranker="baseline" if c is None else "method", n_candidates=len(cands.ids), n_flipped=int(cands.flipped.sum()),
    )
    if suspicion is not None and not np.isfinite(suspicion).any():
        base = replace(base, error="self_influence returned no finite value")
    elif suspicion is not None:
        order, scores = detection_scores(suspicion, cands.flipped)
        if c is None and r.label == "random":  # an expectation over many orders, not one draw
            scores = random_scores(cands.flipped, s.seed)
        base = replace(base, status="ok", error=None, scores=scores, ranking=tuple(int(i) for i in cands.ids[order]))
    return write(s.out, base)


# -- fixing and retraining -------------------------------------------------------------
def fixed_batches(batches: np.ndarray, fixes: dict[int, int]) -> np.ndarray:
    """``batches`` with every flipped id in ``fixes`` replaced by its clean copy."""
    out = batches.copy()
    for bad, good in fixes.items():
        out[out == bad] = good
    return out


def fixes_of(result: MislabelResult, cands: Candidates) -> dict[int, int]:
    """The flips among the top :data:`FIX_FRACTION` of a ranking, mapped to their clean copies."""
    n = int(np.floor(FIX_FRACTION * result.n_candidates + 0.5))
    return {i: cands.clean[i] for i in result.ranking[:n] if i in cands.clean}


def clean_test_set(bench: Benchmark) -> ExampleSet:
    """The recorded task's own test set (true labels), for accuracy after fixing."""
    from tdabench.recorder.tasks import load_task

    record = json.loads((bench.root / "record.json").read_text(encoding="utf-8"))  # type: ignore[operator]
    return load_task(str(record["task"]), loss_type=bench.meta.loss_type, n_test=int(record.get("n_test", 128))).test


def why_not_retrain(bench: Benchmark, cands: Candidates) -> str | None:
    """Why ``bench`` cannot be fixed and retrained, or None."""
    try:
        trainer_for(bench)
    except TDABenchError as exc:
        return str(exc)
    if all(good == bad for bad, good in cands.clean.items()):
        return f"{bench.id} holds no correctly labelled copy of its flipped examples to train on instead"
    return None


def _fix_all(bench: Benchmark, cands: Candidates, results: list[MislabelResult], s: Settings) -> list[MislabelResult]:
    """Fill in ``fixing`` for every ok ranking: reuse outcomes on disk, retrain the rest."""
    todo = [r for r in results if r.status == "ok" and "after" not in r.fixing and "reason" not in r.fixing]
    if not todo:
        return results
    reason = why_not_retrain(bench, cands)
    if reason is not None:
        fixed = {r.method: write(s.out, replace(r, fixing={"reason": reason})) for r in todo}
        return [fixed.get(r.method, r) for r in results]
    names = bench.split.eval_runs[: s.retrain_runs] if s.retrain_runs else bench.split.eval_runs
    runs = [bench.run(n).batches for n in names]
    plans = {"before": {}, "all_fixed": dict(cands.clean), **{r.method: fixes_of(r, cands) for r in todo}}
    outcomes = _retrain(bench, runs, plans, s)
    out = []
    labels = {r.method for r in todo}
    for r in results:
        if r.method in labels:
            fixes = plans[r.method]
            r = replace(r, fixing={"inspected": int(np.floor(FIX_FRACTION * r.n_candidates + 0.5)), "fixed": len(fixes),
                                   "retrained_runs": list(names), "before": outcomes["before"].to_dict(),
                                   "after": outcomes[r.method].to_dict(), "all_fixed": outcomes["all_fixed"].to_dict()})
            r = write(s.out, r)
        out.append(r)
    return out


def _plan_hash(batches: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for b in batches:
        h.update(np.ascontiguousarray(b, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()[:16]


def _retrain(bench: Benchmark, runs: list[np.ndarray], plans: dict[str, dict[int, int]], s: Settings) -> dict[str, Outcome]:
    """Each plan's outcome over the evaluation runs; per-run outcomes are kept on disk by content
    (``out/<benchmark>/mislabel/_retrained.json``), so equal plans train once and a rerun resumes."""
    store_path = result_path(s.out, bench.id, "x").parent.with_name("_retrained.json")  # beside the rankings; escape() never writes a bare "_"
    store: dict[str, list[float]] = _read_store(store_path, bench)
    trainer, test = trainer_for(bench), clean_test_set(bench)
    wanted: dict[str, np.ndarray] = {}
    per_plan: dict[str, list[str]] = {}
    for label, fixes in plans.items():
        hashes = []
        for b in runs:
            fb = fixed_batches(b, fixes)
            h = _plan_hash([fb])
            hashes.append(h)
            if h not in store:
                wanted[h] = fb
        per_plan[label] = hashes
    order = list(wanted)
    jobs = [Job(RetrainJob(trainer, wanted[h], test, s.device)) for h in order]
    errors: list[str] = []
    with tqdm(total=len(jobs), desc=f"retraining {bench.id}", unit="run", disable=not s.progress or not jobs) as bar:
        def report(i: int, value: Any, error: str | None, _running: int) -> None:
            if error:
                errors.append(error)
            else:
                store[order[i]] = [float(value[0]), float(value[1])]
                _write_store(store_path, bench, store)
            bar.update(1)

        make_executor(s.executor, s.jobs, s.ray_address, timeout=s.timeout).map(retrain_in_worker, jobs, [], report)
    if errors:
        raise TDABenchError(f"retraining {bench.id} failed: {errors[0]} (the rankings are written; rerun to retry)")
    return {label: Outcome(float(np.mean([store[h][0] for h in hs])), float(np.mean([store[h][1] for h in hs])), len(hs))
            for label, hs in per_plan.items()}


STORE_SCHEMA = "tdabench.mislabel-retrained/1"


def _read_store(path: Path, bench: Benchmark) -> dict[str, list[float]]:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(d, dict) and d.get("schema") == STORE_SCHEMA and d.get("data_hash") == bench.content_hash
    return {k: v for k, v in d.get("outcomes", {}).items() if isinstance(v, list) and len(v) == 2} if ok else {}


def _write_store(path: Path, bench: Benchmark, store: dict[str, list[float]]) -> None:
    atomic_write_text(path, json.dumps({"schema": STORE_SCHEMA, "benchmark": bench.id, "data_hash": bench.content_hash,
                                        "outcomes": store}, indent=1, sort_keys=True) + "\n")


def table(results: Sequence[MislabelResult], fmt: Callable[[float | None], str] = lambda x: "-" if x is None else f"{x:.3f}") -> str:
    """A plain-text table: found at each fraction, AUC, accuracy before and after fixing."""
    head = ["ranking", *(f"found@{f:g}" for f in FRACTIONS), "auc", "acc before", "acc after", "gain", "loss after"]
    rows = []
    for r in results:
        if r.status != "ok":
            rows.append([r.method, f"failed: {r.error}"])
            continue
        fx = r.fixing
        after = fx.get("after") or {}
        rows.append([r.method, *(fmt(r.fraction_found.get(f"{f:g}")) for f in FRACTIONS), fmt(r.auc),
                     fmt((fx.get("before") or {}).get("accuracy")), fmt(after.get("accuracy")), fmt(r.accuracy_gain), fmt(after.get("loss"))])
    widths = [max(len(str(row[k])) for row in [head, *rows] if k < len(row)) for k in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    ref = next((r.fixing for r in results if r.fixing.get("before")), None)
    if ref is not None:
        b, a = ref["before"], ref["all_fixed"]
        lines.append(f"\nretrained on {len(ref['retrained_runs'])} evaluation run(s), top {FIX_FRACTION:.0%} inspected: "
                     f"before fixing accuracy {b['accuracy']:.3f} (loss {b['loss']:.3f}); every flip fixed {a['accuracy']:.3f} (loss {a['loss']:.3f})")
    reason = next((r.fixing["reason"] for r in results if "reason" in r.fixing), None)
    if reason:
        lines.append(f"\nnot retrained: {reason}")
    return "\n".join(lines)
