"""Integer codes shared by the Python side and the numba kernels (policies, events, states)."""

# Admission policies
ADMIT_ALWAYS = 0
ADMIT_TOKEN_BUCKET = 1
ADMIT_REJECT_ALL = 2
ADMIT_CODE = 3          # user code policy (simulator.codepolicy)

# Routing policies
ROUTE_ROUND_ROBIN = 0
ROUTE_LEAST_LOADED = 1
ROUTE_WEIGHTED = 2
ROUTE_PREFIX_AFFINITY = 3
ROUTE_ALWAYS_BUSIEST = 4
ROUTE_CODE = 5          # user code policy: argmax of score() per instance

# Weighted-routing scorers (index into the scorer table of kernels/scorers.py)
SCORER_PREFIX_AFFINITY = 0
SCORER_QUEUE_DEPTH = 1
SCORER_KV_UTILIZATION = 2
SCORER_LOAD_BALANCE = 3
NUM_SCORERS = 4

# Priority policies
PRIO_CONSTANT = 0
PRIO_SLO_BASED = 1
PRIO_INVERTED_SLO = 2
PRIO_CODE = 3           # user code policy

# Instance schedulers (wait-queue ordering)
SCHED_FCFS = 0
SCHED_PRIORITY_FCFS = 1
SCHED_SJF = 2
SCHED_REVERSE_PRIORITY = 3

# Latency models
LAT_BLACKBOX = 0
LAT_ROOFLINE = 1

# P/D disaggregation deciders (kernels/disagg.py)
PD_DECIDE_ALWAYS = 0
PD_DECIDE_NEVER = 1
PD_DECIDE_PREFIX_THRESHOLD = 2

# Instance lifecycle (autoscaling).  Routable (may receive new requests): WARMING and READY.
LC_STOPPED = 0
LC_PROVISIONING = 1
LC_LOADING = 2
LC_WARMING = 3        # serving, step times carry the warmup penalty
LC_READY = 4
LC_DRAINING = 5       # serves what it holds, receives nothing new
LC_NAMES = ("stopped", "provisioning", "loading", "warming", "ready", "draining")

# Drain modes (scale-down)
DRAIN_WAIT = 0        # finish queued and running requests
DRAIN_IMMEDIATE = 1   # queued and running requests go back to the router (progress reset)
DRAIN_REDIRECT = 2    # queued requests go back to the router, running ones finish

# Warmup profiles (step-time multiplier decaying from the penalty to 1 over the warmup)
WARM_LINEAR = 0
WARM_EXPONENTIAL = 1
WARM_STEP = 2
