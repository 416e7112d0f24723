"""What ``tdabench leaderboard`` checks of the scores it shows: ``--verify``, and perfect scores.

``--verify`` scores every ok cell again from its stored predictions and its benchmark's truth
(:func:`tdabench.run.verify.verify_cell`). A perfect score of a ranked method is flagged for a
look: the truth of a benchmark is on disk, and tdabench is not a sandbox (docs/architecture.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tdabench.leaderboard.collect import Collection, Entry
from tdabench.leaderboard.samples import TruthSource

#: A ranked cell this close to a perfect prediction is flagged.
PERFECT_MSE, PERFECT_SKILL = 1e-12, 1 - 1e-9


def suspicious(entries: Sequence[Entry]) -> list[str]:
    """One line per ranked ok cell with MSE 0 or skill 1."""
    out = []
    for e in entries:
        r = e.result
        if r.status != "ok" or not r.ranked or r.in_sample:
            continue
        mse, skill = r.scores.get("mse_all_steps"), r.scores.get("skill_mse")
        if (mse is not None and mse.mean <= PERFECT_MSE) or (skill is not None and skill.mean >= PERFECT_SKILL):
            out.append(f"{r.method} on {r.benchmark}/{r.trajectory}/{r.split} (seed {r.seed}) scores perfectly (MSE "
                       f"{mse.mean if mse else float('nan'):.3g}, skill {skill.mean if skill else float('nan'):.6g}): "
                       f"check that it does not read evaluation runs from disk ({e.path})")
    return out


def verify(collection: Collection, truth: TruthSource) -> int:
    """Check every cell (duplicates included) and print what does not hold; exit status 1 on any
    mismatch or unchecked cell, else 0."""
    from tdabench.run.verify import verify_cell  # the run engine scores; the leaderboard only reads

    entries = [*collection.entries, *(e for d in collection.duplicates for e in d.dropped)]
    counts = {"ok": 0, "mismatch": 0, "unchecked": 0, "skipped": 0}
    for e in sorted(entries, key=lambda e: e.path.as_posix()):
        r = e.result
        if r.status != "ok":
            counts["skipped"] += 1
            continue
        bench, why = truth.lookup(r.benchmark, r.data_hash)
        if bench is None:
            counts["unchecked"] += 1
            print(f"tdabench: unchecked: {e.path}: {why.replace('true trajectories not shown: ', '')}", file=sys.stderr)
            continue
        name = r.predictions
        verdict = verify_cell(r, e.path.parent / name if name else None, bench)
        counts[verdict.status] += 1
        if verdict.status != "ok":
            print(f"tdabench: {verdict.status}: {e.path}: {verdict.detail}", file=sys.stderr)
    for line in suspicious(entries):
        print(f"tdabench: suspicious: {line}", file=sys.stderr)
    print(f"{counts['ok'] + counts['mismatch'] + counts['unchecked']} scored cell(s): {counts['mismatch']} mismatch(es), "
          f"{counts['unchecked']} unchecked, {counts['ok']} verified ({counts['skipped']} n/a or failed cell(s) have no scores)")
    return 1 if counts["mismatch"] or counts["unchecked"] else 0

