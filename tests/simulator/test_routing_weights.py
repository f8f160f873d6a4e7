"""Weighted routing depends only on the normalised weights (the issue's [3,2,2] example):
rescalings of [3,2,2] route a 400-request trace identically, while the two-digit rounding
[0.43,0.29,0.29] is a different policy, shown on a two-request scenario analysed by hand."""
from pathlib import Path

import numpy as np

from simulator import LatencyConfig, PolicyConfig, ScorerSpec, SimConfig, run
from simulator.workload.csv_trace import load_trace_csv
from simulator.workload.types import workload_from_lists

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "blis_parity" / "c4_weighted_default.csv.gz"
LAT = LatencyConfig(alpha=(232.46191091038054, 1.752360364195244, 3357.4400353290152),
                    beta=(5752.705191348184, 17.25086436834028, 5.999143920128404))


def _targets(weights):
    """Instance of every request of the 400-request trace under weighted routing with
    ``weights`` for (prefix-affinity, queue-depth, kv-utilization)."""
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


# A two-request scenario whose routing decision can be worked out by hand.  Request 0 (49
# blocks of 16 tokens) arrives at t=0 on an empty 2-instance cluster: every score ties and it
# goes to instance 0, whose router prefix index then holds its 49 block hashes.  Request 1
# arrives 1 us later (request 0, routed but not yet queued, counts in instance 0's load), shares
# request 0's first 33 blocks and then differs, and also has 49 blocks.  For request 1:
#   prefix-affinity: instance 0 holds 33 of its 49 leading blocks -> 33/49, instance 1 -> 0;
#   queue-depth: loads 1 and 0, min-max normalised -> instance 0 gets 0, instance 1 gets 1;
#   kv-utilization: 1 on both: request 0 is only queued alpha0 + alpha1 * 784 us ~= 1.6 ms
#   after it arrives, so at 1 us no KV block is allocated anywhere (a tie).
# With normalised weights (wp, wq, wk) instance 0 wins iff wp * 33/49 > wq, i.e. iff
# wp / wq > 49/33 ~= 1.4848.
#   [3,2,2] -> 3/7, 2/7, 2/7:            wp / wq = 1.5    -> instance 0 (margin 2.9e-3);
#   [0.43,0.29,0.29] -> /1.01:           wp / wq = 1.4828 -> instance 1 (margin -4.0e-4).
# The rounded weights are a different ranking of the same instance scores, not a rescaling.
SHARED_BLOCKS, BLOCKS = 33, 49


def _two_request_targets(weights):
    """Instances of the two hand-analysed requests under weighted routing with ``weights``
    for (prefix-affinity, queue-depth, kv-utilization)."""
    names = ("prefix-affinity", "queue-depth", "kv-utilization")
    scorers = tuple(ScorerSpec(n, w) for n, w in zip(names, weights) if w > 0)
    policy = PolicyConfig(routing="weighted", scorers=scorers)
    cfg = SimConfig(num_instances=2, total_kv_blocks=10**6, latency=LAT)
    first = list(range(1, 16 * BLOCKS + 1))
    second = first[:16 * SHARED_BLOCKS] + list(range(5001, 5001 + 16 * (BLOCKS - SHARED_BLOCKS)))
    wl = workload_from_lists([0, 1], [first, second], [[7] * 4, [7] * 4])
    return run(cfg, policy, wl).req_instance.tolist()


def test_scenario_scores_are_the_hand_analysed_ones():
    """Each scorer alone sends request 1 where the analysis above says it prefers: prefix
    affinity to instance 0 (the only instance holding its prefix), queue depth to the idle
    instance 1, and KV utilisation ties (lowest index: instance 0)."""
    assert _two_request_targets((1.0, 0.0, 0.0)) == [0, 0]
    assert _two_request_targets((0.0, 1.0, 0.0)) == [0, 1]
    assert _two_request_targets((0.0, 0.0, 1.0)) == [0, 0]
    # the decision threshold wp / wq = 49/33 (kv-utilization off): just above and just below
    assert _two_request_targets((49 / 33 * 1.001, 1.0, 0.0)) == [0, 0]
    assert _two_request_targets((49 / 33 * 0.999, 1.0, 0.0)) == [0, 1]


def test_routing_weights_rounded_to_two_digits_are_a_different_policy():
    """[0.43,0.29,0.29] sums to 1.01, so it is not [3,2,2] normalised: on the scenario above
    [3,2,2] (and its exact rescalings) keep request 1 with its prefix on instance 0 while the
    rounded weights send it to the idle instance 1."""
    assert _two_request_targets((3.0, 2.0, 2.0)) == [0, 0]
    assert _two_request_targets((3 / 7, 2 / 7, 2 / 7)) == [0, 0]
    assert _two_request_targets((0.43, 0.29, 0.29)) == [0, 1]
