"""simulator.metrics against pure-Python oracles of the reference formulas and the fixtures."""
from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import metrics as M
from simulator.errors import InputError
from tests.oracles import metrics_oracle as O

FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "fixtures",
                                         "blis_parity", "*.json")))

ints = st.integers(min_value=0, max_value=10_000_000)
pcts = st.one_of(st.sampled_from([0, 50, 90, 95, 99, 100]),
                 st.floats(min_value=0, max_value=100, allow_nan=False))


# --- percentiles and means ---------------------------------------------------------------------

def test_percentile_ms_small_cases():
    assert M.percentile_ms(np.array([]), 99) == 0.0
    assert M.percentile_ms(np.array([5000.0]), 99) == 5.0
    # n=11, p90 -> rank 9 exactly
    d = np.arange(11, dtype=float) * 1000
    assert M.percentile_ms(d, 90) == 9.0
    # rank 0.99*3 = 2.97 -> 3000/1000 + 1000*0.97/1000
    d = np.array([1000.0, 2000.0, 3000.0, 4000.0])
    assert M.percentile_ms(d, 99) == 3.0 + 1000.0 * (0.99 * 3 - 2) / 1000


@settings(max_examples=300, deadline=None)
@given(st.lists(ints, min_size=0, max_size=60), pcts)
def test_percentile_and_mean_match_oracle(vals, p):
    s = sorted(float(v) for v in vals)
    arr = np.array(s, dtype=float)
    assert M.percentile_ms(arr, p) == O.calc_percentile_ms(s, p)
    assert M.mean_ms(arr) == O.calc_mean_ms(s)
    assert M.percentile(arr, p) == O.cluster_percentile(s, p)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), max_size=50))
def test_distribution_matches_oracle(vals):
    d = M.Distribution.from_values(np.array(vals, dtype=float))
    assert (d.mean, d.p50, d.p95, d.p99, d.min, d.max, d.count) == O.distribution(vals)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50_000), st.integers(0, 6)), max_size=40), pcts)
def test_weighted_itl_percentile_equals_expanded(pairs, p):
    values = np.array([v for v, _ in pairs], dtype=float)
    counts = np.array([c for _, c in pairs], dtype=np.int64)
    expanded = sorted(v for v, c in pairs for _ in range(c))   # int64 samples, as AllITLs
    assert M.weighted_percentile_ms(values, counts, p) == O.calc_percentile_ms(expanded, p)
    assert M.weighted_mean_ms(values, counts) == O.calc_mean_ms(expanded)


# --- priority inversions -----------------------------------------------------------------------

def test_slow_earlier_pairs_basic():
    assert M.count_slow_earlier_pairs(np.array([])) == 0
    assert M.count_slow_earlier_pairs(np.array([5.0])) == 0
    assert M.count_slow_earlier_pairs(np.array([10.0, 5.0])) == 0      # not strictly > 2x
    assert M.count_slow_earlier_pairs(np.array([10.1, 5.0])) == 1
    assert M.count_slow_earlier_pairs(np.array([5.0, 100.0])) == 0     # later slower: fine
    assert M.count_slow_earlier_pairs(np.array([100.0, 1.0, 1.0, 60.0, 1.0])) == 4


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 20).map(float),
                          st.floats(min_value=0, max_value=1e7, allow_nan=False)), max_size=80))
def test_slow_earlier_pairs_matches_brute_force(seq):
    assert M.count_slow_earlier_pairs(np.array(seq, dtype=float)) == O.slow_earlier_pairs_brute(seq)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_priority_inversions_match_brute_force(data):
    n_inst = data.draw(st.integers(1, 4))
    n = data.draw(st.integers(0, 40))
    inst = data.draw(st.lists(st.integers(-1, n_inst - 1), min_size=n, max_size=n))
    arrival = data.draw(st.lists(st.integers(0, 10), min_size=n, max_size=n))   # many ties
    e2e = data.draw(st.lists(st.one_of(st.just(math.nan), st.integers(1, 30).map(float)),
                             min_size=n, max_size=n))
    res = O.make_result(n_inst=n_inst, req_instance=inst, arrival_us=arrival, e2e_us=e2e)
    for pol in ("constant", "", "slo-based", "inverted-slo"):
        assert M.detect_priority_inversions(res, pol) == O.priority_inversions_brute(
            inst, arrival, e2e, n_inst, pol)


def test_priority_inversions_instance_needs_two_registered_requests():
    # instance 0 has 2 registered requests, one without E2E -> no pair; instance 1 has a pair
    res = O.make_result(n_inst=2, req_instance=[0, 0, 1, 1], arrival_us=[0, 1, 0, 1],
                        e2e_us=[100.0, math.nan, 100.0, 10.0])
    assert M.detect_priority_inversions(res, "slo-based") == 1
    assert M.detect_priority_inversions(res, "constant") == 0


def test_priority_inversions_large_input_is_fast():
    rng = np.random.default_rng(1)
    n = 200_000
    res = O.make_result(n_inst=2, req_instance=rng.integers(0, 2, n),
                        arrival_us=np.sort(rng.integers(0, 10**9, n)),
                        e2e_us=rng.exponential(1e6, n))
    assert M.detect_priority_inversions(res, "slo-based") > 0


# --- HOL blocking -----------------------------------------------------------------------------

@pytest.mark.parametrize("wsum,steps,expected", [
    ([10], [1], 0),                       # single instance
    ([100, 0], [10, 0], 0),              # only one instance has samples
    ([0, 0, 0], [5, 5, 5], 0),           # mean 0
    ([100, 1, 1, 1], [10, 10, 10, 10], 1),  # 10 > 2 * 3.25
    ([30, 10], [10, 10], 0),             # 3 vs mean 2 -> not > 4
    ([90, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], 1),
    ([90, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1], 0),  # 90 vs mean 45: not > 90
])
def test_hol_blocking(wsum, steps, expected):
    n = len(steps)
    res = O.make_result(n_inst=n, req_instance=[], arrival_us=[],
                        inst={"inst_waitq_sum": wsum, "inst_steps": steps})
    assert M.detect_hol_blocking(res) == expected == O.hol_brute(wsum, steps)


# --- fitness ----------------------------------------------------------------------------------

def test_fitness_normalisation():
    raw = M.RawMetrics(ttft=M.Distribution(mean=1000.0, p50=1000.0, p99=3000.0),
                       e2e=M.Distribution(mean=0.0, p50=1000.0, p99=1000.0),
                       requests_per_sec=100.0, tokens_per_sec=10000.0)
    fr = M.fitness(raw, {"p50_ttft": 1.0, "mean_ttft": 1.0, "p99_ttft": 1.0, "mean_e2e": 2.0,
                         "p99_e2e": 0.0, "p50_e2e": 1.0, "throughput": 1.0, "tokens_per_sec": 1.0})
    assert fr.components == {"mean_e2e": 1.0, "mean_ttft": 0.5, "p50_e2e": 0.5, "p50_ttft": 0.5,
                             "p99_e2e": 0.5, "p99_ttft": 0.25, "throughput": 0.5,
                             "tokens_per_sec": 0.5}
    assert list(fr.components) == sorted(fr.components)
    assert fr.score == pytest.approx(2.0 + 0.5 + 0.5 + 0.5 + 0.25 + 0.5 + 0.5)
    assert M.fitness(raw, {}) == M.FitnessResult(0.0, {})
    with pytest.raises(InputError, match="--fitness-weights"):
        M.fitness(raw, {"latency": 1.0})


def test_parse_fitness_weights():
    assert M.parse_fitness_weights("") == {}
    assert M.parse_fitness_weights(" throughput : 0.5 , p99_ttft:1e-1,throughput:2") == {
        "throughput": 2.0, "p99_ttft": 0.1}
    assert M.parse_fitness_weights("mean_e2e:0x1p-2") == {"mean_e2e": 0.25}
    for bad in ("throughput", "throughput:abc", "throughput:nan", "throughput:inf",
                "throughput:-1", "throughput:1e400", "bogus:1", "throughput:1,", "throughput:1_0",
                ":1"):
        with pytest.raises(InputError) as ei:
            M.parse_fitness_weights(bad)
        msg = str(ei.value)
        assert "--fitness-weights" in msg and "\n" not in msg
    with pytest.raises(InputError, match="valid keys: throughput, tokens_per_sec"):
        M.parse_fitness_weights("bogus:1")


# --- blocks, raw metrics, trace summary --------------------------------------------------------

def _small_result():
    # 2 instances; request 3 unfinished (TTFT only), request 4 rejected/not routed
    return O.make_result(
        n_inst=2, req_instance=[0, 1, 0, 1, -1], arrival_us=[0, 10, 20, 30, 40],
        ttft_us=[1000, 2000, 3000, 4000, math.nan], e2e_us=[5000, 7000, 9000, math.nan, math.nan],
        itl_us=[10, 20, 30, math.nan, math.nan], sched_delay_us=[100, 200, 300, 400, -1],
        n_in=[5, 6, 7, 8, 9], n_out=[3, 3, 3, 3, 3],
        itl=([10, 20, 30, 10], [2, 2, 2, 1], [0, 1, 0, 0]),
        inst={"inst_completed": [2, 1], "inst_still_running": [0, 1],
              "inst_input_tokens": [12, 14], "inst_output_tokens": [6, 3],
              "inst_sim_ended_us": [2_000_000, 4_000_000], "inst_preemptions": [1, 2],
              "inst_kv_alloc_failures": [0, 3], "inst_cache_hit_rate": [0.5, 0.25],
              "inst_kv_thrashing_rate": [0.0, 0.1], "inst_steps": [10, 10],
              "inst_waitq_sum": [0, 50]},
        rejected=1, route_target=[0, 1, 0, 1], route_regret=[0.0, 0.5, 0.25, 0.0], trace_on=True)


def test_cluster_and_instance_blocks():
    r = _small_result()
    c = M.cluster_metrics(r)
    assert (c.instance_id, c.completed_requests, c.still_queued, c.still_running,
            c.injected_requests, c.total_input_tokens, c.total_output_tokens) == (
        "cluster", 3, 0, 1, 4, 26, 9)
    assert c.vllm_estimated_duration_s == 4.0
    assert c.responses_per_sec == 0.75 and c.tokens_per_sec == 2.25
    assert c.e2e_mean_ms == O.calc_mean_ms([5000.0, 7000.0, 9000.0])
    assert c.e2e_p99_ms == O.calc_percentile_ms([5000.0, 7000.0, 9000.0], 99)
    assert c.ttft_mean_ms == 2.5 and c.ttft_p90_ms == O.calc_percentile_ms([1000, 2000, 3000, 4000], 90)
    itls = sorted([10] * 2 + [20] * 2 + [30] * 2 + [10])
    assert c.itl_mean_ms == O.calc_mean_ms(itls)
    assert c.itl_p95_ms == O.calc_percentile_ms(itls, 95)
    assert c.scheduling_delay_p99_ms == O.calc_percentile_ms([100, 200, 300, 400], 99)
    assert c.kv_allocation_failures == 3
    b0 = M.instance_metrics(r, 0)
    assert b0.instance_id == "instance_0" and b0.vllm_estimated_duration_s == 2.0
    assert b0.itl_mean_ms == O.calc_mean_ms(sorted([10, 10, 30, 30, 10]))
    assert b0.ttft_p99_ms == O.calc_percentile_ms([1000.0, 3000.0], 99)
    # nothing completed -> only counters
    r2 = O.make_result(n_inst=1, req_instance=[0], arrival_us=[0], ttft_us=[5.0],
                       inst={"inst_completed": [0], "inst_still_running": [1],
                             "inst_sim_ended_us": [10]})
    b = M.cluster_metrics(r2)
    assert b.injected_requests == 1 and b.ttft_mean_ms == 0 and b.responses_per_sec == 0


def test_raw_metrics_and_trace_summary():
    r = _small_result()
    raw = M.raw_metrics(r, "constant")
    assert raw.ttft == M.Distribution(*O.distribution([1000.0, 2000.0, 3000.0, 4000.0]))
    assert raw.e2e.count == 3 and raw.e2e.max == 9000.0
    assert raw.requests_per_sec == 3 / 4.0 and raw.tokens_per_sec == 9 / 4.0
    assert raw.preemption_rate == 1.0
    assert raw.cache_hit_rate == 0.375 and raw.kv_thrashing_rate == 0.05
    assert raw.hol_blocking_events == 0        # 5 vs mean 2.5: not > 5
    assert raw.rejected_requests == 1 and raw.priority_inversions == 0
    ts = M.trace_summary(r)
    assert ts == {"total_decisions": 5, "admitted": 4, "rejected": 1, "unique_targets": 2,
                  "target_distribution": {"instance_0": 2, "instance_1": 2},
                  "mean_regret": 0.1875, "max_regret": 0.5}


def test_trace_summary_target_order_is_string_order():
    r = O.make_result(n_inst=12, req_instance=[], arrival_us=[], route_target=[2, 10, 2, 1])
    ts = M.trace_summary(r)
    assert list(ts["target_distribution"]) == ["instance_1", "instance_10", "instance_2"]
    assert ts["mean_regret"] == 0.0 and ts["max_regret"] == 0.0


def test_per_slo_distributions():
    r = O.make_result(n_inst=1, req_instance=[0, 0, 0, -1], arrival_us=[0, 1, 2, 3],
                      ttft_us=[10.0, 20.0, 30.0, math.nan], e2e_us=[100.0, math.nan, 300.0, math.nan],
                      slo_class=[0, 1, 0, 2], slo_names=("", "batch", "rt"))
    d = M.per_slo_distributions(r)
    assert list(d) == ["batch", "default"]
    assert d["default"][0].count == 2 and d["default"][1].mean == 200.0
    assert d["batch"][1].count == 0


# --- reference fixtures ------------------------------------------------------------------------

_NON_ITL = [f for f in M.MetricsBlock.__dataclass_fields__ if not f.startswith("itl_")]


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_blocks_match_fixture_numbers(path):
    case = json.load(open(path))
    res = O.result_from_fixture(case)
    got = M.cluster_metrics(res)
    for f in _NON_ITL:
        if f in case["cluster"]:
            assert getattr(got, f) == case["cluster"][f], f
    for blk in case["instances"]:
        got = M.instance_metrics(res, int(blk["instance_id"].split("_")[1]))
        for f in _NON_ITL:
            if f in blk:
                assert getattr(got, f) == blk[f], (blk["instance_id"], f)


def _class_inversions_brute(inst, arrival, first_token, rank):
    """Definition, request by request: i counts if some j on its instance with a lower rank,
    arriving no earlier, got a first token before i did (i's missing token counts as never)."""
    count = 0
    n = len(inst)
    for i in range(n):
        if inst[i] < 0:
            continue
        fi = math.inf if math.isnan(first_token[i]) else first_token[i]
        count += any(inst[j] == inst[i] and rank[j] < rank[i] and arrival[j] >= arrival[i]
                     and not math.isnan(first_token[j]) and first_token[j] < fi for j in range(n))
    return count


def test_class_priority_inversions_examples():
    # interactive (rank 1) arrives at 0, batch (rank 0) at 5 and is served first: 1 inversion
    assert M.class_priority_inversions([0, 0], [0, 5], [100, 50], [1, 0]) == 1
    # overtaken by two batch requests: still one overtaken request
    assert M.class_priority_inversions([0, 0, 0], [0, 5, 6], [100, 50, 60], [1, 0, 0]) == 1
    # served in arrival order: none; different instances: none; same rank: none
    assert M.class_priority_inversions([0, 0], [0, 5], [50, 100], [1, 0]) == 0
    assert M.class_priority_inversions([0, 1], [0, 5], [100, 50], [1, 0]) == 0
    assert M.class_priority_inversions([0, 0], [0, 5], [100, 50], [1, 1]) == 0
    # the important request never got a token while the later one did: an inversion
    assert M.class_priority_inversions([0, 0], [0, 5], [math.nan, 50], [1, 0]) == 1
    # the batch request arrived first: serving it first is not an inversion
    assert M.class_priority_inversions([0, 0], [5, 0], [100, 50], [1, 0]) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 2), st.integers(0, 20),
                          st.one_of(st.integers(0, 40).map(float), st.just(math.nan)),
                          st.integers(0, 2)), max_size=40))
def test_class_priority_inversions_matches_definition(rows):
    inst, arrival, ft, rank = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    got = M.class_priority_inversions(np.array(inst, dtype=np.int64), np.array(arrival, dtype=float),
                                      np.array(ft, dtype=float), np.array(rank, dtype=np.int64))
    assert got == _class_inversions_brute(inst, arrival, ft, rank)
    assert got <= sum(1 for x in inst if x >= 0)
