"""What two recordings must share byte for byte: every recorded file but the recording time."""

from __future__ import annotations

import json
from pathlib import Path


def recorded_files(root: Path, *, manifest: bool = True) -> dict[str, bytes]:
    """Every file under ``root/runs`` (and the manifest), with each run summary's ``run_seconds``
    (wall time, never equal twice) checked positive and left out."""
    files = {}
    for p in sorted((root / "runs").rglob("*")):
        if p.is_file():
            body = p.read_bytes()
            if p.name == "run_summary.json":
                obj = json.loads(body)
                assert obj.pop("run_seconds") > 0
                body = json.dumps(obj, sort_keys=True).encode()
            files[str(p.relative_to(root))] = body
    if manifest:
        files["tdabench.json"] = (root / "tdabench.json").read_bytes()
    return files
