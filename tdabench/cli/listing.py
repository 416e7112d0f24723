"""``tdabench list``: methods, benchmarks, scores, trajectories, splits."""

from __future__ import annotations

import argparse
import sys

from tdabench.cli.common import add_data_flags, context_from
from tdabench.config import describe_options
from tdabench.data import SPLITS, TRAJECTORIES
from tdabench.recorder.properties import describe_properties
from tdabench.scores import describe_scores

WHAT = ("methods", "benchmarks", "scores", "trajectories", "splits")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``list`` to the subcommands."""
    lst = sub.add_parser("list", help="list methods, benchmarks, scores, trajectories or splits")
    add_data_flags(lst)
    lst.add_argument("what", nargs="?", default="methods", choices=WHAT, help="what to list")
    lst.add_argument("-v", "--verbose", action="store_true",
                     help="methods: each one's options; benchmarks: what was measured of their runs (targets, accuracy, headroom, cost)")
    lst.set_defaults(func=cmd_list)
    return lst


def cmd_list(args: argparse.Namespace) -> int:
    """``tdabench list``."""
    ctx = context_from(args)
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
            if args.verbose and ref.properties:
                for line in describe_properties(ref.properties):
                    print(f"    {line}")
    elif args.what == "scores":
        for name, text in describe_scores().items():
            print(f"{name:16s} {text}")
    elif args.what == "trajectories":
        for name, text in TRAJECTORIES.items():
            print(f"{name:16s} {text}")
    else:
        for name in SPLITS:
            print(name)
    for f in ctx.registry.failures:
        print(f"(plugin {f.plugin} from {f.distribution} was skipped: {f.error})", file=sys.stderr)
    return 0
