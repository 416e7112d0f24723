"""What the subcommands share: the common flags, quieting libraries, and the session's context."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tdabench.errors import TDABenchError
from tdabench.run.context import Context


def check_out_dir(out: str | Path, flag: str = "--out") -> Path:
    """``out`` as a directory this process can write (made if missing), checked before any work;
    otherwise a one-line error naming the flag."""
    out = Path(out)
    bad = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if bad is not None:
        where = "" if bad == out else f" ({bad} is a file)"
        raise TDABenchError(f"{flag} {out} is not a directory{where}; choose another directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=f".probe.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise TDABenchError(f"{flag} {out} is not writable ({exc.strerror}); choose another directory") from None
    return out


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``-p``: where benchmarks come from and which plugins load."""
    p.add_argument("--data-dir", metavar="DIR", help="local GPTDynamics copy (default: $TDABENCH_GPTDYNAMICS)")
    p.add_argument("-p", dest="plugins", action="append", default=[], metavar="MODULE|no:NAME",
                   help="load MODULE as a plugin, or block the plugin NAME (repeatable)")


def add_method_flags(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--seed``: how methods run."""
    p.add_argument("--device", default="cpu", help="torch device for methods that use torch (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed passed to every simulator (default: 0)")


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def quiet_libraries() -> None:
    """--no-progress also hides the progress bars of the libraries methods use."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is a dependency, but a trimmed install may lack it
        pass


def context_from(args: argparse.Namespace) -> Context:
    """The session's context from the common flags (progress off, and quiet, with --no-progress)."""
    quiet = getattr(args, "no_progress", False)
    if quiet:
        quiet_libraries()
    return Context.create(
        data_dir=getattr(args, "data_dir", None), plugins=getattr(args, "plugins", []),
        device=getattr(args, "device", "cpu"), seed=getattr(args, "seed", 0), progress=not quiet,
    )
