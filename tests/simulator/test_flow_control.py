"""Gateway flow control (kernels/gateway.py) and tenant budgets: behaviour tests whose expected
outcome follows from the rule under test (argued in each test), a conservation property over
random policies and loads, and determinism across processes."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator
from simulator.config import LatencyConfig, PolicyConfig, SimConfig
from simulator.kernels import request_states as S
from simulator.metrics import OUTCOMES, request_outcomes
from simulator.slo import DEFAULT_SLO_PRIORITIES
from simulator.workload.types import workload_from_lists

LAT = LatencyConfig(alpha=(0.0, 0.0, 0.0), beta=(2000.0, 1.0, 10.0))
NAMES = ("critical", "standard", "batch", "sheddable", "background")
TENANTS = ("tenant-a", "tenant-b", "tenant-c")
TERMINAL = (S.REQ_COMPLETED, S.REQ_REJECTED, S.REQ_GW_REJECTED, S.REQ_SHED, S.REQ_EXPIRED,
            S.REQ_EVICTED, S.REQ_DROPPED)


def _workload(n, seed, gap_us=300, n_out=16):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(NAMES), n)
    tenants = rng.integers(0, len(TENANTS), n)
    arrivals = np.cumsum(rng.integers(0, 2 * gap_us, n))
    wl = workload_from_lists(arrivals.tolist(), [[1 + (i % 11)] * 32 for i in range(n)],
                             [[3] * n_out for _ in range(n)])
    return dataclasses.replace(wl, slo_class=classes.astype(np.int32), slo_names=NAMES,
                               tenant=tenants.astype(np.int32), tenant_names=TENANTS)


def _gateway(**kw):
    params = {k: v for k, v in kw.items() if k not in ("detector", "order", "fairness")}
    return PolicyConfig(flow_control="gateway", saturation_detector=kw.get("detector", "concurrency"),
                        dispatch_order=kw.get("order", "priority"),
                        fairness=kw.get("fairness", "global-strict")).with_params(params)


def _run(wl, policy, **cfg):
    cfg.setdefault("latency", LAT)
    return simulator.run(SimConfig(**cfg), policy, wl)


def _prio(wl):
    return np.array([DEFAULT_SLO_PRIORITIES[NAMES[c]] for c in wl.slo_class])


def test_priority_order_never_dispatches_below_a_waiting_urgent_request():
    # one instance that takes one request at a time (concurrency detector, limit 1): the queue
    # builds up; whenever a request is dispatched, no more urgent request may be waiting (one
    # enqueued before that time and dispatched later)
    wl = _workload(150, seed=3)
    res = _run(wl, _gateway(max_concurrency=1))
    enq, disp, prio = res.gw_enqueued_us, res.gw_dispatched_us, _prio(wl)
    assert (res.req_state == S.REQ_COMPLETED).all()
    assert res.gateway["peak_depth"] > 10  # the queue really did build up
    for b in np.flatnonzero(disp >= 0):
        waiting = (enq < disp[b]) & (disp > disp[b])
        assert not (waiting & (prio > prio[b])).any(), b


def test_fifo_order_dispatches_in_enqueue_order_whatever_the_class():
    wl = _workload(120, seed=4)
    res = _run(wl, _gateway(max_concurrency=1, order="fifo"))
    disp = res.gw_dispatched_us
    order = np.argsort(disp, kind="stable")
    assert (np.diff(res.gw_enqueued_us[order]) >= 0).all()
    prio_res = _run(wl, _gateway(max_concurrency=1, order="priority"))
    assert not np.array_equal(np.argsort(prio_res.gw_dispatched_us, kind="stable"), order)


def test_no_detector_dispatches_at_once_and_matches_no_gateway():
    # saturation "never": every request leaves the queue at its enqueue time, so the run is the
    # run without a gateway
    wl = _workload(80, seed=5)
    res = _run(wl, _gateway(detector="never"))
    assert (res.gw_dispatched_us == res.gw_enqueued_us).all()
    plain = _run(wl, PolicyConfig())
    assert np.array_equal(res.ttft_us, plain.ttft_us, equal_nan=True)
    assert np.array_equal(res.e2e_us, plain.e2e_us, equal_nan=True)


def test_in_flight_eviction_evicts_only_sheddable_requests():
    # sheddable requests fill the instance first; critical ones arrive while it is saturated:
    # eviction must make room by removing sheddable (negative-priority) requests only
    n_shed, n_crit = 12, 6
    arrivals = [0] * n_shed + [5000 + 100 * k for k in range(n_crit)]
    wl = workload_from_lists(arrivals, [[1] * 32] * len(arrivals), [[2] * 200] * len(arrivals))
    classes = [NAMES.index("sheddable")] * n_shed + [NAMES.index("critical")] * n_crit
    wl = dataclasses.replace(wl, slo_class=np.array(classes, dtype=np.int32), slo_names=NAMES)
    pol = _gateway(max_concurrency=4, in_flight_eviction=1)
    res = _run(wl, pol)
    evicted = res.req_state == S.REQ_EVICTED
    assert evicted.any()
    assert (_prio(wl)[evicted] < 0).all()
    assert (res.req_state[n_shed:] == S.REQ_COMPLETED).all()
    off = _run(wl, pol.with_params({"in_flight_eviction": 0}))
    assert not (off.req_state == S.REQ_EVICTED).any()
    # eviction lets the critical requests start sooner
    assert np.nanmean(res.ttft_us[n_shed:]) < np.nanmean(off.ttft_us[n_shed:])


def test_queue_shedding_displaces_only_less_urgent_sheddable_requests():
    wl = _workload(200, seed=6, gap_us=100)
    res = _run(wl, _gateway(max_concurrency=1, max_gateway_queue_depth=8, queue_shedding=1))
    prio = _prio(wl)
    shed = res.req_state == S.REQ_SHED
    assert shed.any() and (prio[shed] < 0).all()
    refused = res.req_state == S.REQ_GW_REJECTED
    assert refused.any() and res.gateway["peak_depth"] <= 8
    no_shed = _run(wl, _gateway(max_concurrency=1, max_gateway_queue_depth=8))
    assert not (no_shed.req_state == S.REQ_SHED).any()
    # without shedding a full queue refuses every arrival, critical ones included; shedding
    # lets more critical requests in
    crit = prio == 4
    assert (res.req_state[crit] == S.REQ_COMPLETED).sum() > \
        (no_shed.req_state[crit] == S.REQ_COMPLETED).sum()


def test_request_ttl_expires_only_requests_that_waited_that_long():
    wl = _workload(120, seed=7, gap_us=100)
    ttl = 20_000
    res = _run(wl, _gateway(max_concurrency=1, request_ttl=ttl))
    expired = res.req_state == S.REQ_EXPIRED
    assert expired.any() and (res.gw_dispatched_us[expired] == -1).all()
    done = res.gw_dispatched_us >= 0
    assert (res.gw_dispatched_us[done] - res.gw_enqueued_us[done] <= ttl).all()


def test_tenant_budget_rejects_sheddable_requests_of_a_tenant_over_its_share():
    # capacity = 1 instance x 10 running = 10; tenant-a may hold 20% of it (2) in flight
    wl = _workload(200, seed=8, gap_us=100)
    pol = dataclasses.replace(PolicyConfig(), tenant_budgets=(("tenant-a", 0.2),))
    res = _run(wl, pol, max_running_reqs=10)
    prio = _prio(wl)
    tenant_a = np.array([TENANTS[t] == "tenant-a" for t in wl.tenant])
    rejected = res.req_state == S.REQ_REJECTED
    assert rejected.any()
    assert (tenant_a[rejected] & (prio[rejected] < 0)).all()
    assert res.gateway["budget_shed"] == int(rejected.sum())


policies = st.fixed_dictionaries({
    "detector": st.sampled_from(["never", "utilization", "concurrency"]),
    "order": st.sampled_from(["fifo", "priority", "slo-deadline"]),
    "fairness": st.sampled_from(["global-strict", "round-robin"]),
    "max_concurrency": st.integers(1, 6),
    "queue_depth_threshold": st.sampled_from([0.5, 2.0, 5.0]),
    "max_gateway_queue_depth": st.sampled_from([0, 3, 10]),
    "per_band_capacity": st.sampled_from([0, 2, 6]),
    "queue_shedding": st.integers(0, 1),
    "in_flight_eviction": st.integers(0, 1),
    "request_ttl": st.sampled_from([0, 5_000, 50_000]),
    "dispatch_tick_interval": st.sampled_from([100, 1000, 20_000]),
    "usage_limit_threshold": st.sampled_from([1.0, 0.5]),
})


@settings(max_examples=25, deadline=None)
@given(policies, st.integers(0, 10_000), st.sampled_from([50, 200, 1000]),
       st.sampled_from([1, 2]), st.sampled_from([0, 1]))
def test_conservation_every_request_ends_somewhere_once(kw, seed, gap, n_inst, admission):
    wl = _workload(60, seed=seed, gap_us=gap)
    pol = _gateway(**kw)
    if admission:
        pol = dataclasses.replace(pol, admission="tier-shed", tenant_budgets=(("tenant-b", 0.3),),
                                  slo_targets=(("critical", 2000), ("batch", 90_000)))
    res = _run(wl, pol, num_instances=n_inst, total_kv_blocks=40, max_running_reqs=4)
    # no horizon: every request reaches a terminal state (nothing left waiting anywhere)
    assert np.isin(res.req_state, TERMINAL).all()
    out = request_outcomes(res)["overall"]
    assert sum(out[name] for name, _ in OUTCOMES) == out["injected"] == 60
    g = res.gateway
    assert g["shed"] == out["shed"] and g["expired"] == out["expired"]
    assert g["evicted"] == out["evicted"] and g["rejected"] == out["gateway_rejected"]
    assert g["still_queued"] == 0 and res.rejected == out["rejected"]
    assert (_prio(wl)[res.req_state == S.REQ_EVICTED] < 0).all()
    assert (_prio(wl)[res.req_state == S.REQ_SHED] < 0).all()
    assert int(np.sum(res.inst_completed)) == out["completed"]


_SNIPPET = """
import json, sys
sys.path.insert(0, {root!r})
from tests.simulator.test_flow_control import _workload, _gateway, _run
res = _run(_workload(120, seed=11, gap_us=150), _gateway(max_concurrency=2, order="slo-deadline",
           fairness="round-robin", in_flight_eviction=1, queue_shedding=1,
           max_gateway_queue_depth=12))
print(json.dumps([res.req_state.tolist(), res.gw_dispatched_us.tolist(),
                  [None if x != x else x for x in res.ttft_us.tolist()]]))
"""


def test_determinism_across_processes():
    import pathlib
    root = str(pathlib.Path(__file__).resolve().parents[2])
    outs = [subprocess.run([sys.executable, "-c", _SNIPPET.format(root=root)], check=True,
                           capture_output=True, text=True).stdout for _ in range(2)]
    assert outs[0] == outs[1] and json.loads(outs[0])[1]
