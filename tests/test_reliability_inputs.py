"""Issue 24, inputs and scores: one line for every bad environment, verifiable scores, no names to peek through."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from probes import probe_source
from tdabench.cli import main
from tdabench.data import Benchmark
from tdabench.sources.synthetic import SyntheticTruth


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> str:
    code = main(argv)
    err = [e for e in capsys.readouterr().err.strip().splitlines() if e.strip() and "%|" not in e]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("tdabench: error: "), err
    assert fragment in err[0], err[0]
    return err[0]


def _run(bench_dir: Path, out: Path, *extra: str) -> int:
    return main(["run", "--benchmark", str(bench_dir), "--method", "zero-line", "--method", "constant", "--split", "seen",
                 "--out", str(out), "--no-progress", *extra])


def _cells(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("seed-*.json"))


# 9. Bad environments: one line and exit 2, before any work.

def test_cache_under_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("TDABENCH_CACHE", str(tmp_path / "f" / "cache"))
    _one_line(capsys, ["list", "methods"], "is a file, not a directory; set TDABENCH_CACHE")


def test_cache_on_a_read_only_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tdabench.run.context as context

    monkeypatch.setenv("TDABENCH_CACHE", str(tmp_path / "ro"))
    real_mkdir = Path.mkdir

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system")
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", read_only)
    _one_line(capsys, ["list", "methods"], "cannot create it (Read-only file system)")
    monkeypatch.setattr(Path, "mkdir", real_mkdir)
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(context.os, "access", lambda *a, **k: False)  # root ignores modes: simulate a read-only mount
    _one_line(capsys, ["list", "methods"], "not writable; set TDABENCH_CACHE")


def test_no_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import pwd

    def no_entry(uid: int) -> object:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert main(["list", "methods"]) == 0  # TDABENCH_CACHE is set (conftest): no home needed
    capsys.readouterr()
    monkeypatch.delenv("TDABENCH_CACHE")
    _one_line(capsys, ["list", "methods"], "no home directory")


def test_full_disk_while_writing_results(synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import tdabench.results.record as record

    def full(path: Path, rec: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record, "write_json", full)
    _one_line(capsys, ["run", "--benchmark", str(synthetic_dir), "--method", "zero-line", "--split", "seen",
                       "--out", str(tmp_path / "out"), "--no-progress"], "No space left on device")
    npz = list((tmp_path / "out").rglob("*.npz"))
    assert all(p.with_suffix(".json").is_file() for p in npz), npz  # no predictions without their JSON


@pytest.mark.parametrize("command", ["leaderboard", "simulate", "record"])
def test_unusable_out(command: str, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "file" / "sub")
    if command == "leaderboard":
        argv = ["leaderboard", "--results", str(tmp_path), "--out", out, "--no-truth"]
    elif command == "simulate":
        plan = tmp_path / "plan.json"
        plan.write_text("[]")
        argv = ["simulate", "--benchmark", str(synthetic_dir), "--method", "zero-line", "--plan", str(plan), "--out", out]
    else:
        argv = ["record", "--model", "neox-0.2m", "--task", "rte", "--out", out]
    _one_line(capsys, argv, "--out")


def test_simulate_checks_its_plan_before_fitting(synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import tdabench.run.simulate as simulate

    def never(*a: object, **k: object) -> None:
        raise AssertionError("fitted before the plan was checked")

    monkeypatch.setattr(simulate, "fit_data", never)
    plan = tmp_path / "plan.json"
    plan.write_text("{not json")
    _one_line(capsys, ["simulate", "--benchmark", str(synthetic_dir), "--method", "zero-line", "--plan", str(plan),
                       "--out", str(tmp_path / "o"), "--no-progress"], "plan.json")


# 10. Verifiable scores.

def _edit_score(path: Path, name: str = "mse_all_steps", value: float = 0.123) -> None:
    d = json.loads(path.read_text())
    d["scores"][name]["mean"] = value
    path.write_text(json.dumps(d, indent=1))


def test_verify_finds_an_edited_score_and_run_recomputes_it(synthetic_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(synthetic_dir, out) == 0
    verify = ["leaderboard", "--results", str(out), "--benchmark", str(synthetic_dir), "--verify"]
    capsys.readouterr()
    assert main(verify) == 0
    assert "0 mismatch(es), 0 unchecked" in capsys.readouterr().out
    cells = _cells(out)
    assert len(cells) == 2
    _edit_score(cells[0])
    assert main(verify) == 1
    got = capsys.readouterr()
    assert "1 mismatch(es)" in got.out and f"mismatch: {cells[0]}" in got.err and "mse_all_steps 0.123 stored" in got.err
    cells[1].with_suffix(".npz").unlink()
    assert main(verify) == 1
    got = capsys.readouterr()
    assert "1 mismatch(es), 1 unchecked" in got.out and "no predictions file" in got.err
    # run recomputes the edited cell, saying so, and the one without predictions.
    assert _run(synthetic_dir, out) == 0
    err = capsys.readouterr().err
    assert f"recomputed {cells[0]}: its scores do not match its predictions" in err
    assert json.loads(cells[0].read_text())["scores"]["mse_all_steps"]["mean"] != 0.123
    assert main(verify) == 0


def test_a_perfect_score_is_flagged(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(synthetic_dir, out) == 0
    cell = next(p for p in _cells(out) if "zero-line" in str(p))
    _edit_score(cell, "mse_all_steps", 0.0)
    capsys.readouterr()
    main(["leaderboard", "--results", str(out), "--out", str(tmp_path / "lb"), "--no-truth"])
    err = capsys.readouterr().err
    assert "suspicious: zero-line on" in err and "scores perfectly" in err


# Truth on disk: a query names its runs opaquely.

def test_queries_name_no_evaluation_run(synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    from tdabench.run.views import split_view

    bench = synthetic[0]
    for split in ("seen", "unseen-train"):
        view = split_view(bench, split, "loss", seed=0)
        assert view.query.runs.names == tuple(f"query-{i}" for i in range(len(view.runs)))
        assert not set(view.query.runs.names) & {r.name for r in bench.runs}
        assert set(view.query.runs.seeds.tolist()) == set(range(len(view.runs)))
        assert set(view.runs) <= {r.name for r in bench.runs}


# 14. Duplicate run seeds.

def test_duplicate_seeds_are_refused_with_both_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gdtree import write_published_tree

    root = write_published_tree(tmp_path / "gd", n_runs=4)
    runs = sorted((root / "runs" / "rte").iterdir())
    copy = runs[-1].parent / runs[-1].name.replace("_seed-", "_seed-0", 1)
    assert copy != runs[-1]
    shutil.copytree(runs[-1], copy)
    line = _one_line(capsys, ["run", "--benchmark", str(root), "--method", "constant", "--out", str(tmp_path / "o"), "--no-progress"],
                     "distinct seeds")
    assert runs[-1].name in line and copy.name in line


# 15. NaN in fit_info.

PLUGIN = probe_source(
    '''
    class NaNInfo(Hold):
        def fit_info(self):
            return {"nan": float("nan"), "inf": np.float32("inf"), "arr": np.array([np.nan, 1.0]), "nested": {"x": [np.inf]}}

    @hookimpl
    def tdabench_methods():
        return [MethodSpec("nan-info", NaNInfo)]
    '''
)


def test_nan_in_fit_info_writes_standard_json(synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "naninfo.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    out = tmp_path / "out"
    assert main(["run", "-p", "naninfo", "--benchmark", str(synthetic_dir), "--method", "nan-info", "--split", "seen",
                 "--out", str(out), "--no-progress", "--json"]) == 0
    stdout = capsys.readouterr().out

    def strict(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    for text in [p.read_text() for p in _cells(out)]:
        d = json.loads(text, parse_constant=strict)
        assert d["fit_info"] == {"nan": None, "inf": None, "arr": [None, 1.0], "nested": {"x": [None]}}
    json.loads(stdout[stdout.index("{"):], parse_constant=strict)
    assert np.isfinite(1.0)


def test_fit_info_that_is_not_a_mapping() -> None:
    from tdabench.results.record import CellResult
    from tdabench.run.worker import fit_info

    class Odd:
        def fit_info(self) -> float:
            return float("nan")

    info = fit_info(Odd())
    cell = CellResult(key="k", status="ok", benchmark="b", data_hash="h", method="m", trajectory="loss", split="seen", fit_info=info)
    assert json.loads(json.dumps(cell.to_dict(), allow_nan=False))["fit_info"] == {"fit_info": None}


# 12, 13. record: a bound, Ctrl-C, one recording per --out.

def test_record_refuses_a_billion_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line(capsys, ["record", "--model", "neox-0.2m", "--task", "sentiment", "--runs", "1000000000", "--out", str(tmp_path / "o")],
              "--runs must be at least 2 and at most 10000; got 1000000000")
    assert not (tmp_path / "o").exists()


def test_two_recordings_into_one_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tdabench.formats.jsonl import DirLock

    (tmp_path / "o").mkdir()
    held = DirLock(tmp_path / "o", "held")
    try:
        _one_line(capsys, ["record", "--model", "neox-0.2m", "--task", "sentiment", "--runs", "4", "--out", str(tmp_path / "o")],
                  "is being recorded by another `tdabench record`")
    finally:
        held.release()


def test_ctrl_c_works_when_started_with_sigint_ignored(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import signal

    import tdabench.cli.listing as listing

    seen = []

    def probe(args: object) -> int:
        seen.append(signal.getsignal(signal.SIGINT))
        raise KeyboardInterrupt

    monkeypatch.setattr(listing, "cmd_list", probe)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a non-interactive shell
    try:
        assert main(["list", "methods"]) == 130
        assert seen == [signal.default_int_handler]
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_full_disk_anywhere_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tdabench.cli.listing as listing

    def full(args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/file")

    monkeypatch.setattr(listing, "cmd_list", full)
    _one_line(capsys, ["list", "methods"], "No space left on device writing /somewhere/file")
