"""The cluster event queue stays within the room engine.build_state gives it.

Autoscaled slots keep at most one pending lifecycle event: a start schedules its transitions one
at a time, and cancels and restarts delete the slot's pending one.  Before that, every start
pushed three events and a cancelled start left them in the queue, so fast up/down cycles with
long provisioning delays pushed past the queue's end.  A push beyond the room raises."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.autoscale.config import AutoscalerConfig, DelaySpec
from simulator.kernels import layout as L
from simulator.kernels.cevents import CE_LIFECYCLE, CE_ROUTING, cpush, cremove
from simulator.kernels.goheap import ckey_pop
from simulator.kernels.request_states import REQ_COMPLETED
from tests.simulator.test_autoscale import _run, _step_load
from tests.simulator.test_properties import SETTINGS


def _one_per_second(n):
    return _step_load(1, 1, 0.0, 0.0, float(n))


def test_fast_cycles_with_long_provisioning_do_not_overflow():
    # the oscillator starts and cancels slot 1 every 50 ms; each start provisions for 1000 s
    wl = _one_per_second(20)
    asc = AutoscalerConfig(policy="oscillator", min_replicas=1, max_replicas=2, initial_replicas=1,
                           interval_s=0.05, provisioning_delay_s=DelaySpec("fixed", 1000.0))
    res, s = _run(wl, asc)
    out = res.autoscale
    assert sum(e.action == "down" for e in out.events) > 100   # many cancelled starts
    assert (res.req_state == REQ_COMPLETED).all()
    assert res.inst_completed.sum() == wl.num_requests
    assert (res.req_instance == 0).all()      # slot 1 never got past provisioning
    assert int(s.CL[L.CL_CSIZE]) <= 1          # at most slot 1's one lifecycle event is left


@st.composite
def oscillating(draw):
    lo = draw(st.integers(1, 2))
    hi = draw(st.integers(lo + 1, 4))
    return AutoscalerConfig(
        policy="oscillator", params=(("period", draw(st.sampled_from([1.0, 2.0, 3.0]))),),
        min_replicas=lo, max_replicas=hi, initial_replicas=draw(st.integers(lo, hi)),
        interval_s=draw(st.sampled_from([0.01, 0.05, 0.2])),
        provisioning_delay_s=DelaySpec("fixed", draw(st.sampled_from([0.0, 0.03, 50.0, 1000.0]))),
        model_load_time_s=DelaySpec("fixed", draw(st.sampled_from([0.0, 0.02, 500.0]))),
        warmup_duration_s=draw(st.sampled_from([0.0, 0.04, 800.0])),
        trigger_slo_attainment=draw(st.sampled_from([0.0, 0.9])), trigger_slo_window=3,
        slo_ttft_ms=5.0,
        drain_policy=draw(st.sampled_from(["wait", "immediate", "redirect"])))


@settings(SETTINGS, max_examples=25)
@given(asc=oscillating(), n=st.integers(1, 15))
def test_oscillating_autoscalers_never_overflow_the_queue(asc, n):
    wl = _one_per_second(n)
    res, s = _run(wl, asc, n0=asc.initial_replicas)
    # conservation: every request ends completed (none lost in the queue)
    assert (res.req_state == REQ_COMPLETED).all()
    assert res.inst_completed.sum() == n
    # what is left pending is lifecycle events only, at most one per slot
    left = s.CE[:, :int(s.CL[L.CL_CSIZE])]
    assert (left[L.CE_PRIO] == CE_LIFECYCLE).all()
    slots = left[L.CE_REQ] % asc.max_replicas
    assert np.unique(slots).size == slots.size


def test_a_push_beyond_the_room_raises():
    CE = np.zeros((4, 2), dtype=np.int64)
    CL = np.zeros(L.NCL, dtype=np.int64)
    cpush(CE, CL, np.int64(5), CE_ROUTING, np.int64(0))
    cpush(CE, CL, np.int64(3), CE_ROUTING, np.int64(1))
    with pytest.raises(RuntimeError, match="overflow"):
        cpush(CE, CL, np.int64(4), CE_ROUTING, np.int64(2))
    assert CL[L.CL_CSIZE] == 2


@settings(SETTINGS, max_examples=60)
@given(keys=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=40),
       data=st.data())
def test_removing_an_event_keeps_the_pop_order_of_the_rest(keys, data):
    CE = np.zeros((4, len(keys)), dtype=np.int64)
    CL = np.zeros(L.NCL, dtype=np.int64)
    for r, (t, kind) in enumerate(keys):
        cpush(CE, CL, np.int64(t), np.int64(kind), np.int64(r))
    gone = set(data.draw(st.lists(st.integers(0, len(keys) - 1), unique=True)))
    for r in sorted(gone):
        assert cremove(CE, CL, np.int64(keys[r][1]), np.int64(r))
    assert not cremove(CE, CL, np.int64(99), np.int64(0))
    # expected: the remaining events sorted by (time, kind, push order)
    want = sorted((t, k, r) for r, (t, k) in enumerate(keys) if r not in gone)
    got = []
    while CL[L.CL_CSIZE] > 0:
        t, k, r = ckey_pop(CE[L.CE_TIME], CE[L.CE_PRIO], CE[L.CE_SEQ], CE[L.CE_REQ], CL[L.CL_CSIZE])
        CL[L.CL_CSIZE] -= 1
        got.append((int(t), int(k), int(r)))
    assert got == want
