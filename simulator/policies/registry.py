"""The registry of policy families: every family's declarations, looked up by family key.

This is the single source of valid policy names, their kernel codes and their parameters.
Derivations (CLI flags, bundle schema, genes, docs) read :func:`families` when they run, so a
policy registered with :func:`register` (an extension) or :func:`registered` (a test) appears
in all of them.  Adding a built-in policy = one :class:`~simulator.policies.declare.Policy` in
its family module + one kernel branch (``docs/EXTENDING.md``).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from . import (admission, autoscaler, flow_control, lifecycle, pd_decider, preemption, priority,
               routing, scheduler, scorers)
from .declare import Family, Param, Policy

CODE_POLICY = "code"
"""Name of a user code policy (``code:PATH``; :mod:`simulator.codepolicy`) in the families that
accept one.  It is not a declared policy (it needs its source, not just a name), so
:func:`valid_names` lists only the built-in policies."""

NEEDS = {
    "full_hash": "the hash of the whole prompt (prefix-affinity routing's key)",
    "id_rank": "each request's rank in request-ID string order (scheduler tie-break)",
    "prefix_index": "the router's per-instance index of 16-token prefix blocks",
}
"""Per-run state a policy can ask for in ``Policy.needs`` (the engine prepares it)."""

_FAMILIES: dict[str, Family] = {f.key: f for f in (
    admission.FAMILY, routing.FAMILY, scorers.FAMILY, priority.FAMILY, scheduler.FAMILY,
    preemption.FAMILY, flow_control.FLOW_CONTROL, flow_control.SATURATION_DETECTOR,
    flow_control.DISPATCH_ORDER, flow_control.FAIRNESS,
    pd_decider.FAMILY, lifecycle.DRAIN, lifecycle.WARMUP, autoscaler.FAMILY)}


def families() -> tuple[Family, ...]:
    """Every family, in declaration order (admission, routing, scorer, priority, scheduler,
    pd-decider, drain, warmup-profile, autoscaler)."""
    return tuple(_FAMILIES.values())


def family(key: str) -> Family:
    """The family ``key`` (KeyError naming the known keys if there is none)."""
    try:
        return _FAMILIES[key]
    except KeyError:
        raise KeyError(f"unknown policy family {key!r}; known: {', '.join(_FAMILIES)}") from None


def valid_names(key: str) -> list[str]:
    """Sorted declared policy names of family ``key``."""
    return family(key).names()


def is_valid(key: str, name: str) -> bool:
    """True if ``name`` is declared in family ``key``; ``""`` counts as the family default."""
    return family(key).has(name)


def accepts_code(key: str) -> bool:
    """True when family ``key`` accepts a user code policy (``code:PATH``)."""
    return family(key).code_policy is not None


def code_of(key: str, name: str) -> int:
    """Kernel code of a declared policy name, of ``"code"`` (families that accept code
    policies), or of the default for ``""``."""
    fam = family(key)
    if name == CODE_POLICY and fam.code_policy is not None:
        return fam.code_policy
    return fam.get(name).code


def policy_params() -> tuple[tuple[Family, Policy, Param], ...]:
    """Every flag-level policy parameter: (family, declaring policy, parameter), in family and
    declaration order."""
    return tuple((fam, pol, p) for fam in families() if fam.param_flags
                 for pol in fam.policies for p in pol.params)


def find_param(name: str) -> tuple[Family, Policy, Param]:
    """The flag-level parameter called ``name`` with its family and policy (KeyError if none)."""
    for entry in policy_params():
        if entry[2].name == name:
            return entry
    raise KeyError(name)


def register(key: str, policy: Policy) -> None:
    """Add ``policy`` to family ``key`` for the rest of the process (an extension module's
    policy).  Raises ValueError on a clash with a declared name, code or parameter."""
    fam = family(key)
    if fam.has(policy.name) and policy.name:
        raise ValueError(f"{fam.label} {policy.name!r} is already declared")
    if fam.param_flags:
        known = {p.name for _, _, p in policy_params()}
        clash = sorted(known & {p.name for p in policy.params})
        if clash:
            raise ValueError(f"parameter names already declared: {', '.join(clash)}")
    _FAMILIES[key] = fam.with_policy(policy)


@contextlib.contextmanager
def registered(key: str, policy: Policy) -> Iterator[Family]:
    """Register ``policy`` in family ``key`` for the duration of a ``with`` block (tests)."""
    before = _FAMILIES[key]
    register(key, policy)
    try:
        yield _FAMILIES[key]
    finally:
        _FAMILIES[key] = before
