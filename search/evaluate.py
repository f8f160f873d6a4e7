"""Fitness evaluation of one policy on an experiment: simulate each seed, score, penalise.

Common random numbers: :func:`blis_evo.deployment.experiment_workload` memoises the request
table per ``(experiment, seed)``, so every individual of a search sees exactly the same requests
for a given seed.  Everything is deterministic: the same policy, experiment and seeds give the same
:class:`Evaluation` in any process.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

import simulator
from blis_evo.baselines import BASELINES
from blis_evo.deployment import build_sim_config, deployed_policy, experiment_workload, slo_targets
from blis_evo.experiment import COST_KEYS, SLO_ATTAINMENT, Experiment
from blis_evo.metrics import RawMetrics, evaluate as _metrics_evaluate, slo_attainment
from simulator.codepolicy import uses_code_policy
from simulator.metrics import class_priority_inversions
from simulator.config import INT64_MAX, PolicyConfig
from simulator.workload.types import Workload


@dataclass(frozen=True)
class Evaluation:
    """Outcome of :func:`evaluate`.

    ``fitness``: scalar, higher is better = mean over seeds of the weighted fitness scaled by
    the anomaly factor exp(-penalty) (:func:`penalise`).
    ``objectives``: the multi-objective vector (experiment mode ``multi``; each oriented so that
    higher is better, penalised) or ``(fitness,)`` in single mode.  ``raw``: one
    :class:`RawMetrics` per seed.  ``penalty``: the anomaly penalty P (mean over seeds).
    ``components``: mean over seeds of every fitness component, the mean raw metrics
    (``p99_ttft_ms``, ``mean_e2e_ms``, ``throughput_rps``, ...), SLO attainment and the
    per-request anomaly rates.  ``per_seed``: the same metrics for each seed, in seed order
    (``fitness`` there is that seed's penalised score), for mean ± stdev over seeds.
    ``error``: None, or why the simulation failed (see :func:`failed_evaluation`).
    """

    fitness: float
    objectives: tuple[float, ...]
    raw: list = field(default_factory=list)
    penalty: float = 0.0
    components: dict = field(default_factory=dict)
    per_seed: list = field(default_factory=list)
    error: str | None = None


WORST_LATENCY_MS = 1e12
"""Latency (ms) a failed evaluation scores on ``min`` latency objectives (multi mode)."""


def failed_evaluation(exp: Experiment, genome, error: str) -> Evaluation:
    """The worst possible result, for a genome whose simulation raised ``error`` (a
    deterministic failure, so the search penalises it instead of retrying): fitness 0 (no valid
    policy scores below 0), each multi objective at its worst bound."""
    if exp.objectives.mode == "multi":
        objectives = tuple(-WORST_LATENCY_MS if o.direction == "min" else 0.0
                           for o in exp.objectives.multi)
    else:
        objectives = (0.0,)
    return Evaluation(fitness=0.0, objectives=objectives, error=f"{error} (genome {list(genome)})")


def _seed_metrics(policy: PolicyConfig, exp: Experiment, seed: int,
                  sim_params: Mapping[str, int] | None) -> tuple[RawMetrics, dict]:
    policy = deployed_policy(policy, exp)
    wl = experiment_workload(exp, int(seed))
    res = simulator.run(build_sim_config(exp, seed, sim_params), policy, wl)
    weights = {k: v for k, v in exp.objectives.weights if k != SLO_ATTAINMENT}
    raw, fit = _metrics_evaluate(res, policy.priority, weights)
    n = max(1, wl.num_requests)
    comps: dict[str, float] = dict(fit.components)
    score = fit.score
    targets = slo_targets(exp)
    att: dict[str, float] = {}
    violations = 0.0
    if targets:
        att = slo_attainment(res, targets)
        horizon = exp.workload.horizon_us if exp.workload.horizon_us is not None else INT64_MAX
        arrived = int(np.sum(np.asarray(res.arrival_us) < horizon))
        violations = (1.0 - att["overall"]) * arrived
    w_slo = exp.objectives.weight_map.get(SLO_ATTAINMENT, 0.0)
    if w_slo:
        comps[SLO_ATTAINMENT] = att.get("overall", 1.0)
        score += w_slo * comps[SLO_ATTAINMENT]
    dropped = int(np.sum(res.inst_dropped))
    cost = _cost_metrics(res)
    rates = {
        "priority_inversions": _class_inversions(res, wl, exp) / n,
        "hol_blocking_events": raw.hol_blocking_events / max(1, len(res.inst_completed)),
        "rejected_requests": raw.rejected_requests / n,
        "dropped_requests": dropped / n,
        "slo_violations": violations / n,
        "scale_oscillation": cost["scale_oscillation"] / max(1, cost["scale_events"]),
    }
    p = exp.penalties
    penalty = sum(getattr(p, k) * v for k, v in rates.items())
    m = {
        "score": score,
        "penalty": penalty,
        "p99_ttft_ms": raw.ttft.p99 / 1000.0, "p50_ttft_ms": raw.ttft.p50 / 1000.0,
        "mean_ttft_ms": raw.ttft.mean / 1000.0,
        "p99_e2e_ms": raw.e2e.p99 / 1000.0, "p50_e2e_ms": raw.e2e.p50 / 1000.0,
        "mean_e2e_ms": raw.e2e.mean / 1000.0,
        "throughput_rps": raw.requests_per_sec, "tokens_per_sec": raw.tokens_per_sec,
        "cache_hit_rate": raw.cache_hit_rate, "preemption_rate": raw.preemption_rate,
        "completed_frac": float(np.sum(res.inst_completed)) / n,
        "gpus": float(res.num_instances * exp.cluster.tp),
        **cost,
    }
    if uses_code_policy(policy):
        m["code_nonfinite"] = float(res.code_nonfinite)
    for k, v in comps.items():
        m[f"fit.{k}"] = v
    for k, v in rates.items():
        m[f"rate.{k}"] = v
    for k, v in att.items():
        m[f"{SLO_ATTAINMENT}.{k}"] = v
    return raw, m


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


def _objective_value(key: str, m: dict) -> float:
    """Raw (un-oriented) value of a multi-objective key from one seed's metrics dict."""
    if key == "throughput":
        return m["throughput_rps"]
    if key == "gpus":
        return m["gpus"]
    if key == "tokens_per_sec":
        return m["tokens_per_sec"]
    if key == SLO_ATTAINMENT:
        return m.get(f"{SLO_ATTAINMENT}.overall", 1.0)
    if key.startswith(SLO_ATTAINMENT + "."):
        return m.get(key, 1.0)
    if key in COST_KEYS:
        return m[key]
    return m[f"{key}_ms"]  # latency keys, in ms


def evaluate(policy: PolicyConfig, exp: Experiment, seeds: Iterable[int],
             sim_params: Mapping[str, int] | None = None) -> Evaluation:
    """Simulate ``policy`` on ``exp``'s workload for every seed and score it.

    Per seed: ``blis_evo.metrics.evaluate`` with the experiment's weights (plus
    ``slo_attainment`` weight × overall attainment when the spec declares targets), and the
    anomaly penalty ``P = Σ penalties[k] × rate_k``.  The rates are per request for
    SLO-class priority inversions (:func:`simulator.metrics.class_priority_inversions` with
    :func:`slo_class_ranks`), rejected, dropped-unservable and SLO-violating requests, and per
    instance for HOL-blocking events.  ``fitness`` is the mean over seeds of
    ``score × exp(-P)``.  In ``multi`` mode each objective is the mean over seeds of the raw
    metric (latencies in ms, throughput in req/s or tok/s, attainment in [0, 1]), negated for
    ``min`` objectives, then penalised by :func:`penalise` with the mean ``P``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("evaluate needs at least one seed")
    raws, per = [], []
    for s in seeds:
        r, m = _seed_metrics(policy, exp, s, sim_params)
        raws.append(r)
        per.append(m)
    keys = sorted(set().union(*per))
    comps = {k: float(np.mean([m.get(k, math.nan) for m in per])) for k in keys}
    penalty = comps.pop("penalty")
    score = comps.pop("score")
    for m in per:
        m["fitness"] = penalise(m["score"], m["penalty"])
    fitness = float(np.mean([m["fitness"] for m in per]))
    if exp.objectives.mode == "multi":
        objs = []
        for o in exp.objectives.multi:
            v = float(np.mean([_objective_value(o.key, m) for m in per]))
            objs.append(penalise(-v if o.direction == "min" else v, penalty))
        objectives = tuple(objs)
    else:
        objectives = (fitness,)
    comps["score"] = score
    return Evaluation(fitness=float(fitness), objectives=objectives, raw=raws,
                      penalty=float(penalty), components=comps, per_seed=per)


def compare_policies(policies: Mapping[str, tuple[PolicyConfig, Mapping[str, int] | None]],
                     exp: Experiment, seeds: Iterable[int]) -> dict[str, Evaluation]:
    """Evaluate each named ``(policy, sim_params)`` on the same ``seeds`` (common random
    numbers), in the given order; the input of ``search.report.comparison_table``."""
    seeds = tuple(int(s) for s in seeds)
    return {name: evaluate(p, exp, seeds, sp) for name, (p, sp) in policies.items()}


def with_baselines(champion: PolicyConfig, sim_params: Mapping[str, int] | None = None,
                   name: str = "champion") -> dict[str, tuple[PolicyConfig, Mapping[str, int] | None]]:
    """``{name: (champion, sim_params)}`` followed by the hand-tuned :data:`BASELINES`."""
    return {name: (champion, dict(sim_params or {})), **{k: (v, None) for k, v in BASELINES.items()}}
