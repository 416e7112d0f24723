"""``tdabench simulate``: a what-if on a user's own plan, checked by really training on it.

The method is fitted on the benchmark's fit runs (in a worker process, as in ``tdabench run``)
and predicts every test example's trajectory for the plan, from the benchmark's initial
values. With ``verify``, the benchmark's own model is trained on the plan with the recorder's
loop (:mod:`tdabench.recorder.retrain`) and the prediction is scored against what really happened,
beside the batch-blind zero line. Results are written atomically; a rerun with the same
inputs reuses them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.run.cells import MethodChoice, validated
from tdabench.data import Benchmark
from tdabench.errors import DataError, TDABenchError
from tdabench.formats.gptdynamics_read import read_batches
from tdabench.formats.jsonl import atomic_write_bytes, atomic_write_text
from tdabench.methods.zero_line import ZeroLine
from tdabench.run.executors import Executor, Job, make_executor
from tdabench.results.provenance import Provenance, provenance
from tdabench.results.record import record_key, write_json
from tdabench.results.whatif import WhatIfResult
from tdabench.scores import Score
from tdabench.scoring import score
from tdabench.simulator import FitData, Query, RunBatches, config_dict
from tdabench.run.views import fit_data
from tdabench.run.worker import FitTask, MethodJob, run_method

SCHEMA = WhatIfResult.SCHEMA


def read_plan(path: Path, bench: Benchmark) -> np.ndarray:
    """int64 [T, B]: the plan's batches (GPTDynamics ``train_samples_id.json``), each id an
    example of the benchmark; any problem is one line naming the file, line and field."""
    _, batches = read_batches(Path(path))
    known = bench.train.positions(batches) >= 0
    bad = (batches >= 0) & ~known
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataError(path, f"training id {int(batches[row, col])} is not an example of {bench.id}", line=row + 1, field="samples_id")
    return batches


def check_servable(path: Path, batches: np.ndarray, data: FitData, choice: MethodChoice) -> None:
    """A method that cannot use training examples absent from its fit runs is refused an id it has no factors for."""
    if choice.spec.capabilities.unseen_train:
        return
    fitted = set(np.unique(np.concatenate([data.runs.batches.ravel(), data.validation.batches.ravel()])).tolist())
    bad = (batches >= 0) & ~np.isin(batches, list(fitted))
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataError(path, f"training id {int(batches[row, col])} is in no fit run: {choice.display} cannot serve it "
                              "(it learns each example's factors from the runs that used it)", line=row + 1, field="samples_id")


def plan_query(bench: Benchmark, batches: np.ndarray, data: FitData, test_ids: np.ndarray, trajectory: str, seed: int) -> Query:
    """The query of one run that trains on ``batches``, from the benchmark's initial values."""
    fit_steps = data.runs.steps
    if not np.array_equal(np.diff(fit_steps), np.ones(len(fit_steps) - 1, dtype=np.int64)):
        raise TDABenchError(f"{trajectory} of {bench.id} is not recorded at every step, so a plan of its own length cannot be simulated")
    T = len(batches)
    steps = np.arange(int(fit_steps[0]), T + 1, dtype=np.int64)
    lr = _learning_rates(bench, data, T)
    runs = RunBatches(("plan",), np.array([seed], dtype=np.int64), batches[None].copy(), lr[None], steps)
    rows = data.test.positions(test_ids)
    first = data.values[:, rows, 0]  # one base model: equal in every run, then taken exactly
    initial = np.where((first == first[0]).all(axis=0), first[0], first.mean(axis=0))[None]
    return Query(trajectory, runs, bench.test.subset(test_ids), initial, bench.train, seed)


def _learning_rates(bench: Benchmark, data: FitData, T: int) -> np.ndarray:
    """The recording's schedule over T steps where known, else the fit runs' own decay stretched to T."""
    settings = bench.root / "record.json" if bench.root is not None else None
    if settings is not None and settings.is_file():
        from tdabench.recorder.train import read_schedule

        return read_schedule(settings).learning_rates(T)
    lr0 = float(np.nanmax(data.runs.lr[:, 0])) if data.runs.lr.size else float("nan")
    return lr0 * (1.0 - np.arange(T) / T)


@dataclass(frozen=True)
class WhatIf:
    """A what-if's answer: its record, and predicted (and, verified, actual) trajectories [n_test, K]."""

    record: WhatIfResult
    predicted: np.ndarray
    actual: np.ndarray | None
    baseline: np.ndarray | None


def _key(bench: Benchmark, choice: MethodChoice, plan: bytes, test_ids: np.ndarray, trajectory: str, seed: int) -> str:
    return record_key(WhatIfResult.KIND, {
        "data": bench.content_hash, "method": choice.spec.name, "method_version": choice.spec.version,
        "distribution": choice.spec.distribution, "config": config_dict(choice.config), "plan": hashlib.sha256(plan).hexdigest(),
        "test_ids": test_ids.tolist(), "trajectory": trajectory, "seed": seed})


def simulate_plan(bench: Benchmark, choice: MethodChoice, plan_path: Path, *, test_ids: np.ndarray | None, verify: bool, out: Path,
                  trajectory: str = "loss", seed: int = 0, cache_dir: str | None = None, device: str = "cpu", progress: bool = False,
                  command: str = "", executor: str = "local", ray_address: str | None = None, timeout: float | None = None) -> WhatIf:
    """Fit, predict the plan, verify it if asked, and write ``out/whatif.{json,csv,png}``."""
    batches = read_plan(plan_path, bench)
    if verify and trajectory != "loss":
        raise TDABenchError("--verify checks loss trajectories (training here does not generate answers for BLEU or ROUGE)")
    data = fit_data(bench, trajectory, seed=seed, with_model=choice.spec.capabilities.needs_checkpoints, cache_dir=cache_dir, device=device)
    ids = bench.test.ids if test_ids is None else np.unique(np.asarray(test_ids, dtype=np.int64))
    unknown = np.setdiff1d(ids, bench.test.ids)
    if len(unknown):
        raise TDABenchError(f"--test-ids: {int(unknown[0])} is not a test example of {bench.id}")
    check_servable(plan_path, batches, data, choice)
    if not choice.spec.capabilities.any_length and len(batches) != data.runs.batches.shape[1]:
        raise DataError(plan_path, f"{choice.display} predicts only runs as long as the fit runs ({data.runs.batches.shape[1]} steps); "
                                   f"the plan has {len(batches)}", field="step")
    query = plan_query(bench, batches, data, ids, trajectory, seed)
    key = _key(bench, choice, Path(plan_path).read_bytes(), ids, trajectory, seed)
    done = _reuse(out, key, verify)
    if done is not None:
        return done
    predicted = _predict(choice, data, query, make_executor(executor, 1, ray_address, timeout=timeout))
    baseline = ZeroLine.fit(data).predict(query)[0] if len(batches) == data.runs.batches.shape[1] else None
    actual = None
    if verify:
        from tdabench.recorder.retrain import observe, trainer_for

        actual = observe(trainer_for(bench), batches, query.test, query.runs.steps, device=device, progress=progress, label="verifying")
    record = _record(bench, choice, plan_path, query, predicted, actual, baseline, key, provenance(seed, command))
    record = WhatIfResult.from_dict(json.loads(json.dumps(record.to_dict())))  # as it reads back
    _write(out, record, query, predicted, actual, baseline)
    return WhatIf(record, predicted, actual, baseline)


def _predict(choice: MethodChoice, data: FitData, query: Query, executor: Executor) -> np.ndarray:
    """The method's prediction [n, K], fitted and simulated by ``executor`` (a worker process, or Ray)."""
    job = MethodJob(choice.spec, choice.config, (FitTask("all-test", data, {"plan": query}),))
    got: list[Any] = []
    errors: list[str] = []
    executor.map(run_method, [Job(job)], [], lambda i, v, e, r: errors.append(e) if e else None, lambda i, part: got.append(part))
    if errors or not got:
        raise TDABenchError(f"{choice.display}: {errors[0] if errors else 'no result came back'}")
    fitted = got[0]
    sim = fitted.simulated.get("plan")
    problem = fitted.error or (sim.error if sim is not None else "no prediction came back")
    if problem:
        raise TDABenchError(f"{choice.display}: {problem}")
    return validated(sim.prediction, query.shape, query.initial)[0]


def _record(bench: Benchmark, choice: MethodChoice, plan: Path, q: Query, predicted: np.ndarray, actual: np.ndarray | None,
            baseline: np.ndarray | None, key: str, prov: Provenance) -> WhatIfResult:
    scores: dict[str, Score] = {}
    reference: dict[str, Score] = {}
    if actual is not None:
        ref = baseline if baseline is not None else predicted
        scores = {k: s for k, s in score(predicted[None], actual[None], ref[None]).items() if not k.startswith("lds")}
        if baseline is not None:
            reference = {k: s for k, s in score(baseline[None], actual[None], baseline[None]).items()
                         if k in ("mse_all_steps", "mae_all_steps", "spearman_final", "spearman_steps")}
    spec = choice.spec
    return WhatIfResult(
        key=key, status="ok", benchmark=bench.id, data_hash=bench.content_hash, method=choice.display, method_name=spec.name,
        method_version=spec.version, distribution=spec.distribution, origin=spec.origin, config=config_dict(choice.config),
        seed=q.seed, scores=scores, provenance=prov, plan=Path(plan).name, plan_hash=hashlib.sha256(Path(plan).read_bytes()).hexdigest(),
        trajectory=q.trajectory, steps=tuple(int(x) for x in q.runs.steps), test_ids=tuple(int(x) for x in q.test.ids),
        verified=actual is not None, reference_scores=reference)


def _write(out: Path, record: WhatIfResult, q: Query, predicted: np.ndarray, actual: np.ndarray | None, baseline: np.ndarray | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["test_id", "step", "predicted", "actual", "zero_line"])
    for r, tid in enumerate(q.test.ids.tolist()):
        for k, step in enumerate(q.runs.steps.tolist()):
            w.writerow([tid, step, repr(float(predicted[r, k])), "" if actual is None else repr(float(actual[r, k])),
                        "" if baseline is None else repr(float(baseline[r, k]))])
    atomic_write_text(out / "whatif.csv", buf.getvalue())
    arrays = {"predicted": predicted, "steps": q.runs.steps, "test_ids": q.test.ids}
    if actual is not None:
        arrays["actual"] = actual
    if baseline is not None:
        arrays["zero_line"] = baseline
    npz = io.BytesIO()
    # numpy's stub types **kwds as if one could be named allow_pickle (a bool); ours are arrays.
    np.savez_compressed(npz, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(out / "whatif.npz", npz.getvalue())
    atomic_write_bytes(out / "whatif.png", _plot(record, q, predicted, actual, baseline))
    write_json(out / "whatif.json", record)  # last: the commit point of a result


def _reuse(out: Path, key: str, verify: bool) -> WhatIf | None:
    try:
        record = WhatIfResult.from_dict(json.loads((out / "whatif.json").read_text(encoding="utf-8")))
        if record.key != key or (verify and not record.verified):
            return None
        with np.load(out / "whatif.npz", allow_pickle=False) as z:
            return WhatIf(record, z["predicted"], z["actual"] if "actual" in z.files else None,
                          z["zero_line"] if "zero_line" in z.files else None)
    except (OSError, ValueError, KeyError, TDABenchError):
        return None


def _plot(record: WhatIfResult, q: Query, predicted: np.ndarray, actual: np.ndarray | None, baseline: np.ndarray | None) -> bytes:
    """A PNG: the mean over test examples and three evenly spaced test examples, predicted and actual."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    steps = q.runs.steps
    picks = np.unique(np.linspace(0, len(q.test) - 1, min(3, len(q.test))).round().astype(int))
    fig = Figure(figsize=(10, 3.4), dpi=110)
    axes = fig.subplots(1, 1 + len(picks), sharex=True)
    panels = [("mean over test examples", slice(None))] + [(f"test example {q.test.ids[p]}", p) for p in picks]
    for ax, (title, rows) in zip(np.atleast_1d(axes), panels):
        pick = (lambda a: a[rows].mean(axis=0)) if isinstance(rows, slice) else (lambda a: a[rows])
        ax.plot(steps, pick(predicted), color="#1f77b4", label=f"predicted ({record.method})")
        if actual is not None:
            ax.plot(steps, pick(actual), color="black", label="actual (trained)")
        if baseline is not None:
            ax.plot(steps, pick(baseline), color="#999999", linestyle="--", label="zero line")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].set_ylabel(q.trajectory, fontsize=8)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{record.benchmark}: what if the model had trained on {record.plan}?", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
