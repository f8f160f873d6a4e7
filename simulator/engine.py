"""``run``: the one entry point of the engine.

Builds the struct-of-arrays state for a cluster simulation, encodes the policy as integer codes
and float parameters, runs the numba event loop and packs the outcome into a ``SimResult``.
Nothing here loops over requests in Python except cheap one-off preparation.
"""
from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np
from numba import types
from numba.typed import Dict, List

from .autoscale.controller import run_autoscaled
from .codepolicy import compiled
from .errors import InputError
from .config import LatencyConfig, PolicyConfig, SimConfig
from .kernels import cluster as kc
from .kernels import layout as L
from .kernels.autoscale import LC_READY, LC_STOPPED
from .kernels.kvcache import cache_hit_rates
from .kernels.latency import LAT_BLACKBOX, LAT_KINDS
from .kernels.request_states import REQ_COMPLETED
from .kernels.state import State, pack_state
from .kernels.codefn import no_admit, no_priority, no_score
from .kernels.hashtable import new_table
from .kernels.hashing import FNV_OFFSET, SEED, aligned_block_hashes, full_input_hashes
from .disagg import disagg_params, pd_outcome, pool_rows
from .policies.registry import CODE_POLICY, code_of
from .policy_encoding import encode_policies, run_needs, scorer_table
from .result import SimResult
from .kernels.gateway import gw_initial
from .slo import V1_ALIASES, request_priorities
from .workload.types import Workload, workload_from_lists

_WARMUP_LATENCY = LatencyConfig(alpha=(1.0, 0.0, 1.0), beta=(100.0, 1.0, 1.0))

ROUTER_BLOCK = 16          # the reference's prefix scorer hashes 16-token blocks whatever the KV block size


def _kernel_state(st: State):
    """The state as the kernels take it: one StructRef over the same arrays (plain tuple when
    numba's JIT is disabled for debugging)."""
    if numba.config.DISABLE_JIT:
        return st
    return pack_state(*st)


def _salts(n: int, tag: int) -> np.ndarray:
    """Per-instance 64-bit salts so one hash map can serve all instances."""
    x = (np.arange(1, n + 1, dtype=np.uint64) + np.uint64(tag)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return x.view(np.int64)


def _ptr_from_counts(counts: np.ndarray) -> np.ndarray:
    ptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _id_string_ranks(n: int) -> np.ndarray:
    """Rank of "request_<i>" in string order (the reference breaks scheduler ties on ID strings)."""
    order = np.argsort(np.array([f"request_{i}" for i in range(n)]), kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n, dtype=np.int64)
    return ranks


def post_decode_us(lat: LatencyConfig) -> int:
    """Fixed overhead (µs) added once to the E2E of each completed request that produced output
    tokens: int(alpha1) for trained-physics (the reference's PostDecodeFixedOverhead), else 0.
    It does not delay the instance (the clock, and so the run's duration, are unchanged)."""
    if lat.kind != "trained-physics" or len(lat.alpha) < 2:
        return 0
    return int(lat.alpha[1])


def _param_arrays(cfg: SimConfig, policy: PolicyConfig, needs: frozenset[str]):
    """Encode the configuration as an int64 and a float64 parameter vector (layout.P_*, PF_*);
    the policies' codes and parameters come from their declarations (policy_encoding)."""
    lat = cfg.latency
    alpha = tuple(lat.alpha) + (0.0,) * max(0, 3 - len(lat.alpha))
    P = np.zeros(L.NP_, dtype=np.int64)
    PF = np.zeros(L.NPF, dtype=np.float64)
    encode_policies(policy, P, PF)
    P[L.P_BLOCK] = cfg.block_size
    P[L.P_TOTAL_BLOCKS] = cfg.total_kv_blocks
    P[L.P_MAX_RUNNING] = cfg.max_running_reqs
    P[L.P_MAX_SCHED] = cfg.max_scheduled_tokens
    P[L.P_LONG_THR] = cfg.long_prefill_token_threshold
    P[L.P_LAT_KIND] = LAT_KINDS.get(lat.kind, LAT_BLACKBOX)
    P[L.P_ALPHA2] = int(alpha[2])
    P[L.P_TP] = max(lat.tp, 1)
    P[L.P_CPU_BLOCKS] = cfg.kv_cpu_blocks
    P[L.P_BASE_LAT] = cfg.kv_transfer_base_latency
    P[L.P_LEGACY] = int(cfg.legacy_blis_quirks)
    P[L.P_HORIZON] = cfg.horizon
    P[L.P_ADM_LAT] = cfg.admission_latency
    P[L.P_RT_LAT] = cfg.routing_latency
    P[L.P_PREFIX_OBS] = int("prefix_index" in needs)
    P[L.P_REFRESH] = cfg.snapshot_refresh_interval
    P[L.P_TRACE] = int(cfg.trace_decisions)
    P[L.P_CF_K] = cfg.counterfactual_k
    P[L.P_N_INST] = cfg.num_instances
    P[L.P_LRU_CAP] = cfg.router_lru_capacity
    P[L.P_ROUTER_BLOCK] = ROUTER_BLOCK
    asc = policy.autoscaler
    if asc is not None:
        P[L.P_N_INST] = n_slots(cfg, policy)
        P[L.P_AS_ON] = 1
        P[L.P_DRAIN] = code_of("drain", asc.drain_policy)
        P[L.P_WARM_PROFILE] = code_of("warmup-profile", asc.warmup_profile)
        P[L.P_AS_QTRIG] = asc.trigger_load_per_replica
        P[L.P_AS_SLO_WIN] = asc.slo_trigger_window
        P[L.P_AS_SLO_TTFT] = int(math.floor(asc.slo_ttft_ms * 1e3))
        P[L.P_AS_SLO_MAXMISS] = asc.slo_trigger_max_misses()
    PF[L.PF_ALPHA0] = alpha[0]
    # trained-physics: alpha1 is a per-request post-decode overhead (added to E2E in _finish),
    # not a per-input-token queueing cost
    PF[L.PF_ALPHA1] = 0.0 if lat.kind == "trained-physics" else alpha[1]
    PF[L.PF_OFFLOAD_THR] = cfg.kv_offload_threshold
    PF[L.PF_BANDWIDTH] = cfg.kv_transfer_bandwidth
    PF[L.PF_WARM_PENALTY] = asc.warmup_penalty if asc is not None else 1.0
    return P, PF


def n_slots(cfg: SimConfig, policy: PolicyConfig) -> int:
    """Instance slots of a run: the cluster size, or max_replicas when autoscaled."""
    if policy.autoscaler is None:
        return cfg.num_instances
    return policy.autoscaler.max_replicas


def _needs(cfg: SimConfig, policy: PolicyConfig) -> frozenset[str]:
    """The per-run state the chosen policies need (``Policy.needs``), P/D decider and decode
    pool scorers included."""
    weighted = policy.routing == "weighted"
    scorers = [s.name for s in policy.scorers] if weighted else []
    extra = []
    dc = cfg.disaggregation
    if dc is not None:
        extra.append(("pd-decider", dc.decider))
        if weighted:
            scorers += [s.name for s in dc.decode_scorers]
    return run_needs(policy, scorers, extra)


def _code_functions(policy: PolicyConfig):
    """(score, admit, priority) functions for the kernels: the compiled code policy of each
    family set to "code", the never-called stand-in otherwise."""
    out = []
    for family, attr, stand_in in (("routing", "routing_code", no_score),
                                   ("admission", "admission_code", no_admit),
                                   ("priority", "priority_code", no_priority)):
        if getattr(policy, family) != CODE_POLICY:
            out.append(stand_in)
            continue
        code = getattr(policy, attr)
        if code is None or code.kind != family:
            raise ValueError(f"PolicyConfig.{family} is 'code' but {attr} is not a {family} "
                             "CodePolicy")
        out.append(compiled(code))
    return tuple(out)


def route_trace_capacity(cfg: SimConfig, n: int) -> int:
    """Initial room of the decision trace: one routing per request (1 when untraced); the
    kernel doubles it when drains re-route requests beyond that."""
    return max(n, 1) if cfg.trace_decisions else 1


def cluster_queue_capacity(n: int, slots: int, autoscaled: bool, slo_trigger: bool,
                           gateway: bool = False, gateway_ttl: bool = False) -> int:
    """Room the cluster event queue needs.  A request has at most one pending arrival, admission,
    routing or transfer event at a time (n); an autoscaled slot at most one lifecycle event (each
    transition schedules the next; cancels and restarts delete the slot's pending one); the SLO
    trigger adds one first-token event per request, ever (a first token is recorded once); the
    gateway one dispatch tick, and with a queue timeout one TTL event per request, ever."""
    return (n + 1 + (slots if autoscaled else 0) + (n if slo_trigger else 0)
            + (1 if gateway else 0) + (n if gateway_ttl else 0))


def _gateway_rows(cfg: SimConfig, policy: PolicyConfig, wl: Workload, R: np.ndarray,
                  P: np.ndarray):
    """SLO and tenant rows of the request table and the gateway / tenant-budget arrays.

    Tenants are coded by their rank in name order (the round-robin fairness order); the gateway
    has one band per distinct priority of the workload's requests, most urgent first."""
    n = wl.num_requests
    prio = request_priorities(wl.slo_class, wl.slo_names, n, policy.slo_priorities)
    R[L.R_SLO_PRIO] = prio
    names = tuple(wl.tenant_names) if wl.tenant is not None else ("",)
    order = sorted(range(len(names)), key=lambda k: names[k])
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names), dtype=np.int64)
    R[L.R_TENANT] = rank[np.asarray(wl.tenant, dtype=np.int64)] if wl.tenant is not None else 0
    nt = len(names)
    budgets = np.full(nt, -1.0, dtype=np.float64)
    for tenant, share in policy.tenant_budgets:
        if tenant in names:
            budgets[rank[names.index(tenant)]] = share
    P[L.P_TB_CAP] = max(cfg.num_instances * cfg.max_running_reqs, 1)
    if policy.tenant_budgets:
        P[L.P_TB_ON] = 1
    for row in (L.R_GW_ENQ, L.R_GW_DISP, L.R_GW_PREV, L.R_GW_NEXT):
        R[row] = -1
    bands = sorted(set(prio.tolist()), reverse=True) or [0]
    band_of = {p: b for b, p in enumerate(bands)}
    R[L.R_GW_BAND] = np.array([band_of[p] for p in prio.tolist()], dtype=np.int64)
    if policy.slo_targets:
        targets = dict(policy.slo_targets)
        per_class = [targets.get(s, targets.get(V1_ALIASES.get(s, s), 0)) for s in wl.slo_names]
        codes = (np.asarray(wl.slo_class, dtype=np.int64) if wl.slo_class is not None
                 else np.zeros(n, dtype=np.int64))
        R[L.R_SLO_TARGET] = np.asarray(per_class or [0], dtype=np.int64)[codes]
    P[L.P_FC_NBANDS] = len(bands)
    P[L.P_FC_NTEN] = nt
    return gw_initial(len(bands), nt), np.zeros(nt, dtype=np.int64), budgets


def build_state(cfg: SimConfig, policy: PolicyConfig, wl: Workload) -> State:
    """Allocate every array of a run (one allocator for all state, sized up front)."""
    n = wl.num_requests
    N = n_slots(cfg, policy)
    B = cfg.block_size
    TB = cfg.total_kv_blocks
    n_in = np.ascontiguousarray(wl.n_in, dtype=np.int64)
    n_out = np.ascontiguousarray(wl.n_out, dtype=np.int64)
    tok_ptr = np.ascontiguousarray(wl.token_ptr, dtype=np.int64)
    tokens = np.ascontiguousarray(wl.tokens, dtype=np.int32)

    sc_codes, sc_weights = scorer_table(policy)
    score_fn, admit_fn, prio_fn = _code_functions(policy)
    P, PF = _param_arrays(cfg, policy, _needs(cfg, policy))
    dsc_codes, dsc_weights = sc_codes, sc_weights
    if cfg.disaggregation is not None:
        dsc_codes, dsc_weights = disagg_params(cfg, policy, sc_codes, sc_weights, P, PF)
    lat = cfg.latency
    beta = np.asarray(tuple(lat.beta) + (0.0,) * max(0, 3 - len(lat.beta)), dtype=np.float64)
    rp = np.asarray(lat.roofline_params if lat.roofline_params else (0.0,), dtype=np.float64)

    kvh_ptr = _ptr_from_counts(n_in // B)
    kvh = aligned_block_hashes(tokens, tok_ptr, n_in, np.int64(B), kvh_ptr)
    if P[L.P_PREFIX_OBS]:
        if B == ROUTER_BLOCK:
            rh_ptr, rh = kvh_ptr, kvh
        else:
            rh_ptr = _ptr_from_counts(n_in // ROUTER_BLOCK)
            rh = aligned_block_hashes(tokens, tok_ptr, n_in, np.int64(ROUTER_BLOCK), rh_ptr)
    else:
        rh_ptr, rh = np.zeros(n + 1, dtype=np.int64), np.zeros(1, dtype=np.int64)

    R = np.zeros((L.NR, n), dtype=np.int64)
    R[L.R_ARRIVAL] = wl.arrival_us
    R[L.R_N_IN] = n_in
    R[L.R_N_OUT] = n_out
    R[L.R_TOK_PTR] = tok_ptr[:n]
    R[L.R_KVH_PTR] = kvh_ptr[:n]
    R[L.R_RH_PTR] = rh_ptr[:n]
    gw, ten, gwf = _gateway_rows(cfg, policy, wl, R, P)
    needs = _needs(cfg, policy)
    if "full_hash" in needs:
        R[L.R_FULL_HASH] = full_input_hashes(tokens, tok_ptr, n_in, np.int64(B), kvh, kvh_ptr)
    if "id_rank" in needs:
        R[L.R_ID_RANK] = _id_string_ranks(n)
    for row in (L.R_INST, L.R_TTFT, L.R_ROUTED, L.R_QUEUED, L.R_SCHED, L.R_FIRST, L.R_DONE,
                L.R_SCHED_DELAY, L.R_SEG_FROM, L.R_LAST_EMIT, L.R_LAST_EMIT_STEP,
                L.R_PD_PREFILL, L.R_PD_DECODE, L.R_XF_ARRIVE, L.R_PF_DONE, L.R_PF_FREE,
                L.R_DC_ADMIT):
        R[row] = -1
    R[L.R_CH_H] = SEED
    R[L.R_CH_ACC] = FNV_OFFSET
    bl_cap = (n_in + n_out + B - 1) // B + 2
    bl_ptr = _ptr_from_counts(bl_cap)
    R[L.R_BL_START] = bl_ptr[:n]
    R[L.R_BL_CAP] = bl_cap
    arena_size = int(bl_ptr[-1])
    arena = List()
    arena.append(np.empty(arena_size + arena_size // 4 + 1024, dtype=np.int64))

    I = np.zeros((L.NI, N), dtype=np.int64)
    I[L.I_FREE_HEAD] = np.arange(N, dtype=np.int64) * TB
    I[L.I_FREE_TAIL] = I[L.I_FREE_HEAD] + TB - 1
    I[L.I_NEXT_T] = L.INT64_MAX
    I[L.I_LRU_HEAD] = -1
    I[L.I_LRU_TAIL] = -1
    I[L.I_ROUTABLE] = 1
    if cfg.disaggregation is not None:
        I[L.I_POOL] = pool_rows(cfg.disaggregation)
    I[L.I_KV_SALT] = _salts(N, 1)
    I[L.I_PX_SALT] = _salts(N, 7)
    I[L.I_LC] = LC_READY
    I[L.I_LC_STOP_T] = -1
    if policy.autoscaler is not None:  # spare slots start STOPPED
        up = policy.autoscaler.initial(cfg.num_instances)
        I[L.I_LC, up:] = LC_STOPPED
        I[L.I_ROUTABLE, up:] = 0
    bcap = int(min(cfg.max_running_reqs, max(n, 1))) + 1

    nb = N * TB
    KB = np.zeros((L.NKB, nb), dtype=np.int32)
    local = np.arange(nb, dtype=np.int64) % TB
    KB[L.KB_PREV] = np.where(local == 0, -1, np.arange(nb) - 1)
    KB[L.KB_NEXT] = np.where(local == TB - 1, -1, np.arange(nb) + 1)
    ncpu = nb if cfg.kv_cpu_blocks > 0 else 1

    width = max(int(n_in.max()) // B + 3 if n else 3, bcap)
    ev_cap = int(min(n, 1024)) + 3 * (bcap + 2) + 8
    EVH, WQ, SLOG, SEGS = List(), List(), List(), List()
    for _ in range(N):
        EVH.append(np.zeros((2, ev_cap), dtype=np.int64))
        WQ.append(np.zeros(64, dtype=np.int64))
        SLOG.append(np.zeros(1024, dtype=np.int64))
    SEGS.append(np.zeros((max(n, 16), 5), dtype=np.int64))
    lru_nodes = N * cfg.router_lru_capacity if P[L.P_PREFIX_OBS] else 1
    PXA = np.full((3, lru_nodes), -1, dtype=np.int64)
    CL = np.zeros(L.NCL + P[L.P_AS_SLO_WIN], dtype=np.int64)  # + the SLO trigger's ring
    CL[L.CL_ARENA_TOP] = arena_size
    CL[L.CL_WAIT_HEAD] = -1
    CL[L.CL_WAIT_TAIL] = -1
    ROUTES = List()   # decision trace: row 0 target instance, row 1 regret (grows when full)
    ROUTES.append(np.zeros((2, route_trace_capacity(cfg, n)), dtype=np.float64))
    ce_cap = cluster_queue_capacity(n, N, policy.autoscaler is not None, bool(P[L.P_AS_SLO_WIN]),
                                    bool(P[L.P_FC]), bool(P[L.P_FC] and P[L.P_FC_TTL] > 0))
    return State(
        R=R, RF=np.zeros(n, dtype=np.float64), TOK=tokens, KVH=kvh, RH=rh,
        I=I, IF=np.zeros((L.NIF, N), dtype=np.float64),
        BATCH=np.zeros((N, bcap), dtype=np.int64), KB=KB, BH=np.zeros(nb, dtype=np.int64),
        CPU=np.zeros((L.NCPU, ncpu), dtype=np.int64),
        HT=new_table(min(nb, int(bl_cap.sum()) + 64)),
        P=P, PF=PF, BETA=beta, RP=rp, SCODES=sc_codes, SWEIGHTS=sc_weights,
        SC=np.zeros((L.NSC, width), dtype=np.int64), SCF=np.zeros((2, N), dtype=np.float64),
        EVH=EVH, WQ=WQ, SLOG=SLOG, SEGS=SEGS, ARENA=arena,
        PXT=new_table(lru_nodes), PXA=PXA,
        CE=np.zeros((4, ce_cap), dtype=np.int64), CL=CL, CLF=np.zeros(L.NCLF, dtype=np.float64),
        AFFINITY=Dict.empty(types.int64, types.int64),
        ROUTES=ROUTES,
        CAND=np.zeros(N, dtype=np.int64), DSCODES=dsc_codes, DSWEIGHTS=dsc_weights,
        GW=gw, TEN=ten, GWF=gwf,
        SCORE_FN=score_fn, ADMIT_FN=admit_fn, PRIO_FN=prio_fn)


def _finish(st: State, kst, cfg: SimConfig, wl: Workload) -> SimResult:
    R, I = st.R, st.I
    N = int(st.P[L.P_N_INST])
    itl_v, itl_c, itl_i = kc.collect_itl(kst)
    state = R[L.R_STATE].astype(np.int8)
    completed = state == REQ_COMPLETED
    ttft_i = R[L.R_TTFT]
    ttft = np.where(ttft_i >= 0, ttft_i.astype(np.float64), np.nan)
    n_out = R[L.R_N_OUT]
    e2e_i = ttft_i + R[L.R_ITL_SUM]
    post = post_decode_us(cfg.latency)
    if post:
        e2e_i = e2e_i + np.where(n_out > 0, np.int64(post), np.int64(0))
    e2e = np.where(completed, e2e_i.astype(np.float64), np.nan)
    denom = np.maximum(n_out - 1, 1).astype(np.float64)
    itl_sum = R[L.R_ITL_SUM].astype(np.float64)  # without the post-decode overhead, as the reference
    itl = np.where(completed, np.where(n_out > 0, itl_sum / denom, 0.0), np.nan)
    hit_rate = cache_hit_rates(kst)
    thrash = np.where(I[L.I_OFFLOADS] > 0, I[L.I_THRASH] / np.maximum(I[L.I_OFFLOADS], 1), 0.0)
    n_routes = int(st.CL[L.CL_NROUTES])
    routes = st.ROUTES[0]
    return SimResult(
        n_in=R[L.R_N_IN].copy(), n_out=n_out.copy(), req_state=state,
        req_instance=R[L.R_INST].copy(), arrival_us=R[L.R_ARRIVAL].copy(),
        routed_us=R[L.R_ROUTED].copy(), queued_us=R[L.R_QUEUED].copy(),
        scheduled_us=R[L.R_SCHED].copy(), first_token_us=R[L.R_FIRST].copy(),
        done_us=R[L.R_DONE].copy(), ttft_us=ttft, e2e_us=e2e, itl_us=itl,
        sched_delay_us=R[L.R_SCHED_DELAY].copy(), preemptions=R[L.R_PREEMPTS].copy(),
        inst_completed=I[L.I_COMPLETED].copy(), inst_still_queued=I[L.I_WQ_LEN].copy(),
        inst_still_running=I[L.I_BATCH_LEN].copy(), inst_dropped=I[L.I_DROPPED].copy(),
        inst_input_tokens=I[L.I_IN_TOKENS].copy(), inst_output_tokens=I[L.I_OUT_TOKENS].copy(),
        inst_sim_ended_us=np.minimum(I[L.I_CLOCK], np.int64(cfg.horizon)),
        inst_preemptions=I[L.I_PREEMPTS].copy(), inst_kv_alloc_failures=I[L.I_ALLOC_FAIL].copy(),
        inst_cache_hit_rate=hit_rate, inst_kv_thrashing_rate=thrash,
        inst_peak_kv_blocks=I[L.I_PEAK_KV].copy(), inst_kv_block_us=st.IF[L.IF_KV_INTEGRAL].copy(),
        inst_steps=I[L.I_STEPS].copy(), inst_waitq_sum=I[L.I_WAITQ_SUM].copy(),
        itl_values_us=itl_v, itl_counts=itl_c, itl_instance=itl_i,
        rejected=int(st.CL[L.CL_REJECTED]), admitted=int(st.CL[L.CL_ADMITTED]),
        route_target=routes[0, :n_routes].astype(np.int32),
        route_regret=routes[1, :n_routes].copy(),
        trace_on=bool(cfg.trace_decisions), num_instances=N,
        code_nonfinite=int(st.CL[L.CL_CODE_NONFINITE]),
        slo_class=wl.slo_class, slo_names=wl.slo_names, tenant=wl.tenant,
        tenant_names=wl.tenant_names, pd=pd_outcome(st, cfg),
        slo_priority=R[L.R_SLO_PRIO].copy(), **_gateway_outcome(st))


def _gateway_outcome(st: State) -> dict:
    """The gateway's per-request times and counters (only when flow control or tenant budgets
    were on)."""
    P, R, CL = st.P, st.R, st.CL
    if not P[L.P_FC] and not P[L.P_TB_ON]:
        return {}
    return dict(
        gw_enqueued_us=R[L.R_GW_ENQ].copy(), gw_dispatched_us=R[L.R_GW_DISP].copy(),
        gateway={"peak_depth": int(CL[L.CL_GW_PEAK]), "still_queued": int(CL[L.CL_GW_LEN]),
                 "shed": int(CL[L.CL_GW_SHED]), "rejected": int(CL[L.CL_GW_REJECTED]),
                 "expired": int(CL[L.CL_GW_EXPIRED]), "evicted": int(CL[L.CL_GW_EVICTED]),
                 "budget_shed": int(CL[L.CL_TB_SHED])})


def _check_context(lat: LatencyConfig, workload: Workload) -> None:
    """Reject a prompt longer than the model's context (when the latency model knows it)."""
    ctx = int(lat.context_tokens)
    if ctx <= 0 or workload.num_requests == 0:
        return
    n_in = np.asarray(workload.n_in)
    i = int(np.argmax(n_in))
    if n_in[i] > ctx:
        raise InputError(f"request_{i} has a {int(n_in[i])}-token prompt, longer than the model's "
                         f"{ctx}-token context (max_position_embeddings of its config; "
                         f"--max-model-len overrides it); shorten the prompts")


def run_with_state(cfg: SimConfig, policy: PolicyConfig, workload: Workload):
    """Like ``run`` but also returns the final kernel state, for invariant checks in tests."""
    if policy.autoscaler is not None and cfg.disaggregation is not None:
        raise InputError("autoscaler: autoscaling applies to monolithic deployments; "
                         "disaggregated (P/D) pools have fixed sizes")
    _check_context(cfg.latency, workload)
    st = build_state(cfg, policy, workload)
    kst = _kernel_state(st)
    if policy.autoscaler is None:
        kc.run_loop(kst)
        return _finish(st, kst, cfg, workload), st
    outcome = run_autoscaled(st, kst, cfg, policy.autoscaler)
    return dataclasses.replace(_finish(st, kst, cfg, workload), autoscale=outcome), st


def run(cfg: SimConfig, policy: PolicyConfig, workload: Workload) -> SimResult:
    """Simulate ``workload`` on a cluster configured by ``cfg`` under ``policy``.

    Pure: no I/O, no global state; the same inputs give identical outputs.
    """
    return run_with_state(cfg, policy, workload)[0]


def warmup() -> None:
    """Load (or compile) every kernel once with a two-request run, so later timings and
    evaluations exclude JIT loading.  Kernel types do not depend on the policy or config."""
    wl = workload_from_lists([0, 5], [[1] * 20, [2] * 40], [[3] * 3, [4] * 2])
    run_with_state(SimConfig(total_kv_blocks=64, latency=_WARMUP_LATENCY), PolicyConfig(), wl)
