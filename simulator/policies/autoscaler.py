"""Autoscaler policies as a family: the Python policy classes of
:mod:`simulator.autoscale.policies` (each declares its parameters in ``PARAMS``).  Their
parameters are per policy (the bundle's ``autoscaler.params`` mapping), not flags."""
from simulator.autoscale.policies import POLICIES

from .declare import Family, Policy

FAMILY = Family(
    key="autoscaler", label="autoscaler", default="threshold",
    help="when to add or remove replicas (the bundle's autoscaler section)",
    flag="autoscaler", bundle=("autoscaler", "policy"), gene="autoscaler", param_flags=False,
    policies=tuple(
        Policy(name, i, cls.HELP, params=cls.PARAMS, reference=False, impl=cls)
        for i, (name, cls) in enumerate(POLICIES.items())),
)
