"""Routing-scorer lists: the ``--routing-scorers`` flag string (``name:weight,...``, also taken
by ``--pd-decode-scorers``) and a policy bundle's ``[{name, weight}, ...]`` list (its schema:
:func:`scorer_list_field`), each parsed into a tuple of :class:`simulator.config.ScorerSpec`.

Behaviour port of BLIS ``sim/routing_scorers.go`` (ParseScorerConfigs) @cbb0de7b.
"""
from __future__ import annotations

import math

from simulator.policies import registry
from simulator.config import ScorerSpec
from simulator.errors import InputError
from simulator.schema import At, Choice, ListOf, Mapping, Number

from .bundle_values import go_quote
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


def _scorer_specs(entries: list[dict], at: At) -> tuple[ScorerSpec, ...]:
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry["name"] in seen:
            (at / i / "name").fail(f"duplicate scorer {go_quote(entry['name'])}; each scorer may "
                                   "appear at most once")
        seen.add(entry["name"])
    return tuple(ScorerSpec(e["name"], e["weight"]) for e in entries)


def scorer_list_field(**kw) -> ListOf:
    """A bundle's scorer list, ``[{name, weight}, ...]``, under the same rules as
    :func:`parse_scorers`; parsed to a tuple of ScorerSpec (null: unset)."""
    entry = Mapping({
        "name": Choice(lambda: registry.valid_names("scorer"), label="scorer", required=True,
                       help="a routing scorer"),
        "weight": Number(gt=0, required=True, help="its weight (weights are normalised)"),
    })
    return ListOf(entry, what="a list of {name, weight}", then=_scorer_specs, **kw)
