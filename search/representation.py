"""What the search loop and ``evolve`` need of a kind of individual (a representation).

Two implementations: :class:`search.vector.VectorGenome` (a flat gene vector over a
:class:`search.genome.GeneSpace`, for the ``ga`` and ``nsga2`` algorithms) and
:class:`search.gp.RuleTrees` (typed DEAP expression trees of a routing ``score()`` rule, for
``gp``).  Individuals are DEAP objects with a ``fitness`` attribute; everything else about them
is the representation's business.  Methods must be deterministic given the RNG they are handed:
the loop's byte-identical resume rests on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Hashable, Protocol, Sequence

from blis_evo.phenotype import Phenotype


class Representation(Protocol):
    """The interface :func:`search.loop.run` (first group) and :func:`search.evolve.evolve`
    (second group) use."""

    name: str
    """Stored in the checkpoint settings (``params``, ``gp``)."""
    algorithms: tuple[str, ...]
    """The selection strategies (:data:`search.selection.STRATEGIES`) it works with; they must
    draw from the same kind of RNG as :meth:`new_rng` makes."""

    # --- the loop --------------------------------------------------------------------------

    def settings(self) -> dict:
        """Variation settings a resumed run must share with its checkpoint."""

    def new_rng(self, seed: int) -> Any:
        """The run's only random generator, seeded."""

    def rng_state(self, rng: Any) -> Any:
        """Picklable state of ``rng`` (saved in every checkpoint)."""

    def restore_rng(self, state: Any) -> Any:
        """A generator continuing from ``state``."""

    def initial(self, seeds: Sequence, n: int, rng: Any, weights: tuple[float, ...]) -> list:
        """Generation 0: ``n`` individuals without fitness, ``seeds`` (in the representation's
        own seed form: a gene list, a rule string) first."""

    def breed(self, parents: Callable[[int], list], n: int, rng: Any) -> list:
        """``n`` offspring; ``parents(k)`` returns ``k`` selected parents (references: copy
        before changing).  A changed child must lose its fitness (``del child.fitness.values``)."""

    def key(self, individual) -> Hashable:
        """Canonical phenotype: equal keys mean identical simulations (survivor de-duplication)."""

    def genome(self, individual) -> Any:
        """What ``evaluate_batch`` (and :class:`search.parallel.Evaluator`) receives."""

    def encode(self, individual) -> Any:
        """Plain, picklable checkpoint row, lossless: what :meth:`decode` rebuilds must vary
        exactly as the original would."""

    def decode(self, row: Any, weights: tuple[float, ...]):
        """The individual of an :meth:`encode` row, without fitness."""

    # --- evolve: evaluation and outputs ----------------------------------------------------

    @property
    def phenotypes(self) -> Any:
        """The space :class:`search.parallel.Evaluator` decodes :meth:`genome` values with
        (``canonical(genome)``, ``phenotype(genome)``; picklable, shipped to Ray workers)."""

    def phenotype(self, individual) -> Phenotype:
        """The :class:`~blis_evo.phenotype.Phenotype` the individual runs (the held-out
        comparison)."""

    def describe(self, individual) -> dict:
        """Its entry fields in hall_of_fame.json and pareto.json."""

    def champion(self, individual, out: Path) -> tuple[dict, str | None]:
        """Write any champion files into ``out``; return the champion.yaml bundle and the
        source code the report quotes (None if there is none)."""
