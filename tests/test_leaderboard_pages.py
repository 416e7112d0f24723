"""What the pages show beyond the golden fixture: cost against retraining and the front, seeds
combined, references, measured properties and benchmarks left out of the summaries."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdabench.leaderboard.collect import collect
from tdabench.leaderboard.exports import to_csv, to_json
from tdabench.leaderboard.html import page
from tdabench.leaderboard.markdown import group_page
from tdabench.leaderboard.model import assemble
from tdabench.leaderboard.plots import front, thin
from tdabench.leaderboard.samples import TruthSource

FIXTURE = Path(__file__).parent / "fixtures" / "leaderboard" / "results"
FT2, FT8 = "synthetic/ft/sim-2m/toy", "synthetic/ft/sim-8m/toy"
CURVE = {"steps": list(range(97)), "mean": [1.0 - 0.003 * k for k in range(97)], "p10": [0.9 - 0.003 * k for k in range(97)],
         "p90": [1.1 - 0.003 * k for k in range(97)]}


class Props(TruthSource):
    """Benchmark properties as the bank's index gives them, without a registry."""

    def __init__(self, props: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__(None)
        self.props = props

    def properties(self, benchmark: str) -> Mapping[str, Any]:
        return self.props.get(benchmark, {})


def _results(tmp: Path) -> Path:
    root = tmp / "results"
    shutil.copytree(FIXTURE, root)
    seen = root / "synthetic__ft__sim-2m__toy" / "loss" / "seen"
    # zero-line as a reference point, mean-trajectory under a second seed.
    ref = seen / "zero-line" / "seed-0.json"
    obj = json.loads(ref.read_text())
    ref.write_text(json.dumps({**obj, "ranked": False, "method": "retrain", "method_name": "retrain"}))
    ref.rename(ref.parent.parent / "retrain.json")
    src = seen / "mean-trajectory" / "seed-0.json"
    obj = json.loads(src.read_text())
    obj["seed"], obj["scores"]["skill_mse"]["mean"] = 1, obj["scores"]["skill_mse"]["mean"] + 0.05
    (src.parent / "seed-1.json").write_text(json.dumps(obj))
    return root


def test_cost_front_seeds_references_and_properties(tmp_path: Path) -> None:
    props = {FT2: {"run_seconds_per_run": 2.0, "fit_curve": CURVE, "targets": {"start": 1.0, "step1_over_step0": 1.01, "max_over_step0": 1.2,
                                                                                "final_over_step0": 0.71, "no_transient": False, "learned": False},
                   "label_accuracy": {"steps": [0, 96], "all": [0.5, 0.81]}},
             FT8: {"run_seconds_per_run": 3.0, "not_ranked": "its mean test loss rises to 1.20x its step-0 value"}}
    lb = assemble(collect([_results(tmp_path)]), Props(props), "tdabench leaderboard")
    t = next(t for t in lb.tables if (t.benchmark, t.trajectory, t.split) == (FT2, "loss", "seen"))
    rows = {r.result.method: r for r in t.rows}
    # The reference is shown, never ranked or marked best; the speed-up is n_runs x seconds per run / (fit + simulate).
    assert rows["retrain"].rank is None and rows["retrain"].reference and "retrain" not in t.best.get("skill_mse", frozenset())
    mt = rows["mean-trajectory"]
    assert mt.seeds == (0, 1) and mt.spread["skill_mse"][1] - mt.spread["skill_mse"][0] > 0.049
    assert mt.retrain_s == 5 * 2.0
    # The benchmark that misses its targets is left out of the tier summaries, and says why.
    assert lb.not_ranked(FT8) and not lb.not_ranked(FT2)
    skill = {ms.method: ms for ms in lb.skills["synthetic-ft"]["loss"]}
    assert skill["constant"].skill["seen"][1] == 1  # FT2 only
    assert set(lb.fronts["synthetic-ft"]) >= {"mean-trajectory", "retrain"}  # constant took 0 s: no speed-up to draw
    html, md = page(lb), group_page(lb, "synthetic-ft")
    assert "Not ranked in the tier summaries" in html and "Not ranked in the tier summaries" in md
    assert "Skill against cost" in html and html.count("<circle") >= 3 and "retrain (reference, not ranked)" in md
    assert "mean-trajectory (2 seeds)" in md and "2 seeds [" in md
    assert "- label accuracy: all 0.5 → 0.81 (steps 0 → 96)" in md and "- retraining cost: 2 s per run" in md
    assert "fit runs&#x27; mean test loss" in html
    assert re.search(r"\| [0-9.e+]+× \|", md)  # the speed-up column
    doc = json.loads(to_json(lb))
    row = next(r for r in doc["rows"] if r["benchmark"] == FT2 and r["split"] == "seen" and r["method"] == "mean-trajectory")
    assert row["seeds"] == [0, 1] and row["retrain_s"] == 10.0 and row["speedup"] > 0 and row["seed_spread"]["skill_mse"]
    assert doc["benchmarks"][FT8]["not_ranked"] and "fit_curve" not in json.dumps(doc)
    assert "retrain_s,speedup,seeds,reference" in to_csv(lb).splitlines()[0]


def test_front_and_thinning() -> None:
    pts = {"a": (0.01, 0.1), "b": (0.1, 0.5), "c": (0.2, 0.3), "d": (1.0, 0.9)}
    assert front(pts) == ["a", "b", "d"]  # c is dearer and less skilled than b
    assert thin(97).tolist()[0] == 0 and thin(97).tolist()[-1] == 96 and len(thin(97)) <= 25 and len(thin(10)) == 10
