"""The leaderboard's model: everything the renderers show, assembled from a collection of results.

Imports run one way: this model (with the tables of :mod:`~tdabench.leaderboard.aggregate`)
-> the renderers (markdown, html, plots, exports) -> :mod:`~tdabench.leaderboard.write`.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tdabench import __version__
from tdabench.data import SPLITS
from tdabench.leaderboard.aggregate import RANK_METRIC, MeanRank, MeanSkill, Table, build_tables, mean_ranks, mean_skills, speedup
from tdabench.leaderboard.collect import Collection, model_size
from tdabench.leaderboard.published import Ordering, orderings
from tdabench.leaderboard.samples import Samples, TruthSource, sample_trajectories
from tdabench.recorder.properties import curve_properties, fit_curve
from tdabench.results.provenance import cpu_count, git_revision

ALL = "all"


@dataclass(frozen=True)
class Provenance:
    """Where a leaderboard comes from.

    Attributes:
        command: the exact ``tdabench leaderboard`` command.
        generated: the volatile line: date, generating tdabench version and git revision, machine.
        versions, gits, machines, commands: distinct values in the results' provenance.
        data_hashes: benchmark -> the data hashes its results name.
    """

    command: str
    generated: str
    n_files: int
    digest: str
    versions: tuple[str, ...]
    gits: tuple[str, ...]
    machines: tuple[str, ...]
    commands: tuple[str, ...]
    created: tuple[str, str] | None
    data_hashes: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Coverage:
    """Where one method ran in one group (loss tables): a board built from a partial run says so.

    Attributes:
        method: the method.
        ran: (benchmark, split) tables with a cell of the method, of ``total`` in the group.
        splits: the splits it ran on at least once.
    """

    method: str
    ran: int
    total: int
    splits: tuple[str, ...]


def coverage(tables: Sequence[Table]) -> dict[str, tuple[Coverage, ...]]:
    """group -> every method of the board that lacks a cell in some of the group's loss tables."""
    methods = sorted({r.result.method for t in tables for r in t.rows})
    out: dict[str, tuple[Coverage, ...]] = {}
    for g in sorted({t.group for t in tables}):
        gt = [t for t in tables if t.group == g and t.trajectory == "loss"]
        gaps = []
        for m in methods:
            ran = [t for t in gt if any(r.result.method == m for r in t.rows)]
            if len(ran) < len(gt):
                names = {t.split for t in ran}
                splits = tuple(x for x in SPLITS if x in names) + tuple(sorted(names - set(SPLITS)))
                gaps.append(Coverage(m, len(ran), len(gt), splits))
        if gaps:
            out[g] = tuple(gaps)
    return out


@dataclass(frozen=True)
class Leaderboard:
    """Everything the renderers show.

    Attributes:
        ranks: scope (``all`` or a group) -> trajectory -> mean ranks by skill.
        skills: scope -> trajectory -> mean skill and LDS per method (the attribution summary).
        problems: one line per result or predictions file left out.
        samples: (benchmark, metric) -> sample trajectories of one split.
        sizes: group -> method -> (model size, mse) points (loss, seen split).
        size_notes: group -> why some or all benchmarks are missing from its size plot.
        model_sizes: benchmark -> parameters of its model, if known.
        properties: benchmark -> its measured properties (targets, fit runs' curve, label accuracy
            or BLEU / ROUGE-L at both ends, headroom, recording cost, ``not_ranked``).
        fronts: group -> method -> (median cost as a share of retraining, median skill), loss, seen.
        references: methods that are reference points (``retrain``): shown, never ranked.
        coverage: group -> the methods that did not run on every (benchmark, split) of the group's
            loss tables, with where they ran (:class:`Coverage`).
    """

    collection: Collection
    tables: tuple[Table, ...]
    groups: tuple[str, ...]
    ranks: dict[str, dict[str, list[MeanRank]]]
    orderings: tuple[Ordering, ...]
    samples: dict[tuple[str, str], Samples]
    sizes: dict[str, dict[str, list[tuple[float, float]]]]
    size_notes: dict[str, str]
    provenance: Provenance
    model_sizes: dict[str, float | None]
    metrics: tuple[str, ...] = field(default=())
    skills: dict[str, dict[str, list[MeanSkill]]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    fronts: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    references: frozenset[str] = frozenset()
    coverage: dict[str, tuple[Coverage, ...]] = field(default_factory=dict)

    def not_ranked(self, benchmark: str) -> str:
        """Why a benchmark is left out of the tier summaries ('' when it is not)."""
        return str(self.properties.get(benchmark, {}).get("not_ranked") or "")


def _properties(tables: Sequence[Table], truth: TruthSource) -> dict[str, dict[str, Any]]:
    """benchmark -> what its source measured (``BenchmarkRef.properties``); where that lacks the fit
    runs' curve and the benchmark can be loaded with the results' data, both measured here."""
    out: dict[str, dict[str, Any]] = {}
    for t in tables:
        if t.benchmark in out:
            continue
        props = dict(truth.properties(t.benchmark))
        ok = next((r.result for r in t.rows if r.result.status == "ok"), None)
        if "fit_curve" not in props and ok is not None and truth.context is not None:
            bench, _ = truth.lookup(t.benchmark, ok.data_hash)
            if bench is not None and "loss" in bench.trajectories:
                fit = set(bench.split.fit_runs)
                runs = [r for r in bench.runs if r.name in fit and "loss" in r.trajectories]
                if runs and len({r.trajectories["loss"].values.shape for r in runs}) == 1:
                    loss = np.stack([r.trajectories["loss"].values for r in runs])
                    props["fit_curve"] = fit_curve(loss, runs[0].trajectories["loss"].steps.tolist())
                    props.setdefault("targets", curve_properties(loss).as_dict())
        out[t.benchmark] = props
    return out


def _fronts(tables: Sequence[Table], excluded: frozenset[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """group -> method -> (median cost as a share of retraining, median skill) over the group's
    ranked benchmarks (loss, seen split), for the skill-against-cost figure."""
    acc: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for t in tables:
        if t.trajectory != "loss" or t.split != "seen" or t.benchmark in excluded:
            continue
        for r in t.rows:
            sp, skill = speedup(r), r.result.scores.get(RANK_METRIC)
            if sp is None or skill is None or r.result.status != "ok" or r.result.in_sample or not math.isfinite(skill.mean):
                continue
            acc.setdefault(t.group, {}).setdefault(r.result.method, []).append((1.0 / sp, skill.mean))
    return {g: {m: (float(np.median([c for c, _ in v])), float(np.median([k for _, k in v]))) for m, v in ms.items()}
            for g, ms in acc.items()}


def _provenance(coll: Collection, command: str, now: datetime | None) -> Provenance:
    now = now or datetime.now(timezone.utc)
    prov = [e.result.provenance for e in coll.entries if e.result.provenance.created]
    versions = sorted({str(p.versions.get("tdabench")) for p in prov})
    created = sorted(p.created for p in prov)
    hashes: dict[str, set[str]] = {}
    for e in coll.entries:
        hashes.setdefault(e.result.benchmark, set()).add(e.result.data_hash)
    machine = f"{platform.system()} {platform.machine()}, {cpu_count()} CPUs"
    return Provenance(
        command=command,
        generated=f"Generated on {now.isoformat(timespec='seconds')} by tdabench {__version__} (git {git_revision() or 'unknown'}) on {machine}",
        n_files=coll.n_files,
        digest=coll.digest,
        versions=tuple(versions),
        gits=tuple(sorted({str(p.git) for p in prov})),
        machines=tuple(sorted({str(p.machine) for p in prov})),
        commands=tuple(sorted({str(p.command) for p in prov})),
        created=(created[0], created[-1]) if created else None,
        data_hashes={b: tuple(sorted(h)) for b, h in sorted(hashes.items())},
    )


def _samples(tables: Sequence[Table], truth: TruthSource, problems: list[str]) -> dict[tuple[str, str], Samples]:
    """One split per (benchmark, trajectory): ``seen`` if it has ok cells, else the first that has."""
    out: dict[tuple[str, str], Samples] = {}
    for t in tables:  # sorted, so "seen" comes first within a (benchmark, trajectory)
        key = (t.benchmark, t.trajectory)
        if key in out or not any(r.result.status == "ok" for r in t.rows):
            continue
        s = sample_trajectories([r.entry for r in t.rows], truth, problems)
        if s is not None:
            out[key] = s
    return out


def _sizes(tables: Sequence[Table], model_sizes: dict[str, float | None]) -> tuple[dict[str, dict[str, list[tuple[float, float]]]], dict[str, str]]:
    points: dict[str, dict[str, list[tuple[float, float]]]] = {}
    unknown: dict[str, list[str]] = {}
    for t in tables:
        if t.trajectory != "loss" or t.split != "seen":
            continue
        size = model_sizes[t.benchmark]
        if size is None:
            unknown.setdefault(t.group, []).append(t.benchmark)
            continue
        for r in t.rows:
            mse = r.result.scores.get("mse_all_steps")
            if r.result.status == "ok" and not r.result.in_sample and mse is not None and mse.mean == mse.mean:
                points.setdefault(t.group, {}).setdefault(r.result.method, []).append((size, mse.mean))
    notes = {
        g: f"Model size unknown (the id names none, e.g. '410m'), left out: {', '.join(sorted(b))}." for g, b in unknown.items()
    }
    for g, by_method in points.items():
        if len({x for pts in by_method.values() for x, _ in pts}) == 1 and g not in notes:
            notes[g] = "All benchmarks of this group have one model size, so the plot has one point per method."
    return points, notes


def assemble(coll: Collection, truth: TruthSource, command: str, now: datetime | None = None) -> Leaderboard:
    """The leaderboard of a collection of results."""
    props = {b: dict(truth.properties(b)) for b in sorted({e.result.benchmark for e in coll.entries})}
    run_seconds = {b: float(p["run_seconds_per_run"]) for b, p in props.items() if p.get("run_seconds_per_run")}
    tables = build_tables(coll.entries, run_seconds)
    properties = _properties(tables, truth)
    excluded = frozenset(b for b, p in properties.items() if p.get("not_ranked"))
    groups = tuple(sorted({t.group for t in tables}))
    metrics = tuple(sorted({t.trajectory for t in tables}, key=lambda m: (m != "loss", m)))
    ranks = {ALL: {m: mean_ranks(tables, m) for m in metrics}}
    for g in groups:
        gt = [t for t in tables if t.group == g]
        ranks[g] = {m: mean_ranks(gt, m) for m in metrics if any(t.trajectory == m for t in gt)}
    skills = {ALL: {m: mean_skills(tables, m, excluded) for m in metrics}}
    for g in groups:
        gt = [t for t in tables if t.group == g]
        skills[g] = {m: mean_skills(gt, m, excluded) for m in metrics if any(t.trajectory == m for t in gt)}
    by_setting: dict[str, tuple[tuple[str, ...], list[MeanRank]]] = {}
    for setting in ("it", "ft"):
        st = [t for t in tables if t.benchmark.split("/")[1:2] == [setting]]
        if st:
            by_setting[setting] = (tuple(sorted({t.group for t in st})), mean_ranks(st, "loss"))
    problems = list(coll.problems)
    samples = _samples(tables, truth, problems)  # loads the benchmarks it can, so their metadata is known below
    model_sizes = {}
    for t in tables:
        bench = truth.cached(t.benchmark)
        model_sizes[t.benchmark] = model_size(t.benchmark, bench.meta.n_params if bench is not None else None)
    sizes, notes = _sizes(tables, model_sizes)
    return Leaderboard(coll, tuple(tables), groups, ranks, tuple(orderings(by_setting)), samples, sizes, notes,
                       _provenance(coll, command, now), model_sizes, metrics, skills, tuple(problems), properties,
                       _fronts(tables, excluded), frozenset(e.result.method for e in coll.entries if not e.result.ranked),
                       coverage(tables))
