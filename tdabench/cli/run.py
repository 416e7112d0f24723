"""``tdabench run``: fit, simulate and score methods on benchmarks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tdabench.cli.common import add_data_flags, add_method_flags, add_progress_flag, context_from
from tdabench.data import SPLITS
from tdabench.run.executors import add_executor_arguments, make_executor
from tdabench.run.report import results_document, results_table
from tdabench.run.runner import RunPlan, choose_methods, execute
from tdabench.sources.gptdynamics import resolve_benchmarks
from tdabench.run.views import check_split_name


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``run`` to the subcommands."""
    run = sub.add_parser("run", help="fit, simulate and score methods on benchmarks")
    add_data_flags(run)
    add_method_flags(run)
    run.add_argument("--benchmark", action="append", default=[], metavar="ID|DIR",
                     help="benchmark id (or id prefix) or a directory in the GPTDynamics layout; default: the built-in default slice")
    run.add_argument("--method", action="append", default=[], metavar="NAME[:key=value,...]",
                     help="method with optional config overrides; default: every registered method")
    run.add_argument("--config", metavar="FILE", help="methods and their options from a TOML or YAML file (docs/writing-a-method.md)")
    run.add_argument("--split", action="append", default=[], metavar="NAME", help=f"split: {', '.join(SPLITS)} (default: all)")
    run.add_argument("--trajectory", dest="trajectory", action="append", default=[], metavar="NAME",
                     help="trajectory to simulate: loss (default), bleu, rougeL, ... or 'all'")
    run.add_argument("--out", default="results", metavar="DIR", help="results directory (default: ./results)")
    run.add_argument("--force", action="store_true", help="recompute cells whose results already exist")
    run.add_argument("--json", action="store_true", help="write machine-readable results to stdout")
    run.add_argument("--verbose", "-v", action="store_true", help="show every score of every cell, not one compact table per benchmark")
    run.add_argument("--seeds", type=int, default=1, metavar="N",
                     help="run each method whose fit is stochastic under N seeds (--seed, --seed + 1, ...); others once (default: 1)")
    add_executor_arguments(run, "units")
    add_progress_flag(run)
    run.set_defaults(func=cmd_run)
    return run


def cmd_run(args: argparse.Namespace) -> int:
    """``tdabench run``: exit 0, or 1 when a cell failed or a benchmark could not be loaded
    (every result that could be computed is written first)."""
    executor = make_executor(args.executor, args.jobs, args.ray_address, timeout=args.timeout)  # bad numbers: before any work
    ctx = context_from(args)
    plan = RunPlan(
        benchmarks=tuple(resolve_benchmarks(ctx, args.benchmark)),
        methods=tuple(choose_methods(ctx, args.method, args.config)),
        out=Path(args.out),
        splits=tuple(dict.fromkeys(check_split_name(s) for s in args.split)) or SPLITS,
        trajectories=tuple(dict.fromkeys(args.trajectory)) or ("loss",),
        force=args.force,
        seeds=args.seeds,
        progress=ctx.progress,
        command=args.command_line,
    )
    results = execute(ctx, plan, executor)
    if args.json:
        json.dump(results_document(results), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(results_table(results, verbose=args.verbose))
        print(f"\nresults written to {plan.out}/")
    for why in results.replaced:
        print(f"tdabench: recomputed {why}", file=sys.stderr)
    n_a = sum(r.status == "n/a" for r in results)
    print(f"tdabench: {results.computed} cell(s) computed, {results.reused} reused, {n_a} n/a", file=sys.stderr)
    for line in results.broken:
        print(f"tdabench: error: benchmark {line}", file=sys.stderr)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"tdabench: {len(failed)} cell(s) failed: " + "; ".join(f"{r.method} on {r.benchmark}/{r.split}" for r in failed[:5]), file=sys.stderr)
    return 1 if failed or results.broken else 0
