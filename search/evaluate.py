"""Fitness evaluation of one policy on an experiment: simulate each seed, score, penalise.

Common random numbers: :func:`experiment_workload` memoises the request table per
``(experiment, seed)``, so every individual of a search sees exactly the same requests for a
given seed.  Everything is deterministic: the same policy, experiment and seeds give the same
:class:`Evaluation` in any process.
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Iterable, Mapping

import numpy as np

import simulator
from blis_evo.metrics import RawMetrics, evaluate as _metrics_evaluate, slo_attainment
from simulator.codepolicy import uses_code_policy
from simulator.metrics import class_priority_inversions
from simulator.config import INT64_MAX, DEFAULT_SCORERS, DisaggConfig, PolicyConfig, SimConfig
from simulator.workload.types import Workload

from search.experiment import SLO_ATTAINMENT, Experiment
from search.fitness import (OVERALL, AnomalyRates, Evaluation, Measures, SeedResult, combine,
                            failed, seed_result)

BASELINES: dict[str, PolicyConfig] = {
    "round-robin": PolicyConfig(routing="round-robin"),
    "least-loaded": PolicyConfig(routing="least-loaded"),
    "llm-d-default": PolicyConfig(routing="weighted", scorers=DEFAULT_SCORERS),
}
"""Hand-tuned reference policies the search must beat (llm-d default = weighted 3:2:2)."""

PATHOLOGICAL = PolicyConfig(routing="always-busiest", scheduler="reverse-priority",
                            priority="slo-based")
"""A deliberately bad policy: everything to the busiest instance, youngest request first
(reverse-priority under the age-based slo-based priority; note that reverse-priority with
inverted-slo would cancel out into oldest-first).  Tests: it must rank below round-robin."""


def failed_evaluation(exp: Experiment, genome, error: str) -> Evaluation:
    """The worst possible result (:func:`search.fitness.failed`), for a genome whose simulation
    raised ``error`` (a deterministic failure, so the search penalises it instead of retrying);
    the error names the genome."""
    return failed(exp.objectives, f"{error} (genome {list(genome)})")


def build_sim_config(exp: Experiment, seed: int = 0,
                     sim_params: Mapping[str, int] | None = None) -> SimConfig:
    """The engine configuration of the experiment's cluster (``seed`` goes to ``SimConfig.seed``).

    ``sim_params`` overrides SimConfig knobs a genome may evolve (``snapshot_refresh_interval``,
    ``long_prefill_token_threshold``; see ``search.genome.decode_sim_params``).
    """
    c = exp.cluster
    horizon = exp.workload.horizon_us if exp.workload.horizon_us is not None else int(INT64_MAX)
    cfg = SimConfig(num_instances=c.num_instances, horizon=int(horizon), seed=int(seed),
                     total_kv_blocks=c.total_kv_blocks, block_size=c.block_size,
                     max_running_reqs=c.max_running_reqs,
                     max_scheduled_tokens=c.max_scheduled_tokens,
                     long_prefill_token_threshold=c.long_prefill_token_threshold,
                     latency=c.latency)
    if sim_params:
        knobs = {k: int(v) for k, v in sim_params.items() if not k.startswith("pd_")}
        cfg = replace(cfg, **knobs)
        dc = pd_layout(cfg.num_instances, sim_params)
        if dc is not None:
            cfg = replace(cfg, disaggregation=dc)
    return cfg


def pd_layout(num_instances: int, sim_params: Mapping[str, int]) -> DisaggConfig | None:
    """The P/D deployment the layout genes describe: ``pd_prefill_replicas`` > 0 (capped so the
    decode pool keeps at least one instance) splits ``num_instances`` into a prefill and a decode
    pool; ``pd_prefix_threshold``, when evolved, selects the prefix-threshold decider (else every
    request with something to decode is disaggregated).  None: monolithic."""
    k = min(int(sim_params.get("pd_prefill_replicas", 0)), num_instances - 1)
    if k <= 0:
        return None
    if "pd_prefix_threshold" in sim_params:
        return DisaggConfig(prefill_replicas=k, decode_replicas=num_instances - k,
                            decider="prefix-threshold",
                            prefix_threshold=int(sim_params["pd_prefix_threshold"]))
    return DisaggConfig(prefill_replicas=k, decode_replicas=num_instances - k)


@functools.lru_cache(maxsize=256)
def experiment_workload(exp: Experiment, seed: int) -> Workload:
    """The request table of ``exp`` for ``seed`` (memoised: the same object for every call).

    Specs and presets are generated with ``workload.num_requests`` / ``horizon_us`` and the seed
    overriding the spec's; a trace is read once (the seed does not change it; a trace-v2
    directory uses the seed only for synthetic token ids).
    """
    w = exp.workload
    if w.kind in ("spec", "preset"):
        from simulator.workload.generator import generate_from_spec
        return generate_from_spec(w.spec, horizon_us=w.horizon_us, max_requests=w.num_requests,
                                  seed=int(seed))
    from simulator.workload.tracev2 import is_trace_v2
    if is_trace_v2(w.path):
        from simulator.workload.tracev2 import load_trace_v2
        wl = load_trace_v2(w.path, seed=int(seed))
    else:
        from simulator.workload.csv_trace import load_trace_csv
        wl = load_trace_csv(w.path, w.horizon_us if w.horizon_us is not None else int(INT64_MAX))
    if wl.num_requests > w.num_requests:
        wl = _head(wl, w.num_requests)
    return wl


def _head(wl: Workload, n: int) -> Workload:
    end = int(wl.token_ptr[n])
    cut = lambda a: None if a is None else a[:n]  # noqa: E731
    return Workload(wl.arrival_us[:n], wl.n_in[:n], wl.n_out[:n], wl.token_ptr[:n + 1],
                    wl.tokens[:end], cut(wl.slo_class), cut(wl.tenant), wl.slo_names,
                    wl.tenant_names)


@functools.lru_cache(maxsize=64)
def slo_targets(exp: Experiment) -> dict:
    """``{slo_class: {ttft_ms/tpot_ms/e2e_ms: value}}`` from the workload spec's clients
    (first client of a class wins); empty for traces and specs without targets."""
    spec = exp.workload.spec
    return {} if spec is None else spec.slo_targets_by_class()


def deployed_policy(policy: PolicyConfig, exp: Experiment) -> PolicyConfig:
    """``policy`` as the experiment deploys it: the experiment's ``autoscaler`` section scales
    the cluster of every policy that brings no autoscaler of its own (baselines included), so
    search genomes, baselines, replays and ``blis run --experiment`` all run the same deployment."""
    if exp.autoscaler is not None and policy.autoscaler is None:
        return replace(policy, autoscaler=exp.autoscaler)
    return policy


def _seed_result(policy: PolicyConfig, exp: Experiment, seed: int,
                 sim_params: Mapping[str, int] | None) -> tuple[RawMetrics, SeedResult]:
    """Simulate one seed and score it: the raw metrics and the typed :class:`SeedResult`."""
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
        violations = (1.0 - att[OVERALL]) * arrived
    w_slo = exp.objectives.weight_map.get(SLO_ATTAINMENT, 0.0)
    if w_slo:
        comps[SLO_ATTAINMENT] = att.get(OVERALL, 1.0)
        score += w_slo * comps[SLO_ATTAINMENT]
    cost = _cost_metrics(res)
    rates = AnomalyRates(
        priority_inversions=_class_inversions(res, wl, exp) / n,
        hol_blocking_events=raw.hol_blocking_events / max(1, len(res.inst_completed)),
        rejected_requests=raw.rejected_requests / n,
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
                            measures=measures, attainment=att, code_nonfinite=code)


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
    ``min`` objectives, then penalised by :func:`search.fitness.penalise` with the mean ``P``
    (:func:`search.fitness.combine`).  The result is a typed :class:`search.fitness.Evaluation`.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("evaluate needs at least one seed")
    scored = [_seed_result(policy, exp, s, sim_params) for s in seeds]
    return combine([r for _, r in scored], [raw for raw, _ in scored], exp.objectives)


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
