"""Checks of single policy-bundle YAML values (a mapping with known keys, a string, a number),
each failing with one line that names the key path under ``policy-config``.  Shared by the
bundle reader (:mod:`blis_evo.bundle`) and its scorer lists (:mod:`blis_evo.scorers`)."""
from __future__ import annotations

import json
from typing import Any

from simulator.errors import InputError

PREFIX = "policy-config"
"""What every policy-bundle error starts with."""


def go_quote(text: str) -> str:
    """Double-quoted string, like Go's %q for plain text (how the reference quotes names in
    errors)."""
    return json.dumps(text, ensure_ascii=False)


def type_name(value: Any) -> str:
    """The YAML type name of a parsed value, for errors (``boolean``, ``integer``, ``mapping``...)."""
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)


def expect_mapping(value: Any, path: str, allowed: tuple[str, ...]) -> dict:
    """``value`` as a dict ({} if null); InputError on a non-mapping or a key not in ``allowed``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{PREFIX} {path or '(top level)'}: expected a mapping, got {type_name(value)}")
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise InputError(f"{PREFIX} {where}: unknown key (allowed: {', '.join(allowed)})")
    return value


def expect_string(value: Any, path: str) -> str | None:
    """``value`` as a string, None when unset (null or empty); InputError on another type."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"{PREFIX} {path}: expected a string, got {type_name(value)}")
    return value


def expect_number(value: Any, path: str) -> float | None:
    """``value`` as a float, None when null; InputError on a boolean or a non-number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{PREFIX} {path}: expected a number, got {type_name(value)}")
    return float(value)
