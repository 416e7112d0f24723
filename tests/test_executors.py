"""Executors: local processes and Ray give the serial results, for run grids and recordings; a killed worker loses only its unit."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from recorded import recorded_files
from torchthreads import one_thread

from tdabench.cli import main
from tdabench.results.record import read_results

PLUGIN = textwrap.dedent(
    '''
    import os, signal
    from dataclasses import dataclass
    from pathlib import Path
    import numpy as np
    from tdabench.hookspecs import hookimpl
    from tdabench.simulator import Capabilities, MethodSpec

    @dataclass(frozen=True)
    class LogConfig:
        log: str = ""

    class Counted:
        """Holds the initial value; logs every fit so a test can count them."""
        def __init__(self, config):
            self.config = config
        def fit(self, data):
            with open(self.config.log, "a") as fh:
                fh.write(f"{type(self).__name__} {data.meta.task} {data.trajectory}\\n")
            return self
        def simulate(self, query):
            return np.repeat(query.initial[:, :, None], query.shape[2], axis=2)

    class Killer(Counted):
        """Kills its worker process the first time it is fitted."""
        def fit(self, data):
            marker = Path(self.config.log).with_suffix(".killed")
            if not marker.exists():
                marker.write_text("x")
                os.kill(os.getpid(), signal.SIGKILL)
            return super().fit(data)

    def dying_record_run(job, ctx):
        """Records a run, but kills its worker the first time it meets an unseen-train run."""
        from tdabench.recorder.record import record_run_job
        marker = ctx.out.parent / "killed"
        if job.seed >= 1000 and not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        return record_run_job(job, ctx)

    @hookimpl
    def tdabench_methods():
        caps = Capabilities(unseen_test=True, unseen_train=True)
        return [MethodSpec("counted", Counted, LogConfig, capabilities=caps), MethodSpec("killer", Killer, LogConfig, capabilities=caps)]
    '''
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin module importable by every worker: on PYTHONPATH before any worker starts."""
    path = tmp_path_factory.mktemp("plugin")
    (path / "exec_methods.py").write_text(PLUGIN)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), old]))
    sys.path.insert(0, str(path))
    yield path
    sys.path.remove(str(path))
    sys.modules.pop("exec_methods", None)
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


def _grid(bench_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--benchmark", str(bench_dir), "--out", str(out), "--trajectory", "all", "--json", "--no-progress",
            "--method", "constant", "--method", "mean-trajectory", *extra]


def _metrics(doc: dict) -> dict:
    return {(r["method"], r["trajectory"], r["split"]): (r["status"], r["scores"]) for r in doc["results"]}


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from tdabench.formats.gptdynamics_write import write_benchmark
    from tdabench.sources.synthetic import simfluence_benchmark

    base = tmp_path_factory.mktemp("grid")
    bench_dir = write_benchmark(simfluence_benchmark(noise=0.002, trajectories=("loss", "bleu"))[0], base / "bench")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(_grid(bench_dir, base / "serial")) == 0
    return bench_dir, _metrics(json.loads(buf.getvalue()))


def test_local_processes_match_serial(serial: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench_dir, expected = serial
    assert main(_grid(bench_dir, tmp_path / "jobs", "--jobs", "2")) == 0
    assert _metrics(json.loads(capsys.readouterr().out)) == expected


def test_bad_executor_arguments(serial: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_grid(serial[0], tmp_path, "--jobs", "0")) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
    assert main(_grid(serial[0], tmp_path, "--executor", "dask")) == 2
    assert "unknown executor 'dask'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path) -> object:
    """A local Ray with 2 CPUs, no dashboard, its temp dir inside the test's tmp path."""
    ray = pytest.importorskip("ray", reason="Ray is part of the test extra: pip install -e '.[test]'")
    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_matches_serial(local_ray: object, serial: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench_dir, expected = serial
    assert main(_grid(bench_dir, tmp_path / "ray", "--executor", "ray")) == 0
    assert _metrics(json.loads(capsys.readouterr().out)) == expected


@pytest.mark.parametrize("executor", [["--executor", "ray"], ["--jobs", "2"]])
def test_killed_worker_loses_only_its_unit(executor: list[str], plugin_dir: Path, serial: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> None:
    if executor[0] == "--executor":
        request.getfixturevalue("local_ray")
    bench_dir = serial[0]
    out = tmp_path / "out"
    log = tmp_path / "fits.log"
    argv = ["run", "--benchmark", str(bench_dir), "--out", str(out), "--trajectory", "all", "--no-progress",
            "-p", "exec_methods", "--method", f"killer:log={log}", "--method", f"counted:log={log}", *executor]
    assert main(argv) == 1  # the killed unit is reported failed
    assert "worker lost" in capsys.readouterr().out
    from tdabench.results.record import read_result

    # The lost unit's cells are written as failed (and retried); every finished cell is kept.
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if read_result(p).status == "ok"}
    assert first, "the grid went on after the worker died"
    assert any("worker lost" in (read_result(p).error or "") for p in out.rglob("*.json"))
    assert main(argv) == 0  # the rerun finishes what is missing...
    assert {p: p.stat().st_mtime_ns for p in first} == first  # ...and recomputes nothing finished
    assert {(r.method_name, r.trajectory, r.status) for r in read_results(out)} == {
        (m, metric, "ok") for m in ("killer", "counted") for metric in ("loss", "bleu")
    }
    if executor[0] == "--executor":  # Ray loses only the task whose worker died
        # (each unit fits twice: on every test example, and with the held-out ones withheld)
        assert sorted(log.read_text().splitlines()) == sorted(2 * ["Counted toy loss", "Counted toy bleu", "Killer toy loss", "Killer toy bleu"])


TINY_RECORD = ["record", "--model", "neox-0.2m", "--task", "sentiment", "--sample", "8", "--batch-size", "4", "--epochs", "1",
               "--n-test", "16", "--runs", "2", "--unseen-runs", "1", "--no-progress"]


def _recorded_files(root: Path) -> dict[str, bytes]:
    return recorded_files(root)


@pytest.fixture(scope="module")
def serial_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny recording made run after run in this process, on one thread as each worker has."""
    out = tmp_path_factory.mktemp("rec") / "bench"
    with one_thread():
        assert main([*TINY_RECORD, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("executor", [["--jobs", "2"], ["--executor", "ray"]])
def test_record_executors_match_serial(executor: list[str], serial_recording: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if executor[0] == "--executor":
        request.getfixturevalue("local_ray")
    out = tmp_path / "bench"
    assert main([*TINY_RECORD, "--out", str(out), *executor]) == 0
    assert _recorded_files(out) == _recorded_files(serial_recording)  # byte for byte, manifest included


@pytest.mark.parametrize("kind", ["jobs", "ray"])
def test_killed_recording_worker_loses_only_its_run(kind: str, plugin_dir: Path, serial_recording: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from exec_methods import dying_record_run  # importable by the workers too

    from tdabench.errors import TDABenchError
    from tdabench.run.executors import RayExecutor
    from tdabench.run.pool import WorkerPool
    from tdabench.recorder import record as record_mod
    from tdabench.recorder.record import RecordSpec, record
    from tdabench.recorder.train import Schedule

    if kind == "ray":
        request.getfixturevalue("local_ray")
    base = RayExecutor if kind == "ray" else WorkerPool

    class Dying(base):  # type: ignore[misc, valid-type]
        """The real executor, mapping a run function whose worker dies once."""

        def map(self, fn, jobs, shared, report):  # type: ignore[no-untyped-def]
            assert fn is record_mod.record_run_job
            super().map(dying_record_run, jobs, shared, report)

    spec = RecordSpec(model="neox-0.2m", task="sentiment", runs=2, unseen_runs=1,
                      schedule=Schedule(lr=1e-3, batch_size=4, epochs=1, sample=8), n_test=16)
    out = tmp_path / "bench"
    # Ray loses only the dead worker's run; a local pool also loses the run beside it, if still in flight
    lost = "1" if kind == "ray" else "[12]"
    with pytest.raises(TDABenchError, match=rf"{lost} of 3 runs failed .*worker lost.*rerun the same command"):
        record(spec, out, progress=False, executor=Dying() if kind == "ray" else Dying(2))
    finished = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    assert len({p.parent for p in finished}) >= (2 if kind == "ray" else 1) and not (out / "tdabench.json").exists()
    record(spec, out, progress=False, executor=RayExecutor() if kind == "ray" else WorkerPool(2))
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # nothing finished is recorded twice
    assert _recorded_files(out) == _recorded_files(serial_recording)


@pytest.mark.parametrize("command", ["run", "record"])
def test_ray_missing_says_how_to_install(command: str, serial: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed: import fails
    argv = _grid(serial[0], tmp_path / "out") if command == "run" else [*TINY_RECORD, "--out", str(tmp_path / "rec")]
    assert main([*argv, "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tdabench: error: the Ray executor needs Ray: pip install 'tdabench[ray]'"]
    assert not (tmp_path / "rec").exists()  # refused before anything was written


def test_simulate_and_mislabel_dispatch_through_ray(local_ray: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tdabench simulate` and `tdabench mislabel` run their methods as Ray tasks, and write the
    same envelope as `tdabench run`."""
    from gdrelease import write_release_tree

    from tdabench.formats.gptdynamics_load import load_benchmarks
    from tdabench.formats.gptdynamics_write import write_batches

    tree = write_release_tree(tmp_path / "gd")
    debug = "gptdynamics/ft/pythia-410m/sst2-dataset-debug-is-mislabelled"
    assert main(["mislabel", "--data-dir", str(tree), "--benchmark", debug, "--method", "simfluence-linear", "--no-retrain",
                 "--executor", "ray", "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    ranking = json.loads(next((tmp_path / "m").rglob("simfluence-linear/seed-0.json")).read_text())
    bench = "gptdynamics/ft/pythia-410m/rte"
    rte = next(b for b in load_benchmarks(tree) if b.id == bench)
    plan = tmp_path / "plan.json"
    write_batches(plan, rte.run(rte.split.fit_runs[0]).batches)  # a fit run's batches: every id has factors
    assert main(["simulate", "--data-dir", str(tree), "--benchmark", bench, "--method", "simfluence-linear", "--plan", str(plan),
                 "--executor", "ray", "--out", str(tmp_path / "w"), "--no-progress"]) == 0
    whatif = json.loads((tmp_path / "w" / "whatif.json").read_text())
    envelope = ("schema", "key", "status", "benchmark", "data_hash", "method", "method_name", "method_version", "distribution",
                "config", "seed", "scores", "error", "provenance")
    for rec in (ranking, whatif):
        assert all(k in rec for k in envelope) and rec["status"] == "ok"
    assert ranking["schema"] == "tdabench.mislabel/2" and whatif["schema"] == "tdabench.whatif/2"
    capsys.readouterr()
