"""Results that cannot lie, files that cannot escape, failures that stay contained (probe plugins)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes import probe_source
from tdabench.cli import main
from tdabench.results.record import read_result, read_results, result_path

PROBES = probe_source(
    '''
    class Overflow(Hold):
        """Predicts 1e200 for half the test examples: finite, but its squared errors overflow."""
        def simulate(self, query):
            out = super().simulate(query)
            out[:, : query.shape[1] // 2, 1:] = 1e200
            return out

    class Quit(Hold):
        def fit(self, data):
            sys.exit(3)

    class Crash(Hold):
        def simulate(self, query):
            os._exit(7)

    class Sleep(Hold):
        def fit(self, data):
            time.sleep(float(os.environ.get("PROBE_SLEEP", "60")))
            return self

    class Peek(Hold):
        """Looks for the truth: up the call stack, and through every object the process holds."""
        def simulate(self, query):
            found = {"frames_with_truth": 0, "benchmarks": 0, "split_views": 0}
            for frame in inspect.stack():
                if "truth" in frame.frame.f_locals or "view" in frame.frame.f_locals:
                    found["frames_with_truth"] += 1
            for obj in gc.get_objects():
                kind = type(obj).__name__
                if kind == "Benchmark":
                    found["benchmarks"] += 1
                elif kind == "SplitView":
                    found["split_views"] += 1
            with open(os.environ["PROBE_LOG"], "a") as fh:
                fh.write(json.dumps(found) + "\\n")
            return super().simulate(query)

    class Counted(Hold):
        """Logs every fit, slowly, so that two runs on one --out overlap."""
        def fit(self, data):
            with open(os.environ["PROBE_LOG"], "a") as fh:
                fh.write(f"fit {data.test.ids.size}\\n")
            time.sleep(0.5)
            return self

    @hookimpl
    def tdabench_methods():
        caps = Capabilities(unseen_test=True, unseen_train=True)
        return [MethodSpec(n, c, capabilities=caps) for n, c in
                [("overflow", Overflow), ("quit", Quit), ("crash", Crash), ("sleep", Sleep), ("peek", Peek), ("counted", Counted)]]
    '''
)


@pytest.fixture
def probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "probe_methods.py").write_text(PROBES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PROBE_LOG", str(tmp_path / "probe.log"))
    yield "probe_methods"
    sys.modules.pop("probe_methods", None)


def _run(bench: Path, out: Path, plugin: str | None, *methods: str, extra: tuple[str, ...] = ()) -> int:
    argv = ["run", "--benchmark", str(bench), "--out", str(out), *(["-p", plugin] if plugin else []), "--no-progress", "--split", "seen", *extra]
    for m in methods:
        argv += ["--method", m]
    return main(argv)


def test_overflow_fails_its_cell_with_the_count(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    assert _run(synthetic_dir, tmp_path / "r", probes, "overflow", "constant") == 1
    cells = {r.method: r for r in read_results(tmp_path / "r")}
    assert cells["overflow"].status == "failed" and not cells["overflow"].scores
    assert "the errors of 75 of 150 predicted trajectories are not finite numbers" in cells["overflow"].error
    assert cells["constant"].status == "ok" and cells["constant"].scores["mse_all_steps"].n == 150


def test_sys_exit_and_a_dying_worker_fail_only_their_own_cells(synthetic_dir: Path, tmp_path: Path, probes: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(synthetic_dir, tmp_path / "r", probes, "quit", "crash", "constant") == 1
    cells = {r.method: r for r in read_results(tmp_path / "r")}
    assert cells["quit"].error.startswith("fit: SystemExit: 3")
    assert "worker lost (exit code 7)" in cells["crash"].error
    assert cells["constant"].status == "ok"
    assert "2 cell(s) failed" in capsys.readouterr().err


def test_a_unit_past_its_timeout_is_ended(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    t0 = time.monotonic()
    assert _run(synthetic_dir, tmp_path / "r", probes, "sleep", "constant", extra=("--timeout", "2")) == 1
    assert time.monotonic() - t0 < 30
    cells = {r.method: r for r in read_results(tmp_path / "r")}
    assert cells["sleep"].error == "timed out after 2 s (--timeout)" and cells["constant"].status == "ok"


def test_a_method_cannot_reach_the_truth(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    assert _run(synthetic_dir, tmp_path / "r", probes, "peek") == 0
    found = [json.loads(line) for line in (tmp_path / "probe.log").read_text().splitlines()]
    assert found and all(f == {"frames_with_truth": 0, "benchmarks": 0, "split_views": 0} for f in found)


def test_every_part_of_the_key_is_in_the_path(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert _run(synthetic_dir, out, None, "constant") == 0
    assert _run(synthetic_dir, out, None, "constant", extra=("--seed", "1")) == 0
    seeds = sorted(r.seed for r in read_results(out))
    assert seeds == [0, 1]  # --seed 1 wrote beside seed 0
    cfg = tmp_path / "labels.toml"
    cfg.write_text('[[methods]]\nname = "constant"\nlabel = "sl:a"\n\n[[methods]]\nname = "constant"\nlabel = "sl_a"\n')
    assert main(["run", "--benchmark", str(synthetic_dir), "--config", str(cfg), "--out", str(out), "--split", "seen", "--no-progress"]) == 0
    labels = {r.method for r in read_results(out)}
    assert {"sl:a", "sl_a"} <= labels
    paths = {result_path(out, r.benchmark, r.trajectory, r.split, r.method, r.seed) for r in read_results(out)}
    assert all(p.resolve().is_relative_to(out.resolve()) for p in paths)
    cfg.write_text('[[methods]]\nname = "constant"\nlabel = "Case"\n\n[[methods]]\nname = "constant"\nlabel = "case"\n')
    capsys.readouterr()
    assert main(["run", "--benchmark", str(synthetic_dir), "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    assert "would write the same result files" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--trajectory", "los"], "unknown trajectory 'los'; did you mean 'loss'?"),
    (["--trajectory", "../../../x"], "unknown trajectory '../../../x'"),
    (["--method", "constant:x=1"], "has no option 'x'"),
])
def test_bad_names_are_refused_before_any_work(argv: list[str], message: str, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(tmp_path / "r"), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list((tmp_path / "r").rglob("*.json"))


def test_a_manifest_id_cannot_leave_out(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = synthetic_dir / "tdabench.json"
    obj = json.loads(manifest.read_text())
    obj["id"] = ".."
    manifest.write_text(json.dumps(obj))
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(tmp_path / "out" / "r"), "--method", "constant", "--no-progress"]) == 2
    assert "'..' cannot name a result file" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("*.json") if "out" in p.parts and "r" not in p.parts]


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_out_is_checked_before_any_work(kind: str, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("not a folder")
    out = tmp_path / "out" if kind == "file" else tmp_path / "out" / "results"  # (a folder nobody can create)
    t0 = time.monotonic()
    code = main(["run", "--benchmark", str(synthetic_dir), "--out", str(out), "--no-progress"])
    assert code == 2 and time.monotonic() - t0 < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and ("is a file" in err[0] or "not writable" in err[0])


@pytest.mark.parametrize("damage", ["binary", "array", "npz-missing", "npz-broken"])
def test_unreadable_results_are_recomputed_and_named(damage: str, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    argv = ["run", "--benchmark", str(synthetic_dir), "--out", str(out), "--method", "constant", "--method", "mean-trajectory",
            "--split", "seen", "--no-progress"]
    assert main(argv) == 0
    cell = next(r for r in read_results(out) if r.method == "constant")
    path = result_path(out, cell.benchmark, cell.trajectory, cell.split, cell.method, cell.seed)
    damaged = path if damage in ("binary", "array") else path.with_suffix(".npz")
    if damage == "binary":
        path.write_bytes(b"\x00\xff\xfe garbage \x89")
    elif damage == "array":
        path.write_text("[1, 2, 3]")
    elif damage == "npz-missing":
        damaged.unlink()
    else:
        damaged.write_bytes(b"PK broken")
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"recomputed {damaged}" in err and "1 cell(s) computed, 1 reused" in err
    assert read_result(path).status == "ok" and path.with_suffix(".npz").stat().st_size > 100


def test_two_runs_on_one_out_compute_each_cell_once(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "tdabench.cli", "run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", probes,
            "--method", "counted", "--no-progress"]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    fits = (tmp_path / "probe.log").read_text().splitlines()
    assert len(fits) == 2  # the all-test and the withheld-test fit, once each: the second run waited and reused
    assert sum("4 cell(s) computed" in e for e in errs) == 1 and sum("0 cell(s) computed, 4 reused" in e for e in errs) == 1


def test_temporaries_of_a_killed_process_are_swept(tmp_path: Path) -> None:
    from tdabench.run.tempfiles import sweep, temp_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    made = temp_dir(tmp_path, "bank")
    left = tmp_path / made.name.replace(f".{os.getpid()}.", f".{dead}.", 1)  # as if a killed process had made it
    made.rename(left)
    (left / "half.bin").write_bytes(b"x" * 1000)
    mine = temp_dir(tmp_path, "other")
    old = time.time() - 60
    os.utime(left, (old, old))
    os.utime(mine, (old, old))
    assert sweep(tmp_path) == [left]
    assert not left.exists() and mine.exists()  # a live process's temporaries stay
