"""Genes of the SLO-tier and flow-control levers: every lever is searchable, decode/encode
round-trip, irrelevant genes do not split the evaluation cache, bad bounds are one-line
errors."""
from __future__ import annotations

import numpy as np
import pytest

from search.genome import GeneSpace, bundle_dict
from simulator.errors import InputError

SPACE = {
    "admission": {"choices": ["always-admit", "tier-shed", "gaie-legacy"]},
    "tier_shed_threshold": {"int": [0, 64]}, "tier_shed_min_priority": {"int": [-1, 4]},
    "preemption": {"choices": ["fcfs", "priority"]},
    "flow_control": {"choices": ["off", "gateway"]},
    "saturation_detector": {"choices": ["never", "utilization", "concurrency"]},
    "queue_depth_threshold": {"real": [1, 20]}, "max_concurrency": {"int": [1, 64]},
    "dispatch_order": {"choices": ["fifo", "priority", "slo-deadline"]},
    "fairness": {"choices": ["global-strict", "round-robin"]},
    "max_gateway_queue_depth": {"int": [0, 500]}, "per_band_capacity": {"int": [0, 200]},
    "queue_shedding": {"int": [0, 1]}, "in_flight_eviction": {"int": [0, 1]},
    "request_ttl": {"int": [0, 10_000_000]},
    "slo_priorities": {"batch": {"int": [-5, 5]}, "standard": {"int": [0, 4]}},
}


def test_every_lever_is_a_gene_and_round_trips():
    space = GeneSpace(SPACE)
    names = {g.name for g in space.genes}
    assert {"flow_control", "saturation_detector", "dispatch_order", "fairness", "preemption",
            "queue_shedding", "in_flight_eviction", "slo_priority.batch"} <= names
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        policy = space.decode(space.random_genome(rng))
        assert space.decode(space.encode(policy)) == policy
        seen.add((policy.flow_control, policy.dispatch_order, policy.preemption))
        if policy.flow_control == "off":  # gateway choices normalised away
            assert (policy.saturation_detector, policy.dispatch_order, policy.fairness) == \
                ("never", "fifo", "global-strict")
            assert policy.param("queue_shedding") == 0
        assert -5 <= dict(policy.slo_priorities)["batch"] <= 5
    assert len(seen) > 6


def test_champion_bundle_carries_the_levers():
    space = GeneSpace(SPACE)
    rng = np.random.default_rng(2)
    while True:
        policy = space.decode(space.random_genome(rng))
        if policy.flow_control == "gateway" and policy.saturation_detector == "concurrency":
            break
    doc = bundle_dict(policy)
    assert doc["flow_control"]["policy"] == "gateway"
    assert isinstance(doc["flow_control"]["queue_shedding"], bool)
    assert doc["saturation_detector"]["policy"] == "concurrency"
    assert set(doc["admission"]["slo_priorities"]) == {"batch", "standard"}


@pytest.mark.parametrize("spec, needle", [
    ({"slo_priorities": {"gold": {"int": [0, 1]}}}, "slo_priorities.gold: unknown key"),
    ({"slo_priorities": {"batch": {"int": [-200, 1]}}}, "outside [-100, 100]"),
    ({"slo_priorities": {"batch": {"real": [0, 1]}}}, "expected {int: [low, high]}"),
    ({"dispatch_order": {"choices": ["lifo"]}}, "unknown dispatch_order policy 'lifo'"),
    ({"max_gateway_queue_depth": {"real": [0, 5]}}, "must be an int gene"),
])
def test_bad_gene_specs(spec, needle):
    with pytest.raises(InputError) as exc:
        GeneSpace(spec)
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
