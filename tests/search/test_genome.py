"""search.genome: gene-space validation, encode/decode, canonical form, operators, bundle YAML."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_evo.bundle import load_policy_bundle
from search.genome import (GeneSpace, Individual, IndividualMulti, bundle_dict, canonical, crossover,
                           decode, decode_phenotype, encode, mutate, random_genome)
from simulator.config import DEFAULT_SCORERS, PolicyConfig, ScorerSpec
from simulator.errors import InputError

SPEC = {
    "routing": {"choices": ["round-robin", "least-loaded", "weighted", "prefix-affinity"]},
    "scheduler": {"choices": ["fcfs", "priority-fcfs", "sjf"]},
    "priority": {"choices": ["constant", "slo-based"]},
    "admission": {"choices": ["always-admit", "token-bucket"]},
    "scorers": {"prefix-affinity": {"weight": [0, 5]}, "queue-depth": {"weight": [0, 5]},
                "kv-utilization": {"weight": [0, 5]}, "load-balance": {"weight": [0.5, 3]}},
    "token_bucket_capacity": {"int": [1000, 100000]},
    "token_bucket_refill_rate": {"real": [100, 100000]},
    "snapshot_refresh_interval": {"int": [0, 50000]},
}
SPACE = GeneSpace(SPEC)
seeds = st.integers(0, 2**32 - 1)


def _in_bounds(space, genome):
    assert len(genome) == len(space.genes)
    for g, v in zip(space.genes, genome):
        if g.kind == "real":
            assert isinstance(v, float) and g.low <= v <= g.high, (g, v)
        else:
            assert isinstance(v, int) and not isinstance(v, bool) and g.low <= v <= g.high, (g, v)


@pytest.mark.parametrize("spec, key", [
    ({"routing": {"choices": ["nope"]}}, "search_space.routing.choices"),
    ({"routing": {"choice": ["round-robin"]}}, "search_space.routing.choice"),
    ({"scheduler": {"choices": []}}, "search_space.scheduler.choices"),
    ({"scorers": {"bogus": {"weight": [0, 1]}}}, "search_space.scorers.bogus"),
    ({"scorers": {"queue-depth": {"weight": [3, 1]}}}, "search_space.scorers.queue-depth.weight"),
    ({"scorers": {"queue-depth": {"weight": [0, float("nan")]}}}, "search_space.scorers.queue-depth.weight"),
    ({"token_bucket_capacity": {"int": [1.5, 9]}}, "search_space.token_bucket_capacity.int"),
    ({"token_bucket_capacity": {"float": [1, 9]}}, "search_space.token_bucket_capacity"),
    ({"colour": {"choices": ["red"]}}, "search_space.colour"),
    ({}, "search_space"),
])
def test_gene_space_bad_spec_raises_one_line_error_naming_key(spec, key):
    with pytest.raises(InputError) as exc:
        GeneSpace(spec)
    msg = str(exc.value)
    assert msg.startswith(key) and "\n" not in msg


def test_gene_space_layout_has_typed_genes():
    kinds = {g.name: g.kind for g in SPACE.genes}
    assert kinds["routing"] == "cat" and kinds["scorer.queue-depth.on"] == "bit"
    assert kinds["scorer.queue-depth.weight"] == "real" and kinds["token_bucket_capacity"] == "int"
    assert len(SPACE) == 4 + 8 + 3


@settings(max_examples=200, deadline=None)
@given(seed=seeds)
def test_encode_decode_round_trip_random_genomes(seed):
    rng = np.random.default_rng(seed)
    g = random_genome(SPACE, rng)
    _in_bounds(SPACE, g)
    p = decode(SPACE, g)
    g2 = encode(SPACE, decode_phenotype(SPACE, g))
    _in_bounds(SPACE, g2)
    assert decode(SPACE, g2) == p
    assert canonical(SPACE, g2) == canonical(SPACE, g)


def test_encode_decode_round_trip_llmd_default_profile():
    p = PolicyConfig(routing="weighted", scorers=DEFAULT_SCORERS, scheduler="sjf", priority="slo-based",
                     admission="token-bucket", params=(("token_bucket_capacity", 5000.0),
                                                           ("token_bucket_refill_rate", 250.5)))
    assert decode(SPACE, encode(SPACE, p)) == p


def test_encode_value_outside_space_raises():
    with pytest.raises(InputError, match="search_space.routing"):
        encode(SPACE, PolicyConfig(routing="always-busiest"))
    with pytest.raises(InputError, match="search_space.token_bucket_capacity"):
        encode(SPACE, PolicyConfig(admission="token-bucket", params=(("token_bucket_capacity", 5.0),)))


def test_decode_weighted_without_scorers_falls_back_to_largest_weight_scorer():
    g = encode(SPACE, PolicyConfig(routing="weighted"))
    for name in SPACE.scorer_names:
        g[SPACE.index[f"scorer.{name}.on"]] = 0
    g[SPACE.index["scorer.kv-utilization.weight"]] = 4.9
    assert decode(SPACE, g).scorers == (ScorerSpec("kv-utilization", 1.0),)


def test_canonical_ignores_irrelevant_genes():
    g = encode(SPACE, PolicyConfig(routing="weighted"))
    g[SPACE.index["scorer.load-balance.on"]] = 0
    h = list(g)
    h[SPACE.index["scorer.load-balance.weight"]] = 2.9          # off scorer's weight
    h[SPACE.index["token_bucket_capacity"]] = 77777             # admission is always-admit
    assert canonical(SPACE, h) == canonical(SPACE, g)
    h[SPACE.index["scorer.queue-depth.weight"]] += 1e-6          # below weight rounding
    assert canonical(SPACE, h) == canonical(SPACE, g)
    h[SPACE.index["scorer.queue-depth.weight"]] = 0.5
    assert canonical(SPACE, h) != canonical(SPACE, g)
    r = encode(SPACE, PolicyConfig(routing="round-robin"))
    r2 = list(r)
    r2[SPACE.index["scorer.queue-depth.on"]] = 1 - r2[SPACE.index["scorer.queue-depth.on"]]
    assert canonical(SPACE, r2) == canonical(SPACE, r)
    assert decode(SPACE, r).scorers == DEFAULT_SCORERS


@settings(max_examples=200, deadline=None)
@given(seed=seeds, indpb=st.floats(0, 1), eta=st.floats(0.5, 100))
def test_mutate_keeps_genes_in_bounds_and_types(seed, indpb, eta):
    rng = np.random.default_rng(seed)
    ind = Individual(random_genome(SPACE, rng))
    before = list(ind)
    out = mutate(SPACE, ind, rng, indpb=indpb, eta=eta)
    assert out[0] is ind and isinstance(ind, Individual)
    _in_bounds(SPACE, ind)
    if indpb == 0:
        assert list(ind) == before


@settings(max_examples=200, deadline=None)
@given(seed=seeds, eta=st.floats(0.5, 100))
def test_crossover_keeps_genes_in_bounds_and_types(seed, eta):
    rng = np.random.default_rng(seed)
    a, b = Individual(random_genome(SPACE, rng)), Individual(random_genome(SPACE, rng))
    cats = [(a[i], b[i]) for i, g in enumerate(SPACE.genes) if g.kind in ("cat", "bit")]
    a2, b2 = crossover(SPACE, a, b, rng, eta=eta)
    _in_bounds(SPACE, a2)
    _in_bounds(SPACE, b2)
    cats2 = [(a2[i], b2[i]) for i, g in enumerate(SPACE.genes) if g.kind in ("cat", "bit")]
    assert all(set(x) == set(y) for x, y in zip(cats, cats2))  # categoricals only swap


def test_mutate_categorical_always_changes_with_indpb_one():
    rng = np.random.default_rng(3)
    for _ in range(50):
        ind = random_genome(SPACE, rng)
        before = list(ind)
        mutate(SPACE, ind, rng, indpb=1.0, eta=20.0)
        for i, g in enumerate(SPACE.genes):
            if g.kind in ("cat", "bit"):
                assert ind[i] != before[i]


def test_operators_are_deterministic_given_rng_state():
    def run(seed):
        rng = np.random.default_rng(seed)
        a, b = random_genome(SPACE, rng), random_genome(SPACE, rng)
        crossover(SPACE, a, b, rng, eta=15.0)
        mutate(SPACE, a, rng, indpb=0.5, eta=20.0)
        return a, b
    assert run(11) == run(11)


@settings(max_examples=60, deadline=None)
@given(seed=seeds)
def test_bundle_dict_yaml_loads_with_blis_policy_bundle_loader(seed, tmp_path_factory):
    p = decode(SPACE, random_genome(SPACE, np.random.default_rng(seed)))
    path = tmp_path_factory.mktemp("bundle") / "champion.yaml"
    path.write_text(yaml.safe_dump(bundle_dict(p), sort_keys=False))
    b = load_policy_bundle(str(path))
    assert (b.admission_policy, b.routing_policy, b.priority_policy, b.scheduler) == (
        p.admission, p.routing, p.priority, p.scheduler)
    if p.routing == "weighted":
        assert b.scorers == p.scorers
    if p.admission == "token-bucket":
        assert (b.param("token_bucket_capacity"), b.param("token_bucket_refill_rate")) == (
            p.param("token_bucket_capacity"), p.param("token_bucket_refill_rate"))


def test_individuals_pickle_round_trip():
    ind = Individual([1, 2.5])
    ind.fitness.values = (3.0,)
    back = pickle.loads(pickle.dumps(ind))
    assert type(back).__name__ == "Individual" and back == ind and back.fitness.values == (3.0,)
    assert pickle.loads(pickle.dumps(IndividualMulti([1]))) == [1]
    assert pickle.loads(pickle.dumps(SPACE)).genes == SPACE.genes
