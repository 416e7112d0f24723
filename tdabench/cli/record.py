"""``tdabench record``: its flags are generated from the fields of RecordSpec, Schedule and DesignSpec.

A field's :func:`~tdabench.config.option` gives the flag its help, type, default, allowed values
and bounds, so the command line and the Python API validate with the same rules.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

from tdabench.cli.common import add_progress_flag, check_out_dir, quiet_libraries
from tdabench.config import check_value
from tdabench.errors import ConfigError
from tdabench.run.executors import add_executor_arguments, make_executor

HELP = "fine-tune a causal LM over many runs and write a benchmark in the GPTDynamics layout"
REQUIRED = ("model", "task")
#: The spec's parts, each under a prefix of argparse's destination names.
PARTS = ("spec", "schedule", "design")


def _classes() -> dict[str, type]:
    from tdabench.recorder.designs import DesignSpec
    from tdabench.recorder.record import RecordSpec
    from tdabench.recorder.train import Schedule

    return {"spec": RecordSpec, "schedule": Schedule, "design": DesignSpec}


def _flags(cls: type) -> list[tuple[dataclasses.Field[Any], str, Any]]:
    """(field, flag, python type) of every option field of ``cls`` (nested specs are skipped)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue  # schedule and design: their own fields become flags
        typ = hints[f.name]
        inner = [a for a in typing.get_args(typ) if a is not type(None)]
        out.append((f, f.metadata.get("flag", "--" + f.name.replace("_", "-")), inner[0] if inner else typ))
    return out


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``record`` to the subcommands."""
    p = sub.add_parser("record", help=HELP, description=HELP)
    for part, cls in _classes().items():
        for f, flag, typ in _flags(cls):
            choices = f.metadata.get("choices")
            default = f.default
            tail = "" if default in (None, "") else f" (default {default})"
            p.add_argument(flag, dest=f"{part}.{f.name}", type=typ, default=default, required=f.name in REQUIRED and part == "spec",
                           metavar=None if choices else f.name.upper(), choices=choices, help=f.metadata["help"] + tail)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (resumed if it holds the same recording)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_executor_arguments(p, "runs")
    add_progress_flag(p)
    p.set_defaults(func=cmd_record)
    return p


def spec_from_args(args: argparse.Namespace) -> Any:
    """The RecordSpec the flags describe; a bad value is a one-line error naming its flag."""
    values = vars(args)
    kwargs: dict[str, dict[str, Any]] = {part: {} for part in PARTS}
    for part, cls in _classes().items():
        for f, flag, _ in _flags(cls):
            value = values[f"{part}.{f.name}"]
            try:
                check_value(flag, value, f.metadata)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            kwargs[part][f.name] = value
    classes = _classes()
    try:
        return classes["spec"](**kwargs["spec"], schedule=classes["schedule"](**kwargs["schedule"]),
                               design=classes["design"](**kwargs["design"]))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def cmd_record(args: argparse.Namespace) -> int:
    """Handle ``tdabench record``; errors are one line."""
    from tdabench.recorder.record import record

    if args.no_progress:
        quiet_libraries()
    spec = spec_from_args(args)
    # The executor first: a missing Ray is refused before --out is made.
    executor = make_executor(args.executor, args.jobs, args.ray_address, isolate=False, timeout=args.timeout)
    check_out_dir(args.out)
    out = record(spec, Path(args.out), device=args.device, progress=not args.no_progress, executor=executor)
    print(f"recorded {spec.runs} runs (+ unseen-train runs) to {out}/; evaluate with: tdabench run --benchmark {out}")
    return 0
