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
from .settings import policy_from_bundle

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
    :class:`simulator.PolicyConfig`, or a ``(PolicyConfig, sim_params)`` pair.
    ``experiment``: an Experiment, a YAML path, or None/"default" for the embedded default.
    ``seeds``: workload seeds (common random numbers across calls); default the experiment's
    held-out seeds.  Deterministic: the same arguments give the same result in any process.
    """
    exp = _experiment(experiment)
    policy, sim_params = resolve_policy(bundle)
    seeds = tuple(exp.seeds.heldout if seeds is None else seeds)
    return _evaluate(policy, exp, seeds, sim_params)


def resolve_policy(bundle):
    """``(PolicyConfig, sim_params)`` of anything :func:`evaluate` accepts as ``bundle`` (a
    bundle YAML path, a bundle mapping, a PolicyConfig or a pair); InputError on a bad bundle."""
    if isinstance(bundle, PolicyConfig):
        return bundle, {}
    if isinstance(bundle, tuple) and len(bundle) == 2 and isinstance(bundle[0], PolicyConfig):
        return bundle[0], dict(bundle[1] or {})
    if isinstance(bundle, Mapping):
        b = bundle_from_mapping(dict(bundle))
        return policy_from_bundle(b), b.engine_params()
    if isinstance(bundle, (str, PathLike)):
        return load_policy(str(bundle))
    raise TypeError(f"bundle: expected a path, a mapping, a PolicyConfig or (PolicyConfig, "
                    f"sim_params), got {type(bundle).__name__}")
