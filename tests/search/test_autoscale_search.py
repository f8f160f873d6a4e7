"""Search integration of the autoscaler: genes, decode/encode, the cost objective, and the
experiment's autoscaler section."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blis_evo.baselines import BASELINES
from blis_evo.deployment import deployed_policy
from blis_evo.experiment import load_experiment, parse_experiment
from search.evaluate import evaluate
from search.genome import GeneSpace, bundle_dict, experiment_space
from simulator.autoscale.config import parse_autoscaler
from simulator.autoscale.policies import POLICIES
from simulator.config import PolicyConfig
from simulator.errors import InputError

EXP = "experiments/autoscale_cost_latency.yaml"


@pytest.fixture(scope="module")
def small_exp():
    exp = load_experiment(EXP)
    w = dataclasses.replace(exp.workload, num_requests=400, horizon_us=60_000_000)
    return dataclasses.replace(exp, workload=w)


def test_genes_decode_to_the_chosen_policy_and_round_trip(small_exp):
    space = experiment_space(small_exp)
    rng = np.random.default_rng(1)
    for _ in range(20):
        g = space.random_genome(rng)
        p = space.decode(g)
        asc = p.autoscaler
        assert asc.policy == space.genes[space.index["autoscaler"]].choices[g[space.index["autoscaler"]]]
        assert asc.min_replicas == g[space.index["autoscaler.min_replicas"]] <= asc.max_replicas
        assert {k for k, _ in asc.params} <= {p.name for p in POLICIES[asc.policy].PARAMS}
        assert space.decode(space.encode(p)) == p
        # the champion bundle's autoscaler section reads back as the same autoscaler
        assert parse_autoscaler(bundle_dict(p)["autoscaler"]) == asc


def test_replica_seconds_objective_grows_with_the_minimum_pool(small_exp):
    space = experiment_space(small_exp)
    g = space.random_genome(np.random.default_rng(2))
    costs = []
    for m in (1, 4):
        g[space.index["autoscaler.min_replicas"]] = m
        ev = evaluate(space.decode(g), small_exp, [1])
        span = ev.per_seed[0].measures.replica_seconds / ev.per_seed[0].measures.avg_replicas
        assert ev.per_seed[0].measures.replica_seconds >= m * span - 1e-6   # min replicas always up
        costs.append(-ev.objectives[1])
    assert costs[1] > costs[0]


def test_experiment_autoscaler_section_is_validated():
    text = open(EXP).read().replace("max_replicas: 8", "max_replicas: 0")
    with pytest.raises(InputError, match="autoscaler.max_replicas"):
        parse_experiment(text, src="x.yaml")
    text = open(EXP).read().replace("\nautoscaler:\n  policy: threshold", "\nautoscaler_off:\n  policy: threshold")
    with pytest.raises(InputError):
        parse_experiment(text, src="x.yaml")


def test_layout_genes_that_cannot_run_are_rejected_at_load(small_exp):
    """An autoscaled experiment cannot evolve a P/D pool, and no experiment a cluster of 0."""
    with pytest.raises(InputError, match="pd_prefill_replicas: autoscaling"):
        GeneSpace({"pd_prefill_replicas": {"int": [0, 2]}},
                  base=PolicyConfig(autoscaler=small_exp.autoscaler))
    with pytest.raises(InputError, match="num_instances: a cluster needs >= 1 instance"):
        GeneSpace({"num_instances": {"int": [0, 4]}})


def test_baselines_run_under_the_experiment_autoscaler(small_exp):
    """The experiment's autoscaler scales every policy that brings none (the baselines), so the
    report compares like with like; a policy with its own autoscaler keeps it."""

    rr = deployed_policy(BASELINES["round-robin"], small_exp)
    assert rr.autoscaler == small_exp.autoscaler and rr.routing == "round-robin"
    own = dataclasses.replace(small_exp.autoscaler, min_replicas=3)
    assert deployed_policy(PolicyConfig(autoscaler=own), small_exp).autoscaler == own
    # the step load makes the experiment's autoscaler act on the baseline too
    assert evaluate(BASELINES["round-robin"], small_exp, [1]).per_seed[0].measures.scale_events > 0
