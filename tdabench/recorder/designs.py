"""Run designs: how the runs of a recording differ, so that the data leaves something to attribute.

A design turns (task, schedule, run index, seed) into the run's batches, int64 [T, B] (``-1``
padded), and the parameters that made them, stored in the manifest. Every design ends in a
*plan*, the batches in GPTDynamics' ``train_samples_id.json`` form, and the recorder trains on
plans alone, so a user's own plans (``--plan``) take exactly the path the built-in designs take.

* ``uniform``: ``sample`` examples of the pool, reshuffled every epoch (GPTDynamics; the default).
* ``mixture``: group weights drawn per run from Dirichlet(alpha), counts per group from them
  (a group asked for more examples than it holds repeats some).
* ``drop-group``: run ``j`` leaves out group ``j mod G``, so every group is dropped equally often.
* ``duplicate``: ``k`` examples of one group (drawn per run) appear ``m`` times every epoch.
* ``curriculum``: every other run visits its groups one after another (a group order drawn per
  run, the same every epoch); the runs between are shuffled as in ``uniform``.
* ``label-noise``: a fixed ``fraction`` of the pool is replaced by copies with the other label
  (new ids, ``id + FLIP_OFFSET``), the same noisy pool for every run, as in GPTfluence's
  mislabel experiment; the flips are stored in the manifest.
* ``plan``: the batches of files given by the user (one run per file).

Groups (``group_by``) are a mixture's tasks, or a task's labels, templates or both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.config import option, validate_options
from tdabench.errors import TDABenchError
from tdabench.recorder.tasks import FLIP_OFFSET

DESIGNS: tuple[str, ...] = ("uniform", "mixture", "drop-group", "duplicate", "curriculum", "label-noise", "plan")
GROUPINGS: tuple[str, ...] = ("auto", "task", "label", "template", "label+template")
#: Salt of the design's own random draws, so that ``uniform`` keeps its historical streams.
DESIGN_SALT = 7_840


@dataclass(frozen=True)
class DesignSpec:
    """A run design and its options (stored in ``record.json`` and the manifest).

    Attributes:
        name: one of :data:`DESIGNS`.
        group_by: what a group is (``auto``: tasks for a mixture, label+template otherwise).
        alpha: ``mixture``: Dirichlet concentration of the per-run group weights.
        k, m: ``duplicate``: examples repeated, and how many times each appears per epoch.
        fraction: ``label-noise``: share of the pool whose label is flipped.
        plan: ``plan``: a ``train_samples_id.json`` file, or a folder of them (one run each).
    """

    name: str = option("uniform", "how runs differ (docs/benchmarks.md)", DESIGNS, flag="--design")
    group_by: str = option("auto", "groups of the designs (auto: tasks in a mixture, label+template otherwise)", GROUPINGS)
    alpha: float = option(0.7, "mixture: Dirichlet concentration of the per-run group weights", gt=0)
    k: int = option(8, "duplicate: examples repeated", ge=1, flag="--dup-k")
    m: int = option(4, "duplicate: appearances of each repeated example per epoch", ge=2, flag="--dup-m")
    fraction: float = option(0.4, "label-noise: share of the pool whose label is flipped", gt=0, le=0.99, flag="--noise-fraction")
    plan: str | None = option(None, "plan: a train_samples_id.json file, or a folder of them (one run each)")

    def __post_init__(self) -> None:
        validate_options(self)
        if (self.name == "plan") != (self.plan is not None):
            raise ValueError("--plan FILE goes with --design plan (and only with it)")

    def summary(self) -> dict[str, Any]:
        """The options that matter for this design (for the manifest and descriptions)."""
        keys = {"mixture": ("group_by", "alpha"), "drop-group": ("group_by",), "duplicate": ("group_by", "k", "m"),
                "curriculum": ("group_by",), "label-noise": ("fraction",), "plan": ("plan",)}.get(self.name, ())
        return {"name": self.name, **{k: getattr(self, k) for k in keys}}


@dataclass(frozen=True)
class RunPlan:
    """One run to record: its seed, its batches and what the design chose for it."""

    seed: int
    batches: np.ndarray
    params: Mapping[str, Any] = field(default_factory=dict)


def grouping(design: DesignSpec, setting: str) -> str:
    """The grouping ``auto`` stands for: tasks in a mixture, label and template otherwise."""
    if design.group_by != "auto":
        return design.group_by
    return "task" if setting == "it" else "label+template"


def _epochs(chosen: np.ndarray, per_epoch: int, epochs: int, B: int, rng: np.random.Generator, shuffle: bool = True) -> np.ndarray:
    """[epochs * ceil(per_epoch / B), B]: ``chosen`` (one epoch's multiset) every epoch, ``-1`` padded."""
    steps = -(-per_epoch // B)
    out = np.full((epochs, steps * B), -1, dtype=np.int64)
    for e in range(epochs):
        out[e, :per_epoch] = rng.permutation(chosen) if shuffle else chosen
    return out.reshape(epochs * steps, B)


def uniform_batches(pool: np.ndarray, sample: int, epochs: int, B: int, seed: int) -> np.ndarray:
    """``sample`` ids of ``pool`` drawn by ``seed``, reshuffled every epoch (the historical stream)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.asarray(pool, dtype=np.int64), size=sample, replace=False)
    return _epochs(chosen, sample, epochs, B, rng)


def _by_group(pool: np.ndarray, groups: Mapping[int, str]) -> dict[str, np.ndarray]:
    names = sorted({groups[int(i)] for i in pool})
    return {g: np.array([i for i in pool if groups[int(i)] == g], dtype=np.int64) for g in names}


def plan_run(design: DesignSpec, pool: np.ndarray, groups: Mapping[int, str], sample: int, epochs: int, B: int,
             index: int, seed: int) -> RunPlan:
    """The batches of run ``index`` (seed ``seed``) of ``design`` over ``pool``."""
    pool = np.asarray(pool, dtype=np.int64)
    if design.name in ("uniform", "label-noise"):  # label-noise: the pool is already the noisy one
        return RunPlan(seed, uniform_batches(pool, sample, epochs, B, seed))
    rng = np.random.default_rng([seed, DESIGN_SALT])
    by = _by_group(pool, groups)
    names = list(by)
    if design.name == "mixture":
        # Counts per group from the weights; a group asked for more than it holds repeats examples,
        # so a heavily weighted group really dominates the run (a pool of 40 per task would cap it).
        w = rng.dirichlet(np.full(len(names), design.alpha))
        counts = rng.multinomial(sample, w)
        chosen = np.concatenate([rng.choice(by[g], size=c, replace=c > len(by[g])) for g, c in zip(names, counts)])
        params = {"weights": {g: round(float(x), 6) for g, x in zip(names, w)}, "counts": {g: int(c) for g, c in zip(names, counts)}}
        return RunPlan(seed, _epochs(chosen, sample, epochs, B, rng), params)
    if design.name == "drop-group":
        dropped = names[index % len(names)]
        rest = np.concatenate([by[g] for g in names if g != dropped])
        if len(rest) < sample:
            raise TDABenchError(f"drop-group: without group {dropped!r} only {len(rest)} examples remain, fewer than --sample {sample}")
        chosen = rng.choice(rest, size=sample, replace=False)
        return RunPlan(seed, _epochs(chosen, sample, epochs, B, rng), {"dropped": dropped})
    if design.name == "duplicate":
        eligible = [g for g in names if len(by[g]) >= design.k]
        if not eligible or design.k * design.m > sample:
            raise TDABenchError(f"duplicate: needs a group of at least --dup-k {design.k} examples and k*m <= --sample {sample}")
        group = eligible[int(rng.integers(len(eligible)))]
        dup = np.sort(rng.choice(by[group], size=design.k, replace=False))
        rest = rng.choice(np.setdiff1d(pool, dup), size=sample - design.k * design.m, replace=False)
        chosen = np.concatenate([rest, np.repeat(dup, design.m)])
        return RunPlan(seed, _epochs(chosen, sample, epochs, B, rng), {"group": group, "duplicated": dup.tolist(), "times": design.m})
    if design.name == "curriculum":
        chosen = rng.choice(pool, size=sample, replace=False)
        if index % 2:  # the shuffled runs between the ordered ones
            return RunPlan(seed, _epochs(chosen, sample, epochs, B, rng), {"order": "shuffled"})
        order = [names[j] for j in rng.permutation(len(names))]
        rank = {g: r for r, g in enumerate(order)}
        # Within a group shuffled, groups one after another: a stable sort of a permutation.
        perm = rng.permutation(chosen)
        sorted_ids = perm[np.argsort([rank[groups[int(i)]] for i in perm], kind="stable")]
        return RunPlan(seed, _epochs(sorted_ids, sample, epochs, B, rng, shuffle=False), {"order": "sorted", "group_order": order})
    raise TDABenchError(f"design {design.name!r} is not made from a pool (plans come from files)")


def read_plans(path: str | Path, B: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, batches [T, B]) of each plan: one ``train_samples_id.json`` file, or every
    ``*.json`` file of a folder (sorted by name), each in GPTDynamics' format."""
    from tdabench.formats.gptdynamics_read import read_batches

    path = Path(path).expanduser()
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise TDABenchError(f"{path}: no plan files (*.json in the train_samples_id.json format)")
    out = []
    for f in files:
        _, batches = read_batches(f)
        out.append((f.stem, batches))
    return out


def noisy_pool(pool: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, dict[int, int]]:
    """The pool with ``fraction`` of its ids replaced by their flipped copies, and the flips
    ``{flipped id: original id}``; the draw depends on ``seed`` alone."""
    pool = np.asarray(pool, dtype=np.int64)
    rng = np.random.default_rng([seed, DESIGN_SALT, 1])
    flipped = np.sort(rng.choice(pool, size=int(round(fraction * len(pool))), replace=False))
    flips = {int(i) + FLIP_OFFSET: int(i) for i in flipped}
    return np.where(np.isin(pool, flipped), pool + FLIP_OFFSET, pool), flips


@dataclass(frozen=True)
class RecordingPlan:
    """Every run of a recording: pool-A runs, then pool-B (``unseen-train``) runs.

    Attributes:
        runs: the runs in order; the first ``len(runs) - n_unseen`` form the main split.
        n_unseen: how many runs (at the end) sample from pool B.
        pool_a, pool_b: the pools as sampled (with flipped copies under ``label-noise``).
        flips: ``{flipped id: original id}`` (``label-noise`` only).
    """

    runs: tuple[RunPlan, ...]
    n_unseen: int
    pool_a: np.ndarray
    pool_b: np.ndarray
    flips: Mapping[int, int] = field(default_factory=dict)


def plan_recording(design: DesignSpec, pool_a: np.ndarray, pool_b: np.ndarray, groups: Mapping[int, str], *,
                   sample: int, epochs: int, batch_size: int, runs: int, unseen_runs: int | None, seed: int,
                   unseen_seed_offset: int, name: str) -> RecordingPlan:
    """The runs of a recording of ``design`` on a task's pools (``name`` names it in errors)."""
    if design.name == "plan":
        plans = read_plans(str(design.plan))
        return RecordingPlan(tuple(RunPlan(seed + i, b, {"plan": f}) for i, (f, b) in enumerate(plans)), 0, pool_a, pool_b)
    flips: dict[int, int] = {}
    if design.name == "label-noise":
        pool_a, flips_a = noisy_pool(pool_a, design.fraction, seed)
        pool_b, flips_b = noisy_pool(pool_b, design.fraction, seed + 1) if len(pool_b) else (pool_b, {})
        flips = {**flips_a, **flips_b}
    if sample > len(pool_a):
        raise TDABenchError(f"--sample {sample} is larger than the training pool of {name} ({len(pool_a)} examples)")
    enough_b = len(pool_b) >= sample
    n_b = (3 if enough_b else 0) if unseen_runs is None else unseen_runs
    if n_b and not enough_b:
        raise TDABenchError(f"--unseen-runs needs a disjoint pool of at least --sample {sample} examples; {name} has {len(pool_b)}")
    main = [plan_run(design, pool_a, groups, sample, epochs, batch_size, i, seed + i) for i in range(runs)]
    extra = [plan_run(design, pool_b, groups, sample, epochs, batch_size, j, seed + unseen_seed_offset + j) for j in range(n_b)]
    return RecordingPlan(tuple(main + extra), n_b, pool_a, pool_b, flips)
