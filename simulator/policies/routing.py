"""Routing policies: which instance serves an admitted request (kernel: ``kernels/cluster.py``
``route``).  Port of BLIS ``sim/routing.go`` @cbb0de7b; ``weighted`` combines the scorers of
:mod:`simulator.policies.scorers`."""
from simulator.kernels import policy_codes as codes
from simulator.kernels import layout as L

from .declare import Family, Policy

FAMILY = Family(
    key="routing", label="routing policy", default="round-robin",
    help="which instance serves an admitted request",
    flag="routing-policy", bundle=("routing", "policy"), gene="routing",
    slot=L.P_ROUTING, code_policy=codes.ROUTE_CODE,
    policies=(
        Policy("round-robin", codes.ROUTE_ROUND_ROBIN, "instances in turn"),
        Policy("least-loaded", codes.ROUTE_LEAST_LOADED,
               "the instance with the least queued + running + pending requests"),
        Policy("weighted", codes.ROUTE_WEIGHTED,
               "the best weighted sum of scorer values (--routing-scorers)"),
        Policy("prefix-affinity", codes.ROUTE_PREFIX_AFFINITY,
               "the instance that served the same whole prompt before, else least-loaded",
               needs=("full_hash",)),
        Policy("always-busiest", codes.ROUTE_ALWAYS_BUSIEST,
               "the most loaded instance (pathological)"),
    ))
