"""What each kind of code policy is: its function name, its features (names, units, meaning) and
what its return value means.  The single source for the sandbox's signature check, the kernel
call order (simulator/kernels/codefn.py) and the documentation."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """One argument of a code policy: name, unit and meaning (every feature arrives as float)."""

    name: str
    unit: str
    meaning: str
    optional: bool = False  # later features: a function may stop before them (see PolicyKind)


@dataclass(frozen=True)
class PolicyKind:
    """A kind of code policy: the function it defines and the features it receives in order."""

    kind: str            # "routing" | "admission" | "priority"
    function: str        # the function the file must define
    features: tuple[Feature, ...]
    returns: str

    @property
    def signature(self) -> str:
        """``def name(a, b, ...)`` with every feature (optional ones may be left off the end)."""
        return f"def {self.function}({', '.join(f.name for f in self.features)})"

    @property
    def required(self) -> int:
        """How many leading features a function must take (the optional ones, added later,
        may be left off the end, so policies written before them still load)."""
        return sum(1 for f in self.features if not f.optional)


_SLO_PRIORITY = Feature("slo_priority", "priority", "the request's SLO-tier priority "
                        "(critical 4, standard 3, batch -1, sheddable -2, background -3, or the "
                        "bundle's slo_priorities; < 0 = sheddable)", optional=True)
_TENANT_SHARE = Feature("tenant_share", "fraction", "requests of the request's tenant in flight "
                        "(routed, not finished) over the cluster's capacity (instances x max "
                        "running requests)", optional=True)


ROUTING = PolicyKind("routing", "score", (
    Feature("queue_depth", "requests", "the instance's wait-queue length"),
    Feature("batch_size", "requests", "requests in the instance's running batch"),
    Feature("pending", "requests", "requests routed to the instance and not yet queued there"),
    Feature("kv_utilization", "fraction 0..1", "the instance's KV-cache utilisation (router snapshot)"),
    Feature("free_kv_blocks", "blocks", "the instance's free KV blocks (router snapshot)"),
    Feature("prefix_match", "fraction 0..1",
            "leading 16-token blocks of the request the router's prefix index believes the "
            "instance holds, over the request's full 16-token blocks (0 for requests shorter "
            "than 16 tokens)"),
    Feature("cache_hit_rate", "fraction 0..1", "the instance's KV prefix-cache hit rate so far "
            "(router snapshot)"),
    _SLO_PRIORITY, _TENANT_SHARE,
), "float: the candidate's score; the request goes to the highest score, ties to the lowest "
   "instance index; NaN/inf counts as the lowest score and is counted")

ADMISSION = PolicyKind("admission", "admit", (
    Feature("input_tokens", "tokens", "the request's prompt length"),
    Feature("queue_depth", "requests", "wait-queue lengths summed over the routable instances"),
    Feature("batch_size", "requests", "running-batch sizes summed over the routable instances"),
    Feature("pending", "requests", "routed-not-yet-queued requests summed over the routable instances"),
    Feature("kv_utilization", "fraction 0..1", "mean KV-cache utilisation over the routable "
            "instances (router snapshots)"),
    Feature("num_instances", "instances", "routable instances (all of them in a fixed cluster; see Autoscaling)"),
    _SLO_PRIORITY, _TENANT_SHARE,
), "bool: admit the request (a number is read by its truth value: 0 rejects)")

PRIORITY = PolicyKind("priority", "priority", (
    Feature("age", "seconds", "time since the request arrived"),
    Feature("input_tokens", "tokens", "the request's prompt length"),
    Feature("preemptions", "count", "times the request has been preempted so far"),
    Feature("queue_depth", "requests", "the instance's wait-queue length"),
    Feature("batch_size", "requests", "requests in the instance's running batch"),
    Feature("kv_utilization", "fraction 0..1", "the instance's live KV-cache utilisation"),
    _SLO_PRIORITY, _TENANT_SHARE,
), "float: the request's priority, recomputed for every queued request each step; read only by "
   "the priority-fcfs (highest first) and reverse-priority schedulers; NaN/inf counts as the "
   "lowest priority and is counted")

KINDS: dict[str, PolicyKind] = {k.kind: k for k in (ROUTING, ADMISSION, PRIORITY)}
"""Code policy kinds by name."""


def feature_table() -> str:
    """Markdown table of every kind's function, features and units (for docs and --help)."""
    lines = ["| policy | feature | unit | meaning |", "|---|---|---|---|"]
    for k in KINDS.values():
        for f in k.features:
            lines.append(f"| `{k.function}` ({k.kind}) | `{f.name}` | {f.unit} | {f.meaning} |")
    return "\n".join(lines)
