"""One vLLM-like instance: event queue, wait queue, batch formation, step execution.

Port of sim/simulator.go, sim/event.go, sim/queue.go, sim/priority.go, sim/scheduler.go
@cbb0de7b.  All instances live in the same arrays (``st.ins`` indexed by instance) so that the
cluster loop (kernels/cluster.py) drives them on one clock.

Differences from the reference, by design (REFERENCE.md 1(l)):
- never livelocks or panics under KV pressure: preemption only visits requests still in the batch,
  and a request that cannot fit even alone is dropped and counted (``dropped_unservable``);
- after a preemption TTFT is kept, output tokens and ITL samples are not counted twice;
- ``p.legacy`` reproduces the two quirks every result depends on: one phantom ITL entry per
  completed request, and no new step while only queued work remains (not work-conserving).
"""
import numpy as np
from numba import njit

from ..codes import (LAT_ROOFLINE, PRIO_CONSTANT, PRIO_INVERTED_SLO, PRIO_SLO_BASED, SCHED_FCFS,
                     SCHED_PRIORITY_FCFS, SCHED_REVERSE_PRIORITY, SCHED_SJF)
from .goheap import go_pop, go_push
from .kvcache import allocate, get_cached_blocks, release
from .latency import blackbox_step_us, roofline_step_us

# Instance event kinds (payload = (request + 1) * 8 + kind)
EV_ARRIVAL = 0
EV_QUEUED = 1
EV_STEP = 2
EV_SCHEDULED = 3
EV_PREEMPTION = 4
EV_LEFT = 5

# Request states (mirrors simulator.result REQ_*)
S_NOT_ARRIVED = 0
S_REJECTED = 1
S_IN_PIPELINE = 2
S_QUEUED = 3
S_RUNNING = 4
S_COMPLETED = 5
S_DROPPED = 6

# ITL record kinds (hold.segs rows: kind, request, instance, a, b)
SEG_RANGE = 0   # one ITL entry per step index in [a, b] of the instance's step log
SEG_VALUE = 1   # one ITL entry of value a (µs, alpha2 included)


@njit(cache=True)
def push_event(st, i, t, r, kind):
    """Schedule an instance event (Go heap order, growing storage when full)."""
    tm = st.hold.ev_time[i]
    pay = st.hold.ev_pay[i]
    n = st.ins.ev_size[i]
    if n == tm.shape[0]:
        tm2 = np.empty(2 * n, dtype=np.int64)
        pay2 = np.empty(2 * n, dtype=np.int64)
        tm2[:n] = tm
        pay2[:n] = pay
        st.hold.ev_time[i] = tm2
        st.hold.ev_pay[i] = pay2
        tm, pay = tm2, pay2
    st.ins.ev_size[i] = go_push(tm, pay, n, t, (r + 1) * 8 + kind)


# ---------------------------------------------------------------- wait queue (ring buffer)

@njit(cache=True)
def _wq_grow(st, i):
    q = st.hold.wq[i]
    n = st.ins.wq_len[i]
    h = st.ins.wq_head[i]
    cap = q.shape[0]
    q2 = np.empty(2 * cap, dtype=q.dtype)
    for k in range(n):
        q2[k] = q[(h + k) % cap]
    st.hold.wq[i] = q2
    st.ins.wq_head[i] = 0


@njit(cache=True)
def wq_push_back(st, i, r):
    """Append request r to instance i's wait queue."""
    if st.ins.wq_len[i] == st.hold.wq[i].shape[0]:
        _wq_grow(st, i)
    q = st.hold.wq[i]
    q[(st.ins.wq_head[i] + st.ins.wq_len[i]) % q.shape[0]] = r
    st.ins.wq_len[i] += 1


@njit(cache=True)
def wq_push_front(st, i, r):
    """Put request r at the head of instance i's wait queue (preempted requests go first)."""
    if st.ins.wq_len[i] == st.hold.wq[i].shape[0]:
        _wq_grow(st, i)
    q = st.hold.wq[i]
    h = (st.ins.wq_head[i] - 1) % q.shape[0]
    q[h] = r
    st.ins.wq_head[i] = h
    st.ins.wq_len[i] += 1


@njit(cache=True)
def wq_at(st, i, k):
    """k-th queued request of instance i (0 = head)."""
    q = st.hold.wq[i]
    return q[(st.ins.wq_head[i] + k) % q.shape[0]]


@njit(cache=True)
def wq_pop_front(st, i):
    """Remove and return the head of instance i's wait queue."""
    q = st.hold.wq[i]
    r = q[st.ins.wq_head[i]]
    st.ins.wq_head[i] = (st.ins.wq_head[i] + 1) % q.shape[0]
    st.ins.wq_len[i] -= 1
    return r


@njit(cache=True)
def _wq_linearize(st, i):
    q = st.hold.wq[i]
    h = st.ins.wq_head[i]
    n = st.ins.wq_len[i]
    if h + n <= q.shape[0]:
        return h
    tmp = np.empty(n, dtype=q.dtype)
    for k in range(n):
        tmp[k] = q[(h + k) % q.shape[0]]
    q[:n] = tmp
    st.ins.wq_head[i] = 0
    return 0


# ---------------------------------------------------------------- priority and queue order

@njit(cache=True)
def _priority(code, now, arrival):
    if code == PRIO_SLO_BASED:
        return 0.0 + 1e-6 * np.float64(now - arrival)
    if code == PRIO_INVERTED_SLO:
        return 0.0 - 1e-6 * np.float64(now - arrival)
    return 0.0


@njit(cache=True, inline="always")
def _before(rq, code, a, b):
    """Strict order of the non-FCFS schedulers; ties end on the request ID *string* order."""
    if code == SCHED_PRIORITY_FCFS:
        if rq.prio[a] != rq.prio[b]:
            return rq.prio[a] > rq.prio[b]
    elif code == SCHED_REVERSE_PRIORITY:
        if rq.prio[a] != rq.prio[b]:
            return rq.prio[a] < rq.prio[b]
    elif code == SCHED_SJF:
        if rq.n_in[a] != rq.n_in[b]:
            return rq.n_in[a] < rq.n_in[b]
    if rq.arrival[a] != rq.arrival[b]:
        return rq.arrival[a] < rq.arrival[b]
    return rq.id_rank[a] < rq.id_rank[b]


@njit(cache=True)
def order_queue(st, i, now):
    """Recompute priorities of queued requests and reorder the queue per the scheduler.
    Insertion sort: the queue is nearly sorted from one step to the next."""
    p = st.p
    n = st.ins.wq_len[i]
    if n == 0:
        return
    rq = st.rq
    if p.prio_code != PRIO_CONSTANT or p.sched_code != SCHED_FCFS:
        for k in range(n):
            r = wq_at(st, i, k)
            rq.prio[r] = _priority(p.prio_code, now, rq.arrival[r])
    if p.sched_code == SCHED_FCFS or n < 2:
        return
    h = _wq_linearize(st, i)
    q = st.hold.wq[i]
    code = p.sched_code
    for k in range(h + 1, h + n):
        x = q[k]
        j = k - 1
        while j >= h and _before(rq, code, x, q[j]):
            q[j + 1] = q[j]
            j -= 1
        q[j + 1] = x


# ---------------------------------------------------------------- ITL bookkeeping

@njit(cache=True)
def _record_seg(st, kind, r, i, a, b):
    segs = st.hold.segs[0]
    n = st.cl[1]
    if n == segs.shape[0]:
        s2 = np.empty((2 * n, 5), dtype=np.int64)
        s2[:n] = segs
        st.hold.segs[0] = s2
        segs = s2
    segs[n, 0] = kind
    segs[n, 1] = r
    segs[n, 2] = i
    segs[n, 3] = a
    segs[n, 4] = b
    st.cl[1] = n + 1


@njit(cache=True)
def _close_segment(st, r, i):
    """Record request r's current run of consecutive decode steps as ITL samples."""
    rq = st.rq
    if rq.seg_from[r] >= 0 and rq.last_emit_step[r] >= rq.seg_from[r]:
        _record_seg(st, SEG_RANGE, r, i, rq.seg_from[r], rq.last_emit_step[r])
    rq.seg_from[r] = -1


@njit(cache=True)
def _log_step(st, i, s, dur):
    lg = st.hold.slog[i]
    if s == lg.shape[0]:
        lg2 = np.empty(2 * s, dtype=np.int64)
        lg2[:s] = lg
        st.hold.slog[i] = lg2
        lg = lg2
    lg[s] = dur


# ---------------------------------------------------------------- batch formation

@njit(cache=True)
def _drop(st, i, r):
    rq = st.rq
    release(st.kv, st.ins, rq, st.p, r)
    rq.state[r] = S_DROPPED
    rq.done_us[r] = -1
    st.ins.dropped[i] += 1


@njit(cache=True)
def _preempt_for(st, i, r, now, n_new):
    """Allocate n_new tokens for running request r, evicting the batch tail (LIFO) while that
    fails.  Returns (scheduled, preempted_any).  A request that cannot fit even alone is dropped."""
    rq, ins, p = st.rq, st.ins, st.p
    pre = False
    while True:
        if allocate(st.kv, ins, rq, p, st.sc, r, rq.pi[r], rq.pi[r] + n_new, st.sc.cached, 0):
            return True, pre
        pre = True
        last = ins.batch_len[i] - 1
        victim = ins.batch[i, last]
        ins.batch_len[i] = last
        push_event(st, i, now, victim, EV_PREEMPTION)
        if victim == r and last == 0:
            _drop(st, i, r)
            return False, pre
        ins.preempts[i] += 1
        rq.preempts[victim] += 1
        rq.state[victim] = S_QUEUED
        rq.pi[victim] = 0
        _close_segment(st, victim, i)
        release(st.kv, ins, rq, p, victim)
        wq_push_front(st, i, victim)
        if victim == r:
            return False, pre


@njit(cache=True)
def make_running_batch(st, i, now):
    """Port of makeRunningBatch: continue running requests (chunked prefill / one decode token),
    then admit wait-queue heads FCFS while budget, batch size and KV allow.
    Returns (prefill tokens scheduled, decode tokens scheduled, preemption happened)."""
    rq, ins, p, sc = st.rq, st.ins, st.p, st.sc
    budget = p.max_sched
    preempted = False
    prefill = 0
    decode = 0
    k = 0
    while k < ins.batch_len[i]:
        r = ins.batch[i, k]
        if budget <= 0:
            break
        nn = rq.n_in[r] - rq.pi[r]
        if nn > 0:
            if 0 < p.long_thr and p.long_thr < nn:
                nn = p.long_thr
            nn = min(nn, budget)
            ok, pre = _preempt_for(st, i, r, now, nn)
            preempted = preempted or pre
            if not ok:
                break
            budget -= nn
            prefill += nn
            rq.num_new[r] = nn
            rq.computed[r] += nn
        if rq.pi[r] >= rq.n_in[r] and rq.n_out[r] > 0:
            ok, pre = _preempt_for(st, i, r, now, 1)
            preempted = preempted or pre
            if not ok:
                break
            budget -= 1
            decode += 1
            rq.num_new[r] = 1
            rq.computed[r] += 1
        k += 1

    while (ins.batch_len[i] < p.max_running and ins.wq_len[i] > 0 and budget > 0
           and not preempted):
        r = wq_at(st, i, 0)
        n_c = get_cached_blocks(st.kv, rq, p, i, r, sc.cached)
        nn = rq.n_in[r] - n_c * p.block
        if 0 < p.long_thr and p.long_thr < nn:
            nn = p.long_thr
        nn = min(nn, budget)
        start = n_c * p.block
        if not allocate(st.kv, ins, rq, p, sc, r, start, start + nn, sc.cached, n_c):
            break
        wq_pop_front(st, i)
        ins.batch[i, ins.batch_len[i]] = r
        ins.batch_len[i] += 1
        push_event(st, i, now, r, EV_SCHEDULED)
        if rq.sched_us[r] < 0 or p.legacy:
            rq.sched_delay[r] = now - rq.arrival[r]
        if rq.sched_us[r] < 0:
            rq.sched_us[r] = now
        budget -= nn
        rq.state[r] = S_RUNNING
        prefill += nn
        rq.num_new[r] = nn
        rq.computed[r] = nn + start
    return prefill, decode, preempted


@njit(cache=True)
def _step_time(st, i, prefill, decode):
    p, rq, ins, sc = st.p, st.rq, st.ins, st.sc
    if p.lat_kind == LAT_ROOFLINE:
        n_pf = 0
        n_dc = 0
        for k in range(ins.batch_len[i]):
            r = ins.batch[i, k]
            if rq.pi[r] < rq.n_in[r]:
                sc.pf_pi[n_pf] = rq.pi[r]
                sc.pf_n[n_pf] = rq.num_new[r]
                n_pf += 1
            else:
                sc.dc_pi[n_dc] = rq.pi[r]
                sc.dc_n[n_dc] = rq.num_new[r]
                n_dc += 1
        t = roofline_step_us(p.rp, p.tp, sc.pf_pi, sc.pf_n, n_pf, sc.dc_pi, sc.dc_n, n_dc)
    else:
        t = blackbox_step_us(p.beta, prefill, decode)
    t += ins.pend_lat[i]
    ins.pend_lat[i] = 0
    return t


@njit(cache=True)
def step(st, i, now):
    """Port of Simulator.Step: order the queue, form the batch, advance time by the modelled step,
    execute prefill/decode progress, complete finished requests, schedule the next step."""
    rq, ins, p = st.rq, st.ins, st.p
    ins.steps[i] += 1
    s_idx = ins.steps[i] - 1
    ins.kv_clock[i] = now
    order_queue(st, i, now)
    prefill, decode, preempted = make_running_batch(st, i, now)
    if ins.batch_len[i] == 0 and ins.wq_len[i] > 0 and not preempted:
        # the head cannot be scheduled into an empty instance: it can never be served
        r = wq_pop_front(st, i)
        _drop(st, i, r)
    ins.waitq_sum[i] += ins.wq_len[i]
    dt = _step_time(st, i, prefill, decode)
    _log_step(st, i, s_idx, dt)
    a2 = p.alpha2
    end = now + dt

    for k in range(ins.batch_len[i]):
        r = ins.batch[i, k]
        if rq.pi[r] < rq.n_in[r]:
            rq.pi[r] = rq.computed[r]
        else:
            rq.pi[r] += 1
            if rq.pi[r] > rq.hwm[r]:
                rq.hwm[r] = rq.pi[r]
                ins.out_tokens[i] += 1
                if rq.seg_from[r] < 0:
                    gap = end - rq.last_emit[r] + a2
                    _record_seg(st, SEG_VALUE, r, i, gap, 0)
                    rq.itl_sum[r] += gap
                    rq.seg_from[r] = s_idx + 1
                else:
                    rq.itl_sum[r] += dt + a2
                    rq.last_emit_step[r] = s_idx
                rq.last_emit[r] = end
        if rq.pi[r] == rq.n_in[r] and rq.ttft[r] < 0:
            rq.ttft[r] = end + a2 - rq.arrival[r]
            rq.first_us[r] = end
            rq.last_emit[r] = end
            rq.seg_from[r] = s_idx + 1
            rq.last_emit_step[r] = s_idx

    used = ins.used[i]
    if used > ins.peak_kv[i]:
        ins.peak_kv[i] = used
    ins.kv_integral[i] += np.float64(used) * np.float64(dt)

    keep = 0
    for k in range(ins.batch_len[i]):
        r = ins.batch[i, k]
        if rq.pi[r] == rq.n_in[r] + max(rq.n_out[r], 1) - 1:
            rq.state[r] = S_COMPLETED
            rq.done_us[r] = end
            _close_segment(st, r, i)
            if p.legacy:
                _record_seg(st, SEG_RANGE, r, i, s_idx, s_idx)
                rq.itl_sum[r] += dt + a2
            if rq.n_out[r] > 0:
                if not allocate(st.kv, ins, rq, p, st.sc, r, rq.pi[r], rq.pi[r] + 1,
                                st.sc.cached, 0):
                    ins.alloc_fail[i] += 1
            release(st.kv, ins, rq, p, r)
            ins.completed[i] += 1
            push_event(st, i, end, r, EV_LEFT)
        else:
            ins.batch[i, keep] = r
            keep += 1
    ins.batch_len[i] = keep

    if keep > 0 or (ins.wq_len[i] > 0 and not p.legacy):
        push_event(st, i, end, -1, EV_STEP)
        ins.step_pending[i] = 1
    else:
        ins.step_pending[i] = 0


@njit(cache=True)
def process_event(st, i):
    """Pop and execute instance i's next event; returns its kind (the cluster tracks QUEUED)."""
    ins, rq, p = st.ins, st.rq, st.p
    t, pay = go_pop(st.hold.ev_time[i], st.hold.ev_pay[i], ins.ev_size[i])
    ins.ev_size[i] -= 1
    ins.clock[i] = t
    kind = pay % 8
    r = pay // 8 - 1
    if kind == EV_ARRIVAL:
        delay = np.int64(p.alpha0 + p.alpha1 * np.float64(rq.n_in[r]))
        push_event(st, i, t + delay, r, EV_QUEUED)
    elif kind == EV_QUEUED:
        rq.queued_us[r] = t
        need = (rq.n_in[r] + rq.n_out[r] + p.block - 1) // p.block
        if need > p.total_blocks:
            rq.state[r] = S_DROPPED
            ins.dropped[i] += 1
        else:
            rq.state[r] = S_QUEUED
            wq_push_back(st, i, r)
            ins.in_tokens[i] += rq.n_in[r]
            if ins.step_pending[i] == 0:
                push_event(st, i, t, -1, EV_STEP)
                ins.step_pending[i] = 1
    elif kind == EV_STEP:
        step(st, i, t)
    return kind
