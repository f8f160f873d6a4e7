"""Weighted routing depends only on the normalised weights (the issue's [3,2,2] example)."""
from pathlib import Path

import numpy as np

from simulator import LatencyConfig, PolicyConfig, ScorerSpec, SimConfig, run
from simulator.workload.csv_trace import load_trace_csv

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "blis_parity" / "c4_weighted_default.csv.gz"
LAT = LatencyConfig(alpha=(232.46191091038054, 1.752360364195244, 3357.4400353290152),
                    beta=(5752.705191348184, 17.25086436834028, 5.999143920128404))


def _targets(weights):
    names = ("prefix-affinity", "queue-depth", "kv-utilization")
    policy = PolicyConfig(routing="weighted",
                          scorers=tuple(ScorerSpec(n, w) for n, w in zip(names, weights)))
    cfg = SimConfig(num_instances=4, total_kv_blocks=7463, latency=LAT)
    return run(cfg, policy, load_trace_csv(TRACE, 2**63 - 1)).req_instance


def test_routing_weights_that_normalise_alike_route_identically():
    """[3,2,2], its normalised form [3/7,2/7,2/7] (the issue's [0.43,0.29,0.29], unrounded) and
    other rescalings route every request of a 400-request trace to the same instance."""
    base = _targets((3.0, 2.0, 2.0))
    assert (base >= 0).all() and len(set(base.tolist())) == 4
    for w in ((3 / 7, 2 / 7, 2 / 7), (30.0, 20.0, 20.0), (0.3, 0.2, 0.2), (1.5, 1.0, 1.0)):
        assert np.array_equal(_targets(w), base), w


def test_routing_weights_rounded_to_two_digits_are_a_different_policy():
    """[0.43,0.29,0.29] sums to 1.01, so it is not [3,2,2] normalised: decisions may differ."""
    a = _targets((3.0, 2.0, 2.0))
    b = _targets((0.43, 0.29, 0.29))
    assert (b >= 0).all()
    assert np.array_equal(a[:100], b[:100])  # identical while no decision is near a tie
