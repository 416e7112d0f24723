"""Method configs: typed dataclasses, built from strings (CLI) or typed values (files, code).

A method's config is a frozen dataclass whose fields are made by :func:`option`: help text,
allowed values and bounds, as data. :func:`validate_options` checks them (a config calls it
in ``__post_init__``; :func:`build_config` calls it anyway), and the error names the key and
what it must be. Only rules that tie two options together are written by hand.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tdabench.errors import ConfigError


def option(
    default: Any,
    help: str,
    choices: tuple[Any, ...] | None = None,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    nonempty: bool = False,
    flag: str | None = None,
) -> Any:
    """A dataclass field with help text and the constraints :func:`validate_options` checks.

    ``choices`` lists the allowed values; ``ge``/``gt``/``le`` bound a number (each element of a
    tuple), which must then also be finite; ``nonempty`` asks a tuple for at least one element;
    ``flag`` names the command-line flag where it is not ``--`` plus the field name.
    """
    meta: dict[str, Any] = {"help": help}
    for key, value in (("choices", choices), ("ge", ge), ("gt", gt), ("le", le)):
        if value is not None:
            meta[key] = value
    if nonempty:
        meta["nonempty"] = True
    if flag is not None:
        meta["flag"] = flag
    return dataclasses.field(default=default, metadata=meta)


def check_value(label: str, value: Any, meta: Mapping[str, Any]) -> None:
    """A ValueError saying what ``label`` (``option 'k'``, ``--flag``) must be, if ``value`` breaks ``meta``."""
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"{label} must be one of {', '.join(map(str, choices))}; got {value!r}")
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if meta.get("nonempty") and not items:
        raise ValueError(f"{label} needs at least one value")
    bounds = [(k, meta[k]) for k in ("ge", "gt", "le") if k in meta]
    if not bounds or value is None:
        return
    words = {"ge": "at least", "gt": "greater than", "le": "at most"}
    want = " and ".join(f"{words[k]} {b:g}" for k, b in bounds)
    for x in items:
        ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
        ok = ok and all({"ge": x >= b, "gt": x > b, "le": x <= b}[k] for k, b in bounds)
        if not ok:
            raise ValueError(f"{label} must be {want}; got {value!r}")


def validate_options(obj: Any, label: Callable[[str], str] = lambda name: f"option '{name}'") -> None:
    """Check every field of the dataclass ``obj`` against its :func:`option` constraints."""
    for f in dataclasses.fields(obj):
        check_value(label(f.name), getattr(obj, f.name), f.metadata)


def _coerce(value: Any, typ: Any, key: str, method: str) -> Any:
    """Turn a CLI string into the field's type; typed values pass through checked."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, method)
            except ConfigError:
                continue
        raise ConfigError(f"method {method!r}: option '{key}' cannot be {value!r} (expected {typ})")
    if origin is tuple:
        items = value.split("/") if isinstance(value, str) else list(value)
        inner = args[0] if args else str
        return tuple(_coerce(v, inner, key, method) for v in items)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if typ is float:
            return float(value)
        if typ is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"method {method!r}: option '{key}' must be {getattr(typ, '__name__', typ)}, got {value!r}"
        ) from None
    return value


def build_config(cls: type, overrides: Mapping[str, Any], *, method: str) -> Any:
    """Instantiate ``cls`` with ``overrides`` coerced to the field types and validated."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            allowed = ", ".join(fields) or "none"
            raise ConfigError(f"method {method!r} has no option '{key}' (options: {allowed})")
        kwargs[key] = _coerce(value, hints[key], key, method)
    try:
        config = cls(**kwargs)
        validate_options(config)  # the options' own constraints, whether or not the class checks them
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"method {method!r}: {exc}") from None
    return config


def parse_method_arg(arg: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME:key=value,key=value`` into the name and its string overrides."""
    name, _, rest = arg.partition(":")
    overrides: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--method {arg!r}: expected key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    return name.strip(), overrides


def describe_options(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) of each option, for ``tdabench list methods -v``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        if "choices" in f.metadata:
            help_text += f" (one of: {', '.join(map(str, f.metadata['choices']))})"
        rows.append((f.name, getattr(hints[f.name], "__name__", str(hints[f.name])), f.default, help_text))
    return rows


def read_method_file(path: str | Path) -> list[tuple[str, str | None, dict[str, Any]]]:
    """Methods from a TOML or YAML file: ``(name, label or None, options)`` per entry.

    The file holds a list ``methods``; each entry has ``name``, an optional ``label`` (the
    display name, so one method can appear under several configs) and its options::

        [[methods]]
        name = "gptfluence"
        label = "gptfluence-concat"
        form = "concat"
    """
    from tdabench.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "config file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise DataError(path, f"malformed YAML ({getattr(exc, 'problem', exc)})", line=mark.line + 1 if mark else None) from None
    elif path.suffix.lower() == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DataError(path, f"malformed TOML ({exc})") from None
    else:
        raise DataError(path, "config files must end in .toml, .yaml or .yml")
    entries = doc.get("methods") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(path, "expected a non-empty list of method entries", field="methods")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise DataError(path, f"entry {i + 1} needs a string 'name'", field="methods")
        options = {k: v for k, v in entry.items() if k not in ("name", "label")}
        label = entry.get("label")
        out.append((entry["name"], str(label) if label is not None else None, options))
    return out
