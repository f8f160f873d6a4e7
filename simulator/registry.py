"""Name <-> code registries for every policy family; the single source of valid names.

Adding a policy = one kernel function + one entry here (+ a test). The CLI, the YAML bundle
validator and error messages all read these tables.
"""
from __future__ import annotations

from .kernels import policy_codes as codes

_ADMISSION = {
    "always-admit": codes.ADMIT_ALWAYS,
    "token-bucket": codes.ADMIT_TOKEN_BUCKET,
    "reject-all": codes.ADMIT_REJECT_ALL,
}
_ROUTING = {
    "round-robin": codes.ROUTE_ROUND_ROBIN,
    "least-loaded": codes.ROUTE_LEAST_LOADED,
    "weighted": codes.ROUTE_WEIGHTED,
    "prefix-affinity": codes.ROUTE_PREFIX_AFFINITY,
    "always-busiest": codes.ROUTE_ALWAYS_BUSIEST,
}
_SCORERS = {
    "prefix-affinity": codes.SCORER_PREFIX_AFFINITY,
    "queue-depth": codes.SCORER_QUEUE_DEPTH,
    "kv-utilization": codes.SCORER_KV_UTILIZATION,
    "load-balance": codes.SCORER_LOAD_BALANCE,
}
_PRIORITY = {
    "constant": codes.PRIO_CONSTANT,
    "slo-based": codes.PRIO_SLO_BASED,
    "inverted-slo": codes.PRIO_INVERTED_SLO,
}
_SCHEDULER = {
    "fcfs": codes.SCHED_FCFS,
    "priority-fcfs": codes.SCHED_PRIORITY_FCFS,
    "sjf": codes.SCHED_SJF,
    "reverse-priority": codes.SCHED_REVERSE_PRIORITY,
}
_PD_DECIDER = {
    "always": codes.PD_DECIDE_ALWAYS,
    "never": codes.PD_DECIDE_NEVER,
    "prefix-threshold": codes.PD_DECIDE_PREFIX_THRESHOLD,
}
_FAMILIES = {
    "admission": _ADMISSION,
    "routing": _ROUTING,
    "scorer": _SCORERS,
    "priority": _PRIORITY,
    "scheduler": _SCHEDULER,
    "pd-decider": _PD_DECIDER,
}


CODE_POLICY = "code"
"""Name of a code policy (simulator.codepolicy) in the routing, admission and priority
families; it is not in the tables above (it needs its source, not just a name), so
:func:`valid_names` lists only the built-in policies."""
_CODE_POLICY_CODES = {
    "admission": codes.ADMIT_CODE,
    "routing": codes.ROUTE_CODE,
    "priority": codes.PRIO_CODE,
}
CODE_POLICY_FAMILIES = tuple(_CODE_POLICY_CODES)
"""Families that accept a code policy."""


def valid_names(family: str) -> list[str]:
    """Sorted valid names of a policy family ("admission", "routing", "scorer", "priority", "scheduler")."""
    return sorted(_FAMILIES[family])


def is_valid(family: str, name: str) -> bool:
    """True if ``name`` is registered in ``family``; "" counts as the family default, like the reference."""
    return name == "" or name in _FAMILIES[family]


def code_of(family: str, name: str) -> int:
    """Kernel code of a (valid) policy name or "code"; "" maps to the family default."""
    if name == CODE_POLICY and family in _CODE_POLICY_CODES:
        return _CODE_POLICY_CODES[family]
    table = _FAMILIES[family]
    if name == "":
        return 0
    return table[name]
