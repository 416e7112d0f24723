"""Write a :class:`Benchmark` in the GPTDynamics layout, plus tdabench's manifest.

The output opens in the published tools (they ignore ``tdabench.json``), and reading it
back gives a benchmark with the same content hash.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tdabench.data import Benchmark, ExampleSet, Run
from tdabench.formats.gptdynamics_read import BATCHES_FILE, LOG_FILE
from tdabench.formats.jsonl import atomic_write_text, write_jsonl
from tdabench.formats.manifest import write_manifest


def example_file_paths(root: Path, task: str, setting: str, train: ExampleSet, test: ExampleSet) -> tuple[Path, Path]:
    """Where the published layout keeps a task's example files (names carry the id range)."""
    def span(ex: ExampleSet, sep: str) -> str:
        return f"{int(ex.ids.min())}{sep}{int(ex.ids.max())}" if len(ex) else f"0{sep}0"

    if setting == "it":
        base = root / "gptdynamics" / "it_tasks"
        return base / f"{task}_train_{span(train, '_')}.json", base / f"{task}_eval_{span(test, '_')}.json"
    base = root / "gptdynamics" / "sft_tasks" / task
    return base / f"{task}_train_{span(train, '-')}.json", base / f"{task}_validation_{span(test, '-')}.json"


def write_examples(path: Path, examples: ExampleSet) -> None:
    """One ``{"id", "input", "context"}`` object per line."""
    write_jsonl(
        path,
        ({"id": int(i), "input": t, "context": c} for i, t, c in zip(examples.ids, examples.texts, examples.prompts)),
    )


def write_batches(path: Path, batches: np.ndarray) -> None:
    """A ``train_samples_id.json`` (a what-if plan, or a run's batches): one line per step."""
    write_jsonl(path, ({"step": t, "samples_id": [int(i) for i in batch if i >= 0]} for t, batch in enumerate(batches, start=1)))


def write_run(run_dir: Path, run: Run, test_ids: np.ndarray) -> None:
    """One run directory: batches, one trajectory file per metric, and ``log.out``."""
    write_batches(run_dir / BATCHES_FILE, run.batches)
    for metric, tr in run.trajectories.items():
        steps = tr.steps.tolist()
        write_jsonl(
            run_dir / f"all_{metric}_trajectory.out",
            (
                {"id": int(i), "loss_trajectory": [{"step": s, "loss": v} for s, v in zip(steps, vals)]}
                for i, vals in zip(test_ids, tr.values.tolist())
            ),
        )
    atomic_write_text(run_dir / LOG_FILE, _log_text(run))


def _log_text(run: Run) -> str:
    """Python-dict lines as the published ``log.out``; unknown values are left out, not NaN."""
    lines = []
    for t in range(run.n_steps):
        rec: dict[str, object] = {"step": t + 1, "samples_id": [int(i) for i in run.batches[t] if i >= 0]}
        if run.train_loss is not None and math.isfinite(run.train_loss[t]):
            rec["loss"] = float(run.train_loss[t])
        if math.isfinite(run.lr[t]):
            rec["lr"] = float(run.lr[t])
        lines.append(repr(rec))
    return "\n".join(lines) + "\n"


def write_benchmark(bench: Benchmark, root: Path) -> Path:
    """Write ``bench`` under ``root`` (created if needed) and return ``root``."""
    root = Path(root)
    train_file, test_file = example_file_paths(root, bench.meta.task, bench.meta.setting, bench.train, bench.test)
    if bench.train.has_text:
        write_examples(train_file, bench.train)
    if bench.test.has_text:
        write_examples(test_file, bench.test)
    for run in bench.runs:
        write_run(root / "runs" / bench.meta.task / run.name, run, bench.test.ids)
    write_manifest(root, bench.id, bench.meta, bench.split, bench.model, dict(bench.test_groups), bench.design)
    return root
