"""The bank's tables for the README and docs: what each benchmark is, and how methods named in advance do.

    python scripts/bank_table.py leaderboards/leaderboard.json              # properties + headline
    python scripts/bank_table.py leaderboards/leaderboard.json --phases     # per-phase skills
    python scripts/bank_table.py leaderboards/leaderboard.json --cost       # skill, LDS, fit time, speed-up
    python scripts/bank_table.py leaderboards/leaderboard.json --splits     # library methods on every cf split

The headline methods are fixed here, before any result is read: each family's form that nests
the zero line (``simfluence-residual``, ``gptfluence-residual``, ``tracin-cp-residual``) and the
batch-aware bar ``cluster-datamodel``. The best method per benchmark is never a column: choosing
it on the evaluation runs would flatter the field (issue 23).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tdabench.sources.bank import read_index

HEADLINE = ("simfluence-residual", "gptfluence-residual", "tracin-cp-residual", "cluster-datamodel")
PHASE_METHODS = ("simfluence-residual", "gptfluence-residual", "tracin-cp-residual", "cluster-datamodel")
COST_METHODS = ("influence", "ekfac-influence", "kfac-influence", "diagonal-influence", "trak", "tracin-cp",
                "influence-residual", "ekfac-influence-residual", "kfac-influence-residual", "diagonal-influence-residual",
                "trak-residual", "tracin-cp-residual", "retrain")
SPLIT_METHODS = ("ekfac-influence", "kfac-influence", "diagonal-influence", "trak", "ekfac-influence-residual", "trak-residual")
SPLITS = ("seen", "unseen-train", "unseen-test", "unseen-both")


def _rows(doc: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {(r["benchmark"], r["trajectory"], r["split"], r["method"]): r for r in doc["rows"]}


def _skill(row: dict[str, Any] | None, name: str = "skill_mse") -> str:
    if row is None or row.get("status") != "ok" or row["scores"].get(name) is None:
        return "–"
    mean, _, lo, hi, _ = row["scores"][name]
    if mean is None:
        return "undefined"
    seeds = len(row.get("seeds", [0]))
    tail = f" ({seeds} seeds)" if seeds > 1 else ""
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]{tail}" if lo is not None else f"{mean:+.3f}{tail}"


def _ends(entry: dict[str, Any]) -> str:
    acc = entry.get("label_accuracy")
    if isinstance(acc, dict) and acc.get("all"):
        a, b = acc["all"][0], acc["all"][-1]
        return f"accuracy {a:.2f} → {b:.2f}"
    text = entry.get("text_scores")
    if isinstance(text, dict):
        parts = []
        for name in ("bleu", "rougeL"):
            v = text.get(name)
            if isinstance(v, dict) and v.get("all"):
                parts.append(f"{name} {v['all'][0]:.3g} → {v['all'][-1]:.3g}")
            elif isinstance(v, list) and v:
                parts.append(f"{name} {v[0]:.3g} → {v[-1]:.3g}")
        return "; ".join(parts) or "–"
    return "–"


def properties(doc: dict[str, Any]) -> None:
    """Issue 27's table: the measured properties and the headline methods' seen skill (loss)."""
    rows = _rows(doc)
    print("| benchmark | step1/step0 | max/step0 | final/step0 | targets | at both ends | headroom | "
          + " | ".join(f"`{m}`" for m in HEADLINE) + " |")
    print("| --- " * (7 + len(HEADLINE)) + "|")
    for e in read_index():
        t = e.get("targets") or {}
        met = "both" if t.get("no_transient") and t.get("learned") else ", ".join(
            w for w, ok in (("transient", t.get("no_transient")), ("not learned", t.get("learned"))) if not ok)
        head = (e.get("headroom") or {}).get("around_mean_share")
        cells = [_skill(rows.get((e["id"], "loss", "seen", m))) for m in HEADLINE]
        print(f"| `{e['id']}` | {t.get('step1_over_step0', float('nan')):.3f} | {t.get('max_over_step0', float('nan')):.3f} | "
              f"{t.get('final_over_step0', float('nan')):.3f} | {met} | {_ends(e)} | {head:.2f} | " + " | ".join(cells) + " |")


def phases(doc: dict[str, Any], benches: list[str]) -> None:
    """Per-phase skill (seen, loss) of the residual forms and cluster-datamodel."""
    rows = _rows(doc)
    print("| benchmark | method | early | mid | late | whole run |")
    print("| --- | --- | --- | --- | --- | --- |")
    for b in benches:
        for m in PHASE_METHODS:
            r = rows.get((b, "loss", "seen", m))
            if r is None:
                continue
            print(f"| `{b}` | {m} | {_skill(r, 'skill_mse_early')} | {_skill(r, 'skill_mse_mid')} | {_skill(r, 'skill_mse_late')} | {_skill(r)} |")


def cost(doc: dict[str, Any]) -> None:
    """Issue 26's table: per cf benchmark (seen, loss), skill, LDS, fit time and speed-up over retraining."""
    rows = _rows(doc)
    print("| benchmark | method | skill_mse [95% CI] | lds_final | fit s | charged s | × retrain |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for e in read_index():
        if e.get("tier") != "cf":
            continue
        for m in COST_METHODS:
            r = rows.get((e["id"], "loss", "seen", m))
            if r is None:
                continue
            lds = r["scores"].get("lds_final")
            speed = r.get("speedup")
            # charged: fit + simulate + the cached tables or factors the cell read (what × retrain divides by)
            charged = "–" if not speed or not r.get("retrain_s") else f"{r['retrain_s'] / speed:.1f}"
            print(f"| `{e['id']}` | {m} | {_skill(r)} | {'–' if not lds or lds[0] is None else f'{lds[0]:.3f}'} | "
                  f"{r.get('fit_s', 0):.1f} | {charged} | {'–' if speed is None else f'{speed:.3g}'} |")


def splits(doc: dict[str, Any]) -> None:
    """The library methods' skill on every split of every cf benchmark (loss)."""
    rows = _rows(doc)
    print("| benchmark | method | " + " | ".join(SPLITS) + " |")
    print("| --- " * (2 + len(SPLITS)) + "|")
    for e in read_index():
        if e.get("tier") != "cf":
            continue
        for m in SPLIT_METHODS:
            cells = [_skill(rows.get((e["id"], "loss", s, m))) for s in SPLITS]
            if any(c != "–" for c in cells):
                print(f"| `{e['id']}` | {m} | " + " | ".join(cells) + " |")


def main() -> None:
    """Print the chosen table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("leaderboard", type=Path, help="leaderboard.json written by `tdabench leaderboard`")
    ap.add_argument("--phases", nargs="*", help="per-phase skills on these benchmarks (default: three cf ones)")
    ap.add_argument("--cost", action="store_true", help="the gradient methods' skill, LDS, fit time and speed-up on the cf tier")
    ap.add_argument("--splits", action="store_true", help="the library methods' skill on every split of the cf tier")
    args = ap.parse_args()
    doc = json.loads(args.leaderboard.read_text(encoding="utf-8"))
    if args.phases is not None:
        phases(doc, args.phases or ["builtin/cf/ft/neox-1m/sentiment-drop-group", "builtin/cf/ft/neox-1m/webnlg-drop-group",
                                    "builtin/cf/it/neox-0.2m/mixture-dirichlet"])
    elif args.cost:
        cost(doc)
    elif args.splits:
        splits(doc)
    else:
        properties(doc)


if __name__ == "__main__":
    main()
