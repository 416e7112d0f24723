"""The recorder: tdabench record writes a benchmark that tdabench run evaluates, resumably."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recorded import recorded_files
from tdabench.cli import main
from tdabench.formats.gptdynamics_load import load_benchmarks
from tdabench.recorder import record as record_mod
from tdabench.methods.lm import encode, evaluate, per_example_loss
from tdabench.recorder.models import load_model
from tdabench.recorder.record import RecordSpec, record
from tdabench.recorder.tasks import builtin_task
from tdabench.recorder.train import Schedule, plan_batches

TINY = ["--model", "neox-0.2m", "--sample", "8", "--batch-size", "4", "--epochs", "1", "--n-test", "16", "--no-progress"]


def tiny_spec(runs: int = 3, **kw: object) -> RecordSpec:
    """Smallest model, 2 steps per run, one unseen-train run."""
    return RecordSpec(model="neox-0.2m", task="sentiment", runs=runs, unseen_runs=1,
                      schedule=Schedule(lr=3e-3, batch_size=4, epochs=1, sample=8), n_test=16, **kw)  # type: ignore[arg-type]


def _files(root: Path) -> dict[str, bytes]:
    return recorded_files(root, manifest=False)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tdabench record --runs 2`` on the smallest model and a tiny slice, with checkpoints."""
    out = tmp_path_factory.mktemp("rec") / "bench"
    rc = main(["record", *TINY, "--task", "wmt", "--runs", "2", "--unseen-runs", "1", "--metric-every", "2",
               "--checkpoint-every", "1", "--checkpoint-runs", "all", "--out", str(out)])
    assert rc == 0
    return out


def test_record_then_run(recorded: Path, tmp_path: Path) -> None:
    rc = main(["run", "--benchmark", str(recorded), "--method", "mean-trajectory", "--out", str(tmp_path / "res"), "--no-progress", "--json"])
    assert rc == 0
    results = list((tmp_path / "res").rglob("*.json"))
    assert results, "tdabench run wrote no results"
    bench = load_benchmarks(recorded)[0]
    assert bench.id == "recorded/ft/neox-0.2m/wmt"
    assert bench.trajectories == ("loss", "bleu", "rougeL")
    assert bench.split.unseen_train_runs and bench.split.heldout_test_ids
    assert bench.model is not None and (bench.model.base_model / "config.json").is_file()
    # --checkpoint-runs all: every run saves checkpoints at every step...
    eval_run = bench.split.eval_runs[0]
    assert sorted(bench.model.checkpoints[eval_run]) == [1, 2] and bench.split.fit_runs[0] in bench.model.checkpoints
    # ...but a method is handed only the fit and validation runs' (an evaluation run's weights
    # would reproduce its trajectories).
    from tdabench.run.views import fit_data

    seen = fit_data(bench, "loss", seed=0, with_model=True, cache_dir=None, device="cpu").model
    assert seen is not None and set(seen.checkpoints) == set(bench.split.fit_runs + bench.split.validation_runs) & set(bench.model.checkpoints)
    assert eval_run not in seen.checkpoints


def test_layout_read_with_plain_json(recorded: Path) -> None:
    """Field by field as in the GPTDynamics reference description."""
    run_dirs = sorted((recorded / "runs" / "wmt").iterdir())
    assert len(run_dirs) == 3
    for rd in run_dirs:
        assert rd.name.startswith("output_wmt_bs-4_shot-200_sample-8_model-neox-0.2m_lr-0.001")
        assert rd.name.endswith(("_seed-0", "_seed-1", "_seed-1000"))
        batches = [json.loads(line) for line in (rd / "train_samples_id.json").read_text().splitlines()]
        assert [b["step"] for b in batches] == [1, 2]
        assert all(len(b["samples_id"]) == 4 and all(isinstance(i, int) for i in b["samples_id"]) for b in batches)
        assert len({i for b in batches for i in b["samples_id"]}) == 8  # 8 distinct examples, one epoch
        lines = [json.loads(line) for line in (rd / "all_loss_trajectory.out").read_text().splitlines()]
        assert len(lines) == 16 and sorted(d["id"] for d in lines) == list(range(16))
        for d in lines:
            assert [e["step"] for e in d["loss_trajectory"]] == [0, 1, 2]
            assert all(isinstance(e["loss"], float) and e["loss"] > 0 for e in d["loss_trajectory"])
        for metric, hi in (("bleu", 100.0), ("rougeL", 1.0)):
            rows = [json.loads(line) for line in (rd / f"all_{metric}_trajectory.out").read_text().splitlines()]
            vals = [e["loss"] for d in rows for e in d["loss_trajectory"]]
            assert len(rows) == 16 and all(0.0 <= v <= hi for v in vals)
            assert [e["step"] for e in rows[0]["loss_trajectory"]] == [0, 2]
        log = (rd / "log.out").read_text().splitlines()
        assert len(log) == 2 and "'lr': 0.001" in log[0]
    train_file = recorded / "gptdynamics" / "sft_tasks" / "wmt" / "wmt_train_0-399.json"
    test_file = recorded / "gptdynamics" / "sft_tasks" / "wmt" / "wmt_validation_0-15.json"
    for f, n in ((train_file, 400), (test_file, 16)):
        exs = [json.loads(line) for line in f.read_text().splitlines()]
        assert len(exs) == n and [e["id"] for e in exs] == list(range(n))
        assert all(e["input"].startswith(e["context"]) and e["context"].endswith("Answer:") for e in exs)
    manifest = json.loads((recorded / "tdabench.json").read_text())
    assert manifest["id"] == "recorded/ft/neox-0.2m/wmt"
    assert manifest["meta"]["loss_type"] == "output-tokens" and manifest["meta"]["setting"] == "ft"
    split = manifest["split"]
    assert len(split["fit_runs"]) == 1 and len(split["eval_runs"]) == 1 and len(split["unseen_train_runs"]) == 1
    assert manifest["model"]["base_model"] == "model"
    assert all((recorded / p).is_file() for steps in manifest["model"]["checkpoints"].values() for p in steps.values())


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted tiny recording."""
    return record(tiny_spec(runs=2), tmp_path_factory.mktemp("clean") / "bench", progress=False)


def test_same_seed_same_batches_and_losses(clean: Path, tmp_path: Path) -> None:
    b = record(tiny_spec(runs=2), tmp_path / "b", progress=False)
    assert _files(clean) == _files(b)
    task = builtin_task("sentiment")
    sched = Schedule(lr=1e-3, sample=128)
    assert np.array_equal(plan_batches(task.pool_a, sched, 5), plan_batches(task.pool_a, sched, 5))
    assert not np.array_equal(plan_batches(task.pool_a, sched, 5), plan_batches(task.pool_a, sched, 6))


def test_resume_after_kill(clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real_write = record_mod.write_run

    def dying_write(run_dir: Path, run: object, test_ids: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # killed while writing the second run: half its files exist
            (run_dir).mkdir(parents=True, exist_ok=True)
            (run_dir / "train_samples_id.json").write_text("{\"step\": 1")
            raise KeyboardInterrupt
        real_write(run_dir, run, test_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(record_mod, "write_run", dying_write)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        record(tiny_spec(runs=2), out, progress=False)
    done = sorted(p.name for p in (out / "runs" / "sentiment").iterdir())
    assert len(done) == 1 and not (out / "tdabench.json").exists()
    first_bytes = (out / "runs" / "sentiment" / done[0] / "all_loss_trajectory.out").stat().st_mtime_ns
    monkeypatch.setattr(record_mod, "write_run", real_write)
    record(tiny_spec(runs=2), out, progress=False)
    assert (out / "runs" / "sentiment" / done[0] / "all_loss_trajectory.out").stat().st_mtime_ns == first_bytes  # not redone
    assert _files(out) == _files(clean)  # nothing lost, nothing twice
    assert not (out / ".partial").exists()
    with pytest.raises(Exception, match="other settings"):
        record(tiny_spec(runs=2, seed=3), out, progress=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "sentimental"], "unknown task 'sentimental'"),
        (["--task", "sentiment", "--model", "neox-9m"], "unknown model 'neox-9m'"),
        (["--task", "missing/file.jsonl"], "file not found"),
        (["--task", "sentiment", "--sample", "500"], "larger than the training pool"),
        (["--task", "sentiment", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_bad_arguments_one_line(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["record", *TINY, "--runs", "2", "--out", str(tmp_path / "o"), *args]
    if "--model" in args:  # the later --model wins
        argv = ["record", "--no-progress", "--runs", "2", "--out", str(tmp_path / "o"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_bf16_loss_error_below_1e3() -> None:
    """bf16 autocast of the body (head and cross-entropy in float32) vs float32, on a base checkpoint."""
    loaded = load_model("neox-1m")
    for name in ("webnlg", "entailment"):
        task = builtin_task(name)
        enc = encode(loaded.tokenizer, task.test.prompts[:64], task.test.targets[:64], task.loss_type)
        diff = np.abs(evaluate(loaded.model, enc, bf16=True) - evaluate(loaded.model, enc, bf16=False))
        assert diff.mean() < 1e-3, (name, diff.mean(), diff.max())


def test_evaluate_matches_per_example_loss_and_masks() -> None:
    loaded = load_model("neox-0.2m")
    tok = loaded.tokenizer
    prompts, targets = ["Translate to English:\nDer Hund sieht das Haus.\nAnswer:", "Review: dull.\nAnswer:"], [" The dog sees the house.", " negative"]
    for loss_type in ("output-tokens", "last-token", "whole-sequence"):
        enc = encode(tok, prompts, targets, loss_type)
        with torch.no_grad():
            ref = per_example_loss(loaded.model.eval(), enc).double().numpy()
        assert np.allclose(evaluate(loaded.model, enc, bf16=False), ref, atol=1e-5)
    n_target = len(tok(targets[0], add_special_tokens=False)["input_ids"])
    assert encode(tok, prompts, targets, "output-tokens").loss_mask[0].sum() == n_target + 1  # target + EOS
    assert encode(tok, prompts, targets, "last-token").loss_mask.sum(1).tolist() == [1.0, 1.0]
    single = evaluate(loaded.model, encode(tok, prompts[1:], targets[1:], "output-tokens"), bf16=False)
    batched = evaluate(loaded.model, encode(tok, prompts, targets, "output-tokens"), bf16=False)
    assert abs(single[0] - batched[1]) < 1e-5  # padding does not change a loss


def test_replay_regenerates_checkpoints(recorded: Path, tmp_path: Path) -> None:
    """Replaying an evaluation run's batches from the base model gives its recorded checkpoints back."""
    import shutil

    from safetensors.torch import load_file

    from tdabench.recorder.replay import replay

    root = Path(shutil.copytree(recorded, tmp_path / "copy"))
    run = load_benchmarks(root)[0].split.eval_runs[0]
    recorded_ckpts = {s: load_file(str(p)) for s, p in load_benchmarks(recorded)[0].model.checkpoints[run].items()}  # type: ignore[union-attr]
    shutil.rmtree(root / "checkpoints")
    out = replay(root, run, every=1)
    assert sorted(out.checkpoints) == sorted(recorded_ckpts) == [1, 2]
    assert out.max_abs_error < 1e-3  # final test losses match the recorded trajectory
    for step, path in out.checkpoints.items():
        new = load_file(str(path))
        assert all(torch.allclose(new[k], recorded_ckpts[step][k], atol=1e-6) for k in new)
    bench = load_benchmarks(root)[0]
    assert bench.model is not None and sorted(bench.model.checkpoints[run]) == [1, 2]


def test_file_and_datasets_tasks(tmp_path: Path) -> None:
    """A JSON Lines file and a datasets folder become tasks with disjoint pools and a test set."""
    import datasets

    from tdabench.recorder.tasks import load_task, write_task_jsonl

    src = builtin_task("wmt").train.subset(np.arange(60))
    path = tmp_path / "my_task.jsonl"
    write_task_jsonl(path, src)
    task = load_task(str(path), n_test=10, shot=30)
    assert task.name == "my-task" and len(task.test) == 10 and list(task.test.ids) == list(range(50, 60))
    assert len(task.pool_a) == 30 and len(task.pool_b) == 20 and not set(task.pool_a) & set(task.pool_b)
    assert task.train.targets[0] == src.targets[0] and task.train.targets[0].startswith(" ")
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"prompt": list(src.prompts[:40]), "completion": list(src.targets[:40])}),
        "test": datasets.Dataset.from_dict({"prompt": list(src.prompts[40:]), "completion": list(src.targets[40:])}),
    })
    dd.save_to_disk(str(tmp_path / "ds"))
    task = load_task(str(tmp_path / "ds"))
    assert len(task.train) == 40 and len(task.test) == 20 and task.test.texts[0] == src.texts[40]


def test_local_model_directory(recorded: Path) -> None:
    """Any causal-LM directory loads (here the base model a recording saved), tokenizer included."""
    from tdabench.recorder.models import n_params

    local = load_model(str(recorded / "model"))
    builtin = load_model("neox-0.2m")
    assert local.name == "model" and n_params(local.model) == n_params(builtin.model) == 210240
    a, b = local.model.state_dict(), builtin.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert local.tokenizer("Answer: yes")["input_ids"] == builtin.tokenizer("Answer: yes")["input_ids"]
