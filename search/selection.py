"""Selection strategies of the search loop, one per algorithm, and their small pure operators.

A strategy picks mating parents and generation survivors; it never varies individuals (that is
the representation's job, :mod:`search.representation`).  ``ga``: tournament parents and
(mu+lambda) distinct-best survivors (elitism); ``nsga2``: crowded binary-tournament parents and
``deap.tools.selNSGA2`` survivors, with a Pareto front kept; ``gp``: DEAP's double tournament
(fitness, then parsimony: the smaller tree) and distinct-best survivors.

``ga`` and ``nsga2`` draw from a ``numpy.random.Generator``; ``gp`` uses DEAP's operator, which
draws from Python's global ``random``, so it runs under :func:`deap_random`, which lends the
operator the search's own ``random.Random`` state and leaves the global generator as found.
"""
from __future__ import annotations

import copy
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from deap import tools

PARSIMONY_SIZE = 1.4
"""Size of the parsimony tournament of DEAP's double tournament (1 < s <= 2)."""


@contextmanager
def deap_random(rng: random.Random):
    """Run DEAP operators (which use the global ``random``) on ``rng``'s state."""
    saved = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(saved)


def sel_tournament(pool: Sequence, k: int, tournsize: int, rng: np.random.Generator) -> list:
    """``k`` tournament winners (references, not copies) from ``pool``; ties go to the first drawn."""
    out = []
    for _ in range(k):
        idx = rng.integers(len(pool), size=tournsize)
        out.append(max((pool[int(j)] for j in idx), key=lambda ind: ind.fitness.wvalues))
    return out


def sel_crowded_tournament(pool: Sequence, k: int, rng: np.random.Generator) -> list:
    """``k`` binary-tournament winners by dominance, then crowding distance (NSGA-II mating)."""
    out = []
    for _ in range(k):
        a, b = (pool[int(j)] for j in rng.integers(len(pool), size=2))
        if a.fitness.dominates(b.fitness):
            out.append(a)
        elif b.fitness.dominates(a.fitness):
            out.append(b)
        elif a.fitness.crowding_dist != b.fitness.crowding_dist:
            out.append(a if a.fitness.crowding_dist > b.fitness.crowding_dist else b)
        else:
            out.append(a if rng.random() < 0.5 else b)
    return out


def sel_distinct_best(pool: Sequence, k: int, key: Callable[[Any], Any]) -> list:
    """(mu+lambda) survivors: the ``k`` best of ``pool`` (stable order), copied, taking each
    distinct ``key`` (phenotype) once before any duplicate.

    Truncation keeps the best ever (elitism); skipping duplicates keeps the population from
    collapsing onto copies of one genome, which tournament survivor selection does within a
    few generations.
    """
    ranked = sorted(pool, key=lambda ind: ind.fitness.wvalues, reverse=True)
    seen: set = set()
    first, rest = [], []
    for ind in ranked:
        kk = key(ind)
        (rest if kk in seen else first).append(ind)
        seen.add(kk)
    return [copy.deepcopy(ind) for ind in (first + rest)[:k]]


class _Elitist:
    """(mu+lambda) with one objective: the population mates as it is and the ``k`` best
    distinct phenotypes of parents and offspring survive (:func:`sel_distinct_best`)."""

    pareto = False
    single_objective = True

    def mating_pool(self, population: list) -> list:
        """The population as it is."""
        return population

    def survivors(self, pool: Sequence, k: int, key: Callable) -> list:
        """The ``k`` best distinct phenotypes (copies)."""
        return sel_distinct_best(pool, k, key)


@dataclass(frozen=True)
class Tournament(_Elitist):
    """``ga``: parents by tournament of ``size``; elitist survivors."""

    size: int

    def settings(self) -> dict:
        """What a resumed run must share: the tournament size."""
        return {"tournament": self.size}

    def parents(self, pool: Sequence, k: int, rng: np.random.Generator) -> list:
        """``k`` tournament winners."""
        return sel_tournament(pool, k, self.size, rng)


@dataclass(frozen=True)
class NSGA2:
    """``nsga2``: crowded binary-tournament parents and ``selNSGA2`` survivors; a Pareto front
    is kept.  ``size`` (the experiment's tournament) is recorded but not used."""

    size: int
    pareto = True
    single_objective = False

    def settings(self) -> dict:
        """What a resumed run must share: the tournament setting."""
        return {"tournament": self.size}

    def mating_pool(self, population: list) -> list:
        """The population sorted by ``selNSGA2``, which (re)assigns the crowding distances the
        crowded tournament compares (deterministic)."""
        return tools.selNSGA2(population, len(population))

    def parents(self, pool: Sequence, k: int, rng: np.random.Generator) -> list:
        """``k`` crowded binary-tournament winners."""
        return sel_crowded_tournament(pool, k, rng)

    def survivors(self, pool: Sequence, k: int, key: Callable) -> list:
        """``selNSGA2`` of parents and offspring (copies)."""
        return [copy.deepcopy(ind) for ind in tools.selNSGA2(list(pool), k)]


@dataclass(frozen=True)
class DoubleTournament(_Elitist):
    """``gp``: DEAP's double tournament (a fitness tournament of ``size``, then a parsimony
    tournament preferring the smaller individual) for parents; elitist survivors.  Draws from
    a ``random.Random``."""

    size: int
    parsimony: float = PARSIMONY_SIZE

    def settings(self) -> dict:
        """What a resumed run must share: both tournament sizes."""
        return {"tournament": self.size, "parsimony": self.parsimony}

    def parents(self, pool: Sequence, k: int, rng: random.Random) -> list:
        """``k`` double-tournament winners."""
        with deap_random(rng):
            return tools.selDoubleTournament(pool, k, fitness_size=self.size,
                                             parsimony_size=self.parsimony, fitness_first=True)


STRATEGIES = {"ga": Tournament, "nsga2": NSGA2, "gp": DoubleTournament}
"""Algorithm name -> selection strategy (constructed with the tournament size)."""
