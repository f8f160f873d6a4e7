"""The closed-form serial timeline is exactly what the simulator computes for one instance
running one request at a time (the contract the mock server and calibration rely on), for
distinct queue-join times and prompts without shared prefix blocks."""
from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import simulator
from blis_evo.stepmodel import StepModel, serial_timeline
from simulator.config import LatencyConfig, PolicyConfig, SimConfig
from simulator.workload.types import workload_from_lists


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100_000), st.integers(1, 1500), st.integers(0, 6)),
                min_size=1, max_size=25),
       st.tuples(st.integers(0, 3000), st.integers(0, 5), st.integers(0, 500)),
       st.tuples(st.integers(1, 8000), st.integers(0, 20), st.integers(0, 300)))
def test_serial_timeline_matches_the_simulator(rows, alpha, beta):
    rows = sorted(rows)                      # the simulator's requests come in arrival order
    arrival = [r[0] for r in rows]
    n_in = [r[1] for r in rows]
    n_out = [r[2] for r in rows]
    queued = [a + alpha[0] + alpha[1] * k for a, k in zip(arrival, n_in)]
    assume(len(set(queued)) == len(queued))  # equal times: the simulator's Go-heap tie order
    rng = np.random.default_rng(0)           # random ids: no shared prefix blocks to cache
    wl = workload_from_lists(arrival, [list(rng.integers(1, 2**31 - 1, size=k)) for k in n_in],
                             [list(rng.integers(1, 2**31 - 1, size=k)) for k in n_out])
    cfg = SimConfig(num_instances=1, max_running_reqs=1, total_kv_blocks=100_000,
                    latency=LatencyConfig(kind="blackbox", alpha=tuple(map(float, alpha)),
                                          beta=tuple(map(float, beta))))
    res = simulator.run(cfg, PolicyConfig(), wl)
    tl = serial_timeline(StepModel(tuple(map(float, alpha)), tuple(map(float, beta))), arrival, n_in, n_out)
    assume(len(set(tl.released) | set(queued)) == 2 * len(queued))   # no equal-time ties
    np.testing.assert_allclose(res.ttft_us, tl.first - np.asarray(arrival), rtol=0, atol=0)
    np.testing.assert_allclose(res.e2e_us, tl.last - np.asarray(arrival), rtol=0, atol=0)


def test_a_request_joining_during_the_last_step_starts_at_once():
    """The engine frees the instance when a request's last step starts: a request queued after
    that point overlaps it, one queued before waits for the step to end (sim and closed form)."""
    model = StepModel((0.0, 0.0, 0.0), (1000.0, 0.0, 0.0))
    tl = serial_timeline(model, [0, 100], [1, 1], [1, 1])
    assert list(tl.first) == [1000.0, 1100.0]
    tl = serial_timeline(model, [0, 100], [1, 1], [3, 1])     # waiting when the last step starts
    assert list(tl.first) == [1000.0, 4000.0]
    rng = np.random.default_rng(1)
    wl = workload_from_lists([0, 100], [list(rng.integers(1, 2**31 - 1, size=1)) for _ in range(2)],
                             [list(rng.integers(1, 2**31 - 1, size=1)) for _ in range(2)])
    cfg = SimConfig(num_instances=1, max_running_reqs=1, total_kv_blocks=1000,
                    latency=LatencyConfig(kind="blackbox", alpha=(0.0, 0.0, 0.0), beta=(1000.0, 0.0, 0.0)))
    res = simulator.run(cfg, PolicyConfig(), wl)
    assert list(res.ttft_us + res.arrival_us) == [1000.0, 1100.0]
