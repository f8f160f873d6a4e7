"""The notebook API (blis_evo.api): ``evaluate(bundle, experiment, seeds)`` and ``evolve``."""
from __future__ import annotations

import pytest
import yaml

import blis_evo.api as search
from blis_evo.baselines import BASELINES
from search.evaluate import evaluate as evaluate_policy
from search.genome import GeneSpace, bundle_dict


def test_evaluate_accepts_path_mapping_and_policy_alike(small_experiment, tmp_path):
    path, exp = small_experiment(num_requests=120)
    space = GeneSpace(exp.search_space)
    import numpy as np
    genome = space.random_genome(np.random.default_rng(5))
    phenotype = space.phenotype(genome)
    policy, sim = phenotype.policy, dict(phenotype.knob_items())
    doc = bundle_dict(phenotype)
    bundle_path = tmp_path / "b.yaml"
    bundle_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    direct = evaluate_policy(phenotype, exp, [3, 4])
    for bundle in (str(bundle_path), bundle_path, doc, phenotype, (policy, sim)):
        ev = search.evaluate(bundle, str(path), seeds=[3, 4])
        assert ev.fitness == direct.fitness
        assert ev.per_seed == direct.per_seed


def test_evaluate_defaults_to_heldout_seeds(small_experiment):
    """Without ``seeds``, ``evaluate`` scores the experiment's held-out seeds (its docstring),
    in order: the same per-seed results as passing them explicitly, and not the train seeds'."""
    path, exp = small_experiment(num_requests=120)
    policy = BASELINES["round-robin"]
    ev = search.evaluate(policy, str(path))
    assert len(ev.raw) == len(ev.per_seed) == len(exp.seeds.heldout) == 2
    heldout = evaluate_policy(policy, exp, exp.seeds.heldout)
    assert ev.per_seed == heldout.per_seed and ev.fitness == heldout.fitness
    train = evaluate_policy(policy, exp, exp.seeds.train)
    assert ev.per_seed != train.per_seed  # the seeds change the workload, so the default matters


def test_evaluate_defaults_to_the_default_experiment():
    """Without ``experiment``, ``evaluate`` uses the embedded default experiment, which is the
    one ``experiments/default.yaml`` describes (the API docstring): the same results as passing
    it explicitly, by object or by the name "default"."""
    from blis_evo.experiment import DEFAULT_EXPERIMENT_PATH, load_experiment

    exp = search.default_experiment()
    assert exp == load_experiment(DEFAULT_EXPERIMENT_PATH)
    seeds = [exp.seeds.heldout[0]]
    policy = BASELINES["round-robin"]
    ev = search.evaluate(policy, seeds=seeds)
    assert len(ev.raw) == 1
    assert ev.per_seed == search.evaluate(policy, exp, seeds=seeds).per_seed
    assert ev.per_seed == search.evaluate(policy, "default", seeds=seeds).per_seed
    assert ev.per_seed == evaluate_policy(policy, exp, seeds).per_seed


def test_evaluate_rejects_unknown_bundle_type():
    with pytest.raises(TypeError, match="bundle"):
        search.evaluate(42, None, seeds=[1])


def test_package_exports_the_api():
    import blis_evo
    assert blis_evo.evaluate is search.evaluate and blis_evo.evolve is search.evolve


def test_evolve_accepts_experiment_path(small_experiment, tmp_path):
    path, exp = small_experiment(num_requests=100)
    res = search.evolve(str(path), generations=1, out=tmp_path / "o")
    assert res.state.generation == 1 and (tmp_path / "o" / "report.md").exists()
