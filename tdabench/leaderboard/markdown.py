"""Markdown pages: ``README.md`` (summary, published numbers) and one ``<group>.md`` per family."""

from __future__ import annotations

from collections.abc import Sequence

from tdabench.leaderboard.aggregate import COLUMNS, PHASES, MeanRank, MeanSkill, Row, Table, low_power
from tdabench.leaderboard.notes import row_note
from tdabench.leaderboard.model import ALL, Leaderboard
from tdabench.leaderboard.collect import format_size
from tdabench.leaderboard.fmt import display, num, pooled_text, rank_text, score_parts, skill_text, spread_text, param_set, SPREAD_SCORES
from tdabench.leaderboard.mislabel import HEADERS as MISLABEL_HEADERS
from tdabench.leaderboard.mislabel import HOW as MISLABEL_HOW
from tdabench.leaderboard.mislabel import by_benchmark, reference_line
from tdabench.leaderboard.mislabel import rows as mislabel_rows
from tdabench.leaderboard.published import CITATION, PUBLISHED, PUBLISHED_NOTES, SETTING_NAMES
from tdabench.results.mislabel import MislabelResult
from tdabench.leaderboard.text import HEADROOM_HOW, LEGEND, LOW_POWER, RANK_HOW, SKILL_HOW, esc, group_title, method_marks, property_lines, table_heading

def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _bold(text: str, on: bool) -> str:
    return f"**{text}**" if on else text


def row_cells(table: Table, row: Row) -> list[str]:
    """The markdown cells of one row (rank, method, columns, note)."""
    r = row.result
    cells = [str(row.rank) if row.rank is not None else "–", esc(r.method + param_set(r.config) + method_marks(row))]
    for col in COLUMNS:
        best = r.method in table.best.get(col.key, frozenset())
        if r.status != "ok":
            cells.append(r.status)
        elif col.kind == "score":
            mean, std, ci = score_parts(r.scores.get(col.key))
            lp = f"*({LOW_POWER})*" if col.key == "lds_final" and low_power(row) and r.scores.get(col.key) else ""
            cells.append(" ".join(x for x in (_bold(mean, best), std, ci, spread_text(row.spread.get(col.key) if col.key in SPREAD_SCORES else None, len(row.seeds)), lp) if x))
        elif col.kind == "gap" and table.split == "seen":
            cells.append("—")
        else:
            cells.append(_bold(display(col.kind, col.value(row)), best))
    note = row_note(row)
    cells.append(esc(note))
    return cells


def result_table(table: Table) -> str:
    """One (benchmark, metric, split) table."""
    headers = ["#", "method", *(c.header for c in COLUMNS), "note"]
    return md_table(headers, [row_cells(table, row) for row in table.rows])


def rank_table(ranks: Sequence[MeanRank]) -> str:
    """Mean rank per split."""
    splits = list(ranks[0].by_split) if ranks else []
    rows = []
    for mr in ranks:
        cells = [esc(mr.method)]
        for s in splits:
            cells.append(rank_text(*mr.by_split[s]))
        rows.append(cells)
    return md_table(["method", *splits], rows)


def skill_table(skills: Sequence[MeanSkill]) -> str:
    """Median and pooled skill over the zero line per split, per phase, with LDS."""
    splits = list(skills[0].skill) if skills else []
    phases = [p for p in PHASES if any(ms.phases.get(p) is not None for ms in skills)]
    rows = []
    for ms in skills:
        cells = [esc(ms.method)]
        for s in splits:
            cells += [skill_text(*ms.skill[s], ms.beats[s]), pooled_text(ms.pooled.get(s))]
        cells += [pooled_text(ms.phases.get(p)) for p in phases]
        cells.append(num(ms.lds.get("seen")) if splits and "seen" in splits else "n/a")
        rows.append(cells)
    heads = [h for s in splits for h in (f"median skill · {s}", f"pooled · {s}")]
    return md_table(["method", *heads, *(f"{p.split('_')[-1]} · seen" for p in phases), "lds · seen"], rows)


def headroom_table(lb: Leaderboard, group: str | None = None) -> str:
    """Per benchmark (loss, seen split): the zero line against the constant, and the share around the mean."""
    rows = []
    for t in lb.tables:
        if t.trajectory != "loss" or t.split != "seen" or (group is not None and t.group != group) or not t.headroom:
            continue
        h = t.headroom
        rows.append([f"`{t.benchmark}`", num(h.get("mse_reference")), num(h.get("mse_constant")),
                     num(h.get("reference_over_constant")), num(h.get("around_mean_share"))])
    if not rows:
        return "No benchmark has a scored seen split on loss here.\n"
    return md_table(["benchmark", "mse zero line", "mse constant", "zero line / constant", "share around mean"], rows)


def published_section() -> str:
    """The published numbers, labelled as such."""
    rows = [
        [SETTING_NAMES[p.setting], p.model, p.scope, p.method, f"{p.mse:.3f}", f"{p.mae:.3f}" if p.mae is not None else "n/a", f"{p.rho:.3f}"]
        for p in PUBLISHED
    ]
    out = [
        "## Published numbers (GPTfluence paper), not measured by tdabench\n",
        f"> **Published** in {CITATION} on the GPTDynamics data with Pythia models; quoted for orientation. "
        "They are not results of this harness and their scale is not comparable with the tables above: "
        "compare orderings, not values.\n",
        md_table(["setting", "model", "tasks", "method", "MSE", "MAE", "final-step ρ"], rows),
    ]
    out += [f"- {n}" for n in PUBLISHED_NOTES]
    return "\n".join(out) + "\n"


def orderings_section(lb: Leaderboard) -> str:
    """Published vs measured order of the methods both have."""
    lines = ["### Orderings: published vs measured\n"]
    if not lb.orderings:
        lines.append("No benchmark id names an `it` or `ft` setting, so there is nothing to compare.")
    for o in lb.orderings:
        where = ", ".join(group_title(g) for g in o.groups)
        if len(o.measured) < 2:
            lines.append(f"- {SETTING_NAMES[o.setting]}: fewer than two of the published methods were measured ({where}); no ordering to compare.")
            continue
        lines.append(f"- {SETTING_NAMES[o.setting]}, published (Pythia-410M, by MSE): {' < '.join(o.published)}; "
                     f"measured ({where}, loss, seen, by mean rank): {' < '.join(esc(m) for m in o.measured)}.")
    return "\n".join(lines) + "\n"


def provenance_section(lb: Leaderboard) -> str:
    """The provenance footer; the last line is the only one that changes between regenerations."""
    p = lb.provenance
    created = f", written {p.created[0]} to {p.created[1]}" if p.created else ""
    lines = [
        "## Provenance\n",
        f"- Command: `{p.command}`",
        f"- Results: {p.n_files} result files (digest `{p.digest}`){created}",
        f"- Produced by tdabench {', '.join(p.versions)} at git {', '.join(f'`{g}`' for g in p.gits)} on {'; '.join(p.machines)}",
        *(f"- Result command: `{c}`" for c in p.commands),
        *(f"- Data: `{b}` {', '.join(f'`{h}`' for h in hs)}" for b, hs in p.data_hashes.items()),
        f"- _{p.generated}_",
    ]
    return "\n".join(lines) + "\n"


def mislabel_markdown(results: Sequence[MislabelResult]) -> str:
    """The mislabel-identification section, or '' without mislabel results."""
    if not results:
        return ""
    out = ["## Mislabel identification\n", MISLABEL_HOW + "\n"]
    for bench, rs in by_benchmark(results).items():
        out += [f"### {esc(bench)}\n", reference_line(rs) + "\n", md_table(list(MISLABEL_HEADERS), [[esc(c) for c in row] for row in mislabel_rows(rs)])]
    return "\n".join(out)


def _issues(lb: Leaderboard) -> str:
    out = []
    if lb.problems:
        out.append("## Files left out\n")
        out += [f"- {esc(p)}" for p in lb.problems]
        out.append("")
    failed = [e.result for e in lb.collection.entries if e.result.status == "failed"]
    if failed:
        out.append("## Failed cells\n")
        out.append(md_table(["benchmark", "metric", "split", "method", "error"],
                            [[esc(r.benchmark), r.trajectory, r.split, esc(r.method), esc(r.error or "")] for r in failed]))
    if lb.collection.duplicates:
        out.append("## Duplicate results (the newest is kept)\n")
        rows = []
        for d in lb.collection.duplicates:
            dropped = "; ".join(f"`{e.path.as_posix()}` ({e.result.provenance.created})" for e in d.dropped)
            rows.append([esc(" / ".join(map(str, d.cell[:4])) + f" (seed {d.cell[4]})"), f"`{d.kept.path.as_posix()}` ({d.kept.result.provenance.created})", esc(dropped)])
        out.append(md_table(["benchmark / metric / split / method", "kept", "dropped"], rows))
    return "\n".join(out)


def summary_page(lb: Leaderboard) -> str:
    """``README.md``: pages, mean ranks, published numbers, failures, duplicates, provenance."""
    n_bench = len({t.benchmark for t in lb.tables})
    out = [
        "# tdabench leaderboards\n",
        f"Generated by `tdabench leaderboard` from {lb.provenance.n_files} result files over {n_bench} benchmarks; "
        "do not edit by hand. The browsable page with plots is [index.html](index.html); the aggregated "
        "table is exported as [leaderboard.csv](leaderboard.csv) and [leaderboard.json](leaderboard.json).\n",
        "## Pages\n",
        *(f"- [{group_title(g)}]({g}.md): {len({t.benchmark for t in lb.tables if t.group == g})} benchmarks" for g in lb.groups),
        "",
    ]
    for group in lb.groups:
        if "loss" in lb.skills.get(group, {}):
            out += [f"## Attribution: skill over the zero line, {group_title(group)} (loss)\n", SKILL_HOW + "\n",
                    skill_table(lb.skills[group]["loss"])]
    out += ["## Headroom: how much each benchmark leaves to attribute\n", HEADROOM_HOW + "\n", headroom_table(lb)]
    for metric, ranks in lb.ranks[ALL].items():
        out += [f"## Mean rank over all benchmarks ({metric})\n", RANK_HOW + "\n", rank_table(ranks)]
    out += [published_section(), orderings_section(lb)]
    section = mislabel_markdown(lb.collection.mislabel)
    if section:
        out.append(section)
    issues = _issues(lb)
    if issues:
        out.append(issues)
    out.append(provenance_section(lb))
    return "\n".join(out)


def coverage_section(lb: Leaderboard, group: str) -> str:
    """Which methods of the board did not run on every benchmark and split of the group (loss)."""
    gaps = lb.coverage.get(group, ())
    out = ["## Coverage\n"]
    if not gaps:
        return "\n".join(out + ["Every method of this leaderboard ran on every benchmark and split of this group (loss).\n"])
    out.append("Methods of this leaderboard without a cell on some benchmark or split of this group (loss); "
               "the others ran everywhere. A missing cell was not run, it did not fail (failed cells are listed as such).\n")
    rows = [[f"`{esc(c.method)}`", f"{c.ran} of {c.total}", ", ".join(c.splits) or "none"] for c in gaps]
    out.append(md_table(["method", "benchmark × split tables", "splits run"], rows))
    return "\n".join(out)


def group_page(lb: Leaderboard, group: str) -> str:
    """``<group>.md``: the group's mean ranks, then every benchmark's tables."""
    tables = [t for t in lb.tables if t.group == group]
    out = [f"# Leaderboard: {group_title(group)}\n",
           "Generated by `tdabench leaderboard` from result files; do not edit by hand. "
           "Plots: [index.html](index.html). Summary and published numbers: [README.md](README.md).\n",
           LEGEND + "\n"]
    for metric, skills in lb.skills.get(group, {}).items():
        out += [f"## Skill over the zero line in this group ({metric})\n", SKILL_HOW + "\n", skill_table(skills)]
    out += ["## Headroom\n", HEADROOM_HOW + "\n", headroom_table(lb, group)]
    for metric, ranks in lb.ranks[group].items():
        out += [f"## Mean rank in this group ({metric})\n", rank_table(ranks)]
    out.append(coverage_section(lb, group))
    bench = None
    for t in tables:
        if t.benchmark != bench:
            bench = t.benchmark
            hashes = ", ".join(f"`{h}`" for h in lb.provenance.data_hashes.get(bench, ()))
            out.append(f"## {bench}\n\nModel size: {format_size(lb.model_sizes[bench])} · data {hashes}\n")
            why = lb.not_ranked(bench)
            if why:
                out.append(f"> **Not ranked in the tier summaries**: {esc(why)}. Its tables are shown for reference.\n")
            props = property_lines(lb.properties.get(bench, {}))
            if props:
                out.append("\n".join(f"- {k}: {esc(v)}" for k, v in props) + "\n")
        out += [f"### {table_heading(t)}\n", result_table(t)]
    out.append(provenance_section(lb))
    return "\n".join(out)
