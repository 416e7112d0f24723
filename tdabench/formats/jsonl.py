"""Strict JSON and JSON Lines reading with one-line errors naming the file and line, and atomic writing.

Numbers are numbers: a string or a boolean where a number belongs, a float where an integer
belongs, or an integer outside int64 is an error that says what was found and what was expected.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tdabench.errors import DataError
from tdabench.run.tempfiles import temp_file

INT64 = (-(2**63), 2**63 - 1)


def _decode(data: bytes, path: Path, line: int | None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not valid UTF-8 text (byte {exc.start + 1} of the line is {data[exc.start]:#04x})" if line
                        else f"not valid UTF-8 text (byte {exc.start + 1} is {data[exc.start]:#04x})", line=line) from None


def _loads(text: str, path: Path, line: int | None) -> Any:
    try:
        return json.loads(text.rstrip("\r\n") if line is not None else text)  # a cut-short line: its column, not the next line's
    except json.JSONDecodeError as exc:
        where = f" at column {exc.colno}" if line is not None else ""
        raise DataError(path, f"malformed JSON ({exc.msg}{where})", line=line if line is not None else exc.lineno) from None
    except RecursionError:
        raise DataError(path, "JSON nested too deeply", line=line) from None
    except ValueError as exc:  # e.g. an integer literal too long to convert
        raise DataError(path, f"malformed JSON ({exc})", line=line) from None


def load_json_text(raw: bytes, path: Path) -> Any:
    """A whole JSON document from ``raw`` bytes of ``path``."""
    return _loads(_decode(raw, path, None), path, None)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; any bad line is a DataError."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            obj = _loads(line, path, lineno)
            if not isinstance(obj, dict):
                raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
            yield lineno, obj


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, str):
        return f"a string ({json.dumps(value)[:40]})"
    if isinstance(value, float):
        return f"a float ({value!r})"
    if value is None:
        return "null"
    return f"{value!r}"[:60]


def require(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], path: Path, line: int) -> Any:
    """``obj[key]``, checked to be present and of type ``typ`` (a boolean is never an int)."""
    if key not in obj:
        raise DataError(path, "missing", line=line, field=key)
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise DataError(path, f"expected {names}, got {_kind(value)}", line=line, field=key)
    return value


def check_int(value: Any, path: Path, line: int, field: str, *, lo: int = INT64[0], hi: int = INT64[1]) -> int:
    """``value`` as an int within ``[lo, hi]`` (int64 by default); anything else is a DataError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(path, f"expected an integer, got {_kind(value)}", line=line, field=field)
    if not lo <= value <= hi:
        bound = f">= {lo}" if value < lo else f"<= {hi}"
        raise DataError(path, f"expected an integer {bound}, got {value}", line=line, field=field)
    return value


def check_number(value: Any, path: Path, line: int, field: str, *, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite number within ``[lo, hi]``; strings, booleans and null are DataErrors."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(path, f"expected a number, got {_kind(value)}", line=line, field=field)
    x = float(value)
    if not math.isfinite(x):
        raise DataError(path, f"expected a finite number, got {value!r}", line=line, field=field)
    if not lo <= x <= hi:
        raise DataError(path, f"expected a number between {lo:g} and {hi:g}, got {value!r}", line=line, field=field)
    return x


@functools.cache
def _file_mode() -> int:
    """0666 less the process's umask: the mode ``open()`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` via a temp file in the same directory, fsync, then rename over ``path``.

    The temp file's name is tdabench's own and carries this process's id, so a later run can
    remove what a killed one left behind (:func:`tdabench.run.tempfiles.sweep`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path.parent, path.name)
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes 0600; a result is as readable as any file the user writes
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
