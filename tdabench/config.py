"""Method configs: typed dataclasses, built from strings (CLI) or typed values (files, code).

A method's config is a frozen dataclass. Each field may carry ``metadata={"help": "...",
"choices": (...)}``; ``__post_init__`` validates values and raises :class:`ConfigError`
with a message that names the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdabench.errors import ConfigError


def option(default: Any, help: str, choices: tuple[Any, ...] | None = None) -> Any:
    """A dataclass field with help text and, optionally, its allowed values."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    return dataclasses.field(default=default, metadata=meta)


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
        typed = _coerce(value, hints[key], key, method)
        choices = fields[key].metadata.get("choices")
        if choices is not None and typed not in choices:
            raise ConfigError(
                f"method {method!r}: option '{key}' must be one of "
                f"{', '.join(map(str, choices))}; got {typed!r}"
            )
        kwargs[key] = typed
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"method {method!r}: {exc}") from None


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
