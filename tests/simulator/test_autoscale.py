"""Autoscaler: lifecycle invariants (hypothesis) and behaviour on step loads, oscillation and
warmup.  Expected values come from the configuration (delays, bounds), not from the code."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.autoscale.config import AutoscalerConfig, DelaySpec
from simulator.autoscale.policies import POLICIES
from simulator.config import LatencyConfig, PolicyConfig, SimConfig
from simulator.engine import run_with_state
from simulator.kernels import layout as L
from simulator.kernels.request_states import REQ_COMPLETED, REQ_DROPPED
from simulator.workload.types import workload_from_lists
from tests.oracles import sim_invariants as SI
from tests.simulator.test_properties import SETTINGS, latencies, traces

BASE_LAT = LatencyConfig(alpha=(0.0, 0.0, 0.0), beta=(1000.0, 0.0, 0.0))  # every step 1 ms


def _run(wl, asc, *, n0=1, routing="least-loaded", lat=BASE_LAT, blocks=4000, seed=42):
    cfg = SimConfig(num_instances=n0, total_kv_blocks=blocks, latency=lat, seed=seed)
    return run_with_state(cfg, PolicyConfig(routing=routing, autoscaler=asc), wl)


def _step_load(low_rate, high_rate, t_up, t_down, t_end, n_in=64, n_out=32):
    """Evenly spaced arrivals: low_rate/s, high_rate/s in [t_up, t_down), low_rate/s after."""
    ts, t = [], 0.0
    while t < t_end:
        ts.append(int(t * 1e6))
        t += 1.0 / (high_rate if t_up <= t < t_down else low_rate)
    n = len(ts)
    return workload_from_lists(ts, [[1] * n_in] * n, [[2] * n_out] * n)


# =========================================================================== invariants

@st.composite
def autoscalers(draw):
    lo = draw(st.integers(1, 3))
    hi = draw(st.integers(lo, 4))
    policy = draw(st.sampled_from(sorted(POLICIES)))
    params = ()
    if policy in ("threshold", "queue-depth-per-replica", "target-utilization"):
        params = (("cooldown_s", float(draw(st.sampled_from([0.0, 0.002])))),)
    if policy == "threshold":
        params += (("up_load", 2.0), ("down_load", 1.0))
    return AutoscalerConfig(
        policy=policy, params=params, min_replicas=lo, max_replicas=hi,
        initial_replicas=draw(st.integers(lo, hi)),
        interval_s=draw(st.sampled_from([0.001, 0.003, 0.01])),
        trigger_load_per_replica=draw(st.sampled_from([0, 2])),
        trigger_slo_attainment=draw(st.sampled_from([0.0, 0.9])),
        trigger_slo_window=draw(st.sampled_from([1, 5])),
        slo_ttft_ms=draw(st.sampled_from([0.05, 5.0, 1000.0])),
        provisioning_delay_s=DelaySpec("fixed", draw(st.sampled_from([0.0, 0.002, 0.01]))),
        model_load_time_s=DelaySpec("fixed", draw(st.sampled_from([0.0, 0.003]))),
        warmup_duration_s=draw(st.sampled_from([0.0, 0.005])),
        warmup_profile=draw(st.sampled_from(["linear", "exponential", "step"])),
        drain_policy=draw(st.sampled_from(["wait", "immediate", "redirect"])))


@SETTINGS
@given(tr=traces(max_n=30), lat=latencies(), asc=autoscalers(),
       routing=st.sampled_from(["round-robin", "least-loaded", "weighted", "prefix-affinity"]))
def test_lifecycle_invariants(tr, lat, asc, routing):
    res, s = _run(tr.workload(), asc, n0=asc.initial_replicas, routing=routing, lat=lat,
                  blocks=400)
    out = res.autoscale
    # min <= started replicas <= max after every decision
    reps = out.replica_timeline[:, 1]
    assert (reps >= asc.min_replicas).all() and (reps <= asc.max_replicas).all(), reps
    # at any instant at most max_replicas instances exist (provisioning .. draining)
    spans = out.spans
    for t in np.unique(spans[:, 1]):
        alive = ((spans[:, 1] <= t) & (t < spans[:, 2])).sum()
        assert alive <= asc.max_replicas
    # no routing to a non-routable instance: the kernel's check, and every request's final
    # routing lies inside a span of its instance after that start's provisioning + loading
    assert out.bad_routes == 0
    delay = int(round((asc.provisioning_delay_s.a + asc.model_load_time_s.a) * 1e6))
    for r in np.flatnonzero(res.req_instance >= 0):
        i, t = res.req_instance[r], res.routed_us[r]
        mine = spans[spans[:, 0] == i]
        ok = [(a == 0 and i < asc.initial_replicas) or a + delay <= t for a, b in mine[:, 1:]
              if a <= t <= b]
        assert any(ok), f"request {r} routed to {i} at {t}, spans {mine.tolist()}"
    # conservation: with no horizon every request ends completed or dropped, none is parked
    assert set(np.unique(res.req_state).tolist()) <= {REQ_COMPLETED, REQ_DROPPED}
    assert int(s.CL[L.CL_WAIT_LEN]) == 0
    assert int((res.req_state == REQ_COMPLETED).sum()) == int(res.inst_completed.sum())
    cfg = SimConfig(num_instances=asc.max_replicas, total_kv_blocks=400)
    SI.check_kv_conservation(s, cfg)
    SI.check_hash_map(s, cfg)
    assert (s.I[L.I_USED] == 0).all()
    assert int(s.CL[L.CL_CLOCK_REGRESS]) == 0


@settings(SETTINGS, max_examples=10)
@given(tr=traces(max_n=25), asc=autoscalers())
def test_autoscaled_runs_are_deterministic(tr, asc):
    a, _ = _run(tr.workload(), asc, n0=asc.initial_replicas)
    b, _ = _run(tr.workload(), asc, n0=asc.initial_replicas)
    assert a.autoscale.events == b.autoscale.events
    assert np.array_equal(a.autoscale.spans, b.autoscale.spans)
    for f in ("req_state", "req_instance", "done_us", "ttft_us"):
        assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f


def test_random_delays_are_deterministic_and_seeded():
    wl = _step_load(5, 200, 1.0, 3.0, 5.0)
    asc = AutoscalerConfig(policy="queue-depth-per-replica", params=(("target", 4.0), ("cooldown_s", 0.0)),
                           min_replicas=1, max_replicas=4, interval_s=0.25,
                           provisioning_delay_s=DelaySpec("uniform", 0.1, 0.5),
                           model_load_time_s=DelaySpec("exponential", 0.2))
    a = _run(wl, asc)[0].autoscale
    b = _run(wl, asc)[0].autoscale
    c = _run(wl, asc, seed=7)[0].autoscale
    assert np.array_equal(a.spans, b.spans) and a.events == b.events
    ups = [e for e in a.events if e.action == "up"]
    assert ups
    for e in ups:  # routable after provisioning (0.1..0.5 s) + load (random, >= 0)
        assert all(e.time_s + 0.1 <= t for t in e.routable_at_s)
    delays_a = [t - e.time_s for e in ups for t in e.routable_at_s]
    delays_c = [t - e.time_s for e in c.events if e.action == "up" for t in e.routable_at_s]
    assert len(set(delays_a)) == len(delays_a)        # drawn per start, not one fixed value
    assert delays_a != delays_c                        # another seed, other draws


# =========================================================================== behaviour

STEP_ASC = AutoscalerConfig(
    policy="threshold", params=(("up_load", 3.0), ("down_load", 1.0), ("cooldown_s", 1.0)),
    min_replicas=1, max_replicas=4, interval_s=0.5,
    provisioning_delay_s=DelaySpec("fixed", 2.0), model_load_time_s=DelaySpec("fixed", 1.0),
    warmup_duration_s=0.0)


@pytest.mark.parametrize("drain", ["wait", "immediate", "redirect"])
def test_step_load_scales_up_after_delay_and_back_down(drain):
    # one 1 ms-step instance serves a 64/32-token request in ~33 ms: 10/s is light, 400/s is not
    wl = _step_load(10, 400, t_up=5.0, t_down=15.0, t_end=30.0)
    asc = dataclasses.replace(STEP_ASC, drain_policy=drain)
    res, s = _run(wl, asc)
    out = res.autoscale
    ups = [e for e in out.events if e.action == "up"]
    downs = [e for e in out.events if e.action == "down"]
    assert ups and ups[0].time_s >= 5.0, out.events
    assert max(e.to_replicas for e in ups) > 1
    # the first new instance receives nothing before provisioning + model load have elapsed
    first = ups[0]
    new = first.instances[0]
    routed = res.routed_us[res.req_instance == new]
    assert routed.size and routed.min() >= (first.time_s + 3.0) * 1e6
    # load falls at 15 s: the pool shrinks back to min_replicas afterwards
    assert downs and downs[-1].time_s >= 15.0 and downs[-1].to_replicas == 1
    assert out.replica_timeline[-1, 1] == 1
    assert (res.req_state == REQ_COMPLETED).all()
    # cost: more than the 1 always-on replica, less than max_replicas for the whole run
    span_s = out.end_us / 1e6
    assert span_s < out.replica_seconds < asc.max_replicas * span_s
    assert out.avg_replicas == pytest.approx(out.replica_seconds / span_s)


@pytest.mark.parametrize("drain", ["immediate", "redirect", "wait"])
def test_drains_conserve_requests(drain):
    # busy instances with long decodes are drained every other tick
    wl = _step_load(200, 200, 0.0, 0.0, 2.0, n_out=400)
    asc = AutoscalerConfig(policy="oscillator", min_replicas=1, max_replicas=3, initial_replicas=2,
                           interval_s=0.25, drain_policy=drain)
    res, s = _run(wl, asc, n0=2, routing="round-robin")
    out = res.autoscale
    assert sum(e.action == "down" for e in out.events) >= 3
    if drain == "immediate":
        assert out.rerouted > 0
    if drain == "wait":
        assert out.rerouted == 0
    assert (res.req_state == REQ_COMPLETED).all()
    assert res.inst_completed.sum() == wl.num_requests
    SI.check_kv_conservation(s, SimConfig(num_instances=3, total_kv_blocks=4000))


@pytest.mark.parametrize("drain", ["immediate", "redirect"])
def test_rerouted_requests_count_their_input_tokens_once(drain):
    # the drains of test_drains_conserve_requests send queued (and running) requests back to the
    # router; a request's input tokens belong to the instance that finally queued it
    wl = _step_load(200, 200, 0.0, 0.0, 2.0, n_out=400)
    asc = AutoscalerConfig(policy="oscillator", min_replicas=1, max_replicas=3, initial_replicas=2,
                           interval_s=0.25, drain_policy=drain)
    res, _ = _run(wl, asc, n0=2, routing="round-robin")
    assert res.autoscale.rerouted > 0
    queued = res.queued_us >= 0
    assert int(res.inst_input_tokens.sum()) == int(res.n_in[queued].sum())
    for i in range(asc.max_replicas):
        mine = queued & (res.req_instance == i)
        assert int(res.inst_input_tokens[i]) == int(res.n_in[mine].sum()), i


def test_oscillator_triggers_the_anomaly_and_threshold_does_not():
    wl = _step_load(20, 20, 0.0, 0.0, 10.0)
    osc = AutoscalerConfig(policy="oscillator", min_replicas=1, max_replicas=3, interval_s=0.5,
                           oscillation_window_s=5.0)
    out = _run(wl, osc, n0=2)[0].autoscale
    assert out.oscillations >= 5
    assert [e.action for e in out.events[:4]] == ["up", "down", "up", "down"]
    calm = dataclasses.replace(STEP_ASC, oscillation_window_s=5.0)
    assert _run(wl, calm, n0=1)[0].autoscale.oscillations == 0


@pytest.mark.parametrize("profile", ["linear", "exponential", "step"])
def test_warmup_makes_a_new_instance_slower_until_warm(profile):
    # the pool starts at 1 and scales to 2 at the first tick; instance 1 then warms for 1 s
    wl = _step_load(200, 200, 0.0, 0.0, 4.0, n_in=16, n_out=64)
    asc = AutoscalerConfig(policy="queue-depth-per-replica", params=(("target", 1.0), ("cooldown_s", 100.0)),
                           min_replicas=1, max_replicas=2, interval_s=0.1,
                           warmup_duration_s=1.0, warmup_profile=profile, warmup_penalty=3.0)
    res, s = _run(wl, asc)
    steps = s.SLOG[1][:int(s.I[L.I_STEPS, 1])]
    assert steps.size > 10
    assert steps[0] > 1000 and steps[-1] == 1000          # penalised at first, base step once warm
    assert steps[0] <= 3000
    assert (np.diff(steps) <= 0).all()                     # the penalty only decays
    cold = res.autoscale.spans[res.autoscale.spans[:, 0] == 1][0, 1]
    assert cold == pytest.approx(0.1e6)
    plain = dataclasses.replace(asc, warmup_penalty=1.0)
    _, s1 = _run(wl, plain)
    assert (s1.SLOG[1][:int(s1.I[L.I_STEPS, 1])] == 1000).all()


def test_no_routable_instance_parks_requests_until_one_is_ready():
    # min 1: the only instance is drained (immediate) while a replacement provisions
    wl = _step_load(50, 50, 0.0, 0.0, 2.0)
    asc = AutoscalerConfig(policy="oscillator", params=(("period", 1.0),), min_replicas=1,
                           max_replicas=2, initial_replicas=2, interval_s=0.3,
                           provisioning_delay_s=DelaySpec("fixed", 0.2), drain_policy="immediate")
    res, s = _run(wl, asc, n0=2)
    assert (res.req_state == REQ_COMPLETED).all()
    assert res.autoscale.bad_routes == 0


def test_fixed_cluster_has_no_autoscale_outcome():
    wl = _step_load(10, 10, 0.0, 0.0, 1.0)
    cfg = SimConfig(num_instances=2, total_kv_blocks=400, latency=BASE_LAT)
    res, s = run_with_state(cfg, PolicyConfig(), wl)
    assert res.autoscale is None
    assert (s.I[L.I_ROUTABLE] == 1).all()
