"""Frozen configuration for one cluster simulation.

Port of the run-time knobs of BLIS ``cmd/root.go`` / ``sim/cluster/deployment.go`` @cbb0de7b.
Values arrive here already validated (``blis_evo.cli`` / ``blis_evo.bundle`` validate once, at the
boundary); the engine trusts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Mapping

from .kernels.layout import INT64_MAX

from .policies.registry import find_param, policy_params

if TYPE_CHECKING:
    from .autoscale.config import AutoscalerConfig
    from .codepolicy import CodePolicy


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

    ``kind`` is ``"blackbox"`` (alpha/beta regression), ``"roofline"`` or ``"trained-physics"``.
    For the first two, alpha is the queueing delay (alpha0 + alpha1*input_len) and the per-token
    post-processing (alpha2); in roofline mode it is whatever the CLI gave (zeros by default), as
    in the reference.  For trained-physics, alpha0 is the queueing delay, alpha1 a fixed overhead
    added once to the E2E of every request with output tokens, alpha2 the per-token overhead.
    ``roofline_params`` is the float vector of the step-time kernel: built by
    ``simulator.latency.roofline_params`` (roofline, ``RP_*`` layout) or
    ``simulator.latency.trained_physics_params`` (trained-physics, ``TPP_*`` layout).
    ``context_tokens`` > 0: the model's context length; a request with a longer prompt is an
    input error (0 = no limit).
    """

    kind: str = "blackbox"
    alpha: tuple[float, ...] = (0.0, 0.0, 0.0)
    beta: tuple[float, ...] = (0.0, 0.0, 0.0)
    tp: int = 1
    roofline_params: tuple[float, ...] = ()
    context_tokens: int = 0


@dataclass(frozen=True)
class PolicyConfig:
    """Control-plane policies (the part a search evolves).

    ``admission``/``routing``/``priority``/``scheduler`` name a declared policy of the family of
    that name (:mod:`simulator.policies.registry`).  ``routing``/``admission``/``priority`` =
    "code" take their rule from the matching ``*_code``
    :class:`~simulator.codepolicy.CodePolicy` (required then, ignored otherwise).

    ``params`` holds the value of every declared policy parameter (``Param``s of the
    kernel families, e.g. ``token_bucket_capacity``) as ``(name, value)`` pairs in declaration
    order: pass only the ones to set, the rest are filled with their declared defaults, so two
    configs that mean the same are equal.  Read one with :meth:`param`.
    """

    admission: str = "always-admit"
    routing: str = "round-robin"
    scorers: tuple[ScorerSpec, ...] = DEFAULT_SCORERS
    priority: str = "constant"
    scheduler: str = "fcfs"
    preemption: str = "fcfs"
    flow_control: str = "off"  # "gateway": a gateway queue (kernels/gateway.py)
    saturation_detector: str = "never"
    dispatch_order: str = "fifo"
    fairness: str = "global-strict"
    routing_code: CodePolicy | None = None
    admission_code: CodePolicy | None = None
    priority_code: CodePolicy | None = None
    autoscaler: "AutoscalerConfig | None" = None  # simulator.autoscale.config; None = fixed cluster
    params: tuple[tuple[str, float], ...] = ()
    # SLO-tier priority overrides ``((class, priority), ...)`` (simulator.slo; bundle
    # ``admission.slo_priorities``), sorted by class so equal overrides compare equal
    slo_priorities: tuple[tuple[str, int], ...] = ()
    # slo-deadline dispatch: µs each class may wait in the gateway ``((class, µs), ...)``
    slo_targets: tuple[tuple[str, int], ...] = ()
    # tenant budgets ``((tenant, share of capacity in [0, 1]), ...)``: a tenant at or above
    # its share of instances x max running requests has its sheddable requests rejected
    tenant_budgets: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        given = dict(self.params)
        declared = [p for _, _, p in policy_params()]
        unknown = sorted(set(given) - {p.name for p in declared})
        if unknown:
            raise ValueError(f"PolicyConfig.params: undeclared policy parameters {unknown}")
        object.__setattr__(self, "params", tuple(
            (p.name, float(given.get(p.name, p.default))) for p in declared))
        object.__setattr__(self, "slo_priorities", tuple(sorted(
            (str(k), int(v)) for k, v in dict(self.slo_priorities).items())))
        object.__setattr__(self, "slo_targets", tuple(sorted(
            (str(k), int(v)) for k, v in dict(self.slo_targets).items())))
        object.__setattr__(self, "tenant_budgets", tuple(sorted(
            (str(k), float(v)) for k, v in dict(self.tenant_budgets).items())))

    def param(self, name: str) -> float:
        """The value of declared policy parameter ``name``: the one set, else its declared
        default (also for a parameter registered after this config was made).  KeyError if
        no policy declares ``name``."""
        for key, value in self.params:
            if key == name:
                return value
        try:
            return float(find_param(name)[2].default)
        except KeyError:
            raise KeyError(f"no declared policy parameter {name!r}") from None

    def with_params(self, values: Mapping[str, float]) -> "PolicyConfig":
        """A copy with the parameters in ``values`` replaced (names must be declared)."""
        merged = dict(self.params)
        merged.update(values)
        return replace(self, params=tuple(merged.items()))


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
    disaggregation: "DisaggConfig | None" = None  # None: monolithic (every instance serves whole requests)


DEFAULT_KV_BYTES_PER_TOKEN = 131072.0
"""KV bytes per token when no model config is given: 2 (K,V) x 32 layers x 8 KV heads x 128 dims
x 2 bytes, i.e. Llama-3.1-8B in fp16."""


@dataclass(frozen=True)
class DisaggConfig:
    """A prefill/decode disaggregated deployment (kernels/disagg.py describes the flow).

    Instances ``0 .. prefill_replicas-1`` form the prefill pool, the next ``decode_replicas`` the
    decode pool; ``SimConfig.num_instances`` is their sum.  ``decider`` is a registry
    "pd-decider" name; ``prefix_threshold`` (tokens) is the prefix-threshold decider's bound on
    the uncached prompt.  Transfers: ``bandwidth_gbps`` GB/s on one shared FIFO link,
    ``base_latency_us`` per transfer unit, ``granularity`` "request" or "block", ``pipelining``
    (block granularity only) sends blocks as prefill chunks finish.  ``kv_bytes_per_token`` is
    derived from the model when a roofline model config is used, else this value.
    ``backpressure_threshold`` (0 = off) throttles prefill routing while that many requests wait
    for their decode instance; throttled requests retry every ``backpressure_retry_us``.
    ``decode_scorers`` is the weighted-routing profile of the decode pool (empty: the routing
    scorers).
    """

    prefill_replicas: int = 1
    decode_replicas: int = 1
    decider: str = "always"
    prefix_threshold: int = 256
    bandwidth_gbps: float = 25.0
    base_latency_us: int = 0
    granularity: str = "request"
    pipelining: bool = False
    kv_bytes_per_token: float = DEFAULT_KV_BYTES_PER_TOKEN
    backpressure_threshold: int = 0
    backpressure_retry_us: int = 1000
    decode_scorers: tuple[ScorerSpec, ...] = ()
