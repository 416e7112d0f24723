"""The zero line against the two batch-blind lines it nests, on every bank benchmark.

    python scripts/zero_line_table.py                # Markdown table, `seen` split, loss
    python scripts/zero_line_table.py --only builtin/ft/neox-1m/sentiment

For each benchmark's evaluation runs on ``seen`` it gives the all-steps MSE of

- the zero line (``tdabench.methods.zero_line.ZeroLine``, the reference of skill),
- ``mean-trajectory``: each run's initial value plus the test example's mean change over the
  fit runs,
- the per-step mean level: the test example's mean value over the fit runs at each step (the
  initial value is given, as to every method),

each fitted on the fit runs only, as a method is. The zero line should be within 2% of the
better of the other two, or better (issue 23).
"""

from __future__ import annotations

import argparse

import numpy as np
from tdabench.methods.zero_line import ZeroLine
from tdabench.run.context import Context
from tdabench.run.views import fit_data, split_view
from tdabench.sources.bank import load, read_index


def table_row(bench_id: str, bench: object) -> tuple[float, float, float]:
    """(zero line, mean-trajectory, per-step level) all-steps MSE on the seen split."""
    fd = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")  # type: ignore[arg-type]
    view = split_view(bench, "seen", "loss", seed=0)  # type: ignore[arg-type]
    truth, q = view.truth, view.query
    col = {int(t): i for i, t in enumerate(fd.test.ids)}
    cols = np.array([col[int(t)] for t in q.test.ids])
    fit = fd.values[:, cols, :]  # [R_fit, n, K]
    change = (fit - fit[:, :, :1]).mean(axis=0)  # [n, K]
    mean_traj = q.initial[:, :, None] + change[None]
    level = np.broadcast_to(fit.mean(axis=0)[None], truth.shape).copy()
    level[:, :, 0] = q.initial
    zero = ZeroLine.fit(fd).predict(q)

    def mse(pred: np.ndarray) -> float:
        return float(np.mean((pred[:, :, 1:] - truth[:, :, 1:]) ** 2))

    return mse(zero), mse(mean_traj), mse(level)


def main() -> None:
    """Print the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="benchmark id (repeatable)")
    args = ap.parse_args()
    cache = Context.create(progress=False).cache_dir
    print("| benchmark | zero line | mean-trajectory | per-step level | zero line / better of the two |")
    print("| --- | --- | --- | --- | --- |")
    for entry in read_index():
        if args.only and entry["id"] not in args.only:
            continue
        z, m, lv = table_row(str(entry["id"]), load(entry, cache))
        print(f"| `{entry['id']}` | {z:.3e} | {m:.3e} | {lv:.3e} | {z / min(m, lv):.3f} |", flush=True)


if __name__ == "__main__":
    main()
