"""Instance lifecycle under autoscaling: start/stop, drains, the router wait list, cold caches.

Lifecycle (``LC_*`` below): STOPPED -> PROVISIONING -> LOADING -> WARMING -> READY -> DRAINING ->
STOPPED.  Transitions up to READY are cluster events (``CE_LIFECYCLE``, payload
``epoch * n_slots + instance``), scheduled one at a time: each transition schedules the next, so a
slot has at most one pending lifecycle event.  A start reserves three sequence numbers for its
transitions, so ties with other events break exactly as if all three were scheduled at the start.
A cancelled start bumps the epoch after deleting its pending event, and a restart deletes the
pending event of the slot's previous start (stale events are ignored anyway), so the cluster
queue holds at most one lifecycle event per slot.

WARMING and READY instances are routable (``I_ROUTABLE``); a WARMING instance serves with the
warmup penalty on its step times (kernels/warmup.py).  A DRAINING instance receives nothing new
and keeps serving what it holds (drain mode ``wait``), or first sends its queued (``redirect``)
or queued and running (``immediate``) requests back to the router, which re-routes them (counted
in ``CL_REROUTED``; running requests lose their KV blocks and progress, exactly as a
preemption).  It becomes STOPPED once it holds no request and no pending event; a stopped
instance forgets its prefix cache and the router's prefix index for it (a restart is cold).

The SLO trigger (on when ``P_AS_SLO_WIN`` > 0) keeps the miss bits of the last ``window`` first
tokens, in first-token time order, in a ring at ``CL[CL_SLO_RING:]``: the instance that produces
a first token schedules a ``CE_FIRST_TOKEN`` cluster event at that token's time, and the event
updates the ring.  When the window is full and its misses (TTFT > ``P_AS_SLO_TTFT``) first exceed
``P_AS_SLO_MAXMISS`` the loop stops (``RUN_SLO``); it re-arms once the window meets the target.

Requests routed while no instance is routable wait in a FIFO router wait list (linked through
``R_WAIT_NEXT``) and are routed again, in order, when an instance becomes routable.
"""
from numba import njit

from .cevents import CE_LIFECYCLE, CE_ROUTING, cpush, cpush_seq, cremove
from .hashtable import ht_del
from .instance import effective_load, _close_segment, wq_pop_front
from .kvcache import release
from .layout import (CL_PARKED, CL_REROUTED, CL_SEQ,
                     CL_TRIG, CL_WAIT_HEAD, CL_WAIT_LEN, CL_WAIT_TAIL, CPU_HAS, I_BATCH_LEN,
                     I_CPU_USED, I_EV_SIZE, I_IN_TOKENS, I_KV_SALT, I_LC, I_LC_EPOCH, I_LC_SEQ,
                     I_LC_STOP_T, I_LRU_HEAD, I_LRU_SIZE, I_LRU_TAIL, I_PENDING, I_PX_SALT,
                     I_ROUTABLE, I_WARM_END, I_WARM_FROM, I_WQ_LEN, P_AS_QTRIG, P_CPU_BLOCKS,
                     P_DRAIN, P_N_INST, P_TOTAL_BLOCKS, PX_HASH, PX_NEXT, R_N_IN, R_PI, R_STATE,
                     R_WAIT_NEXT, CL_SLO_MISS, CL_SLO_RING, CL_SLO_SEEN, CL_SLO_TRIG,
                     P_AS_SLO_MAXMISS, P_AS_SLO_TTFT, P_AS_SLO_WIN, R_TTFT)
from .request_states import REQ_IN_PIPELINE


# Instance lifecycle (``I[I_LC, i]``).  Routable (may receive new requests): WARMING and READY.
LC_STOPPED = 0
LC_PROVISIONING = 1
LC_LOADING = 2
LC_WARMING = 3        # serving, step times carry the warmup penalty (kernels/warmup.py)
LC_READY = 4
LC_DRAINING = 5       # serves what it holds, receives nothing new
LC_NAMES = ("stopped", "provisioning", "loading", "warming", "ready", "draining")

# Drain modes of a scale-down (``P[P_DRAIN]``)
DRAIN_WAIT = 0        # finish queued and running requests
DRAIN_IMMEDIATE = 1   # queued and running requests go back to the router (progress reset)
DRAIN_REDIRECT = 2    # queued requests go back to the router, running ones finish

# run_until return codes
RUN_DONE = 0       # no event left (or the horizon passed)
RUN_PAUSED = 1     # the next event is later than the stop time
RUN_TRIGGER = 2    # the queue-depth trigger fired
RUN_SLO = 3        # the SLO-attainment trigger fired


# ---------------------------------------------------------------- router wait list

@njit(cache=True)
def park(st, r):
    """Hold request r in the router wait list until an instance becomes routable."""
    CL, R = st.CL, st.R
    R[R_WAIT_NEXT, r] = -1
    if CL[CL_WAIT_LEN] == 0:
        CL[CL_WAIT_HEAD] = r
    else:
        R[R_WAIT_NEXT, CL[CL_WAIT_TAIL]] = r
    CL[CL_WAIT_TAIL] = r
    CL[CL_WAIT_LEN] += 1
    CL[CL_PARKED] += 1


@njit(cache=True)
def release_wait_list(st, t):
    """Route every parked request again at time t, in parking order."""
    CL, R = st.CL, st.R
    r = CL[CL_WAIT_HEAD]
    for _ in range(CL[CL_WAIT_LEN]):
        nxt = R[R_WAIT_NEXT, r]
        cpush(st.CE, CL, t, CE_ROUTING, r)
        r = nxt
    CL[CL_WAIT_LEN] = 0
    CL[CL_WAIT_HEAD] = -1
    CL[CL_WAIT_TAIL] = -1


# ---------------------------------------------------------------- drains and stops

@njit(cache=True)
def _to_router(st, r, i, t):
    """Send request r back from draining instance i to the router; i's input-token count forgets
    it (the instance that finally queues it counts it)."""
    st.R[R_STATE, r] = REQ_IN_PIPELINE
    st.I[I_IN_TOKENS, i] -= st.R[R_N_IN, r]
    st.CL[CL_REROUTED] += 1
    cpush(st.CE, st.CL, t, CE_ROUTING, r)


@njit(cache=True)
def _send_back_queued(st, i, t):
    while st.I[I_WQ_LEN, i] > 0:
        _to_router(st, wq_pop_front(st.WQ, st.I, i), i, t)


@njit(cache=True)
def _send_back_running(st, i, t):
    """Evict the running batch to the router, as a preemption would (KV freed, progress reset)."""
    I, R = st.I, st.R
    for k in range(I[I_BATCH_LEN, i]):
        r = st.BATCH[i, k]
        _close_segment(R, st.SEGS, st.CL, r, i)
        release(st, r)
        R[R_PI, r] = 0
        _to_router(st, r, i, t)
    I[I_BATCH_LEN, i] = 0


@njit(cache=True)
def _forget_caches(st, i):
    """Cold restart: drop instance i's cached KV block hashes (GPU and CPU tier) and the
    router's prefix index entries for it."""
    I, BH, HT = st.I, st.BH, st.HT
    tb = st.P[P_TOTAL_BLOCKS]
    salt = I[I_KV_SALT, i]
    for b in range(i * tb, (i + 1) * tb):
        if BH[b] != 0:
            ht_del(HT, BH[b] ^ salt)
            BH[b] = 0
    if st.P[P_CPU_BLOCKS] > 0:
        for b in range(i * tb, (i + 1) * tb):
            st.CPU[CPU_HAS, b] = 0
        I[I_CPU_USED, i] = 0
    node = I[I_LRU_HEAD, i]
    while node >= 0:
        ht_del(st.PXT, st.PXA[PX_HASH, node] ^ I[I_PX_SALT, i])
        node = st.PXA[PX_NEXT, node]
    I[I_LRU_HEAD, i] = -1
    I[I_LRU_TAIL, i] = -1
    I[I_LRU_SIZE, i] = 0


@njit(cache=True)
def _maybe_stop(st, i, t):
    I = st.I
    if (I[I_BATCH_LEN, i] == 0 and I[I_WQ_LEN, i] == 0 and I[I_PENDING, i] == 0
            and I[I_EV_SIZE, i] == 0):
        I[I_LC, i] = LC_STOPPED
        I[I_LC_STOP_T, i] = t
        _forget_caches(st, i)


@njit(cache=True)
def drain_progress(st, i, t):
    """After an event of DRAINING instance i: send newly queued requests back (unless the drain
    mode is ``wait``) and stop the instance once it is empty."""
    if st.P[P_DRAIN] != DRAIN_WAIT:
        _send_back_queued(st, i, t)
    _maybe_stop(st, i, t)


# ---------------------------------------------------------------- lifecycle transitions

@njit(cache=True)
def _become_routable(st, i, t):
    st.I[I_ROUTABLE, i] = 1
    if st.CL[CL_WAIT_LEN] > 0:
        release_wait_list(st, t)


@njit(cache=True, inline="always")
def _payload(st, i):
    return st.I[I_LC_EPOCH, i] * st.P[P_N_INST] + i


@njit(cache=True)
def lifecycle_event(st, t, payload):
    """A due transition PROVISIONING -> LOADING -> WARMING -> READY (stale epochs ignored); each
    schedules the next one, with the sequence number its start reserved."""
    I = st.I
    n = st.P[P_N_INST]
    i = payload % n
    if payload // n != I[I_LC_EPOCH, i]:
        return
    lc = I[I_LC, i]
    if lc == LC_PROVISIONING:
        I[I_LC, i] = LC_LOADING
        cpush_seq(st.CE, st.CL, I[I_WARM_FROM, i], CE_LIFECYCLE, I[I_LC_SEQ, i] + 1, payload)
    elif lc == LC_LOADING:
        I[I_LC, i] = LC_WARMING
        cpush_seq(st.CE, st.CL, I[I_WARM_END, i], CE_LIFECYCLE, I[I_LC_SEQ, i] + 2, payload)
        _become_routable(st, i, t)
    elif lc == LC_WARMING:
        I[I_LC, i] = LC_READY


@njit(cache=True)
def start_instance(st, i, t, t_loading, t_warming, t_ready):
    """Scale up with slot i at time t.  A DRAINING instance is taken back at once (WARMING if its
    warmup is not over, else READY); a STOPPED one starts PROVISIONING and moves on at the given
    absolute times (t <= t_loading <= t_warming <= t_ready).  Returns False if i was neither."""
    I = st.I
    lc = I[I_LC, i]
    if lc == LC_DRAINING:
        I[I_LC, i] = LC_WARMING if t < I[I_WARM_END, i] else LC_READY
        _become_routable(st, i, t)
        return True
    if lc != LC_STOPPED:
        return False
    cremove(st.CE, st.CL, CE_LIFECYCLE, _payload(st, i))  # left by a start stopped while warming
    I[I_LC, i] = LC_PROVISIONING
    I[I_LC_EPOCH, i] += 1
    I[I_WARM_FROM, i] = t_warming
    I[I_WARM_END, i] = t_ready
    I[I_LC_SEQ, i] = st.CL[CL_SEQ]
    st.CL[CL_SEQ] += 3
    cpush_seq(st.CE, st.CL, t_loading, CE_LIFECYCLE, I[I_LC_SEQ, i], _payload(st, i))
    return True


@njit(cache=True)
def stop_instance(st, i, t):
    """Scale down slot i at time t: a start not yet routable is cancelled (STOPPED at once); a
    routable instance starts draining per the drain mode.  Returns False if i was neither."""
    I = st.I
    lc = I[I_LC, i]
    if lc == LC_PROVISIONING or lc == LC_LOADING:
        cremove(st.CE, st.CL, CE_LIFECYCLE, _payload(st, i))
        I[I_LC_EPOCH, i] += 1
        I[I_LC, i] = LC_STOPPED
        I[I_LC_STOP_T, i] = t
        return True
    if lc != LC_WARMING and lc != LC_READY:
        return False
    I[I_LC, i] = LC_DRAINING
    I[I_ROUTABLE, i] = 0
    if st.P[P_DRAIN] == DRAIN_IMMEDIATE:
        _send_back_running(st, i, t)
    drain_progress(st, i, t)
    return True


@njit(cache=True)
def queue_trigger(st):
    """True when the load per routable instance (queued + running + in flight, plus the router
    wait list) first reaches ``P_AS_QTRIG``; re-arms when it falls below."""
    I = st.I
    load = st.CL[CL_WAIT_LEN]
    nr = 0
    for i in range(st.P[P_N_INST]):
        if I[I_ROUTABLE, i] != 0:
            nr += 1
            load += effective_load(I, i)
    above = load >= st.P[P_AS_QTRIG] * max(nr, 1)
    if above and st.CL[CL_TRIG] == 0:
        st.CL[CL_TRIG] = 1
        return True
    if not above:
        st.CL[CL_TRIG] = 0
    return False


@njit(cache=True)
def routed_to_unroutable(st, i):
    """True if instance i may not receive new requests (checked at every autoscaled routing)."""
    lc = st.I[I_LC, i]
    return lc != LC_WARMING and lc != LC_READY


@njit(cache=True)
def slo_trigger(st, r):
    """Count request r's first token (its ``CE_FIRST_TOKEN`` event) in the SLO window; True when
    the window is full and its attainment first falls below the target (edge-triggered: re-arms
    when the window meets the target again)."""
    CL, P = st.CL, st.P
    k = P[P_AS_SLO_WIN]
    seen = CL[CL_SLO_SEEN]
    slot = CL_SLO_RING + seen % k
    miss = 1 if st.R[R_TTFT, r] > P[P_AS_SLO_TTFT] else 0
    if seen >= k:
        CL[CL_SLO_MISS] -= CL[slot]
    CL[slot] = miss
    CL[CL_SLO_MISS] += miss
    CL[CL_SLO_SEEN] = seen + 1
    if seen + 1 < k:
        return False
    below = CL[CL_SLO_MISS] > P[P_AS_SLO_MAXMISS]
    if below and CL[CL_SLO_TRIG] == 0:
        CL[CL_SLO_TRIG] = 1
        return True
    if not below:
        CL[CL_SLO_TRIG] = 0
    return False
