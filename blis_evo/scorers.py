"""Routing-scorer lists: the ``--routing-scorers`` flag string (``name:weight,...``, also taken
by ``--pd-decode-scorers``) and a policy bundle's ``[{name, weight}, ...]`` list, each parsed
into a tuple of :class:`simulator.config.ScorerSpec`.

Behaviour port of BLIS ``sim/routing_scorers.go`` (ParseScorerConfigs) @cbb0de7b.
"""
from __future__ import annotations

import math
from typing import Any

from simulator.policies import registry
from simulator.config import ScorerSpec
from simulator.errors import InputError

from .bundle_values import (PREFIX, expect_mapping, expect_number, expect_string, go_quote,
                            type_name)
from .go_scalars import go_float_str, parse_go_float


def parse_scorers(text: str, flag: str = "--routing-scorers") -> tuple[ScorerSpec, ...]:
    """Parse ``--routing-scorers`` ("name:weight,name:weight"); ``""`` gives ``()``.

    Names must be registered scorers and appear at most once; weights must be finite and > 0.
    Raises InputError ("<flag>: ...", ``--routing-scorers`` unless another flag takes the same
    syntax) on the first bad entry.
    """
    if text == "":
        return ()
    specs: list[ScorerSpec] = []
    seen: set[str] = set()
    for raw in text.split(","):
        part = raw.strip()
        name, sep, weight_text = part.partition(":")
        if not sep:
            raise InputError(f"{flag}: invalid scorer config {go_quote(part)} (expected name:weight)")
        name = name.strip()
        if not registry.is_valid("scorer", name) or name == "":
            valid = ", ".join(registry.valid_names("scorer"))
            raise InputError(f"{flag}: unknown scorer {go_quote(name)}; valid: {valid}")
        if name in seen:
            raise InputError(
                f"{flag}: duplicate scorer {go_quote(name)}; each scorer may appear at most once"
            )
        seen.add(name)
        try:
            weight = parse_go_float(weight_text.strip())
        except ValueError:
            raise InputError(
                f"{flag}: invalid weight {go_quote(weight_text.strip())} for scorer {go_quote(name)}"
            ) from None
        if not math.isfinite(weight) or weight <= 0:
            raise InputError(
                f"{flag}: scorer {go_quote(name)} weight must be a finite positive number, "
                f"got {go_float_str(weight)}"
            )
        specs.append(ScorerSpec(name, weight))
    return tuple(specs)


def scorer_list(value: Any, path: str) -> tuple[ScorerSpec, ...]:
    """A bundle's scorer list (``[{name, weight}, ...]`` at key path ``path``; null gives
    ``()``) under the same rules as :func:`parse_scorers`; InputError naming the entry."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError(f"{PREFIX} {path}: expected a list of {{name, weight}}, got {type_name(value)}")
    specs: list[ScorerSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        here = f"{path}[{i}]"
        entry = expect_mapping(item, here, ("name", "weight"))
        name = expect_string(entry.get("name"), f"{here}.name") or ""
        weight = expect_number(entry.get("weight"), f"{here}.weight")
        weight = 0.0 if weight is None else weight
        if name == "" or not registry.is_valid("scorer", name):
            valid = ", ".join(registry.valid_names("scorer"))
            raise InputError(f"{PREFIX} {here}.name: unknown scorer {go_quote(name)}; valid: {valid}")
        if name in seen:
            raise InputError(
                f"{PREFIX} {here}.name: duplicate scorer {go_quote(name)}; each scorer may appear at most once"
            )
        seen.add(name)
        if not math.isfinite(weight) or weight <= 0:
            raise InputError(
                f"{PREFIX} {here}.weight: weight of scorer {go_quote(name)} must be a finite positive "
                f"number, got {go_float_str(weight)}"
            )
        specs.append(ScorerSpec(name, weight))
    return tuple(specs)
