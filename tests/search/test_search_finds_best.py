"""On a tiny real experiment whose best genome is known by exhaustive enumeration, the GA
finds it (the champion's fitness equals the enumerated maximum)."""
from __future__ import annotations

import itertools

from search.evaluate import evaluate
from search.evolve import evolve
from search.genome import GeneSpace

TINY_SPACE = {
    "routing": {"choices": ["round-robin", "least-loaded", "prefix-affinity", "always-busiest"]},
    "scheduler": {"choices": ["fcfs", "sjf", "reverse-priority"]},
    "priority": {"choices": ["constant", "inverted-slo"]},
}


def test_ga_finds_enumerated_best_policy(small_experiment, tmp_path):
    _, exp = small_experiment(num_requests=150, search_space=TINY_SPACE)
    space = GeneSpace(exp.search_space)
    assert [g.kind for g in space.genes] == ["cat", "cat", "cat"]
    sizes = [len(g.choices) for g in space.genes]
    fitness = {}
    for genome in itertools.product(*(range(n) for n in sizes)):
        fitness[genome] = evaluate(space.decode(list(genome)), exp, exp.seeds.train).fitness
    best = max(fitness.values())
    assert sorted(fitness.values())[0] < best            # the space has real differences
    res = evolve(exp, generations=8, workers=1, out=tmp_path / "out")
    assert res.state.champion.fitness.values[0] == best
    assert fitness[tuple(int(x) for x in res.state.champion)] == best
