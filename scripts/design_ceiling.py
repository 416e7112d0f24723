"""How much of a counterfactual benchmark's deviation its own design variable explains.

    python scripts/design_ceiling.py                 # every cf benchmark of the bank
    python scripts/design_ceiling.py --only builtin/cf/ft/neox-1m/sentiment-duplicate
    python scripts/design_ceiling.py --log           # log(1 + count): saturating effects

A diagnostic, not a method: it knows each training example's *group* (a mixture's task, a
task's label and template), which no simulator is given. Per recorded step k and test example
z, it ridge-regresses the deviation from the mean trajectory on the run's cumulative count of
each group up to step k, over the fit runs; the ridge strength is chosen on the validation runs.
It then predicts the evaluation runs from their initial values and batches alone, like any
simulator, and is scored by the leaderboard's ``skill_mse`` (per group on mixtures).

High skill here and low skill for every method means the runs differ in a way a group-level
linear model captures and the methods miss; low skill here means the deviation is not a
linear function of the group counts (docs/benchmarks.md, "What the design explains").
"""

from __future__ import annotations

import argparse

import numpy as np
from tdabench.bank import load, read_index
from tdabench.context import Context
from tdabench.data import Benchmark
from tdabench.helpers import MeanChange
from tdabench.recorder.designs import DesignSpec, grouping
from tdabench.recorder.tasks import load_task
from tdabench.scores import score_groups
from tdabench.simulator import RunBatches
from tdabench.views import fit_data, group_rows, split_view

LAMBDAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)


def cumulative_counts(runs: RunBatches, group_of: dict[int, int], n_groups: int) -> np.ndarray:
    """float64 [R, K, G]: how many examples of each group each run trained on up to each recorded step."""
    b = runs.batches  # [R, T, B]
    lookup = np.full(int(b.max(initial=0)) + 1, -1, dtype=np.int64)
    for i, g in group_of.items():
        if i < len(lookup):
            lookup[i] = g
    g = np.where(b >= 0, lookup[np.clip(b, 0, None)], -1)
    onehot = (g[..., None] == np.arange(n_groups)).sum(axis=2).astype(np.float64)  # [R, T, G]
    cum = np.concatenate([np.zeros((b.shape[0], 1, n_groups)), onehot.cumsum(axis=1)], axis=1)
    return cum[:, runs.steps, :]


def fit_predict(x_fit: np.ndarray, d_fit: np.ndarray, x_new: np.ndarray, lam: float) -> np.ndarray:
    """Ridge per step, shared across test examples: [R_new, n, K] deviations from [R, K, G] and [R, n, K]."""
    center = x_fit.mean(axis=0, keepdims=True)
    xf, xn = x_fit - center, x_new - center
    eye = np.eye(xf.shape[2])
    gram = np.einsum("rkg,rkh->kgh", xf, xf) + lam * eye  # [K, G, G]
    rhs = np.einsum("rkg,rnk->kgn", xf, d_fit)  # [K, G, n]
    w = np.linalg.solve(gram, rhs)  # [K, G, n]
    return np.einsum("rkg,kgn->rnk", xn, w)


def ceiling(bench: Benchmark, entry_task: str, log: bool = False) -> dict[str, object]:
    """The group-count model's skill on the seen split, and what it chose (``entry_task``: the
    recorder's task name, from the bank index; ``log``: regress on log(1 + count))."""
    design = bench.design
    assert design is not None, f"{bench.meta.description}: no design recorded"
    spec = DesignSpec(design.name, group_by=str(design.options.get("group_by", "auto")))
    by = grouping(spec, bench.meta.setting)
    names_of = load_task(str(entry_task)).groups(by)
    names = sorted(set(names_of.values()))
    group_of = {i: names.index(g) for i, g in names_of.items()}
    fd = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    view = split_view(bench, "seen", "loss", seed=0)
    mean = MeanChange.fit(fd)
    changes = mean.changes(fd.test.ids, fd.values.shape[2])[None]

    def deviation(values: np.ndarray) -> np.ndarray:
        return values - values[:, :, :1] - changes

    def features(runs: RunBatches) -> np.ndarray:
        x = cumulative_counts(runs, group_of, len(names))
        return np.log1p(x) if log else x

    x_fit, x_val = features(fd.runs), features(fd.validation)
    d_fit = deviation(fd.values)
    val_mse = {lam: float(((fit_predict(x_fit, d_fit, x_val, lam) - deviation(fd.validation_values))[..., 1:] ** 2).mean())
               for lam in LAMBDAS}
    lam = min(LAMBDAS, key=lambda v: (val_mse[v], -v))
    ref = mean.predict(view.query)
    pred = ref + fit_predict(x_fit, d_fit, features(view.query.runs), lam)
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
