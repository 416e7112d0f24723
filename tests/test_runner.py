"""The runner: cells, n/a, failures, reuse, resumption, and that nothing leaks from evaluation runs."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from probes import probe_source
from tdabench.cli import main
from tdabench.run.context import Context
from tdabench.data import SPLITS, Benchmark
from tdabench.hookspecs import hookimpl
from tdabench.results.record import read_results, result_path
from tdabench.run.runner import RunPlan, choose_methods, execute
from tdabench.simulator import Capabilities, FitData, MethodSpec, Query
from tdabench.simulator import BenchmarkRef
from tdabench.sources.synthetic import SyntheticTruth
from tdabench.testing import corrupt_evaluation
from tdabench.run.views import fit_test_ids

PLUGIN = probe_source(
    '''
    class Boom(Hold):
        def simulate(self, query):
            raise RuntimeError("boom in simulate")

    class FitBoom(Hold):
        def fit(self, data):
            raise ValueError("cannot fit")

    class NaNs(Hold):
        def simulate(self, query):
            out = np.repeat(query.initial[:, :, None], query.shape[2], axis=2)
            out[0, 0, 1] = np.nan
            return out

    class Shape(Hold):
        def simulate(self, query):
            return np.zeros(query.shape[1:])

    class Drift(Hold):
        def simulate(self, query):
            return np.repeat(query.initial[:, :, None], query.shape[2], axis=2) + 1.0

    class Slow(Hold):
        def simulate(self, query):
            import time
            if len(query.test) < 10:  # the withheld-test splits take their time
                time.sleep(60)
            return np.repeat(query.initial[:, :, None], query.shape[2], axis=2)

    @hookimpl
    def tdabench_methods():
        caps = Capabilities(unseen_test=True, unseen_train=True)
        return [MethodSpec(n, c, capabilities=caps) for n, c in
                [("boom", Boom), ("fit-boom", FitBoom), ("nans", NaNs), ("shape", Shape), ("drift", Drift), ("slow", Slow)]]
    '''
)


@pytest.fixture
def bad_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "bad_methods.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "bad_methods"
    sys.modules.pop("bad_methods", None)


def _expected_baselines(bench: Benchmark, split: str) -> dict[str, float]:
    """mse_all_steps of the baselines computed straight from the arrays."""
    from tdabench.run.views import split_parts

    names, tests = split_parts(bench, split)
    rows = bench.test.positions(tests)
    truth = np.stack([bench.run(n).trajectories["loss"].values[rows] for n in names])
    # seen and unseen-train: fitted on every test example; the unseen-test splits: on the others.
    fit_ids = fit_test_ids(bench, "withheld-test" if split in ("unseen-test", "unseen-both") else "all-test")
    fit = np.stack([bench.run(n).trajectories["loss"].values[bench.test.positions(fit_ids)] for n in bench.split.fit_runs])
    delta = (fit - fit[:, :, :1]).mean(0)  # [n_fit, K]
    if split in ("unseen-test", "unseen-both"):
        delta = np.broadcast_to(delta.mean(0), (len(tests), delta.shape[1]))
    const = truth[:, :, :1]
    mean_traj = truth[:, :, :1] + delta[None]
    return {
        "constant": float(((const - truth)[:, :, 1:] ** 2).mean()),
        "mean-trajectory": float(((mean_traj - truth)[:, :, 1:] ** 2).mean()),
    }


def test_baselines_on_every_split_match_direct_computation(synthetic_dir: Path, synthetic: tuple[Benchmark, SyntheticTruth], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--benchmark", str(synthetic_dir), "--out", str(tmp_path / "res"), "--json", "--no-progress"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "tdabench.run/2"
    got = {(r["method"], r["split"]): r for r in doc["results"]}
    assert {s for _, s in got} == set(SPLITS)
    for split in SPLITS:
        expected = _expected_baselines(synthetic[0], split)
        for method, mse in expected.items():
            r = got[(method, split)]
            assert r["status"] == "ok"
            assert r["scores"]["mse_all_steps"]["mean"] == pytest.approx(mse, rel=1e-9)
            assert set(r["scores"]) == set(doc["score_keys"])
            assert r["provenance"]["versions"]["numpy"] == np.__version__
            assert r["data_hash"] == synthetic[0].content_hash
    gap = got[("constant", "unseen-test")]["generalization_gap"]["mse_all_steps"]
    assert gap == pytest.approx(got[("constant", "unseen-test")]["scores"]["mse_all_steps"]["mean"] - got[("constant", "seen")]["scores"]["mse_all_steps"]["mean"])
    # The mean-trajectory baseline uses the dynamics, so it beats holding the value.
    assert got[("mean-trajectory", "seen")]["scores"]["mse_all_steps"]["mean"] < got[("constant", "seen")]["scores"]["mse_all_steps"]["mean"]
    # The zero line is the reference of skill_mse, so its skill is exactly 0 on every split, and
    # it is at least as good as the mean trajectory where the fit chose it.
    for split in SPLITS:
        assert got[("zero-line", split)]["scores"]["skill_mse"]["mean"] == pytest.approx(0.0, abs=1e-12)
        for phase in ("early", "mid", "late"):
            assert got[("zero-line", split)]["scores"][f"skill_mse_{phase}"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert got[("zero-line", "seen")]["scores"]["mse_all_steps"]["mean"] <= 1.02 * got[("mean-trajectory", "seen")]["scores"]["mse_all_steps"]["mean"]


def test_table_output(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    # The first screen: one compact table per benchmark, methods ranked by skill with its interval, LDS and time.
    assert "seen split: methods ranked by skill over the zero line" in out and "95% CI" in out and "lds" in out
    assert "unseen-train: " in out and "mse_all_steps" not in out
    lines = out.splitlines()
    ranked = [ln.split()[1] for ln in lines if ln.split() and ln.split()[0].isdigit()]
    assert ranked[0] != "constant" and "zero-line" in ranked and "constant" in ranked
    # The full grid is behind --verbose.
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(tmp_path / "res"), "--verbose"]) == 0
    out = capsys.readouterr().out
    for word in ("mse_all_steps", "spearman_final", "skill_mse_early", "constant", "mean-trajectory", "unseen-train", "unseen-test", "seen"):
        assert word in out


class _Spy:
    """Records what it is given (pickled into $SPY_DIR, from its worker process); predicts by
    replaying the mean delta (uses fit data only)."""

    def __init__(self, config: object) -> None:
        self.config = config

    def _record(self, obj: object) -> None:
        import pickle
        import uuid

        if "SPY_DIR" in os.environ:
            (Path(os.environ["SPY_DIR"]) / f"{uuid.uuid4().hex}.pkl").write_bytes(pickle.dumps(obj))

    def fit(self, data: FitData) -> _Spy:
        self._record(data)
        self.delta_ = (data.values - data.values[:, :, :1]).mean((0, 1))
        return self

    def simulate(self, query: Query) -> np.ndarray:
        self._record(query)
        return query.initial[:, :, None] + self.delta_[None, None, :]


def _spy_context() -> Context:
    ctx = Context.create(progress=False)
    ns = SimpleNamespace(tdabench_methods=hookimpl(lambda: [MethodSpec("spy", _Spy, capabilities=Capabilities(unseen_test=True, unseen_train=True))]))
    ctx.registry.register(ns, "spy-plugin")
    return ctx


def test_nothing_leaks_from_evaluation_runs(synthetic: tuple[Benchmark, SyntheticTruth], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    bench = synthetic[0]
    ctx = _spy_context()
    spy_dir = tmp_path / "spy"
    spy_dir.mkdir()
    monkeypatch.setenv("SPY_DIR", str(spy_dir))
    preds = {}
    for tag, b in (("clean", bench), ("corrupt", corrupt_evaluation(bench))):
        ref = BenchmarkRef(b.id, "", lambda b=b: b)
        plan = RunPlan((ref,), tuple(choose_methods(ctx, [])), tmp_path / tag, progress=False)
        results = execute(ctx, plan)
        assert {r.status for r in results} <= {"ok", "n/a"}, [r.error for r in results if r.status == "failed"]
        ok = [r for r in results if r.status == "ok"]
        assert {r.method for r in ok} >= {"spy", "constant", "mean-trajectory"}
        preds[tag] = {(r.method, r.split): np.load(result_path(tmp_path / tag, r.benchmark, r.trajectory, r.split, r.method, r.seed).with_suffix(".npz"))["pred"] for r in ok}
    # Every registered method predicts the same whatever the evaluation runs hold after step 0.
    for key, p in preds["clean"].items():
        np.testing.assert_array_equal(p, preds["corrupt"][key], err_msg=str(key))
    seen = [pickle.loads(f.read_bytes()) for f in spy_dir.iterdir()]
    fits = [d for d in seen if isinstance(d, FitData)]
    queries = [q for q in seen if isinstance(q, Query)]
    assert len(fits) == 4 and len(queries) == 8  # two fits (all-test, withheld-test) x two benchmarks; four splits each
    heldout = set(bench.split.heldout_test_ids)
    for data in fits:
        assert set(data.runs.names) == set(bench.split.fit_runs)
        assert set(data.validation.names) == set(bench.split.validation_runs)
        withheld = not heldout & set(data.test.ids.tolist())
        assert withheld or set(data.test.ids.tolist()) == set(bench.test.ids.tolist())  # the other fit sees every test example
    for q in queries:
        assert not set(q.runs.names) & set(bench.split.fit_runs)
        assert {f.name for f in dataclasses.fields(q)} == {"trajectory", "runs", "test", "initial", "train", "seed"}
        assert q.initial.shape == q.shape[:2]


def test_failures_are_recorded_and_the_run_goes_on(synthetic_dir: Path, tmp_path: Path, bad_plugin: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    argv = ["run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", bad_plugin, "--no-progress", "--split", "seen"]
    for m in ("boom", "fit-boom", "nans", "shape", "drift", "constant"):
        argv += ["--method", m]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "5 cell(s) failed" in err
    results = {r.method: r for r in read_results(out)}
    assert results["constant"].status == "ok"
    assert results["boom"].error.startswith("simulate: RuntimeError: boom in simulate (at bad_methods.py:")
    assert results["fit-boom"].error.startswith("fit: ValueError: cannot fit")
    assert "NaN or infinite" in results["nans"].error
    assert "returned shape" in results["shape"].error
    assert "query.initial" in results["drift"].error
    assert all(not r.scores for m, r in results.items() if m != "constant")
    assert not list(out.rglob("*.tmp"))


def test_results_are_reused_and_force_recomputes(synthetic_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    argv = ["run", "--benchmark", str(synthetic_dir), "--out", str(out), "--no-progress", "--method", "constant"]
    assert main(argv) == 0
    files = sorted(out.rglob("*.json"))
    stamps = [os.stat(f).st_mtime_ns for f in files]
    assert main(argv) == 0
    assert [os.stat(f).st_mtime_ns for f in files] == stamps
    assert main([*argv, "--force"]) == 0
    assert all(os.stat(f).st_mtime_ns != s for f, s in zip(files, stamps))
    # Written atomically through a temp file, yet with the mode open() would give (not mkstemp's 0600).
    umask = os.umask(0)
    os.umask(umask)
    assert {os.stat(f).st_mode & 0o777 for f in out.rglob("seed-*.*")} == {0o666 & ~umask}


def test_sigterm_stops_the_workers_and_a_rerun_resumes(synthetic_dir: Path, tmp_path: Path, bad_plugin: str) -> None:
    import signal
    import subprocess
    import time

    out = tmp_path / "res"
    argv = [sys.executable, "-m", "tdabench.cli", "run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", bad_plugin,
            "--no-progress", "--method", "slow"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # the plugin module's folder is on sys.path
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.rglob("seed-0.json"))) < 2:  # seen and unseen-train are written first
        time.sleep(0.2)
    children = _children(proc.pid)
    assert children, "the run has no worker process"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    assert time.monotonic() - t0 < 10
    time.sleep(0.5)
    assert not [p for p in children if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
    done = {r.split: r for r in read_results(out) if r.status == "ok"}
    assert set(done) == {"seen", "unseen-train"}  # saved before the stop
    stamps = {f: os.stat(f).st_mtime_ns for f in out.rglob("*.json")}
    assert main(["run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", bad_plugin, "--no-progress", "--method", "slow",
                 "--split", "seen", "--split", "unseen-train"]) == 0
    assert {f: os.stat(f).st_mtime_ns for f in stamps} == stamps  # the finished cells are reused


def _children(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (Linux /proc)."""
    kids: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids + [g for k in kids for g in _children(k)]


def test_capabilities_give_reasoned_na(synthetic: tuple[Benchmark, SyntheticTruth], tmp_path: Path) -> None:
    ctx = Context.create(progress=False)
    limited = MethodSpec("limited", _Spy, capabilities=Capabilities(unseen_test=False, unseen_train=False, text_trajectories=False, needs_checkpoints=False))
    ns = SimpleNamespace(tdabench_methods=hookimpl(lambda: [limited]))
    ctx.registry.register(ns, "limited-plugin")
    bench = synthetic[0]
    plan = RunPlan((BenchmarkRef(bench.id, "", lambda: bench),), tuple(choose_methods(ctx, ["limited"])), tmp_path, trajectories=("loss", "bleu", "rouge2"), progress=False)
    res = {(r.trajectory, r.split): r for r in execute(ctx, plan)}
    assert res[("loss", "seen")].status == "ok"
    assert res[("loss", "unseen-test")].reason == "the method cannot predict test examples it was not fitted on"
    assert res[("loss", "unseen-train")].reason == "the method cannot use training examples it was not fitted on"
    assert res[("bleu", "seen")].reason == "the method handles loss trajectories only, not bleu"
    assert res[("rouge2", "seen")].reason == "the benchmark records no 'rouge2' trajectories"
    assert all(r.status == "n/a" and not r.scores for k, r in res.items() if k != ("loss", "seen"))


def test_single_run_directory_is_reported_not_crashed(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = next((synthetic_dir / "runs" / "toy").iterdir())
    assert main(["run", "--benchmark", str(run_dir), "--out", str(tmp_path / "r"), "--method", "constant", "--json", "--no-progress"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in doc["results"]} == {"n/a"}
    assert "no evaluation runs" in doc["results"][0]["reason"]



VERSIONED = probe_source(
    '''
    class Offset(Hold):
        def simulate(self, query):
            out = super().simulate(query)
            out[:, :, 1:] += OFFSET
            return out

    OFFSET = {offset}

    @hookimpl
    def tdabench_methods():
        caps = Capabilities(unseen_test=True, unseen_train=True)
        return [MethodSpec("changing", Offset, capabilities=caps, version="{version}"),
                MethodSpec("steady", Offset, capabilities=caps, version="1")]
    '''
)


def test_a_bumped_method_version_recomputes_that_method_only(synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "res"
    argv = ["run", "--benchmark", str(synthetic_dir), "--out", str(out), "-p", "versioned_methods", "--no-progress",
            "--method", "changing", "--method", "steady", "--split", "seen"]

    def run(offset: float, version: str) -> dict[str, int]:
        (tmp_path / "versioned_methods.py").write_text(VERSIONED.format(offset=offset, version=version))
        sys.modules.pop("versioned_methods", None)
        assert main(argv) == 0
        return {r.method: os.stat(result_path(out, r.benchmark, r.trajectory, r.split, r.method, r.seed)).st_mtime_ns for r in read_results(out)}

    first = run(0.0, "1")
    assert "2 cell(s) computed, 0 reused" in capsys.readouterr().err
    # The code changes its numbers but keeps its version: the old results are served (the author's
    # duty is to bump the version)...
    assert run(0.001, "1") == first
    assert "0 cell(s) computed, 2 reused" in capsys.readouterr().err
    # ...and once the version is bumped, that method's cells are recomputed, and only those.
    third = run(0.001, "2")
    assert "1 cell(s) computed, 1 reused" in capsys.readouterr().err
    assert third["steady"] == first["steady"] and third["changing"] != first["changing"]
    assert {r.method: r.method_version for r in read_results(out)} == {"changing": "2", "steady": "1"}
    sys.modules.pop("versioned_methods", None)
