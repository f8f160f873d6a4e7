"""Go-compatible scalar parsing and formatting: numbers and booleans read the way BLIS's Go
flags and YAML read them (``strconv.ParseFloat`` / ``ParseInt(s, 0, 64)`` / ``ParseBool``), and
floats shown the way Go's ``%v`` shows them in error messages.  Shared by the flag table, the
policy bundle and the calibration CLI."""
from __future__ import annotations

import math
import re

from simulator.config import INT64_MAX

INT64_MIN = -(2**63)


_HEX_FLOAT = re.compile(r"[+-]?0[xX][0-9a-fA-F_]*\.?[0-9a-fA-F_]*[pP][+-]?[0-9_]+")
_LEGACY_OCTAL = re.compile(r"([+-]?)0([0-7_]+)")


def parse_go_float(text: str) -> float:
    """Parse ``text`` the way Go's ``strconv.ParseFloat(text, 64)`` does; raise ValueError if bad.

    Accepts decimal/exponent forms, ``NaN``, ``[+-]Inf``/``Infinity`` and hex floats with a
    ``p`` exponent.  Rejects surrounding spaces and digit underscores in decimal numbers.
    """
    if text != text.strip() or text == "":
        raise ValueError(f"invalid number {text!r}")
    if _HEX_FLOAT.fullmatch(text):
        return float.fromhex(text.replace("_", ""))
    if "_" in text:
        raise ValueError(f"invalid number {text!r}")
    return float(text)


def parse_go_int(text: str) -> int:
    """Parse ``text`` like Go's ``strconv.ParseInt(text, 0, 64)``: base prefixes, int64 range."""
    if text != text.strip() or text == "":
        raise ValueError(f"invalid integer {text!r}")
    m = _LEGACY_OCTAL.fullmatch(text)
    if m:
        value = int(m.group(1) + m.group(2).replace("_", ""), 8)
    else:
        try:
            value = int(text, 0)
        except ValueError:
            raise ValueError(f"invalid integer {text!r}") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"integer {text!r} out of int64 range")
    return value


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(text: str) -> bool:
    """Parse ``text`` like Go's ``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r}")


def go_float_str(value: float) -> str:
    """Format a float the way Go's ``%v`` shows it in error messages (``NaN``, ``+Inf``, ``2``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)
