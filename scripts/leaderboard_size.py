"""Measure what `tdabench leaderboard` writes for a full bank, on a realistic synthetic result set.

    python scripts/leaderboard_size.py                    # 30 methods, 10 of them under 3 seeds
    python scripts/leaderboard_size.py --methods 8 --keep /tmp/lb

Every bank benchmark (``tdabench/bank/index.json``) gets, on each of its trajectories and the
four splits, one cell per method and seed, as `tdabench run` writes them: every cell score,
group scores on mixtures, plot samples (3 test examples of one run, every step), a config,
the split's headroom and provenance. The scores are random but plausible. The leaderboard is
then generated from them with the bank's properties (``--benchmark builtin``), and the size
of each output file is printed; issue 22 asks for under 15 MB together.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.cli import main as tdabench_main
from tdabench.results.provenance import Provenance
from tdabench.results.record import CellResult, result_path, write_json
from tdabench.scores import SCORE_NAMES, Score

BANK = Path(__file__).resolve().parents[1] / "tdabench" / "bank" / "index.json"
SPLITS = ("seen", "unseen-train", "unseen-test", "unseen-both")


def _score(rng: np.random.Generator, name: str, n: int) -> Score:
    m = float(rng.normal(0.2, 0.4)) if name.startswith(("skill", "lds", "spearman")) else float(rng.gamma(2.0, 0.05))
    w = abs(float(rng.normal(0.05, 0.02)))
    return Score(m, abs(float(rng.normal(0.1, 0.03))), (m - w, m + w), n)


def write_results(root: Path, n_methods: int, n_stochastic: int, seed: int = 0) -> int:
    """Write the synthetic result set under ``root``; return the number of cells."""
    rng = np.random.default_rng(seed)
    methods = ["zero-line", "retrain"] + [f"method-{k:02d}" for k in range(n_methods - 2)]
    cells = 0
    for e in json.loads(BANK.read_text(encoding="utf-8"))["benchmarks"]:
        n_steps, n_eval = int(e["n_steps"]), int(e["n_eval_runs"])
        groups = ("sentiment", "entailment", "webnlg") if "mixture" in str(e["id"]) else ()
        for traj in e["trajectories"]:
            for split in SPLITS:
                na = split == "unseen-train" and not e.get("n_unseen_runs")
                ref = {"mse_reference": float(rng.gamma(2, 0.05)), "mse_constant": float(rng.gamma(2, 0.1)),
                       "reference_over_constant": float(rng.uniform(0.2, 1)), "around_mean_share": float(rng.uniform(0, 0.5))}
                truth = rng.normal(1.0, 0.2, size=(3, n_steps + 1))
                for k, method in enumerate(methods):
                    seeds = (0, 1, 2) if 2 <= k < 2 + n_stochastic else (0,)
                    for s in seeds:
                        n = n_eval * int(e["n_test"])
                        scores = {name: _score(rng, name, n) for name in SCORE_NAMES}
                        common: dict[str, Any] = dict(key=f"{k:04d}{s}", benchmark=str(e["id"]), data_hash=str(e["content_hash"]), method=method,
                                      method_name=method, method_version="1", distribution="tdabench 0.1.0", origin="synthetic",
                                      config={"params": "linear", "damping": 0.001, "lr": 0.01} if k % 3 == 0 else {"alpha": 0.5},
                                      seed=s, trajectory=str(traj), split=split, n_runs=n_eval, n_test=int(e["n_test"]),
                                      provenance=Provenance({"tdabench": "0.1.0", "python": "3.11"}, "abc123", "tdabench run --benchmark builtin",
                                                            s, "Linux x86_64, 2 CPUs", "2026-12-05T00:00:00+00:00"))
                        if na:
                            r = CellResult(status="n/a", reason="the benchmark has no evaluation runs on unseen training examples", **common)
                        else:
                            r = CellResult(status="ok", scores=scores, reference=ref, fit_s=float(rng.gamma(2, 20)), simulate_s=float(rng.gamma(2, 2)),
                                           peak_mem_mb=float(rng.gamma(2, 100)), ranked=method != "retrain",
                                           group_scores={g: {name: _score(rng, name, n // 3) for name in SCORE_NAMES} for g in groups},
                                           samples={"run": "eval-0", "test_ids": [0, 5, 9], "steps": list(range(n_steps + 1)),
                                                    "predicted": (truth + rng.normal(0, 0.05, truth.shape)).round(5).tolist(),
                                                    "true": truth.round(5).tolist()}, **common)
                        write_json(result_path(root, r.benchmark, r.trajectory, r.split, r.method, r.seed), r)
                        cells += 1
    return cells


def main() -> None:
    """Write the result set, generate the leaderboard and print the sizes."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", type=int, default=30)
    ap.add_argument("--stochastic", type=int, default=10, help="methods run under 3 seeds")
    ap.add_argument("--keep", type=Path, help="also copy the generated leaderboard here")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = write_results(root / "results", opts.methods, opts.stochastic)
        tdabench_main(["leaderboard", "--results", str(root / "results"), "--benchmark", "builtin", "--out", str(root / "lb")])
        total = 0
        for p in sorted((root / "lb").iterdir()):
            total += p.stat().st_size
            print(f"{p.stat().st_size / 1e6:8.3f} MB  {p.name}")
        print(f"{total / 1e6:8.3f} MB  total, from {n} cells ({opts.methods} methods, {opts.stochastic} of them under 3 seeds)")
        if opts.keep:
            shutil.rmtree(opts.keep, ignore_errors=True)
            shutil.copytree(root / "lb", opts.keep)


if __name__ == "__main__":
    main()
