"""The files a recording writes beside its runs: ``record.json`` (its settings, which a resumed
recording must match) and ``tdabench.json`` (the manifest: split, metadata, model access, design)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tdabench.data import BenchmarkMeta, DesignInfo, ModelAccess, SplitSpec
from tdabench.errors import TDABenchError
from tdabench.formats.manifest import write_manifest
from tdabench.recorder.designs import DesignSpec, RecordingPlan
from tdabench.recorder.tasks import TEXT_METRICS, Task
from tdabench.sources.splits import HELDOUT_FRACTION, heldout_test_ids, split_counts

if TYPE_CHECKING:
    from tdabench.recorder.record import RecordSpec


def counts(spec: RecordSpec, n_main: int) -> tuple[int, int, int]:
    """(fit, validation, evaluation) runs of the main pool: the published share, or ``eval_runs``."""
    if spec.eval_runs is None:
        return split_counts(n_main)
    n_val = 2 if n_main - spec.eval_runs >= 4 else 0
    return n_main - spec.eval_runs - n_val, n_val, spec.eval_runs


def settings_dict(spec: RecordSpec) -> dict[str, object]:
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def check_settings(out: Path, spec: RecordSpec) -> None:
    """A resumed recording must have the settings it was started with."""
    path = out / "record.json"
    mine = settings_dict(spec)
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != mine:
            diff = sorted(k for k in set(old) | set(mine) if old.get(k) != mine.get(k))
            raise TDABenchError(f"{out} holds a recording with other settings ({', '.join(diff)}); use another --out or the same arguments")
        return
    if out.exists() and any(out.iterdir()):
        raise TDABenchError(f"{out} exists and is not a recording (no record.json); use an empty or new --out")


def write_recording_manifest(out: Path, spec: RecordSpec, task: Task, plan: RecordingPlan, model_name: str, n_parameters: int,
                    names: list[str], metric_every: int, bf16: bool) -> None:
    n_b = plan.n_unseen
    main, unseen = names[: len(names) - n_b], names[len(names) - n_b :]
    n_fit, n_val, n_eval = counts(spec, len(main))
    split = SplitSpec(
        fit_runs=tuple(main[:n_fit]), validation_runs=tuple(main[n_fit : n_fit + n_val]), eval_runs=tuple(main[n_fit + n_val :]),
        unseen_train_runs=tuple(unseen), heldout_test_ids=tuple(int(i) for i in heldout_test_ids(task.test.ids)),
        rule=(f"recorder: runs by seed, {n_fit} fit / {n_val} validation / {n_eval} evaluation on pool A; "
              f"{n_b} runs on the disjoint pool B for unseen-train; {HELDOUT_FRACTION:.0%} of test ids withheld"),
    )
    metrics = ("loss", *TEXT_METRICS) if metric_every else ("loss",)
    s = spec.schedule
    meta = BenchmarkMeta(
        model=model_name, task=task.name, setting=task.setting, loss_type=task.loss_type, n_params=n_parameters,
        trajectories=metrics, source="tdabench-recorder",
        description=(f"{task.description}; {model_name}, {s.sample} of {len(task.pool_a)} examples, batch {s.batch_size}, "
                     f"{s.epochs} epochs ({s.n_steps} steps), lr {s.lr:g}, {'bf16' if bf16 else 'fp32'} evaluation"
                     + ("" if spec.design.name == "uniform" else f", design {_design_words(spec.design)}")
                     + (f", BLEU/ROUGE-L every {metric_every} steps" if metric_every else "")),
    )
    ckpts = {}
    for name in names:
        files = sorted((out / "checkpoints" / name).glob("step-*.safetensors"))
        if files:
            ckpts[name] = {int(f.stem.split("-")[1]): f for f in files}
    access = ModelAccess(base_model=out / "model", checkpoints=ckpts, loss_type=task.loss_type)
    short = task.name.removeprefix("it_")
    bench_id = spec.bench_id or f"recorded/{task.setting}/{model_name}/{short}"
    options = {k: v for k, v in spec.design.summary().items() if k != "name"}
    design = DesignInfo(spec.design.name, options, {n: dict(r.params) for n, r in zip(names, plan.runs) if r.params}, dict(plan.flips))
    groups = {g: tuple(ids) for g, ids in task.test_groups().items()}
    write_manifest(out, bench_id, meta, split, access, groups, design)


def _design_words(design: DesignSpec) -> str:
    """``drop-group (group_by label+template)``: the design and its options, for descriptions."""
    opts = ", ".join(f"{k} {v}" for k, v in design.summary().items() if k != "name")
    return design.name + (f" ({opts})" if opts else "")
