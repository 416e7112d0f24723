"""How much of a counterfactual benchmark's deviation its own design variable explains.

    python scripts/design_ceiling.py                 # every cf benchmark of the bank
    python scripts/design_ceiling.py --only builtin/cf/ft/neox-1m/sentiment-duplicate
    python scripts/design_ceiling.py --log           # log(1 + count): saturating effects

A diagnostic, not a method: it knows each training example's *group* (a mixture's task, a
task's label and template), which no simulator is given. Per recorded step k and test example
z, it ridge-regresses the deviation from the mean trajectory on the run's cumulative count of
each group up to step k, over the fit runs, with the ridge strength cross-validated: the
``cluster-datamodel`` method with the true groups in place of its k-means clusters.
It then predicts the evaluation runs from their initial values and batches alone, like any
simulator, and is scored by the leaderboard's ``skill_mse`` (per group on mixtures).

High skill here and low skill for every method means the runs differ in a way a group-level
linear model captures and the methods miss; low skill here means the deviation is not a
linear function of the group counts (docs/benchmarks.md, "What the design explains").
"""

from __future__ import annotations

import argparse

import numpy as np
from tdabench.sources.bank import load, read_index
from tdabench.run.context import Context
from tdabench.data import Benchmark
from tdabench.methods.zero_line import ZeroLine
from tdabench.recorder.designs import DesignSpec, grouping
from tdabench.recorder.tasks import load_task
from tdabench.methods.residual import residual_values
from tdabench.scoring import score_groups
from tdabench.run.views import fit_data, group_rows, split_view
from tdabench_plugins.datamodel._model import ClusterDatamodelConfig, _cv_mse
from tdabench_plugins.datamodel._solve import cumulative_counts, ridge, ridge_predict


def ceiling(bench: Benchmark, entry_task: str, log: bool = False) -> dict[str, object]:
    """The group-count model's skill on the seen split, and what it chose (``entry_task``: the
    recorder's task name, from the bank index; ``log``: regress on log(1 + count)).

    It is the cluster datamodel (same ridge, same cross-validation of lambda) with the true
    groups in place of its k-means clusters.
    """
    design = bench.design
    assert design is not None, f"{bench.meta.description}: no design recorded"
    spec = DesignSpec(design.name, group_by=str(design.options.get("group_by", "auto")))
    by = grouping(spec, bench.meta.setting)
    names_of = load_task(entry_task).groups(by)
    names = sorted(set(names_of.values()))
    fd = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    view = split_view(bench, "seen", "loss", seed=0)
    ids = np.array(sorted(names_of), dtype=np.int64)
    labels = np.array([names.index(names_of[int(i)]) for i in ids], dtype=np.int64)

    def features(runs: object) -> np.ndarray:
        x = cumulative_counts(runs, ids, labels, len(names))  # type: ignore[arg-type]
        return np.log1p(x) if log else x

    mean = ZeroLine.fit(fd)
    dev, dev_val = (residual_values(mean, v, fd.test.ids) for v in (fd.values, fd.validation_values))
    cfg = ClusterDatamodelConfig()
    folds = np.array_split(np.random.default_rng(0).permutation(len(fd.runs)), min(cfg.folds, len(fd.runs)))
    X = features(fd.runs)
    cv = {lam: _cv_mse(X, dev, features(fd.validation), dev_val, folds, lam) for lam in cfg.lambdas}
    lam = min(cfg.lambdas, key=lambda v: (cv[v], -v))
    ref = mean.predict(view.query)
    pred = ref + ridge_predict(ridge(X, dev, lam), features(view.query.runs))
    gnames, rows = group_rows(bench, view.query.test.ids)
    scores, _ = score_groups(pred, view.truth, ref, rows if len(rows) >= 2 else None, group_names=gnames)
    return {"grouping": by, "groups": len(names), "lambda": lam, "skill": scores["skill_mse"]}


def main() -> None:
    """Print the Markdown table of docs/benchmarks.md."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="benchmark id (repeatable)")
    ap.add_argument("--log", action="store_true", help="regress on log(1 + count) instead of the count")
    args = ap.parse_args()
    cache = Context.create(progress=False).cache_dir
    print("| benchmark | groups | group-count model: skill_mse [95% CI] |")
    print("| --- | --- | --- |")
    for entry in read_index():
        if entry.get("tier") != "cf" or (args.only and entry["id"] not in args.only):
            continue
        out = ceiling(load(entry, cache), str(entry["task"]), log=args.log)
        s = out["skill"]
        print(f"| `{entry['id']}` | {out['groups']} ({out['grouping']}) | {s.mean:+.3f} [{s.ci95[0]:+.3f}, {s.ci95[1]:+.3f}] |", flush=True)


if __name__ == "__main__":
    main()
