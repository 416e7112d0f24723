"""Figures for the leaderboard page, as small hand-written inline SVG with stable bytes.

No plotting library: every figure is a few ``<path>`` elements with coordinates rounded to
0.1 px, each line thinned to at most :data:`MAX_POINTS` points, and data that several panels
share (the true trajectories) drawn once in ``<defs>`` and reused. A page of a full bank
(about 30 methods on 18 benchmarks) stays well under a megabyte of figures.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from tdabench.leaderboard.collect import format_size
from tdabench.leaderboard.samples import Samples

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
#: At most this many points per drawn line (evenly spaced, first and last kept).
MAX_POINTS = 25
#: At most this many method panels per trajectory figure (the table lists every method).
MAX_PANELS = 8
_FONT = 'font-family="sans-serif" font-size="10"'


def _r(x: float) -> str:
    """A coordinate rounded to 0.1 px, without a trailing ``.0``."""
    v = round(float(x), 1)
    return str(int(v)) if v == int(v) else str(v)


def thin(n: int, k: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``k`` of ``n`` points, evenly spaced, first and last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


@dataclass(frozen=True)
class Frame:
    """A plot area: pixel box and data ranges (``log_x``: x on a log10 scale)."""

    x0: float
    y0: float
    w: float
    h: float
    xlo: float
    xhi: float
    ylo: float
    yhi: float
    log_x: bool = False

    def x(self, v: float) -> float:
        """Pixel x of data ``v``."""
        lo, hi, v = (math.log10(self.xlo), math.log10(self.xhi), math.log10(v)) if self.log_x else (self.xlo, self.xhi, v)
        return self.x0 + (v - lo) / ((hi - lo) or 1.0) * self.w

    def y(self, v: float) -> float:
        """Pixel y of data ``v`` (up is larger)."""
        return self.y0 + self.h - (v - self.ylo) / ((self.yhi - self.ylo) or 1.0) * self.h

    def path(self, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> str:
        """An SVG path ``d`` through the points (non-finite ones break the line)."""
        out, pen = [], "M"
        for a, b in zip(xs, ys):
            if not (math.isfinite(a) and math.isfinite(b)):
                pen = "M"
                continue
            out.append(f"{pen}{_r(self.x(a))},{_r(self.y(b))}")
            pen = "L"
        return "".join(out)

    def axes(self, xticks: Sequence[tuple[float, str]], yticks: Sequence[tuple[float, str]], xlabel: str = "", ylabel: str = "") -> str:
        """The box, tick labels and axis labels."""
        parts = [f'<rect x="{_r(self.x0)}" y="{_r(self.y0)}" width="{_r(self.w)}" height="{_r(self.h)}" fill="none" stroke="#8c959f" stroke-width="0.6"/>']
        for v, label in xticks:
            parts.append(f'<text x="{_r(self.x(v))}" y="{_r(self.y0 + self.h + 11)}" text-anchor="middle">{escape(label)}</text>')
        for v, label in yticks:
            parts.append(f'<text x="{_r(self.x0 - 3)}" y="{_r(self.y(v) + 3)}" text-anchor="end">{escape(label)}</text>')
        if xlabel:
            parts.append(f'<text x="{_r(self.x0 + self.w / 2)}" y="{_r(self.y0 + self.h + 23)}" text-anchor="middle">{escape(xlabel)}</text>')
        if ylabel:
            parts.append(f'<text transform="translate({_r(self.x0 - 40)},{_r(self.y0 + self.h / 2)}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>')
        return "".join(parts)


def _svg(width: float, height: float, body: Sequence[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_r(width)} {_r(height)}" width="{_r(width)}" height="{_r(height)}" {_FONT} '
            f'role="img"><title>{escape(title)}</title>\n' + "\n".join(b for b in body if b) + "\n</svg>\n")


def tick(v: float) -> str:
    """A short tick label."""
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e") if a >= 1e4 or a < 1e-2 else f"{v:.3g}"


def _span(lo: float, hi: float) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 0.5
    return lo - pad, hi + pad


def _lin_ticks(lo: float, hi: float, n: int = 3) -> list[tuple[float, str]]:
    """About ``n`` ticks at round values (1, 2 or 5 times a power of ten) inside [lo, hi]."""
    if not (hi > lo):
        return [(lo, tick(lo))]
    raw = (hi - lo) / max(1, n - 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda v: abs(math.log(v / raw)))
    vals: list[float] = []
    while len(vals) < 2:
        first = math.ceil(lo / step) * step
        vals = [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]
        step = step if len(vals) >= 2 else step / 2
    return [(v, tick(round(v / step) * step if abs(v) > step / 2 else 0.0)) for v in vals]


def trajectory_svg(s: Samples, order: Sequence[str] = ()) -> str:
    """Small multiples: per method, the sampled test examples' true (solid, drawn once and reused)
    and predicted (dashed) trajectories. ``order`` picks the panels (at most :data:`MAX_PANELS`)."""
    methods = [m for m in (order or list(s.preds)) if m in s.preds][:MAX_PANELS]
    idx = thin(len(s.steps))
    steps = s.steps[idx].astype(float)
    vals = [s.preds[m][:, idx] for m in methods] + ([s.truth[:, idx]] if s.truth is not None else [])
    flat = np.concatenate([v.ravel() for v in vals]) if vals else np.zeros(1)
    flat = flat[np.isfinite(flat)]
    ylo, yhi = _span(float(flat.min()), float(flat.max())) if flat.size else (0.0, 1.0)
    ncols = min(4, max(1, len(methods)))
    nrows = max(1, math.ceil(len(methods) / ncols))
    pw, ph = 190.0, 110.0
    f = Frame(0, 14, pw, ph, float(steps[0]), float(steps[-1]) if steps[-1] > steps[0] else float(steps[0]) + 1, ylo, yhi)
    body, defs = [], []
    if s.truth is not None:
        defs = [f'<path id="{_uid(s)}-t{j}" d="{f.path(steps, s.truth[j, idx])}" fill="none" stroke="{COLORS[j % len(COLORS)]}" stroke-width="1.4"/>'
                for j in range(len(s.test_ids))]
        body.append("<defs>" + "".join(defs) + "</defs>")
    for k, m in enumerate(methods):
        gx, gy = 50 + (k % ncols) * (pw + 16), 4 + (k // ncols) * (ph + 36)
        panel = [f'<g transform="translate({_r(gx)},{_r(gy)})">', f'<text x="{_r(pw / 2)}" y="10" text-anchor="middle">{escape(m)}</text>']
        panel.append(f.axes([(steps[0], tick(steps[0])), (steps[-1], tick(steps[-1]))], _lin_ticks(ylo, yhi) if k % ncols == 0 else []))
        if s.truth is not None:
            panel += [f'<use href="#{_uid(s)}-t{j}"/>' for j in range(len(s.test_ids))]
        panel += [f'<path d="{f.path(steps, s.preds[m][j, idx])}" fill="none" stroke="{COLORS[j % len(COLORS)]}" stroke-width="1.2" stroke-dasharray="4 2"/>'
                  for j in range(len(s.test_ids))]
        body.append("".join(panel) + "</g>")
    height = 4 + nrows * (ph + 36) + 14
    legend = "; ".join(f"test {int(t)}" for t in s.test_ids)
    what = "true (solid) vs predicted (dashed)" if s.truth is not None else "predicted only (dashed)"
    body.append(f'<text x="44" y="{_r(height - 4)}">{escape(f"{s.benchmark} · {s.split} · {s.trajectory}: {what}; colours: {legend}; x: step")}</text>')
    return _svg(50 + ncols * (pw + 16), height, body, f"{s.benchmark} {s.split}: {what}")


def _uid(s: Samples) -> str:
    """An id unique on the page for one figure's shared paths."""
    return "p" + hashlib.sha256(f"{s.benchmark}|{s.trajectory}|{s.split}".encode()).hexdigest()[:10]


def curve_svg(curve: Mapping[str, Sequence[float]], title: str) -> str:
    """The fit runs' mean test trajectory (line) and the 10th-90th percentile of the runs (band)."""
    steps = np.asarray(curve["steps"], dtype=float)
    idx = thin(len(steps), 40)
    mean, lo, hi = (np.asarray(curve[k], dtype=float)[idx] for k in ("mean", "p10", "p90"))
    steps = steps[idx]
    ylo, yhi = _span(float(np.nanmin(lo)), float(np.nanmax(hi)))
    f = Frame(56, 18, 300, 120, float(steps[0]), float(steps[-1]) if steps[-1] > steps[0] else float(steps[0]) + 1, ylo, yhi)
    band = f.path(np.concatenate([steps, steps[::-1]]), np.concatenate([hi, lo[::-1]])) + "Z"
    body = [f'<text x="{_r(f.x0)}" y="11">{escape(title)}</text>',
            f'<path d="{band}" fill="#1f77b4" fill-opacity="0.2" stroke="none"/>',
            f'<path d="{f.path(steps, mean)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>',
            f'<path d="{f.path([steps[0], steps[-1]], [mean[0], mean[0]])}" fill="none" stroke="#57606a" stroke-width="0.8" stroke-dasharray="3 3"/>',
            f.axes([(steps[0], tick(steps[0])), (steps[len(steps) // 2], tick(steps[len(steps) // 2])), (steps[-1], tick(steps[-1]))],
                   _lin_ticks(ylo, yhi), "step", "loss")]
    return _svg(360, 168, body, title)


def _log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        v = 10.0 ** e
        if lo <= v <= hi:
            out.append((v, f"1e{e}" if abs(e) > 2 else tick(v)))
    return out or [(lo, tick(lo)), (hi, tick(hi))]


def front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The methods on the front: no other method is both cheaper (x) and more skilled (y)."""
    out = []
    for m, (x, y) in points.items():
        if not any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for m2, (x2, y2) in points.items() if m2 != m):
            out.append(m)
    return sorted(out, key=lambda m: points[m][0])


def front_svg(points: Mapping[str, tuple[float, float]], references: Sequence[str], title: str) -> str:
    """Skill (y) against cost as a share of retraining (x, log): one point per method, the front
    joined and labelled, reference points (``retrain``) hollow; hover a point for its name."""
    pts = {m: (x, y) for m, (x, y) in points.items() if x > 0 and math.isfinite(x) and math.isfinite(y)}
    if not pts:
        return ""
    xs, ys = [x for x, _ in pts.values()], [y for _, y in pts.values()]
    xlo, xhi = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
    if xhi <= xlo:
        xhi = xlo * 10
    ylo, yhi = _span(min(min(ys), 0.0), max(max(ys), 0.0))
    f = Frame(56, 18, 430, 220, xlo, xhi, ylo, yhi, log_x=True)
    on = front({m: p for m, p in pts.items() if m not in references})
    body = [f'<text x="{_r(f.x0)}" y="11">{escape(title)}</text>',
            f'<path d="{f.path([xlo, xhi], [0, 0])}" stroke="#8c959f" stroke-width="0.6" stroke-dasharray="3 3" fill="none"/>',
            f.axes(_log_ticks(xlo, xhi), _lin_ticks(ylo, yhi, 5), "cost: (fit + simulate) / retraining the evaluation runs", "skill")]
    if len(on) > 1:
        body.append(f'<path d="{f.path([pts[m][0] for m in on], [pts[m][1] for m in on])}" fill="none" stroke="#2ca02c" stroke-width="1"/>')
    for m, (x, y) in sorted(pts.items()):
        ref = m in references
        style = 'fill="#fff" stroke="#d62728"' if ref else ('fill="#2ca02c"' if m in on else 'fill="#1f77b4" fill-opacity="0.6"')
        body.append(f'<circle cx="{_r(f.x(x))}" cy="{_r(f.y(y))}" r="3.2" {style}><title>{escape(f"{m}: skill {y:.3g}, cost {x:.3g}x retraining")}</title></circle>')
        if ref or m in on:
            body.append(f'<text x="{_r(f.x(x) + 5)}" y="{_r(f.y(y) - 4)}" font-size="9">{escape(m)}</text>')
    return _svg(640, 270, body, title)


def size_svg(points: Mapping[str, Sequence[tuple[float, float]]], title: str) -> str:
    """MSE (mean over the benchmarks of a size) against model size, one line per method."""
    series = {}
    for method, pts in sorted(points.items()):
        by: dict[float, list[float]] = {}
        for x, y in pts:
            by.setdefault(x, []).append(y)
        series[method] = ([x for x in sorted(by)], [float(np.mean(by[x])) for x in sorted(by)])
    sizes = sorted({x for xs, _ in series.values() for x in xs})
    ys = [y for _, v in series.values() for y in v]
    lo, hi = min(sizes), max(sizes)
    f = Frame(56, 18, 330, 170, lo / 1.5, hi * 1.5, *_span(min(ys), max(ys)), log_x=True)
    body = [f'<text x="{_r(f.x0)}" y="11">{escape(title)}</text>',
            f.axes([(x, format_size(x)) for x in sizes], _lin_ticks(f.ylo, f.yhi), "model size (parameters)", "mse_all_steps")]
    for k, (m, (xs, vs)) in enumerate(series.items()):
        c = COLORS[k % len(COLORS)]
        body.append(f'<path d="{f.path(xs, vs)}" fill="none" stroke="{c}" stroke-width="1.2"/>' +
                    "".join(f'<circle cx="{_r(f.x(x))}" cy="{_r(f.y(v))}" r="2.2" fill="{c}"><title>{escape(m)}</title></circle>' for x, v in zip(xs, vs)))
        body.append(f'<text x="{_r(400)}" y="{_r(22 + 11 * k)}" fill="{c}" font-size="9">{escape(m)}</text>')
    return _svg(560, max(230, 30 + 11 * len(series)), body, title)
