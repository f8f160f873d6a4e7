"""Instance schedulers: the order of an instance's wait queue (kernel: ``kernels/instance.py``
``order_queue``).  Port of BLIS ``sim/scheduler.go`` @cbb0de7b.  Every scheduler but ``fcfs``
breaks ties on the request ID string, so it needs the ``id_rank`` row."""
from simulator.kernels import policy_codes as codes
from simulator.kernels import layout as L

from .declare import Family, Policy

FAMILY = Family(
    key="scheduler", label="scheduler", default="fcfs",
    help="the order in which an instance's wait queue is served",
    flag="scheduler", bundle=("scheduler",), gene="scheduler", slot=L.P_SCHED,
    policies=(
        Policy("fcfs", codes.SCHED_FCFS, "first come, first served"),
        Policy("priority-fcfs", codes.SCHED_PRIORITY_FCFS,
               "higher priority first, then arrival", needs=("id_rank",)),
        Policy("sjf", codes.SCHED_SJF, "shortest prompt first", needs=("id_rank",)),
        Policy("reverse-priority", codes.SCHED_REVERSE_PRIORITY,
               "lower priority first (pathological)", needs=("id_rank",)),
    ))
