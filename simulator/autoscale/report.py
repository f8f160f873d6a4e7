"""Autoscaler metrics of a run as a plain dict (results JSON ``autoscaler`` section, search
objectives)."""
from __future__ import annotations

import numpy as np


def slo_met_requests(result) -> int:
    """Requests whose TTFT met the autoscaler's ``slo_ttft_ms`` target."""
    ttft = result.ttft_us
    return int(np.sum(np.isfinite(ttft) & (ttft <= result.autoscale.slo_ttft_ms * 1e3)))


def autoscale_summary(result) -> dict:
    """``scale_events``, ``scale_ups``, ``scale_downs``, ``replica_seconds`` (cost),
    ``avg_replicas``, ``slo_met_per_replica_second`` (requests meeting the TTFT target per
    replica-second), ``scale_oscillation`` (anomaly count), ``rerouted_requests``,
    ``parked_requests`` and ``decisions`` (the scale-action trace: time_s, action, from, to,
    reason, instances, routable_at_s, trigger)."""
    out = result.autoscale
    rs = out.replica_seconds
    return {
        "scale_events": len(out.events),
        "scale_ups": sum(e.action == "up" for e in out.events),
        "scale_downs": sum(e.action == "down" for e in out.events),
        "replica_seconds": rs,
        "avg_replicas": out.avg_replicas,
        "slo_met_per_replica_second": slo_met_requests(result) / rs if rs > 0 else 0.0,
        "scale_oscillation": out.oscillations,
        "rerouted_requests": out.rerouted,
        "parked_requests": out.parked,
        "decisions": [{"time_s": e.time_s, "action": e.action, "from": e.from_replicas,
                       "to": e.to_replicas, "reason": e.reason, "instances": list(e.instances),
                       "routable_at_s": list(e.routable_at_s), "trigger": e.trigger}
                      for e in out.events],
    }
