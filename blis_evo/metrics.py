"""Public metrics API for the policy search: raw metrics, fitness and weight parsing,
per-SLO-class / per-tenant distributions, Jain fairness and SLO attainment.

Thin re-export of ``simulator.metrics`` plus ``evaluate`` (one call from a ``SimResult`` to
its ``RawMetrics`` and ``FitnessResult``).
"""
from __future__ import annotations

from simulator.metrics import (
    SLO_TARGET_KEYS,
    VALID_FITNESS_KEYS,
    Distribution,
    FitnessResult,
    MetricsBlock,
    RawMetrics,
    cluster_metrics,
    fitness,
    instance_metrics,
    jain_fairness_index,
    parse_fitness_weights,
    per_slo_distributions,
    per_tenant_distributions,
    raw_metrics,
    slo_attainment,
    tenant_throughput,
    trace_summary,
)
from simulator.result import SimResult

__all__ = [
    "SLO_TARGET_KEYS", "VALID_FITNESS_KEYS", "Distribution", "FitnessResult", "MetricsBlock",
    "RawMetrics", "cluster_metrics", "evaluate", "fitness", "instance_metrics",
    "jain_fairness_index", "parse_fitness_weights", "per_slo_distributions",
    "per_tenant_distributions", "raw_metrics", "slo_attainment", "tenant_throughput",
    "trace_summary",
]


def evaluate(result: SimResult, priority_policy: str,
             weights: dict | None) -> tuple[RawMetrics, FitnessResult]:
    """Raw metrics and weighted fitness of one run.

    ``priority_policy`` enables the priority-inversion detector (off for ``constant``).
    With no/empty ``weights`` the fitness is ``FitnessResult(0.0, {})``.  Raises
    ``simulator.errors.InputError`` on an unknown weight key.
    """
    raw = raw_metrics(result, priority_policy)
    if not weights:
        return raw, FitnessResult(score=0.0, components={})
    return raw, fitness(raw, weights)
