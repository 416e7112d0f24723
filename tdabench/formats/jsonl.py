"""JSON Lines reading with errors that name the file and line, and atomic writing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tdabench.errors import DataError


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; bad JSON is a DataError."""
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"malformed JSON ({exc.msg} at column {exc.colno})", line=lineno) from None
            if not isinstance(obj, dict):
                raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
            yield lineno, obj


def require(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], path: Path, line: int) -> Any:
    """``obj[key]``, checked to be present and of type ``typ``."""
    if key not in obj:
        raise DataError(path, "missing", line=line, field=key)
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise DataError(path, f"expected {names}, got {value!r}", line=line, field=key)
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` via a temp file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write one compact JSON object per line, atomically."""
    atomic_write_text(path, "".join(json.dumps(r, separators=(", ", ": ")) + "\n" for r in rows))
