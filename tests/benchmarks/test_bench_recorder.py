"""Recorder throughput: steps per second of the 1M model with 128 test examples.

A recorder step is one training step plus the loss of every test example. The batched
evaluation (one padded forward pass, inference mode, masked head) is compared with a plain
loop that evaluates one example at a time, in the same process:

    python -m pytest tests/benchmarks/test_bench_recorder.py --benchmark-only
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from tdabench.methods.lm import encode, evaluate, per_example_loss
from tdabench.recorder.models import load_model
from tdabench.recorder.tasks import builtin_task
from tdabench.recorder.train import Schedule, plan_batches, train


@pytest.fixture(scope="module")
def setup() -> object:
    # One thread: the machine is shared, and two threads on a loaded 2-core box measure contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loaded = load_model("neox-1m")
    task = builtin_task("sentiment")
    tok = loaded.tokenizer
    train_enc = encode(tok, task.train.prompts, task.train.targets, task.loss_type)
    test_enc = encode(tok, task.test.prompts, task.test.targets, task.loss_type)
    assert len(test_enc) == 128
    rows = task.train.positions(plan_batches(task.pool_a, Schedule(lr=3e-3), 0))
    yield {"model": loaded.model, "train": train_enc, "test": test_enc, "rows": rows}
    torch.set_num_threads(threads)


def _recorder_steps(s: dict[str, object], n: int) -> None:
    """n training steps, each followed by the batched evaluation of all test examples."""
    sched = Schedule(lr=3e-3, epochs=1, sample=4 * n)
    train(s["model"], s["train"], s["rows"][:n], sched, lambda t, m, _l: evaluate(m, s["test"], bf16=False))  # type: ignore[arg-type,index]


def _plain_steps(s: dict[str, object], n: int) -> None:
    """The same steps, evaluating test examples one at a time with a plain forward pass."""
    test = s["test"]

    def one_by_one(t: int, m: torch.nn.Module, _l: float) -> None:
        m.eval()
        with torch.no_grad():
            [float(per_example_loss(m, test.rows([i]))) for i in range(len(test))]  # type: ignore[attr-defined]
        m.train()

    sched = Schedule(lr=3e-3, epochs=1, sample=4 * n)
    train(s["model"], s["train"], s["rows"][:n], sched, one_by_one)  # type: ignore[arg-type,index]


def test_recorder_steps_per_second(benchmark: object, setup: dict[str, object]) -> None:
    n = 8
    benchmark.pedantic(_recorder_steps, args=(setup, n), rounds=3, iterations=1, warmup_rounds=1)  # type: ignore[attr-defined]
    batched_s = float(np.median(benchmark.stats.stats.data)) / n  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    _plain_steps(setup, 2)
    plain_s = (time.perf_counter() - t0) / 2
    benchmark.extra_info.update({  # type: ignore[attr-defined]
        "recorder_steps_per_s": round(1 / batched_s, 2),
        "plain_loop_steps_per_s": round(1 / plain_s, 3),
        "speedup_vs_plain_loop": round(plain_s / batched_s, 1),
    })
    print(f"\nrecorder: {1 / batched_s:.2f} steps/s; plain one-example loop: {1 / plain_s:.3f} steps/s; ratio {plain_s / batched_s:.1f}x")
    assert plain_s > batched_s


def test_bank_recording_time(benchmark: object, tmp_path: object) -> None:
    """Time to record the whole bank with ``--jobs 2``, from 2 real runs of every benchmark.

    Each bank entry is recorded with its own settings (model, task, lr, BLEU / ROUGE-L every
    8 steps) but 2 runs instead of 35, on 2 local processes; the full bank's time is the
    measured time scaled by 35 / 2 (runs are independent and alike, so the time is linear in
    them; the start-up of the worker processes is scaled too, so this is an upper bound).
    Target: under 90 minutes.
    """
    import dataclasses
    import importlib.util
    import sys
    from pathlib import Path

    from tdabench.run.pool import WorkerPool
    from tdabench.recorder.record import record

    path = Path(__file__).resolve().parents[2] / "scripts" / "record_bank.py"
    spec = importlib.util.spec_from_file_location("record_bank", path)
    bank = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["record_bank"] = bank  # its dataclasses look their module up there
    spec.loader.exec_module(bank)  # type: ignore[union-attr]
    per_entry: dict[str, float] = {}

    def record_all() -> None:
        for e in bank.BANK:
            t0 = time.perf_counter()
            record(dataclasses.replace(bank.spec_of(e), runs=2, unseen_runs=0), Path(str(tmp_path)) / e.name,
                   progress=False, executor=WorkerPool(2))
            per_entry[e.name] = time.perf_counter() - t0

    benchmark.pedantic(record_all, rounds=1, iterations=1)  # type: ignore[attr-defined]
    runs = 35  # 32 on pool A + 3 on pool B
    estimate_min = sum(per_entry.values()) * runs / 2 / 60
    benchmark.extra_info.update({"seconds_for_2_runs": {k: round(v, 1) for k, v in per_entry.items()},  # type: ignore[attr-defined]
                                 "full_bank_minutes_jobs2": round(estimate_min, 1)})
    print("\n" + "\n".join(f"{k}: {v:.1f} s for 2 runs" for k, v in per_entry.items()))
    print(f"whole bank ({len(per_entry)} benchmarks x {runs} runs) with --jobs 2: about {estimate_min:.0f} min (target 90)")
