"""``tdabench record``: the parser and the handler, wired into :mod:`tdabench.cli`."""

from __future__ import annotations

import argparse
from pathlib import Path

from tdabench.errors import ConfigError, TDABenchError
from tdabench.executors import add_executor_arguments, make_executor

HELP = "fine-tune a causal LM over many runs and write a benchmark in the GPTDynamics layout"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``record`` subcommand to ``subparsers``."""
    p = subparsers.add_parser("record", help=HELP, description=HELP)
    p.add_argument("--model", required=True, metavar="SIZE|DIR|HUB-NAME",
                   help="built-in size (neox-0.2m, neox-1m, neox-4m), a local model directory, or a hub name")
    p.add_argument("--task", required=True, metavar="NAME|FILE|DIR",
                   help="built-in task (sentiment, entailment, boolq, webnlg, wmt, mixture), a JSON Lines file "
                        "(id, input, context) or a datasets folder")
    p.add_argument("--runs", type=int, default=32, help="runs on training pool A (default 32: 25 fit / 2 validation / 5 evaluation)")
    p.add_argument("--unseen-runs", type=int, default=None, help="runs on the disjoint pool B for unseen-train (default 3 when pool B is large enough)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (resumed if it holds the same recording)")
    p.add_argument("--sample", type=int, default=128, help="training examples each run samples from its pool (default 128)")
    p.add_argument("--batch-size", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, decayed linearly to 0 (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.001, help="AdamW weight decay (default 0.001)")
    p.add_argument("--checkpoint-every", type=int, default=0, help="save safetensors checkpoints every N steps (default 0: none)")
    p.add_argument("--checkpoint-runs", choices=("eval", "all"), default="eval",
                   help="runs that save checkpoints: evaluation and unseen-train runs (default) or all")
    p.add_argument("--metric-every", type=int, default=None,
                   help="record BLEU and ROUGE-L of greedy answers every N steps (default 8 for generation tasks, else off)")
    p.add_argument("--loss", choices=("output-tokens", "last-token", "whole-sequence"), default="output-tokens",
                   help="loss type for tasks from files (built-in tasks set their own)")
    p.add_argument("--n-test", type=int, default=128, help="test examples: the first N of a built-in task, or the last N held out of a file task without a test split (default 128)")
    p.add_argument("--shot", type=int, default=None, help="size of pool A: its first N ids (default: 200 for built-in tasks, every training example of a file)")
    p.add_argument("--test-set", choices=("test", "pool"), default="test",
                   help="test examples: the task's test set, or pool A's examples as trained (self-influence, mislabel search)")
    p.add_argument("--id", dest="bench_id", default=None, help="benchmark id (default recorded/<setting>/<model>/<task>)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="test-loss evaluation precision (auto: bf16 on CUDA where its error is below 1e-3)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first run; run i uses seed + i (default 0)")
    p.add_argument("--design", default="uniform", metavar="NAME",
                   help="how runs differ: uniform, mixture, drop-group, duplicate, curriculum, label-noise, plan (docs/benchmarks.md)")
    p.add_argument("--group-by", default="auto", help="groups of the designs: auto, task, label, template, label+template")
    p.add_argument("--alpha", type=float, default=0.7, help="mixture: Dirichlet concentration of the per-run group weights")
    p.add_argument("--dup-k", type=int, default=8, help="duplicate: examples repeated")
    p.add_argument("--dup-m", type=int, default=4, help="duplicate: appearances of each per epoch")
    p.add_argument("--noise-fraction", type=float, default=0.4, help="label-noise: share of the pool with flipped labels")
    p.add_argument("--plan", default=None, metavar="FILE|DIR", help="plan: train_samples_id.json file(s), one run each")
    p.add_argument("--eval-runs", type=int, default=None, help="evaluation runs (default: the published 5 of 32)")
    add_executor_arguments(p, "runs")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(handler=cmd_record)
    return p


def cmd_record(args: argparse.Namespace) -> int:
    """Handle ``tdabench record``; errors are :class:`TDABenchError` (one line)."""
    from tdabench.cli import quiet_libraries  # here: tdabench.cli imports this module
    from tdabench.recorder.designs import DesignSpec
    from tdabench.recorder.record import RecordSpec, record
    from tdabench.recorder.train import Schedule

    if args.no_progress:
        quiet_libraries()

    for flag, value, low in (("--batch-size", args.batch_size, 1), ("--epochs", args.epochs, 1), ("--sample", args.sample, 1),
                             ("--runs", args.runs, 2), ("--checkpoint-every", args.checkpoint_every, 0)):
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    if args.metric_every is not None and args.metric_every < 0:
        raise ConfigError(f"--metric-every must be at least 0, got {args.metric_every}")
    if not args.lr > 0:
        raise ConfigError(f"--lr must be positive, got {args.lr}")
    try:
        spec = RecordSpec(
            model=args.model, task=args.task, runs=args.runs, unseen_runs=args.unseen_runs,
            schedule=Schedule(lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size, epochs=args.epochs, sample=args.sample),
            metric_every=args.metric_every, checkpoint_every=args.checkpoint_every, checkpoint_runs=args.checkpoint_runs,
            seed=args.seed, precision=args.precision, loss=args.loss, n_test=args.n_test, shot=args.shot, bench_id=args.bench_id,
            design=DesignSpec(args.design, args.group_by, args.alpha, args.dup_k, args.dup_m, args.noise_fraction, args.plan),
            eval_runs=args.eval_runs, test_set=args.test_set,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    executor = make_executor(args.executor, args.jobs, args.ray_address)
    out = record(spec, Path(args.out), device=args.device, progress=not args.no_progress, executor=executor)
    print(f"recorded {spec.runs} runs (+ unseen-train runs) to {out}/; evaluate with: tdabench run --benchmark {out}")
    return 0


__all__ = ["TDABenchError", "add_parser", "cmd_record"]
