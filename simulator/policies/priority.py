"""Priority policies: the priority number a request gets when it joins a wait queue (kernel:
``kernels/instance.py`` ``priority_of``).  Port of BLIS ``sim/priority.go`` @cbb0de7b."""
from simulator.kernels import policy_codes as codes
from simulator.kernels import layout as L

from .declare import Family, Policy

FAMILY = Family(
    key="priority", label="priority policy", default="constant",
    help="the priority a queued request gets (used by priority schedulers)",
    flag="priority-policy", bundle=("priority", "policy"), gene="priority",
    slot=L.P_PRIO, code_policy=codes.PRIO_CODE,
    policies=(
        Policy("constant", codes.PRIO_CONSTANT, "every request the same priority"),
        Policy("slo-based", codes.PRIO_SLO_BASED,
               "older requests higher (age-based, as the reference)"),
        Policy("inverted-slo", codes.PRIO_INVERTED_SLO, "newer requests higher (pathological)"),
        Policy("slo-tier", codes.PRIO_SLO_TIER,
               "SLO tier first (critical > standard > batch > sheddable > background), then "
               "age: with priority-fcfs, the newest BLIS's class-aware order", reference=False),
    ))
