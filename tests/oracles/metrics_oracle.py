"""Pure-Python oracles for simulator.metrics, written straight from the reference formulas
(BLIS @cbb0de7b sim/metrics_utils.go, sim/cluster/metrics.go), plus a fake-SimResult builder."""
from __future__ import annotations

import math

import numpy as np

from simulator.result import SimResult


def calc_percentile_ms(data, p):
    """CalculatePercentile: data sorted ascending (ticks); result in ms."""
    n = len(data)
    if n == 0:
        return 0.0
    rank = p / 100.0 * float(n - 1)
    lo, hi = int(math.floor(rank)), int(math.ceil(rank))
    if lo == hi:
        return float(data[lo]) / 1000
    if hi >= n:
        return float(data[n - 1]) / 1000
    return float(data[lo]) / 1000 + float(data[hi] - data[lo]) * (rank - float(lo)) / 1000


def calc_mean_ms(data):
    """CalculateMean: plain left-to-right float sum."""
    if not data:
        return 0.0
    s = 0.0
    for x in data:
        s += float(x)
    return (s / float(len(data))) / 1000


def cluster_percentile(sorted_vals, p):
    """sim/cluster percentile (raw units)."""
    n = len(sorted_vals)
    if n == 0:
        return 0.0
    if n == 1:
        return sorted_vals[0]
    rank = p / 100.0 * float(n - 1)
    lo, hi = int(math.floor(rank)), int(math.ceil(rank))
    if lo == hi:
        return sorted_vals[lo]
    frac = rank - float(lo)
    return sorted_vals[lo] + frac * (sorted_vals[hi] - sorted_vals[lo])


def distribution(values):
    """NewDistribution -> (mean, p50, p95, p99, min, max, count)."""
    if not values:
        return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    s = sorted(values)
    tot = 0.0
    for v in s:
        tot += v
    return (tot / len(s), cluster_percentile(s, 50), cluster_percentile(s, 95),
            cluster_percentile(s, 99), s[0], s[-1], len(s))


def slow_earlier_pairs_brute(seq):
    """The reference's O(n^2) loop: i < j with seq[i] > seq[j] * 2."""
    c = 0
    for i in range(len(seq) - 1):
        for j in range(i + 1, len(seq)):
            if seq[i] > seq[j] * 2.0:
                c += 1
    return c


def priority_inversions_brute(req_instance, arrival, e2e, n_inst, policy):
    """detectPriorityInversions with a stable (arrival, index) order."""
    if policy in ("constant", ""):
        return 0
    total = 0
    for i in range(n_inst):
        reqs = [k for k in range(len(req_instance)) if req_instance[k] == i]
        if len(reqs) < 2:
            continue
        have = [k for k in reqs if not math.isnan(e2e[k])]
        have.sort(key=lambda k: (arrival[k], k))
        total += slow_earlier_pairs_brute([e2e[k] for k in have])
    return total


def hol_brute(waitq_sum, steps):
    """detectHOLBlocking from per-instance (sum, count) of WaitQ samples."""
    if len(steps) < 2:
        return 0
    avgs = [waitq_sum[i] / steps[i] for i in range(len(steps)) if steps[i] > 0]
    if len(avgs) < 2:
        return 0
    mean = sum(avgs) / len(avgs)
    return sum(1 for a in avgs if mean > 0 and a > 2.0 * mean)


def make_result(*, n_inst, req_instance, arrival_us, ttft_us=None, e2e_us=None, itl_us=None,
                sched_delay_us=None, n_in=None, n_out=None, itl=None, inst=None,
                rejected=0, route_target=None, route_regret=None, trace_on=False,
                slo_class=None, slo_names=("",), tenant=None, tenant_names=("",)):
    """Hand-built SimResult.  ``itl`` = (values, counts, instance) or None; ``inst`` = dict of
    per-instance overrides (lists of length n_inst) for the inst_* fields."""
    n = len(req_instance)
    f = lambda v: np.full(n, np.nan) if v is None else np.asarray(v, dtype=np.float64)
    i64 = lambda v, fill: np.full(n, fill, np.int64) if v is None else np.asarray(v, np.int64)
    zi = lambda: np.zeros(n_inst, np.int64)
    fields = dict(
        inst_completed=zi(), inst_still_queued=zi(), inst_still_running=zi(), inst_dropped=zi(),
        inst_input_tokens=zi(), inst_output_tokens=zi(), inst_sim_ended_us=zi(),
        inst_preemptions=zi(), inst_kv_alloc_failures=zi(),
        inst_cache_hit_rate=np.zeros(n_inst), inst_kv_thrashing_rate=np.zeros(n_inst),
        inst_peak_kv_blocks=zi(), inst_kv_block_us=np.zeros(n_inst), inst_steps=zi(),
        inst_waitq_sum=zi(),
    )
    for k, v in (inst or {}).items():
        fields[k] = np.asarray(v, dtype=fields[k].dtype)
    e2e = f(e2e_us)
    if "inst_completed" not in (inst or {}):
        ri = np.asarray(req_instance)
        fields["inst_completed"] = np.array(
            [int(np.sum((ri == i) & ~np.isnan(e2e))) for i in range(n_inst)], np.int64)
    if itl is None:
        itl = ([], [], [])
    rt = np.asarray(route_target if route_target is not None else [], np.int32)
    rr = (np.asarray(route_regret, np.float64) if route_regret is not None
          else np.zeros(rt.size))
    state = np.where(np.asarray(req_instance) >= 0, 5, 0)
    return SimResult(
        n_in=i64(n_in, 0), n_out=i64(n_out, 0), req_state=state,
        req_instance=np.asarray(req_instance, np.int32), arrival_us=np.asarray(arrival_us, np.int64),
        routed_us=np.full(n, -1, np.int64), queued_us=np.full(n, -1, np.int64),
        scheduled_us=np.full(n, -1, np.int64), first_token_us=np.full(n, -1, np.int64),
        done_us=np.full(n, -1, np.int64), ttft_us=f(ttft_us), e2e_us=e2e, itl_us=f(itl_us),
        sched_delay_us=i64(sched_delay_us, -1), preemptions=np.zeros(n, np.int64),
        **fields,
        itl_values_us=np.asarray(itl[0], np.float64), itl_counts=np.asarray(itl[1], np.int64),
        itl_instance=np.asarray(itl[2], np.int32),
        rejected=rejected, admitted=-1, route_target=rt, route_regret=rr, trace_on=trace_on,
        num_instances=n_inst,
        slo_class=None if slo_class is None else np.asarray(slo_class, np.int32),
        slo_names=tuple(slo_names),
        tenant=None if tenant is None else np.asarray(tenant, np.int32),
        tenant_names=tuple(tenant_names),
    )


def result_from_fixture(case: dict) -> SimResult:
    """Rebuild a SimResult from a blis_parity fixture's per-request rows and blocks.

    TTFT/E2E/scheduling delay are recovered exactly (ticks are integers); ITL samples are not
    in the fixtures, so the ITL multiset is left empty.  Cache-hit rate comes from the printed
    KV section (4 decimals), rejected count from the anomaly/trace sections.
    """
    import re

    rows = case["requests"]
    idx = [int(r["requestID"].split("_")[1]) for r in rows]
    n = max(idx) + 1
    blocks = case["instances"] or [dict(case["cluster"], instance_id="instance_0")]
    n_inst = max(int(b["instance_id"].split("_")[1]) for b in blocks) + 1
    n_inst = max(n_inst, 1 + max(int(r["handled_by"].split("_")[1]) for r in rows))
    req_instance = np.full(n, -1)
    arrival = np.zeros(n, np.int64)
    ttft = np.full(n, np.nan)
    e2e = np.full(n, np.nan)
    itl = np.full(n, np.nan)
    sd = np.full(n, -1, np.int64)
    n_in = np.zeros(n, np.int64)
    n_out = np.zeros(n, np.int64)
    for k, r in zip(idx, rows):
        req_instance[k] = int(r["handled_by"].split("_")[1])
        arrival[k] = round(r["arrived_at"] * 1e6)
        if r["ttft_ms"] != 0:
            ttft[k] = round(r["ttft_ms"] * 1e3)
        if r["e2e_ms"] != 0:
            e2e[k] = round(r["e2e_ms"] * 1e3)
            itl[k] = r["itl_ms"]
        if r["scheduling_delay_ms"] != 0 or r["ttft_ms"] != 0:   # 0 is a real delay at alpha=0
            sd[k] = int(r["scheduling_delay_ms"])
        n_in[k] = r["num_prefill_tokens"]
        n_out[k] = r["num_decode_tokens"]
    inst = {k: [0] * n_inst for k in ("inst_completed", "inst_still_queued", "inst_still_running",
                                      "inst_input_tokens", "inst_output_tokens",
                                      "inst_sim_ended_us", "inst_steps", "inst_waitq_sum")}
    for b in blocks:
        i = int(b["instance_id"].split("_")[1])
        inst["inst_completed"][i] = b["completed_requests"]
        inst["inst_still_queued"][i] = b["still_queued"]
        inst["inst_still_running"][i] = b["still_running"]
        inst["inst_input_tokens"][i] = b["total_input_tokens"]
        inst["inst_output_tokens"][i] = b["total_output_tokens"]
        inst["inst_sim_ended_us"][i] = round(b["vllm_estimated_duration_s"] * 1e6)
        inst["inst_steps"][i] = 1
    sections = case["sections"]
    m = re.search(r"Cache Hit Rate: ([0-9.]+)", sections.get("KV Cache Metrics", ""))
    inst["inst_cache_hit_rate"] = [float(m.group(1)) if m else 0.0] * n_inst
    rejected = 0
    m = re.search(r"Rejected Requests: (\d+)", sections.get("Anomaly Counters", ""))
    if m:
        rejected = int(m.group(1))
    order = np.lexsort((np.arange(n), arrival))
    route_target = [int(req_instance[k]) for k in order if req_instance[k] >= 0]
    return make_result(
        n_inst=n_inst, req_instance=req_instance, arrival_us=arrival, ttft_us=ttft, e2e_us=e2e,
        itl_us=itl, sched_delay_us=sd, n_in=n_in, n_out=n_out, inst=inst, rejected=rejected,
        route_target=route_target, trace_on="--trace-level" in case["flags"],
    )


def fixture_weights(case: dict) -> dict | None:
    """The fixture's --fitness-weights flag parsed naively (key:value,...), or None."""
    flags = case["flags"]
    if "--fitness-weights" not in flags:
        return None
    s = flags[flags.index("--fitness-weights") + 1]
    return {k: float(v) for k, v in (p.split(":") for p in s.split(","))}
