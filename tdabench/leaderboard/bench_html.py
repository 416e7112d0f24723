"""The page's per-benchmark header (measured properties, the fit runs' curve, why it is not
ranked) and each tier's skill-against-cost figure."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from tdabench.leaderboard.model import Leaderboard
from tdabench.leaderboard.plots import curve_svg, front_svg
from tdabench.leaderboard.text import COST_HOW, property_lines


def benchmark_html(lb: Leaderboard, bench: str) -> str:
    """The benchmark's measured properties, its fit runs' test-loss curve and, when it is left out
    of the tier summaries, why."""
    props: Mapping[str, Any] = lb.properties.get(bench, {})
    out = []
    why = lb.not_ranked(bench)
    if why:
        out.append(f'<p class="nr"><b>Not ranked in the tier summaries</b>: {escape(why)}. Its tables are shown for reference.</p>')
    items = property_lines(props)
    if items:
        out.append('<dl class="props">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>")
    curve = props.get("fit_curve")
    if isinstance(curve, Mapping) and all(k in curve for k in ("steps", "mean", "p10", "p90")):
        svg = curve_svg(curve, f"{bench}: fit runs' mean test loss")
        out.append(f"<figure>\n{svg}<figcaption>What the benchmark asks a method to predict: the fit runs' mean test loss per step "
                   "(line: mean over runs; band: their 10th to 90th percentile; dashed: step 0).</figcaption>\n</figure>")
    return "\n".join(out)


def front_html(lb: Leaderboard, group: str, title: str) -> str:
    """The tier's skill-against-cost figure, or '' when no cell records its benchmark's retraining cost."""
    pts = lb.fronts.get(group)
    if not pts:
        return ""
    svg = front_svg(pts, sorted(lb.references), f"{title}: skill against cost")
    if not svg:
        return ""
    return f'<h3>Skill against cost</h3>\n<figure>\n{svg}<figcaption>{escape(COST_HOW)}</figcaption>\n</figure>'
