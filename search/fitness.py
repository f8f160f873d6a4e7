"""Typed fitness values: what one seed's simulation scored, what an evaluation over seeds adds
up to, and the one place the anomaly-penalised fitness and objectives are computed.

A :class:`SeedResult` holds one seed's raw metrics (:class:`Measures`, each name ending in its
unit), the weighted score and its components, the per-request anomaly rates
(:class:`AnomalyRates`), the penalty ``P = Σ weight × rate`` and the penalised fitness
``score × exp(-P)``.  An :class:`Evaluation` holds the seeds' results in seed order, their
field-wise mean (:attr:`Evaluation.mean`, itself a :class:`SeedResult`) and what the search
ranks by: ``fitness`` (the mean of the per-seed penalised fitnesses) and ``objectives`` (the
multi-objective vector, or ``(fitness,)``).  :func:`seed_result` and :func:`combine` are the
only functions that apply the penalty, so every report, checkpoint and loop sees the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Mapping, Sequence

import numpy as np

from blis_evo.experiment import COST_KEYS, SLO_ATTAINMENT

WORST_LATENCY_MS = 1e12
"""Latency (ms) a failed evaluation scores on ``min`` latency objectives (multi mode)."""
OVERALL = "overall"
"""Key of the all-classes SLO attainment in :attr:`SeedResult.attainment`."""


@dataclass(frozen=True)
class AnomalyRates:
    """Anomalies of one run, as rates: per arrived request (class priority inversions,
    rejected (non-sheddable tiers: by admission, the gateway queue or eviction), dropped,
    SLO-violating, lost requests of sheddable tiers), per instance (HOL-blocking events) and per scale action
    (autoscaler oscillations).  Field names are the experiment's ``penalties`` keys."""

    priority_inversions: float = 0.0
    hol_blocking_events: float = 0.0
    rejected_requests: float = 0.0
    dropped_requests: float = 0.0
    slo_violations: float = 0.0
    scale_oscillation: float = 0.0
    shed_requests: float = 0.0

    def penalty(self, weights) -> float:
        """``P = Σ weights.<kind> × rate`` (``weights``: the experiment's ``Penalties``)."""
        return sum(getattr(weights, f.name) * getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Measures:
    """Raw metrics of one run (or their mean over seeds); every name ends in its unit: ``_ms``
    milliseconds, ``_rps`` requests per second, ``_frac``/``_rate`` fractions, ``gpus``
    instances × TP, ``replica_seconds``, ``avg_replicas``, and counts of scale events and
    oscillations."""

    p99_ttft_ms: float
    p50_ttft_ms: float
    mean_ttft_ms: float
    p99_e2e_ms: float
    p50_e2e_ms: float
    mean_e2e_ms: float
    throughput_rps: float
    tokens_per_sec: float
    cache_hit_rate: float
    preemption_rate: float
    completed_frac: float
    gpus: float
    replica_seconds: float
    avg_replicas: float
    scale_events: float
    scale_oscillation: float


@dataclass(frozen=True)
class SeedResult:
    """One seed's score (or, as :attr:`Evaluation.mean`, the field-wise mean over seeds).

    ``score``: the weighted fitness before the penalty; ``components``: its normalised terms by
    objective key; ``rates``/``penalty``: the anomalies and ``P``; ``fitness``: the penalised
    score (the mean of the per-seed fitnesses in a mean); ``measures``: the raw metrics;
    ``attainment``: SLO attainment per class and ``"overall"`` (empty without targets);
    ``code_nonfinite``: non-finite values a code policy returned (None without code policies).
    """

    score: float
    components: Mapping[str, float]
    rates: AnomalyRates
    penalty: float
    fitness: float
    measures: Measures
    attainment: Mapping[str, float] = field(default_factory=dict)
    code_nonfinite: float | None = None
    # per SLO class latencies in ms, keyed "<latency key>.<class>" (e.g. "p99_ttft.critical")
    class_measures: Mapping[str, float] = field(default_factory=dict)

    def objective(self, key: str) -> float:
        """The raw value of objective ``key`` in its own unit (latency keys in ms, ``throughput``
        in req/s, ``tokens_per_sec``, ``gpus``, cost keys, attainment as a fraction; attainment
        is 1 without targets), un-oriented and unpenalised."""
        m = self.measures
        if key == "throughput":
            return m.throughput_rps
        if key in ("gpus", "tokens_per_sec") or key in COST_KEYS:
            return getattr(m, key)
        if key == SLO_ATTAINMENT:
            return self.attainment.get(OVERALL, 1.0)
        if key.startswith(SLO_ATTAINMENT + "."):
            return self.attainment.get(key[len(SLO_ATTAINMENT) + 1:], 1.0)
        if "." in key:
            return self.class_measures.get(key, math.nan)
        return getattr(m, f"{key}_ms")


def penalty_factor(penalty: float) -> float:
    """Multiplier applied to a positive fitness for an anomaly penalty ``P >= 0``: exp(-P).

    Multiplicative so that the penalty weights mean the same whatever the scale of the fitness
    (BLIS latency fitness is 1/(1 + ms), tiny for second-scale tails): a weight w on a rate r
    costs a fraction 1 - exp(-w r) of the fitness.
    """
    return math.exp(-penalty)


def penalise(value: float, penalty: float) -> float:
    """``value`` made worse by ``penalty``: scaled towards 0 if positive, away from 0 if
    negative (a negated latency), so a penalty never flips the sign or ranks a value up."""
    f = penalty_factor(penalty)
    return value * f if value >= 0 else value / f


def seed_result(*, score: float, components: Mapping[str, float], rates: AnomalyRates,
                penalties, measures: Measures, attainment: Mapping[str, float],
                code_nonfinite: float | None,
                class_measures: Mapping[str, float] | None = None) -> SeedResult:
    """One seed's :class:`SeedResult`: the penalty from ``rates`` and the experiment's
    ``penalties`` weights, and the fitness ``penalise(score, P)``."""
    penalty = rates.penalty(penalties)
    return SeedResult(score=score, components=dict(components), rates=rates, penalty=penalty,
                      fitness=penalise(score, penalty), measures=measures,
                      attainment=dict(attainment), code_nonfinite=code_nonfinite,
                      class_measures=dict(class_measures or {}))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _mean_map(maps: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key (sorted), the mean over the maps (NaN where a map lacks the key)."""
    keys = sorted(set().union(*maps))
    return {k: _mean([m.get(k, math.nan) for m in maps]) for k in keys}


def mean_result(results: Sequence[SeedResult]) -> SeedResult:
    """The field-wise mean of ``results`` (``fitness`` is the mean of the penalised fitnesses,
    not the mean score penalised by the mean penalty)."""
    def avg(get):
        return _mean([get(r) for r in results])

    measures = Measures(**{f.name: avg(lambda r, n=f.name: getattr(r.measures, n))
                           for f in fields(Measures)})
    rates = AnomalyRates(**{f.name: avg(lambda r, n=f.name: getattr(r.rates, n))
                            for f in fields(AnomalyRates)})
    code = None
    if any(r.code_nonfinite is not None for r in results):
        code = avg(lambda r: math.nan if r.code_nonfinite is None else r.code_nonfinite)
    return SeedResult(score=avg(lambda r: r.score),
                      components=_mean_map([r.components for r in results]),
                      rates=rates, penalty=avg(lambda r: r.penalty),
                      fitness=avg(lambda r: r.fitness), measures=measures,
                      attainment=_mean_map([r.attainment for r in results]), code_nonfinite=code,
                      class_measures=_mean_map([r.class_measures for r in results]))


@dataclass(frozen=True)
class Evaluation:
    """Outcome of scoring one policy on a set of seeds (``search.evaluate.evaluate``).

    ``fitness``: scalar, higher is better = the mean over seeds of the penalised per-seed
    fitness.  ``objectives``: what the search ranks by -- the multi-objective vector (each
    oriented so that higher is better, penalised) in ``multi`` mode, else ``(fitness,)``.
    ``penalty``: the mean anomaly penalty.  ``per_seed``: one :class:`SeedResult` per seed, in
    seed order; ``mean``: their field-wise mean.  ``raw``: one ``RawMetrics`` per seed.
    ``error``: None, or why the simulation failed (then there are no per-seed results).
    """

    fitness: float
    objectives: tuple[float, ...]
    penalty: float = 0.0
    per_seed: tuple[SeedResult, ...] = ()
    mean: SeedResult | None = None
    raw: tuple = ()
    error: str | None = None


def combine(per_seed: Sequence[SeedResult], raw: Sequence, objectives) -> Evaluation:
    """The :class:`Evaluation` of per-seed results: fitness = mean penalised fitness; in
    ``multi`` mode (``objectives``: the experiment's ``Objectives``) each objective is the mean
    over seeds of its raw value, negated for ``min`` objectives, penalised by the mean penalty."""
    mean = mean_result(per_seed)
    if objectives.mode == "multi":
        vector = []
        for o in objectives.multi:
            v = _mean([r.objective(o.key) for r in per_seed])
            vector.append(penalise(-v if o.direction == "min" else v, mean.penalty))
        values = tuple(vector)
    else:
        values = (mean.fitness,)
    return Evaluation(fitness=mean.fitness, objectives=values, penalty=mean.penalty,
                      per_seed=tuple(per_seed), mean=mean, raw=tuple(raw))


def failed(objectives, error: str) -> Evaluation:
    """The worst possible result, for a policy whose simulation raised ``error``: fitness 0
    (no valid policy scores below 0) and, in ``multi`` mode, each objective at its worst bound."""
    if objectives.mode == "multi":
        values = tuple(-WORST_LATENCY_MS if o.direction == "min" else 0.0 for o in objectives.multi)
    else:
        values = (0.0,)
    return Evaluation(fitness=0.0, objectives=values, error=error)
