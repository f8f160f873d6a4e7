"""Gateway flow control (kernel: ``kernels/gateway.py``): the llm-d gateway's queue between
admission and routing, as BLIS f90a1e3a models it (``sim/cluster/gateway_queue.go``,
``flow_control_admission.go``, ``sim/saturation.go``).  Four families: whether there is a
gateway queue (``--flow-control``, with the queue's capacities, timeout and shedding as its
parameters), the saturation detector that holds dispatch, the dispatch order across priority
bands, and the fairness between tenants within a band."""
from simulator.kernels import layout as L
from simulator.kernels import policy_codes as codes

from .declare import BOOL, FLOAT, INT, Family, Param, Policy

FLOW_CONTROL = Family(
    key="flow_control", label="flow control", default="off",
    help="a gateway queue with SLO priority bands between admission and routing",
    flag="flow-control", switch=("off", "gateway"), bundle=("flow_control", "policy"),
    gene="flow_control", slot=L.P_FC,
    policies=(
        Policy("off", codes.FC_OFF, "admitted requests go straight to the router"),
        Policy("gateway", codes.FC_GATEWAY,
               "admitted requests wait in a gateway queue, one band per SLO priority, and are "
               "dispatched while the saturation detector allows (BLIS f90a1e3a --flow-control)",
               params=(
                   Param("max_gateway_queue_depth", INT, 0, 0, 10_000_000, "requests",
                         "gateway queue capacity (0 = unlimited)", slot=L.P_FC_MAX_DEPTH,
                         reference=False),
                   Param("per_band_capacity", INT, 0, 0, 10_000_000, "requests",
                         "capacity of each priority band (0 = unlimited)", slot=L.P_FC_BAND_CAP,
                         reference=False),
                   Param("usage_limit_threshold", FLOAT, 1.0, 0.01, 1.0, "fraction",
                         "band i of n dispatches only while saturation < 1 - i(1-u)/(n-1) "
                         "(1 = every band up to saturation 1)", slot=L.PF_FC_USAGE,
                         reference=False),
                   Param("request_ttl", INT, 0, 0, 10 ** 12, "µs",
                         "longest wait in the gateway queue (0 = no limit)", slot=L.P_FC_TTL,
                         reference=False),
                   Param("dispatch_tick_interval", INT, 1000, 1, 10 ** 9, "µs",
                         "time between dispatch attempts while requests wait",
                         slot=L.P_FC_TICK, reference=False),
                   Param("queue_shedding", BOOL, 0, 0, 1, "switch",
                         "a full queue displaces its least urgent sheddable request for a more "
                         "urgent arrival", slot=L.P_FC_SHED, reference=False),
                   Param("in_flight_eviction", BOOL, 0, 0, 1, "switch",
                         "while saturated and an urgent request waits, evict a running or "
                         "queued sheddable request from its instance", slot=L.P_FC_EVICT,
                         reference=False),
               ), reference=False),
    ))

SATURATION_DETECTOR = Family(
    key="saturation_detector", label="saturation detector", default="never",
    help="when the gateway holds requests back (flow control)",
    flag="saturation-detector", bundle=("saturation_detector", "policy"),
    gene="saturation_detector", slot=L.P_FC_DETECTOR,
    policies=(
        Policy("never", codes.DETECT_NEVER, "never saturated: dispatch at once", reference=False),
        Policy("utilization", codes.DETECT_UTILIZATION,
               "saturated when the mean over instances of max(queue depth / "
               "queue_depth_threshold, KV utilisation / kv_cache_util_threshold) >= 1",
               params=(
                   Param("queue_depth_threshold", FLOAT, 5.0, 0.001, 1e6, "requests",
                         "queue depth at saturation", slot=L.PF_FC_QD, reference=False),
                   Param("kv_cache_util_threshold", FLOAT, 0.8, 0.001, 10.0, "fraction",
                         "KV utilisation at saturation", slot=L.PF_FC_KV, reference=False),
               ), reference=False),
        Policy("concurrency", codes.DETECT_CONCURRENCY,
               "saturated when the in-flight requests per instance reach max_concurrency",
               params=(
                   Param("max_concurrency", INT, 100, 1, 1_000_000, "requests",
                         "in-flight requests per instance at saturation", slot=L.P_FC_MAX_CONC,
                         reference=False),
               ), reference=False),
    ))

DISPATCH_ORDER = Family(
    key="dispatch_order", label="dispatch order", default="fifo",
    help="which waiting request the gateway dispatches next (flow control)",
    flag="dispatch-order", bundle=("dispatch_order",), gene="dispatch_order",
    slot=L.P_FC_ORDER,
    policies=(
        Policy("fifo", codes.ORDER_FIFO, "the earliest enqueued request of any band",
               reference=False),
        Policy("priority", codes.ORDER_PRIORITY,
               "the most urgent non-empty band first; within it, the fairness policy",
               reference=False),
        Policy("slo-deadline", codes.ORDER_SLO_DEADLINE,
               "as priority, then within the chosen flow the earliest deadline (enqueue time + "
               "its class's --slo-targets entry)", reference=False),
    ))

FAIRNESS = Family(
    key="fairness", label="fairness policy", default="global-strict",
    help="which tenant's flow a band serves next (flow control)",
    flag="fairness-policy", bundle=("fairness_policy",), gene="fairness", slot=L.P_FC_FAIR,
    policies=(
        Policy("global-strict", codes.FAIR_GLOBAL_STRICT,
               "the flow whose head was enqueued first", reference=False),
        Policy("round-robin", codes.FAIR_ROUND_ROBIN,
               "tenants in turn (in name order), skipping empty flows", reference=False),
    ))
