"""SLO tiers: a request's SLO class as an integer priority (BLIS f90a1e3a ``sim/slo_priority.go``).

Higher is more urgent; a negative priority marks a *sheddable* class (admission, gateway queue
shedding and in-flight eviction may drop it).  The defaults are the reference's: critical 4,
standard 3, batch -1, sheddable -2, background -3, and any other class (the empty class
included) 3.  Version-1 workload names map to their version-2 tier without being renamed
(``realtime`` -> critical, ``interactive`` -> standard), so outputs keep the names a user wrote.
A policy bundle overrides priorities per class (``admission.slo_priorities``), each in
[-100, 100].
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .errors import InputError

DEFAULT_SLO_PRIORITIES: dict[str, int] = {
    "critical": 4, "standard": 3, "batch": -1, "sheddable": -2, "background": -3}
"""Priority of each version-2 SLO class (the reference's defaults)."""

DEFAULT_PRIORITY = 3
"""Priority of a class with no entry (the empty class and unknown names): standard's."""

V1_ALIASES: dict[str, str] = {"realtime": "critical", "interactive": "standard"}
"""Version-1 class names and the version-2 tier they belong to."""

SLO_CLASS_NAMES: tuple[str, ...] = tuple(DEFAULT_SLO_PRIORITIES) + tuple(V1_ALIASES)
"""Classes a ``slo_priorities`` override may name."""

PRIORITY_MIN, PRIORITY_MAX = -100, 100


def override_problem(name: object, value: object) -> str | None:
    """Why ``name: value`` is not a valid priority override (a phrase), or None."""
    if name not in SLO_CLASS_NAMES:
        return f"unknown SLO class {name!r}; valid: {', '.join(SLO_CLASS_NAMES)}"
    integral = (isinstance(value, (int, float)) and not isinstance(value, bool)
                and float(value).is_integer())
    if not integral or not PRIORITY_MIN <= int(value) <= PRIORITY_MAX:
        return f"must be an integer in [{PRIORITY_MIN}, {PRIORITY_MAX}], got {value!r}"
    return None


def check_overrides(overrides: Mapping[str, object], where: str) -> dict[str, int]:
    """Validated ``{class: priority}`` overrides: known class names (:data:`SLO_CLASS_NAMES`),
    integer priorities in [-100, 100]; InputError naming ``where.<class>`` otherwise."""
    for name, value in overrides.items():
        problem = override_problem(name, value)
        if problem is not None:
            raise InputError(f"{where}.{name}: {problem}")
    return {str(k): int(v) for k, v in overrides.items()}


def slo_priority(name: str, overrides: Mapping[str, int] | Sequence[tuple[str, int]] = ()) -> int:
    """Priority of SLO class ``name``: its override, else its version-2 tier's (override or
    default; v1 names through :data:`V1_ALIASES`), else :data:`DEFAULT_PRIORITY`."""
    table = dict(overrides)
    if name in table:
        return int(table[name])
    tier = V1_ALIASES.get(name, name)
    if tier in table:
        return int(table[tier])
    return DEFAULT_SLO_PRIORITIES.get(tier, DEFAULT_PRIORITY)


def is_sheddable(priority: int) -> bool:
    """True for a sheddable tier (strictly negative priority; 0 is not sheddable)."""
    return priority < 0


def request_priorities(slo_class: np.ndarray | None, slo_names: Sequence[str], n: int,
                       overrides: Mapping[str, int] | Sequence[tuple[str, int]] = ()) -> np.ndarray:
    """Per-request priorities (int64, length ``n``) from the workload's class codes
    (``slo_class`` indexes ``slo_names``; None = every request in the empty class)."""
    table = np.array([slo_priority(s, overrides) for s in slo_names] or [DEFAULT_PRIORITY],
                     dtype=np.int64)
    if slo_class is None:
        return np.full(n, slo_priority("", overrides), dtype=np.int64)
    return table[np.asarray(slo_class, dtype=np.int64)]


def parse_slo_targets(text: str, where: str = "--slo-targets") -> tuple[tuple[str, int], ...]:
    """``CLASS=µs[,CLASS=µs...]`` (the reference's ``--slo-targets``) as sorted pairs; "" = none.
    Each class may appear once; values are positive integers (µs).  InputError otherwise."""
    out: dict[str, int] = {}
    if text.strip() == "":
        return ()
    for pair in text.split(","):
        pair = pair.strip()
        if "=" not in pair:
            raise InputError(f"{where}: invalid entry {pair!r} (expected CLASS=µs, e.g. "
                             "critical=500000,standard=2000000)")
        key, _, value = (x.strip() for x in pair.partition("="))
        if not key:
            raise InputError(f"{where}: empty class in {pair!r} (expected CLASS=µs)")
        if key in out:
            raise InputError(f"{where}: class {key!r} given twice")
        try:
            us = int(value, 10)
        except ValueError:
            us = 0
        if us <= 0:
            raise InputError(f"{where}: value for {key!r} must be a positive integer (µs), "
                             f"got {value!r}")
        out[key] = us
    return tuple(sorted(out.items()))
