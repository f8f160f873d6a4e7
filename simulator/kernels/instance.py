"""One vLLM-like instance: event queue, wait queue, batch formation, step execution.

Port of sim/simulator.go, sim/event.go, sim/queue.go, sim/priority.go, sim/scheduler.go
@cbb0de7b.  All instances live in the same packed arrays (``I[field, i]``) so that the cluster
loop (kernels/cluster.py) drives them on one clock.

Differences from the reference, by design (its known bugs at BLIS cbb0de7b, sim/simulator.go):
- never livelocks or panics under KV pressure: preemption only visits requests still in the batch,
  and a request that cannot fit even alone is dropped and counted (``dropped_unservable``);
- after a preemption TTFT is kept, output tokens and ITL samples are not counted twice;
- ``P[P_LEGACY]`` reproduces the two quirks every result depends on: one phantom ITL entry per
  completed request, and no new step while only queued work remains (not work-conserving).
"""
import numpy as np
from numba import njit

from .disagg import (PD_AWAIT, PD_PREFILL, awaiting_dropped, decode_admit_span,
                     decode_admitted, prefill_progress)
from .cevents import CE_FIRST_TOKEN, cpush
from .goheap import go_pop, go_push
from .hashtable import ht_put
from .kvcache import (allocate, content_append, content_hash, get_cached_blocks, list_append,
                      pop_free, release)
from .latency import (LAT_ROOFLINE, LAT_TRAINED_PHYSICS, blackbox_step_us, roofline_step_us,
                      tp_prefill_attn_flops, trained_physics_step_us)
from .policy_codes import (PREEMPT_PRIORITY, PRIO_CODE, PRIO_CONSTANT, PRIO_INVERTED_SLO,
                           PRIO_SLO_BASED, PRIO_SLO_TIER, SCHED_FCFS,
                           SCHED_PRIORITY_FCFS, SCHED_REVERSE_PRIORITY, SCHED_SJF)
from .request_states import REQ_COMPLETED, REQ_DROPPED, REQ_QUEUED, REQ_RUNNING
from .warmup import warmup_step_time
from .layout import (INT64_MAX, P_PD, I_PENDING, CL_CODE_NONFINITE, CL_NSEGS, I_FREE_HEAD, I_KV_SALT, I_MISSES, I_NEXT_T, KB_INUSE, KB_NTOK,
                     KB_REF, R_BL_LEN, R_BL_START, R_TOK_PTR, I_ALLOC_FAIL, I_BATCH_LEN, I_CLOCK, I_COMPLETED, I_DROPPED,
                     I_EV_SIZE, I_IN_TOKENS, I_KV_CLOCK, I_OUT_TOKENS, I_PEAK_KV, I_PEND_LAT,
                     I_PREEMPTS, I_STEP_PENDING, I_STEPS, I_USED, I_WAITQ_SUM, I_WQ_HEAD,
                     I_WQ_LEN, IF_KV_INTEGRAL, P_ALPHA2, P_AS_ON, P_AS_SLO_WIN, P_BLOCK, P_LAT_KIND, P_LEGACY,
                     P_LONG_THR, P_MAX_RUNNING, P_MAX_SCHED, P_PRIO, P_SCHED, P_TOTAL_BLOCKS, P_TP,
                     PF_ALPHA0, PF_ALPHA1, R_ARRIVAL, R_COMPUTED, R_DONE, R_FIRST, R_HWM,
                     R_ID_RANK, R_ITL_SUM, R_LAST_EMIT, R_LAST_EMIT_STEP, R_N_IN, R_N_OUT,
                     R_NUM_NEW, R_PI, R_PREEMPTS, R_QUEUED, R_SCHED, R_SCHED_DELAY, R_SEG_FROM,
                     R_STATE, R_TTFT, SC_CACHED, SC_DC_N, SC_DC_PI, SC_PF_N, SC_PF_PI, R_PD,
                     P_PREEMPT, R_SLO_PRIO, P_TB_CAP, R_TENANT)

# Instance event kinds (payload = (request + 1) * 8 + kind)
EV_ARRIVAL = np.int64(0)
EV_QUEUED = np.int64(1)
EV_STEP = np.int64(2)
EV_SCHEDULED = np.int64(3)
EV_PREEMPTION = np.int64(4)
EV_LEFT = np.int64(5)

NO_REQUEST = np.int64(-1)
ZERO = np.int64(0)
ONE = np.int64(1)

# ITL record kinds (SEGS rows: kind, request, instance, a, b)
SEG_RANGE = np.int64(0)   # one ITL entry per step index in [a, b] of the instance's step log
SEG_VALUE = np.int64(1)   # one ITL entry of value a (µs, alpha2 included)


@njit(cache=True)
def effective_load(I, i):
    """Queue depth + batch size + routed-but-not-yet-queued requests (the router's load)."""
    return I[I_WQ_LEN, i] + I[I_BATCH_LEN, i] + I[I_PENDING, i]


@njit(cache=True)
def push_event(EVH, I, i, t, r, kind):
    """Schedule an instance event (Go heap order, growing storage when full)."""
    ev = EVH[i]
    n = I[I_EV_SIZE, i]
    if n == ev.shape[1]:
        ev2 = np.empty((2, 2 * n), dtype=np.int64)
        ev2[:, :n] = ev
        EVH[i] = ev2
        ev = ev2
    I[I_EV_SIZE, i] = go_push(ev[0], ev[1], n, t, (r + 1) * 8 + kind)
    I[I_NEXT_T, i] = ev[0, 0]


# ---------------------------------------------------------------- wait queue (ring buffer)

@njit(cache=True)
def _wq_grow(WQ, I, i):
    q = WQ[i]
    n = I[I_WQ_LEN, i]
    h = I[I_WQ_HEAD, i]
    cap = q.shape[0]
    q2 = np.empty(2 * cap, dtype=q.dtype)
    for k in range(n):
        q2[k] = q[(h + k) % cap]
    WQ[i] = q2
    I[I_WQ_HEAD, i] = 0


@njit(cache=True, inline="always")
def wq_push_back(WQ, I, i, r):
    """Append request r to instance i's wait queue."""
    if I[I_WQ_LEN, i] == WQ[i].shape[0]:
        _wq_grow(WQ, I, i)
    q = WQ[i]
    q[(I[I_WQ_HEAD, i] + I[I_WQ_LEN, i]) % q.shape[0]] = r
    I[I_WQ_LEN, i] += 1


@njit(cache=True)
def wq_push_front(WQ, I, i, r):
    """Put request r at the head of instance i's wait queue (preempted requests go first)."""
    if I[I_WQ_LEN, i] == WQ[i].shape[0]:
        _wq_grow(WQ, I, i)
    q = WQ[i]
    h = (I[I_WQ_HEAD, i] - 1) % q.shape[0]
    q[h] = r
    I[I_WQ_HEAD, i] = h
    I[I_WQ_LEN, i] += 1


@njit(cache=True, inline="always")
def wq_at(WQ, I, i, k):
    """k-th queued request of instance i (0 = head)."""
    q = WQ[i]
    return q[(I[I_WQ_HEAD, i] + k) % q.shape[0]]


@njit(cache=True, inline="always")
def wq_pop_front(WQ, I, i):
    """Remove and return the head of instance i's wait queue."""
    q = WQ[i]
    r = q[I[I_WQ_HEAD, i]]
    I[I_WQ_HEAD, i] = (I[I_WQ_HEAD, i] + 1) % q.shape[0]
    I[I_WQ_LEN, i] -= 1
    return r


@njit(cache=True)
def _wq_linearize(WQ, I, i):
    q = WQ[i]
    h = I[I_WQ_HEAD, i]
    n = I[I_WQ_LEN, i]
    if h + n <= q.shape[0]:
        return h
    tmp = np.empty(n, dtype=q.dtype)
    for k in range(n):
        tmp[k] = q[(h + k) % q.shape[0]]
    q[:n] = tmp
    I[I_WQ_HEAD, i] = 0
    return 0


# ---------------------------------------------------------------- priority and queue order

@njit(cache=True)
def priority_of(code, now, arrival, tier):
    """Priority policies: constant 0, slo-based +1 per second of age, inverted-slo -1 per second,
    slo-tier: the SLO tier's priority x 1e7 plus the age in seconds (tier first, then age; the
    age term stays below 1e7 s and is exact to well under a microsecond)."""
    if code == PRIO_SLO_TIER:
        return 1e7 * np.float64(tier) + 1e-6 * np.float64(now - arrival)
    if code == PRIO_SLO_BASED:
        return 0.0 + 1e-6 * np.float64(now - arrival)
    if code == PRIO_INVERTED_SLO:
        return 0.0 - 1e-6 * np.float64(now - arrival)
    return 0.0


@njit(cache=True)
def _before(R, RF, code, a, b):
    """Strict order of the non-FCFS schedulers; ties end on the request ID *string* order."""
    if code == SCHED_PRIORITY_FCFS:
        if RF[a] != RF[b]:
            return RF[a] > RF[b]
    elif code == SCHED_REVERSE_PRIORITY:
        if RF[a] != RF[b]:
            return RF[a] < RF[b]
    elif code == SCHED_SJF:
        if R[R_N_IN, a] != R[R_N_IN, b]:
            return R[R_N_IN, a] < R[R_N_IN, b]
    if R[R_ARRIVAL, a] != R[R_ARRIVAL, b]:
        return R[R_ARRIVAL, a] < R[R_ARRIVAL, b]
    return R[R_ID_RANK, a] < R[R_ID_RANK, b]


@njit(cache=True)
def _code_priority(st, i, r, now):
    """Priority code policy: priority(age, input_tokens, preemptions, queue_depth, batch_size,
    kv_utilization) of queued request r on instance i (age in seconds, live KV utilisation).
    A NaN/inf priority counts as -inf (served last) and is counted."""
    I = st.I
    p = st.PRIO_FN(1e-6 * np.float64(now - st.R[R_ARRIVAL, r]), np.float64(st.R[R_N_IN, r]),
                   np.float64(st.R[R_PREEMPTS, r]), np.float64(I[I_WQ_LEN, i]),
                   np.float64(I[I_BATCH_LEN, i]),
                   np.float64(I[I_USED, i]) / np.float64(st.P[P_TOTAL_BLOCKS]),
                   np.float64(st.R[R_SLO_PRIO, r]), tenant_share(st, r))
    if not np.isfinite(p):
        st.CL[CL_CODE_NONFINITE] += 1
        return -np.inf
    return p


@njit(cache=True, inline="always")
def order_queue(st, i, now):
    """Recompute priorities of queued requests and reorder the queue per the scheduler.
    Insertion sort: the queue is nearly sorted from one step to the next."""
    R, RF, I, WQ, P = st.R, st.RF, st.I, st.WQ, st.P
    n = I[I_WQ_LEN, i]
    if n == 0:
        return
    prio = P[P_PRIO]
    code = P[P_SCHED]
    if prio != PRIO_CONSTANT and (code == SCHED_PRIORITY_FCFS or code == SCHED_REVERSE_PRIORITY):
        # only these schedulers read priorities (constant priority stays at its initial 0.0)
        for k in range(n):
            r = wq_at(WQ, I, i, k)
            if prio == PRIO_CODE:
                RF[r] = _code_priority(st, i, r, now)
            else:
                RF[r] = priority_of(prio, now, R[R_ARRIVAL, r], R[R_SLO_PRIO, r])
    if code == SCHED_FCFS or n < 2:
        return
    h = _wq_linearize(WQ, I, i)
    q = WQ[i]
    for k in range(h + 1, h + n):
        x = q[k]
        j = k - 1
        while j >= h and _before(R, RF, code, x, q[j]):
            q[j + 1] = q[j]
            j -= 1
        q[j + 1] = x


# ---------------------------------------------------------------- ITL bookkeeping

@njit(cache=True, inline="always")
def _record_seg(SEGS, CL, kind, r, i, a, b):
    segs = SEGS[0]
    n = CL[CL_NSEGS]
    if n == segs.shape[0]:
        s2 = np.empty((2 * n, 5), dtype=np.int64)
        s2[:n] = segs
        SEGS[0] = s2
        segs = s2
    segs[n, 0] = kind
    segs[n, 1] = r
    segs[n, 2] = i
    segs[n, 3] = a
    segs[n, 4] = b
    CL[CL_NSEGS] = n + 1


@njit(cache=True, inline="always")
def _close_segment(R, SEGS, CL, r, i):
    """Record request r's current run of consecutive decode steps as ITL samples."""
    if R[R_SEG_FROM, r] >= 0 and R[R_LAST_EMIT_STEP, r] >= R[R_SEG_FROM, r]:
        _record_seg(SEGS, CL, SEG_RANGE, r, i, R[R_SEG_FROM, r], R[R_LAST_EMIT_STEP, r])
    R[R_SEG_FROM, r] = -1


@njit(cache=True, inline="always")
def _log_step(SLOG, i, s, dur):
    lg = SLOG[i]
    if s == lg.shape[0]:
        lg2 = np.empty(2 * s, dtype=np.int64)
        lg2[:s] = lg
        SLOG[i] = lg2
        lg = lg2
    lg[s] = dur


# ---------------------------------------------------------------- leaving before completion

@njit(cache=True, inline="always")
def tenant_done(st, r):
    """Request r no longer holds capacity (finished, dropped or evicted): its tenant's
    in-flight count (tenant budgets) goes down."""
    if st.TEN[st.R[R_TENANT, r]] > 0:
        st.TEN[st.R[R_TENANT, r]] -= 1


@njit(cache=True, inline="always")
def tenant_share(st, r):
    """Requests of request r's tenant in flight over the cluster's capacity (instances x max
    running requests): what a tenant budget compares with, and the code-policy feature."""
    return np.float64(st.TEN[st.R[R_TENANT, r]]) / np.float64(max(st.P[P_TB_CAP], 1))


@njit(cache=True)
def evict_from_instance(st, i, r, now):
    """Remove request r (queued or running) from instance i at ``now``: out of its wait queue
    or running batch, its KV blocks released; a first token stamped after ``now`` (the step in
    progress) is taken back.  The caller sets its final state."""
    R, I = st.R, st.I
    if R[R_STATE, r] == REQ_QUEUED:
        h = _wq_linearize(st.WQ, I, i)
        q = st.WQ[i]
        n = I[I_WQ_LEN, i]
        for k in range(h, h + n):
            if q[k] == r:
                for j in range(k, h + n - 1):
                    q[j] = q[j + 1]
                I[I_WQ_LEN, i] = n - 1
                break
    else:
        n = I[I_BATCH_LEN, i]
        for k in range(n):
            if st.BATCH[i, k] == r:
                for j in range(k, n - 1):
                    st.BATCH[i, j] = st.BATCH[i, j + 1]
                I[I_BATCH_LEN, i] = n - 1
                break
    _close_segment(R, st.SEGS, st.CL, r, i)
    if R[R_FIRST, r] > now:
        R[R_FIRST, r] = -1
        R[R_TTFT, r] = -1
    release(st, r)
    tenant_done(st, r)


# ---------------------------------------------------------------- batch formation

@njit(cache=True)
def _drop(st, i, r):
    awaiting_dropped(st, r)
    tenant_done(st, r)
    release(st, r)
    st.R[R_STATE, r] = REQ_DROPPED
    st.I[I_DROPPED, i] += 1


@njit(cache=True)
def _preempt_for(st, i, r, now, n_new, k):
    """Allocate n_new tokens for running request r (batch index k), evicting a victim while that
    fails: the batch tail (preemption policy fcfs, as the reference at cbb0de7b) or, under
    ``priority``, the least urgent SLO tier, then the newest arrival (a full tie: the one
    nearest the tail).  Returns (scheduled, preempted_any, victims before index k, tokens this
    step the removed earlier requests had been given, as prefill and decode tokens).  A request that cannot fit even alone is
    dropped."""
    R, I = st.R, st.I
    pre = False
    shift = 0
    ref_p = 0
    ref_d = 0
    while True:
        if allocate(st, r, R[R_PI, r], R[R_PI, r] + n_new, st.SC[SC_CACHED], ZERO):
            return True, pre, shift, ref_p, ref_d
        pre = True
        last = I[I_BATCH_LEN, i] - 1
        j = last
        if st.P[P_PREEMPT] == PREEMPT_PRIORITY:
            for c in range(last - 1, -1, -1):
                a, b = st.BATCH[i, c], st.BATCH[i, j]
                if R[R_SLO_PRIO, a] < R[R_SLO_PRIO, b] or (
                        R[R_SLO_PRIO, a] == R[R_SLO_PRIO, b] and R[R_ARRIVAL, a] > R[R_ARRIVAL, b]):
                    j = c
        victim = st.BATCH[i, j]
        for c in range(j, last):
            st.BATCH[i, c] = st.BATCH[i, c + 1]
        I[I_BATCH_LEN, i] = last
        push_event(st.EVH, st.I, i, now, victim, EV_PREEMPTION)
        if victim == r and last == 0:
            _drop(st, i, r)
            return False, pre, shift, ref_p, ref_d
        if j < k - shift:
            # scheduled earlier in this step: its tokens go back to the budget
            shift += 1
            if R[R_PI, victim] >= R[R_N_IN, victim]:
                ref_d += R[R_NUM_NEW, victim]
            else:
                ref_p += R[R_NUM_NEW, victim]
            R[R_NUM_NEW, victim] = 0
        I[I_PREEMPTS, i] += 1
        R[R_PREEMPTS, victim] += 1
        R[R_STATE, victim] = REQ_QUEUED
        R[R_PI, victim] = 0
        _close_segment(st.R, st.SEGS, st.CL, victim, i)
        release(st, victim)
        wq_push_front(st.WQ, st.I, i, victim)
        if victim == r:
            return False, pre, shift, ref_p, ref_d


@njit(cache=True)
def make_running_batch(st, i, now):
    """Port of makeRunningBatch: continue running requests (chunked prefill / one decode token),
    then admit wait-queue heads FCFS while budget, batch size and KV allow.
    Returns (prefill tokens scheduled, decode tokens scheduled, preemption happened)."""
    R, I, P, BATCH = st.R, st.I, st.P, st.BATCH
    KB, BH, HT, TOK = st.KB, st.BH, st.HT, st.TOK
    arena = st.ARENA[0]
    block = P[P_BLOCK]
    long_thr = P[P_LONG_THR]
    budget = P[P_MAX_SCHED]
    preempted = False
    prefill = 0
    decode = 0
    k = 0
    while k < I[I_BATCH_LEN, i]:
        r = BATCH[i, k]
        if budget <= 0:
            break
        nn = R[R_N_IN, r] - R[R_PI, r]
        if nn > 0:
            if 0 < long_thr and long_thr < nn:
                nn = long_thr
            nn = min(nn, budget)
            ok, pre, shift, ref_p, ref_d = _preempt_for(st, i, r, now, nn, k)
            arena = st.ARENA[0]
            preempted = preempted or pre
            k -= shift
            budget += ref_p + ref_d
            prefill -= ref_p
            decode -= ref_d
            if not ok:
                break
            budget -= nn
            prefill += nn
            R[R_NUM_NEW, r] = nn
            R[R_COMPUTED, r] += nn
        if R[R_PI, r] >= R[R_N_IN, r] and R[R_N_OUT, r] > 0:
            # fast path (15 of 16 decode steps): the last block has room for the new token
            fast = False
            nbl = R[R_BL_LEN, r]
            if nbl > 0:
                latest = arena[R[R_BL_START, r] + nbl - 1]
                nt = KB[KB_NTOK, latest]
                if 0 < nt < block:
                    fast = True
                    content_append(R, block, r, TOK[R[R_TOK_PTR, r] + R[R_PI, r]])
                    KB[KB_NTOK, latest] = nt + 1
                    if nt + 1 == block:
                        h = content_hash(R, block, r)
                        BH[latest] = h
                        ht_put(HT, h ^ I[I_KV_SALT, i], latest)
                elif I[I_FREE_HEAD, i] != -1:
                    # a fresh block for the token (decode blocks are never hashed on creation)
                    fast = True
                    b = pop_free(KB, BH, HT, I, i)
                    KB[KB_NTOK, b] = 1
                    KB[KB_REF, b] = 1
                    KB[KB_INUSE, b] = 1
                    I[I_USED, i] += 1
                    I[I_MISSES, i] += 1
                    content_append(R, block, r, TOK[R[R_TOK_PTR, r] + R[R_PI, r]])
                    list_append(R, st.ARENA, st.CL, r, b)
                    arena = st.ARENA[0]
            if not fast:
                ok, pre, shift, ref_p, ref_d = _preempt_for(st, i, r, now, ONE, k)
                arena = st.ARENA[0]  # the arena may have been reallocated
                preempted = preempted or pre
                k -= shift
                budget += ref_p + ref_d
                prefill -= ref_p
                decode -= ref_d
                if not ok:
                    break
            budget -= 1
            decode += 1
            R[R_NUM_NEW, r] = 1
            R[R_COMPUTED, r] += 1
        k += 1

    cached = st.SC[SC_CACHED]
    legacy = P[P_LEGACY] != 0
    while (I[I_BATCH_LEN, i] < P[P_MAX_RUNNING] and I[I_WQ_LEN, i] > 0 and budget > 0
           and not preempted):
        r = wq_at(st.WQ, st.I, i, 0)
        n_c = get_cached_blocks(st, i, r, cached)
        nn = R[R_N_IN, r] - n_c * block
        if 0 < long_thr and long_thr < nn:
            nn = long_thr
        nn = min(nn, budget)
        start = n_c * block
        end_tok = start + nn
        pd_arrived = R[R_PD, r] == PD_AWAIT
        if pd_arrived:  # P/D: the prompt's KV arrived by transfer; recompute only its last token
            n_c = decode_admit_span(st, r, n_c)
            start = n_c * block
            end_tok = R[R_N_IN, r]
            nn = 1
        if not allocate(st, r, start, end_tok, cached, n_c):
            break
        if pd_arrived:
            decode_admitted(st, r, now)
        wq_pop_front(st.WQ, st.I, i)
        BATCH[i, I[I_BATCH_LEN, i]] = r
        I[I_BATCH_LEN, i] += 1
        push_event(st.EVH, st.I, i, now, r, EV_SCHEDULED)
        if R[R_SCHED, r] < 0 or legacy:
            R[R_SCHED_DELAY, r] = now - R[R_ARRIVAL, r]
        if R[R_SCHED, r] < 0:
            R[R_SCHED, r] = now
        budget -= nn
        R[R_STATE, r] = REQ_RUNNING
        prefill += nn
        R[R_NUM_NEW, r] = nn
        R[R_COMPUTED, r] = end_tok
    return prefill, decode, preempted


@njit(cache=True, inline="always")
def _step_time(R, I, BATCH, SC, P, RP, BETA, i, prefill, decode):
    if P[P_LAT_KIND] == LAT_ROOFLINE:
        n_pf = 0
        n_dc = 0
        for k in range(I[I_BATCH_LEN, i]):
            r = BATCH[i, k]
            if R[R_PI, r] < R[R_N_IN, r]:
                SC[SC_PF_PI, n_pf] = R[R_PI, r]
                SC[SC_PF_N, n_pf] = R[R_NUM_NEW, r]
                n_pf += 1
            else:
                SC[SC_DC_PI, n_dc] = R[R_PI, r]
                SC[SC_DC_N, n_dc] = R[R_NUM_NEW, r]
                n_dc += 1
        t = roofline_step_us(RP, P[P_TP], SC[SC_PF_PI], SC[SC_PF_N], n_pf,
                             SC[SC_DC_PI], SC[SC_DC_N], n_dc)
    elif P[P_LAT_KIND] == LAT_TRAINED_PHYSICS:
        pf_tokens = 0
        pf_attn = 0.0
        dc_tokens = 0
        sum_ctx = 0
        n_batch = I[I_BATCH_LEN, i]
        for k in range(n_batch):
            r = BATCH[i, k]
            if R[R_PI, r] < R[R_N_IN, r]:
                pf_tokens += R[R_NUM_NEW, r]
                pf_attn += tp_prefill_attn_flops(RP, R[R_NUM_NEW, r], R[R_N_IN, r])
            elif R[R_N_OUT, r] > 0:
                dc_tokens += 1
                sum_ctx += R[R_PI, r]
        t = trained_physics_step_us(RP, pf_tokens, pf_attn, dc_tokens, sum_ctx, n_batch)
    else:
        t = blackbox_step_us(BETA, prefill, decode)
    t += I[I_PEND_LAT, i]
    I[I_PEND_LAT, i] = 0
    return t


@njit(cache=True, inline="always")
def _execute(R, I, BATCH, SEGS, CL, CE, slo, a2, i, s_idx, now, dt):
    """Advance every batched request by its scheduled work; record first tokens and ITLs (and,
    when the autoscaler's SLO trigger is on (``slo``), schedule each first token's event)."""
    end = now + dt
    for k in range(I[I_BATCH_LEN, i]):
        r = BATCH[i, k]
        if R[R_PI, r] < R[R_N_IN, r]:
            R[R_PI, r] = R[R_COMPUTED, r]
        else:
            R[R_PI, r] += 1
            if R[R_PI, r] > R[R_HWM, r]:
                R[R_HWM, r] = R[R_PI, r]
                I[I_OUT_TOKENS, i] += 1
                if R[R_SEG_FROM, r] < 0:
                    gap = end - R[R_LAST_EMIT, r] + a2
                    _record_seg(SEGS, CL, SEG_VALUE, r, i, gap, ZERO)
                    R[R_ITL_SUM, r] += gap
                    R[R_SEG_FROM, r] = s_idx + 1
                else:
                    R[R_ITL_SUM, r] += dt + a2
                    R[R_LAST_EMIT_STEP, r] = s_idx
                R[R_LAST_EMIT, r] = end
        if R[R_PI, r] == R[R_N_IN, r] and R[R_TTFT, r] < 0 and R[R_PD, r] != PD_PREFILL:
            R[R_TTFT, r] = end + a2 - R[R_ARRIVAL, r]
            R[R_FIRST, r] = end
            R[R_LAST_EMIT, r] = end
            R[R_SEG_FROM, r] = s_idx + 1
            R[R_LAST_EMIT_STEP, r] = s_idx
            if slo:
                cpush(CE, CL, end, CE_FIRST_TOKEN, r)


@njit(cache=True)
def _complete(st, i, s_idx, now, dt):
    """Finish requests whose last token was produced; keep the others in batch order."""
    R, I, BATCH = st.R, st.I, st.BATCH
    end = now + dt
    legacy = st.P[P_LEGACY] != 0
    pd = st.P[P_PD] != 0
    keep = 0
    for k in range(I[I_BATCH_LEN, i]):
        r = BATCH[i, k]
        if R[R_PI, r] == R[R_N_IN, r] + max(R[R_N_OUT, r], 1) - 1:
            R[R_STATE, r] = REQ_COMPLETED
            R[R_DONE, r] = end
            _close_segment(st.R, st.SEGS, st.CL, r, i)
            if legacy:
                _record_seg(st.SEGS, st.CL, SEG_RANGE, r, i, s_idx, s_idx)
                R[R_ITL_SUM, r] += dt + st.P[P_ALPHA2]
            if R[R_N_OUT, r] > 0:
                if not allocate(st, r, R[R_PI, r], R[R_PI, r] + 1, st.SC[SC_CACHED], ZERO):
                    I[I_ALLOC_FAIL, i] += 1
            release(st, r)
            tenant_done(st, r)
            I[I_COMPLETED, i] += 1
            push_event(st.EVH, st.I, i, end, r, EV_LEFT)
        elif pd and R[R_PD, r] == PD_PREFILL and prefill_progress(st, r, end):
            pass  # prefill done on a P/D prefill instance: it left for the KV transfer
        else:
            BATCH[i, keep] = r
            keep += 1
    I[I_BATCH_LEN, i] = keep


@njit(cache=True)
def step(st, i, now):
    """Port of Simulator.Step: order the queue, form the batch, advance time by the modelled step,
    execute prefill/decode progress, complete finished requests, schedule the next step."""
    I = st.I
    I[I_STEPS, i] += 1
    s_idx = I[I_STEPS, i] - 1
    I[I_KV_CLOCK, i] = now
    order_queue(st, i, now)
    prefill, decode, preempted = make_running_batch(st, i, now)
    if I[I_BATCH_LEN, i] == 0 and I[I_WQ_LEN, i] > 0 and not preempted:
        # the head cannot be scheduled into an empty instance: it can never be served
        _drop(st, i, wq_pop_front(st.WQ, st.I, i))
    I[I_WAITQ_SUM, i] += I[I_WQ_LEN, i]
    dt = _step_time(st.R, I, st.BATCH, st.SC, st.P, st.RP, st.BETA, i, prefill, decode)
    if st.P[P_AS_ON] != 0:  # autoscaling: a warming instance is slower
        dt = warmup_step_time(st, i, now, dt)
    _log_step(st.SLOG, i, s_idx, dt)
    _execute(st.R, I, st.BATCH, st.SEGS, st.CL, st.CE, st.P[P_AS_SLO_WIN] != 0, st.P[P_ALPHA2],
             i, s_idx, now, dt)
    used = I[I_USED, i]
    if used > I[I_PEAK_KV, i]:
        I[I_PEAK_KV, i] = used
    st.IF[IF_KV_INTEGRAL, i] += np.float64(used) * np.float64(dt)
    _complete(st, i, s_idx, now, dt)
    if I[I_BATCH_LEN, i] > 0 or (I[I_WQ_LEN, i] > 0 and st.P[P_LEGACY] == 0):
        push_event(st.EVH, st.I, i, now + dt, NO_REQUEST, EV_STEP)
        I[I_STEP_PENDING, i] = 1
    else:
        I[I_STEP_PENDING, i] = 0


@njit(cache=True)
def process_event(st, i):
    """Pop and execute instance i's next event; returns its kind (the cluster tracks QUEUED)."""
    I, R, P = st.I, st.R, st.P
    ev = st.EVH[i]
    t, pay = go_pop(ev[0], ev[1], I[I_EV_SIZE, i])
    I[I_EV_SIZE, i] -= 1
    I[I_NEXT_T, i] = ev[0, 0] if I[I_EV_SIZE, i] > 0 else INT64_MAX
    I[I_CLOCK, i] = t
    kind = pay % 8
    r = pay // 8 - 1
    if kind == EV_ARRIVAL:
        delay = np.int64(st.PF[PF_ALPHA0] + st.PF[PF_ALPHA1] * np.float64(R[R_N_IN, r]))
        push_event(st.EVH, st.I, i, t + delay, r, EV_QUEUED)
    elif kind == EV_QUEUED:
        pd_arrived = R[R_PD, r] == PD_AWAIT  # P/D: its KV arrived from the prefill instance
        if not pd_arrived:
            R[R_QUEUED, r] = t
        need = (R[R_N_IN, r] + R[R_N_OUT, r] + P[P_BLOCK] - 1) // P[P_BLOCK]
        if need > P[P_TOTAL_BLOCKS]:
            awaiting_dropped(st, r)
            tenant_done(st, r)
            R[R_STATE, r] = REQ_DROPPED
            I[I_DROPPED, i] += 1
        else:
            R[R_STATE, r] = REQ_QUEUED
            wq_push_back(st.WQ, st.I, i, r)
            if not pd_arrived:
                I[I_IN_TOKENS, i] += R[R_N_IN, r]
            if I[I_STEP_PENDING, i] == 0:
                push_event(st.EVH, st.I, i, t, NO_REQUEST, EV_STEP)
                I[I_STEP_PENDING, i] = 1
    elif kind == EV_STEP:
        step(st, i, t)
    return kind
