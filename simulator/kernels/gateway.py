"""Gateway flow control: the llm-d gateway's queue between admission and routing.

Behaviour port of BLIS f90a1e3a (``sim/cluster/gateway_queue.go``, ``flow_control_admission.go``,
``sim/saturation.go``, the eviction tracker and ``tryDispatchFromGatewayQueue`` of
``sim/cluster/cluster.go``), with the deviations the README lists:

* The queue has one **band** per SLO priority of the workload's classes (most urgent first) and,
  in each band, one FIFO **flow** per tenant (doubly linked through ``R_GW_PREV``/``R_GW_NEXT``).
  ``GW`` packs the flows' heads and tails, each band's length and round-robin cursor.
* An admitted request is **enqueued** (refused when the queue or its band is full; with queue
  shedding a full queue instead displaces its least urgent sheddable request, the newest of
  them, for a strictly more urgent arrival), then one **dispatch attempt** runs; attempts also
  run on a **tick** every ``dispatch_tick_interval`` µs while requests wait.  An attempt sends
  at most one request to the router.
* A **saturation detector** (never / utilization / concurrency) gates dispatch: band i of n
  dispatches while saturation < 1 - i (1 - u) / (n - 1) (u = usage-limit threshold; u = 1: all
  bands up to saturation 1).  ``fifo`` takes the earliest enqueued request of any band;
  ``priority`` the most urgent non-empty band, ``slo-deadline`` as priority then the earliest
  deadline within the chosen flow; within a band the fairness policy picks the flow.
* While saturated with an urgent (non-sheddable) request waiting, **in-flight eviction** removes
  one sheddable request (least urgent tier, then the latest dispatched) from its instance
  instead of dispatching.  A request waiting longer than ``request_ttl`` **expires**.
* **Tenant budgets**: a tenant holding at least its share of the cluster's capacity (instances x
  max running requests) in flight has its sheddable requests rejected at admission.
"""
import numpy as np
from numba import njit

from .cevents import CE_GW_TICK, CE_GW_TTL, CE_ROUTING, cpush as _cpush
from .instance import effective_load, evict_from_instance
from .layout import (CL_GW_EVICTED, CL_GW_EXPIRED, CL_GW_LEN, CL_GW_PEAK, CL_GW_REJECTED,
                     CL_GW_SEQ, CL_GW_SHED, CL_GW_TICK, I_ROUTABLE, IF_SNAP_UTIL,
                     I_WQ_LEN, P_FC_BAND_CAP, P_FC_DETECTOR, P_FC_EVICT, P_FC_FAIR,
                     P_FC_MAX_CONC, P_FC_MAX_DEPTH, P_FC_NBANDS, P_FC_NTEN, P_FC_ORDER,
                     P_FC_SHED, P_FC_TICK, P_FC_TTL, P_N_INST, P_RT_LAT, P_TB_CAP, PF_FC_KV,
                     PF_FC_QD, PF_FC_USAGE, R_GW_BAND, R_GW_DISP, R_GW_ENQ, R_GW_NEXT, R_GW_PREV,
                     R_GW_SEQ, R_INST, R_PD, R_SLO_PRIO, R_SLO_TARGET, R_STATE, R_TENANT,
                     INT64_MAX)
from .policy_codes import (DETECT_CONCURRENCY, DETECT_UTILIZATION, FAIR_ROUND_ROBIN,
                           ORDER_FIFO, ORDER_SLO_DEADLINE)
from .request_states import (REQ_EVICTED, REQ_EXPIRED, REQ_GW_QUEUED, REQ_GW_REJECTED,
                             REQ_IN_PIPELINE, REQ_QUEUED, REQ_RUNNING, REQ_SHED)


# ---------------------------------------------------------------- the GW array's sections

@njit(cache=True, inline="always")
def _head(P, b, t):
    return b * P[P_FC_NTEN] + t


@njit(cache=True, inline="always")
def _tail(P, b, t):
    return P[P_FC_NBANDS] * P[P_FC_NTEN] + b * P[P_FC_NTEN] + t


@njit(cache=True, inline="always")
def _blen(P, b):
    return 2 * P[P_FC_NBANDS] * P[P_FC_NTEN] + b


@njit(cache=True, inline="always")
def _cursor(P, b):
    return 2 * P[P_FC_NBANDS] * P[P_FC_NTEN] + P[P_FC_NBANDS] + b


def gw_size(n_bands: int, n_tenants: int) -> int:
    """Length of the GW array: flow heads and tails, band lengths and round-robin cursors."""
    return 2 * n_bands * n_tenants + 2 * n_bands


def gw_initial(n_bands: int, n_tenants: int) -> np.ndarray:
    """An empty queue: no flow has a head or tail, cursors at "none yet"."""
    gw = np.full(gw_size(n_bands, n_tenants), -1, dtype=np.int64)
    gw[2 * n_bands * n_tenants: 2 * n_bands * n_tenants + n_bands] = 0  # band lengths
    return gw


# ---------------------------------------------------------------- flows

@njit(cache=True)
def _append(st, r):
    P, R, GW = st.P, st.R, st.GW
    b, t = R[R_GW_BAND, r], R[R_TENANT, r]
    tail = GW[_tail(P, b, t)]
    R[R_GW_PREV, r] = tail
    R[R_GW_NEXT, r] = -1
    if tail >= 0:
        R[R_GW_NEXT, tail] = r
    else:
        GW[_head(P, b, t)] = r
    GW[_tail(P, b, t)] = r
    GW[_blen(P, b)] += 1
    st.CL[CL_GW_LEN] += 1
    if st.CL[CL_GW_LEN] > st.CL[CL_GW_PEAK]:
        st.CL[CL_GW_PEAK] = st.CL[CL_GW_LEN]


@njit(cache=True)
def _unlink(st, r):
    P, R, GW = st.P, st.R, st.GW
    b, t = R[R_GW_BAND, r], R[R_TENANT, r]
    prev, nxt = R[R_GW_PREV, r], R[R_GW_NEXT, r]
    if prev >= 0:
        R[R_GW_NEXT, prev] = nxt
    else:
        GW[_head(P, b, t)] = nxt
    if nxt >= 0:
        R[R_GW_PREV, nxt] = prev
    else:
        GW[_tail(P, b, t)] = prev
    R[R_GW_PREV, r] = -1
    R[R_GW_NEXT, r] = -1
    GW[_blen(P, b)] -= 1
    st.CL[CL_GW_LEN] -= 1


# ---------------------------------------------------------------- saturation

@njit(cache=True)
def saturation(st):
    """The detector's saturation (>= 1: hold dispatch); 1 when no instance is routable."""
    P, I = st.P, st.I
    code = P[P_FC_DETECTOR]
    if code != DETECT_UTILIZATION and code != DETECT_CONCURRENCY:
        return 0.0
    n = 0
    total = 0.0
    for i in range(P[P_N_INST]):
        if I[I_ROUTABLE, i] == 0:
            continue
        n += 1
        if code == DETECT_UTILIZATION:
            total += max(np.float64(I[I_WQ_LEN, i]) / st.PF[PF_FC_QD],
                         st.IF[IF_SNAP_UTIL, i] / st.PF[PF_FC_KV])
        else:
            total += np.float64(effective_load(I, i))
    if n == 0:
        return 1.0
    if code == DETECT_UTILIZATION:
        return total / n
    return total / (np.float64(n) * np.float64(P[P_FC_MAX_CONC]))


# ---------------------------------------------------------------- tenant budgets

@njit(cache=True)
def over_budget(st, r):
    """True when request r is sheddable and its tenant holds at least its budgeted share of
    the capacity in flight (routed and not yet finished)."""
    if st.R[R_SLO_PRIO, r] >= 0:
        return False
    t = st.R[R_TENANT, r]
    share = st.GWF[t]
    if share < 0:
        return False
    return np.float64(st.TEN[t]) >= share * np.float64(st.P[P_TB_CAP])


# ---------------------------------------------------------------- enqueue

@njit(cache=True)
def _shed_victim(st, prio_in):
    """The queued request a full queue displaces for an arrival of priority ``prio_in``: the
    least urgent sheddable band's newest entry, if that band is strictly less urgent; else -1."""
    P, R, GW = st.P, st.R, st.GW
    for b in range(P[P_FC_NBANDS] - 1, -1, -1):
        if GW[_blen(P, b)] == 0:
            continue
        best = -1
        for t in range(P[P_FC_NTEN]):
            tail = GW[_tail(P, b, t)]
            if tail >= 0 and (best < 0 or R[R_GW_SEQ, tail] > R[R_GW_SEQ, best]):
                best = tail
        if R[R_SLO_PRIO, best] >= 0 or R[R_SLO_PRIO, best] >= prio_in:
            return -1
        return best
    return -1


@njit(cache=True)
def gw_enqueue(st, t, r):
    """Admitted request r enters the gateway queue at time t (or is refused / displaces a
    sheddable one), then one dispatch attempt runs."""
    P, R, GW, CL = st.P, st.R, st.GW, st.CL
    b = R[R_GW_BAND, r]
    cap = P[P_FC_BAND_CAP]
    if cap > 0 and GW[_blen(P, b)] >= cap:
        R[R_STATE, r] = REQ_GW_REJECTED
        CL[CL_GW_REJECTED] += 1
        return
    depth = P[P_FC_MAX_DEPTH]
    if depth > 0 and CL[CL_GW_LEN] >= depth:
        victim = _shed_victim(st, R[R_SLO_PRIO, r]) if P[P_FC_SHED] != 0 else -1
        if victim < 0:
            R[R_STATE, r] = REQ_GW_REJECTED
            CL[CL_GW_REJECTED] += 1
            return
        _unlink(st, victim)
        R[R_STATE, victim] = REQ_SHED
        CL[CL_GW_SHED] += 1
    CL[CL_GW_SEQ] += 1
    R[R_GW_SEQ, r] = CL[CL_GW_SEQ]
    R[R_GW_ENQ, r] = t
    R[R_STATE, r] = REQ_GW_QUEUED
    _append(st, r)
    if P[P_FC_TTL] > 0:
        _cpush(st.CE, CL, t + P[P_FC_TTL], CE_GW_TTL, r)
    gw_try_dispatch(st, t)


@njit(cache=True)
def gw_expire(st, t, r):
    """TTL event of request r: it leaves the queue if it still waits there."""
    if st.R[R_STATE, r] == REQ_GW_QUEUED:
        _unlink(st, r)
        st.R[R_STATE, r] = REQ_EXPIRED
        st.CL[CL_GW_EXPIRED] += 1


@njit(cache=True)
def gw_tick(st, t):
    """Dispatch tick: one attempt, then the next tick while requests still wait."""
    if st.CL[CL_GW_LEN] > 0:
        gw_try_dispatch(st, t)
    if st.CL[CL_GW_LEN] > 0:
        _cpush(st.CE, st.CL, t + st.P[P_FC_TICK], CE_GW_TICK, 0)
    else:
        st.CL[CL_GW_TICK] = 0


# ---------------------------------------------------------------- dispatch

@njit(cache=True)
def _pick_flow(st, b):
    """The tenant whose flow band b serves next (the fairness policy), or -1 if it is empty."""
    P, R, GW = st.P, st.R, st.GW
    nt = P[P_FC_NTEN]
    if P[P_FC_FAIR] == FAIR_ROUND_ROBIN:
        last = GW[_cursor(P, b)]
        for k in range(1, nt + 1):
            t = (last + k) % nt if last >= 0 else k - 1
            if GW[_head(P, b, t)] >= 0:
                GW[_cursor(P, b)] = t
                return t
        return -1
    best = -1
    for t in range(nt):
        h = GW[_head(P, b, t)]
        if h >= 0 and (best < 0 or R[R_GW_SEQ, h] < R[R_GW_SEQ, GW[_head(P, b, best)]]):
            best = t
    return best


@njit(cache=True)
def _take_from_flow(st, b, t):
    """The request flow (b, t) gives up: its head, or under slo-deadline its earliest
    deadline (enqueue + its class's target; none = never), ties by enqueue order."""
    P, R, GW = st.P, st.R, st.GW
    r = GW[_head(P, b, t)]
    if P[P_FC_ORDER] == ORDER_SLO_DEADLINE:
        best, best_dl = r, INT64_MAX
        x = r
        while x >= 0:
            dl = R[R_GW_ENQ, x] + R[R_SLO_TARGET, x] if R[R_SLO_TARGET, x] > 0 else INT64_MAX
            if dl < best_dl:
                best, best_dl = x, dl
            x = R[R_GW_NEXT, x]
        r = best
    return r


@njit(cache=True)
def _dequeue(st, sat):
    """The request to dispatch at saturation ``sat`` (-1: hold)."""
    P, R, GW = st.P, st.R, st.GW
    nb = P[P_FC_NBANDS]
    if P[P_FC_ORDER] == ORDER_FIFO:
        if sat >= 1.0:
            return -1
        best = -1
        for b in range(nb):
            for t in range(P[P_FC_NTEN]):
                h = GW[_head(P, b, t)]
                if h >= 0 and (best < 0 or R[R_GW_SEQ, h] < R[R_GW_SEQ, best]):
                    best = h
        return best
    u = st.PF[PF_FC_USAGE]
    for b in range(nb):
        ceiling = 1.0 if nb == 1 else 1.0 - np.float64(b) * (1.0 - u) / np.float64(nb - 1)
        if sat >= ceiling:
            return -1
        if GW[_blen(P, b)] == 0:
            continue
        return _take_from_flow(st, b, _pick_flow(st, b))
    return -1


@njit(cache=True)
def _urgent_waiting(st):
    """True when a non-sheddable request waits in the queue."""
    P, R, GW = st.P, st.R, st.GW
    for b in range(P[P_FC_NBANDS]):
        if GW[_blen(P, b)] == 0:
            continue
        for t in range(P[P_FC_NTEN]):
            h = GW[_head(P, b, t)]
            if h >= 0:
                return R[R_SLO_PRIO, h] >= 0
    return False


@njit(cache=True)
def _evict_one(st, t):
    """Evict the most evictable in-flight sheddable request (queued or running on an
    instance): least urgent tier, then the latest dispatched, then the highest index.
    Returns True if one was evicted."""
    R = st.R
    best = -1
    for r in range(R.shape[1]):
        s = R[R_STATE, r]
        if (s != REQ_QUEUED and s != REQ_RUNNING) or R[R_SLO_PRIO, r] >= 0 \
                or R[R_GW_DISP, r] < 0 or R[R_PD, r] != 0:  # (P/D-split requests stay)
            continue
        if best < 0 or R[R_SLO_PRIO, r] < R[R_SLO_PRIO, best] or (
                R[R_SLO_PRIO, r] == R[R_SLO_PRIO, best] and R[R_GW_DISP, r] >= R[R_GW_DISP, best]):
            best = r
    if best < 0:
        return False
    evict_from_instance(st, R[R_INST, best], best, t)
    R[R_STATE, best] = REQ_EVICTED
    st.CL[CL_GW_EVICTED] += 1
    return True


@njit(cache=True)
def gw_try_dispatch(st, t):
    """One dispatch attempt at time t (schedules the tick first while requests wait)."""
    CL = st.CL
    if CL[CL_GW_LEN] == 0:
        return
    if CL[CL_GW_TICK] == 0:
        CL[CL_GW_TICK] = 1
        _cpush(st.CE, CL, t + st.P[P_FC_TICK], CE_GW_TICK, 0)
    sat = saturation(st)
    if sat >= 1.0 and st.P[P_FC_EVICT] != 0 and _urgent_waiting(st):
        if _evict_one(st, t):
            return
    r = _dequeue(st, sat)
    if r < 0:
        return
    _unlink(st, r)
    st.R[R_GW_DISP, r] = t
    st.R[R_STATE, r] = REQ_IN_PIPELINE
    _cpush(st.CE, CL, t + st.P[P_RT_LAT], CE_ROUTING, r)
