"""Row indices of the packed state arrays.

State is struct-of-arrays packed by dtype into a few 2-D arrays (one row per field), so the
kernels pass a small tuple: numba's compile time grows steeply with the number of arrays in a
tuple argument.  ``R[FIELD, r]`` is request r's field, ``I[FIELD, i]`` instance i's.
"""

INT64_MAX = 2**63 - 1   # "never": I_NEXT_T of an instance with no pending event, the default horizon

# R: int64 (NR, n_requests)
R_ARRIVAL = 0
R_N_IN = 1
R_N_OUT = 2
R_TOK_PTR = 3        # start of the request's tokens (input ids then output ids) in TOK
R_KVH_PTR = 4        # start of its input-prefix block hashes (KV block size) in KVH
R_RH_PTR = 5         # start of its 16-token router block hashes in RH
R_FULL_HASH = 6      # hash of the whole input (prefix-affinity policy key)
R_ID_RANK = 7        # rank of "request_<r>" in string order (scheduler tie-break)
R_STATE = 8          # REQ_* (kernels/request_states.py)
R_INST = 9
R_PI = 10            # progress index: input tokens processed + outputs generated
R_NUM_NEW = 11       # tokens scheduled in the last step it was scheduled
R_COMPUTED = 12      # tokens computed once this step executes
R_HWM = 13           # highest progress index reached (outputs are counted once)
R_TTFT = 14          # µs, -1 until the first token
R_ITL_SUM = 15
R_ROUTED = 16
R_QUEUED = 17
R_SCHED = 18
R_FIRST = 19
R_DONE = 20
R_SCHED_DELAY = 21
R_PREEMPTS = 22
R_SEG_FROM = 23      # first step index of the current run of consecutive decode steps
R_LAST_EMIT = 24     # sim time its last token was produced
R_LAST_EMIT_STEP = 25
R_CH_H = 26          # rolling hash of the tokens stored in its KV blocks
R_CH_ACC = 27
R_CH_LEN = 28
R_BL_START = 29      # its block list in the arena
R_BL_LEN = 30
R_BL_CAP = 31
# -- P/D disaggregation (kernels/disagg.py); all -1 / 0 for a monolithic request
R_PD = 32            # P/D phase (disagg.PD_*), 0 = served on one instance
R_PD_PREFILL = 33    # prefill instance chosen by the router (-1)
R_PD_DECODE = 34     # decode instance chosen by the router (-1)
R_XF_SENT = 35       # KV blocks put on the transfer link so far
R_XF_ARRIVE = 36     # arrival time of the last block put on the link
R_PF_DONE = 37       # time its prefill finished on the prefill instance (-1)
R_PF_FREE = 38       # time the prefill instance released its blocks (-1)
R_DC_ADMIT = 39      # time the decode instance admitted it and allocated its blocks (-1)
R_WAIT_NEXT = 40    # next request in the router wait list (autoscaling: no routable instance)
R_SLO_PRIO = 41     # SLO-tier priority of its class (simulator/slo.py; < 0 = sheddable)
R_TENANT = 42       # tenant code (index into the workload's tenant names)
R_GW_BAND = 43      # its gateway priority band (0 = most urgent; kernels/gateway.py)
R_GW_ENQ = 44       # time it entered the gateway queue (-1 never)
R_GW_DISP = 45      # time the gateway dispatched it to the router (-1 never)
R_GW_SEQ = 46       # gateway enqueue sequence number (1, 2, ...)
R_GW_PREV = 47      # previous / next request of its flow (band x tenant), -1 none
R_GW_NEXT = 48
R_SLO_TARGET = 49   # µs its class may wait (--slo-targets; slo-deadline order), 0 = none
NR = 50

# I: int64 (NI, n_instances)
I_CLOCK = 0
I_EV_SIZE = 1
I_STEP_PENDING = 2
I_STEPS = 3
I_WAITQ_SUM = 4
I_COMPLETED = 5
I_DROPPED = 6
I_IN_TOKENS = 7
I_OUT_TOKENS = 8
I_PREEMPTS = 9
I_ALLOC_FAIL = 10
I_PEAK_KV = 11
I_PENDING = 12
I_WQ_HEAD = 13
I_WQ_LEN = 14
I_BATCH_LEN = 15
I_USED = 16
I_FREE_HEAD = 17
I_FREE_TAIL = 18
I_HITS = 19
I_MISSES = 20
I_CPU_USED = 21
I_CPU_HITS = 22
I_CPU_MISS = 23
I_THRASH = 24
I_OFFLOADS = 25
I_PEND_LAT = 26
I_KV_CLOCK = 27
I_SNAP_FREE = 28
I_SNAP_LAST = 29
I_LRU_HEAD = 30
I_LRU_TAIL = 31
I_LRU_SIZE = 32
I_KV_SALT = 33
I_PX_SALT = 34
I_NEXT_T = 35      # time of the instance's earliest pending event (INT64_MAX if none)
I_ROUTABLE = 36    # 1 while the router may send it new requests
I_POOL = 37        # P/D pool: 0 monolithic, 1 prefill, 2 decode (disagg.POOL_*)
# lifecycle (autoscaling; kernels/autoscale.py)
I_LC = 38          # lifecycle state LC_* (initial instances READY, spare slots STOPPED)
I_LC_EPOCH = 39    # bumped when a start is cancelled: stale lifecycle events are ignored
I_WARM_FROM = 40   # time the instance became routable (warmup penalty starts)
I_WARM_END = 41    # time the warmup penalty ends (READY); 0 = never warming
I_LC_STOP_T = 42   # time of its last transition to STOPPED (-1 never)
I_LC_SEQ = 43      # first of the 3 cluster-event sequence numbers its current start reserved
NI = 44

# IF: float64 (NIF, n_instances)
IF_KV_INTEGRAL = 0
IF_SNAP_UTIL = 1
IF_SNAP_HIT = 2
NIF = 3

# KB: int32 (NKB, n_instances * total_kv_blocks) per-block fields
KB_REF = 0
KB_NTOK = 1
KB_PREV = 2
KB_NEXT = 3
KB_INUSE = 4
NKB = 5

# CPU: int64 (NCPU, blocks) CPU-tier copy keyed by original GPU block id
CPU_HAS = 0
CPU_HASH = 1
CPU_TIME = 2
CPU_NTOK = 3
NCPU = 4

# P: int64 parameters
P_BLOCK = 0
P_TOTAL_BLOCKS = 1
P_MAX_RUNNING = 2
P_MAX_SCHED = 3
P_LONG_THR = 4
P_LAT_KIND = 5       # LAT_* (kernels/latency.py)
P_ALPHA2 = 6
P_TP = 7
P_CPU_BLOCKS = 8
P_BASE_LAT = 9
P_LEGACY = 10
P_HORIZON = 11
P_ADMISSION = 12     # ADMIT_* (kernels/policy_codes.py, like the other policy codes)
P_ADM_LAT = 13
P_RT_LAT = 14
P_ROUTING = 15       # ROUTE_*
P_PREFIX_OBS = 16
P_PRIO = 17          # PRIO_*
P_SCHED = 18         # SCHED_*
P_REFRESH = 19
P_TRACE = 20
P_CF_K = 21
P_N_INST = 22
P_LRU_CAP = 23
P_ROUTER_BLOCK = 24
P_PD = 25            # 1 when the deployment is disaggregated (kernels/disagg.py)
P_PD_DECIDER = 26    # PD_DECIDE_*
P_PD_THRESH = 27     # prefix-threshold decider: disaggregate when uncached tokens > this
P_PD_PIPELINE = 28   # 1: blocks are sent as prefill chunks complete
P_PD_GRAN = 29       # 0 whole request, 1 per block
P_PD_XF_BASE = 30    # µs added to every transfer unit's arrival
P_PD_BP_THRESH = 31  # backpressure when the decode transfer queue holds >= this (0 = off)
P_PD_BP_RETRY = 32   # µs between prefill routing retries of a throttled request
P_AS_ON = 33         # 1 when the autoscaler drives the lifecycle
P_DRAIN = 34         # drain mode DRAIN_* (kernels/autoscale.py)
P_WARM_PROFILE = 35  # warmup profile WARM_* (kernels/warmup.py)
P_AS_QTRIG = 36      # event trigger: load per routable instance that stops the loop (0 = off)
P_AS_SLO_WIN = 37    # SLO trigger: window of last first tokens (0 = off; kernels/autoscale.py)
P_AS_SLO_TTFT = 38   # SLO trigger: TTFT target, µs (a first token misses when TTFT > this)
P_AS_SLO_MAXMISS = 39  # SLO trigger: most misses in a full window that still meet the target
P_PREEMPT = 40       # preemption policy PREEMPT_* (kernels/instance.py _preempt_for)
P_TS_THRESH = 41     # tier-shed admission: instance load (queued + running + routed) above which it sheds
P_TS_MINPRIO = 42    # tier-shed admission: lowest SLO priority admitted while overloaded
P_FC = 43            # flow control FC_* (kernels/gateway.py)
P_FC_DETECTOR = 44   # saturation detector DETECT_*
P_FC_ORDER = 45      # dispatch order ORDER_*
P_FC_FAIR = 46       # fairness FAIR_*
P_FC_MAX_DEPTH = 47  # gateway queue capacity (0 = unlimited)
P_FC_BAND_CAP = 48   # per-band capacity (0 = unlimited)
P_FC_SHED = 49       # 1: a full queue sheds its least urgent sheddable request for a more urgent one
P_FC_EVICT = 50      # 1: while saturated, evict in-flight sheddable requests for waiting urgent ones
P_FC_TTL = 51        # µs a request may wait in the gateway queue (0 = no limit)
P_FC_TICK = 52       # µs between dispatch attempts while the queue is not empty
P_FC_MAX_CONC = 53   # concurrency detector: in-flight requests per instance at saturation
P_FC_NBANDS = 54     # priority bands (the distinct priorities of the workload's classes)
P_FC_NTEN = 55       # tenants (one flow per band and tenant)
P_TB_ON = 56         # 1: tenant budgets (GWF holds each tenant's share of capacity)
P_TB_CAP = 57        # capacity the shares are of: instances x max running requests
NP_ = 58

# PF: float64 parameters
PF_ALPHA0 = 0
PF_ALPHA1 = 1
PF_OFFLOAD_THR = 2
PF_BANDWIDTH = 3
PF_TB_CAP = 4
PF_TB_RATE = 5
PF_PD_BLOCK_BYTES = 6  # KV bytes of one block
PF_PD_BW = 7           # transfer link bandwidth, bytes per µs
PF_WARM_PENALTY = 8  # step-time multiplier when warmup starts (1 = none)
PF_GAIE_QD = 9       # gaie-legacy admission: queue depth at saturation
PF_GAIE_KV = 10      # gaie-legacy admission: KV utilisation at saturation
PF_FC_QD = 11        # utilization detector: queue depth at saturation
PF_FC_KV = 12        # utilization detector: KV utilisation at saturation
PF_FC_USAGE = 13     # usage-limit threshold u: band i of n dispatches while saturation < 1 - i(1-u)/(n-1)
NPF = 14

# SC: int64 scratch rows (NSC, width)
SC_CACHED = 0
SC_CACHED2 = 1
SC_CM_BLK = 2
SC_CM_WAS = 3
SC_NA_BLK = 4
SC_NA_ORIG = 5
SC_PF_PI = 6
SC_PF_N = 7
SC_DC_PI = 8
SC_DC_N = 9
NSC = 10

# SCF: float64 scratch rows (2, n_instances)
SCF_SCORES = 0
SCF_DIM = 1

# PX: int64 router prefix-index nodes (3, n_instances * lru_capacity)
PX_HASH = 0
PX_PREV = 1
PX_NEXT = 2

# CE: int64 cluster event heap (4, capacity)
CE_TIME = 0
CE_PRIO = 1
CE_SEQ = 2
CE_REQ = 3

# CL: int64 cluster scalars; CLF float64
CL_SEQ = 0
CL_NSEGS = 1
CL_RR = 2
CL_REJECTED = 3
CL_NROUTES = 4
CL_CSIZE = 5
CL_ARENA_TOP = 6
CL_ADMITTED = 7
CL_LAST_T = 8        # time of the last processed event
CL_CLOCK_REGRESS = 9  # events processed earlier than their predecessor (must stay 0)
CL_XF_LINK_FREE = 10  # P/D: time the shared transfer link becomes free
CL_XF_Q = 11          # P/D: requests prefilled but not yet admitted by their decode instance
CL_PD_BP = 12         # P/D: requests throttled by backpressure (pd_backpressure anomaly)
CL_XF_N = 13          # P/D: completed transfers
CL_XF_BLOCKS = 14     # P/D: blocks transferred
CL_XF_TIME = 15       # P/D: sum over transfers of (arrival - prefill end), µs
CL_PD_DISAGG = 16     # P/D: requests routed disaggregated
CL_CODE_NONFINITE = 17  # NaN/inf values returned by code policies (scores and priorities)
CL_WAIT_HEAD = 18    # router wait list (requests parked while no instance is routable)
CL_WAIT_TAIL = 19
CL_WAIT_LEN = 20
CL_PARKED = 21       # requests ever parked
CL_REROUTED = 22     # requests sent back to the router by a drain
CL_BAD_ROUTE = 23    # routings to an instance not WARMING/READY (must stay 0)
CL_TRIG = 24         # 1 while the queue trigger is above its threshold
CL_SLO_SEEN = 25     # SLO trigger: first tokens counted so far
CL_SLO_MISS = 26     # SLO trigger: misses among the last min(seen, window) first tokens
CL_SLO_TRIG = 27     # 1 while the SLO trigger's attainment is below its target
CL_RR_PREFILL = 28   # P/D: round-robin counter of the prefill pool (CL_RR serves the others)
CL_GW_LEN = 29       # gateway (kernels/gateway.py): requests in the queue
CL_GW_PEAK = 30      # most requests ever in the queue
CL_GW_SEQ = 31       # last enqueue sequence number
CL_GW_TICK = 32      # 1 while a dispatch tick is scheduled
CL_GW_SHED = 33      # queued sheddable requests displaced by a more urgent arrival (queue full)
CL_GW_REJECTED = 34  # arrivals refused because the queue or their band was full
CL_GW_EXPIRED = 35   # requests that waited longer than --request-ttl
CL_GW_EVICTED = 36   # in-flight sheddable requests evicted from their instance
CL_TB_SHED = 37      # requests rejected by their tenant's budget
NCL = 38
CL_SLO_RING = NCL    # SLO trigger: CL[NCL : NCL + window] is its ring of miss bits (CL is
                     # allocated that much longer when the trigger is on)
CLF_TOKENS = 0
CLF_LAST_REFILL = 1
NCLF = 2
