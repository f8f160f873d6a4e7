"""The phenotype (blis_evo.phenotype): one frozen, hashable value a genome decodes to, which
build_sim_config applies and the bundle writer serialises."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from blis_evo.deployment import build_sim_config
from blis_evo.experiment import load_experiment
from blis_evo.phenotype import EngineKnobs, Layout, Phenotype
from search.genome import LAYOUT_PARAMS, SIM_PARAMS, experiment_space
from simulator.config import PolicyConfig

LAYOUT_EXPERIMENT = "experiments/disaggregation_layout.yaml"


def test_fields_are_the_searchable_knobs():
    assert SIM_PARAMS == tuple(f.name for f in dataclasses.fields(EngineKnobs))
    assert LAYOUT_PARAMS == tuple(f.name for f in dataclasses.fields(Layout))


def test_frozen_hashable_picklable():
    ph = Phenotype(PolicyConfig(routing="least-loaded"), EngineKnobs(long_prefill_token_threshold=64),
                   Layout(num_instances=3, pd_prefill_replicas=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ph.engine = EngineKnobs()  # type: ignore[misc]
    assert {ph: 1}[Phenotype.from_knobs(
        PolicyConfig(routing="least-loaded"),
        {"long_prefill_token_threshold": 64, "num_instances": 3, "pd_prefill_replicas": 1})] == 1
    assert pickle.loads(pickle.dumps(ph)) == ph
    assert ph.knob_items() == (("long_prefill_token_threshold", 64), ("num_instances", 3),
                               ("pd_prefill_replicas", 1))


def test_of_accepts_a_policy_and_rejects_other_values():
    p = PolicyConfig(scheduler="sjf")
    assert Phenotype.of(p) == Phenotype(p) and Phenotype.of(Phenotype(p)) == Phenotype(p)
    with pytest.raises(TypeError):
        Phenotype.of({"scheduler": "sjf"})


def test_bare_phenotype_keeps_the_experiment_cluster():
    exp = load_experiment(LAYOUT_EXPERIMENT)
    assert build_sim_config(exp, 3, Phenotype()) == build_sim_config(exp, 3)


def test_engine_knobs_and_layout_reach_the_sim_config():
    exp = load_experiment(LAYOUT_EXPERIMENT)
    cfg = build_sim_config(exp, 1, Phenotype(engine=EngineKnobs(snapshot_refresh_interval=7,
                                                                long_prefill_token_threshold=9),
                                             layout=Layout(num_instances=6, pd_prefill_replicas=2,
                                                           pd_prefix_threshold=100)))
    assert (cfg.snapshot_refresh_interval, cfg.long_prefill_token_threshold) == (7, 9)
    assert cfg.num_instances == 6
    dc = cfg.disaggregation
    assert (dc.prefill_replicas, dc.decode_replicas, dc.decider, dc.prefix_threshold) == (
        2, 4, "prefix-threshold", 100)


@pytest.mark.parametrize("seed", range(10))
def test_layout_genomes_round_trip_through_the_phenotype(seed):
    space = experiment_space(load_experiment(LAYOUT_EXPERIMENT))
    ph = space.phenotype(space.random_genome(np.random.default_rng(seed)))
    assert ph.layout.num_instances is not None and ph.layout.pd_prefill_replicas is not None
    assert space.phenotype(space.encode(ph)) == ph
