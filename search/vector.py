"""The vector genome representation: a flat list of gene values over a :class:`GeneSpace`.

Implements :class:`search.representation.Representation` for the ``ga`` and ``nsga2``
algorithms.  Offspring are made one at a time (DEAP's ``varOr``): crossover (SBX for numbers,
swaps for categories and bits) with probability ``cxpb``, mutation (polynomial, resampling,
flips) with ``mutpb``, else a copy.  All randomness comes from one ``numpy.random.Generator``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from simulator.errors import InputError

from blis_evo.phenotype import Phenotype

from .genome import FitnessMulti, GeneSpace, Individual, IndividualMulti, bundle_dict


def individual_class(weights: tuple[float, ...]):
    """The DEAP individual class whose fitness has ``weights`` (``(1.0,)``: ``Individual``;
    otherwise ``IndividualMulti`` with its fitness weights set for this run -- a class
    attribute, so one search per process at a time)."""
    if weights == (1.0,):
        return Individual
    # DEAP >= 1.4 pickles creator classes by value (meta_create + reduce_args): keep
    # reduce_args in step with the weights too.
    FitnessMulti.weights = weights
    FitnessMulti.reduce_args = (FitnessMulti.reduce_args[0], FitnessMulti.reduce_args[1],
                                {**FitnessMulti.reduce_args[2], "weights": weights})
    return IndividualMulti


@dataclass(frozen=True)
class VectorGenome:
    """Gene vectors of ``space``; ``cxpb``/``mutpb`` choose crossover/mutation per child
    (``cxpb + mutpb <= 1``), ``indpb`` is the per-gene mutation probability (default
    ``1/len(space)``), ``eta_cx``/``eta_mut`` the SBX and polynomial distribution indices."""

    space: GeneSpace
    cxpb: float = 0.5
    mutpb: float = 0.4
    indpb: float | None = None
    eta_cx: float = 15.0
    eta_mut: float = 20.0
    name = "params"
    algorithms = ("ga", "nsga2")

    def __post_init__(self):
        if not (0 <= self.cxpb <= 1 and 0 <= self.mutpb <= 1 and self.cxpb + self.mutpb <= 1):
            raise InputError(f"cxpb/mutpb: need 0 <= cxpb, mutpb and cxpb + mutpb <= 1, got "
                             f"{self.cxpb}, {self.mutpb}")

    @property
    def gene_rate(self) -> float:
        """The per-gene mutation probability in use."""
        return self.indpb if self.indpb is not None else 1.0 / len(self.space)

    def settings(self) -> dict:
        """Variation settings and the gene names (a resumed run must share them)."""
        return {"cxpb": self.cxpb, "mutpb": self.mutpb, "indpb": self.gene_rate,
                "eta_cx": self.eta_cx, "eta_mut": self.eta_mut,
                "genes": tuple(g.name for g in self.space.genes)}

    def new_rng(self, seed: int) -> np.random.Generator:
        """A PCG64 generator seeded with ``seed``."""
        return np.random.default_rng(seed)

    def rng_state(self, rng: np.random.Generator) -> dict:
        """The bit generator's state."""
        return rng.bit_generator.state

    def restore_rng(self, state: dict) -> np.random.Generator:
        """A generator continuing from ``state``."""
        rng = np.random.default_rng()
        rng.bit_generator.state = state
        return rng

    def initial(self, seeds: Sequence, n: int, rng: np.random.Generator,
                weights: tuple[float, ...]) -> list:
        """The seed genomes, then uniformly random genomes, ``n`` in all."""
        cls = individual_class(weights)
        genomes = [list(g) for g in seeds][:n]
        genomes += [self.space.random_genome(rng) for _ in range(n - len(genomes))]
        return [cls(g) for g in genomes]

    def breed(self, parents: Callable[[int], list], n: int, rng: np.random.Generator) -> list:
        """``n`` offspring, each by crossover (first child of two parents), mutation or copy."""
        offspring = []
        for _ in range(n):
            op = rng.random()
            if op < self.cxpb:
                a, b = (copy.deepcopy(p) for p in parents(2))
                child = self.space.crossover(a, b, rng, self.eta_cx)[0]
                del child.fitness.values
            elif op < self.cxpb + self.mutpb:
                child = self.space.mutate(copy.deepcopy(parents(1)[0]), rng, self.gene_rate,
                                          self.eta_mut)[0]
                del child.fitness.values
            else:
                child = copy.deepcopy(parents(1)[0])
            offspring.append(child)
        return offspring

    def key(self, individual) -> tuple:
        """The canonical phenotype (:func:`search.genome.canonical`)."""
        return self.space.canonical(list(individual))

    def genome(self, individual) -> list:
        """The gene values as a plain list."""
        return list(individual)

    encode = genome

    def decode(self, row: Sequence, weights: tuple[float, ...]):
        """The individual of a gene list."""
        return individual_class(weights)(row)

    @property
    def phenotypes(self) -> GeneSpace:
        """The gene space (the evaluator decodes genomes with it)."""
        return self.space

    def phenotype(self, individual) -> Phenotype:
        """The decoded policy with its engine knobs and layout."""
        return self.space.phenotype(individual)

    def describe(self, individual) -> dict:
        """``{"policy": bundle}``."""
        return {"policy": bundle_dict(self.phenotype(individual))}

    def champion(self, individual, out: Path) -> tuple[dict, None]:
        """The champion's bundle (no extra files)."""
        return bundle_dict(self.phenotype(individual)), None
