"""``run``: the one entry point of the engine.

Builds the struct-of-arrays state for a cluster simulation, encodes the policy as integer codes
and float parameters, runs the numba event loop and packs the outcome into a ``SimResult``.
Nothing here loops over requests in Python except cheap one-off preparation.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import types
from numba.typed import Dict, List

from . import codes, registry
from .config import PolicyConfig, SimConfig
from .kernels import cluster as kc
from .kernels.hashing import FNV_OFFSET, SEED, aligned_block_hashes, full_input_hashes
from .result import SimResult
from .workload.types import Workload

ROUTER_BLOCK = 16          # the reference's prefix scorer hashes 16-token blocks whatever the KV block size
ROUTER_LRU_CAPACITY = 10_000  # blocks remembered per instance by the router's prefix index

Reqs = namedtuple("Reqs", [
    "arrival", "n_in", "n_out", "tok_ptr", "tokens", "kvh_ptr", "kvh", "rh_ptr", "rh",
    "full_hash", "id_rank", "state", "inst", "pi", "num_new", "computed", "hwm", "prio", "ttft",
    "itl_sum", "routed_us", "queued_us", "sched_us", "first_us", "done_us", "sched_delay",
    "preempts", "seg_from", "last_emit", "last_emit_step", "ch_h", "ch_acc", "ch_len",
    "bl_start", "bl_len", "bl_cap"])
Insts = namedtuple("Insts", [
    "clock", "ev_size", "step_pending", "steps", "waitq_sum", "completed", "dropped", "in_tokens",
    "out_tokens", "preempts", "alloc_fail", "peak_kv", "kv_integral", "pending", "wq_head",
    "wq_len", "batch_len", "batch", "used", "free_head", "free_tail", "hits", "misses",
    "cpu_used", "cpu_hits", "cpu_miss", "thrash", "offloads", "pend_lat", "kv_clock",
    "snap_util", "snap_free", "snap_hit", "snap_last"])
KVState = namedtuple("KVState", [
    "ref", "inuse", "bhash", "ntok", "prv", "nxt", "hmap", "salt", "cpu_has", "cpu_hash",
    "cpu_time", "cpu_ntok", "arena", "arena_top"])
Params = namedtuple("Params", [
    "block", "total_blocks", "max_running", "max_sched", "long_thr", "lat_kind", "alpha0",
    "alpha1", "alpha2", "beta", "rp", "tp", "cpu_blocks", "offload_threshold", "bandwidth",
    "base_latency", "legacy", "horizon", "admission", "admission_latency", "routing_latency",
    "tb_cap", "tb_rate", "routing", "scorer_codes", "scorer_weights", "prefix_observer",
    "prio_code", "sched_code", "refresh_interval", "trace", "cf_k", "num_instances", "lru_cap"])
Scratch = namedtuple("Scratch", [
    "cached", "cached2", "cm_blk", "cm_was", "na_blk", "na_orig", "pf_pi", "pf_n", "dc_pi",
    "dc_n", "scores", "dim"])
Holders = namedtuple("Holders", ["ev_time", "ev_pay", "wq", "slog", "segs"])
PrefixIndex = namedtuple("PrefixIndex", ["map", "salt", "hash", "prev", "next", "head", "tail",
                                         "size"])
ClusterEvents = namedtuple("ClusterEvents", ["time", "prio", "seq", "req"])
State = namedtuple("State", ["rq", "ins", "kv", "p", "sc", "hold", "px", "ce", "cl", "clf",
                             "affinity", "route_target", "route_regret"])


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


def _encode_params(cfg: SimConfig, policy: PolicyConfig, scorer_codes, scorer_weights) -> Params:
    lat = cfg.latency
    alpha = tuple(lat.alpha) + (0.0,) * max(0, 3 - len(lat.alpha))
    beta = np.asarray(tuple(lat.beta) + (0.0,) * max(0, 3 - len(lat.beta)), dtype=np.float64)
    rp = np.asarray(lat.roofline_params if lat.roofline_params else (0.0,), dtype=np.float64)
    return Params(
        block=np.int64(cfg.block_size), total_blocks=np.int64(cfg.total_kv_blocks),
        max_running=np.int64(cfg.max_running_reqs), max_sched=np.int64(cfg.max_scheduled_tokens),
        long_thr=np.int64(cfg.long_prefill_token_threshold),
        lat_kind=np.int64(codes.LAT_ROOFLINE if lat.kind == "roofline" else codes.LAT_BLACKBOX),
        alpha0=np.float64(alpha[0]), alpha1=np.float64(alpha[1]), alpha2=np.int64(alpha[2]),
        beta=beta, rp=rp, tp=np.int64(max(lat.tp, 1)),
        cpu_blocks=np.int64(cfg.kv_cpu_blocks), offload_threshold=np.float64(cfg.kv_offload_threshold),
        bandwidth=np.float64(cfg.kv_transfer_bandwidth),
        base_latency=np.int64(cfg.kv_transfer_base_latency), legacy=bool(cfg.legacy_blis_quirks),
        horizon=np.int64(cfg.horizon), admission=np.int64(registry.code_of("admission", policy.admission)),
        admission_latency=np.int64(cfg.admission_latency), routing_latency=np.int64(cfg.routing_latency),
        tb_cap=np.float64(policy.token_bucket_capacity), tb_rate=np.float64(policy.token_bucket_refill_rate),
        routing=np.int64(registry.code_of("routing", policy.routing)),
        scorer_codes=scorer_codes, scorer_weights=scorer_weights,
        prefix_observer=bool(np.any(scorer_codes == codes.SCORER_PREFIX_AFFINITY)),
        prio_code=np.int64(registry.code_of("priority", policy.priority)),
        sched_code=np.int64(registry.code_of("scheduler", policy.scheduler)),
        refresh_interval=np.int64(cfg.snapshot_refresh_interval),
        trace=bool(cfg.trace_decisions), cf_k=np.int64(cfg.counterfactual_k),
        num_instances=np.int64(cfg.num_instances), lru_cap=np.int64(ROUTER_LRU_CAPACITY))


def _scorer_table(policy: PolicyConfig):
    """Scorer codes in configured order and weights normalised to sum to 1 (left-to-right sum)."""
    if registry.code_of("routing", policy.routing) != codes.ROUTE_WEIGHTED:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    total = 0.0
    for s in policy.scorers:
        total += s.weight
    sc_codes = np.array([registry.code_of("scorer", s.name) for s in policy.scorers], dtype=np.int64)
    weights = np.array([s.weight / total for s in policy.scorers], dtype=np.float64)
    return sc_codes, weights


def build_state(cfg: SimConfig, policy: PolicyConfig, wl: Workload) -> State:
    """Allocate every array of a run (one allocator for all state, sized up front)."""
    n = wl.num_requests
    N = cfg.num_instances
    B = cfg.block_size
    TB = cfg.total_kv_blocks
    n_in = np.ascontiguousarray(wl.n_in, dtype=np.int64)
    n_out = np.ascontiguousarray(wl.n_out, dtype=np.int64)
    tok_ptr = np.ascontiguousarray(wl.token_ptr, dtype=np.int64)
    tokens = np.ascontiguousarray(wl.tokens, dtype=np.int32)

    sc_codes, sc_weights = _scorer_table(policy)
    p = _encode_params(cfg, policy, sc_codes, sc_weights)

    kvh_ptr = _ptr_from_counts(n_in // B)
    kvh = aligned_block_hashes(tokens, tok_ptr, n_in, np.int64(B), kvh_ptr)
    if p.prefix_observer:
        if B == ROUTER_BLOCK:
            rh_ptr, rh = kvh_ptr, kvh
        else:
            rh_ptr = _ptr_from_counts(n_in // ROUTER_BLOCK)
            rh = aligned_block_hashes(tokens, tok_ptr, n_in, np.int64(ROUTER_BLOCK), rh_ptr)
    else:
        rh_ptr, rh = np.zeros(n + 1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    if p.routing == codes.ROUTE_PREFIX_AFFINITY:
        full_hash = full_input_hashes(tokens, tok_ptr, n_in, np.int64(B), kvh, kvh_ptr)
    else:
        full_hash = np.zeros(n, dtype=np.int64)
    id_rank = (_id_string_ranks(n) if p.sched_code != codes.SCHED_FCFS
               else np.zeros(n, dtype=np.int64))

    bl_cap = (n_in + n_out + B - 1) // B + 2
    bl_start = _ptr_from_counts(bl_cap)
    arena_size = int(bl_start[-1])
    arena = List()
    arena.append(np.empty(max(arena_size + arena_size // 4 + 1024, 1024), dtype=np.int64))

    def full(v, dtype=np.int64):
        return np.full(n, v, dtype=dtype)

    rq = Reqs(
        arrival=np.ascontiguousarray(wl.arrival_us, dtype=np.int64), n_in=n_in, n_out=n_out,
        tok_ptr=tok_ptr, tokens=tokens, kvh_ptr=kvh_ptr, kvh=kvh, rh_ptr=rh_ptr, rh=rh,
        full_hash=full_hash, id_rank=id_rank, state=full(0, np.int8), inst=full(-1),
        pi=full(0), num_new=full(0), computed=full(0), hwm=full(0), prio=full(0.0, np.float64),
        ttft=full(-1), itl_sum=full(0), routed_us=full(-1), queued_us=full(-1),
        sched_us=full(-1), first_us=full(-1), done_us=full(-1), sched_delay=full(-1),
        preempts=full(0), seg_from=full(-1), last_emit=full(-1), last_emit_step=full(-1),
        ch_h=full(SEED), ch_acc=full(FNV_OFFSET), ch_len=full(0), bl_start=bl_start[:-1].copy(),
        bl_len=full(0), bl_cap=bl_cap.copy())

    bcap = int(min(cfg.max_running_reqs, max(n, 1))) + 1

    def zi(dtype=np.int64):
        return np.zeros(N, dtype=dtype)

    free_head = np.arange(N, dtype=np.int64) * TB
    ins = Insts(
        clock=zi(), ev_size=zi(), step_pending=zi(), steps=zi(), waitq_sum=zi(), completed=zi(),
        dropped=zi(), in_tokens=zi(), out_tokens=zi(), preempts=zi(), alloc_fail=zi(),
        peak_kv=zi(), kv_integral=zi(np.float64), pending=zi(), wq_head=zi(), wq_len=zi(),
        batch_len=zi(), batch=np.zeros((N, bcap), dtype=np.int64), used=zi(),
        free_head=free_head, free_tail=free_head + TB - 1, hits=zi(), misses=zi(), cpu_used=zi(),
        cpu_hits=zi(), cpu_miss=zi(), thrash=zi(), offloads=zi(), pend_lat=zi(), kv_clock=zi(),
        snap_util=zi(np.float64), snap_free=zi(), snap_hit=zi(np.float64), snap_last=zi())

    nb = N * TB
    local = np.arange(nb, dtype=np.int64) % TB
    prv = np.arange(nb, dtype=np.int64) - 1
    nxt = np.arange(nb, dtype=np.int64) + 1
    prv[local == 0] = -1
    nxt[local == TB - 1] = -1
    tiered = cfg.kv_cpu_blocks > 0
    ncpu = nb if tiered else 1
    hmap = Dict.empty(types.int64, types.int64)
    kv = KVState(
        ref=np.zeros(nb, dtype=np.int32), inuse=np.zeros(nb, dtype=np.int8),
        bhash=np.zeros(nb, dtype=np.int64), ntok=np.zeros(nb, dtype=np.int32), prv=prv, nxt=nxt,
        hmap=hmap, salt=_salts(N, 1), cpu_has=np.zeros(ncpu, dtype=np.int8),
        cpu_hash=np.zeros(ncpu, dtype=np.int64), cpu_time=np.zeros(ncpu, dtype=np.int64),
        cpu_ntok=np.zeros(ncpu, dtype=np.int32), arena=arena,
        arena_top=np.array([arena_size], dtype=np.int64))

    max_in_blocks = int(n_in.max() // B) + 2 if n else 2
    max_new_blocks = int(max(n_in.max() if n else 0, 1) // B) + 3
    sc = Scratch(
        cached=np.zeros(max_in_blocks, dtype=np.int64), cached2=np.zeros(max_in_blocks, dtype=np.int64),
        cm_blk=np.zeros(max_in_blocks, dtype=np.int64), cm_was=np.zeros(max_in_blocks, dtype=np.int8),
        na_blk=np.zeros(max_new_blocks, dtype=np.int64), na_orig=np.zeros(max_new_blocks, dtype=np.int64),
        pf_pi=np.zeros(bcap, dtype=np.int64), pf_n=np.zeros(bcap, dtype=np.int64),
        dc_pi=np.zeros(bcap, dtype=np.int64), dc_n=np.zeros(bcap, dtype=np.int64),
        scores=np.zeros(N, dtype=np.float64), dim=np.zeros(N, dtype=np.float64))

    ev_cap = int(min(n, 1024)) + 3 * (bcap + 2) + 8
    ev_time, ev_pay, wq, slog = List(), List(), List(), List()
    for _ in range(N):
        ev_time.append(np.zeros(ev_cap, dtype=np.int64))
        ev_pay.append(np.zeros(ev_cap, dtype=np.int64))
        wq.append(np.zeros(64, dtype=np.int64))
        slog.append(np.zeros(1024, dtype=np.int64))
    segs = List()
    segs.append(np.zeros((max(n, 16), 5), dtype=np.int64))
    hold = Holders(ev_time=ev_time, ev_pay=ev_pay, wq=wq, slog=slog, segs=segs)

    lru_nodes = N * ROUTER_LRU_CAPACITY if p.prefix_observer else 1
    px = PrefixIndex(
        map=Dict.empty(types.int64, types.int64), salt=_salts(N, 7),
        hash=np.zeros(lru_nodes, dtype=np.int64), prev=np.full(lru_nodes, -1, dtype=np.int64),
        next=np.full(lru_nodes, -1, dtype=np.int64), head=np.full(N, -1, dtype=np.int64),
        tail=np.full(N, -1, dtype=np.int64), size=np.zeros(N, dtype=np.int64))
    ce = ClusterEvents(time=np.zeros(n + 1, dtype=np.int64), prio=np.zeros(n + 1, dtype=np.int64),
                       seq=np.zeros(n + 1, dtype=np.int64), req=np.zeros(n + 1, dtype=np.int64))
    n_routes = n if cfg.trace_decisions else 1
    return State(rq=rq, ins=ins, kv=kv, p=p, sc=sc, hold=hold, px=px, ce=ce,
                 cl=np.zeros(8, dtype=np.int64), clf=np.zeros(4, dtype=np.float64),
                 affinity=Dict.empty(types.int64, types.int64),
                 route_target=np.zeros(n_routes, dtype=np.int32),
                 route_regret=np.zeros(n_routes, dtype=np.float64))


def _finish(st: State, cfg: SimConfig, wl: Workload) -> SimResult:
    rq, ins, p = st.rq, st.ins, st.p
    N = cfg.num_instances
    itl_v, itl_c, itl_i = kc.collect_itl(st, np.int64(p.alpha2))
    completed = rq.state == kc.S_COMPLETED
    has_ttft = rq.ttft >= 0
    ttft = np.where(has_ttft, rq.ttft.astype(np.float64), np.nan)
    e2e = np.where(completed, (rq.ttft + rq.itl_sum).astype(np.float64), np.nan)
    denom = np.maximum(rq.n_out - 1, 1).astype(np.float64)
    itl = np.where(completed, np.where(rq.n_out > 0, (e2e - ttft) / denom, 0.0), np.nan)
    hits = ins.hits + ins.cpu_hits
    total = hits + ins.misses + ins.cpu_miss
    hit_rate = np.where(total > 0, hits / np.maximum(total, 1), 0.0)
    thrash = np.where(ins.offloads > 0, ins.thrash / np.maximum(ins.offloads, 1), 0.0)
    n_routes = int(st.cl[kc.CL_NROUTES])
    return SimResult(
        n_in=rq.n_in, n_out=rq.n_out, req_state=rq.state.copy(), req_instance=rq.inst.copy(),
        arrival_us=rq.arrival, routed_us=rq.routed_us, queued_us=rq.queued_us,
        scheduled_us=rq.sched_us, first_token_us=rq.first_us, done_us=rq.done_us,
        ttft_us=ttft, e2e_us=e2e, itl_us=itl, sched_delay_us=rq.sched_delay,
        preemptions=rq.preempts,
        inst_completed=ins.completed, inst_still_queued=ins.wq_len, inst_still_running=ins.batch_len,
        inst_dropped=ins.dropped, inst_input_tokens=ins.in_tokens,
        inst_output_tokens=ins.out_tokens,
        inst_sim_ended_us=np.minimum(ins.clock, np.int64(cfg.horizon)),
        inst_preemptions=ins.preempts, inst_kv_alloc_failures=ins.alloc_fail,
        inst_cache_hit_rate=hit_rate, inst_kv_thrashing_rate=thrash, inst_peak_kv_blocks=ins.peak_kv,
        inst_kv_block_us=ins.kv_integral, inst_steps=ins.steps, inst_waitq_sum=ins.waitq_sum,
        itl_values_us=itl_v, itl_counts=itl_c, itl_instance=itl_i,
        rejected=int(st.cl[kc.CL_REJECTED]),
        route_target=st.route_target[:n_routes].copy(), route_regret=st.route_regret[:n_routes].copy(),
        trace_on=bool(cfg.trace_decisions), num_instances=N,
        slo_class=wl.slo_class, slo_names=wl.slo_names, tenant=wl.tenant,
        tenant_names=wl.tenant_names)


def run(cfg: SimConfig, policy: PolicyConfig, workload: Workload) -> SimResult:
    """Simulate ``workload`` on a cluster configured by ``cfg`` under ``policy``.

    Pure: no I/O, no global state; the same inputs give identical outputs.
    """
    st = build_state(cfg, policy, workload)
    kc.run_loop(st)
    return _finish(st, cfg, workload)
