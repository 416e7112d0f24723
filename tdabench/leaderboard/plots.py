"""Figures for the leaderboard page, as inline SVG text with stable bytes.

No pyplot and no global backend switch: figures are built with ``matplotlib.figure.Figure``
and saved as SVG under fixed settings (hash salt, no date, text as text), so regenerating a
page gives the same bytes.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from tdabench.leaderboard.collect import format_size
from tdabench.leaderboard.samples import Samples

_RC: dict[str, Any] = {
    "svg.hashsalt": "tdabench-leaderboard",
    "svg.fonttype": "none",  # text stays text: smaller, and independent of glyph rendering
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.prop_cycle": cycler(color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]),
}
_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


@contextmanager
def _style() -> Iterator[None]:
    """Matplotlib's own defaults plus ours, whatever the user's matplotlibrc or style says."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        # matplotlib's stub keys rcParams by a Literal of its known names; ours are among them.
        matplotlib.rcParams.update(_RC)  # type: ignore[arg-type]
        yield


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), with deterministic ids and no date."""
    buf = io.StringIO()
    with _style():
        fig.savefig(buf, format="svg", metadata=_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # Many figures share one page: drop the ids nothing references ("figure_1", "axes_1", ...),
    # which would repeat across figures; the referenced ones are content hashes, unique per content.
    used = set(re.findall(r"#([A-Za-z_][\w.-]*)", text))
    text = re.sub(r' id="([^"]+)"', lambda m: m.group(0) if m.group(1) in used else "", text)
    return re.sub(r"\n\s*\n", "\n", text).strip() + "\n"


def _figure(width: float, height: float) -> Figure:
    with _style():
        return Figure(figsize=(width, height), layout="constrained")


def trajectory_svg(s: Samples) -> str:
    """One panel per method: sampled test examples, true (solid) vs predicted (dashed)."""
    methods = list(s.preds)
    ncols = min(4, max(1, len(methods)))
    nrows = max(1, math.ceil(len(methods) / ncols))
    colors = _RC["axes.prop_cycle"].by_key()["color"]
    with _style():
        fig = _figure(max(3.0 * ncols, 6.0), 2.3 * nrows + 0.6)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
        for ax, method in zip(axes.flat, methods):
            for j in range(len(s.test_ids)):
                c = colors[j % len(colors)]
                if s.truth is not None:
                    ax.plot(s.steps, s.truth[j], color=c, lw=1.4)
                ax.plot(s.steps, s.preds[method][j], color=c, lw=1.2, ls="--")
            ax.set_title(method)
            ax.grid(alpha=0.3, lw=0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in axes.flat[len(methods):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("step")
        for ax in axes[:, 0]:
            ax.set_ylabel(s.trajectory)
        what = "true (solid) vs predicted (dashed)" if s.truth is not None else "predicted only (dashed)"
        fig.suptitle(f"{s.benchmark} · {s.split}: {what}", fontsize=8)
        # Colours name the test examples; line styles say true or predicted.
        handles = [Line2D([], [], color=colors[j % len(colors)], lw=1.4, label=f"test {t}") for j, t in enumerate(s.test_ids)]
        if s.truth is not None:
            handles.append(Line2D([], [], color="#444444", lw=1.4, label="true"))
        handles.append(Line2D([], [], color="#444444", lw=1.2, ls="--", label="predicted"))
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
        return to_svg(fig)


def size_svg(points: Mapping[str, Sequence[tuple[float, float]]], title: str) -> str:
    """MSE (mean over the benchmarks of a size) against model size, one line per method."""
    with _style():
        fig = _figure(5.6, 3.4)
        ax = fig.subplots()
        sizes = sorted({x for pts in points.values() for x, _ in pts})
        ys_all = [y for pts in points.values() for _, y in pts]
        # Log scale only when the values span more than a decade; otherwise it shows no labels.
        log_y = bool(ys_all) and min(ys_all) > 0 and max(ys_all) / min(ys_all) > 10
        markers = "osD^vP*X<>"
        for i, (method, pts) in enumerate(sorted(points.items())):
            by_size: dict[float, list[float]] = {}
            for x, y in pts:
                by_size.setdefault(x, []).append(y)
            xs = sorted(by_size)
            ys = [float(np.mean(by_size[x])) for x in xs]
            ax.plot(xs, ys, marker=markers[i % len(markers)], ms=4, lw=1.2, label=method)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xticks(sizes, [format_size(x) for x in sizes])
        ax.minorticks_off()
        ax.set_xlabel("model size (parameters)")
        ax.set_ylabel("mse_all_steps (seen split, loss)")
        ax.set_title(title)
        ax.grid(alpha=0.3, lw=0.5)
        fig.legend(loc="outside right center", fontsize=7, frameon=False)
        return to_svg(fig)
