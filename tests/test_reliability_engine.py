"""Issue 24, the run engine: each defect reproduced as a user met it, then the behaviour asked for.

1 the temporaries sweep touches only tdabench's own; 2/3 cell locks never deadlock (the same
benchmark twice, two runs in opposite orders) and never land in --out; 4 a unit's processes
end with it; 5 --timeout counts the method's work only; 6 a damaged bank cache is extracted
again; 7 method state does not leak into the next method; 8 a plugin's sys.exit() at import
is reported and skipped; 11 a bad --timeout is one line before any work; 16 the leaderboard
sweeps a killed run's temporaries; 17 an empty TDABENCH_CACHE is not the working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes import probe_source
from tdabench.cli import main
from tdabench.results.record import read_results

PROBES = probe_source(
    '''
    time.sleep(float(os.environ.get("PROBE_IMPORT_SLEEP", "0")))  # a slow import (torch, transformers...)

    class Slow(Hold):
        """Logs every fit, slowly, so that two runs on one --out overlap."""
        def fit(self, data):
            with open(os.environ["PROBE_LOG"], "a") as fh:
                fh.write(f"fit {type(self).__name__} {data.test.ids.size}\\n")
            time.sleep(0.5)
            return self

    class SlowToo(Slow):
        pass

    class Spawner(Hold):
        """Starts a long child that holds stdout, then (PROBE_HANG) hangs itself."""
        def fit(self, data):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            with open(os.environ["PROBE_LOG"], "a") as fh:
                fh.write(f"{child.pid}\\n")
            if os.environ.get("PROBE_HANG"):
                time.sleep(60)
            return self

    class Raiser(Hold):
        """Changes the process's state: numpy errors raise, the global RNGs are seeded, one torch thread."""
        def fit(self, data):
            np.seterr(all="raise")
            np.random.seed(123)
            random.seed(123)
            os.environ["PROBE_LEAK"] = "1"
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(1)
            return self

    class Divider(Hold):
        """Divides by zero (a warning, normally), and reports the state it found."""
        def fit(self, data):
            np.array([1.0]) / np.array([0.0])
            torch = sys.modules.get("torch")
            self.info = {"np_draw": float(np.random.random()), "py_draw": random.random(),
                         "leak": os.environ.get("PROBE_LEAK", ""), "threads": torch.get_num_threads() if torch else -1}
            return self

    @hookimpl
    def tdabench_methods():
        caps = Capabilities(unseen_test=True, unseen_train=True)
        return [MethodSpec(n, c, capabilities=caps) for n, c in
                [("slow", Slow), ("slow-too", SlowToo), ("spawner", Spawner), ("raiser", Raiser), ("divider", Divider)]]
    '''
)


@pytest.fixture
def probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "reliability_probes.py").write_text(PROBES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PROBE_LOG", str(tmp_path / "probe.log"))
    yield "reliability_probes"
    sys.modules.pop("reliability_probes", None)


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "tdabench.cli", *argv]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)


def _age(*paths: Path) -> None:
    old = time.time() - 60
    for p in paths:
        os.utime(p, (old, old), follow_symlinks=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes: it holds no pipe
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


# -- 1: the sweep deletes only what tdabench wrote ---------------------------------------------


def _user_files(root: Path) -> list[Path]:
    """Names the old sweep took for its own (``.<name>.<number>.<x>``), with numbers no process has."""
    root.mkdir(parents=True, exist_ok=True)
    notes, config = root / ".notes.2023.txt", root / ".config.4242.bak"
    notes.write_text("my notes")
    config.write_text("my config")
    snap = root / ".snapshot.55555.d"
    (snap / "deep").mkdir(parents=True)
    (snap / "deep" / "photo.raw").write_bytes(b"x" * 100)
    files = [notes, config, snap]
    _age(*files)
    return files


def test_run_leaves_a_users_dot_files_alone(synthetic_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    mine = _user_files(out) + _user_files(out / "nested" / "deeper")
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(out), "--method", "constant", "--no-progress"]) == 0
    assert all(p.exists() for p in mine), [p for p in mine if not p.exists()]
    assert (out / ".snapshot.55555.d" / "deep" / "photo.raw").is_file()


def test_the_sweep_removes_only_its_own_temporaries_of_dead_processes(tmp_path: Path) -> None:
    from tdabench.run.tempfiles import MARKER, sweep, temp_dir, temp_file

    dead = _dead_pid()
    fd, live_file = temp_file(tmp_path, "seed-0.json")
    os.close(fd)
    live_dir = temp_dir(tmp_path, "bank")
    ours_file = tmp_path / Path(live_file).name.replace(f".{os.getpid()}.", f".{dead}.", 1)
    os.rename(live_file, ours_file)
    ours_dir = tmp_path / live_dir.name.replace(f".{os.getpid()}.", f".{dead}.", 1)
    os.rename(live_dir, ours_dir)
    (ours_dir / "half.bin").write_bytes(b"x" * 1000)
    fd, still_live = temp_file(tmp_path, "other")
    os.close(fd)
    # our prefix, but a folder without the marker: not provably ours, kept
    foreign = tmp_path / f".tdabench-tmp.{dead}.x.abcdefgh.d"
    foreign.mkdir()
    (foreign / "keep").write_text("keep")
    users = _user_files(tmp_path)
    _age(ours_file, ours_dir, Path(still_live), foreign)
    assert sorted(sweep(tmp_path)) == sorted([ours_file, ours_dir])
    assert not ours_file.exists() and not ours_dir.exists()
    assert Path(still_live).exists() and foreign.exists() and all(p.exists() for p in users)
    assert (ours_dir / MARKER).name == MARKER  # (the marker lived inside what was removed)


# -- 2/3: cell locks ---------------------------------------------------------------------------


def test_the_same_benchmark_twice_does_not_hang(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    out = tmp_path / "r"
    copy = shutil.copytree(synthetic_dir, tmp_path / "copy")  # a second copy under the same id
    argv = _cli("run", "--benchmark", str(synthetic_dir), "--benchmark", str(synthetic_dir) + "/", "--benchmark", str(copy),
                "--out", str(out), "-p", probes, "--method", "slow", "--method", "constant", "--jobs", "2", "--no-progress")
    proc = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "8 cell(s) computed" in proc.stderr  # each cell once: the benchmark runs once
    assert len((tmp_path / "probe.log").read_text().splitlines()) == 2


def test_same_id_different_data_is_refused(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = shutil.copytree(synthetic_dir, tmp_path / "copy")
    f = next((copy / "runs").rglob("all_loss_trajectory.out"))
    f.write_text(f.read_text().replace('"loss": 2', '"loss": 3', 1))
    out = tmp_path / "r"
    assert main(["run", "--benchmark", str(synthetic_dir), "--benchmark", str(copy), "--out", str(out), "--method", "constant", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "have the id" in err and "different data" in err
    assert not read_results(out)


def test_two_runs_in_opposite_orders_both_finish(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    out = tmp_path / "r"
    base = ["run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", probes, "--jobs", "2", "--no-progress"]
    orders = [["--method", "slow", "--method", "slow-too"], ["--method", "slow-too", "--method", "slow"]]
    procs = [subprocess.Popen(_cli(*base, *o), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for o in orders]
    try:
        errs = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], errs
    fits = (tmp_path / "probe.log").read_text().splitlines()
    assert len(fits) == 4  # two methods x two fits, each once: what one run computed the other reused
    assert sum(int(e.split(" cell(s) computed")[0].rsplit(" ", 1)[-1]) for e in errs) == 8
    assert [p for p in out.rglob("*") if p.suffix not in (".json", ".npz") and p.is_file()] == []  # no lock files in --out
    assert not (out / ".locks").exists()


# -- 4: a unit's processes end with it ---------------------------------------------------------


@pytest.mark.parametrize("hang", [True, False], ids=["timed-out", "returned"])
def test_a_methods_children_end_with_its_unit(hang: bool, synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    out = tmp_path / "r"
    argv = _cli("run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", probes, "--method", "spawner",
                "--split", "seen", "--timeout", "8", "--no-progress")
    start = time.monotonic()
    # out=$(tdabench run ...): the caller reads stdout to its end, which comes only when every holder is gone
    proc = subprocess.run(argv, env=_env(**({"PROBE_HANG": "1"} if hang else {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=55)
    took = time.monotonic() - start
    assert proc.returncode == (1 if hang else 0), proc.stderr
    assert took < 45
    pids = [int(x) for x in (tmp_path / "probe.log").read_text().split()]
    assert pids and not any(_alive(p) for p in pids)


# -- 5: --timeout counts the method's own work ---------------------------------------------------


def test_the_timeout_does_not_count_worker_start_up(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    out = tmp_path / "r"
    argv = _cli("run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", probes, "--method", "divider",
                "--split", "seen", "--timeout", "2", "--no-progress")
    proc = subprocess.run(argv, env=_env(PROBE_IMPORT_SLEEP="3"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [c.status for c in read_results(out)] == ["ok"]


# -- 6: a damaged bank cache ---------------------------------------------------------------------


@pytest.fixture
def bank_entry(synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    import tdabench.sources.bank as bank
    from tdabench.formats.gptdynamics_load import load_benchmarks

    monkeypatch.setattr(bank, "ARCHIVES", tmp_path / "archives")
    monkeypatch.setattr(bank, "_write_base_model", lambda size, dest: (dest.mkdir(), (dest / "config.json").write_text("{}")))
    sha = bank.pack(synthetic_dir, tmp_path / "archives" / "s.tar.xz")
    return {"id": "synthetic", "archive": "s.tar.xz", "sha256": sha, "model": "neox-0.2m",
            "content_hash": load_benchmarks(synthetic_dir)[0].content_hash}


@pytest.mark.parametrize("damage", ["truncated", "edited", "model"])
def test_a_damaged_bank_cache_is_extracted_again(damage: str, bank_entry: dict[str, object], synthetic_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import tdabench.sources.bank as bank

    first = bank.load(bank_entry, tmp_path / "cache")
    assert first.content_hash == bank_entry["content_hash"]
    assert first.root is not None
    f = next((first.root / "runs").rglob("all_loss_trajectory.out"))
    if damage == "truncated":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "edited":
        text = f.read_text()
        f.write_text(text.replace('"loss": 2', '"loss": 9', 1))
        assert f.read_text() != text
    else:
        (first.root / "model" / "config.json").write_text("")
    capsys.readouterr()
    again = bank.load(bank_entry, tmp_path / "cache")
    assert again.content_hash == bank_entry["content_hash"]
    err = capsys.readouterr().err
    assert "damaged" in err and "extracting it again" in err and err.count("\n") == 1
    assert f.read_bytes() == (synthetic_dir / f.relative_to(first.root)).read_bytes()
    assert (again.root / "model" / "config.json").read_text() == "{}"


# -- 7: method state does not leak into the next method ------------------------------------------


def test_state_set_by_one_method_does_not_reach_the_next(synthetic_dir: Path, tmp_path: Path, probes: str) -> None:
    out = tmp_path / "r"
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", probes, "--method", "raiser",
                 "--method", "divider", "--split", "seen", "--jobs", "1", "--no-progress"]) == 0
    cell = next(c for c in read_results(out) if c.method == "divider")
    assert cell.status == "ok", cell.error
    import numpy as np

    np.random.seed(123)
    import random

    random.seed(123)
    assert cell.fit_info["np_draw"] != np.random.random() and cell.fit_info["py_draw"] != random.random()
    assert cell.fit_info["leak"] == ""
    assert cell.fit_info["threads"] in (-1, os.cpu_count() or 1)


# -- 8: a plugin that calls sys.exit() at import ---------------------------------------------------


def test_a_plugin_exiting_at_import_is_reported_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import EntryPoint

    import tdabench.run.registry as reg
    from tdabench.run.context import Context

    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit('bye')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = reg.entry_points
    monkeypatch.setattr(reg, "entry_points", lambda group: [*real(group=group), EntryPoint("exiting", "exiting_plugin", "tdabench")])
    ctx = Context.create()
    assert "constant" in ctx.registry.methods()
    (failure,) = ctx.registry.failures
    assert failure.plugin == "exiting" and "SystemExit" in failure.error and "bye" in failure.error
    assert "plugin 'exiting'" in capsys.readouterr().err
    assert main(["list", "methods"]) == 0


def test_a_p_module_exiting_at_import_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "exiting_p.py").write_text("import sys\nsys.exit(4)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "methods", "-p", "exiting_p"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "exiting_p" in err and "SystemExit" in err


# -- 11: bad numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [["--timeout", "inf"], ["--timeout", "nan"], ["--timeout", "-1"], ["--timeout", "0"],
                                  ["--timeout", "1e999"], ["--timeout", "soon"], ["--jobs", "0"], ["--jobs", "x"]])
def test_a_bad_number_is_one_line_before_any_work(flag: list[str], synthetic_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as exc:  # argparse's exit, or main's return
        raise SystemExit(main(["run", "--benchmark", str(synthetic_dir), "--out", str(out), "--method", "constant", "--no-progress", *flag]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and flag[0] in err, err
    assert not out.exists()


# -- 16: the leaderboard sweeps a killed run's temporaries -----------------------------------------


def test_leaderboard_sweeps_temporaries_of_a_killed_run(synthetic_dir: Path, tmp_path: Path) -> None:
    results, pages = tmp_path / "r", tmp_path / "lb"
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(results), "--method", "constant", "--split", "seen", "--no-progress"]) == 0
    dead = _dead_pid()
    cell_dir = next(results.rglob("seed-0.json")).parent
    left = [cell_dir / f".tdabench-tmp.{dead}.seed-0.json.abcd1234.tmp", results / f".tdabench-tmp.{dead}.probe.abcd1234.tmp"]
    pages.mkdir()
    left.append(pages / f".tdabench-tmp.{dead}.README.md.abcd1234.tmp")
    for p in left:
        p.write_text("half")
    users = _user_files(results) + _user_files(pages)
    _age(*left)
    main(["leaderboard", "--results", str(results), "--out", str(pages), "--no-truth"])
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in users)


# -- 17: an empty TDABENCH_CACHE ---------------------------------------------------------------------


def test_an_empty_cache_variable_is_not_the_working_directory(synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tdabench.run.context import Context

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TDABENCH_CACHE", "")
    assert Path(Context().cache_dir).resolve() != work.resolve()
    assert Path(Context().cache_dir) == home / ".cache" / "tdabench"
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(tmp_path / "r"), "--method", "constant", "--no-progress"]) == 0
    assert list(work.iterdir()) == []
