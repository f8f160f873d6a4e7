"""Preemption policies: which running request an instance evicts when it cannot allocate KV
blocks for the batch (kernel: ``kernels/instance.py`` ``_preempt_for``).  ``fcfs`` is the
reference at cbb0de7b (the batch tail); ``priority`` is BLIS f90a1e3a's
``--preemption-policy priority`` (``sim/batch_formation.go``): the least urgent SLO tier
(:mod:`simulator.slo`), then the newest arrival."""
from simulator.kernels import policy_codes as codes
from simulator.kernels import layout as L

from .declare import Family, Policy

FAMILY = Family(
    key="preemption", label="preemption policy", default="fcfs",
    help="which running request is preempted when KV blocks run out",
    flag="preemption-policy", bundle=("preemption", "policy"), gene="preemption",
    slot=L.P_PREEMPT,
    policies=(
        Policy("fcfs", codes.PREEMPT_FCFS, "the last request of the running batch"),
        Policy("priority", codes.PREEMPT_PRIORITY,
               "the least urgent SLO tier, then the newest arrival (BLIS f90a1e3a)",
               reference=False),
    ))
