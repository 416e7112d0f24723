"""``index.html``: one self-contained page (no network) with sortable tables and inline SVG plots.

Sorting is a few lines of inline JavaScript: click a header to sort by it (missing values
last); a results cell sorts by the number it shows, so it carries no separate sort key.
Opening the page with ``#selftest`` sorts the first table with two scored methods and writes
what it found into ``<pre id="selftest">``, so a headless browser can check the page with
``--dump-dom``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from tdabench.leaderboard.aggregate import COLUMNS, PHASES, MeanRank, MeanSkill, Row, Table, low_power
from tdabench.leaderboard.notes import row_note
from tdabench.leaderboard.model import ALL, Leaderboard
from tdabench.leaderboard.collect import format_size
from tdabench.leaderboard.fmt import display, num, pooled_text, rank_text, score_parts, skill_text, spread_text, param_set, SPREAD_SCORES
from tdabench.leaderboard.text import HEADROOM_HOW, LEGEND, LOW_POWER, RANK_HOW, SKILL_HOW, group_title, method_marks, table_heading
from tdabench.leaderboard.plots import MAX_PANELS, size_svg, trajectory_svg
from tdabench.leaderboard.bench_html import benchmark_html, front_html
from tdabench.results.mislabel import MislabelResult
from tdabench.leaderboard.mislabel import HEADERS as MISLABEL_HEADERS
from tdabench.leaderboard.mislabel import HOW as MISLABEL_HOW
from tdabench.leaderboard.mislabel import by_benchmark, reference_line
from tdabench.leaderboard.mislabel import rows as mislabel_rows
from tdabench.leaderboard.published import CITATION, PUBLISHED, PUBLISHED_NOTES, SETTING_NAMES

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f23;background:#fff}
header,main,footer{max-width:1400px;margin:0 auto;padding:0 20px}
header{padding-top:12px}
h1{margin:8px 0}h2{margin-top:32px;border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{margin-top:24px}h4{margin:16px 0 4px}
nav a{margin-right:14px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:6px 0 18px;font-size:12.5px}
th,td{border-bottom:1px solid #e1e4e8;padding:3px 7px;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#f6f8fa;cursor:pointer;user-select:none}
th:hover{background:#eaeef2}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.text{text-align:left}
td.best{font-weight:700;background:#e6f4ea}
td small{display:block;color:#57606a;font-size:11.5px;font-weight:400}td small.lp{color:#b54708}
dl.props{display:grid;grid-template-columns:max-content auto;gap:1px 12px;margin:4px 0 10px}dl.props dt{color:#57606a}dl.props dd{margin:0}
.nr{border-left:4px solid #b54708;background:#fff7ed;padding:2px 10px}
tr.na td{color:#8c959f}tr.failed td{color:#b42318}
td.note{white-space:normal;min-width:160px;max-width:380px}
.legend{color:#404850;max-width:980px}
section.published{border-left:4px solid #d97706;background:#fffbeb;padding:2px 14px 10px;margin-top:28px}
.badge{display:inline-block;background:#d97706;color:#fff;border-radius:4px;padding:0 6px;font-size:12px;vertical-align:middle}
figure{margin:6px 0 22px}figure svg{max-width:100%;height:auto}
figcaption{color:#57606a;font-size:12px}
footer{border-top:1px solid #d0d7de;margin-top:36px;padding-bottom:24px;color:#404850;font-size:12px}
footer code{overflow-wrap:anywhere}
#selftest{white-space:pre-wrap;word-break:break-all;font-size:11px}
""".strip()

JS = """
"use strict";
function key(td){if(td.classList.contains("text"))return td.textContent.trim().toLowerCase();const v=td.dataset.v!==undefined?td.dataset.v:td.firstChild?td.firstChild.textContent:"";const x=parseFloat(v);return isNaN(x)?null:x;}
function sortBy(th){
 const body=th.closest("table").tBodies[0],i=th.cellIndex,asc=th.getAttribute("aria-sort")!=="ascending";
 for(const h of th.parentNode.cells)h.removeAttribute("aria-sort");
 th.setAttribute("aria-sort",asc?"ascending":"descending");
 const rows=[...body.rows].map((r,n)=>[key(r.cells[i]),n,r]);
 rows.sort((a,b)=>{if(a[0]===null||b[0]===null)return (a[0]===null)-(b[0]===null)||a[1]-b[1];const c=a[0]<b[0]?-1:a[0]>b[0]?1:0;return (asc?c:-c)||a[1]-b[1];});
 for(const r of rows)body.appendChild(r[2]);
}
document.querySelectorAll("table.sortable th").forEach(th=>th.addEventListener("click",()=>sortBy(th)));
if(location.hash==="#selftest"){
 const out={tables:document.querySelectorAll("table").length,sortable:document.querySelectorAll("table.sortable").length,svgs:document.querySelectorAll("figure svg").length};
 const col=t=>[...t.tHead.rows[0].cells].findIndex(c=>c.dataset.key==="mse_all_steps");
 const t=[...document.querySelectorAll("table.results")].find(t=>[...t.tBodies[0].rows].filter(r=>key(r.cells[col(t)])!==null).length>1);
 if(t){
  const th=t.tHead.rows[0].cells[col(t)],vals=()=>[...t.tBodies[0].rows].map(r=>key(r.cells[col(t)])).filter(v=>v!==null),names=()=>[...t.tBodies[0].rows].map(r=>r.cells[1].textContent);
  th.click();const asc=vals(),ascNames=names();th.click();const desc=vals(),descNames=names();
  out.table=t.id;out.asc=ascNames;out.desc=descNames;
  out.asc_ok=asc.every((v,k)=>k===0||asc[k-1]<=v);out.desc_ok=desc.every((v,k)=>k===0||desc[k-1]>=v)&&desc[0]>desc[desc.length-1];
 }
 out.pass=!!(t&&out.asc_ok&&out.desc_ok&&out.svgs>0);
 const pre=document.getElementById("selftest");pre.textContent=JSON.stringify(out);pre.hidden=false;
}
""".strip()


def inline_md(text: str) -> str:
    """Escape ``text`` and render its inline markdown (code, bold, italics) as HTML."""
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", escape(text))
    return re.sub(r"\*(.+?)\*", r"<i>\1</i>", re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out))


def slug(text: str) -> str:
    """An HTML id from a benchmark id or heading."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _num_attr(x: float | None) -> str:
    """A sort key: 6 significant digits (more than any cell shows)."""
    return "" if x is None else f"{float(x):.6g}"


def _th(label: str, key: str = "", text: bool = False) -> str:
    cls = ' class="text"' if text else ""
    k = f' data-key="{key}"' if key else ""
    return f"<th{cls}{k}>{escape(label)}</th>"


def _row(table: Table, row: Row) -> str:
    r = row.result
    cls = {"ok": "", "n/a": ' class="na"', "failed": ' class="failed"'}[r.status]
    cells = [f'<td>{row.rank if row.rank is not None else "–"}</td>',
             f'<td class="text">{escape(r.method + param_set(r.config))}{escape(method_marks(row))}</td>']
    for col in COLUMNS:
        best = ' class="best"' if r.method in table.best.get(col.key, frozenset()) else ""
        v = col.value(row)
        if r.status != "ok":
            cells.append(f"<td>{r.status}</td>")
        elif col.kind == "score":
            mean, std, ci = score_parts(r.scores.get(col.key))
            extra = f"<small>{escape(std)} {escape(ci)}</small>" if std else ""
            seeds = spread_text(row.spread.get(col.key) if col.key in SPREAD_SCORES else None, len(row.seeds))
            extra += f"<small>{escape(seeds)}</small>" if seeds else ""
            extra += f'<small class="lp">{escape(LOW_POWER)}</small>' if col.key == "lds_final" and low_power(row) and r.scores.get(col.key) else ""
            # No sort key: the page sorts by the number the cell shows (a low-power LDS by none).
            lp = ' data-v=""' if v is None else ""
            cells.append(f"<td{best}{lp}>{escape(mean)}{extra}</td>")
        elif col.kind == "gap" and table.split == "seen":
            cells.append("<td>—</td>")
        else:
            cells.append(f"<td{best}>{escape(display(col.kind, v))}</td>")
    note = row_note(row)
    cells.append(f'<td class="note text">{escape(note)}</td>')
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def results_table(table: Table) -> str:
    """A sortable table of one (benchmark, metric, split)."""
    tid = slug(f"t-{table.benchmark}-{table.trajectory}-{table.split}")
    head = _th("#", "rank") + _th("method", "method", text=True) + "".join(_th(c.header, c.key) for c in COLUMNS) + _th("note", "note", text=True)
    body = "\n".join(_row(table, row) for row in table.rows)
    return f'<div class="scroll"><table class="sortable results" id="{tid}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def rank_table(ranks: list[MeanRank], tid: str) -> str:
    """A sortable mean-rank table."""
    splits = list(ranks[0].by_split) if ranks else []
    head = _th("method", "method", text=True) + "".join(_th(s, s) for s in splits)
    rows = []
    for mr in ranks:
        cells = [f'<td class="text">{escape(mr.method)}</td>']
        for s in splits:
            mean, k, n = mr.by_split[s]
            cells.append(f'<td data-v="{_num_attr(mean)}">{escape(rank_text(mean, k, n))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table class="sortable ranks" id="{tid}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>"


def skill_table(skills: list[MeanSkill], tid: str) -> str:
    """A sortable table of mean skill per split, with LDS."""
    splits = list(skills[0].skill) if skills else []
    phases = [p for p in PHASES if any(ms.phases.get(p) is not None for ms in skills)]
    head = (_th("method", "method", text=True) + "".join(_th(f"median skill · {s}", f"skill-{s}") + _th(f"pooled · {s}", f"pooled-{s}") for s in splits)
            + "".join(_th(f"{p.split('_')[-1]} · seen", p) for p in phases) + _th("lds · seen", "lds"))
    rows = []
    for ms in skills:
        cells = [f'<td class="text">{escape(ms.method)}</td>']
        for s in splits:
            mean, k, n = ms.skill[s]
            cells.append(f'<td data-v="{_num_attr(mean)}">{escape(skill_text(mean, k, n, ms.beats[s]))}</td>')
            cells.append(f'<td data-v="{_num_attr(ms.pooled.get(s))}">{escape(pooled_text(ms.pooled.get(s)))}</td>')
        cells += [f'<td data-v="{_num_attr(ms.phases.get(p))}">{escape(pooled_text(ms.phases.get(p)))}</td>' for p in phases]
        lds = ms.lds.get("seen")
        cells.append(f'<td data-v="{_num_attr(lds)}">{escape(num(lds))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table class="sortable skills" id="{tid}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>"


def headroom_table(lb: Leaderboard, tid: str, group: str | None = None) -> str:
    """A sortable table of each benchmark's headroom (loss, seen split)."""
    keys = ("mse_reference", "mse_constant", "reference_over_constant", "around_mean_share")
    head = _th("benchmark", "benchmark", text=True) + "".join(_th(h, k) for h, k in zip(("mse zero line", "mse constant", "zero line / constant", "share around mean"), keys))
    rows = []
    for t in lb.tables:
        if t.trajectory != "loss" or t.split != "seen" or (group is not None and t.group != group) or not t.headroom:
            continue
        cells = "".join(f'<td data-v="{_num_attr(t.headroom.get(k))}">{escape(num(t.headroom.get(k)))}</td>' for k in keys)
        rows.append(f'<tr><td class="text">{escape(t.benchmark)}</td>{cells}</tr>')
    if not rows:
        return "<p>No benchmark has a scored seen split on loss here.</p>"
    return f'<div class="scroll"><table class="sortable headroom" id="{tid}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>"


def _published(lb: Leaderboard) -> str:
    head = "".join(_th(h, slug(h), text=i < 4) for i, h in enumerate(("setting", "model", "tasks", "method", "MSE", "MAE", "final-step ρ")))
    rows = []
    for p in PUBLISHED:
        mae = f"{p.mae:.3f}" if p.mae is not None else "n/a"
        rows.append(f'<tr><td class="text">{SETTING_NAMES[p.setting]}</td><td class="text">{escape(p.model)}</td><td class="text">{escape(p.scope)}</td>'
                    f'<td class="text">{escape(p.method)}</td><td data-v="{p.mse!r}">{p.mse:.3f}</td><td data-v="{_num_attr(p.mae)}">{mae}</td><td data-v="{p.rho!r}">{p.rho:.3f}</td></tr>')
    orders = []
    for o in lb.orderings:
        where = ", ".join(group_title(g) for g in o.groups)
        if len(o.measured) < 2:
            orders.append(f"<li>{SETTING_NAMES[o.setting]}: fewer than two of the published methods were measured ({escape(where)}); no ordering to compare.</li>")
        else:
            orders.append(f"<li>{SETTING_NAMES[o.setting]}, published (Pythia-410M, by MSE): {escape(' < '.join(o.published))}; "
                          f"measured ({escape(where)}, loss, seen, by mean rank): {escape(' < '.join(o.measured))}.</li>")
    if not orders:
        orders.append("<li>No benchmark id names an <code>it</code> or <code>ft</code> setting, so there is nothing to compare.</li>")
    notes = "".join(f"<li>{escape(n)}</li>" for n in PUBLISHED_NOTES)
    return (f'<section class="published" id="published"><h2>Published numbers (GPTfluence paper) <span class="badge">published, not measured here</span></h2>\n'
            f"<p>Numbers <b>published</b> in {escape(CITATION)} on the GPTDynamics data with Pythia models, quoted for orientation. "
            "They are not results of this harness and their scale is not comparable with the tables on this page: compare orderings, not values.</p>\n"
            f'<div class="scroll"><table class="sortable" id="t-published">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>\n"
            f"<ul>{notes}</ul>\n<h3>Orderings: published vs measured</h3>\n<ul>{''.join(orders)}</ul>\n</section>")


def _figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}<figcaption>{escape(caption)}</figcaption>\n</figure>"


def _group(lb: Leaderboard, group: str) -> str:
    out = [f'<section id="g-{slug(group)}"><h2>{escape(group_title(group))}</h2>']
    for metric, skills in lb.skills.get(group, {}).items():
        out += [f"<h3>Skill over the zero line in this group ({escape(metric)})</h3>", f'<p class="legend">{inline_md(SKILL_HOW)}</p>',
                skill_table(skills, slug(f"s-{group}-{metric}"))]
    out += ["<h3>Headroom</h3>", headroom_table(lb, slug(f"h-{group}"), group)]
    for metric, ranks in lb.ranks[group].items():
        out += [f"<h3>Mean rank in this group ({escape(metric)})</h3>", rank_table(ranks, slug(f"r-{group}-{metric}"))]
    out.append(front_html(lb, group, group_title(group)))
    pts = lb.sizes.get(group)
    out.append("<h3>MSE by model size</h3>")
    if pts:
        out.append(_figure(size_svg(pts, f"{group_title(group)}: loss, seen split"),
                           "Mean over the benchmarks of each size of the method's mean mse_all_steps on the seen split (loss)."))
    if group in lb.size_notes or not pts:
        out.append(f"<p>{escape(lb.size_notes.get(group, 'No method has a scored seen split on loss here.'))}</p>")
    bench = None
    for t in (t for t in lb.tables if t.group == group):
        if t.benchmark != bench:
            bench = t.benchmark
            hashes = ", ".join(lb.provenance.data_hashes.get(bench, ()))
            out.append(f'<h3 id="b-{slug(bench)}">{escape(bench)}</h3>\n<p>Model size: {format_size(lb.model_sizes[bench])} · data <code>{escape(hashes)}</code></p>')
            out.append(benchmark_html(lb, bench))
        out += [f"<h4>{escape(table_heading(t))}</h4>", results_table(t)]
        s = lb.samples.get((t.benchmark, t.trajectory))
        if s is not None and s.split == t.split:
            caption = (f"Predicted (dashed) vs true (solid) {t.trajectory} of {len(s.test_ids)} test examples (evenly spaced ids) in evaluation run {s.run}, {s.split} split."
                       if s.truth is not None else f"Predicted {t.trajectory} of {len(s.test_ids)} test examples in evaluation run {s.run}, {s.split} split. {s.note}.")
            order = [r.result.method for r in t.rows]
            caption += f" Panels: the first {min(MAX_PANELS, len(order))} methods of the table above, in its order."
            out.append(_figure(trajectory_svg(s, order), caption))
    out.append("</section>")
    return "\n".join(out)


def mislabel_html(results: Sequence[MislabelResult]) -> str:
    """The mislabel-identification section, or ''."""
    if not results:
        return ""
    parts = ['<h2 id="mislabel">Mislabel identification</h2>', f'<p class="legend">{inline_md(MISLABEL_HOW)}</p>']
    for k, (bench, rs) in enumerate(by_benchmark(results).items()):
        head = "".join(_th(h, slug(h), text=i < 2) for i, h in enumerate(MISLABEL_HEADERS))
        body = "\n".join("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' if i < 2 or i == len(row) - 1 else f"<td>{escape(c)}</td>"
                                          for i, c in enumerate(row)) + "</tr>" for row in mislabel_rows(rs))
        parts += [f"<h3>{escape(bench)}</h3>", f"<p>{escape(reference_line(rs))}</p>",
                  f'<div class="scroll"><table class="sortable mislabel" id="m-{k}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>']
    return "\n".join(parts)


def _footer(lb: Leaderboard) -> str:
    p = lb.provenance
    created = f", written {p.created[0]} to {p.created[1]}" if p.created else ""
    items = [
        f"Command: <code>{escape(p.command)}</code>",
        f"Results: {p.n_files} result files (digest <code>{p.digest}</code>){escape(created)}",
        f"Produced by tdabench {escape(', '.join(p.versions))} at git {escape(', '.join(p.gits))} on {escape('; '.join(p.machines))}",
        *(f"Result command: <code>{escape(c)}</code>" for c in p.commands),
        *(f"Data: <code>{escape(b)}</code> <code>{escape(', '.join(h))}</code>" for b, h in p.data_hashes.items()),
    ]
    lis = "\n".join(f"<li>{i}</li>" for i in items)
    return f'<footer id="provenance"><h2>Provenance</h2>\n<ul>\n{lis}\n</ul>\n<p class="generated">{escape(p.generated)}</p>\n</footer>'


def _issues(lb: Leaderboard) -> str:
    out = []
    if lb.problems:
        items = "\n".join(f"<li>{escape(p)}</li>" for p in lb.problems)
        out.append(f'<h2 id="left-out">Files left out</h2>\n<ul>\n{items}\n</ul>')
    failed = [e.result for e in lb.collection.entries if e.result.status == "failed"]
    if failed:
        rows = "\n".join(f'<tr class="failed"><td class="text">{escape(r.benchmark)}</td><td class="text">{r.trajectory}</td><td class="text">{r.split}</td>'
                         f'<td class="text">{escape(r.method)}</td><td class="note text">{escape(r.error or "")}</td></tr>' for r in failed)
        head = "".join(_th(h, h, text=True) for h in ("benchmark", "metric", "split", "method", "error"))
        out.append(f'<h2 id="failed">Failed cells</h2>\n<div class="scroll"><table class="sortable" id="t-failed"><thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>')
    if lb.collection.duplicates:
        items = "\n".join(
            f"<li>{escape(' / '.join(map(str, d.cell)))}: kept <code>{escape(d.kept.path.as_posix())}</code>, dropped "
            + ", ".join(f"<code>{escape(e.path.as_posix())}</code>" for e in d.dropped) + "</li>"
            for d in lb.collection.duplicates
        )
        out.append(f'<h2 id="duplicates">Duplicate results (the newest is kept)</h2>\n<ul>\n{items}\n</ul>')
    return "\n".join(out)


def page(lb: Leaderboard) -> str:
    """The whole page."""
    nav = "".join(f'<a href="#g-{slug(g)}">{escape(group_title(g))}</a>' for g in lb.groups)
    nav += '<a href="#published">published numbers</a>' + ('<a href="#mislabel">mislabel identification</a>' if lb.collection.mislabel else "")
    nav += '<a href="#provenance">provenance</a>'
    summary = []
    for group in lb.groups:
        if "loss" in lb.skills.get(group, {}):
            summary += [f"<h2>Attribution: skill over the zero line, {escape(group_title(group))} (loss)</h2>",
                        f'<p class="legend">{inline_md(SKILL_HOW)}</p>', skill_table(lb.skills[group]["loss"], slug(f"s-all-{group}"))]
    summary += ["<h2>Headroom: how much each benchmark leaves to attribute</h2>", f'<p class="legend">{inline_md(HEADROOM_HOW)}</p>',
                headroom_table(lb, "h-all")]
    for metric, ranks in lb.ranks[ALL].items():
        summary += [f"<h2>Mean rank over all benchmarks ({escape(metric)})</h2>", f'<p class="legend">{inline_md(RANK_HOW)}</p>', rank_table(ranks, slug(f"r-all-{metric}"))]
    legend = inline_md(LEGEND)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>tdabench leaderboard</title>",
        f"<style>\n{CSS}\n</style>\n</head>",
        "<body>",
        f'<header><h1>tdabench leaderboard</h1>\n<p>Training-run simulators scored on recorded runs, generated by <code>tdabench leaderboard</code> '
        f"from {lb.provenance.n_files} result files. Click a column header to sort.</p>\n<nav>{nav}</nav>\n"
        f'<p class="legend">{legend}</p></header>',
        "<main>",
        *summary,
        _published(lb),
        mislabel_html(lb.collection.mislabel),
        *(_group(lb, g) for g in lb.groups),
        _issues(lb),
        "</main>",
        _footer(lb),
        '<pre id="selftest" hidden></pre>',
        f"<script>\n{JS}\n</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
