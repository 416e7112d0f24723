"""``tdabench leaderboard``: tables, a page, plots and exports generated from result files."""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import ExitStack
from pathlib import Path

from tdabench.cli.common import add_data_flags, check_out_dir
from tdabench.cli.verify import suspicious, verify
from tdabench.run.context import Context
from tdabench.errors import TDABenchError
from tdabench.leaderboard.samples import TruthSource
from tdabench.leaderboard.collect import collect
from tdabench.leaderboard.write import build, check
from tdabench.results.archive import export, open_results


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``leaderboard`` subcommand to ``tdabench``'s subparsers."""
    p = sub.add_parser("leaderboard", help="generate leaderboards (markdown, HTML, CSV, JSON) from result files")
    p.add_argument("--results", action="append", default=[], metavar="DIR|ARCHIVE",
                   help="results directory written by `tdabench run --out`, or an archive made by --export (repeatable: result "
                        "sets from several machines are merged, and two sets of one benchmark with different data are refused; "
                        "default: results)")
    p.add_argument("--export", metavar="FILE.tar.xz", type=Path,
                   help="pack the --results directory into one archive (with a manifest and FILE.sha256) to publish apart from the code, and exit")
    p.add_argument("--out", default="leaderboards", metavar="DIR", help="output directory (default: leaderboards)")
    p.add_argument("--benchmark", action="append", default=[], metavar="ID|DIR",
                   help="where to read true trajectories for the plots (default: the results' ids among registered benchmarks)")
    p.add_argument("--no-truth", action="store_true", help="do not load benchmarks; plots show predictions only")
    p.add_argument("--check", action="store_true",
                   help="regenerate in a temporary directory and compare with --out, ignoring the 'Generated on' line; exit 1 if they differ")
    p.add_argument("--verify", action="store_true",
                   help="score every cell again from its stored predictions and its benchmark's truth, report cells whose stored "
                        "scores differ and cells with nothing to check, and exit 1 on any (writes nothing)")
    p.add_argument("--allow-mixed-versions", action="store_true",
                   help="show results of one method computed under different versions side by side (refused by default)")
    add_data_flags(p)
    p.set_defaults(func=cmd_leaderboard)
    return p


def command_line(args: argparse.Namespace) -> str:
    """The command, rebuilt from its arguments so it reads the same however it was invoked."""
    argv = ["tdabench", "leaderboard"]
    for d in args.results or ["results"]:
        argv += ["--results", d]
    for b in args.benchmark:
        argv += ["--benchmark", b]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    for p in args.plugins:
        argv += ["-p", p]
    if args.no_truth:
        argv.append("--no-truth")
    if args.allow_mixed_versions:
        argv.append("--allow-mixed-versions")
    argv += ["--out", args.out]
    return shlex.join(argv)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Write (or ``--check``) the leaderboards; failed cells are shown, not fatal."""
    if args.no_truth and args.benchmark:
        raise TDABenchError("--no-truth and --benchmark contradict each other; give one")
    if args.verify and (args.no_truth or args.check or args.export is not None):
        raise TDABenchError("--verify needs the benchmarks' truth and writes nothing: give it without --no-truth, --check and --export")
    if not (args.verify or args.check or args.export is not None):
        check_out_dir(args.out)
    results = [Path(d) for d in (args.results or ["results"])]
    if args.export is not None:
        if len(results) != 1:
            raise TDABenchError("--export packs one results directory: give exactly one --results DIR")
        got = export(results[0], args.export)
        print(f"{got.path}: {got.n_files} files, bank version {got.bank_version}, sha256 {got.sha256}")
        return 0
    with ExitStack() as stack:
        dirs = [stack.enter_context(open_results(r)) for r in results]
        return _leaderboard(args, dirs, results)


def _leaderboard(args: argparse.Namespace, results: list[Path], sources: list[Path]) -> int:
    """The leaderboard of the opened result sets (``sources``: what the user named, for messages)."""
    context = None if args.no_truth else Context.create(data_dir=args.data_dir, plugins=args.plugins, progress=False)
    truth = TruthSource(context, args.benchmark)
    if args.verify:
        return verify(collect(results, allow_mixed_versions=args.allow_mixed_versions), truth)
    command = command_line(args)
    if args.check:
        diffs = check(results, Path(args.out), truth, command, allow_mixed_versions=args.allow_mixed_versions)
        for d in diffs:
            print(f"tdabench: {d}", file=sys.stderr)
        if diffs:
            print(f"tdabench: {args.out} is out of date; regenerate with: {command}", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date with {', '.join(map(str, sources))}")
        return 0
    lb, paths = build(results, Path(args.out), truth, command, allow_mixed_versions=args.allow_mixed_versions)
    for p in paths:
        print(p)
    for problem in lb.problems:
        print(f"tdabench: left out: {problem}", file=sys.stderr)
    for line in suspicious(lb.collection.entries):
        print(f"tdabench: suspicious: {line}; `tdabench leaderboard --verify` checks its scores, not how they were made", file=sys.stderr)
    for dup in lb.collection.duplicates:
        print(f"tdabench: duplicate results for {' / '.join(map(str, dup.cell))}: kept {dup.kept.path}, ignored {', '.join(str(e.path) for e in dup.dropped)}", file=sys.stderr)
    failed = [e for e in lb.collection.entries if e.result.status == "failed"]
    if failed:
        print(f"tdabench: {len(failed)} failed cell(s) are shown as failed with their error", file=sys.stderr)
    notes = sorted({s.note for s in lb.samples.values() if s.note})
    for n in notes:
        print(f"tdabench: note: {n}", file=sys.stderr)
    return 1 if lb.problems else 0
