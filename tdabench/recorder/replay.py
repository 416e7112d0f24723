"""Regenerate a recorded run's checkpoints by replaying its batches from the base model.

The bank ships no checkpoints (they would not fit its size budget); a run is deterministic
given its batches and starting weights, so replaying the recorded batches with the recorded
schedule gives the checkpoints back. :func:`replay` also reports how far the replayed
model's final test losses are from the recorded ones, which tests the regeneration.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from tdabench.data import ModelAccess
from tdabench.errors import DataError
from tdabench.formats.gptdynamics_load import load_benchmarks
from tdabench.formats.jsonl import atomic_write_text
from tdabench.formats.manifest import write_manifest
from tdabench.methods.lm import encode, evaluate
from tdabench.recorder.models import load_model
from tdabench.recorder.train import read_schedule, train


@dataclass(frozen=True)
class Replayed:
    """Checkpoints written by a replay and its agreement with the recording.

    Attributes:
        run: the replayed run.
        checkpoints: step -> safetensors file.
        max_abs_error: largest |replayed - recorded| final test loss.
    """

    run: str
    checkpoints: dict[int, Path]
    max_abs_error: float


def replay(root: Path, run_name: str, every: int, *, device: str = "cpu") -> Replayed:
    """Replay ``run_name`` of the recording at ``root``, saving weights every ``every`` steps
    (and at the last step) into ``root/checkpoints/<run>/``, and add them to the manifest."""
    root = Path(root)
    bench = load_benchmarks(root)[0]
    run = bench.run(run_name)
    settings_file = root / "record.json"
    if not settings_file.is_file():
        raise DataError(settings_file, "file not found: only recordings made by `tdabench record` can be replayed")
    sched = read_schedule(settings_file)
    loaded = load_model(str(root / "model"), device)
    tok, loss_type = loaded.tokenizer, bench.meta.loss_type
    train_enc = encode(tok, bench.train.prompts, bench.train.targets, loss_type)
    rows = np.where(run.batches >= 0, bench.train.positions(run.batches), -1)
    T = run.n_steps
    tmp = root / ".partial" / f"ckpt-{run_name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    def save(t: int, model: object, _loss: float) -> None:
        if t % every == 0 or t == T:
            state = model.state_dict()  # type: ignore[attr-defined]
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / f"step-{t}.safetensors"))

    train(loaded.model, train_enc, rows, sched, save)
    test_enc = encode(tok, bench.test.prompts, bench.test.targets, loss_type)
    err = float(np.abs(evaluate(loaded.model, test_enc, bf16=False) - run.trajectories["loss"].values[:, -1]).max())
    dest = root / "checkpoints" / run_name
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    # How far the replay is from the recording: 0 up to the recorded 4 decimals when the code,
    # library versions and thread count are the recording's (docs/benchmarks.md, "Retraining").
    atomic_write_text(dest / "replay.json", json.dumps({"run": run_name, "max_abs_error_final_test_loss": err}) + "\n")
    ckpts = {int(f.stem.split("-")[1]): f for f in sorted(dest.glob("step-*.safetensors"))}
    old = bench.model.checkpoints if bench.model else {}
    access = ModelAccess(base_model=root / "model", checkpoints={**old, run_name: ckpts}, loss_type=loss_type)
    write_manifest(root, bench.id, bench.meta, bench.split, access, dict(bench.test_groups), bench.design)
    return Replayed(run_name, ckpts, err)
