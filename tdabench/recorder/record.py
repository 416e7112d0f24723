"""Record many runs of one (model, task) setting into a benchmark in the GPTDynamics layout.

Resumable and atomic: each run is written into ``OUT/.partial/`` and renamed into
``OUT/runs/<task>/`` when complete, so a killed recording leaves complete runs and at most
one partial one per worker, which the next call deletes and redoes. Runs are independent
jobs for an executor (:mod:`tdabench.run.executors`): in this process, local processes
(``--jobs N``) or Ray tasks (``--executor ray``). ``OUT/record.json`` holds the
settings; resuming with different settings is an error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from tdabench.config import option, validate_options
from tdabench.data import Run, Trajectory
from tdabench.errors import TDABenchError
from tdabench.run.executors import Executor, Job, SerialExecutor
from tdabench.run.pool import WorkerPool
from tdabench.formats.gptdynamics_write import example_file_paths, write_examples, write_run
from tdabench.formats.jsonl import DirLock, atomic_write_text
from tdabench.formats.names import format_run_name
from tdabench.recorder.designs import DesignSpec, RecordingPlan, grouping, plan_recording
from tdabench.recorder.generate import encode_prompts, greedy_answers, text_scores
from tdabench.methods.lm import encode, evaluate
from tdabench.recorder.models import LoadedModel, load_model, n_params, quiet_loading
from tdabench.recorder.properties import accuracy, label_choices, write_summary
from tdabench.recorder.record_files import check_settings, counts, settings_dict, write_recording_manifest
from tdabench.recorder.tasks import TEXT_METRICS, Task, load_task, with_flipped_labels
from tdabench.simulator import Resources
from tdabench.recorder.train import Schedule, train
from tdabench.results.provenance import provenance

UNSEEN_SEED_OFFSET = 1000  # pool-B runs use seeds seed + 1000 + j
DECIMALS = 4  # GPTDynamics stores four decimals; bf16 evaluation is only trusted to 1e-3


#: The most runs of one pool: every run's plan is built up front, and a recording this size already takes days.
MAX_RUNS = 10_000


@dataclass(frozen=True)
class RecordSpec:
    """Everything that determines a recording (stored in ``record.json``).

    Each field's :func:`~tdabench.config.option` is also the ``tdabench record`` flag of that
    name (``schedule`` and ``design`` contribute their own fields' flags).
    """

    model: str = option("", "built-in size (neox-0.2m, neox-1m, neox-4m, neox-1m-sentiment), a local model directory, or a hub name")
    task: str = option("", "built-in task (sentiment, entailment, boolq, webnlg, wmt, mixture), a JSON Lines file "
                           "(id, input, context) or a datasets folder")
    runs: int = option(32, "runs on training pool A (32: the published 25 fit / 2 validation / 5 evaluation)", ge=2, le=MAX_RUNS)
    schedule: Schedule = field(default_factory=Schedule)
    unseen_runs: int | None = option(None, "runs on the disjoint pool B for unseen-train (default 3 when pool B is large enough)", ge=0,
                                     le=MAX_RUNS)
    metric_every: int | None = option(None, "record BLEU and ROUGE-L of greedy answers every N steps (default 8 for generation tasks, else off)", ge=0)
    checkpoint_every: int = option(0, "save safetensors checkpoints every N steps (0: none)", ge=0)
    checkpoint_runs: str = option("fit", "runs that save checkpoints: the first fit run (methods see only fit and validation runs' checkpoints), "
                                         "the evaluation and unseen-train runs, or all", ("fit", "eval", "all"))
    seed: int = option(0, "seed of the first run; run i uses seed + i")
    precision: str = option("auto", "test-loss evaluation precision (auto: bf16 on CUDA where its error is below 1e-3)", ("auto", "fp32", "bf16"))
    loss: str = option("output-tokens", "loss type for tasks from files (built-in tasks set their own)", ("output-tokens", "last-token", "whole-sequence"))
    n_test: int = option(128, "test examples: the first N of a built-in task (of each task of a mixture), or the last N held out of a file task", ge=1)
    shot: int | None = option(None, "size of pool A: its first N ids (default: 200 for built-in tasks, every training example of a file)", ge=1)
    bench_id: str | None = option(None, "benchmark id (default recorded/<setting>/<model>/<task>)", flag="--id")
    design: DesignSpec = field(default_factory=DesignSpec)
    eval_runs: int | None = option(None, "evaluation runs (default: the published 5 of 32); counterfactual designs use more", ge=1)
    test_set: str = option("test", "test examples: the task's test set, or pool A's examples as trained (self-influence, mislabel search)", ("test", "pool"))

    def __post_init__(self) -> None:
        validate_options(self)
        if self.eval_runs is not None and self.eval_runs > self.runs - 1:
            raise ValueError(f"eval_runs must be at most runs - 1 = {self.runs - 1}, got {self.eval_runs}")


def _plan_runs(spec: RecordSpec, task: Task) -> tuple[RecordingPlan, Task]:
    """Every run's batches by the spec's design, and the task (with flipped copies under label noise)."""
    s, design = spec.schedule, spec.design
    groups = task.groups(grouping(design, task.setting)) if design.name not in ("uniform", "label-noise", "plan") else {}
    plan = plan_recording(design, task.pool_a, task.pool_b, groups, sample=s.sample, epochs=s.epochs, batch_size=s.batch_size,
                          runs=spec.runs, unseen_runs=spec.unseen_runs, seed=spec.seed, unseen_seed_offset=UNSEEN_SEED_OFFSET,
                          name=task.name)
    if plan.flips:
        task = with_flipped_labels(task, plan.flips)
    if spec.test_set == "pool":  # each pool-A example, as the runs see it, is also a test example
        task = dataclasses.replace(task, test=task.train.subset(plan.pool_a))
    if design.name == "plan":
        ids = np.concatenate([r.batches.ravel() for r in plan.runs])
        missing = ids[(ids >= 0) & (task.train.positions(ids) < 0)]
        if len(missing):
            raise TDABenchError(f"--plan {design.plan}: training id {int(missing[0])} is not an example of {task.name}")
    return plan, task


def _metric_steps(T: int, every: int) -> np.ndarray:
    steps = list(range(0, T + 1, every))
    return np.asarray(steps if steps[-1] == T else steps + [T], dtype=np.int64)


def _choose_bf16(precision: str, model: torch.nn.Module, test_enc: object) -> bool:
    """Whether to evaluate under bf16 autocast. ``auto`` uses it on CUDA only, and only where
    the loss error on the test set stays below 1e-3; on the CPUs measured here bf16 was no
    faster, so CPU recordings stay in float32."""
    if precision != "auto":
        return precision == "bf16"
    if next(model.parameters()).device.type != "cuda":
        return False
    err = float(np.abs(evaluate(model, test_enc, bf16=True) - evaluate(model, test_enc, bf16=False)).max())  # type: ignore[arg-type]
    return err < 1e-3


@dataclass(frozen=True, eq=False)
class RecordContext:
    """What every run of a recording shares: shipped to each worker once (Ray's object store).

    Attributes:
        spec: the recording's settings.
        out: the benchmark directory; workers load the base model from ``out/model`` and
            commit their runs under ``out/runs`` (on a cluster, a file system every node sees).
        device: torch device of the workers.
        task: the task, examples included.
        model_name: the model part of run names.
        settings: run-name fields shared by all runs (the seed is added per run).
        metric_every: BLEU / ROUGE-L interval in steps (0: off).
        bf16: whether test losses are evaluated under bf16 autocast.
        progress: whether a run shows its own step bar (serial recording only).
    """

    spec: RecordSpec
    out: Path
    device: str
    task: Task
    model_name: str
    settings: dict[str, str]
    metric_every: int
    bf16: bool
    progress: bool


@dataclass(frozen=True, eq=False)
class RunJob:
    """One run of a recording: an independent, picklable unit of work."""

    seed: int
    batches: np.ndarray
    name: str
    checkpoint_every: int


def run_resources(n_parameters: int, device: str) -> Resources:
    """What one recording run declares to an executor: a core (or a GPU) and its memory,
    about 20 bytes a parameter (weights, gradients, two AdamW moments, the initial copy)
    on top of half a GiB for the interpreter, torch and activations."""
    gpu = device.startswith("cuda")
    return Resources(cpus=1.0, gpus=1.0 if gpu else 0.0, memory_mb=512 + -(-20 * n_parameters // 2**20))


def record(spec: RecordSpec, out: Path, *, device: str = "cpu", progress: bool = True, executor: Executor | None = None) -> Path:
    """Record ``spec`` into ``out`` (resuming what is there) and return ``out``.

    Runs are independent jobs on ``executor`` (default: one after another in this process);
    each commits atomically when done. A failing run is reported after the others finish,
    and rerunning the same call records only the missing runs. A second recording into the
    same ``out`` while this one runs is refused with one line.
    """
    Path(out).mkdir(parents=True, exist_ok=True)
    lock = DirLock(Path(out), f"{out} is being recorded by another `tdabench record`: wait for it to finish (then rerun to resume), "
                              "or choose another --out")
    try:
        return _record(spec, out, device=device, progress=progress, executor=executor)
    finally:
        lock.release()


def _record(spec: RecordSpec, out: Path, *, device: str, progress: bool, executor: Executor | None) -> Path:
    executor = executor or SerialExecutor()
    task = load_task(spec.task, loss_type=spec.loss, n_test=spec.n_test, shot=spec.shot, generation=(spec.metric_every or 0) > 0)
    plan, task = _plan_runs(spec, task)
    n_b = plan.n_unseen
    out = Path(out).resolve()  # workers (Ray's included) may start in another directory
    check_settings(out, spec)  # before the slow model load: a mismatch fails fast
    loaded = load_model(spec.model, device)
    if not (out / "record.json").is_file():  # written once the arguments are known to be good
        atomic_write_text(out / "record.json", json.dumps(settings_dict(spec), indent=1) + "\n")
    # What the runs were trained with: retraining reproduces a run bit for bit only with the same
    # code, library versions and thread count (float sums are reordered otherwise, and training
    # amplifies the difference). Each start of a recording adds a line.
    threads = (max(1, (os.cpu_count() or 1) // executor.jobs) if isinstance(executor, WorkerPool)
               else torch.get_num_threads() if isinstance(executor, SerialExecutor) else None)  # Ray: the cluster's
    with open(out / "recorded_with.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps({**dataclasses.asdict(provenance(spec.seed, "tdabench record")), "torch_threads_per_run": threads}) + "\n")
    metric_every = spec.metric_every if spec.metric_every is not None else (8 if task.generation else 0)
    s = spec.schedule
    settings = {"task": task.name, "bs": str(s.batch_size), "shot": str(len(task.pool_a)), "sample": str(s.sample),
                "model": loaded.name, "lr": f"{s.lr:g}", "weight-decay": f"{s.weight_decay:g}", "epoch": str(s.epochs),
                "loss": task.loss_type}
    names = [format_run_name({**settings, "seed": str(r.seed)}) for r in plan.runs]
    train_file, test_file = example_file_paths(out, task.name, task.setting, task.train, task.test)
    write_examples(train_file, task.train)
    write_examples(test_file, task.test)
    _save_base(loaded, out / "model")
    bf16 = _choose_bf16(spec.precision, loaded.model, encode(loaded.tokenizer, task.test.prompts, task.test.targets, task.loss_type))
    n_parameters = n_params(loaded.model)
    resources = run_resources(n_parameters, device)
    model_name = loaded.name
    del loaded  # workers load the saved base: the same weights, wherever they run
    n_main = len(names) - n_b
    eval_names = set(names[n_main - counts(spec, n_main)[2] :])
    saving = {"fit": {names[0]}, "eval": eval_names, "all": set(names)}[spec.checkpoint_runs]
    runs_dir = out / "runs" / task.name
    jobs = [
        Job(RunJob(r.seed, r.batches, name, spec.checkpoint_every if name in saving else 0), 0, resources)
        for r, name in zip(plan.runs, names)
        if not (runs_dir / name).is_dir()
    ]
    ctx = RecordContext(spec, out, device, task, model_name, settings, metric_every, bf16,
                        progress=progress and isinstance(executor, SerialExecutor))
    failures: list[str] = []
    with tqdm(total=len(names), initial=len(names) - len(jobs), desc=f"{model_name}/{task.name} runs", unit="run", disable=not progress) as bar:

        def report(i: int, _name: str | None, error: str | None, running: int) -> None:
            if error is not None:
                failures.append(f"{jobs[i].arg.name}: {error}")
            bar.set_postfix(running=running, failed=len(failures), refresh=False)
            bar.update(1)

        executor.map(record_run_job, jobs, [ctx], report)
    if failures:
        raise TDABenchError(f"{len(failures)} of {len(names)} runs failed (first: {failures[0]}); "
                            "the finished runs are kept: rerun the same command to record the rest")
    shutil.rmtree(out / ".partial", ignore_errors=True)
    write_recording_manifest(out, spec, task, plan, model_name, n_parameters, names, metric_every, bf16)
    return out


def record_run_job(job: RunJob, ctx: RecordContext) -> str:
    """Record one run from the saved base weights and commit it; returns its name.

    Writes go to ``out/.partial/<name>`` first and are renamed into place, so a worker that
    dies leaves nothing a rerun would mistake for a finished run.
    """
    with quiet_loading():
        loaded = load_model(str(ctx.out / "model"), ctx.device)
    loaded.name = ctx.model_name
    tok, task = loaded.tokenizer, ctx.task
    train_enc = encode(tok, task.train.prompts, task.train.targets, task.loss_type)
    test_enc = encode(tok, task.test.prompts, task.test.targets, task.loss_type)
    prompts = encode_prompts(tok, task.test.prompts, task.test.targets) if ctx.metric_every else None
    name, out = job.name, ctx.out
    # Label accuracy at both ends: the true label's loss against the other label's (two-label tasks).
    choices = label_choices(task.test.targets, task.test_groups(), task.test.ids)
    wrong_enc = encode(tok, task.test.prompts, [o or t for o, t in zip(choices.other_targets, task.test.targets)],
                       task.loss_type) if choices else None
    wrong0 = evaluate(loaded.model, wrong_enc, bf16=ctx.bf16) if wrong_enc is not None else None
    # A generation task recorded without BLEU / ROUGE-L trajectories still reports both at the two ends.
    ends_prompts = encode_prompts(tok, task.test.prompts, task.test.targets) if task.generation and not ctx.metric_every else None
    text0 = _mean_text_scores(loaded, ends_prompts, task) if ends_prompts is not None else None
    t0 = time.perf_counter()
    run = _record_run(loaded, task, ctx.spec.schedule, job.seed, job.batches, name, ctx.settings, train_enc, test_enc, prompts,
                      ctx.metric_every, job.checkpoint_every, ctx.bf16, out, ctx.progress)
    seconds = time.perf_counter() - t0
    partial = out / ".partial" / name
    write_run(partial, run, task.test.ids)
    acc = None
    if choices is not None and wrong0 is not None:
        right = run.trajectories["loss"].values
        wrong_end = evaluate(loaded.model, wrong_enc, bf16=ctx.bf16)  # type: ignore[arg-type]
        ends = (accuracy(right[:, 0], wrong0, choices), accuracy(right[:, -1], wrong_end, choices))
        acc = {g: [ends[0][g], ends[1][g]] for g in choices.groups}
    texts = None
    if text0 is not None:
        text_end = _mean_text_scores(loaded, ends_prompts, task)
        texts = {m: [text0[m], text_end[m]] for m in text0}
    write_summary(partial, run_seconds=seconds, label_accuracy=acc, text_scores=texts, steps=[0, run.n_steps])
    if (out / ".partial" / f"ckpt-{name}").is_dir():
        shutil.rmtree(out / "checkpoints" / name, ignore_errors=True)  # left by a run killed after this point
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        os.replace(out / ".partial" / f"ckpt-{name}", out / "checkpoints" / name)
    runs_dir = out / "runs" / task.name
    runs_dir.mkdir(parents=True, exist_ok=True)
    os.replace(partial, runs_dir / name)  # the commit point of a run
    return name


def _mean_text_scores(loaded: LoadedModel, prompts: object, task: Task) -> dict[str, float]:
    """Mean BLEU and ROUGE-L of the greedy answers to every test prompt."""
    scores = text_scores(greedy_answers(loaded.model, loaded.tokenizer, prompts), task.test.targets)  # type: ignore[arg-type]
    return {m: round(float(v.mean()), 4) for m, v in scores.items()}


def _record_run(loaded: LoadedModel, task: Task, schedule: Schedule, seed: int, batches: np.ndarray, name: str,
                settings: dict[str, str], train_enc: object, test_enc: object, prompts: object, metric_every: int,
                checkpoint_every: int, bf16: bool, out: Path, progress: bool) -> Run:
    """Train one run from the base weights, observing the test set after every step."""
    model = loaded.model
    rows = np.where(batches >= 0, task.train.positions(batches), -1)
    T = len(batches)
    loss = np.zeros((len(task.test), T + 1))
    loss[:, 0] = evaluate(model, test_enc, bf16=bf16)  # type: ignore[arg-type]
    m_steps = _metric_steps(T, metric_every) if metric_every else np.zeros(0, np.int64)
    texts = {m: np.zeros((len(task.test), len(m_steps))) for m in TEXT_METRICS} if metric_every else {}
    ckpt_dir = out / ".partial" / f"ckpt-{name}"
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    shutil.rmtree(out / ".partial" / name, ignore_errors=True)

    def observe(t: int, m: torch.nn.Module, _train_loss: float) -> None:
        if t > 0:
            loss[:, t] = evaluate(m, test_enc, bf16=bf16)  # type: ignore[arg-type]
        if metric_every and t in m_steps:
            k = int(np.searchsorted(m_steps, t))
            scores = text_scores(greedy_answers(m, loaded.tokenizer, prompts), task.test.targets)  # type: ignore[arg-type]
            for metric in TEXT_METRICS:
                texts[metric][:, k] = scores[metric]
        if checkpoint_every and t > 0 and (t % checkpoint_every == 0 or t == T):
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}, str(ckpt_dir / f"step-{t}.safetensors"))

    observe(0, model, float("nan"))
    with tqdm(total=T, desc=f"seed {seed}", unit="step", leave=False, disable=not progress) as steps_bar:
        train_loss = train(model, train_enc, rows, schedule, observe, progress=steps_bar)  # type: ignore[arg-type]
    trajectories = {"loss": Trajectory(np.arange(T + 1), np.round(loss, DECIMALS))}
    for metric in texts:
        trajectories[metric] = Trajectory(m_steps, np.round(texts[metric], DECIMALS))
    return Run(name, seed, batches, schedule.learning_rates(T), trajectories, {**settings, "seed": str(seed)}, np.round(train_loss, DECIMALS))


def _save_base(loaded: LoadedModel, dest: Path) -> None:
    """The starting weights and tokenizer, for gradient methods (written once, atomically)."""
    if (dest / "config.json").is_file():
        return
    tmp = dest.parent / ".partial" / "model"
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_loading():
        loaded.model.save_pretrained(str(tmp), safe_serialization=True)
    loaded.tokenizer.save_pretrained(str(tmp))
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
