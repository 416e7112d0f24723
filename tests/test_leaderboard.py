"""``tdabench leaderboard``: golden output from a committed results fixture, validation, browser check."""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tdabench.cli import main
from tdabench.run.context import Context
from tdabench.leaderboard.aggregate import MeanRank
from tdabench.leaderboard.write import stable_lines
from tdabench.leaderboard.collect import collect, format_size, group_of, model_size
from tdabench.leaderboard.published import orderings
from tdabench.leaderboard.samples import TruthSource

FIXTURE = Path(__file__).parent / "fixtures" / "leaderboard"
GOLDEN = FIXTURE / "golden"
CHROMIUM = Path("/usr/bin/chromium")
REGEN = "python tests/fixtures/leaderboard/make_fixture.py"


def _fixture_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_leaderboard_fixture", FIXTURE / "make_fixture.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The fixture's benchmarks, generated once per session (they are deterministic)."""
    root = tmp_path_factory.mktemp("leaderboard-bench")
    return root, _fixture_module().write_benchmarks(root)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bench_root: tuple[Path, list[str]]) -> tuple[Path, list[str]]:
    """A working folder laid out as make_fixture.py lays it out: bench/ and a copy of results/."""
    (tmp_path / "bench").symlink_to(bench_root[0] / "bench", target_is_directory=True)
    shutil.copytree(FIXTURE / "results", tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    return tmp_path, bench_root[1]


def _diff(golden: Path, new: Path) -> str:
    a, b = stable_lines(golden.read_text(encoding="utf-8")), stable_lines(new.read_text(encoding="utf-8"))
    return "\n".join(list(difflib.unified_diff(a, b, str(golden), str(new), lineterm="", n=1))[:40])


def test_regenerates_the_golden_output_byte_for_byte_apart_from_the_date(work: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, benches = work
    assert main(_fixture_module().leaderboard_args(benches)) == 0
    assert "true trajectories not shown" not in capsys.readouterr().err  # the regenerated benchmarks match the results
    new = root / "golden"
    assert sorted(p.name for p in new.iterdir()) == sorted(p.name for p in GOLDEN.iterdir())
    for g in sorted(GOLDEN.iterdir()):
        n = new / g.name
        old_lines, new_lines = g.read_text(encoding="utf-8").splitlines(), n.read_text(encoding="utf-8").splitlines()
        assert stable_lines(g.read_text(encoding="utf-8")) == stable_lines(n.read_text(encoding="utf-8")), (
            f"{g.name} differs from the golden file (if intended, regenerate it with `{REGEN}`):\n{_diff(g, n)}")
        # Exactly one line may differ, the "Generated on" line, and only in place.
        changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
        assert len(old_lines) == len(new_lines) and len(changed) <= 1


def test_a_board_from_a_partial_run_says_where_each_method_ran(work: tuple[Path, list[str]]) -> None:
    """Cells nobody ran are not failures, but the board says which method lacks them, per group."""
    root, benches = work
    for split in ("unseen-train", "unseen-test", "unseen-both"):
        shutil.rmtree(root / "results" / "synthetic__ft__sim-2m__toy" / "loss" / split / "constant")
    assert main(_fixture_module().leaderboard_args(benches, out="partial")) == 0
    ft = (root / "partial" / "synthetic-ft.md").read_text(encoding="utf-8")
    coverage = ft.split("## Coverage")[1].split("\n## ")[0]
    # synthetic/ft has two benchmarks x four splits; constant now lacks three of the eight tables.
    assert "| `constant` | 5 of 8 | seen, unseen-train, unseen-test, unseen-both |" in coverage
    assert "`zero-line`" not in coverage and "`mean-trajectory`" not in coverage
    assert "Every method of this leaderboard ran" in (root / "partial" / "synthetic-it.md").read_text(encoding="utf-8")
    doc = json.loads((root / "partial" / "leaderboard.json").read_text(encoding="utf-8"))
    assert doc["coverage"] == {"synthetic-ft": [{"method": "constant", "ran": 5, "total": 8,
                                                 "splits": ["seen", "unseen-train", "unseen-test", "unseen-both"]}]}


def test_golden_content() -> None:
    """What the golden pages must say, independent of the exact bytes."""
    readme = (GOLDEN / "README.md").read_text(encoding="utf-8")
    ft = (GOLDEN / "synthetic-ft.md").read_text(encoding="utf-8")
    html = (GOLDEN / "index.html").read_text(encoding="utf-8")
    assert "[synthetic/ft](synthetic-ft.md)" in readme and "[synthetic/it](synthetic-it.md)" in readme
    assert "| zero-line | 1.00 (3/3) |" in readme  # the mean-rank table
    assert "not measured by tdabench" in readme and "| GPTfluence | 0.093 | 0.175 | 0.860 |" in readme
    # Ranked by mse, best marked, mean ± std [CI], the n/a reason, gap and cost columns.
    seen = ft.split("### loss · seen")[1].split("###")[0]
    assert seen.index("| 1 | zero-line |") < seen.index("| 2 | mean-trajectory |") < seen.index("| 3 | constant |")
    assert re.search(r"\| \*\*[0-9.e-]+\*\* ± [0-9.e-]+ \[[0-9.e-]+, [0-9.e-]+\] \|", seen)
    assert "n/a: the benchmark has no evaluation runs on unseen training examples" in ft
    assert "gap (Δ mse)" in ft and "peak MiB" in ft
    assert "## Provenance" in ft and "- Command: `tdabench leaderboard --results results" in ft
    assert "tdabench run --benchmark ft-2m" in ft and "sha256:" in ft
    # The page: self-contained, sortable, with plots that show the truth.
    assert not re.search(r"""(src|href)=["']?(https?:)?//|url\((?!#)|<link|@import""", html)  # nothing fetched
    assert html.count("<svg") == 9 and html.count('class="sortable results"') == 16  # 3 fit curves, 4 samples, 2 sizes
    assert html.count("fit runs&#x27; mean test loss") >= 3 and "<use href=" in html  # the truth drawn once per figure
    assert "- transient: max 1.00x step 0" in ft and "misses the target <= 0.7x" in ft  # measured on the loaded benchmarks
    assert "*(low power: < 10 runs, not ranked)*" in ft and "| pooled · seen |" in readme and "| early · seen |" in readme
    assert "true (solid) vs predicted (dashed)" in html
    rows = list(csvlines := (GOLDEN / "leaderboard.csv").read_text(encoding="utf-8").splitlines())
    assert rows[0].startswith("group,benchmark,trajectory,split,rank,method") and len(csvlines) == 49
    doc = json.loads((GOLDEN / "leaderboard.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "tdabench.leaderboard/2" and len(doc["rows"]) == 48
    assert doc["mean_ranks"]["all"]["loss"][0]["method"] == "zero-line"
    assert doc["score_fields"] == ["mean", "std", "ci95_lo", "ci95_hi", "n"] and "samples" not in json.dumps(doc)


def test_check_mode_ignores_only_the_date(work: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = work
    args = ["leaderboard", "--results", "results", "--no-truth", "--out", "lb"]
    assert main(args) == 0
    readme = root / "lb" / "README.md"
    text = readme.read_text(encoding="utf-8")
    readme.write_text(re.sub(r"Generated on \S+", "Generated on 1999-01-01T00:00:00+00:00", text), encoding="utf-8")
    assert main([*args, "--check"]) == 0
    readme.write_text(text.replace("| zero-line | 1.00", "| zero-line | 1.50"), encoding="utf-8")
    capsys.readouterr()
    assert main([*args, "--check"]) == 1
    assert "README.md: differs" in capsys.readouterr().err


def _one_result(root: Path) -> Path:
    return root / "results" / "synthetic__ft__sim-2m__toy" / "loss" / "seen" / "constant" / "seed-0.json"


def test_old_schema_is_refused_in_one_line(work: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = work
    path = _one_result(root)
    obj = json.loads(path.read_text())
    del obj["schema"]
    obj["schema_version"] = 0  # what tdabench wrote before the one envelope
    path.write_text(json.dumps(obj))
    assert main(["leaderboard", "--results", "results", "--no-truth", "--out", "lb"]) == 1  # written, without that file
    err = [line for line in capsys.readouterr().err.splitlines() if "left out" in line]
    assert len(err) == 1 and str(path.relative_to(root)) in err[0] and "schema version 0 is older" in err[0]
    readme = (root / "lb" / "README.md").read_text(encoding="utf-8")
    assert "## Files left out" in readme and "schema version 0 is older" in readme


# A damaged .npz is not the leaderboard's to read: the plots' samples live in the JSON.
@pytest.mark.parametrize("damage", ["garbage", "array", "partial-score"])
def test_unreadable_files_are_reported_one_line_each(damage: str, work: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = work
    path = _one_result(root)
    obj = json.loads(path.read_text())
    if damage == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff binary")
    elif damage == "array":
        path.write_text("[1, 2, 3]")
    elif damage == "partial-score":  # scored on half the trajectories: refused, not shown as ok
        obj["scores"]["mse_all_steps"]["n"] //= 2
        path.write_text(json.dumps(obj))
    code = main(["leaderboard", "--results", "results", "--out", "lb", "--benchmark", "bench/ft-2m", "--benchmark", "bench/ft-8m",
                 "--benchmark", "bench/it-2m"])
    err = [line for line in capsys.readouterr().err.splitlines() if "left out" in line]
    assert code == 1 and len(err) == 1 and str(path.relative_to(root)) in err[0], err
    assert "Traceback" not in "".join(err) and (root / "lb" / "index.html").is_file()


def test_mixed_method_versions_are_refused_unless_allowed(work: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = work
    path = _one_result(root)
    obj = json.loads(path.read_text())
    obj["method_version"] = "2"
    path.write_text(json.dumps(obj))
    args = ["leaderboard", "--results", "results", "--no-truth", "--out", "lb"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'constant' come from different versions" in err and "--allow-mixed-versions" in err
    assert main([*args, "--allow-mixed-versions"]) == 0


def test_duplicates_are_reported_and_the_newest_wins(work: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = work
    src = _one_result(root)
    newer = root / "rerun" / src.relative_to(root / "results")
    newer.parent.mkdir(parents=True)
    obj = json.loads(src.read_text())
    obj["provenance"]["created"] = "2099-01-01T00:00:00+00:00"
    obj["scores"]["mse_all_steps"]["mean"] = 123.0
    newer.write_text(json.dumps(obj))
    shutil.copy(src.with_suffix(".npz"), newer.with_suffix(".npz"))  # a whole result: its predictions too
    coll = collect([root / "results", root / "rerun"])
    assert len(coll.duplicates) == 1 and coll.duplicates[0].kept.path == newer
    kept = next(e for e in coll.entries if e.cell == ("synthetic/ft/sim-2m/toy", "loss", "seen", "constant", 0))
    assert kept.result.scores["mse_all_steps"].mean == 123.0
    assert main(["leaderboard", "--results", "results", "--results", "rerun", "--no-truth", "--out", "lb"]) == 0
    assert "duplicate results for synthetic/ft/sim-2m/toy / loss / seen / constant" in capsys.readouterr().err
    readme = (root / "lb" / "README.md").read_text()
    assert "## Duplicate results (the newest is kept)" in readme and "`rerun/synthetic__ft__sim-2m__toy/loss/seen/constant/seed-0.json`" in readme


def test_failed_cells_are_shown_with_their_error(work: tuple[Path, list[str]]) -> None:
    root, _ = work
    path = _one_result(root)
    obj = json.loads(path.read_text())
    obj.update(status="failed", error="fit: RuntimeError: out of | memory (at x.py:3)", scores={}, fit_s=None, simulate_s=None, peak_mem_mb=None, predictions=None)
    path.write_text(json.dumps(obj))
    assert main(["leaderboard", "--results", "results", "--no-truth", "--out", "lb"]) == 0
    ft = (root / "lb" / "synthetic-ft.md").read_text()
    assert "| – | constant | failed | failed |" in ft and "failed: fit: RuntimeError: out of \\| memory (at x.py:3)" in ft
    assert "## Failed cells" in (root / "lb" / "README.md").read_text()
    html = (root / "lb" / "index.html").read_text()
    assert '<tr class="failed">' in html and "out of | memory" in html


def test_plots_need_no_benchmark(work: tuple[Path, list[str]]) -> None:
    root, benches = work
    assert main(["leaderboard", "--results", "results", "--no-truth", "--out", "lb"]) == 0
    html = (root / "lb" / "index.html").read_text()
    # The plots' true and predicted samples are stored in each cell: no benchmark is needed.
    assert "true (solid) vs predicted (dashed)" in html and "predicted only (dashed)" not in html
    assert "fit runs&#x27; mean test loss" not in html  # the fit runs' curve needs the benchmark or its properties
    # A copy of the benchmark with other data is detected by its hash, not used.
    truth = TruthSource(Context.create(), [benches[0]])
    bench, note = truth.lookup("synthetic/ft/sim-2m/toy", "sha256:" + "0" * 64)
    assert bench is None and "other data" in note
    bench, note = truth.lookup("synthetic/ft/nothing/here", "sha256:0")
    assert bench is None and "not available here" in note


def test_groups_and_model_sizes() -> None:
    assert group_of("builtin/it/neox-1m/sentiment") == "builtin-it"
    assert group_of("builtin/ft/neox-1m/sentiment") == "builtin-ft"
    assert group_of("gptdynamics/ft/pythia-410m/rte") == "gptdynamics"
    assert group_of("recorded/ft/m/t") == "recorded-ft" and group_of("toy") == "toy"
    assert model_size("gptdynamics/it/pythia-2.8b/flan") == 2.8e9
    assert model_size("builtin/ft/neox-1m/sentiment") == 1e6
    assert model_size("synthetic/ft/simfluence/toy") is None and model_size("x/ft/gpt/t", 123) == 123.0
    assert format_size(4.1e8) == "410M" and format_size(None) == "unknown"


def test_published_and_measured_orderings() -> None:
    ranks = [MeanRank(m, {"seen": (r, 3, 3)}) for m, r in (("gptfluence-dot", 1.0), ("constant", 1.5), ("simfluence-linear", 2.0), ("tracin-cp", 3.0))]
    (it,) = orderings({"it": (("builtin-it",), ranks)})
    assert it.published == ("GPTfluence", "TracIn-CP", "Simfluence")  # by published MSE, 410M
    assert it.measured == ("gptfluence-dot", "simfluence-linear", "tracin-cp")


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp}"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: install Debian's chromium package (apt-get install -y chromium)")
def test_page_renders_and_sorts_in_headless_chromium(tmp_path: Path) -> None:
    page = (GOLDEN / "index.html").resolve()
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", f"{page.as_uri()}#selftest", tmp=tmp_path / "p1").stdout
    found = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert found, "the page's self-test wrote nothing: scripts did not run"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["pass"] and result["svgs"] == 9 and result["sortable"] >= 16
    assert result["asc"] == ["zero-line", "mean-trajectory", "constant"] and result["desc"] == ["constant", "mean-trajectory", "zero-line"]
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1400,2000", f"--screenshot={shot}", page.as_uri(), tmp=tmp_path / "p2")
    from matplotlib.image import imread

    img = imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1400)
    ink = (img.mean(axis=2) < 0.6).mean(axis=1)  # share of dark pixels in each pixel row
    assert (ink > 0.01).sum() > 300, "the screenshot is (nearly) blank"
    assert np.any(np.abs(img[..., 0] - img[..., 2]) > 0.3), "no coloured pixels: plots or highlights missing"


def test_the_speed_up_charges_a_method_for_the_cached_work_it_read() -> None:
    from tdabench.leaderboard.aggregate import borrowed_s

    assert borrowed_s({}) == 0.0  # a method without a cache
    assert borrowed_s({"score_tables_cached": "0 of 5 checkpoints", "cached_table_seconds": 0.0}) == 0.0
    assert borrowed_s({"score_tables_cached": "5 of 5 checkpoints", "cached_table_seconds": 12.5}) == 12.5
    assert borrowed_s({"residual_scale": 0.3, "inner": {"score_tables_cached": "1 of 1 checkpoints", "cached_table_seconds": 40.0}}) == 40.0
    # read from the cache, cost unknown (written before it was recorded): no speed-up is claimed
    assert borrowed_s({"inner": {"score_tables_cached": "1 of 1 checkpoints"}}) is None
    assert borrowed_s({"score_tables_cached": "0 of 1 checkpoints", "cached_table_seconds": None}) is None  # older factors


def test_a_setting_chosen_at_its_grid_edge_is_noted_on_the_row(work: tuple[Path, list[str]]) -> None:
    from tdabench.leaderboard.notes import grid_edge

    assert grid_edge({}) == "" and grid_edge({"variant_val_mse": [0.3, 0.1]}) == ""  # no grid; two candidates have no inside
    assert grid_edge({"variant_val_mse": [0.3, 0.1, 0.2]}) == ""  # an interior optimum
    last = "validation chose the last of 4 grid candidates (at the grid edge)"
    assert grid_edge({"variant_val_mse": [9.0, 1.0, 0.5, 0.1]}) == last
    assert grid_edge({"variant_val_mse": [0.1, 0.5, 1.0]}).startswith("validation chose the first of 3")
    assert grid_edge({"residual_scale": 0.5, "inner": {"variant_val_mse": [9.0, 1.0, 0.5, 0.1]}}) == last  # a -residual form
    assert grid_edge({"variant_val_mse": [None, "x"]}) == "" and grid_edge({"variant_val_mse": [float("nan")] * 3}) == ""

    root, _ = work
    path = _one_result(root)
    obj = json.loads(path.read_text())
    obj["fit_info"] = {"variant_val_mse": [9.0, 1.0, 0.5, 0.1]}
    path.write_text(json.dumps(obj))
    assert main(["leaderboard", "--results", "results", "--no-truth", "--out", "lb"]) == 0
    assert last in (root / "lb" / "synthetic-ft.md").read_text() and last in (root / "lb" / "index.html").read_text()
    rows = json.loads((root / "lb" / "leaderboard.json").read_text())["rows"]
    assert [r["method"] for r in rows if r.get("note") == last] == [obj["method"]]
    assert last in (root / "lb" / "leaderboard.csv").read_text()
