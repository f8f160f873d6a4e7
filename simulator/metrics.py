"""Metrics, fitness, anomaly counters and trace summary computed from a ``SimResult``.

Port of the arithmetic of BLIS @cbb0de7b: ``sim/metrics.go`` (per-instance / cluster metric
blocks), ``sim/metrics_utils.go`` (ms percentiles and means), ``sim/cluster/cluster.go``
(aggregation), ``sim/cluster/metrics.go`` (RawMetrics, fitness, anomaly detectors) and
``sim/trace/summary.go``.  numpy only; no formatting here (see ``blis_evo.output``).

Float arithmetic follows the reference operation by operation (sequential sums over sorted
data, the same association order in the interpolation formulas) so results match bit for bit.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .kernels.request_states import (REQ_COMPLETED, REQ_DROPPED, REQ_EVICTED, REQ_EXPIRED,
                                     REQ_GW_QUEUED, REQ_GW_REJECTED, REQ_IN_PIPELINE,
                                     REQ_NOT_ARRIVED, REQ_QUEUED, REQ_REJECTED, REQ_RUNNING,
                                     REQ_SHED)
from .result import SimResult

# ---------------------------------------------------------------------------------------------
# Low-level statistics
# ---------------------------------------------------------------------------------------------


def _seq_sum(values: np.ndarray) -> float:
    """Left-to-right float64 sum (the reference's plain loop; ``np.sum`` is pairwise)."""
    if values.size == 0:
        return 0.0
    return float(np.cumsum(values, dtype=np.float64)[-1])


def percentile_ms(sorted_values: np.ndarray, p: float) -> float:
    """The reference's ``CalculatePercentile``: linear interpolation at rank p/100*(n-1), in ms.

    ``sorted_values`` must be ascending (µs).  The /1000 is applied to each term separately,
    as in the reference, so the result is bit-identical to it.
    """
    n = len(sorted_values)
    if n == 0:
        return 0.0
    rank = p / 100.0 * float(n - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    lo_v = float(sorted_values[lo])
    if lo == hi:
        return lo_v / 1000
    hi_v = float(sorted_values[hi])
    return lo_v / 1000 + (hi_v - lo_v) * (rank - float(lo)) / 1000


def mean_ms(sorted_values: np.ndarray) -> float:
    """The reference's ``CalculateMean``: sequential sum / n / 1000 (0 for no data)."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    return (_seq_sum(sorted_values) / float(n)) / 1000


def sorted_rle(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort a run-length-encoded multiset by value: (sorted values, cumulative counts)."""
    counts = np.asarray(counts, dtype=np.int64)
    keep = counts > 0
    values = np.asarray(values, dtype=np.float64)[keep]
    counts = counts[keep]
    order = np.argsort(values, kind="stable")
    return values[order], np.cumsum(counts[order])


def rle_percentile_ms(sorted_values: np.ndarray, cum_counts: np.ndarray, p: float) -> float:
    """``percentile_ms`` of the multiset given by ``sorted_rle`` output, without expanding it:
    the values at the lower/upper rank are found by searching the cumulative counts."""
    n = int(cum_counts[-1]) if cum_counts.size else 0
    if n == 0:
        return 0.0
    rank = p / 100.0 * float(n - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    lo_v = float(sorted_values[np.searchsorted(cum_counts, lo, side="right")])
    if lo == hi:
        return lo_v / 1000
    hi_v = float(sorted_values[np.searchsorted(cum_counts, hi, side="right")])
    return lo_v / 1000 + (hi_v - lo_v) * (rank - float(lo)) / 1000


def weighted_percentile_ms(values: np.ndarray, counts: np.ndarray, p: float) -> float:
    """``percentile_ms`` of the multiset where ``values[k]`` occurs ``counts[k]`` times
    (``values`` need not be sorted or unique); never expands the multiset."""
    sv, cum = sorted_rle(values, counts)
    return rle_percentile_ms(sv, cum, p)


def weighted_mean_ms(values: np.ndarray, counts: np.ndarray) -> float:
    """``mean_ms`` of a run-length-encoded multiset: sum(values*counts)/total/1000.

    ITL samples are integer ticks in the reference, so the sum is done exactly in int64 when
    the values are integral (the reference's float loop is exact for such sums < 2**53).
    """
    counts = np.asarray(counts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    total = int(counts.sum()) if counts.size else 0
    if total == 0:
        return 0.0
    if np.all(values == np.floor(values)) and np.all(np.abs(values) < 2.0**62):
        s = float(int(np.dot(values.astype(np.int64), counts)))
    else:
        s = float(np.dot(values, counts.astype(np.float64)))
    return (s / float(total)) / 1000


def percentile(sorted_values: np.ndarray, p: float) -> float:
    """The cluster package's ``percentile`` (raw units, no /1000); input ascending."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    if n == 1:
        return float(sorted_values[0])
    rank = p / 100.0 * float(n - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    lo_v = float(sorted_values[lo])
    if lo == hi:
        return lo_v
    frac = rank - float(lo)
    return lo_v + frac * (float(sorted_values[hi]) - lo_v)


@dataclass(frozen=True)
class Distribution:
    """Summary of a latency sample in ticks (µs): the reference's cluster ``Distribution``."""

    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    min: float = 0.0
    max: float = 0.0
    count: int = 0

    @classmethod
    def from_values(cls, values: np.ndarray) -> "Distribution":
        """Build from raw values (any order); all zeros for an empty sample."""
        v = np.sort(np.asarray(values, dtype=np.float64))
        if v.size == 0:
            return cls()
        return cls(
            mean=_seq_sum(v) / float(v.size),
            p50=percentile(v, 50),
            p95=percentile(v, 95),
            p99=percentile(v, 99),
            min=float(v[0]),
            max=float(v[-1]),
            count=int(v.size),
        )


# ---------------------------------------------------------------------------------------------
# Metric blocks (MetricsOutput)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsBlock:
    """One ``=== Simulation Metrics ===`` block (the reference's ``MetricsOutput``).

    Field order is the reference's JSON order.  Latency fields, responses_per_sec and
    tokens_per_sec stay 0 unless completed_requests > 0, as in the reference.
    """

    instance_id: str
    completed_requests: int
    still_queued: int
    still_running: int
    injected_requests: int
    total_input_tokens: int
    total_output_tokens: int
    vllm_estimated_duration_s: float
    responses_per_sec: float = 0.0
    tokens_per_sec: float = 0.0
    e2e_mean_ms: float = 0.0
    e2e_p90_ms: float = 0.0
    e2e_p95_ms: float = 0.0
    e2e_p99_ms: float = 0.0
    ttft_mean_ms: float = 0.0
    ttft_p90_ms: float = 0.0
    ttft_p95_ms: float = 0.0
    ttft_p99_ms: float = 0.0
    itl_mean_ms: float = 0.0
    itl_p90_ms: float = 0.0
    itl_p95_ms: float = 0.0
    itl_p99_ms: float = 0.0
    scheduling_delay_p99_ms: float = 0.0
    kv_allocation_failures: int = 0


def _block(instance_id: str, result: SimResult, req_mask: np.ndarray, itl_mask: np.ndarray,
           completed: int, still_queued: int, still_running: int, in_tok: int, out_tok: int,
           sim_ended_us: int, kv_fail: int) -> MetricsBlock:
    duration = float(sim_ended_us) / float(1e6)
    base = dict(
        instance_id=instance_id,
        completed_requests=completed,
        still_queued=still_queued,
        still_running=still_running,
        injected_requests=completed + still_queued + still_running,
        total_input_tokens=in_tok,
        total_output_tokens=out_tok,
        vllm_estimated_duration_s=duration,
        kv_allocation_failures=kv_fail,
    )
    if completed <= 0:
        return MetricsBlock(**base)
    ttft = result.ttft_us[req_mask]
    ttft = np.sort(ttft[~np.isnan(ttft)])
    e2e = result.e2e_us[req_mask]
    e2e = np.sort(e2e[~np.isnan(e2e)])
    sd = result.sched_delay_us[req_mask]
    sd = np.sort(sd[sd >= 0].astype(np.float64))
    iv = result.itl_values_us[itl_mask]
    ic = result.itl_counts[itl_mask]
    isv, icum = sorted_rle(iv, ic)
    with np.errstate(divide="ignore", invalid="ignore"):
        rps = float(np.float64(completed) / np.float64(duration))
        tps = float(np.float64(out_tok) / np.float64(duration))
    return MetricsBlock(
        **base,
        responses_per_sec=rps,
        tokens_per_sec=tps,
        e2e_mean_ms=mean_ms(e2e),
        e2e_p90_ms=percentile_ms(e2e, 90),
        e2e_p95_ms=percentile_ms(e2e, 95),
        e2e_p99_ms=percentile_ms(e2e, 99),
        ttft_mean_ms=mean_ms(ttft),
        ttft_p90_ms=percentile_ms(ttft, 90),
        ttft_p95_ms=percentile_ms(ttft, 95),
        ttft_p99_ms=percentile_ms(ttft, 99),
        itl_mean_ms=weighted_mean_ms(iv, ic),
        itl_p90_ms=rle_percentile_ms(isv, icum, 90),
        itl_p95_ms=rle_percentile_ms(isv, icum, 95),
        itl_p99_ms=rle_percentile_ms(isv, icum, 99),
        scheduling_delay_p99_ms=percentile_ms(sd, 99),
    )


def instance_metrics(result: SimResult, i: int) -> MetricsBlock:
    """Metric block of instance ``i`` (``instance_id`` = ``instance_<i>``)."""
    return _block(
        f"instance_{i}", result,
        req_mask=np.asarray(result.req_instance) == i,
        itl_mask=np.asarray(result.itl_instance) == i,
        completed=int(result.inst_completed[i]),
        still_queued=int(result.inst_still_queued[i]),
        still_running=int(result.inst_still_running[i]),
        in_tok=int(result.inst_input_tokens[i]),
        out_tok=int(result.inst_output_tokens[i]),
        sim_ended_us=int(result.inst_sim_ended_us[i]),
        kv_fail=int(result.inst_kv_alloc_failures[i]),
    )


def cluster_metrics(result: SimResult) -> MetricsBlock:
    """Aggregate block (``instance_id`` = ``cluster``): counters summed, SimEndedTime = max."""
    n_inst = len(result.inst_completed)
    return _block(
        "cluster", result,
        req_mask=np.asarray(result.req_instance) >= 0,
        itl_mask=np.ones(len(result.itl_values_us), dtype=bool),
        completed=int(np.sum(result.inst_completed)),
        still_queued=int(np.sum(result.inst_still_queued)),
        still_running=int(np.sum(result.inst_still_running)),
        in_tok=int(np.sum(result.inst_input_tokens)),
        out_tok=int(np.sum(result.inst_output_tokens)),
        sim_ended_us=int(np.max(result.inst_sim_ended_us)) if n_inst else 0,
        kv_fail=int(np.sum(result.inst_kv_alloc_failures)),
    )


def instance_mean(values: np.ndarray) -> float:
    """Unweighted mean over instances, summed in instance order (CacheHitRate, KVThrashingRate)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0.0
    return _seq_sum(v) / float(v.size)


# ---------------------------------------------------------------------------------------------
# Anomaly detectors
# ---------------------------------------------------------------------------------------------


def count_slow_earlier_pairs(e2e: np.ndarray, factor: float = 2.0) -> int:
    """Number of pairs i < j with ``e2e[i] > factor * e2e[j]`` (sequence in arrival order).

    Replaces the reference's O(n^2) double loop.  Vectorised bottom-up merge counting: at
    level h, every pair whose indices fall in the same 2h-block but different h-halves is
    counted once, by rank-searching each right-half threshold among the sorted left half.
    Values are rank-compressed first so (block, rank) packs into one int64 key.
    """
    a = np.asarray(e2e, dtype=np.float64)
    m = a.size
    if m < 2:
        return 0
    b = a * factor
    uniq = np.unique(np.concatenate([a, b]))
    ra = np.searchsorted(uniq, a).astype(np.int64)
    rb = np.searchsorted(uniq, b).astype(np.int64)
    span = np.int64(uniq.size + 1)
    idx = np.arange(m, dtype=np.int64)
    total = 0
    h = 1
    while h < m:
        block = idx // (2 * h)
        is_left = ((idx // h) & 1) == 0
        left_keys = np.sort(block[is_left] * span + ra[is_left])
        rblock = block[~is_left]
        base = rblock * span
        hi = np.searchsorted(left_keys, base + span, side="left")
        lo = np.searchsorted(left_keys, base + rb[~is_left], side="right")
        total += int(np.sum(hi - lo))
        h *= 2
    return total


def detect_priority_inversions(result: SimResult, priority_policy: str) -> int:
    """cbb0de7b rule: per instance with >= 2 registered requests, take those with an E2E in
    arrival order (ties by request index) and count pairs i<j with e2e_i > 2*e2e_j; 0 for the
    constant policy."""
    if priority_policy in ("constant", ""):
        return 0
    inst = np.asarray(result.req_instance)
    e2e_all = np.asarray(result.e2e_us, dtype=np.float64)
    arrival = np.asarray(result.arrival_us)
    count = 0
    for i in range(len(result.inst_completed)):
        on = np.flatnonzero(inst == i)
        if on.size < 2:
            continue
        on = on[~np.isnan(e2e_all[on])]
        order = np.lexsort((on, arrival[on]))
        count += count_slow_earlier_pairs(e2e_all[on[order]])
    return count


def class_priority_inversions(instance, arrival_us, first_token_us, rank) -> int:
    """Requests overtaken by a less important class: how many requests have, on their
    instance, a lower-``rank`` request that arrived no earlier yet got its first token earlier
    (while this one got it later, or never).

    The search's priority-inversion anomaly.  Unlike the reference's E2E-ratio pair count
    (:func:`detect_priority_inversions`, which grows with output-length variance and is 0 for
    the constant policy by definition), it does not depend on the priority policy in use, only
    sees what a scheduler controls, and counts each request at most once, so divided by the
    request count it is a fraction in [0, 1].  ``first_token_us`` is NaN for requests that never
    got a token; requests with ``instance < 0`` (never routed) are ignored.  O(n log n).
    """
    inst = np.asarray(instance)
    arr = np.asarray(arrival_us, dtype=np.float64)
    ft = np.asarray(first_token_us, dtype=np.float64)
    rk = np.asarray(rank)
    if np.unique(rk).size < 2:
        return 0
    ft_hi = np.where(np.isnan(ft), np.inf, ft)
    total = 0
    for i in np.unique(inst[inst >= 0]):
        on = inst == i
        for hi in np.unique(rk[on]):
            h = on & (rk == hi)
            lo = on & (rk < hi) & ~np.isnan(ft)
            if not lo.any():
                continue
            order = np.argsort(arr[lo], kind="stable")
            lo_arr = arr[lo][order]
            suffix_min = np.minimum.accumulate(ft[lo][order][::-1])[::-1]
            k = np.searchsorted(lo_arr, arr[h], side="left")   # first lo arriving no earlier
            ok = k < lo_arr.size
            earliest = np.full(k.size, np.inf)
            earliest[ok] = suffix_min[k[ok]]
            total += int(np.count_nonzero(earliest < ft_hi[h]))
    return total


def detect_hol_blocking(result: SimResult) -> int:
    """Instances whose mean per-step wait-queue length exceeds twice the mean over instances.

    Needs >= 2 instances and >= 2 with step samples; only counted when that mean is > 0.
    """
    n_inst = len(result.inst_steps)
    if n_inst < 2:
        return 0
    avgs = [float(int(result.inst_waitq_sum[i])) / float(int(result.inst_steps[i]))
            for i in range(n_inst) if int(result.inst_steps[i]) > 0]
    if len(avgs) < 2:
        return 0
    total = 0.0
    for a in avgs:
        total += a
    mean = total / float(len(avgs))
    if mean <= 0:
        return 0
    return sum(1 for a in avgs if a > 2.0 * mean)


# ---------------------------------------------------------------------------------------------
# RawMetrics and fitness
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawMetrics:
    """Cluster-level metrics feeding the fitness function (the reference's ``RawMetrics``).

    ``ttft``/``e2e`` are in ticks (µs); throughput fields are 0 unless the run ended after
    time 0 with at least one completion.
    """

    ttft: Distribution = field(default_factory=Distribution)
    e2e: Distribution = field(default_factory=Distribution)
    requests_per_sec: float = 0.0
    tokens_per_sec: float = 0.0
    priority_inversions: int = 0
    hol_blocking_events: int = 0
    rejected_requests: int = 0
    cache_hit_rate: float = 0.0
    preemption_rate: float = 0.0
    kv_thrashing_rate: float = 0.0


@dataclass(frozen=True)
class FitnessResult:
    """Weighted fitness: ``score`` = sum of weight*component over keys in sorted order;
    ``components`` are the unweighted normalised values (keys sorted)."""

    score: float
    components: dict


def raw_metrics(result: SimResult, priority_policy: str) -> RawMetrics:
    """Compute ``RawMetrics`` (distributions, throughput, anomalies, KV rates) for one run."""
    routed = np.asarray(result.req_instance) >= 0
    ttft = np.asarray(result.ttft_us, dtype=np.float64)[routed]
    e2e = np.asarray(result.e2e_us, dtype=np.float64)[routed]
    completed = int(np.sum(result.inst_completed))
    sim_end = int(np.max(result.inst_sim_ended_us)) if len(result.inst_sim_ended_us) else 0
    rps = tps = 0.0
    if sim_end > 0 and completed > 0:
        dur = float(sim_end) / 1e6
        rps = float(completed) / dur
        tps = float(int(np.sum(result.inst_output_tokens))) / dur
    preempt_rate = 0.0
    if completed > 0:
        preempt_rate = float(int(np.sum(result.inst_preemptions))) / float(completed)
    return RawMetrics(
        ttft=Distribution.from_values(ttft[~np.isnan(ttft)]),
        e2e=Distribution.from_values(e2e[~np.isnan(e2e)]),
        requests_per_sec=rps,
        tokens_per_sec=tps,
        priority_inversions=detect_priority_inversions(result, priority_policy),
        hol_blocking_events=detect_hol_blocking(result),
        rejected_requests=int(result.rejected),
        cache_hit_rate=instance_mean(result.inst_cache_hit_rate),
        preemption_rate=preempt_rate,
        kv_thrashing_rate=instance_mean(result.inst_kv_thrashing_rate),
    )


_REF_RPS = 100.0
_REF_TPS = 10000.0
_REF_TICKS = 1000.0

VALID_FITNESS_KEYS: tuple[str, ...] = (
    "throughput", "tokens_per_sec",
    "p99_ttft", "p50_ttft", "mean_ttft",
    "p99_e2e", "p50_e2e", "mean_e2e",
)


def _component(raw: RawMetrics, key: str) -> float:
    if key == "throughput":
        return raw.requests_per_sec / (raw.requests_per_sec + _REF_RPS)
    if key == "tokens_per_sec":
        return raw.tokens_per_sec / (raw.tokens_per_sec + _REF_TPS)
    latency = {
        "p99_ttft": raw.ttft.p99, "p50_ttft": raw.ttft.p50, "mean_ttft": raw.ttft.mean,
        "p99_e2e": raw.e2e.p99, "p50_e2e": raw.e2e.p50, "mean_e2e": raw.e2e.mean,
    }
    return 1.0 / (1.0 + latency[key] / _REF_TICKS)


def _unknown_key_error(key: str) -> InputError:
    return InputError(f"--fitness-weights: unknown metric key {key!r}; valid keys: "
                      + ", ".join(VALID_FITNESS_KEYS))


def fitness(raw: RawMetrics, weights: dict) -> FitnessResult:
    """Normalise each weighted metric to [0, 1] and sum ``weight * value`` in sorted key order.

    Throughput keys: x/(x + ref) (ref 100 req/s, 10000 tok/s).  Latency keys:
    1/(1 + ticks/1000), so 1 ms -> 0.5.  Raises ``InputError`` on an unknown key.
    """
    keys = sorted(weights)
    for k in keys:
        if k not in VALID_FITNESS_KEYS:
            raise _unknown_key_error(k)
    score = 0.0
    comps: dict[str, float] = {}
    for k in keys:
        v = _component(raw, k)
        comps[k] = v
        score += v * float(weights[k])
    return FitnessResult(score=score, components=comps)


_DEC_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+")
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def _parse_go_float(s: str) -> float | None:
    """Accept what Go's strconv.ParseFloat accepts (minus underscore forms); None if invalid."""
    if _DEC_FLOAT.fullmatch(s) or _SPECIAL.fullmatch(s):
        return float(s)
    if _HEX_FLOAT.fullmatch(s):
        return float.fromhex(s)
    return None


def parse_fitness_weights(s: str) -> dict:
    """Parse ``key:value,key:value`` into a weight dict (empty string -> ``{}``).

    Entries are whitespace-trimmed; a repeated key keeps its last value.  Raises
    ``InputError`` (one line naming --fitness-weights) for a malformed entry, an unknown key,
    or a value that is not a finite non-negative number.
    """
    if s == "":
        return {}
    weights: dict[str, float] = {}
    for pair in s.split(","):
        pair = pair.strip()
        parts = pair.split(":", 1)
        if len(parts) != 2:
            raise InputError(f"--fitness-weights: invalid entry {pair!r}: expected key:value")
        key = parts[0].strip()
        raw_val = parts[1].strip()
        val = _parse_go_float(raw_val)
        if val is None:
            raise InputError(f"--fitness-weights: invalid value {raw_val!r} for {key!r}: "
                             "not a number")
        if math.isnan(val) or math.isinf(val) or val < 0:
            raise InputError(f"--fitness-weights: invalid weight for {key!r}: must be a finite "
                             f"non-negative number, got {raw_val}")
        weights[key] = val
    for key in sorted(weights):
        if key not in VALID_FITNESS_KEYS:
            raise _unknown_key_error(key)
    return weights


# ---------------------------------------------------------------------------------------------
# Per-SLO / per-tenant metrics, fairness, SLO attainment and trace summary
# ---------------------------------------------------------------------------------------------


def _labels(names: tuple) -> np.ndarray:
    """Display name per code: the empty name is reported as ``default`` (as the reference
    does for SLO classes)."""
    names = names if names else ("",)
    return np.array([(nm or "default") for nm in names], dtype=object)


def _group_labels(codes: np.ndarray | None, names: tuple, idx: np.ndarray) -> np.ndarray:
    """Display label of each request in ``idx`` (object array); all ``default``-or-names[0]
    when ``codes`` is None."""
    labels = _labels(names)
    if idx.size == 0:
        return np.array([], dtype=object)
    if codes is None:
        return np.full(idx.size, labels[0], dtype=object)
    return labels[np.asarray(codes)[idx].astype(np.int64)]


def _grouped_distributions(result: SimResult, codes: np.ndarray | None, names: tuple) -> dict:
    """``{label: (ttft Distribution, e2e Distribution)}`` over routed requests, keys sorted.

    A label appears when at least one of its requests has a TTFT or an E2E (the reference
    builds its class set from the TTFT and E2E maps).  Values in ticks (µs).
    """
    routed = np.flatnonzero(np.asarray(result.req_instance) >= 0)
    ttft = np.asarray(result.ttft_us, dtype=np.float64)[routed]
    e2e = np.asarray(result.e2e_us, dtype=np.float64)[routed]
    req_labels = _group_labels(codes, names, routed)
    out = {}
    has_any = ~np.isnan(ttft) | ~np.isnan(e2e)
    for lab in sorted(set(req_labels[has_any].tolist())):
        sel = req_labels == lab
        t = ttft[sel]
        e = e2e[sel]
        out[lab] = (Distribution.from_values(t[~np.isnan(t)]),
                    Distribution.from_values(e[~np.isnan(e)]))
    return out


def per_slo_distributions(result: SimResult) -> dict:
    """``{class: (ttft Distribution, e2e Distribution)}`` over routed requests, keys sorted.

    The reference's ``ComputePerSLODistributions``: TTFT over every request that got a first
    token, E2E over completed requests, in ticks (µs).  The empty class name is reported as
    ``default``; a class appears only if one of its requests has a TTFT or an E2E.
    """
    return _grouped_distributions(result, result.slo_class, result.slo_names)


def per_tenant_distributions(result: SimResult) -> dict:
    """``{tenant: (ttft Distribution, e2e Distribution)}``: ``per_slo_distributions`` grouped
    by tenant instead of SLO class (the empty tenant is reported as ``default``)."""
    return _grouped_distributions(result, result.tenant, result.tenant_names)


def _arrived(result: SimResult) -> np.ndarray:
    """Indices of the requests that reached the cluster before the horizon (any state other
    than not-arrived: rejected, in pipeline, queued, running, completed, dropped)."""
    return np.flatnonzero(np.asarray(result.req_state) != REQ_NOT_ARRIVED)


def tenant_throughput(result: SimResult) -> dict:
    """Per-tenant throughput: output tokens of completed requests per second of simulated time.

    ``{tenant: sum(n_out of the tenant's completed requests) / (SimEnded / 1e6)}`` with keys
    sorted, the empty tenant as ``default``.  SimEnded is the cluster's (max over instances),
    the same duration as ``tokens_per_sec``.  Every tenant with at least one request that
    reached the cluster is listed, so a tenant that was rejected or starved shows 0.  All 0
    when the run ended at time 0.

    Why output tokens/s rather than requests/s: the reference's throughput definition for
    calibration is ``total_output_tokens / sim_duration`` and its fitness has
    ``tokens_per_sec``; token throughput also does not reward serving many tiny requests.
    Only completed requests count (the tokens of requests still running at the horizon are not
    attributed), so the sum over tenants can be slightly below the cluster ``tokens_per_sec``.
    """
    idx = _arrived(result)
    labels = _group_labels(result.tenant, result.tenant_names, idx)
    sim_end = int(np.max(result.inst_sim_ended_us)) if len(result.inst_sim_ended_us) else 0
    done = ~np.isnan(np.asarray(result.e2e_us, dtype=np.float64)[idx])
    n_out = np.asarray(result.n_out, dtype=np.int64)[idx]
    out: dict[str, float] = {}
    for lab in sorted(set(labels.tolist())):
        sel = (labels == lab) & done
        tokens = int(np.sum(n_out[sel]))
        out[lab] = float(tokens) / (float(sim_end) / 1e6) if sim_end > 0 else 0.0
    return out


def jain_fairness_index(throughputs: dict) -> float:
    """Jain's fairness index ``(Σx)² / (N·Σx²)`` over the values of ``throughputs``.

    The reference's ``JainFairnessIndex``: sums accumulated in sorted key order; 0 for an
    empty dict or when every value is 0.  Equal values give 1, a single non-zero value among
    N gives 1/N.
    """
    n = float(len(throughputs))
    if n == 0:
        return 0.0
    sum_x = 0.0
    sum_x2 = 0.0
    for k in sorted(throughputs):
        x = float(throughputs[k])
        sum_x += x
        sum_x2 += x * x
    if sum_x2 == 0:
        return 0.0
    return (sum_x * sum_x) / (n * sum_x2)


SLO_TARGET_KEYS: tuple[str, ...] = ("ttft_ms", "tpot_ms", "e2e_ms")


def _check_targets(targets: dict) -> dict:
    """Validate ``{class: {ttft_ms/tpot_ms/e2e_ms: value}}``; returns the cleaned targets with
    ``None`` values dropped.  InputError on an unknown key or a non-finite/negative value."""
    clean: dict[str, dict[str, float]] = {}
    for cls, tg in (targets or {}).items():
        if tg is None:
            tg = {}
        if not isinstance(tg, dict):
            raise InputError(f"slo_targets[{cls!r}]: expected a mapping of "
                             + "/".join(SLO_TARGET_KEYS))
        entry: dict[str, float] = {}
        for key, val in tg.items():
            if key not in SLO_TARGET_KEYS:
                raise InputError(f"slo_targets[{cls!r}]: unknown key {key!r}; valid keys: "
                                 + ", ".join(SLO_TARGET_KEYS))
            if val is None:
                continue
            if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
                raise InputError(f"slo_targets[{cls!r}].{key}: expected a number, got {val!r}")
            v = float(val)
            if not math.isfinite(v) or v < 0:
                raise InputError(f"slo_targets[{cls!r}].{key}: must be a finite non-negative "
                                 f"number, got {val!r}")
            entry[key] = v
        clean[str(cls)] = entry
    return clean


def slo_attainment(result: SimResult, targets: dict) -> dict:
    """Fraction of requests meeting their SLO class's latency targets.

    ``targets`` maps a class name to ``{"ttft_ms": x, "tpot_ms": y, "e2e_ms": z}`` (any
    subset; milliseconds).  The empty class may be keyed ``""`` or ``default``.

    Extends the reference's ``SLOAttainment`` (E2E only) to TTFT and TPOT:

    * a request meets its class's targets when it completed and every given target holds:
      ``ttft_us/1000 <= ttft_ms``, ``e2e_us/1000 <= e2e_ms`` and, for requests with more than
      one output token, ``TPOT = (e2e_us - ttft_us)/(n_out - 1)/1000 <= tpot_ms`` (the design
      doc's TPOT; undefined, hence not checked, for n_out <= 1);
    * a class without targets (absent, or an empty mapping) counts as met, completed or not;
    * a request of a class with targets that did not complete (rejected, dropped, still
      queued/running/in the routing pipeline at the horizon) counts as a violation -- the
      reference counts missing data as a violation; counting rejected requests keeps an
      admission policy from raising attainment by shedding load.

    The population is every request that reached the cluster before the horizon.  Returns
    ``{class: fraction}`` for each class with at least one such request (keys sorted, the
    empty class as ``default``), then ``"overall"`` (met / total over all classes; 0 when there
    are no requests, as in the reference).  InputError on malformed targets.
    """
    clean = _check_targets(targets)
    idx = _arrived(result)
    labels = _group_labels(result.slo_class, result.slo_names, idx)
    ttft = np.asarray(result.ttft_us, dtype=np.float64)[idx]
    e2e = np.asarray(result.e2e_us, dtype=np.float64)[idx]
    n_out = np.asarray(result.n_out, dtype=np.int64)[idx]
    done = ~np.isnan(e2e)
    out: dict[str, float] = {}
    met_total = 0
    for lab in sorted(set(labels.tolist())):
        sel = labels == lab
        tg = clean.get(lab)
        if tg is None and lab == "default":
            tg = clean.get("")
        n = int(np.sum(sel))
        if not tg:
            met = n
        else:
            ok = done[sel].copy()
            t = ttft[sel]
            e = e2e[sel]
            with np.errstate(invalid="ignore", divide="ignore"):
                if "ttft_ms" in tg:
                    ok &= (t / 1000) <= tg["ttft_ms"]
                if "e2e_ms" in tg:
                    ok &= (e / 1000) <= tg["e2e_ms"]
                if "tpot_ms" in tg:
                    no = n_out[sel]
                    multi = no > 1
                    tpot = (e - t) / np.maximum(no - 1, 1).astype(np.float64) / 1000
                    ok &= ~multi | (tpot <= tg["tpot_ms"])
            met = int(np.sum(ok))
        out[lab] = met / n
        met_total += met
    total = int(idx.size)
    out["overall"] = met_total / total if total else 0.0
    return out


def trace_summary(result: SimResult) -> dict:
    """Decision-trace summary: admissions split admitted/rejected, routing target histogram
    (keys ``instance_<i>`` in string order; every routing, so re-routings by autoscaler drains
    count too) and regret mean/max over the routings (0 without counterfactuals)."""
    targets = np.asarray(result.route_target, dtype=np.int64)
    regret = np.asarray(result.route_regret, dtype=np.float64)
    admitted = int(result.admitted) if result.admitted >= 0 else int(targets.size)
    rejected = int(result.rejected)
    dist: dict[str, int] = {}
    if targets.size:
        ids, cnt = np.unique(targets, return_counts=True)
        pairs = sorted((f"instance_{int(k)}", int(c)) for k, c in zip(ids, cnt))
        dist = dict(pairs)
    mean_r = max_r = 0.0
    if targets.size:
        used = regret[: targets.size]
        mean_r = _seq_sum(used) / float(targets.size)
        if used.size:
            max_r = max(0.0, float(np.max(used)))
    return {
        "total_decisions": admitted + rejected,
        "admitted": admitted,
        "rejected": rejected,
        "unique_targets": len(dist),
        "target_distribution": dist,
        "mean_regret": mean_r,
        "max_regret": max_r,
    }


OUTCOMES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("completed", (REQ_COMPLETED,)),
    ("rejected", (REQ_REJECTED,)),
    ("gateway_rejected", (REQ_GW_REJECTED,)),
    ("shed", (REQ_SHED,)),
    ("expired", (REQ_EXPIRED,)),
    ("evicted", (REQ_EVICTED,)),
    ("dropped_unservable", (REQ_DROPPED,)),
    ("gateway_queued", (REQ_GW_QUEUED,)),
    ("in_pipeline", (REQ_IN_PIPELINE,)),
    ("queued", (REQ_QUEUED,)),
    ("running", (REQ_RUNNING,)),
)
"""Where a request that reached the cluster ended, each counted once: completed; rejected by
admission (tier-shed, gaie-legacy, token-bucket, a tenant budget, ...); refused by a full
gateway queue; shed from the gateway queue for a more urgent request; expired in the gateway
queue; evicted from its instance; dropped as unservable; or, at the horizon, still in the
gateway queue, between admission and its instance, queued or running on an instance."""


LOST_STATES: tuple[int, ...] = (REQ_REJECTED, REQ_GW_REJECTED, REQ_SHED, REQ_EXPIRED, REQ_EVICTED)
"""Requests the control plane turned away: rejected by admission, refused by a full gateway
queue, shed from it, expired in it, or evicted from an instance."""


LOST_OUTCOMES: tuple[str, ...] = ("rejected", "gateway_rejected", "shed", "expired", "evicted")
"""The :data:`OUTCOMES` of :data:`LOST_STATES`."""


def request_outcomes(result: SimResult) -> dict:
    """``{"overall": {outcome: count, ..., "injected": n}, "per_slo": {class: {...}}}`` over the
    requests that reached the cluster (:data:`OUTCOMES`; the outcomes sum to ``injected``).
    Classes are keyed as in ``per_slo`` (sorted, the empty class as ``default``)."""
    idx = _arrived(result)
    state = np.asarray(result.req_state)[idx]
    labels = _group_labels(result.slo_class, result.slo_names, idx)

    def count(sel):
        row = {name: int(np.sum(np.isin(state[sel], codes))) for name, codes in OUTCOMES}
        row["injected"] = int(np.sum(sel))
        return row
    return {"overall": count(np.ones(idx.size, dtype=bool)),
            "per_slo": {lab: count(labels == lab) for lab in sorted(set(labels.tolist()))}}


def gateway_summary(result: SimResult) -> dict | None:
    """Gateway flow control and tenant budgets: the run's counters (``peak_depth``,
    ``still_queued``, ``shed``, ``rejected`` (queue full), ``expired``, ``evicted``,
    ``budget_shed``) and the queue wait of dispatched requests in ms (``queue_wait``: mean,
    p50, p95, p99, max, count); None when neither was on."""
    if result.gateway is None:
        return None
    out = dict(result.gateway)
    enq = np.asarray(result.gw_enqueued_us, dtype=np.int64)
    disp = np.asarray(result.gw_dispatched_us, dtype=np.int64)
    sel = (enq >= 0) & (disp >= 0)
    wait = (disp[sel] - enq[sel]).astype(np.float64) / 1000.0
    if wait.size:
        out["queue_wait"] = {"mean_ms": float(np.mean(wait)),
                             "p50_ms": float(np.percentile(wait, 50)),
                             "p95_ms": float(np.percentile(wait, 95)),
                             "p99_ms": float(np.percentile(wait, 99)),
                             "max_ms": float(np.max(wait)), "count": int(wait.size)}
    else:
        out["queue_wait"] = {"count": 0}
    return out


def goodput(result: SimResult, targets: dict) -> dict:
    """Requests per second that completed within their class's targets (the
    :func:`slo_attainment` rule), per class and ``overall``, over the run's simulated duration
    (the cluster's SimEnded).  0 when the run ended at time 0."""
    att = slo_attainment(result, targets)
    idx = _arrived(result)
    labels = _group_labels(result.slo_class, result.slo_names, idx)
    sim_end = int(np.max(result.inst_sim_ended_us)) if len(result.inst_sim_ended_us) else 0
    secs = float(sim_end) / 1e6
    out: dict[str, float] = {}
    total = 0.0
    for lab in sorted(set(labels.tolist())):
        met = att[lab] * int(np.sum(labels == lab))
        total += met
        out[lab] = met / secs if secs > 0 else 0.0
    out["overall"] = total / secs if secs > 0 else 0.0
    return out
