"""Frozen configuration for one cluster simulation.

Port of the run-time knobs of BLIS ``cmd/root.go`` / ``sim/cluster/deployment.go`` @cbb0de7b.
Values arrive here already validated (``blis_evo.cli`` / ``blis_evo.bundle`` validate once, at the
boundary); the engine trusts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class ScorerSpec:
    """One weighted-routing scorer: registry name and (un-normalised) positive weight."""

    name: str
    weight: float


DEFAULT_SCORERS: tuple[ScorerSpec, ...] = (
    ScorerSpec("prefix-affinity", 3.0),
    ScorerSpec("queue-depth", 2.0),
    ScorerSpec("kv-utilization", 2.0),
)


@dataclass(frozen=True)
class LatencyConfig:
    """Step-time model.

    ``kind`` is ``"blackbox"`` (alpha/beta regression) or ``"roofline"``.  Alpha is always used
    for queueing delay (alpha0 + alpha1*input_len) and per-token post-processing (alpha2); in
    roofline mode it is whatever the CLI gave (zeros by default), as in the reference.
    ``roofline_params`` is the float vector built by ``simulator.latency.roofline_params``.
    """

    kind: str = "blackbox"
    alpha: tuple[float, ...] = (0.0, 0.0, 0.0)
    beta: tuple[float, ...] = (0.0, 0.0, 0.0)
    tp: int = 1
    roofline_params: tuple[float, ...] = ()


@dataclass(frozen=True)
class PolicyConfig:
    """Control-plane policies (the part a search evolves)."""

    admission: str = "always-admit"
    token_bucket_capacity: float = 10000.0
    token_bucket_refill_rate: float = 1000.0
    routing: str = "round-robin"
    scorers: tuple[ScorerSpec, ...] = DEFAULT_SCORERS
    priority: str = "constant"
    scheduler: str = "fcfs"
    autoscaler: "AutoscalerConfig | None" = None  # simulator.autoscale.config; None = fixed cluster


@dataclass(frozen=True)
class SimConfig:
    """Everything the engine needs besides the workload and the policy."""

    num_instances: int = 1
    horizon: int = int(INT64_MAX)
    seed: int = 42
    total_kv_blocks: int = 1_000_000
    block_size: int = 16
    max_running_reqs: int = 256
    max_scheduled_tokens: int = 2048
    long_prefill_token_threshold: int = 0
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    kv_cpu_blocks: int = 0
    kv_offload_threshold: float = 0.9
    kv_transfer_bandwidth: float = 100.0
    kv_transfer_base_latency: int = 0
    admission_latency: int = 0
    routing_latency: int = 0
    snapshot_refresh_interval: int = 0
    trace_decisions: bool = False
    counterfactual_k: int = 0
    legacy_blis_quirks: bool = False
    router_lru_capacity: int = 10_000  # blocks the router's prefix index remembers per instance (reference: 10000)
