"""An on-disk cache of per-checkpoint score tables, shared by the gradient methods.

A score table ``S[c]`` (test x train at one checkpoint) is the whole cost of a gradient
method: calibration and variant selection on top of it take milliseconds. The raw and
``-calibrated`` form of a method compute identical tables, Grad-Dot's table is TracIn-CP's at
the final checkpoint, and a benchmark's unseen-example queries repeat across runs of the
harness. So tables are cached under ``<cache_dir>/gradients/tables/<key>.npz`` (v2: one column per test example), written
atomically, where the key is a sha256 of everything that determines the numbers:

- the kind of table (gradient dot products, or influence with its damping);
- the weights at the checkpoint (names, shapes and values, not a file path: a regenerated
  checkpoint with the same weights hits, a different one misses);
- the training examples (ids, prompts, targets), the loss type and token budget; each test
  example is a column of the file, named by the digest of its id, prompt and target;
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
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdabench import ExampleSet


def examples_digest(examples: ExampleSet) -> str:
    """sha256 of a set of examples: ids, prompts and targets."""
    h = hashlib.sha256(np.ascontiguousarray(examples.ids, dtype=np.int64).tobytes())
    for column in (examples.prompts, examples.targets):
        h.update(json.dumps(column).encode())
    return h.hexdigest()


def example_keys(examples: ExampleSet) -> list[str]:
    """One short digest per example (id, prompt, target): the name of its column in a table."""
    return [hashlib.sha256(json.dumps([int(i), p, t]).encode()).hexdigest()[:20]
            for i, p, t in zip(examples.ids.tolist(), examples.prompts, examples.targets)]


@dataclass
class TableCache:
    """Score tables on disk under ``root`` (``None``: caching off), one file per checkpoint and
    training set, holding a column per test example. A request for test examples reads the
    columns it finds and computes only the others, which are then added to the file: the
    withheld-test fit and unseen-test queries reuse what the all-test fit computed."""

    root: Path | None
    hits: int = 0
    misses: int = 0

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        """The cache key of a table described by ``parts`` (JSON-serializable)."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def _read(self, key: str) -> tuple[list[str], np.ndarray, dict[str, Any]] | None:
        if self.root is None:
            return None
        try:
            with np.load(self.root / f"{key}.npz", allow_pickle=False) as npz:
                return [str(k) for k in npz["keys"]], npz["table"], json.loads(str(npz["state"]))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent, or torn: recomputed
            return None

    def load(self, key: str, columns: list[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The cached columns among ``columns`` (column key -> [V, n_train]) and the saved state."""
        found = self._read(key)
        if found is None:
            self.misses += 1
            return {}, {}
        keys, table, state = found
        pos = {k: j for j, k in enumerate(keys)}
        cols = {c: table[:, pos[c]] for c in columns if c in pos}
        if len(cols) == len(columns):
            self.hits += 1
        else:
            self.misses += 1
        return cols, state

    def store(self, key: str, columns: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        """Add columns to the table's file, atomically (a failed write only costs a recomputation)."""
        if self.root is None or not columns:
            return
        old = self._read(key)
        merged = dict(zip(old[0], np.moveaxis(old[1], 1, 0))) if old is not None else {}
        merged.update(columns)
        keys = sorted(merged)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.{os.getpid()}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=np.asarray(keys), table=np.stack([merged[k] for k in keys], axis=1),
                         state=np.asarray(json.dumps({**(old[2] if old else {}), **state})))
            os.replace(tmp, self.root / f"{key}.npz")
        except OSError:
            Path(tmp).unlink(missing_ok=True)


def table_cache(cache_dir: str | None) -> TableCache:
    """The cache under a run's cache directory, or a disabled one."""
    return TableCache(Path(cache_dir) / "gradients" / "tables" if cache_dir else None)
