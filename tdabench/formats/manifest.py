"""``tdabench.json``: the manifest tdabench writes beside a benchmark in the GPTDynamics layout.

It carries what the published layout has no place for: the benchmark id, metadata, the
split, and the model and checkpoints. A GPTDynamics copy has no manifest; then the id and
metadata come from the run names and the split from :func:`tdabench.sources.splits.default_split`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tdabench.data import BenchmarkMeta, DesignInfo, ModelAccess, SplitSpec
from tdabench.errors import DataError
from tdabench.formats.jsonl import atomic_write_text

MANIFEST = "tdabench.json"
SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The parsed manifest of one benchmark root."""

    id: str
    meta: BenchmarkMeta
    split: SplitSpec | None
    model: ModelAccess | None
    test_groups: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    design: DesignInfo | None = None


def read_manifest(root: Path) -> Manifest | None:
    """The manifest at ``root/tdabench.json``, or None when there is none."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(path, f"schema version {version!r} is not supported (expected {SCHEMA_VERSION})", field="schema_version")
    for key in ("id", "meta"):
        if key not in obj:
            raise DataError(path, "missing", field=key)
    meta_fields = {f.name for f in dataclasses.fields(BenchmarkMeta)}
    unknown = set(obj["meta"]) - meta_fields - {"metrics"}  # "metrics": the trajectories' name before tdabench 0.1
    if unknown:
        raise DataError(path, f"unknown key {sorted(unknown)[0]!r}", field="meta")
    try:
        raw = dict(obj["meta"])
        # "metrics" is how manifests written before tdabench 0.1's renames name the trajectories.
        old = raw.pop("metrics", ("loss",))
        raw["trajectories"] = tuple(raw.pop("trajectories", old))
        meta = BenchmarkMeta(**raw)
    except TypeError as exc:
        raise DataError(path, str(exc), field="meta") from None
    split = SplitSpec.from_dict(obj["split"]) if obj.get("split") else None
    model = None
    if obj.get("model"):
        m = obj["model"]
        model = ModelAccess(
            base_model=root / m["base_model"] if m.get("base_model") else None,
            checkpoints={
                run: {int(step): root / rel for step, rel in steps.items()}
                for run, steps in m.get("checkpoints", {}).items()
            },
            loss_type=meta.loss_type,
        )
    groups = obj.get("test_groups") or {}
    if not isinstance(groups, dict) or not all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in groups.values()):
        raise DataError(path, "expected {group name: [test ids]}", field="test_groups")
    design = None
    if obj.get("design"):
        d = obj["design"]
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise DataError(path, "expected an object with a 'name'", field="design")
        design = DesignInfo(
            name=d["name"], options={k: v for k, v in d.items() if k not in ("name", "runs", "flips")},
            runs=dict(d.get("runs") or {}), flips={int(k): int(v) for k, v in (d.get("flips") or {}).items()},
        )
    return Manifest(str(obj["id"]), meta, split, model, {str(k): tuple(v) for k, v in groups.items()}, design)


def write_manifest(root: Path, bench_id: str, meta: BenchmarkMeta, split: SplitSpec, model: ModelAccess | None,
                   test_groups: dict[str, tuple[int, ...]] | None = None, design: DesignInfo | None = None) -> None:
    """Write ``root/tdabench.json`` atomically; model paths are stored relative to ``root``."""
    obj: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": bench_id,
        "meta": {**dataclasses.asdict(meta), "trajectories": list(meta.trajectories)},
        "split": split.to_dict(),
    }
    if test_groups:
        obj["test_groups"] = {k: [int(i) for i in v] for k, v in test_groups.items()}
    if design is not None:
        obj["design"] = {"name": design.name, **design.options, "runs": dict(design.runs),
                         "flips": {str(k): v for k, v in sorted(design.flips.items())}}
    if model is not None:
        obj["model"] = {
            "base_model": _rel(model.base_model, root) if model.base_model else None,
            "checkpoints": {
                run: {str(step): _rel(p, root) for step, p in sorted(steps.items())}
                for run, steps in sorted(model.checkpoints.items())
            },
        }
    atomic_write_text(root / MANIFEST, json.dumps(obj, indent=1) + "\n")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
