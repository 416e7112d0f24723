"""The ``tdabench`` command line: run, list, record, leaderboard.

Errors the user can fix are printed as one line (``tdabench: error: ...``) with exit status
2; a run with failed cells exits 1 after writing every result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tdabench import __version__
from tdabench.config import describe_options
from tdabench.context import Context
from tdabench.data import SPLITS
from tdabench.errors import TDABenchError
from tdabench.executors import add_executor_arguments, make_executor
from tdabench.leaderboard.cli import add_parser as add_leaderboard_parser, cmd_leaderboard
from tdabench.metrics import describe_metrics
from tdabench.recorder.cli import add_parser as add_record_parser, cmd_record
from tdabench.report import results_document, results_table
from tdabench.runner import RunPlan, choose_methods, execute
from tdabench.sources import resolve_benchmarks


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR", help="local GPTDynamics copy (default: $TDABENCH_GPTDYNAMICS)")
    p.add_argument("-p", dest="plugins", action="append", default=[], metavar="MODULE|no:NAME",
                   help="load MODULE as a plugin, or block the plugin NAME (repeatable)")
    p.add_argument("--device", default="cpu", help="torch device for methods that use torch (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed passed to every simulator (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(prog="tdabench", description="Benchmark training-run simulators.")
    parser.add_argument("--version", action="version", version=f"tdabench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="fit, simulate and score methods on benchmarks")
    _common(run)
    run.add_argument("--benchmark", action="append", default=[], metavar="ID|DIR",
                     help="benchmark id (or id prefix) or a directory in the GPTDynamics layout; default: the built-in default slice")
    run.add_argument("--method", action="append", default=[], metavar="NAME[:key=value,...]",
                     help="method with optional config overrides; default: every registered method")
    run.add_argument("--config", metavar="FILE", help="methods and their options from a TOML or YAML file (docs/writing-a-method.md)")
    run.add_argument("--split", action="append", default=[], metavar="NAME", help=f"split: {', '.join(SPLITS)} (default: all)")
    run.add_argument("--metric", action="append", default=[], metavar="NAME",
                     help="trajectory metric: loss (default), bleu, rougeL, ... or 'all'")
    run.add_argument("--out", default="results", metavar="DIR", help="results directory (default: ./results)")
    run.add_argument("--force", action="store_true", help="recompute cells whose results already exist")
    run.add_argument("--json", action="store_true", help="write machine-readable results to stdout")
    add_executor_arguments(run, "units")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")

    lst = sub.add_parser("list", help="list methods, benchmarks, metrics or splits")
    _common(lst)
    lst.add_argument("what", nargs="?", default="methods", choices=("methods", "benchmarks", "metrics", "splits"))
    lst.add_argument("-v", "--verbose", action="store_true", help="show each method's options")
    add_leaderboard_parser(sub)
    add_record_parser(sub)
    return parser


def _context(args: argparse.Namespace) -> Context:
    if getattr(args, "no_progress", False):
        quiet_libraries()
    return Context.create(
        data_dir=args.data_dir, plugins=args.plugins, device=args.device, seed=args.seed,
        progress=not getattr(args, "no_progress", False),
    )


def quiet_libraries() -> None:
    """--no-progress also hides the progress bars of the libraries methods use."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is a dependency, but a trimmed install may lack it
        pass


def cmd_run(args: argparse.Namespace) -> int:
    """``tdabench run``."""
    ctx = _context(args)
    plan = RunPlan(
        benchmarks=tuple(resolve_benchmarks(ctx, args.benchmark)),
        methods=tuple(choose_methods(ctx, args.method, args.config)),
        out=Path(args.out),
        splits=tuple(dict.fromkeys(args.split)) or SPLITS,
        metrics=tuple(dict.fromkeys(args.metric)) or ("loss",),
        force=args.force,
        progress=ctx.progress,
    )
    results = execute(ctx, plan, make_executor(args.executor, args.jobs, args.ray_address))
    if args.json:
        json.dump(results_document(results), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(results_table(results))
        print(f"\nresults written to {plan.out}/")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"tdabench: {len(failed)} cell(s) failed: " + "; ".join(f"{r.method} on {r.benchmark}/{r.split}" for r in failed[:5]), file=sys.stderr)
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``tdabench list``."""
    ctx = _context(args)
    if args.what == "methods":
        for name, spec in sorted(ctx.registry.methods().items()):
            caps = spec.capabilities
            flags = ",".join(k for k, v in caps.__dict__.items() if v) or "-"
            print(f"{name:28s} {spec.summary}  [{flags}]  from {spec.origin}")
            if args.verbose:
                for opt, typ, default, help_text in describe_options(spec.config_cls):
                    print(f"    {opt} ({typ}, default {default!r}): {help_text}")
    elif args.what == "benchmarks":
        for bid, ref in sorted(ctx.registry.benchmarks(ctx).items()):
            mark = " (default)" if ref.default else ""
            print(f"{bid:40s} {ref.description}{mark}  from {ref.origin}")
    elif args.what == "metrics":
        for name, text in describe_metrics().items():
            print(f"{name:16s} {text}")
    else:
        for name in SPLITS:
            print(name)
    for f in ctx.registry.failures:
        print(f"(plugin {f.plugin} from {f.distribution} was skipped: {f.error})", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tdabench`` console script."""
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "list": cmd_list, "leaderboard": cmd_leaderboard, "record": cmd_record}
    try:
        return handlers[args.command](args)
    except TDABenchError as exc:
        print(f"tdabench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tdabench: interrupted; finished cells are saved, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
