"""Write small trees exactly in the published GPTDynamics layout (no tdabench manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RUN_NAME = "output_{task}_bs-4_shot-20_sample-12_model-pythia-410m-deduped_lr-5e-7_weight-decay-0.001_epoch-2_seed-{seed}"


def write_published_tree(
    root: Path,
    *,
    task: str = "rte",
    n_runs: int = 8,
    n_train: int = 20,
    test_ids: tuple[int, ...] = tuple(range(200, 210)),
    steps: int = 6,
    metrics: tuple[str, ...] = ("loss", "bleu"),
    seed: int = 0,
) -> Path:
    """A root with ``runs/<task>/<run>/`` and ``gptdynamics/sft_tasks/<task>/`` example files."""
    rng = np.random.default_rng(seed)
    ex_dir = root / "gptdynamics" / "sft_tasks" / task
    ex_dir.mkdir(parents=True)
    with open(ex_dir / f"{task}_0_{n_train - 1}_train.json", "w") as fh:
        for i in range(n_train):
            fh.write(json.dumps({"id": i, "input": f"Premise {i}. Answer: yes", "context": f"Premise {i}. Answer:", "label": 1}) + "\n")
    with open(ex_dir / f"{task}_0_{len(test_ids) - 1}_eval.json", "w") as fh:
        for i in test_ids:
            fh.write(json.dumps({"id": i, "input": f"Test {i}. Answer: no", "context": f"Test {i}. Answer:", "extra": [1, 2]}) + "\n")
    for r in range(n_runs):
        run = root / "runs" / task / RUN_NAME.format(task=task, seed=r)
        run.mkdir(parents=True)
        with open(run / "train_samples_id.json", "w") as fh:
            for t in range(1, steps + 1):
                fh.write(json.dumps({"step": t, "samples_id": rng.choice(n_train, 4, replace=False).tolist()}) + "\n")
        for m in metrics:
            with open(run / f"all_{m}_trajectory.out", "w") as fh:
                for i in test_ids:
                    vals = np.cumsum(rng.uniform(-0.1, 0.0, steps)) + 2.0
                    traj = [{"step": t + 1, "loss": float(v)} for t, v in enumerate(vals)]
                    fh.write(json.dumps({"id": i, f"{'loss'}_trajectory": traj}) + "\n")
    return root
