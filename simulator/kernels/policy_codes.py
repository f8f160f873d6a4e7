"""Integer codes of the built-in policies, as the kernels dispatch on them.

One table per policy family: admission (sim/admission.go), routing (sim/routing.go), weighted-
routing scorers (sim/routing_scorers.go, sim/routing_prefix_scorer.go), priority (sim/priority.go)
and instance schedulers (sim/scheduler.go) of the reference at BLIS cbb0de7b, plus the P/D
disaggregation deciders (kernels/disagg.py) and the user code policies (simulator.codepolicy).

The engine writes these codes into the parameter vector ``P`` (kernels/layout.py ``P_ADMISSION``,
``P_ROUTING``, ``P_PRIO``, ``P_SCHED``, ``P_PD_DECIDER``) and the scorer table; the kernels
(kernels/cluster.py, kernels/instance.py) branch on them.  The names that select them live with
the policy declarations on the Python side, which import the codes from here.
"""

# Admission policies (kernels/cluster.py ``admit``)
ADMIT_ALWAYS = 0
ADMIT_TOKEN_BUCKET = 1
ADMIT_REJECT_ALL = 2
ADMIT_CODE = 3          # user code policy (simulator.codepolicy)
ADMIT_TIER_SHED = 4     # BLIS f90a1e3a sim/admission.go TierShedAdmission
ADMIT_GAIE_LEGACY = 5   # BLIS f90a1e3a sim/admission.go GAIELegacyAdmission

# Routing policies (kernels/cluster.py ``route``)
ROUTE_ROUND_ROBIN = 0
ROUTE_LEAST_LOADED = 1
ROUTE_WEIGHTED = 2
ROUTE_PREFIX_AFFINITY = 3
ROUTE_ALWAYS_BUSIEST = 4
ROUTE_CODE = 5          # user code policy: argmax of score() per instance

# Weighted-routing scorers (kernels/cluster.py ``score_dimension``; the engine's scorer table
# holds one code per scorer of the profile)
SCORER_PREFIX_AFFINITY = 0
SCORER_QUEUE_DEPTH = 1
SCORER_KV_UTILIZATION = 2
SCORER_LOAD_BALANCE = 3

# Priority policies (kernels/instance.py ``priority_of``)
PRIO_CONSTANT = 0
PRIO_SLO_BASED = 1
PRIO_INVERTED_SLO = 2
PRIO_CODE = 3           # user code policy
PRIO_SLO_TIER = 4       # SLO tier first, then age (simulator/slo.py)

# Instance schedulers: wait-queue ordering (kernels/instance.py ``order_queue``)
SCHED_FCFS = 0
SCHED_PRIORITY_FCFS = 1
SCHED_SJF = 2
SCHED_REVERSE_PRIORITY = 3

# Preemption policies: the running request evicted when KV allocation fails
# (kernels/instance.py ``_preempt_for``; BLIS f90a1e3a sim/batch_formation.go)
PREEMPT_FCFS = 0        # the batch tail (the reference at cbb0de7b)
PREEMPT_PRIORITY = 1    # the least urgent SLO tier, then the newest arrival

# Gateway flow control (kernels/gateway.py; BLIS f90a1e3a sim/cluster/gateway_queue.go)
FC_OFF = 0              # no gateway queue: admission -> routing directly
FC_GATEWAY = 1          # a gateway queue with priority bands between admission and routing
DETECT_NEVER = 0        # saturation detectors (sim/saturation.go)
DETECT_UTILIZATION = 1
DETECT_CONCURRENCY = 2
ORDER_FIFO = 0          # dispatch orders
ORDER_PRIORITY = 1
ORDER_SLO_DEADLINE = 2
FAIR_GLOBAL_STRICT = 0  # fairness between the tenants' flows of a band
FAIR_ROUND_ROBIN = 1

# P/D disaggregation deciders (kernels/cluster.py ``route_pd``)
PD_DECIDE_ALWAYS = 0
PD_DECIDE_NEVER = 1
PD_DECIDE_PREFIX_THRESHOLD = 2
