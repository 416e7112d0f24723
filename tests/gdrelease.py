"""Write a small tree in exactly the layout of the published GPTDynamics release, with its quirks.

The layout, file names and quirks follow the authors' own loader and evaluation scripts
(``shared/reference/gptdynamics.md``): fine-tuning tasks under ``sft_tasks`` with their
published file names; FLAN under ``it_tasks`` with BLEU/ROUGE-L files covering only the
WebNLG and WMT16 test ids; out-of-distribution runs beside the main runs of RTE and WebNLG;
``runs/flan_ood`` with training ids shifted by 1200 and another length; SST-2's
mislabelled-debug files beside its real ones, with their own runs in
``runs/dataset_debug_sst2``; a ``log.out`` with progress-bar prefixes and one without any
``lr``. Values are small random walks: what matters is where they are, not what they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NAME = "output_{task}_bs-{bs}_shot-{shot}_sample-{sample}_model-pythia-410m-deduped_lr-{lr}_weight-decay-0.001_epoch-{epoch}{loss}_seed-{seed}"
FT = {  # task -> (train file, n train, test file, test ids, seeds, lr, loss suffix, metrics)
    "rte": ("rte_0_399_train.json", 400, "rte_0_276_eval.json", range(0, 277), range(20, 33), "5e-7", "", ("loss",)),
    "sst2": ("sst2_train_0-199.json", 200, "sst2_validation_0-199.json", range(0, 200), range(20, 33), "5e-7", "_loss-last-token", ("loss",)),
    "webnlg": ("webnlg_train_0-399.json", 400, "webnlg_dev_0-177.json", range(0, 178), range(20, 33), "1e-6", "_loss-output-token", ("loss", "bleu", "rougeL")),
    "wmt16_de_en": ("wmt16_de_en_train_0-199.json", 200, "wmt16_de_en_test_0-199.json", range(0, 200), range(1, 13), "5e-7", "_loss-output-token", ("loss",)),
    "boolq": ("boolq_train_0-199.json", 200, "boolq_validation_0-199.json", range(0, 200), range(20, 33), "5e-7", "", ("loss",)),
}
FT_STEPS = 4
FLAN_STEPS, FLAN_OOD_STEPS = 6, 4
DEBUG = ("sst2_flan-prompt_dataset-debug_mislabelled-0.4_train_0-127.json", "sst2_flan-prompt_dataset-debug_eval_0-127.json")
#: The run whose file the tree damages, when asked to: boolq's first run.
BROKEN_TASK = "boolq"


def _examples(path: Path, ids: range | list[int], kind: str, flipped: set[int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in ids:
            obj = {"id": i, "input": f"{kind} example {i}. Answer: yes", "context": f"{kind} example {i}. Answer:"}
            if flipped is not None:
                obj["is_mislabelled"] = i in flipped
            fh.write(json.dumps(obj) + "\n")


def _run(run: Path, rng: np.random.Generator, train_ids: np.ndarray, steps: int, metrics: dict[str, list[int]], lr: float,
         log: str | None = None) -> None:
    run.mkdir(parents=True)
    with open(run / "train_samples_id.json", "w") as fh:
        for t in range(1, steps + 1):
            fh.write(json.dumps({"step": t, "samples_id": [int(i) for i in rng.choice(train_ids, 4, replace=False)]}) + "\n")
    for metric, ids in metrics.items():
        scale = 100.0 if metric == "bleu" else 1.0 if metric == "rougeL" else 2.0
        with open(run / f"all_{metric}_trajectory.out", "w") as fh:
            for i in ids:
                walk = scale * (1.0 + np.cumsum(rng.uniform(-0.05, 0.02, steps)))
                fh.write(json.dumps({"id": i, "loss_trajectory": [{"step": t + 1, "loss": round(float(v), 4)} for t, v in enumerate(walk)]}) + "\n")
    if log is not None:
        lines = []
        for t in range(1, steps + 1):
            rec = {"step": t, "samples_id": [0], "loss": 1.0}
            if log != "no-lr":
                rec["lr"] = lr * (1 - (t - 1) / steps)
            prefix = f"{100 * t // steps:3d}%|##   | {t}/{steps} [00:0{t}<00:10,  1.0it/s]" if log == "progress" else ""
            lines.append(prefix + repr(rec))
        (run / "log.out").write_text("\n".join(lines) + "\n")


def write_release_tree(root: Path, *, broken: bool = False, seed: int = 0) -> Path:
    """The tree; with ``broken``, boolq's first run has a malformed trajectory line."""
    rng = np.random.default_rng(seed)
    gd = root / "gptdynamics"
    for task, (train_file, n_train, test_file, test_ids, seeds, lr, loss, metrics) in FT.items():
        _examples(gd / "sft_tasks" / task / train_file, range(n_train), f"{task} train")
        _examples(gd / "sft_tasks" / task / test_file, test_ids, f"{task} test")
        half = n_train // 2 if n_train == 400 else n_train
        for s in seeds:
            name = NAME.format(task=task, bs=4, shot=200, sample=12, lr=lr, epoch=3, loss=loss, seed=s)
            log = "progress" if (task, s) == ("rte", 20) else "no-lr" if (task, s) == ("rte", 21) else None
            _run(root / "runs" / task / name, rng, np.arange(half), FT_STEPS, {m: list(test_ids) for m in metrics}, float(lr), log)
        if task in ("rte", "webnlg"):  # out-of-distribution runs: the second half of the example file
            for s in (1, 2, 3):
                name = NAME.format(task=f"{task}-ood", bs=4, shot=200, sample=12, lr=lr, epoch=3, loss=loss, seed=s)
                _run(root / "runs" / task / name, rng, np.arange(200, 400), FT_STEPS, {m: list(test_ids) for m in metrics}, float(lr))
    # SST-2's mislabelled-debug files, beside its real ones, and their own runs.
    flipped = set(rng.choice(128, 51, replace=False).tolist())
    _examples(gd / "sft_tasks" / "sst2" / DEBUG[0], range(128), "sst2 debug train", flipped)
    _examples(gd / "sft_tasks" / "sst2" / DEBUG[1], range(128), "sst2 debug eval")
    for s in range(8):
        name = NAME.format(task="sst2-dataset-debug-is-mislabelled", bs=4, shot=128, sample=128, lr="1e-06", epoch=1, loss="_loss-output-token", seed=s)
        _run(root / "runs" / "dataset_debug_sst2" / name, rng, np.arange(128), FT_STEPS, {"loss": list(range(128))}, 1e-6)
    # FLAN: one test-id space; BLEU and ROUGE-L cover WebNLG and WMT16 (677-1054) only.
    _examples(gd / "it_tasks" / "flan_train_0_1599.json", range(1600), "flan train")
    _examples(gd / "it_tasks" / "flan_eval_0_1054.json", range(1055), "flan test")
    for s in range(1, 13):
        name = NAME.format(task="flan", bs=8, shot=200, sample=128, lr="2e-7", epoch=3, loss="_loss-output-token", seed=s)
        metrics = {"loss": list(range(1055)), "bleu": list(range(677, 1055)), "rougeL": list(range(677, 1055))}
        _run(root / "runs" / "flan" / name, rng, np.arange(768), FLAN_STEPS, metrics, 2e-7)
    # runs/flan_ood: fine-tuning runs on out-of-distribution WebNLG data, evaluated on FLAN's WebNLG ids.
    for s in (1, 2, 3):
        name = NAME.format(task="webnlg-ood", bs=4, shot=200, sample=128, lr="1e-6", epoch=3, loss="_loss-output-token", seed=s)
        _run(root / "runs" / "flan_ood" / name, rng, 1200 + np.arange(200), FLAN_OOD_STEPS, {"loss": list(range(677, 855))}, 1e-6)
    if broken:
        run = sorted((root / "runs" / BROKEN_TASK).iterdir())[0]
        lines = (run / "all_loss_trajectory.out").read_text().splitlines()
        lines[1] = '{"id": 1, "loss_trajectory": [{"step": 1, "loss": '
        (run / "all_loss_trajectory.out").write_text("\n".join(lines) + "\n")
    return root
