"""Prefill/decode disaggregation (simulator/kernels/disagg.py): invariants as properties, and
behaviour checked against values computed independently from the α/β step model."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from blis_evo.stepmodel import StepModel
from simulator.config import INT64_MAX, DisaggConfig, LatencyConfig, PolicyConfig, SimConfig
from simulator.kernels import layout as L
from simulator.kernels.disagg import (PD_AWAIT, PD_DECODE, PD_PREFILL, PD_XFER, POOL_DECODE,
                                      POOL_PREFILL)
from simulator.engine import run_with_state
from simulator.kernels.request_states import REQ_COMPLETED, REQ_DROPPED, REQ_REJECTED
from simulator.workload.types import workload_from_lists
from tests.oracles import sim_invariants as SI
from tests.simulator.test_properties import latencies, policies, traces

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def pd_configs(draw):
    """A small disaggregated SimConfig with random pools, decider, link and backpressure."""
    p = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2))
    pipelining = draw(st.booleans())
    dc = DisaggConfig(
        prefill_replicas=p, decode_replicas=d,
        decider=draw(st.sampled_from(["always", "never", "prefix-threshold"])),
        prefix_threshold=draw(st.integers(0, 150)),
        bandwidth_gbps=draw(st.sampled_from([0.05, 1.0, 25.0])),
        base_latency_us=draw(st.integers(0, 2000)),
        granularity="block" if pipelining else draw(st.sampled_from(["request", "block"])),
        pipelining=pipelining,
        kv_bytes_per_token=float(draw(st.sampled_from([1024, 131072]))),
        backpressure_threshold=draw(st.sampled_from([0, 1, 3])),
        backpressure_retry_us=draw(st.integers(1, 3000)))
    return SimConfig(
        num_instances=p + d,
        horizon=draw(st.one_of(st.just(int(INT64_MAX)), st.integers(1, 200_000))),
        total_kv_blocks=draw(st.integers(16, 120)),
        block_size=draw(st.sampled_from([4, 8, 16])),
        max_running_reqs=draw(st.integers(1, 8)),
        max_scheduled_tokens=draw(st.integers(16, 512)),
        long_prefill_token_threshold=draw(st.integers(0, 64)),
        latency=draw(latencies()),
        admission_latency=draw(st.integers(0, 200)),
        routing_latency=draw(st.integers(0, 200)),
        trace_decisions=draw(st.booleans()),
        disaggregation=dc)


def _check_pd_invariants(cfg, res, stt):
    R = stt.R
    pd = res.pd
    B = cfg.block_size
    # single ownership at the (random) horizon: every block list lies on its R_INST instance and
    # ref counts match the block lists — a request's blocks are never on two instances
    SI.check_kv_conservation(stt, cfg)
    assert (pd.inst_pool[:cfg.disaggregation.prefill_replicas] == POOL_PREFILL).all()
    assert (pd.inst_pool[cfg.disaggregation.prefill_replicas:] == POOL_DECODE).all()
    dis = pd.req_prefill_instance >= 0
    assert (pd.inst_pool[pd.req_prefill_instance[dis]] == POOL_PREFILL).all()
    routed_dec = pd.req_decode_instance >= 0
    assert (pd.inst_pool[pd.req_decode_instance[routed_dec]] == POOL_DECODE).all()
    assert int(dis.sum()) == pd.disaggregated
    # a request not disaggregated is served on its decode instance
    mono = routed_dec & ~dis
    assert (res.req_instance[mono] == pd.req_decode_instance[mono]).all()
    phase = pd.req_phase
    on_prefill = np.isin(phase, (PD_PREFILL, PD_XFER))
    assert (res.req_instance[on_prefill] == pd.req_prefill_instance[on_prefill]).all()
    on_decode = np.isin(phase, (PD_AWAIT, PD_DECODE))
    assert (res.req_instance[on_decode] == pd.req_decode_instance[on_decode]).all()
    # causality: decode starts only after prefill finished and every block arrived (handover)
    adm = pd.decode_admit_us >= 0
    assert (phase[adm] == PD_DECODE).all()
    freed = pd.prefill_free_us >= 0
    assert (freed[adm]).all() and (pd.prefill_done_us[freed] >= 0).all()
    assert (pd.prefill_free_us[freed] >= pd.prefill_done_us[freed]).all()
    assert (pd.decode_admit_us[adm] >= pd.prefill_free_us[adm]).all()
    assert (R[L.R_XF_ARRIVE][freed] <= pd.prefill_free_us[freed]).all()
    first = dis & (res.first_token_us >= 0)
    assert (adm[first]).all(), "a disaggregated request emitted a token before decode admission"
    assert (res.first_token_us[first] > pd.decode_admit_us[first]).all()
    # the prefill instance holds the request's blocks until the handover, never after
    assert (R[L.R_BL_LEN][on_decode & ~adm] == 0).all()
    # transfer accounting: each transferred request moved its whole prompt once
    assert pd.transfers == int(freed.sum())
    sent = R[L.R_XF_SENT]
    total_blocks = (res.n_in + B - 1) // B
    assert (sent[freed] == total_blocks[freed]).all()
    assert pd.transfer_blocks == int(sent.sum())
    assert pd.transfer_queue == int((np.isin(phase, (PD_XFER, PD_AWAIT))).sum())
    if cfg.disaggregation.backpressure_threshold == 0:
        assert pd.backpressure == 0
    if cfg.disaggregation.decider == "never":
        assert pd.disaggregated == 0 and pd.transfers == 0
    if cfg.horizon == INT64_MAX:
        # conservation: every request completes or is dropped; nothing stays in transfer; no KV held
        s = res.req_state
        assert np.isin(s, (REQ_COMPLETED, REQ_DROPPED, REQ_REJECTED)).all()
        assert pd.transfer_queue == 0
        assert (stt.I[L.I_USED] == 0).all()
        assert (stt.I[L.I_PENDING] == 0).all()   # no routed request left unaccounted
        served_dis = dis & (s == REQ_COMPLETED)
        assert freed[served_dis].all()
        assert (stt.I[L.I_IN_TOKENS].sum() == res.n_in[s == REQ_COMPLETED].sum()
                + res.n_in[(s == REQ_DROPPED) & (SI.blocks_needed(res.n_in, res.n_out, B)
                                                 <= cfg.total_kv_blocks)].sum())
        done = s == REQ_COMPLETED
        assert (np.maximum(R[L.R_HWM][done] - res.n_in[done], 0)
                == np.maximum(res.n_out[done] - 1, 0)).all()


@SETTINGS
@given(trace=traces(max_in=120), cfg=pd_configs(), policy=policies(routing="weighted"))
def test_pd_invariants(trace, cfg, policy):
    res, stt = run_with_state(cfg, policy, trace.workload())
    _check_pd_invariants(cfg, res, stt)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(trace=traces(max_in=120), cfg=pd_configs(), policy=policies())
def test_pd_invariants_any_routing_and_determinism(trace, cfg, policy):
    wl = trace.workload()
    a, stt = run_with_state(cfg, policy, wl)
    _check_pd_invariants(cfg, a, stt)
    b, _ = run_with_state(cfg, policy, wl)
    for x, y in ((a, b), (a.pd, b.pd)):
        for f in dataclasses.fields(x):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if f.name == "pd":
                continue
            if isinstance(u, np.ndarray):
                assert np.array_equal(u, v, equal_nan=u.dtype.kind == "f"), f.name
            else:
                assert u == v, f.name


# ------------------------------------------------------------------------- behaviour

ALPHA = (150.0, 2.0, 7.0)
BETA = (900.0, 3.0, 40.0)
LAT = LatencyConfig(alpha=ALPHA, beta=BETA)


def _one_request(n_in, n_out, **dc_kw):
    wl = workload_from_lists([1000], [list(range(n_in))], [list(range(n_out))])
    dc = DisaggConfig(prefill_replicas=1, decode_replicas=1, **dc_kw)
    cfg = SimConfig(num_instances=2, total_kv_blocks=1000, latency=LAT, disaggregation=dc)
    return run_with_state(cfg, PolicyConfig(routing="round-robin"), wl)[0]


def test_single_request_ttft_includes_transfer_exactly():
    """TTFT = prefill-side queue delay + prefill step + transfer (base + ceil(bytes/bandwidth))
    + the decode-side step recomputing the last prompt token + α2, from the α/β step model."""
    n_in, n_out, B = 500, 6, 16
    bpt, gbps, base = 131072.0, 8.0, 1234
    res = _one_request(n_in, n_out, bandwidth_gbps=gbps, base_latency_us=base,
                       kv_bytes_per_token=bpt)
    sm = StepModel(ALPHA, BETA)
    n_blocks = math.ceil(n_in / B)
    transfer = base + math.ceil(n_blocks * B * bpt / (gbps * 1e3))
    expected = (sm.queue_delay(n_in) + sm.prefill_step(n_in) + transfer + sm.prefill_step(1)
                + ALPHA[2])
    assert res.ttft_us[0] == expected
    assert res.pd.transfers == 1 and res.pd.transfer_blocks == n_blocks
    assert res.pd.transfer_bytes == n_blocks * B * bpt
    # the rest decodes on the decode instance: e2e - ttft = (n_out - 1) token gaps
    assert res.e2e_us[0] - res.ttft_us[0] == (n_out - 1) * sm.token_gap()
    assert res.req_instance[0] == 1 and res.pd.req_prefill_instance[0] == 0


def test_transfer_latency_adds_one_for_one():
    slow = _one_request(300, 4, base_latency_us=5000)
    fast = _one_request(300, 4, base_latency_us=0)
    assert slow.ttft_us[0] - fast.ttft_us[0] == 5000


def test_pipelining_lowers_ttft():
    """A chunked prefill (long-prefill threshold) with per-block transfer: pipelining ships the
    blocks of finished chunks while later chunks compute, so the request's first token comes
    sooner than when every block waits for the prefill's end."""
    wl = workload_from_lists([0], [list(range(2000))], [list(range(5))])

    def ttft(pipelining):
        dc = DisaggConfig(prefill_replicas=1, decode_replicas=1, granularity="block",
                          pipelining=pipelining, bandwidth_gbps=2.0)
        cfg = SimConfig(num_instances=2, total_kv_blocks=1000, latency=LAT,
                        long_prefill_token_threshold=256, disaggregation=dc)
        return run_with_state(cfg, PolicyConfig(), wl)[0].ttft_us[0]

    assert ttft(True) < ttft(False)


def test_backpressure_under_overloaded_decode_pool():
    """Three prefill instances feed one decode instance that runs one request at a time: the
    decode transfer queue fills, prefill routing is throttled and pd_backpressure is counted;
    every request still completes."""
    n = 30
    wl = workload_from_lists(list(range(0, n * 200, 200)), [list(range(k, k + 64)) for k in range(n)],
                             [list(range(40))] * n)
    base = dict(prefill_replicas=3, decode_replicas=1, bandwidth_gbps=100.0)
    cfg = SimConfig(num_instances=4, total_kv_blocks=2000, latency=LAT, max_running_reqs=1)
    on = run_with_state(dataclasses.replace(cfg, disaggregation=DisaggConfig(
        backpressure_threshold=2, **base)), PolicyConfig(), wl)[0]
    off = run_with_state(dataclasses.replace(cfg, disaggregation=DisaggConfig(**base)),
                         PolicyConfig(), wl)[0]
    assert on.pd.backpressure > 0
    assert off.pd.backpressure == 0
    assert (on.req_state == REQ_COMPLETED).all()
    assert on.pd.transfers == n


def test_prefix_threshold_decider():
    """prefix-threshold disaggregates exactly the requests whose prompt (nothing cached yet on
    the decode instance) exceeds the threshold; never disaggregates nothing."""
    ins = [list(range(1000 * k, 1000 * k + n)) for k, n in enumerate([50, 400, 120, 900])]
    wl = workload_from_lists([0, 10, 20, 30], ins, [[1, 2, 3]] * 4)
    pol = PolicyConfig(routing="weighted")

    def run_with(decider):
        dc = DisaggConfig(prefill_replicas=1, decode_replicas=1, decider=decider,
                          prefix_threshold=200)
        cfg = SimConfig(num_instances=2, total_kv_blocks=1000, latency=LAT, disaggregation=dc)
        return run_with_state(cfg, pol, wl)[0]

    thr = run_with("prefix-threshold")
    assert (thr.pd.req_prefill_instance >= 0).tolist() == [False, True, False, True]
    never = run_with("never")
    assert never.pd.disaggregated == 0 and (never.req_instance == 1).all()
    assert (never.req_state == REQ_COMPLETED).all()


def test_request_dropped_on_its_prefill_instance_leaves_no_pending_load():
    """A request too large for any KV cache is dropped where its prefill runs; the decode
    instance chosen for it must not keep counting it as routed-not-yet-queued load."""
    lat = LatencyConfig(alpha=(1.0, 0.0, 1.0), beta=(1000.0, 1.0, 1.0))
    ins = [[7] * 2000] + [[i] * 32 for i in range(1, 6)]
    wl = workload_from_lists([0, 10, 20, 30, 40, 50], ins, [[1] * 8] * 6)
    cfg = SimConfig(num_instances=3, total_kv_blocks=64, latency=lat,
                    disaggregation=DisaggConfig(prefill_replicas=1, decode_replicas=2))
    res, stt = run_with_state(cfg, PolicyConfig(routing="least-loaded"), wl)
    assert res.req_state[0] == REQ_DROPPED and (res.req_state[1:] == REQ_COMPLETED).all()
    assert res.pd.req_decode_instance[0] >= 1
    assert stt.I[L.I_PENDING].tolist() == [0, 0, 0]


def test_code_routing_reads_prefix_match_when_disaggregated():
    """A code rule that follows prefix_match keeps each shared prefix on one decode instance in a
    P/D deployment, as it does on a monolithic cluster."""
    from simulator.codepolicy import load_code_policy
    rule = load_code_policy(
        "def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks,"
        " prefix_match, cache_hit_rate):\n"
        "    return prefix_match - 0.01 * (queue_depth + batch_size + pending)\n", "routing")
    rng = np.random.default_rng(0)
    prefixes = [rng.integers(1, 1000, 64).tolist() for _ in range(3)]
    ins = [prefixes[i // 4] + [5000 + i] * 16 for i in range(12)]
    wl = workload_from_lists([i * 10 for i in range(12)], ins, [[2] * 4] * 12)
    lat = LatencyConfig(alpha=(1.0, 0.0, 1.0), beta=(1000.0, 1.0, 1.0))
    pol = PolicyConfig(routing="code", routing_code=rule)
    cfg = SimConfig(num_instances=6, total_kv_blocks=256, latency=lat,
                    disaggregation=DisaggConfig(prefill_replicas=3, decode_replicas=3))
    res, _ = run_with_state(cfg, pol, wl)
    decode = res.pd.req_decode_instance
    for g in range(3):   # every request of a prefix group after the first follows the first
        assert len(set(decode[g * 4:(g + 1) * 4].tolist())) == 1
    assert len(set(decode.tolist())) == 3   # and the load term spreads the groups


def test_prefix_threshold_decider_keeps_a_prefix_index_without_a_prefix_scorer():
    """prefix-threshold counts only the uncached prompt even when no scorer reads prefixes: a
    repeated prompt is disaggregated the first time only."""
    lat = LatencyConfig(alpha=(1.0, 0.0, 1.0), beta=(1000.0, 1.0, 1.0))
    prompt = list(range(1, 321))
    wl = workload_from_lists([0, 100000], [prompt, prompt], [[1] * 8] * 2)
    cfg = SimConfig(num_instances=2, total_kv_blocks=256, latency=lat,
                    disaggregation=DisaggConfig(prefill_replicas=1, decode_replicas=1,
                                                decider="prefix-threshold",
                                                prefix_threshold=100))
    res, _ = run_with_state(cfg, PolicyConfig(routing="round-robin"), wl)
    assert res.pd.req_prefill_instance.tolist() == [0, -1]


def test_round_robin_cycles_each_pool_on_its_own():
    """Round-robin keeps one rotation per pool: with 2 prefill + 2 decode replicas, consecutive
    disaggregated requests alternate within both pools (a shared counter would advance twice per
    request and pin every request to one prefill and one decode replica)."""
    lat = LatencyConfig(alpha=(1.0, 0.0, 1.0), beta=(1000.0, 1.0, 1.0))
    wl = workload_from_lists([i * 1000 for i in range(8)], [[i + 1] * 64 for i in range(8)],
                             [[1] * 4] * 8)
    cfg = SimConfig(num_instances=4, total_kv_blocks=256, latency=lat,
                    disaggregation=DisaggConfig(prefill_replicas=2, decode_replicas=2))
    res, _ = run_with_state(cfg, PolicyConfig(routing="round-robin"), wl)
    assert res.pd.req_prefill_instance.tolist() == [0, 1] * 4
    assert res.pd.req_decode_instance.tolist() == [2, 3] * 4
