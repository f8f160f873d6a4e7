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

from ..codes import (ADMIT_REJECT_ALL, ADMIT_TOKEN_BUCKET, ROUTE_ALWAYS_BUSIEST,
                     ROUTE_LEAST_LOADED, ROUTE_PREFIX_AFFINITY, ROUTE_WEIGHTED,
                     SCORER_KV_UTILIZATION, SCORER_LOAD_BALANCE, SCORER_PREFIX_AFFINITY,
                     SCORER_QUEUE_DEPTH)
from .goheap import ckey_pop, ckey_push
from .instance import (EV_ARRIVAL, EV_QUEUED, S_COMPLETED, S_IN_PIPELINE, S_REJECTED, SEG_RANGE,
                       process_event, push_event)
from .kvcache import cache_hit_rate

CE_ARRIVAL = 0
CE_ADMISSION = 1
CE_ROUTING = 2
INT64_MAX = np.iinfo(np.int64).max

# st.cl slots (int64 cluster scalars)
CL_SEQ = 0
CL_NSEGS = 1
CL_RR = 2
CL_REJECTED = 3
CL_NROUTES = 4
CL_CHEAP = 5
CL_CSIZE = 6
# st.clf slots (float64 cluster scalars)
CLF_TOKENS = 0
CLF_LAST_REFILL = 1


# ---------------------------------------------------------------- snapshots

@njit(cache=True)
def refresh_snapshots(st, clock):
    """buildRouterState: the KV fields of each snapshot are re-read live, or only every
    ``snapshot_refresh_interval`` µs (starting from 0) when that is > 0."""
    ins, p = st.ins, st.p
    for i in range(p.num_instances):
        if p.refresh_interval <= 0 or clock - ins.snap_last[i] >= p.refresh_interval:
            ins.snap_util[i] = ins.used[i] / p.total_blocks
            ins.snap_free[i] = p.total_blocks - ins.used[i]
            ins.snap_hit[i] = cache_hit_rate(ins, i)
            ins.snap_last[i] = clock


@njit(cache=True, inline="always")
def effective_load(ins, i):
    """Queue depth + batch size + routed-but-not-yet-queued requests."""
    return ins.wq_len[i] + ins.batch_len[i] + ins.pending[i]


# ---------------------------------------------------------------- admission

@njit(cache=True)
def admit(st, r, clock):
    """Admission policies: always-admit, token-bucket (cost = input tokens), reject-all."""
    code = st.p.admission
    if code == ADMIT_REJECT_ALL:
        return False
    if code == ADMIT_TOKEN_BUCKET:
        elapsed = clock - np.int64(st.clf[CLF_LAST_REFILL])
        if elapsed > 0:
            refill = np.float64(elapsed) * st.p.tb_rate / 1e6
            st.clf[CLF_TOKENS] = min(st.p.tb_cap, st.clf[CLF_TOKENS] + refill)
            st.clf[CLF_LAST_REFILL] = np.float64(clock)
        cost = np.float64(st.rq.n_in[r])
        if st.clf[CLF_TOKENS] >= cost:
            st.clf[CLF_TOKENS] -= cost
            return True
        return False
    return True


# ---------------------------------------------------------------- router-side prefix index

@njit(cache=True)
def _lru_unlink(px, i, node):
    p_ = px.prev[node]
    q = px.next[node]
    if p_ >= 0:
        px.next[p_] = q
    else:
        px.head[i] = q
    if q >= 0:
        px.prev[q] = p_
    else:
        px.tail[i] = p_


@njit(cache=True)
def _lru_append(px, i, node):
    t = px.tail[i]
    px.prev[node] = t
    px.next[node] = -1
    if t >= 0:
        px.next[t] = node
    else:
        px.head[i] = node
    px.tail[i] = node


@njit(cache=True)
def prefix_touch(px, cap, i, h):
    """Mark block hash h most recently used on instance i, evicting the least recent at capacity."""
    key = h ^ px.salt[i]
    if key in px.map:
        node = px.map[key]
        _lru_unlink(px, i, node)
        _lru_append(px, i, node)
        return
    if px.size[i] >= cap:
        node = px.head[i]
        del px.map[px.hash[node] ^ px.salt[i]]
        _lru_unlink(px, i, node)
    else:
        node = i * cap + px.size[i]
        px.size[i] += 1
    px.hash[node] = h
    px.map[key] = node
    _lru_append(px, i, node)


@njit(cache=True)
def prefix_match(px, i, hashes, a, n):
    """Number of leading block hashes hashes[a:a+n] present on instance i."""
    m = 0
    for k in range(n):
        if (hashes[a + k] ^ px.salt[i]) in px.map:
            m += 1
        else:
            break
    return m


# ---------------------------------------------------------------- scorers

@njit(cache=True)
def score_prefix_affinity(st, r, out):
    """Fraction of the request's leading 16-token blocks the router believes each instance holds."""
    rq = st.rq
    a = rq.rh_ptr[r]
    n = rq.rh_ptr[r + 1] - a
    for i in range(st.p.num_instances):
        if n == 0:
            out[i] = 0.0
        else:
            out[i] = prefix_match(st.px, i, rq.rh, a, n) / n


@njit(cache=True)
def score_queue_depth(st, r, out):
    """Min-max normalised effective load (1 = least loaded; all 1 when loads are equal)."""
    ins = st.ins
    lo = INT64_MAX
    hi = 0
    for i in range(st.p.num_instances):
        load = effective_load(ins, i)
        if load < lo:
            lo = load
        if load > hi:
            hi = load
    for i in range(st.p.num_instances):
        if hi == lo:
            out[i] = 1.0
        else:
            out[i] = np.float64(hi - effective_load(ins, i)) / np.float64(hi - lo)


@njit(cache=True)
def score_kv_utilization(st, r, out):
    """1 - (snapshot) KV utilisation."""
    for i in range(st.p.num_instances):
        out[i] = 1.0 - st.ins.snap_util[i]


@njit(cache=True)
def score_load_balance(st, r, out):
    """1 / (1 + effective load)."""
    for i in range(st.p.num_instances):
        out[i] = 1.0 / (1.0 + np.float64(effective_load(st.ins, i)))


@njit(cache=True)
def score_dimension(code, st, r, out):
    """Scorer dispatch: code -> scorer function (registry: simulator/registry.py _SCORERS)."""
    if code == SCORER_PREFIX_AFFINITY:
        score_prefix_affinity(st, r, out)
    elif code == SCORER_QUEUE_DEPTH:
        score_queue_depth(st, r, out)
    elif code == SCORER_KV_UTILIZATION:
        score_kv_utilization(st, r, out)
    elif code == SCORER_LOAD_BALANCE:
        score_load_balance(st, r, out)


# ---------------------------------------------------------------- routing policies

@njit(cache=True)
def _least_loaded(st):
    best = 0
    lo = effective_load(st.ins, 0)
    for i in range(1, st.p.num_instances):
        load = effective_load(st.ins, i)
        if load < lo:
            lo = load
            best = i
    return best


@njit(cache=True)
def route(st, r):
    """Pick the target instance; fills st.sc.scores with the weighted scores when applicable.
    Returns (target, has_scores)."""
    p = st.p
    N = p.num_instances
    code = p.routing
    if code == ROUTE_LEAST_LOADED:
        return _least_loaded(st), False
    if code == ROUTE_ALWAYS_BUSIEST:
        best = 0
        hi = effective_load(st.ins, 0)
        for i in range(1, N):
            load = effective_load(st.ins, i)
            if load > hi:
                hi = load
                best = i
        return best, False
    if code == ROUTE_PREFIX_AFFINITY:
        h = st.rq.full_hash[r]
        if h in st.affinity:
            return st.affinity[h], False
        t = _least_loaded(st)
        st.affinity[h] = t
        return t, False
    if code == ROUTE_WEIGHTED:
        scores = st.sc.scores
        dim = st.sc.dim
        for i in range(N):
            scores[i] = 0.0
        for s in range(p.scorer_codes.shape[0]):
            score_dimension(p.scorer_codes[s], st, r, dim)
            w = p.scorer_weights[s]
            for i in range(N):
                v = dim[i]
                if v < 0.0:
                    v = 0.0
                if v > 1.0:
                    v = 1.0
                scores[i] += v * w
        best_score = -1.0
        best = 0
        for i in range(N):
            if scores[i] > best_score:
                best_score = scores[i]
                best = i
        if p.prefix_observer:
            a = st.rq.rh_ptr[r]
            for k in range(a, st.rq.rh_ptr[r + 1]):
                prefix_touch(st.px, p.lru_cap, best, st.rq.rh[k])
        return best, True
    t = st.cl[CL_RR] % N
    st.cl[CL_RR] += 1
    return t, False


@njit(cache=True)
def _regret(st, target, has_scores):
    """Counterfactual regret: best candidate score minus the chosen one's (never negative)."""
    best = -np.inf
    chosen = 0.0
    for i in range(st.p.num_instances):
        s = st.sc.scores[i] if has_scores else -np.float64(effective_load(st.ins, i))
        if s > best:
            best = s
        if i == target:
            chosen = s
    return max(0.0, best - chosen)


# ---------------------------------------------------------------- event loop

@njit(cache=True)
def _cpush(st, t, kind, r):
    c = st.ce
    st.cl[CL_CSIZE] = ckey_push(c.time, c.prio, c.seq, c.req, st.cl[CL_CSIZE], t, kind,
                                st.cl[CL_SEQ], r)
    st.cl[CL_SEQ] += 1


@njit(cache=True)
def _cluster_event(st, t, kind, r):
    p, rq, ins = st.p, st.rq, st.ins
    if kind == CE_ARRIVAL:
        rq.state[r] = S_IN_PIPELINE
        _cpush(st, t + p.admission_latency, CE_ADMISSION, r)
    elif kind == CE_ADMISSION:
        refresh_snapshots(st, t)
        if admit(st, r, t):
            _cpush(st, t + p.routing_latency, CE_ROUTING, r)
        else:
            rq.state[r] = S_REJECTED
            st.cl[CL_REJECTED] += 1
    else:
        refresh_snapshots(st, t)
        target, has_scores = route(st, r)
        if p.trace:
            k = st.cl[CL_NROUTES]
            st.route_target[k] = target
            if p.cf_k > 0:
                st.route_regret[k] = _regret(st, target, has_scores)
            st.cl[CL_NROUTES] = k + 1
        rq.inst[r] = target
        rq.routed_us[r] = t
        ins.pending[target] += 1
        push_event(st, target, t, r, EV_ARRIVAL)


@njit(cache=True)
def run_loop(st):
    """Drive all cluster and instance events on one clock until none remain or the horizon."""
    p, rq, ins = st.p, st.rq, st.ins
    N = p.num_instances
    n = rq.arrival.shape[0]
    for r in range(n):
        _cpush(st, rq.arrival[r], CE_ARRIVAL, r)
    st.clf[CLF_TOKENS] = p.tb_cap
    while True:
        ct = INT64_MAX
        if st.cl[CL_CSIZE] > 0:
            ct = st.ce.time[0]
        it = INT64_MAX
        idx = -1
        for i in range(N):
            if ins.ev_size[i] > 0:
                t = st.hold.ev_time[i][0]
                if t < it:
                    it = t
                    idx = i
        if ct == INT64_MAX and idx == -1:
            break
        if ct <= it:
            t, kind, r = ckey_pop(st.ce.time, st.ce.prio, st.ce.seq, st.ce.req, st.cl[CL_CSIZE])
            st.cl[CL_CSIZE] -= 1
            if t > p.horizon:
                break
            _cluster_event(st, t, kind, r)
        else:
            if it > p.horizon:
                break
            if process_event(st, idx) == EV_QUEUED:
                if ins.pending[idx] > 0:
                    ins.pending[idx] -= 1


@njit(cache=True)
def collect_itl(st, alpha2):
    """Run-length encoded ITL samples of completed requests: (value µs, count, instance)."""
    N = st.p.num_instances
    ins = st.ins
    total_steps = 0
    for i in range(N):
        total_steps += ins.steps[i]
    nsegs = st.cl[CL_NSEGS]
    segs = st.hold.segs[0]
    diff = np.zeros(total_steps + N, dtype=np.int64)
    base = np.zeros(N + 1, dtype=np.int64)
    for i in range(N):
        base[i + 1] = base[i] + ins.steps[i] + 1
    n_val = 0
    for k in range(nsegs):
        r = segs[k, 1]
        if st.rq.state[r] != S_COMPLETED:
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
        lg = st.hold.slog[i]
        run = 0
        for s in range(ins.steps[i]):
            run += diff[base[i] + s]
            if run > 0:
                vals[m] = np.float64(lg[s] + alpha2)
                cnts[m] = run
                insts[m] = i
                m += 1
    for k in range(nsegs):
        r = segs[k, 1]
        if segs[k, 0] != SEG_RANGE and st.rq.state[r] == S_COMPLETED:
            vals[m] = np.float64(segs[k, 3])
            cnts[m] = 1
            insts[m] = segs[k, 2]
            m += 1
    return vals[:m], cnts[:m], insts[:m]
