"""Text the renderers share: the legend, how ranks are taken, titles and headings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tdabench.leaderboard.aggregate import RANK_METRIC, Row, Table
from tdabench.leaderboard.fmt import num
from tdabench.recorder.properties import LEARNING_LIMIT, TRANSIENT_LIMIT
from tdabench.scores import LDS_MIN_RUNS

LEGEND = (
    f"Methods are ranked by `{RANK_METRIC}`, their skill over the zero line (the strongest batch-blind predictor the fit "
    "runs support): `1 - mse_all_steps / mse_all_steps(zero line)` on the same trajectories (higher is better; "
    "`zero-line` is 0, and a method below 0 has not shown it uses the data). "
    "`lds_final` is the linear datamodeling score (Spearman across evaluation runs of predicted vs true final "
    "values, per test example; undefined for batch-blind predictions). Score cells read "
    "*mean ± std [95% bootstrap CI]*: std over trajectories (over evaluation runs for "
    "`spearman_final`, over test examples for `lds_final`), CI by resampling test examples (paired for "
    "the skill). **Bold** marks the best value of a column. The gap (Δ mse) is the split's mean "
    "`mse_all_steps` minus the same method's on `seen`; fit and simulate are wall seconds, peak "
    "MiB the growth of resident memory. *n/a* rows give the reason the method cannot serve the split; "
    "*failed* rows give the error; *in-sample* rows were rescaled on the split's own truth (the published "
    "TracIn-CP protocol) and are never ranked."
)
RANK_HOW = (
    f"Each (benchmark, split) table ranks the methods scored there by `{RANK_METRIC}` "
    "(1 = best, ties averaged); an entry is a method's mean rank and, in parentheses, over how many "
    "of the benchmarks it was ranked. n/a, failed, undefined and in-sample cells are not ranked."
)
SKILL_HOW = (
    f"Median `{RANK_METRIC}` over the benchmarks that scored the method (in parentheses: how many, and "
    "on how many the skill's 95% CI lies above 0), and the pooled skill `1 - sum MSE / sum MSE_ref` over "
    "them; the zero line is 0 by construction. `early`, `mid` and `late` are the median skills on the first 10% "
    "of steps, the rest of the first half and the second half (seen split): a transient or a sustained "
    "attribution. `lds` is the median `lds_final` where it is defined and not low-power. Benchmarks that "
    "miss the bank's targets are shown but left out of these summaries."
)
#: The marker beside an ``lds_final`` over too few evaluation runs.
LOW_POWER = f"low power: < {LDS_MIN_RUNS} runs, not ranked"
COST_HOW = (
    "Each point is a method: its median skill (loss, seen split) over the ranked benchmarks of the tier, against "
    "the median of its fit plus simulate seconds as a share of retraining the evaluation runs (their count x the "
    "benchmark's recorded seconds per run; log scale). Up and left is better; the green line joins the front "
    "(no method both cheaper and more skilled), and the hollow red point is the `retrain` reference, never ranked."
)
HEADROOM_HOW = (
    "How much each benchmark leaves to attribute (loss, seen split): `zero line / constant` is the zero "
    "line's `mse_all_steps` over holding the initial value (near 1: the batch-blind baseline explains "
    "nothing of how runs move), and `share around mean` the share of the runs' change that lies around the "
    "evaluation runs' own mean change (0: every run moves alike, nothing to attribute)."
)


def property_lines(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A benchmark's measured properties as (label, value) pairs, for both renderers."""
    out: list[tuple[str, str]] = []
    t = props.get("targets")
    if isinstance(t, Mapping):
        out.append(("transient", f"max {t['max_over_step0']:.2f}x step 0, step 1 {t['step1_over_step0']:.2f}x "
                                 f"({'meets' if t['no_transient'] else 'misses'} the target <= {TRANSIENT_LIMIT}x)"))
        out.append(("learning", f"final {t['final_over_step0']:.2f}x step 0 (mean test loss {t['start']:.4g} at step 0; "
                                f"{'meets' if t['learned'] else 'misses'} the target <= {LEARNING_LIMIT}x)"))
    for key, name in (("label_accuracy", "label accuracy"), ("text_scores", "BLEU / ROUGE-L")):
        part = props.get(key)
        if isinstance(part, Mapping):
            steps = list(part.get("steps", []))
            vals = "; ".join(f"{g} {v[0]:.3g} → {v[-1]:.3g}" for g, v in part.items() if g != "steps")
            out.append((name, f"{vals} (steps {steps[0]} → {steps[-1]})" if steps else vals))
    h = props.get("headroom")
    if isinstance(h, Mapping) and h.get("reference_over_constant") is not None:
        out.append(("headroom", f"zero line / constant {h['reference_over_constant']:.3g}, share around the mean "
                                f"{num(h.get('around_mean_share'), 3)} (zero line mse {num(h.get('mse_reference'))})"))
    if props.get("run_seconds_per_run"):
        out.append(("retraining cost", f"{float(props['run_seconds_per_run']):.3g} s per run, as recorded here"))
    return out


def method_marks(row: Row) -> str:
    """What a method cell says beside the name: in-sample, reference, seeds."""
    r = row.result
    marks = [" (in-sample)" if r.in_sample else "", " (reference, not ranked)" if not r.ranked else "",
             f" ({len(row.seeds)} seeds)" if len(row.seeds) > 1 else ""]
    return "".join(marks)


def esc(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def group_title(group: str) -> str:
    """``builtin-it`` -> ``builtin/it``: the id prefix a group gathers."""
    return group.replace("-", "/", 1)


def table_heading(table: Table) -> str:
    """``loss · seen (5 runs × 24 test examples; zero line / constant 0.83)``."""
    shape = table.shape
    parts = [f"{shape[0]} runs × {shape[1]} test examples"] if shape else []
    ratio = table.headroom.get("reference_over_constant")
    if ratio is not None:
        parts.append(f"zero line / constant {ratio:.3g}")
    return f"{table.trajectory} · {table.split}" + (f" ({'; '.join(parts)})" if parts else "")
