"""An on-disk cache of per-checkpoint score tables, shared by the gradient methods.

A score table ``S[c]`` (test x train at one checkpoint) is the whole cost of a gradient
method: calibration and variant selection on top of it take milliseconds. The raw and
``-calibrated`` form of a method compute identical tables, Grad-Dot's table is TracIn-CP's at
the final checkpoint, and a benchmark's unseen-example queries repeat across runs of the
harness. So tables are cached under ``<cache_dir>/gradients/tables/<key>.npz``, written
atomically, where the key is a sha256 of everything that determines the numbers:

- the kind of table (gradient dot products, or influence with its damping);
- the weights at the checkpoint (names, shapes and values, not a file path: a regenerated
  checkpoint with the same weights hits, a different one misses);
- the examples on both sides (ids, prompts, targets), the loss type and token budget;
- every option of the method except ``calibrate`` (which acts after the table), the seed
  (projections and Hessian samples depend on it) and the device type.

A method fitted from cached tables says so in ``fit_info`` (``score_tables_cached``), and its
fit time is then the time on top of the run that computed them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.data import ExampleSet


def examples_digest(examples: ExampleSet) -> str:
    """sha256 of a set of examples: ids, prompts and targets."""
    h = hashlib.sha256(np.ascontiguousarray(examples.ids, dtype=np.int64).tobytes())
    for column in (examples.prompts, examples.targets):
        h.update(json.dumps(column).encode())
    return h.hexdigest()


@dataclass
class TableCache:
    """Score tables on disk under ``root`` (``None``: caching off)."""

    root: Path | None
    hits: int = 0
    misses: int = 0

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        """The cache key of a table described by ``parts`` (JSON-serializable)."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def load(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The cached table and the state saved with it, or None."""
        if self.root is None:
            return None
        path = self.root / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as npz:
                table, state = npz["table"], json.loads(str(npz["state"]))
        except (OSError, KeyError, ValueError):  # absent, or a torn file from another era
            self.misses += 1
            return None
        self.hits += 1
        return table, state

    def store(self, key: str, table: np.ndarray, state: dict[str, Any]) -> None:
        """Write a table atomically (a failed write only costs a later recomputation)."""
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, table=table, state=np.asarray(json.dumps(state)))
            os.replace(tmp, self.root / f"{key}.npz")
        except OSError:
            Path(tmp).unlink(missing_ok=True)


def table_cache(cache_dir: str | None) -> TableCache:
    """The cache under a run's cache directory, or a disabled one."""
    return TableCache(Path(cache_dir) / "gradients" / "tables" if cache_dir else None)
