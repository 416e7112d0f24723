"""Mislabel identification: the scores, the ranking pipeline, retraining after fixing, the leaderboard section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tdabench.cli import main
from tdabench.run.context import Context
from tdabench.data import Benchmark
from tdabench.errors import TDABenchError
from tdabench.hookspecs import hookimpl
from tdabench.results.mislabel import FRACTIONS, candidates, detection, detection_auc, fraction_found, read
from tdabench.run.mislabel import Settings, fixed_batches, fixes_of, identify, rankers
from tdabench.simulator import Capabilities, MethodSpec, NoConfig

BENCH = "builtin/mislabel/ft/neox-1m/sentiment"


# -- the definitions -----------------------------------------------------------------------
def test_detection_auc_is_dattris_definition() -> None:
    # dattri's own unit test: scores 0..99, the last ten noisy: every flip first, auc 1.
    flags = np.zeros(100, bool)
    flags[90:] = True
    order, found, auc = detection(np.arange(100.0), flags)
    assert auc == pytest.approx(1.0) and found == {"0.1": 1.0, "0.2": 1.0, "0.3": 1.0, "0.4": 1.0}
    assert detection(-np.arange(100.0), flags)[2] == pytest.approx(0.0)
    # A hand-computed case: order F C F C; TPR 0 .5 .5 1 1, FPR 0 0 .5 .5 1: area .5*.5 + .5*1 = .75
    assert detection_auc(np.array([True, False, True, False])) == pytest.approx(0.75)
    # Equal to the Mann-Whitney statistic without ties: P(a flipped example outranks a clean one).
    rng = np.random.default_rng(0)
    s, f = rng.normal(size=200), rng.random(200) < 0.3
    mw = np.mean([a > b for a in s[f] for b in s[~f]])
    assert detection(s, f)[2] == pytest.approx(mw)


def test_fraction_found_counts_the_flips_in_the_top_share() -> None:
    hits = np.array([1, 0, 1, 1, 0, 0, 0, 1, 0, 0], bool)  # 4 flips in 10
    assert fraction_found(hits, (0.1, 0.2, 0.4, 1.0)) == {"0.1": 0.25, "0.2": 0.25, "0.4": 0.75, "1": 1.0}


def test_nan_suspicion_is_inspected_last() -> None:
    order, _, _ = detection(np.array([np.nan, 0.5, 2.0]), np.array([True, False, False]))
    assert order.tolist() == [2, 1, 0]


# -- the benchmark ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench() -> Benchmark:
    ctx = Context.create(progress=False)
    return ctx.registry.benchmarks(ctx)[BENCH].load()


def test_the_built_in_benchmark_flips_40_percent_and_tests_every_example(bench: Benchmark) -> None:
    cands = candidates(bench)
    assert len(cands.ids) == 128 and abs(cands.flipped.mean() - 0.4) < 0.01
    assert all(bad != good and good in set(bench.train.ids.tolist()) for bad, good in cands.clean.items())
    rows = bench.train.positions(np.array(list(cands.clean.items())))  # the flip has the other label, same prompt
    for (a, b) in rows[:5]:
        assert bench.train.prompts[a] == bench.train.prompts[b] and bench.train.targets[a] != bench.train.targets[b]


def test_a_benchmark_without_flips_is_refused_in_one_line(synthetic: tuple[Benchmark, object]) -> None:
    with pytest.raises(TDABenchError, match="records no flipped labels"):
        candidates(synthetic[0])


def test_fixing_replaces_only_the_inspected_flips(bench: Benchmark) -> None:
    cands = candidates(bench)
    from tdabench.results.mislabel import MislabelResult

    ranking = tuple(int(i) for i in cands.ids[np.argsort(~cands.flipped, kind="stable")])  # every flip first
    r = MislabelResult(key="k", status="ok", benchmark=bench.id, data_hash=bench.content_hash, method="oracle", n_candidates=128, ranking=ranking)
    fixes = fixes_of(r, cands)
    assert len(fixes) == 51 and fixes == {i: cands.clean[i] for i in ranking[:51]}
    batches = bench.run(bench.split.eval_runs[0]).batches
    fixed = fixed_batches(batches, fixes)
    assert not np.isin(fixed, list(fixes)).any() and (fixed != batches).sum() == np.isin(batches, list(fixes)).sum()


# -- the pipeline ----------------------------------------------------------------------------
class _Broken:
    """Fits, simulates the mean, and fails when asked to rank."""

    def __init__(self, config: NoConfig) -> None:
        self.config = config

    def fit(self, data: object) -> _Broken:
        return self

    def simulate(self, query: object) -> np.ndarray:
        raise NotImplementedError

    def self_influence(self, ids: np.ndarray) -> np.ndarray:
        raise RuntimeError("no self-influence today")


class BrokenPlugin:
    @hookimpl
    def tdabench_methods(self) -> list[MethodSpec]:
        return [MethodSpec("broken-ranker", _Broken, NoConfig, Capabilities(self_influence=True), summary="fails to rank")]


def test_mislabel_reports_every_ranking_and_a_failure_spoils_only_its_own(tmp_path: Path) -> None:
    out = tmp_path / "res"
    ctx = Context.create(progress=False)
    ctx.registry.register(BrokenPlugin(), "broken")
    from tdabench.run.runner import choose_methods

    choices = choose_methods(ctx, ["simfluence-linear", "broken-ranker"])
    b = ctx.registry.benchmarks(ctx)[BENCH].load()
    results = identify(b, choices, Settings(out=out, retrain_runs=2))
    by = {r.method: r for r in results}
    assert list(by) == ["random", "training-loss", "simfluence-linear", "broken-ranker"]
    assert by["broken-ranker"].status == "failed" and "no self-influence today" in by["broken-ranker"].error
    sf = by["simfluence-linear"]
    assert sf.status == "ok" and set(sf.fraction_found) == {f"{f:g}" for f in FRACTIONS} and 0.5 < sf.auc <= 1
    assert sf.fraction_found["0.4"] > 0.6  # far better than chance (0.4)
    fx = sf.fixing
    assert fx["inspected"] == 51 and fx["fixed"] == round(sf.fraction_found["0.4"] * 51)
    assert fx["all_fixed"]["accuracy"] >= fx["before"]["accuracy"] and fx["after"]["accuracy"] > fx["before"]["accuracy"]
    assert by["broken-ranker"].fixing == {}  # a failed ranking is not retrained
    for r in results:
        assert read(out / "builtin__mislabel__ft__neox-1m__sentiment" / "mislabel" / r.method / "seed-0.json") == r
        assert r.to_dict()["schema"] == "tdabench.mislabel/2" and r.key and r.provenance.versions["tdabench"]
    # The random baseline is an expectation over many orders: 0.5 and the share inspected, up to their noise.
    rnd = by["random"]
    assert abs(rnd.auc - 0.5) < 0.02 and all(abs(v - float(f)) < 0.03 for f, v in rnd.fraction_found.items())
    assert rnd.scores["auc"].ci95[0] < 0.5 < rnd.scores["auc"].ci95[1]
    # A rerun reuses every ranking and every retrained run; the failed one is tried again.
    store = out / "builtin__mislabel__ft__neox-1m__sentiment" / "mislabel" / "_retrained.json"
    before = store.read_bytes()
    again = identify(b, choices[:1], Settings(out=out, retrain_runs=2))
    assert [r.method for r in again] == ["random", "training-loss", "simfluence-linear"] and again[2] == sf
    assert store.read_bytes() == before
    # The leaderboard shows the section beside nothing else.
    assert main(["leaderboard", "--results", str(out), "--out", str(tmp_path / "lb")]) == 0
    md = (tmp_path / "lb" / "README.md").read_text()
    assert "## Mislabel identification" in md and "| simfluence-linear | method |" in md and "failed: " in md
    doc = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert {r["ranking"] for r in doc["mislabel"]} == {"random", "training-loss", "simfluence-linear", "broken-ranker"}
    assert 'id="mislabel"' in (tmp_path / "lb" / "index.html").read_text()


def test_a_method_that_cannot_rank_is_refused() -> None:
    ctx = Context.create(progress=False)
    from tdabench.run.runner import choose_methods

    with pytest.raises(TDABenchError, match="mean-trajectory declares no self-influence"):
        rankers(choose_methods(ctx, ["mean-trajectory"]))


def test_cli_ranks_without_retraining(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mislabel", "--method", "simfluence-additive", "--no-retrain", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "51 of the 128 examples trained and tested have flipped labels" in out and "simfluence-additive" in out and "training-loss" in out
