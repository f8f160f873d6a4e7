"""SLO tiers (simulator/slo.py) and the policies that read them: tier-shed and gaie-legacy
admission, the slo-tier priority with priority-fcfs, the priority preemption policy.  Each test
builds a small scenario whose outcome follows from the policy's rule, argued in the test."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import simulator
from simulator.config import LatencyConfig, PolicyConfig, SimConfig
from simulator.kernels.request_states import REQ_COMPLETED, REQ_REJECTED
from simulator.slo import (DEFAULT_SLO_PRIORITIES, request_priorities, slo_priority)
from simulator.workload.types import workload_from_lists

LAT = LatencyConfig(alpha=(0.0, 0.0, 0.0), beta=(1000.0, 1.0, 10.0))  # 1 ms + 1 µs/token steps
NAMES = ("critical", "standard", "batch", "sheddable", "background")


def _workload(arrivals, classes, n_in=64, n_out=8):
    wl = workload_from_lists(arrivals, [[1 + (i % 7)] * n_in for i in range(len(arrivals))],
                             [[2] * n_out for _ in arrivals])
    return dataclasses.replace(wl, slo_class=np.array([NAMES.index(c) for c in classes],
                                                      dtype=np.int32), slo_names=NAMES)


def _run(wl, policy, **cfg):
    return simulator.run(SimConfig(latency=LAT, **cfg), policy, wl)


def test_default_priorities_and_v1_names():
    assert [slo_priority(c) for c in NAMES] == [4, 3, -1, -2, -3]
    assert slo_priority("realtime") == 4 and slo_priority("interactive") == 3
    assert slo_priority("") == 3 and slo_priority("gold") == 3
    assert slo_priority("interactive", {"standard": 1}) == 1  # v1 names follow their tier
    assert slo_priority("interactive", {"standard": 1, "interactive": 2}) == 2
    got = request_priorities(np.array([0, 2, 1], dtype=np.int32), ("batch", "", "critical"), 3)
    assert got.tolist() == [-1, 4, 3]


def _burst(n=60, seed=0):
    rng = np.random.default_rng(seed)
    classes = [NAMES[k] for k in rng.integers(0, 5, n)]
    return _workload([100 * i for i in range(n)], classes), classes


def test_tier_shed_sheds_only_below_the_minimum_priority_under_load():
    wl, classes = _burst()
    pol = PolicyConfig(admission="tier-shed").with_params(
        {"tier_shed_threshold": 4, "tier_shed_min_priority": 3})
    res = _run(wl, pol, max_running_reqs=2)
    prio = np.array([DEFAULT_SLO_PRIORITIES[c] for c in classes])
    rejected = res.req_state == REQ_REJECTED
    assert rejected.any()                          # the burst overloads the instance
    assert (prio[rejected] < 3).all()              # only batch / sheddable / background shed
    assert not rejected[prio >= 3].any()           # critical and standard never
    # the first arrivals find an empty instance (load 0 <= 4): admitted whatever their tier
    assert not rejected[:3].any()
    # no load threshold reached: nothing is shed
    calm = pol.with_params({"tier_shed_threshold": 1_000_000})
    assert not (_run(wl, calm, max_running_reqs=2).req_state == REQ_REJECTED).any()


def test_tier_shed_follows_priority_overrides():
    wl, classes = _burst()
    pol = dataclasses.replace(
        PolicyConfig(admission="tier-shed").with_params({"tier_shed_threshold": 4}),
        slo_priorities=(("batch", 5),))
    res = _run(wl, pol, max_running_reqs=2)
    rejected = res.req_state == REQ_REJECTED
    batch = np.array([c == "batch" for c in classes])
    assert rejected.any() and not rejected[batch].any()  # batch is now above standard


def test_gaie_legacy_never_rejects_non_sheddable_tiers():
    wl, classes = _burst(120, seed=1)
    pol = PolicyConfig(admission="gaie-legacy").with_params({"gaie_qd_threshold": 2.0})
    res = _run(wl, pol, max_running_reqs=1)
    prio = np.array([DEFAULT_SLO_PRIORITIES[c] for c in classes])
    rejected = res.req_state == REQ_REJECTED
    assert rejected.any() and (prio[rejected] < 0).all()
    assert not rejected[0]  # an idle instance is not saturated


def test_slo_tier_priority_serves_tiers_in_order():
    # one instance, one request at a time: six requests queue while the first runs; they are
    # then started in tier order (critical, standard, batch, ...), ties by arrival
    classes = ["batch", "background", "standard", "batch", "critical", "sheddable", "standard"]
    wl = _workload([0, 10, 20, 30, 40, 50, 60], classes)
    pol = PolicyConfig(priority="slo-tier", scheduler="priority-fcfs")
    res = _run(wl, pol, max_running_reqs=1)
    assert (res.req_state == REQ_COMPLETED).all()
    started = np.argsort(res.scheduled_us[1:], kind="stable") + 1
    prio = [DEFAULT_SLO_PRIORITIES[c] for c in classes]
    expected = sorted(range(1, 7), key=lambda r: (-prio[r], r))
    assert started.tolist() == expected
    fifo = _run(wl, PolicyConfig(), max_running_reqs=1)
    assert np.argsort(fifo.scheduled_us[1:], kind="stable").tolist() == list(range(6))


@pytest.mark.parametrize("policy, victim", [("fcfs", "critical"), ("priority", "batch")])
def test_preemption_victim(policy, victim):
    # a batch request starts first, a critical one right after: 48-token prompts (3 blocks of
    # 16) on a 7-block cache, 40 output tokens each.  Both run; when their growing outputs need
    # an 8th block one must go: fcfs takes the batch tail (the critical request, admitted
    # second), priority takes the least urgent tier (the batch request).
    wl = _workload([0, 1], ["batch", "critical"], n_in=48, n_out=40)
    res = _run(wl, PolicyConfig(preemption=policy), total_kv_blocks=7, max_running_reqs=4)
    assert (res.req_state == REQ_COMPLETED).all()
    preempted = {NAMES[int(wl.slo_class[r])] for r in range(2) if res.preemptions[r] > 0}
    assert preempted == {victim}


def test_code_policies_see_the_slo_priority_and_tenant_share():
    from simulator.codepolicy import load_code_policy
    # a priority code policy returning the tier reproduces the tier order of slo-tier (ties:
    # arrival, as priority-fcfs breaks them)
    src = ("def priority(age, input_tokens, preemptions, queue_depth, batch_size, "
           "kv_utilization, slo_priority, tenant_share):\n    return slo_priority\n")
    code = load_code_policy(src, "priority", "<tier>")
    classes = ["batch", "background", "standard", "batch", "critical", "sheddable", "standard"]
    wl = _workload([0, 10, 20, 30, 40, 50, 60], classes)
    by_code = _run(wl, PolicyConfig(priority="code", priority_code=code, scheduler="priority-fcfs"),
                   max_running_reqs=1)
    by_tier = _run(wl, PolicyConfig(priority="slo-tier", scheduler="priority-fcfs"),
                   max_running_reqs=1)
    assert np.array_equal(by_code.scheduled_us, by_tier.scheduled_us)
    # an admission code policy that rejects sheddable tiers and any request of a tenant holding
    # more than 1% of the capacity (256 running x 1 instance: 2 requests) in flight
    src = ("def admit(input_tokens, queue_depth, batch_size, pending, kv_utilization, "
           "num_instances, slo_priority, tenant_share):\n"
           "    return slo_priority >= 0 and tenant_share < 0.01\n")
    code = load_code_policy(src, "admission", "<adm>")
    wl2 = _workload([k * 10 for k in range(20)], ["critical"] * 10 + ["sheddable"] * 10)
    res = _run(wl2, PolicyConfig(admission="code", admission_code=code))
    rejected = res.req_state == REQ_REJECTED
    assert rejected[10:].all()
    # one tenant, 1 ms steps, 10 µs apart: requests pile up, so the tenant's share passes 1%
    # after three are in flight
    assert rejected[:10].any() and not rejected[:3].any()
