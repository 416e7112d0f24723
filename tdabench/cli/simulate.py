"""``tdabench simulate``: what if the model had trained on my plan? Checked by training with ``--verify``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tdabench.cli.common import add_data_flags, add_method_flags, add_progress_flag, check_out_dir, context_from
from tdabench.errors import TDABenchError
from tdabench.run.runner import choose_methods
from tdabench.results.whatif import WhatIfResult
from tdabench.run.executors import add_executor_arguments
from tdabench.sources.gptdynamics import resolve_benchmarks


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``simulate`` to the subcommands."""
    p = sub.add_parser("simulate", help="predict every test example's trajectory for a plan of batches (and check it by training)")
    add_data_flags(p)
    add_method_flags(p)
    p.add_argument("--benchmark", required=True, metavar="ID|DIR", help="the benchmark whose fit runs the method learns from")
    p.add_argument("--method", required=True, metavar="NAME[:key=value,...]", help="the simulator and its config overrides")
    p.add_argument("--plan", required=True, metavar="FILE", type=Path,
                   help='the batches, in GPTDynamics\' train_samples_id.json format: {"step": t, "samples_id": [...]} per line')
    p.add_argument("--test-ids", nargs="+", type=int, metavar="ID", help="predict only these test examples (default: all)")
    p.add_argument("--trajectory", default="loss", metavar="NAME", help="trajectory to predict (default: loss)")
    p.add_argument("--verify", action="store_true", help="train the benchmark's own model on the plan and score the prediction against it")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="writes whatif.json, whatif.csv, whatif.npz and whatif.png here")
    p.add_argument("--json", action="store_true", help="print whatif.json to stdout")
    add_executor_arguments(p, "fit")
    add_progress_flag(p)
    p.set_defaults(func=cmd_simulate)
    return p


def cmd_simulate(args: argparse.Namespace) -> int:
    """``tdabench simulate``: exit 0, or 2 with one line when the plan or the benchmark cannot be used."""
    from tdabench.run.simulate import simulate_plan

    check_out_dir(args.out)  # before loading, fitting, predicting and (--verify) training
    ctx = context_from(args)
    refs = resolve_benchmarks(ctx, [args.benchmark])
    if len(refs) != 1:
        raise TDABenchError(f"--benchmark {args.benchmark} names {len(refs)} benchmarks; give one: " + ", ".join(r.id for r in refs[:5]))
    (choice,) = choose_methods(ctx, [args.method])
    bench = refs[0].load()
    got = simulate_plan(bench, choice, args.plan, test_ids=None if args.test_ids is None else np.asarray(args.test_ids),
                        verify=args.verify, out=args.out, trajectory=args.trajectory, seed=ctx.seed,
                        cache_dir=str(Path(ctx.cache_dir).resolve()), device=ctx.device, progress=ctx.progress,
                        command=args.command_line, executor=args.executor, ray_address=args.ray_address, timeout=args.timeout)
    if args.json:
        json.dump(got.record.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(summary(got.record, got.predicted))
    print(f"\nwritten to {args.out}/ (whatif.json, whatif.csv, whatif.npz, whatif.png)")
    return 0


def summary(record: WhatIfResult, predicted: np.ndarray) -> str:
    """A few lines: the predicted mean trajectory's ends and, when verified, the scores beside the zero line's."""
    steps = record.steps
    lines = [f"{record.method} on {record.benchmark}: {len(record.test_ids)} test example(s), steps {steps[0]}..{steps[-1]}",
             f"  predicted mean {record.trajectory}: {predicted[:, 0].mean():.4f} at step {steps[0]} -> "
             f"{predicted[:, -1].mean():.4f} at step {steps[-1]}"]
    if record.verified:
        lines.append(f"  {'score':<16} {'method':>10} {'zero line':>10}")
        for name in ("mse_all_steps", "mae_all_steps", "spearman_final", "spearman_steps"):
            if name in record.scores:
                b = record.reference_scores.get(name)
                lines.append(f"  {name:<16} {record.scores[name].mean:>10.4f} {'' if b is None else format(b.mean, '>10.4f')}")
    return "\n".join(lines)
