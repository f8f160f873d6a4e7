"""Encode the chosen policies for the kernels, reading only the policy declarations.

The engine calls these three functions; none of them names a particular policy: a family's
choice goes to the family's ``slot`` of the int parameter vector as the policy's kernel code,
each declared parameter to its own ``slot`` (the float vector for ``float`` parameters, the int
vector for ``int`` ones), and the per-run state the chosen policies ask for (``Policy.needs``)
is collected for :func:`simulator.engine.build_state` to prepare.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .config import PolicyConfig, ScorerSpec
from .policies.declare import FLOAT
from .policies.registry import CODE_POLICY, code_of, family, policy_params

POLICY_FAMILIES = ("admission", "routing", "priority", "scheduler", "preemption", "flow_control",
                   "saturation_detector", "dispatch_order", "fairness")
"""The families a :class:`PolicyConfig` chooses, each by the field of the family's name."""


def scorer_table(policy: PolicyConfig, scorers: Iterable[ScorerSpec] | None = None):
    """The weighted router's scorer table: codes in configured order and weights normalised to
    sum to 1 (summed left to right).  Empty unless ``policy.routing`` is ``weighted``.
    ``scorers`` replaces ``policy.scorers`` (a P/D decode pool's own profile)."""
    if policy.routing != "weighted":
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    specs = tuple(policy.scorers if scorers is None else scorers)
    total = 0.0
    for s in specs:
        total += s.weight
    codes = np.array([code_of("scorer", s.name) for s in specs], dtype=np.int64)
    weights = np.array([s.weight / total for s in specs], dtype=np.float64)
    return codes, weights


def encode_policies(policy: PolicyConfig, P: np.ndarray, PF: np.ndarray) -> None:
    """Write the chosen policies' kernel codes and every declared parameter's value into the
    int (``P``) and float (``PF``) parameter vectors, at the slots their declarations name."""
    for key in POLICY_FAMILIES:
        P[family(key).slot] = code_of(key, getattr(policy, key))
    for _fam, _pol, param in policy_params():
        if param.slot is None:
            continue
        value = policy.param(param.name)
        if param.kind == FLOAT:
            PF[param.slot] = value
        else:
            P[param.slot] = int(value)


def run_needs(policy: PolicyConfig, scorer_names: Iterable[str] = (),
              extra: Iterable[tuple[str, str]] = ()) -> frozenset[str]:
    """The per-run state (``Policy.needs`` keys) the chosen policies ask for.

    ``scorer_names``: the scorers of the weighted router's tables in use; ``extra``: further
    ``(family, policy name)`` choices (a P/D decider).  A routing code policy that reads
    ``prefix_match`` needs the router's prefix index like the prefix-affinity scorer does.
    """
    needs: set[str] = set()
    for key in POLICY_FAMILIES:
        name = getattr(policy, key)
        if name != CODE_POLICY:
            needs.update(family(key).get(name).needs)
    for name in scorer_names:
        needs.update(family("scorer").get(name).needs)
    for key, name in extra:
        needs.update(family(key).get(name).needs)
    if policy.routing == CODE_POLICY and "prefix_match" in policy.routing_code.reads:
        needs.add("prefix_index")
    return frozenset(needs)
