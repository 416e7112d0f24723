"""``tdabench mislabel``: which training labels are wrong? Rank, fix the top, retrain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tdabench.run.executors import add_executor_arguments
from tdabench.cli.common import add_data_flags, add_method_flags, add_progress_flag, context_from
from tdabench.errors import TDABenchError
from tdabench.run.runner import choose_methods
from tdabench.sources.gptdynamics import resolve_benchmarks

DEFAULT_BENCHMARK = "builtin/mislabel"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``mislabel`` to the subcommands."""
    p = sub.add_parser("mislabel", help="rank training examples by self-influence to find flipped labels, fix the top 40%% and retrain")
    add_data_flags(p)
    add_method_flags(p)
    p.add_argument("--benchmark", action="append", default=[], metavar="ID|DIR",
                   help=f"a label-noise benchmark (id, id prefix or GPTDynamics directory; default: {DEFAULT_BENCHMARK})")
    p.add_argument("--method", action="append", default=[], metavar="NAME[:key=value,...]",
                   help="a method that declares self-influence (default: every registered one); the baselines always run")
    p.add_argument("--no-retrain", action="store_true", help="rank only: skip relabelling the top 40%% and retraining")
    p.add_argument("--retrain-runs", type=int, default=None, metavar="N", help="retrain on the first N evaluation runs only (default: all of them)")
    p.add_argument("--out", default="results", type=Path, metavar="DIR", help="results directory (default: ./results)")
    p.add_argument("--json", action="store_true", help="write the results to stdout as JSON")
    add_executor_arguments(p, "methods' fits and retraining runs")
    add_progress_flag(p)
    p.set_defaults(func=cmd_mislabel)
    return p


def cmd_mislabel(args: argparse.Namespace) -> int:
    """``tdabench mislabel``: exit 0, or 1 when a ranking failed (the others are written)."""
    from tdabench.run.mislabel import Settings, identify, table

    if args.jobs < 1 or (args.retrain_runs is not None and args.retrain_runs < 1):
        raise TDABenchError(f"--jobs and --retrain-runs must be at least 1, got {args.jobs} and {args.retrain_runs}")
    ctx = context_from(args)
    refs = resolve_benchmarks(ctx, args.benchmark or [DEFAULT_BENCHMARK])
    if args.method:
        choices = choose_methods(ctx, args.method)
    else:
        choices = [c for c in choose_methods(ctx, []) if c.spec.capabilities.self_influence]
    settings = Settings(out=args.out, seed=ctx.seed, jobs=args.jobs, timeout=args.timeout, executor=args.executor, ray_address=args.ray_address,
                        retrain=not args.no_retrain, retrain_runs=args.retrain_runs,
                        cache_dir=str(Path(ctx.cache_dir).resolve()), device=ctx.device, progress=ctx.progress, command=args.command_line)
    everything, failed = [], 0
    for ref in refs:
        bench = ref.load()
        chosen = choices
        if not args.method and bench.model is None:  # every method by default: those this benchmark can serve
            chosen = [c for c in choices if not c.spec.capabilities.needs_checkpoints]
            left = sorted(c.display for c in choices if c not in chosen)
            if left:
                print(f"tdabench: n/a on {bench.id} (no model or checkpoints): {', '.join(left)}", file=sys.stderr)
        results = identify(bench, chosen, settings)
        failed += sum(r.status != "ok" for r in results)
        everything += results
        if not args.json:
            print(f"{ref.id}: {results[0].n_flipped} of the {results[0].n_candidates} examples trained and tested have flipped labels\n")
            print(table(results) + "\n")
    if args.json:
        json.dump([r.to_dict() for r in everything], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"results written to {args.out}/")
    if failed:
        print(f"tdabench: {failed} ranking(s) failed", file=sys.stderr)
    return 1 if failed else 0
