"""What a recorded benchmark's runs look like: the bank's targets, measured.

A benchmark is worth ranking methods on only if its runs look like fine-tuning (docs/benchmarks.md,
"Recording protocol"). Measured on the fit runs' mean test loss trajectory (mean over runs
and test examples, per step):

* **no transient**: at no step does it exceed its step-0 value by more than 5%;
* **learning** (fine-tuning benchmarks): it ends at most 0.7x its step-0 value;
* and, beside them, the accuracy of the label answer (two-label tasks) and BLEU / ROUGE-L
  (generation tasks) at step 0 and at the end.

The recorder writes each run's label accuracy at both ends and its recording time (training and observing) into
``run_summary.json`` in the run directory (:func:`write_summary`); :func:`summarize` reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.formats.jsonl import atomic_write_text

#: The mean test loss may exceed its step-0 value by at most this factor at any step.
TRANSIENT_LIMIT = 1.05
#: A fine-tuning benchmark's mean test loss must end at most this factor of its step-0 value.
LEARNING_LIMIT = 0.7
SUMMARY_FILE = "run_summary.json"


@dataclass(frozen=True)
class LabelChoices:
    """The test examples of two-label tasks, each paired with the label it does not have.

    Attributes:
        groups: group (a mixture's task, or the task) -> row positions in the test set.
        other_targets: per test example, the other label (``None`` where not a two-label task).
    """

    groups: Mapping[str, np.ndarray]
    other_targets: tuple[str | None, ...]


def label_choices(targets: Sequence[str], groups: Mapping[str, Sequence[int]] | None, ids: np.ndarray) -> LabelChoices | None:
    """Pair each test example of a two-label group with its other label; ``None`` if no group has two labels.

    ``groups`` maps a group name to test ids (a mixture's tasks); without groups the whole
    test set is one group.
    """
    pos = {int(i): k for k, i in enumerate(np.asarray(ids).tolist())}
    by_group = {g: np.array([pos[int(i)] for i in members if int(i) in pos], dtype=np.int64) for g, members in groups.items()} \
        if groups else {"all": np.arange(len(targets), dtype=np.int64)}
    other: list[str | None] = [None] * len(targets)
    kept: dict[str, np.ndarray] = {}
    for g, rows in by_group.items():
        labels = sorted({targets[r] for r in rows})
        if len(labels) != 2:
            continue
        swap = {labels[0]: labels[1], labels[1]: labels[0]}
        for r in rows:
            other[r] = swap[targets[r]]
        kept[g] = rows
    return LabelChoices(kept, tuple(other)) if kept else None


def accuracy(right: np.ndarray, wrong: np.ndarray, choices: LabelChoices) -> dict[str, float]:
    """group -> share of its examples whose true label's loss is below the other label's.

    ``right`` [n] the losses of the true targets; ``wrong`` [n] those of ``choices.other_targets``
    (any value where there is none).
    """
    return {g: round(float(np.mean(right[rows] < wrong[rows])), 6) for g, rows in choices.groups.items()}


def write_summary(run_dir: Path, *, run_seconds: float, label_accuracy: Mapping[str, Sequence[float]] | None,
                  text_scores: Mapping[str, Sequence[float]] | None = None, steps: Sequence[int]) -> None:
    """``run_summary.json``: the run's recording time (training and observing), its label accuracy
    at ``steps`` per group, and mean BLEU / ROUGE-L at ``steps`` where no trajectory records them."""
    obj: dict[str, object] = {"run_seconds": round(float(run_seconds), 3)}
    if label_accuracy:
        obj["label_accuracy"] = {"steps": [int(s) for s in steps], **{g: [float(a) for a in v] for g, v in label_accuracy.items()}}
    if text_scores:
        obj["text_scores"] = {"steps": [int(s) for s in steps], **{m: [float(a) for a in v] for m, v in text_scores.items()}}
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(obj, indent=1) + "\n")


@dataclass(frozen=True)
class CurveProperties:
    """The bank's targets on one mean test trajectory (loss).

    Attributes:
        start: the mean test loss at step 0.
        step1_over_step0, max_over_step0, final_over_step0: ratios to it.
        no_transient: ``max_over_step0 <= TRANSIENT_LIMIT``.
        learned: ``final_over_step0 <= LEARNING_LIMIT``.
    """

    start: float
    step1_over_step0: float
    max_over_step0: float
    final_over_step0: float
    no_transient: bool
    learned: bool

    def as_dict(self) -> dict[str, float | bool]:
        """Rounded, for index.json and JSON output."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def curve_properties(loss: np.ndarray) -> CurveProperties:
    """The targets on ``loss`` [runs, test examples, steps] (step 0 first), averaged per step."""
    mean = np.asarray(loss, dtype=np.float64).mean(axis=(0, 1))
    s0 = float(mean[0])
    ratio = mean / s0
    return CurveProperties(s0, float(ratio[1]) if len(ratio) > 1 else 1.0, float(ratio.max()), float(ratio[-1]),
                           bool(ratio.max() <= TRANSIENT_LIMIT), bool(ratio[-1] <= LEARNING_LIMIT))


def fit_curve(loss: np.ndarray, steps: Sequence[int]) -> dict[str, list[float]]:
    """The fit runs' test trajectories at a glance, from ``loss`` [runs, test examples, steps]:
    per step, the mean over runs of each run's mean test loss and the runs' 10th and 90th percentiles."""
    per_run = np.asarray(loss, dtype=np.float64).mean(axis=1)  # [R, K]: each run's mean test loss
    return {"steps": [int(s) for s in steps], "mean": np.round(per_run.mean(axis=0), 5).tolist(),
            "p10": np.round(np.percentile(per_run, 10, axis=0), 5).tolist(), "p90": np.round(np.percentile(per_run, 90, axis=0), 5).tolist()}


def summarize(run_dirs: Sequence[Path]) -> dict[str, object]:
    """Mean training seconds per run and mean label accuracy per group at both ends, over ``run_dirs``
    (runs recorded before summaries existed are skipped)."""
    secs: list[float] = []
    parts: dict[str, dict[str, list[object]]] = {"label_accuracy": {}, "text_scores": {}}
    steps: dict[str, list[int]] = {}
    for d in run_dirs:
        f = Path(d) / SUMMARY_FILE
        if not f.is_file():
            continue
        obj = json.loads(f.read_text(encoding="utf-8"))
        secs.append(float(obj["run_seconds"]))
        for part, acc in parts.items():
            la = dict(obj.get(part, {}))
            if "steps" in la:
                steps[part] = [int(s) for s in la.pop("steps")]
            for g, v in la.items():
                acc.setdefault(g, []).append(v)
    out: dict[str, object] = {}
    if secs:
        out["run_seconds_per_run"] = round(float(np.mean(secs)), 2)
    for part, acc in parts.items():
        if acc:
            out[part] = {"steps": steps[part], **{g: [round(float(x), 4) for x in np.mean(np.asarray(v, dtype=float), axis=0)] for g, v in acc.items()}}
    return out


def describe_properties(props: Mapping[str, Any]) -> list[str]:
    """A benchmark's measured properties (an index entry's), one line each, for ``tdabench list benchmarks -v``."""
    out = []
    t = props.get("targets")
    if isinstance(t, Mapping):
        learned = f", final {t['final_over_step0']:.2f}x ({'learned' if t['learned'] else 'not learned'}: target <= {LEARNING_LIMIT}x)"
        out.append(f"mean test loss {t['start']:.3f} at step 0; step 1 {t['step1_over_step0']:.2f}x, max {t['max_over_step0']:.2f}x "
                   f"({'no transient' if t['no_transient'] else 'transient'}: target <= {TRANSIENT_LIMIT}x){learned}")
    for key, name in (("label_accuracy", "label accuracy"), ("text_scores", "BLEU / ROUGE-L")):
        part = props.get(key)
        if isinstance(part, Mapping):
            steps = part.get("steps", [])
            vals = "; ".join(f"{g} {v[0]:.3g} -> {v[1]:.3g}" for g, v in part.items() if g != "steps")
            out.append(f"{name} at steps {steps[0]} and {steps[-1]}: {vals}" if steps else f"{name}: {vals}")
    h = props.get("headroom")
    if isinstance(h, Mapping) and h.get("reference_over_constant") is not None:
        out.append(f"headroom: the zero line leaves {h['reference_over_constant']:.2f} of the evaluation runs' squared movement "
                   f"(zero line mse {h['mse_reference']:.4g}, constant {h['mse_constant']:.4g})")
    if props.get("run_seconds_per_run") is not None:
        out.append(f"recording one run took {props['run_seconds_per_run']:.1f} s here (training and observing every step)")
    if props.get("not_ranked"):
        out.append(f"not ranked in the tier summaries: {props['not_ranked']}")
    return out
