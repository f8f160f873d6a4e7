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


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200_000), st.integers(1, 1500), st.integers(0, 40)),
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
    np.testing.assert_allclose(res.ttft_us, tl.first - np.asarray(arrival), rtol=0, atol=0)
    np.testing.assert_allclose(res.e2e_us, tl.last - np.asarray(arrival), rtol=0, atol=0)
