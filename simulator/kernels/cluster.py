"""Cluster control plane and the shared-clock event loop.

Port of sim/cluster/cluster.go, cluster_event.go, snapshot.go, counterfactual.go and
sim/admission.go, sim/routing.go, sim/routing_scorers.go, sim/routing_prefix_scorer.go,
sim/prefix_cache_index.go @cbb0de7b.

Cluster events (arrival -> admission -> routing) are ordered by (time, kind, seq); at equal times
they run before instance events; among instances the earliest event wins, ties to the lowest
index.  The loop stops at the first event later than the horizon.
"""
import numpy as np
from numba import njit

from .autoscale import (LC_DRAINING, RUN_DONE, RUN_PAUSED, RUN_SLO, RUN_TRIGGER, drain_progress,
                        lifecycle_event, park, queue_trigger, routed_to_unroutable, slo_trigger)
from .gateway import gw_enqueue, gw_expire, gw_tick, over_budget
from .cevents import (CE_ADMISSION, CE_ARRIVAL, CE_FIRST_TOKEN, CE_GW_TICK, CE_GW_TTL,
                      CE_LIFECYCLE, CE_ROUTING,
                      CE_XF_DONE, CE_XF_READY, cpush as _cpush)
from .disagg import (PD_HELD, PD_NONE, PD_PREFILL, POOL_DECODE, POOL_PREFILL, transfer_handover,
                     transfer_ready)
from .goheap import ckey_pop
from .instance import (EV_ARRIVAL, effective_load, EV_QUEUED, SEG_RANGE, process_event,
                       push_event, tenant_share)
from .hashtable import ht_del, ht_get, ht_put
from .kvcache import cache_hit_rate
from .policy_codes import (ADMIT_CODE, ADMIT_GAIE_LEGACY, ADMIT_REJECT_ALL, ADMIT_TIER_SHED,
                           ADMIT_TOKEN_BUCKET, PD_DECIDE_ALWAYS,
                           PD_DECIDE_NEVER, ROUTE_ALWAYS_BUSIEST, ROUTE_CODE, ROUTE_LEAST_LOADED,
                           ROUTE_PREFIX_AFFINITY, ROUTE_WEIGHTED, SCORER_KV_UTILIZATION,
                           SCORER_LOAD_BALANCE, SCORER_PREFIX_AFFINITY, SCORER_QUEUE_DEPTH)
from .request_states import REQ_COMPLETED, REQ_IN_PIPELINE, REQ_REJECTED
from .layout import (INT64_MAX, CE_PRIO, CE_REQ, CE_SEQ, CE_TIME, CL_ADMITTED, CL_BAD_ROUTE, CL_CLOCK_REGRESS, CL_CODE_NONFINITE, CL_LAST_T, CL_CSIZE, CL_NROUTES,
                     CL_NSEGS, CL_REJECTED, CL_RR, CL_RR_PREFILL, CLF_LAST_REFILL, CLF_TOKENS,
                     I_BATCH_LEN, I_LC, I_NEXT_T, I_ROUTABLE, I_LRU_HEAD, I_LRU_SIZE, I_LRU_TAIL, I_PENDING,
                     I_PX_SALT, I_SNAP_FREE, I_SNAP_LAST, I_STEPS, I_USED, I_WQ_LEN, IF_SNAP_HIT,
                     IF_SNAP_UTIL, P_ADM_LAT, P_ADMISSION, P_ALPHA2, P_AS_ON, P_AS_QTRIG, P_AS_SLO_WIN, P_CF_K, P_HORIZON, P_LRU_CAP, P_N_INST,
                     P_PREFIX_OBS, P_REFRESH, P_ROUTER_BLOCK, P_ROUTING, P_RT_LAT, P_TOTAL_BLOCKS,
                     P_TRACE, P_PD, P_PD_DECIDER, P_PD_THRESH, P_PD_BP_THRESH, P_PD_BP_RETRY,
                     I_POOL, CL_XF_Q, CL_PD_BP, CL_PD_DISAGG, R_N_OUT, R_PD,
                     R_PD_PREFILL, R_PD_DECODE, PF_TB_CAP, PF_TB_RATE, PX_HASH, PX_NEXT, PX_PREV, R_ARRIVAL,
                     R_FULL_HASH, R_INST, R_N_IN, R_ROUTED, R_RH_PTR, R_STATE, SCF_DIM,
                     SCF_SCORES, P_TS_THRESH, P_TS_MINPRIO, PF_GAIE_QD, PF_GAIE_KV, R_SLO_PRIO,
                     P_FC, P_TB_ON, R_TENANT, CL_TB_SHED)

PD_POOL_SALT = np.int64(0x5851F42D4C957F2D)


# ---------------------------------------------------------------- snapshots

@njit(cache=True, inline="always")
def refresh_snapshots(I, IF, P, clock):
    """buildRouterState: the KV fields of each snapshot are re-read live, or only every
    ``snapshot_refresh_interval`` µs (starting from 0) when that is > 0."""
    interval = P[P_REFRESH]
    total = P[P_TOTAL_BLOCKS]
    for i in range(P[P_N_INST]):
        if interval <= 0 or clock - I[I_SNAP_LAST, i] >= interval:
            IF[IF_SNAP_UTIL, i] = I[I_USED, i] / total
            I[I_SNAP_FREE, i] = total - I[I_USED, i]
            IF[IF_SNAP_HIT, i] = cache_hit_rate(I, i)
            I[I_SNAP_LAST, i] = clock


# ---------------------------------------------------------------- admission

@njit(cache=True, inline="always")
def admit(st, r, clock):
    """Admission policies: always-admit, token-bucket (cost = input tokens), reject-all, code."""
    code = st.P[P_ADMISSION]
    if code == ADMIT_REJECT_ALL:
        return False
    if code == ADMIT_TOKEN_BUCKET:
        CLF = st.CLF
        elapsed = clock - np.int64(CLF[CLF_LAST_REFILL])
        if elapsed > 0:
            refill = np.float64(elapsed) * st.PF[PF_TB_RATE] / 1e6
            CLF[CLF_TOKENS] = min(st.PF[PF_TB_CAP], CLF[CLF_TOKENS] + refill)
            CLF[CLF_LAST_REFILL] = np.float64(clock)
        cost = np.float64(st.R[R_N_IN, r])
        if CLF[CLF_TOKENS] >= cost:
            CLF[CLF_TOKENS] -= cost
            return True
        return False
    if code == ADMIT_CODE:
        return _code_admit(st, r)
    if code == ADMIT_TIER_SHED:
        return _tier_shed_admit(st, r)
    if code == ADMIT_GAIE_LEGACY:
        return _gaie_legacy_admit(st, r)
    return True


@njit(cache=True)
def _tier_shed_admit(st, r):
    """tier-shed (BLIS f90a1e3a TierShedAdmission): while the most loaded routable instance holds
    more than ``tier_shed_threshold`` requests (queued + running + routed to it, each counted
    once), admit only SLO priorities >= ``tier_shed_min_priority``."""
    I = st.I
    load = 0
    for i in range(st.P[P_N_INST]):
        if I[I_ROUTABLE, i] != 0:
            load = max(load, effective_load(I, i))
    if load <= st.P[P_TS_THRESH]:
        return True
    return st.R[R_SLO_PRIO, r] >= st.P[P_TS_MINPRIO]


@njit(cache=True)
def _gaie_legacy_admit(st, r):
    """gaie-legacy (BLIS f90a1e3a GAIELegacyAdmission, the Gateway API Inference Extension's
    legacy saturation check): non-sheddable tiers always enter; a sheddable one (priority < 0)
    is rejected while the mean over routable instances of max(queue depth / gaie_qd_threshold,
    KV utilisation / gaie_kv_threshold) is >= 1 (1 when no instance is routable)."""
    if st.R[R_SLO_PRIO, r] >= 0:
        return True
    I = st.I
    qd_thr = st.PF[PF_GAIE_QD] if st.PF[PF_GAIE_QD] > 0 else 5.0
    kv_thr = st.PF[PF_GAIE_KV] if st.PF[PF_GAIE_KV] > 0 else 0.8
    total = 0.0
    n = 0
    for i in range(st.P[P_N_INST]):
        if I[I_ROUTABLE, i] != 0:
            n += 1
            total += max(np.float64(I[I_WQ_LEN, i]) / qd_thr, st.IF[IF_SNAP_UTIL, i] / kv_thr)
    sat = total / n if n > 0 else 1.0
    return sat < 1.0


@njit(cache=True)
def _code_admit(st, r):
    """Admission code policy: admit(input_tokens, queue_depth, batch_size, pending,
    kv_utilization, num_instances) over the routable instances' totals (mean snapshot KV
    utilisation)."""
    I = st.I
    N = 0
    wq = 0
    batch = 0
    pending = 0
    util = 0.0
    for i in range(st.P[P_N_INST]):
        if I[I_ROUTABLE, i] == 0:
            continue
        N += 1
        wq += I[I_WQ_LEN, i]
        batch += I[I_BATCH_LEN, i]
        pending += I[I_PENDING, i]
        util += st.IF[IF_SNAP_UTIL, i]
    return st.ADMIT_FN(np.float64(st.R[R_N_IN, r]), np.float64(wq), np.float64(batch),
                       np.float64(pending), util / max(N, 1), np.float64(N),
                       np.float64(st.R[R_SLO_PRIO, r]), tenant_share(st, r))


# ---------------------------------------------------------------- router-side prefix index

@njit(cache=True)
def _lru_unlink(PXA, I, i, node):
    p_ = PXA[PX_PREV, node]
    q = PXA[PX_NEXT, node]
    if p_ >= 0:
        PXA[PX_NEXT, p_] = q
    else:
        I[I_LRU_HEAD, i] = q
    if q >= 0:
        PXA[PX_PREV, q] = p_
    else:
        I[I_LRU_TAIL, i] = p_


@njit(cache=True)
def _lru_append(PXA, I, i, node):
    t = I[I_LRU_TAIL, i]
    PXA[PX_PREV, node] = t
    PXA[PX_NEXT, node] = -1
    if t >= 0:
        PXA[PX_NEXT, t] = node
    else:
        I[I_LRU_HEAD, i] = node
    I[I_LRU_TAIL, i] = node


@njit(cache=True)
def prefix_touch(PXT, PXA, I, cap, i, h):
    """Mark block hash h most recently used on instance i, evicting the least recent at capacity."""
    key = h ^ I[I_PX_SALT, i]
    node = ht_get(PXT, key)
    if node >= 0:
        _lru_unlink(PXA, I, i, node)
        _lru_append(PXA, I, i, node)
        return
    if I[I_LRU_SIZE, i] >= cap:
        node = I[I_LRU_HEAD, i]
        ht_del(PXT, PXA[PX_HASH, node] ^ I[I_PX_SALT, i])
        _lru_unlink(PXA, I, i, node)
    else:
        node = i * cap + I[I_LRU_SIZE, i]
        I[I_LRU_SIZE, i] += 1
    PXA[PX_HASH, node] = h
    ht_put(PXT, key, node)
    _lru_append(PXA, I, i, node)


@njit(cache=True)
def prefix_match(PXT, I, i, hashes, a, n):
    """Number of leading block hashes hashes[a:a+n] present on instance i."""
    salt = I[I_PX_SALT, i]
    m = 0
    for k in range(n):
        if ht_get(PXT, hashes[a + k] ^ salt) >= 0:
            m += 1
        else:
            break
    return m


# ---------------------------------------------------------------- routing candidates

@njit(cache=True, inline="always")
def routing_candidates(st):
    """Fill st.CAND with the instances a new request may be routed to, in index order; returns
    their count.  An instance is a candidate while I_ROUTABLE is set (every instance in a fixed
    cluster; lifecycle and pool features clear it)."""
    I = st.I
    cand = st.CAND
    nc = 0
    for i in range(st.P[P_N_INST]):
        if I[I_ROUTABLE, i] != 0:
            cand[nc] = i
            nc += 1
    return nc


# ---------------------------------------------------------------- scorers
# A scorer is an @njit function (st, r, cand, nc, out) writing a score for each candidate
# instance cand[:nc] into out[instance]; give it a code in kernels/policy_codes.py (SCORER_*),
# a declaration in simulator/policies/scorers.py and a branch in score_dimension below
# (docs/EXTENDING.md, recipe 1).

@njit(cache=True)
def score_prefix_affinity(st, r, cand, nc, out):
    """Fraction of the request's leading 16-token blocks the router believes each instance holds."""
    a = st.R[R_RH_PTR, r]
    n = st.R[R_N_IN, r] // st.P[P_ROUTER_BLOCK]
    for k in range(nc):
        i = cand[k]
        if n == 0:
            out[i] = 0.0
        else:
            out[i] = prefix_match(st.PXT, st.I, i, st.RH, a, n) / n


@njit(cache=True)
def score_queue_depth(st, r, cand, nc, out):
    """Min-max normalised effective load over the candidates (1 = least loaded; all 1 when
    loads are equal)."""
    I = st.I
    lo = INT64_MAX
    hi = 0
    for k in range(nc):
        load = effective_load(I, cand[k])
        if load < lo:
            lo = load
        if load > hi:
            hi = load
    for k in range(nc):
        i = cand[k]
        if hi == lo:
            out[i] = 1.0
        else:
            out[i] = np.float64(hi - effective_load(I, i)) / np.float64(hi - lo)


@njit(cache=True)
def score_kv_utilization(st, r, cand, nc, out):
    """1 - (snapshot) KV utilisation."""
    for k in range(nc):
        i = cand[k]
        out[i] = 1.0 - st.IF[IF_SNAP_UTIL, i]


@njit(cache=True)
def score_load_balance(st, r, cand, nc, out):
    """1 / (1 + effective load)."""
    for k in range(nc):
        i = cand[k]
        out[i] = 1.0 / (1.0 + np.float64(effective_load(st.I, i)))


@njit(cache=True)
def score_dimension(code, st, r, cand, nc, out):
    """Scorer dispatch: code -> scorer function."""
    if code == SCORER_PREFIX_AFFINITY:
        score_prefix_affinity(st, r, cand, nc, out)
    elif code == SCORER_QUEUE_DEPTH:
        score_queue_depth(st, r, cand, nc, out)
    elif code == SCORER_KV_UTILIZATION:
        score_kv_utilization(st, r, cand, nc, out)
    elif code == SCORER_LOAD_BALANCE:
        score_load_balance(st, r, cand, nc, out)


# ---------------------------------------------------------------- routing policies
# A policy picks one of the candidates cand[:nc] (nc >= 1); ties go to the lowest index.

@njit(cache=True)
def _by_load(I, cand, nc, most):
    """The candidate with the least (``most``: the highest) effective load, ties to the lowest
    index."""
    best = cand[0]
    ref = effective_load(I, best)
    for k in range(1, nc):
        i = cand[k]
        load = effective_load(I, i)
        if (load > ref) if most else (load < ref):
            ref = load
            best = i
    return best


@njit(cache=True)
def _weighted(st, r, cand, nc, codes, weights, observe):
    scores = st.SCF[SCF_SCORES]
    dim = st.SCF[SCF_DIM]
    for k in range(nc):
        scores[cand[k]] = 0.0
    for s in range(codes.shape[0]):
        score_dimension(codes[s], st, r, cand, nc, dim)
        w = weights[s]
        for k in range(nc):
            i = cand[k]
            v = dim[i]
            if v < 0.0:
                v = 0.0
            if v > 1.0:
                v = 1.0
            scores[i] += v * w
    best_score = -1.0
    best = cand[0]
    for k in range(nc):
        i = cand[k]
        if scores[i] > best_score:
            best_score = scores[i]
            best = i
    if observe:
        _observe_prefix(st, r, best)
    return best


@njit(cache=True)
def _observe_prefix(st, r, target):
    """Record in the router's prefix index that ``target`` now holds request r's blocks."""
    a = st.R[R_RH_PTR, r]
    cap = st.P[P_LRU_CAP]
    for k in range(a, a + st.R[R_N_IN, r] // st.P[P_ROUTER_BLOCK]):
        prefix_touch(st.PXT, st.PXA, st.I, cap, target, st.RH[k])


@njit(cache=True)
def _code_route(st, r, cand, nc, observe):
    """Routing code policy: score() per candidate instance, argmax with ties to the lowest index (as
    the weighted router).  A NaN/inf score counts as -inf and is counted.  When the code reads
    ``prefix_match`` (P_PREFIX_OBS: the router keeps a prefix index) the feature means what the
    prefix-affinity scorer's score means, otherwise it is 0 and not computed; ``observe``
    records the decision in the index."""
    I, IF = st.I, st.IF
    scores = st.SCF[SCF_SCORES]
    pmatch = st.SCF[SCF_DIM]
    indexed = st.P[P_PREFIX_OBS] != 0
    if indexed:
        score_prefix_affinity(st, r, cand, nc, pmatch)
    best = cand[0]
    best_score = -np.inf
    tier = np.float64(st.R[R_SLO_PRIO, r])
    share = tenant_share(st, r)
    for k in range(nc):
        i = cand[k]
        pm = pmatch[i] if indexed else 0.0
        s = st.SCORE_FN(np.float64(I[I_WQ_LEN, i]), np.float64(I[I_BATCH_LEN, i]),
                        np.float64(I[I_PENDING, i]), IF[IF_SNAP_UTIL, i],
                        np.float64(I[I_SNAP_FREE, i]), pm, IF[IF_SNAP_HIT, i], tier, share)
        if not np.isfinite(s):
            s = -np.inf
            st.CL[CL_CODE_NONFINITE] += 1
        scores[i] = s
        if s > best_score:
            best_score = s
            best = i
    if observe:
        _observe_prefix(st, r, best)
    return best


@njit(cache=True)
def route(st, r, cand, nc, codes, weights, observe):
    """Pick the target among the candidates; returns (target, has_scores); weighted and code
    scores land in SCF.  ``codes``/``weights``: the weighted router's scorer table (P/D decode
    profile or the main one); ``observe``: record the pick in the router's prefix index."""
    I = st.I
    code = st.P[P_ROUTING]
    if code == ROUTE_LEAST_LOADED:
        return _by_load(I, cand, nc, False), False
    if code == ROUTE_ALWAYS_BUSIEST:
        return _by_load(I, cand, nc, True), False
    if code == ROUTE_PREFIX_AFFINITY:
        h = st.R[R_FULL_HASH, r] ^ (I[I_POOL, cand[0]] * PD_POOL_SALT)  # one affinity per P/D pool
        if h in st.AFFINITY:
            t = st.AFFINITY[h]
            if I[I_ROUTABLE, t] != 0:
                return t, False
        t = _by_load(I, cand, nc, False)
        st.AFFINITY[h] = t
        return t, False
    if code == ROUTE_WEIGHTED:
        return _weighted(st, r, cand, nc, codes, weights, observe), True
    if code == ROUTE_CODE:
        return _code_route(st, r, cand, nc, observe), True
    k = CL_RR_PREFILL if I[I_POOL, cand[0]] == POOL_PREFILL else CL_RR   # one counter per pool
    t = cand[st.CL[k] % nc]
    st.CL[k] += 1
    return t, False


@njit(cache=True, inline="always")
def _regret(st, cand, nc, target, has_scores):
    """Counterfactual regret: best candidate score minus the chosen one's (never negative)."""
    best = -np.inf
    chosen = 0.0
    for k in range(nc):
        i = cand[k]
        s = st.SCF[SCF_SCORES, i] if has_scores else -np.float64(effective_load(st.I, i))
        if s > best:
            best = s
        if i == target:
            chosen = s
    return max(0.0, best - chosen)


# ---------------------------------------------------------------- event loop

@njit(cache=True)
def _cluster_event(st, t, kind, r):
    P, R, I = st.P, st.R, st.I
    if kind == CE_ARRIVAL:
        R[R_STATE, r] = REQ_IN_PIPELINE
        _cpush(st.CE, st.CL, t + P[P_ADM_LAT], CE_ADMISSION, r)
    elif kind == CE_ADMISSION:
        refresh_snapshots(I, st.IF, P, t)
        if P[P_TB_ON] != 0 and over_budget(st, r):
            R[R_STATE, r] = REQ_REJECTED
            st.CL[CL_REJECTED] += 1
            st.CL[CL_TB_SHED] += 1
        elif admit(st, r, t):
            st.CL[CL_ADMITTED] += 1
            if P[P_FC] != 0:
                gw_enqueue(st, t, r)
            else:
                _cpush(st.CE, st.CL, t + P[P_RT_LAT], CE_ROUTING, r)
        else:
            R[R_STATE, r] = REQ_REJECTED
            st.CL[CL_REJECTED] += 1
    elif kind == CE_GW_TTL:
        gw_expire(st, t, r)
    elif kind == CE_GW_TICK:
        refresh_snapshots(I, st.IF, P, t)
        gw_tick(st, t)
    elif kind == CE_XF_READY:
        transfer_ready(st, t, r)
    elif kind == CE_XF_DONE:
        push_event(st.EVH, st.I, transfer_handover(st, t, r), t, r, EV_QUEUED)
    elif kind == CE_LIFECYCLE:
        lifecycle_event(st, t, r)
    elif P[P_PD] != 0:
        refresh_snapshots(I, st.IF, P, t)
        route_pd(st, t, r)
    else:
        refresh_snapshots(I, st.IF, P, t)
        nc = routing_candidates(st)
        if nc == 0:  # no routable instance (autoscaling): wait in the router
            park(st, r)
            return
        target, has_scores = route(st, r, st.CAND, nc, st.SCODES, st.SWEIGHTS,
                                   P[P_PREFIX_OBS] != 0)
        if P[P_AS_ON] != 0 and routed_to_unroutable(st, target):
            st.CL[CL_BAD_ROUTE] += 1
        _dispatch(st, t, r, target, nc, has_scores)


@njit(cache=True, inline="always")
def _dispatch(st, t, r, target, nc, has_scores):
    """Send routed request r to ``target`` (it arrives there now) and record the decision (with
    its regret over the candidates st.CAND[:nc]) when decisions are traced; the trace doubles
    when full (drains re-route requests, so there may be more routings than requests)."""
    P, R, I = st.P, st.R, st.I
    if P[P_TRACE] != 0:
        k = st.CL[CL_NROUTES]
        routes = st.ROUTES[0]
        if k == routes.shape[1]:
            grown = np.zeros((2, 2 * k), dtype=np.float64)
            grown[:, :k] = routes
            st.ROUTES[0] = grown
            routes = grown
        routes[0, k] = target
        if P[P_CF_K] > 0:
            routes[1, k] = _regret(st, st.CAND, nc, target, has_scores)
        st.CL[CL_NROUTES] = k + 1
    if R[R_ROUTED, r] < 0:  # tenant in flight (a drain's re-routing is not a new request)
        st.TEN[R[R_TENANT, r]] += 1
    R[R_INST, r] = target
    R[R_ROUTED, r] = t
    I[I_PENDING, target] += 1
    push_event(st.EVH, st.I, target, t, r, EV_ARRIVAL)


# ---------------------------------------------------------------- P/D routing (kernels/disagg.py)

@njit(cache=True)
def pool_candidates(st, pool):
    """Fill st.CAND with the routable instances of one P/D pool, in index order; their count."""
    I = st.I
    nc = 0
    for i in range(st.P[P_N_INST]):
        if I[I_ROUTABLE, i] != 0 and I[I_POOL, i] == pool:
            st.CAND[nc] = i
            nc += 1
    return nc


@njit(cache=True)
def route_pd(st, t, r):
    """Disaggregated routing: pick a decode instance (decode scorer profile), let the P/D decider
    choose whether to disaggregate (uncached prefix on that instance by the router's prefix index),
    then pick a prefill instance; a request not disaggregated is served on the decode instance.
    Under backpressure a disaggregated request waits and retries prefill routing."""
    P, R, I = st.P, st.R, st.I
    # the prefix index is updated below, once, for the final pick(s)
    ncd = pool_candidates(st, POOL_DECODE)
    d, has_scores = route(st, r, st.CAND, ncd, st.DSCODES, st.DSWEIGHTS, False)
    nc = ncd
    code = P[P_PD_DECIDER]
    disagg = R[R_N_OUT, r] > 1 and code != PD_DECIDE_NEVER
    if disagg and code != PD_DECIDE_ALWAYS:
        uncached = R[R_N_IN, r]
        if P[P_PREFIX_OBS] != 0:
            n = R[R_N_IN, r] // P[P_ROUTER_BLOCK]
            uncached -= prefix_match(st.PXT, I, d, st.RH, R[R_RH_PTR, r], n) * P[P_ROUTER_BLOCK]
        disagg = uncached > P[P_PD_THRESH]
    target = d
    if disagg:
        if P[P_PD_BP_THRESH] > 0 and st.CL[CL_XF_Q] >= P[P_PD_BP_THRESH]:
            if R[R_PD, r] != PD_HELD:
                R[R_PD, r] = PD_HELD
                st.CL[CL_PD_BP] += 1
            _cpush(st.CE, st.CL, t + P[P_PD_BP_RETRY], CE_ROUTING, r)
            return
        nc = pool_candidates(st, POOL_PREFILL)
        target, has_scores = route(st, r, st.CAND, nc, st.SCODES, st.SWEIGHTS, False)
        R[R_PD, r] = PD_PREFILL
        R[R_PD_PREFILL, r] = target
        R[R_PD_DECODE, r] = d
        I[I_PENDING, d] += 1             # its decode load shows before the KV arrives
        st.CL[CL_PD_DISAGG] += 1
    else:
        R[R_PD, r] = PD_NONE
        R[R_PD_DECODE, r] = d
    if P[P_PREFIX_OBS] != 0:
        _observe_prefix(st, r, d)
        if disagg:
            _observe_prefix(st, r, target)
    _dispatch(st, t, r, target, nc, has_scores)


@njit(cache=True, inline="always")
def _note_time(CL, t):
    if t < CL[CL_LAST_T]:
        CL[CL_CLOCK_REGRESS] += 1
    CL[CL_LAST_T] = t


@njit(cache=True)
def seed_arrivals(st):
    """Schedule every request's arrival and fill the token bucket (once, before the loop)."""
    R = st.R
    for r in range(R.shape[1]):
        _cpush(st.CE, st.CL, R[R_ARRIVAL, r], CE_ARRIVAL, r)
    st.CLF[CLF_TOKENS] = st.PF[PF_TB_CAP]


@njit(cache=True)
def run_until(st, stop):
    """Drive all cluster and instance events on one clock until none remain or the horizon
    (RUN_DONE), or until the next event is later than ``stop`` (RUN_PAUSED: call again to resume),
    or, when autoscaling with a queue trigger, right after the routing that crossed it
    (RUN_TRIGGER), or with an SLO trigger, right after the first token that took the window's
    attainment below its target (RUN_SLO)."""
    P, I, CE = st.P, st.I, st.CE
    N = P[P_N_INST]
    horizon = P[P_HORIZON]
    autoscale = P[P_AS_ON] != 0
    trigger = autoscale and P[P_AS_QTRIG] > 0
    slo = autoscale and P[P_AS_SLO_WIN] > 0
    while True:
        ct = INT64_MAX
        if st.CL[CL_CSIZE] > 0:
            ct = CE[CE_TIME, 0]
        it = INT64_MAX
        idx = np.int64(-1)
        for i in range(N):
            t = I[I_NEXT_T, i]
            if t < it:
                it = t
                idx = i
        if ct == INT64_MAX and idx == -1:
            return RUN_DONE
        if ct <= it:
            if ct > stop:
                return RUN_PAUSED
            t, kind, r = ckey_pop(CE[CE_TIME], CE[CE_PRIO], CE[CE_SEQ], CE[CE_REQ], st.CL[CL_CSIZE])
            st.CL[CL_CSIZE] -= 1
            if t > horizon:
                return RUN_DONE
            _note_time(st.CL, t)
            if slo and kind == CE_FIRST_TOKEN:
                if slo_trigger(st, r):
                    return RUN_SLO
                continue
            _cluster_event(st, t, kind, r)
            if trigger and kind == CE_ROUTING and queue_trigger(st):
                return RUN_TRIGGER
        else:
            if it > stop:
                return RUN_PAUSED
            if it > horizon:
                return RUN_DONE
            _note_time(st.CL, it)
            if process_event(st, idx) == EV_QUEUED:
                if I[I_PENDING, idx] > 0:
                    I[I_PENDING, idx] -= 1
            if autoscale and I[I_LC, idx] == LC_DRAINING:
                drain_progress(st, idx, it)


@njit(cache=True)
def run_loop(st):
    """Run the whole simulation in one go (fixed cluster, no autoscaler)."""
    seed_arrivals(st)
    run_until(st, INT64_MAX)


@njit(cache=True)
def collect_itl(st):
    """Run-length encoded ITL samples of completed requests: (value µs, count, instance); every
    entry includes alpha2 (``P_ALPHA2``)."""
    N = st.P[P_N_INST]
    alpha2 = st.P[P_ALPHA2]
    I = st.I
    total_steps = 0
    for i in range(N):
        total_steps += I[I_STEPS, i]
    nsegs = st.CL[CL_NSEGS]
    segs = st.SEGS[0]
    diff = np.zeros(total_steps + N, dtype=np.int64)
    base = np.zeros(N + 1, dtype=np.int64)
    for i in range(N):
        base[i + 1] = base[i] + I[I_STEPS, i] + 1
    n_val = 0
    for k in range(nsegs):
        r = segs[k, 1]
        if st.R[R_STATE, r] != REQ_COMPLETED:
            continue
        if segs[k, 0] == SEG_RANGE:
            i = segs[k, 2]
            diff[base[i] + segs[k, 3]] += 1
            diff[base[i] + segs[k, 4] + 1] -= 1
        else:
            n_val += 1
    vals = np.empty(total_steps + n_val, dtype=np.float64)
    cnts = np.empty(total_steps + n_val, dtype=np.int64)
    insts = np.empty(total_steps + n_val, dtype=np.int32)
    m = 0
    for i in range(N):
        lg = st.SLOG[i]
        run = 0
        for s in range(I[I_STEPS, i]):
            run += diff[base[i] + s]
            if run > 0:
                vals[m] = np.float64(lg[s] + alpha2)
                cnts[m] = run
                insts[m] = i
                m += 1
    for k in range(nsegs):
        r = segs[k, 1]
        if segs[k, 0] != SEG_RANGE and st.R[R_STATE, r] == REQ_COMPLETED:
            vals[m] = np.float64(segs[k, 3])
            cnts[m] = 1
            insts[m] = segs[k, 2]
            m += 1
    return vals[:m], cnts[:m], insts[:m]
