"""Python API for notebooks and scripts: run a policy search, score a policy bundle.

::

    from blis_evo.api import evolve, evaluate, default_experiment

    result = evolve("default", generations=20, workers=2, out="results/nb")
    result.summaries["champion"]["p99_ttft_ms"]            # held-out mean ± stdev
    ev = evaluate("results/nb/champion.yaml", "experiments/default.yaml", seeds=[7, 8, 9])
    ev.fitness, ev.mean.measures.p99_ttft_ms, ev.raw[0]    # RawMetrics per seed

The same functions are importable from ``blis_evo`` directly.  Command lines:
``python -m search.evolve`` (search), ``blis replay`` / ``python -m search.replay`` (re-evaluate
a champion on fresh seeds against the baselines), ``blis run --experiment E --seed S``.
"""
from __future__ import annotations

from os import PathLike
from typing import Iterable, Mapping

from simulator.config import PolicyConfig

from search.evaluate import evaluate as _evaluate
from search.evolve import GENOMES, evolve as _evolve
from search.replay import load_policy

from .bundle import bundle_from_mapping
from .experiment import Experiment, default_experiment, experiment_from_arg, load_experiment
from .phenotype import Phenotype
from .settings import phenotype_from_bundle

__all__ = ["evolve", "evaluate", "load_experiment", "default_experiment", "resolve_policy"]


def evolve(experiment=None, genome: str = "params", **kwargs):
    """Run the evolutionary search; returns a :class:`search.evolve.SearchResult` (champion,
    its bundle, the final search state, the held-out comparison, the output folder).

    ``experiment``: an Experiment, a YAML path, or None/"default" for the embedded default.
    ``genome``: "params" (the experiment's policy parameter space) or "gp" (genetic
    programming of the routing ``score()`` rule); see :data:`search.evolve.GENOMES`.
    Keyword arguments are those of :func:`search.evolve.evolve` (``generations``, ``workers``,
    ``out``, ``resume``, ``ray_address``, ``seed``, ``progress``).
    """
    if genome not in GENOMES:
        raise ValueError(f"genome: expected 'params' or 'gp', got {genome!r}")
    return _evolve(_experiment(experiment), genome=genome, **kwargs)


def _experiment(experiment):
    """``experiment`` as an Experiment (an Experiment, a YAML path, None or "default")."""
    if isinstance(experiment, Experiment):
        return experiment
    return experiment_from_arg(None if experiment is None else str(experiment))


def evaluate(bundle, experiment=None, seeds: Iterable[int] | None = None):
    """Score a policy on an experiment: the search's fitness (anomaly-penalised), the
    objectives, per-seed ``RawMetrics`` and the typed per-seed results and their mean, as a
    :class:`search.fitness.Evaluation`.

    ``bundle``: a policy-bundle YAML path (what ``blis run --policy-config`` takes, including the
    ``engine`` knobs), a bundle mapping (e.g. ``yaml.safe_load`` of one), a
    :class:`blis_evo.phenotype.Phenotype` (e.g. ``GeneSpace.phenotype(genome)``), a
    :class:`simulator.PolicyConfig`, or a ``(PolicyConfig, {knob: int})`` pair (engine-knob and
    layout field names, see :meth:`Phenotype.from_knobs`).
    ``experiment``: an Experiment, a YAML path, or None/"default" for the embedded default.
    ``seeds``: workload seeds (common random numbers across calls); default the experiment's
    held-out seeds.  Deterministic: the same arguments give the same result in any process.
    """
    exp = _experiment(experiment)
    phenotype = resolve_policy(bundle)
    seeds = tuple(exp.seeds.heldout if seeds is None else seeds)
    return _evaluate(phenotype, exp, seeds)


def resolve_policy(bundle) -> Phenotype:
    """The :class:`Phenotype` of anything :func:`evaluate` accepts as ``bundle`` (a bundle YAML
    path, a bundle mapping, a Phenotype, a PolicyConfig or a pair); InputError on a bad bundle."""
    if isinstance(bundle, (Phenotype, PolicyConfig)):
        return Phenotype.of(bundle)
    if isinstance(bundle, tuple) and len(bundle) == 2 and isinstance(bundle[0], PolicyConfig):
        return Phenotype.from_knobs(bundle[0], bundle[1])
    if isinstance(bundle, Mapping):
        return phenotype_from_bundle(bundle_from_mapping(dict(bundle)))
    if isinstance(bundle, (str, PathLike)):
        return load_policy(str(bundle))
    raise TypeError(f"bundle: expected a path, a mapping, a Phenotype, a PolicyConfig or "
                    f"(PolicyConfig, knobs), got {type(bundle).__name__}")
