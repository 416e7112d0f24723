"""``retrain``: the reference at the top of both axes: train the benchmark's own model again on each
query run's batches, with the benchmark's own recipe, and observe the test examples.

It is what every simulator approximates: exact (up to floating point) where the recording is
deterministic, and as expensive as recording. It is shown beside the methods, never ranked
(``Capabilities.reference``), and on the bank it checks determinism on every evaluation run:
its error is the disagreement between a recorded run and the same run trained again.

It needs a benchmark recorded by ``tdabench record`` (the bank included): the base model and the
recording's ``record.json`` beside it; elsewhere (GPTDynamics copies) it cannot be fitted and its
cells fail with that reason. Loss trajectories only (BLEU and ROUGE-L would need generation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdabench import Capabilities, FitData, MethodSpec, NoConfig, Query, hookimpl, torch_threads


@dataclass
class Retrain:
    """Trains the benchmark's base model on every query run (one thread, as the bank was recorded)."""

    config: NoConfig

    def fit(self, data: FitData) -> Retrain:
        from tdabench.recorder.retrain import Trainer
        from tdabench.recorder.train import read_schedule

        if data.model is None or data.model.base_model is None:
            raise ValueError("retraining needs the benchmark's base model; this benchmark ships none")
        recipe = Path(data.model.base_model).parent / "record.json"
        if not recipe.is_file():
            raise ValueError("retraining needs the recording's record.json (benchmarks recorded by `tdabench record` have it)")
        self.trainer_ = Trainer(Path(data.model.base_model), read_schedule(recipe), data.model.loss_type, data.train)
        self.device_ = data.device
        return self

    def simulate(self, query: Query) -> np.ndarray:
        from tdabench.recorder.retrain import Trainer, observe

        trainer = Trainer(self.trainer_.base_model, self.trainer_.schedule, self.trainer_.loss_type, query.train)
        out = np.empty(query.shape)
        with torch_threads(1):  # the bank's workers recorded on one thread each: the same sums, the same runs
            for r in range(len(query.runs)):
                out[r] = observe(trainer, query.runs.batches[r], query.test, query.runs.steps, device=self.device_)
        out[:, :, 0] = query.initial  # the recorded initial values, exactly (the base model's own)
        return out


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """The retraining reference."""
    return [MethodSpec(
        name="retrain",
        factory=Retrain,
        capabilities=Capabilities(unseen_test=True, unseen_train=True, text_trajectories=False, needs_checkpoints=True,
                                  needs_text=True, any_length=True, reference=True),
        version="1",
        summary="reference, never ranked: the benchmark's own model trained again on each run (its cost is retraining's)",
    )]
