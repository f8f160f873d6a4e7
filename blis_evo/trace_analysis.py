"""Post-hoc analyses of one run's routing decisions, for the text trace summary.

Everything is reconstructed in Python from a :class:`simulator.result.SimResult` and the
:class:`simulator.workload.types.Workload` that produced it (no kernel changes, no extra trace
data): the routing-decision order, what prefix each instance was known to hold when a request
was routed, the outstanding requests per instance at a decision, tenant bursts and the
per-decision counterfactual regret the kernel records.  All functions are deterministic.

P/D disaggregation: one routing decision per request picks its decode instance and, when the
request is disaggregated, its prefill instance; the kernel traces the instance the request is
dispatched to (:func:`dispatch_instance`), and only instances of that pool compete.
Autoscaling: only instances routable at the decision's time compete (:func:`routable_windows`),
and a stopped instance's caches are forgotten.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.engine import ROUTER_BLOCK
from simulator.kernels.hashing import aligned_block_hashes
from simulator.kernels.request_states import REQ_NOT_ARRIVED
from simulator.result import SimResult
from simulator.workload.types import Workload

BURST_WINDOW_US = 1_000_000
"""Width of the arrival windows tenant bursts are detected in (1 s)."""

BURST_FACTOR = 2.0
"""A window is a burst of a tenant when it holds at least this many times the tenant's mean
arrivals per window (and at least :data:`BURST_MIN_REQUESTS`)."""

BURST_MIN_REQUESTS = 3


def dispatch_instance(result: SimResult) -> np.ndarray:
    """Per request, the instance its routing decision dispatched it to (-1 if never routed): the
    prefill instance of a request disaggregated under P/D (its decode instance, chosen in the
    same decision, is ``result.pd.req_decode_instance``), else ``req_instance``.  This is what
    the kernel's decision trace records as the target."""
    inst = np.asarray(result.req_instance).astype(np.int64)
    if result.pd is None:
        return inst
    pf = np.asarray(result.pd.req_prefill_instance).astype(np.int64)
    return np.where((inst >= 0) & (pf >= 0), pf, inst)


def decision_order(result: SimResult) -> np.ndarray:
    """Indices of the routed requests in routing-decision order.

    The kernel routes in time order and pops equal-time routing events in the order they were
    queued, which follows request index; so the order is by routing time, ties by index.
    """
    inst = np.asarray(result.req_instance)
    routed = np.flatnonzero(inst >= 0)
    t = np.asarray(result.routed_us)[routed]
    return routed[np.lexsort((routed, t))]


def decision_regret(result: SimResult, order: np.ndarray, counterfactual_k: int) -> np.ndarray | None:
    """Per-decision counterfactual regret aligned with ``order``, or None when the run recorded
    none (tracing off, ``counterfactual_k == 0``) or the recorded targets do not match the
    reconstructed order (then per-request attribution would be wrong; e.g. when autoscaler
    drains re-routed requests, the trace holds more routings than there are requests).  Under
    P/D the regret of a disaggregated request is over its prefill pick (see
    :func:`dispatch_instance`)."""
    targets = np.asarray(result.route_target)
    if not result.trace_on or counterfactual_k <= 0 or targets.size != order.size:
        return None
    if not np.array_equal(targets.astype(np.int64), dispatch_instance(result)[order]):
        return None
    return np.asarray(result.route_regret, dtype=np.float64)[: order.size]


def _us(seconds: float) -> int:
    return int(round(seconds * 1e6))


def routable_windows(result: SimResult) -> list | None:
    """Per instance, the [from, to) µs intervals in which it could receive routings in an
    autoscaled run (None when not autoscaled): from the end of its provisioning and model load
    (time 0 for the initial replicas) until a scale-down starts draining it or it stops; a
    draining instance taken back by a scale-up is routable again from that scale-up."""
    out = result.autoscale
    if out is None:
        return None
    ups, downs = {}, {}
    for e in out.events:
        t = _us(e.time_s)
        for k, i in enumerate(e.instances):
            if e.action == "up":
                ups.setdefault(int(i), []).append((t, _us(e.routable_at_s[k])
                                                   if k < len(e.routable_at_s) else t))
            else:
                downs.setdefault(int(i), []).append(t)
    windows: list = [[] for _ in range(int(result.num_instances))]
    for i, a, b in np.asarray(out.spans, dtype=np.int64).tolist():
        # toggles inside the span: (time, +1 routable again / -1 draining), starting routable
        # once its start's provisioning and load are done
        start = next((ra for t, ra in ups.get(i, []) if t == a), a)
        marks = [(t, -1) for t in downs.get(i, []) if a <= t < b]
        marks += [(ra, +1) for t, ra in ups.get(i, []) if a < t < b]
        on = start if start < b else None
        for t, kind in sorted(marks):
            if kind < 0 and on is not None:
                if t > on:
                    windows[i].append((on, t))
                on = None
            elif kind > 0 and on is None and t < b:
                on = max(t, start)
        if on is not None and b > on:
            windows[i].append((on, b))
    return windows


def routable_seconds(result: SimResult) -> np.ndarray | None:
    """Seconds each instance was routable in an autoscaled run (None when not autoscaled)."""
    win = routable_windows(result)
    if win is None:
        return None
    return np.array([sum(b - a for a, b in w) / 1e6 for w in win], dtype=np.float64)


def candidate_mask(result: SimResult, order: np.ndarray) -> np.ndarray:
    """(decisions, instances) bool: the instances that could have been chosen at each decision
    of ``order`` -- those of the dispatch instance's P/D pool, routable at that time when
    autoscaled (an instance routable until the run's end counts at the end)."""
    n = int(result.num_instances)
    mask = np.ones((order.size, n), dtype=bool)
    if result.pd is not None and order.size:
        pool = np.asarray(result.pd.inst_pool).astype(np.int64)
        mask &= pool[None, :] == pool[dispatch_instance(result)[order]][:, None]
    win = routable_windows(result)
    if win is not None:
        t = np.asarray(result.routed_us, dtype=np.int64)[order]
        end = int(result.autoscale.end_us)
        alive = np.zeros_like(mask)
        for i, w in enumerate(win):
            for a, b in w:
                alive[:, i] |= (t >= a) & ((t < b) | ((b == end) & (t == b)))
        mask &= alive
    return mask


@dataclass(frozen=True)
class PrefixAudit:
    """What the router knew about cached prefixes at each decision (arrays aligned with the
    decision order).

    ``blocks``: the request's full 16-token input blocks.  ``held``: (decisions, instances)
    leading blocks of the request each instance was known to hold, where an instance is known
    to hold every block of every request routed to it earlier (the router's prefix index
    without its LRU bound; under P/D both the prefill and the decode instance of a request
    learn its blocks; under autoscaling a stopped instance forgets everything).  ``chosen``:
    blocks held by the chosen (dispatch) instance; ``best_other`` / ``best_other_instance``:
    the most held by another instance that could have been chosen (:func:`candidate_mask`;
    0 / -1 when there is none).
    """

    blocks: np.ndarray
    held: np.ndarray
    chosen: np.ndarray
    best_other: np.ndarray
    best_other_instance: np.ndarray

    @property
    def routed_away(self) -> np.ndarray:
        """Decisions where another instance held more of the request's prefix than the chosen one."""
        return self.best_other > self.chosen

    @property
    def lost_blocks(self) -> np.ndarray:
        """Prefix blocks the best other instance held beyond the chosen one (0 when none)."""
        return np.maximum(self.best_other - self.chosen, 0)


def _leading_held(known: set, hashes: list) -> int:
    """Leading entries of ``hashes`` in ``known``.  Chained hashes make presence monotone
    (holding block k implies holding blocks < k), so a binary search suffices."""
    lo, hi = 0, len(hashes)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if hashes[mid - 1] in known:
            lo = mid
        else:
            hi = mid - 1
    return lo


def prefix_audit(result: SimResult, workload: Workload, order: np.ndarray,
                 block: int = ROUTER_BLOCK) -> PrefixAudit:
    """Replay the decisions in ``order`` against a per-instance prefix index (see
    :class:`PrefixAudit`); ``block`` is the router's hashing block (16 tokens, as the kernel's)."""
    n_in = np.ascontiguousarray(workload.n_in, dtype=np.int64)
    ptr = np.zeros(n_in.shape[0] + 1, dtype=np.int64)
    np.cumsum(n_in // block, out=ptr[1:])
    hashes = aligned_block_hashes(np.ascontiguousarray(workload.tokens, dtype=np.int32),
                                  np.ascontiguousarray(workload.token_ptr, dtype=np.int64),
                                  n_in, np.int64(block), ptr)
    n_inst = int(result.num_instances)
    inst = dispatch_instance(result)
    decode = (np.asarray(result.pd.req_decode_instance).astype(np.int64) if result.pd is not None
              else np.full(inst.shape[0], -1, dtype=np.int64))
    routed_us = np.asarray(result.routed_us, dtype=np.int64)
    # autoscaling: instance stops (before the run's end) in time order; each empties its caches
    stops: list = []
    if result.autoscale is not None:
        end = int(result.autoscale.end_us)
        stops = sorted((b, i) for i, _, b in np.asarray(result.autoscale.spans).tolist() if b < end)
    known = [set() for _ in range(n_inst)]
    held = np.zeros((order.size, n_inst), dtype=np.int64)
    k = 0
    for d, r in enumerate(order.tolist()):
        while k < len(stops) and stops[k][0] <= routed_us[r]:
            known[int(stops[k][1])].clear()
            k += 1
        h = hashes[ptr[r]:ptr[r + 1]].tolist()
        for i in range(n_inst):
            held[d, i] = _leading_held(known[i], h)
        known[int(inst[r])].update(h)
        if decode[r] >= 0:
            known[int(decode[r])].update(h)
    target = inst[order].astype(np.int64)
    rows = np.arange(order.size)
    chosen = held[rows, target] if order.size else np.zeros(0, dtype=np.int64)
    others = np.where(candidate_mask(result, order), held, -1)
    others[rows, target] = -1
    if n_inst > 1 and order.size:
        best_inst = np.argmax(others, axis=1)
        best = others[rows, best_inst]
        best_inst = np.where(best >= 0, best_inst, -1)
        best = np.maximum(best, 0)
    else:
        best_inst = np.full(order.size, -1, dtype=np.int64)
        best = np.zeros(order.size, dtype=np.int64)
    return PrefixAudit(blocks=(n_in[order] // block).astype(np.int64), held=held, chosen=chosen,
                       best_other=best.astype(np.int64), best_other_instance=best_inst.astype(np.int64))


def outstanding_at(result: SimResult, order: np.ndarray, d: int) -> np.ndarray:
    """Requests each instance had outstanding (routed earlier, not yet completed) when decision
    ``d`` of ``order`` was taken -- the router's view of the load (queue + batch + pending).
    Under P/D a disaggregated request loads its prefill instance until the instance releases
    its blocks and its decode instance from the routing on (the kernel counts it pending there)."""
    t = int(np.asarray(result.routed_us)[order[d]])
    earlier = order[:d]
    n = int(result.num_instances)
    done = np.asarray(result.done_us)[earlier]
    alive = (done < 0) | (done > t)
    if result.pd is None:
        inst = np.asarray(result.req_instance)[earlier][alive].astype(np.int64)
        return np.bincount(inst, minlength=n)
    pf = np.asarray(result.pd.req_prefill_instance)[earlier].astype(np.int64)
    dc = np.asarray(result.pd.req_decode_instance)[earlier].astype(np.int64)
    free = np.asarray(result.pd.prefill_free_us)[earlier]
    on_pf = (pf >= 0) & ((free < 0) | (free > t))
    on_dc = (dc >= 0) & alive
    return np.bincount(pf[on_pf], minlength=n) + np.bincount(dc[on_dc], minlength=n)


@dataclass(frozen=True)
class TenantBursts:
    """Burst windows of one tenant and how the realtime class fared inside them."""

    tenant: str
    windows: int
    requests: int
    misses_inside: int
    ttft_inside_ms: float
    ttft_outside_ms: float


def arrived_mask(result: SimResult) -> np.ndarray:
    """Requests that reached the cluster before the horizon."""
    return np.asarray(result.req_state) != REQ_NOT_ARRIVED


def tenant_bursts(result: SimResult, realtime: np.ndarray, missed: np.ndarray,
                  window_us: int = BURST_WINDOW_US) -> list[TenantBursts]:
    """Per tenant (with at least one burst window), the realtime TTFT misses that arrived in its
    burst windows and the realtime mean TTFT inside vs outside them; sorted by misses inside
    (descending), then tenant name.

    ``realtime``/``missed``: boolean request masks (the tightest-TTFT SLO class; its requests
    that missed the TTFT target).  Only arrived requests count.
    """
    if result.tenant is None:
        return []
    arrived = arrived_mask(result)
    arrival = np.asarray(result.arrival_us, dtype=np.int64)
    win = arrival // int(window_us)
    n_win = int(win[arrived].max()) + 1 if arrived.any() else 0
    tenant = np.asarray(result.tenant, dtype=np.int64)
    ttft_ms = np.asarray(result.ttft_us, dtype=np.float64) / 1000.0
    out = []
    for code, name in enumerate(result.tenant_names):
        mine = arrived & (tenant == code)
        if not mine.any() or n_win == 0:
            continue
        counts = np.bincount(win[mine], minlength=n_win)
        mean = counts.mean()
        burst_win = (counts >= BURST_FACTOR * mean) & (counts >= BURST_MIN_REQUESTS)
        if not burst_win.any():
            continue
        inside = np.zeros(arrival.shape[0], dtype=bool)
        inside[arrived] = burst_win[win[arrived]]
        rt_in = realtime & inside & ~np.isnan(ttft_ms)
        rt_out = realtime & arrived & ~inside & ~np.isnan(ttft_ms)
        out.append(TenantBursts(
            tenant=name or "default", windows=int(burst_win.sum()),
            requests=int(counts[burst_win].sum()),
            misses_inside=int(np.sum(missed & inside)),
            ttft_inside_ms=float(ttft_ms[rt_in].mean()) if rt_in.any() else float("nan"),
            ttft_outside_ms=float(ttft_ms[rt_out].mean()) if rt_out.any() else float("nan")))
    out.sort(key=lambda b: (-b.misses_inside, b.tenant))
    return out
