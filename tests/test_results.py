"""Result records and result sets: one envelope for every command, archives, merging, no machine paths."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tdabench.cli import main
from tdabench.results.provenance import portable_command
from tdabench.results.record import CellResult, read_results


def _run(bench_dir: Path, out: Path, *methods: str) -> None:
    argv = ["run", "--benchmark", str(bench_dir), "--out", str(out), "--no-progress", "--split", "seen"]
    for m in methods:
        argv += ["--method", m]
    assert main(argv) == 0


def test_export_then_merge_two_result_sets(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _run(synthetic_dir, a, "constant")
    _run(synthetic_dir, b, "zero-line")
    archive = tmp_path / "a.tar.xz"
    assert main(["leaderboard", "--results", str(a), "--export", str(archive)]) == 0
    assert "bank version" in capsys.readouterr().out
    assert archive.is_file() and Path(f"{archive}.sha256").read_text().split()[0]
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "tdabench-results.json" in names and any(n.endswith(".npz") for n in names)
    # One leaderboard from an archive and a directory (two machines' result sets).
    assert main(["leaderboard", "--results", str(archive), "--results", str(b), "--out", str(tmp_path / "lb"), "--no-truth"]) == 0
    doc = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert {r["method"] for r in doc["rows"]} == {"constant", "zero-line"}


def test_a_damaged_archive_is_refused(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(synthetic_dir, tmp_path / "a", "constant")
    archive = tmp_path / "a.tar.xz"
    assert main(["leaderboard", "--results", str(tmp_path / "a"), "--export", str(archive)]) == 0
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    assert main(["leaderboard", "--results", str(archive), "--out", str(tmp_path / "lb"), "--no-truth"]) == 2
    assert "sha256 differs" in capsys.readouterr().err


def test_two_sets_of_one_benchmark_on_different_data_are_refused(synthetic_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _run(synthetic_dir, a, "constant")
    shutil.copytree(a, b)
    for p in b.rglob("*.json"):  # the same benchmark id, other data
        obj = json.loads(p.read_text())
        obj["data_hash"] = "sha256:" + "0" * 64
        obj["method"] = "constant-b"
        p.write_text(json.dumps(obj))
    code = main(["leaderboard", "--results", str(a), "--results", str(b), "--out", str(tmp_path / "lb"), "--no-truth"])
    err = capsys.readouterr().err
    assert code == 2 and "two versions of its data" in err


def test_records_share_one_envelope_and_name_no_machine_path(synthetic_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    _run(synthetic_dir, out, "constant")
    cell = read_results(out)[0]
    d = cell.to_dict()
    assert d["schema"] == CellResult.SCHEMA and list(d)[:2] == ["schema", "key"] and d["status"] in ("ok", "n/a", "failed")
    assert str(tmp_path) not in json.dumps(d) and "--out res" in d["provenance"]["command"]
    assert d["samples"]["test_ids"] and len(d["samples"]["predicted"]) == len(d["samples"]["test_ids"])
    assert portable_command(["tdabench", "run", "--out=/home/me/results/x", "--benchmark", "~/b"]) == "tdabench run --out=x --benchmark b"


def test_a_record_of_another_schema_is_refused_in_one_line(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    _run(synthetic_dir, out, "constant")
    path = next(out.rglob("seed-0.json"))
    obj = json.loads(path.read_text())
    obj["schema"] = "tdabench.cell/2"
    path.write_text(json.dumps(obj))
    assert main(["leaderboard", "--results", str(out), "--out", str(tmp_path / "lb"), "--no-truth"]) == 1
    assert "another version of this kind" in capsys.readouterr().err
