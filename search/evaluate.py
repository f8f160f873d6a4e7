"""Fitness evaluation of one policy on an experiment: simulate each seed, score, penalise.

A policy is evaluated as a :class:`blis_evo.phenotype.Phenotype` (its engine knobs and layout
applied to the experiment's cluster); a bare :class:`PolicyConfig` is accepted as well.  Common
random numbers: :func:`blis_evo.deployment.experiment_workload` memoises the request
table per ``(experiment, seed)``, so every individual of a search sees exactly the same requests
for a given seed.  Everything is deterministic: the same policy, experiment and seeds give the same
:class:`Evaluation` in any process.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Union

import math

import numpy as np

import simulator
from blis_evo.baselines import BASELINES
from blis_evo.deployment import build_sim_config, deployed_policy, experiment_workload, slo_targets
from blis_evo.experiment import SLO_ATTAINMENT, Experiment, class_key
from blis_evo.metrics import RawMetrics, evaluate as _metrics_evaluate, slo_attainment
from blis_evo.phenotype import Phenotype
from simulator.codepolicy import uses_code_policy
from simulator.metrics import (LOST_OUTCOMES, LOST_STATES, class_priority_inversions, goodput,
                               per_slo_distributions, request_outcomes)
from simulator.config import INT64_MAX, PolicyConfig
from simulator.workload.types import Workload

from search.fitness import (OVERALL, AnomalyRates, Evaluation, Measures, SeedResult, combine,
                            failed, seed_result)

PolicyLike = Union[Phenotype, PolicyConfig]
"""What the evaluation functions accept: a phenotype, or a bare policy (the experiment's engine
knobs and layout)."""


def failed_evaluation(exp: Experiment, genome, error: str) -> Evaluation:
    """The worst possible result (:func:`search.fitness.failed`), for a genome whose simulation
    raised ``error`` (a deterministic failure, so the search penalises it instead of retrying);
    the error names the genome."""
    return failed(exp.objectives, f"{error} (genome {list(genome)})")


def _seed_result(phenotype: Phenotype, exp: Experiment, seed: int) -> tuple[RawMetrics, SeedResult]:
    """Simulate one seed and score it: the raw metrics and the typed :class:`SeedResult`."""
    policy = deployed_policy(phenotype.policy, exp)
    wl = experiment_workload(exp, int(seed))
    res = simulator.run(build_sim_config(exp, seed, phenotype), policy, wl)
    weights = {k: v for k, v in exp.objectives.weights
               if k != SLO_ATTAINMENT and class_key(k) is None}
    raw, fit = _metrics_evaluate(res, policy.priority, weights)
    n = max(1, wl.num_requests)
    comps: dict[str, float] = dict(fit.components)
    score = fit.score
    class_ms = _class_measures(res, slo_targets(exp))
    for key, w in exp.objectives.weights:
        if class_key(key) is not None:
            # the cluster-wide transform 1 / (1 + ms); a class with no such latency (all its
            # requests lost) scores 0
            ms = class_ms.get(key, math.nan)
            comps[key] = 0.0 if math.isnan(ms) else 1.0 / (1.0 + ms)
            score += w * comps[key]
    targets = slo_targets(exp)
    att: dict[str, float] = {}
    violations = 0.0
    if targets:
        att = slo_attainment(res, targets)
        horizon = exp.workload.horizon_us if exp.workload.horizon_us is not None else INT64_MAX
        arrived = int(np.sum(np.asarray(res.arrival_us) < horizon))
        violations = (1.0 - att[OVERALL]) * arrived
    w_slo = exp.objectives.weight_map.get(SLO_ATTAINMENT, 0.0)
    if w_slo:
        comps[SLO_ATTAINMENT] = att.get(OVERALL, 1.0)
        score += w_slo * comps[SLO_ATTAINMENT]
    cost = _cost_metrics(res)
    lost = np.isin(res.req_state, LOST_STATES)
    sheddable = np.asarray(res.slo_priority) < 0
    # equal weights: one rate, so experiments that do not weigh tiers apart score as before
    split = exp.penalties.shed_requests != exp.penalties.rejected_requests
    rates = AnomalyRates(
        priority_inversions=_class_inversions(res, wl, exp) / n,
        hol_blocking_events=raw.hol_blocking_events / max(1, len(res.inst_completed)),
        rejected_requests=float(np.sum(lost & ~sheddable if split else lost)) / n,
        shed_requests=float(np.sum(lost & sheddable)) / n if split else 0.0,
        dropped_requests=int(np.sum(res.inst_dropped)) / n,
        slo_violations=violations / n,
        scale_oscillation=cost["scale_oscillation"] / max(1, cost["scale_events"]),
    )
    measures = Measures(
        p99_ttft_ms=raw.ttft.p99 / 1000.0, p50_ttft_ms=raw.ttft.p50 / 1000.0,
        mean_ttft_ms=raw.ttft.mean / 1000.0,
        p99_e2e_ms=raw.e2e.p99 / 1000.0, p50_e2e_ms=raw.e2e.p50 / 1000.0,
        mean_e2e_ms=raw.e2e.mean / 1000.0,
        throughput_rps=raw.requests_per_sec, tokens_per_sec=raw.tokens_per_sec,
        cache_hit_rate=raw.cache_hit_rate, preemption_rate=raw.preemption_rate,
        completed_frac=float(np.sum(res.inst_completed)) / n,
        gpus=float(res.num_instances * exp.cluster.tp),
        **{k: float(v) for k, v in cost.items()},
    )
    code = float(res.code_nonfinite) if uses_code_policy(policy) else None
    return raw, seed_result(score=score, components=comps, rates=rates, penalties=exp.penalties,
                            measures=measures, attainment=att, code_nonfinite=code,
                            class_measures=class_ms)


def _class_measures(res, targets: dict) -> dict[str, float]:
    """Per SLO class of the run: ``"<latency key>.<class>"`` in ms (TTFT over requests with a
    first token, E2E over completed ones: the reference's per-SLO distributions),
    ``"lost.<class>"`` (requests rejected, refused, shed, expired or evicted) and, with SLO
    targets, ``"goodput_rps.<class>"`` (completed within the class's targets, per second)."""
    out: dict[str, float] = {}
    for cls, (ttft, e2e) in per_slo_distributions(res).items():
        for dist, kind in ((ttft, "ttft"), (e2e, "e2e")):
            if dist.count == 0:
                continue
            for stat in ("p99", "p50", "mean"):
                out[f"{stat}_{kind}.{cls}"] = getattr(dist, stat) / 1000.0
    outcomes = request_outcomes(res)["per_slo"]
    for cls, row in outcomes.items():
        out[f"lost.{cls}"] = float(sum(row[k] for k in LOST_OUTCOMES))
    if targets:
        for cls, rps in goodput(res, targets).items():
            if cls != OVERALL:
                out[f"goodput_rps.{cls}"] = rps
    return out


def _cost_metrics(res) -> dict:
    """Replica cost of a run: the autoscaler's replica-seconds and average replicas, or for a
    fixed cluster num_instances over [0, the last instance clock]; scale events and
    oscillations (0 without an autoscaler)."""
    a = res.autoscale
    if a is not None:
        return {"replica_seconds": a.replica_seconds, "avg_replicas": a.avg_replicas,
                "scale_events": len(a.events), "scale_oscillation": a.oscillations}
    span = float(np.max(res.inst_sim_ended_us)) / 1e6 if len(res.inst_sim_ended_us) else 0.0
    return {"replica_seconds": res.num_instances * span, "avg_replicas": float(res.num_instances),
            "scale_events": 0, "scale_oscillation": 0}


def slo_class_ranks(exp: Experiment, slo_names) -> np.ndarray:
    """Importance rank per SLO class index: classes with a TTFT target rank above those
    without, and a tighter target ranks higher (1 = loosest target; 0 = no TTFT target)."""
    targets = slo_targets(exp)
    ttft = sorted({t["ttft_ms"] for t in targets.values() if "ttft_ms" in t}, reverse=True)
    out = np.zeros(len(slo_names), dtype=np.int64)
    for i, name in enumerate(slo_names):
        t = targets.get(name, {}).get("ttft_ms")
        if t is not None:
            out[i] = ttft.index(t) + 1
    return out


def _class_inversions(res, wl: Workload, exp: Experiment) -> int:
    if wl.slo_class is None:
        return 0
    ranks = slo_class_ranks(exp, wl.slo_names)[np.asarray(wl.slo_class)]
    arrival = np.asarray(res.arrival_us, dtype=np.float64)
    return class_priority_inversions(res.req_instance, arrival,
                                     arrival + np.asarray(res.ttft_us, dtype=np.float64), ranks)


def evaluate(policy: PolicyLike, exp: Experiment, seeds: Iterable[int]) -> Evaluation:
    """Simulate ``policy`` (a :class:`Phenotype`, or a bare :class:`PolicyConfig`) on ``exp``'s
    workload for every seed and score it.

    Per seed: ``blis_evo.metrics.evaluate`` with the experiment's weights (plus
    ``slo_attainment`` weight × overall attainment when the spec declares targets), and the
    anomaly penalty ``P = Σ penalties[k] × rate_k``.  The rates are per request for
    SLO-class priority inversions (:func:`simulator.metrics.class_priority_inversions` with
    :func:`slo_class_ranks`), rejected, dropped-unservable and SLO-violating requests, and per
    instance for HOL-blocking events.  ``fitness`` is the mean over seeds of
    ``score × exp(-P)``.  In ``multi`` mode each objective is the mean over seeds of the raw
    metric (latencies in ms, throughput in req/s or tok/s, attainment in [0, 1]), negated for
    ``min`` objectives, then penalised by :func:`search.fitness.penalise` with the mean ``P``
    (:func:`search.fitness.combine`).  The result is a typed :class:`search.fitness.Evaluation`.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("evaluate needs at least one seed")
    phenotype = Phenotype.of(policy)
    scored = [_seed_result(phenotype, exp, s) for s in seeds]
    return combine([r for _, r in scored], [raw for raw, _ in scored], exp.objectives)


def compare_policies(policies: Mapping[str, PolicyLike], exp: Experiment,
                     seeds: Iterable[int]) -> dict[str, Evaluation]:
    """Evaluate each named phenotype on the same ``seeds`` (common random numbers), in the
    given order; the input of ``search.report.comparison_table``."""
    seeds = tuple(int(s) for s in seeds)
    return {name: evaluate(p, exp, seeds) for name, p in policies.items()}


def with_baselines(champion: PolicyLike, name: str = "champion") -> dict[str, Phenotype]:
    """``{name: champion}`` followed by the hand-tuned :data:`BASELINES` (with the experiment's
    engine knobs and layout), all as phenotypes."""
    return {name: Phenotype.of(champion), **{k: Phenotype(v) for k, v in BASELINES.items()}}
