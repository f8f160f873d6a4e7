"""Autoscaler configuration: frozen dataclasses and the schema (:data:`AUTOSCALER`, declared with
:mod:`simulator.schema`) of the ``autoscaler`` mapping (policy bundle YAML, experiment YAML;
the CLI builds the same mapping from flags).  A policy's ``params`` are checked against the
parameters the policy declares (:func:`params_schema`).

Schema (every key optional except ``policy``; times in seconds)::

    autoscaler:
      policy: threshold            # threshold | target-utilization | queue-depth-per-replica | oscillator
      params: {up_load: 16, ...}   # the policy's PARAMS (simulator/autoscale/policies.py)
      min_replicas: 1
      max_replicas: 8
      initial_replicas: 2          # default: the cluster's num_instances clipped into [min, max]
      interval_s: 10               # periodic evaluation
      trigger_load_per_replica: 0  # > 0: also evaluate when load per routable instance reaches it
      trigger_slo_attainment: 0    # > 0: also evaluate when the fraction of the last
                                   # trigger_slo_window first tokens with TTFT <= slo_ttft_ms
                                   # falls below it (in (0, 1]; 0 = off)
      trigger_slo_window: 50       # first tokens in that window (1 .. 100000)
      provisioning_delay_s: 30     # a number, {uniform: [lo, hi]} or {exponential: mean}
      model_load_time_s: 20        # same forms
      warmup_duration_s: 10
      warmup_profile: linear       # linear | exponential | step
      warmup_penalty: 2.0          # step-time multiplier when warmup starts (>= 1)
      drain_policy: wait           # wait | immediate | redirect
      slo_ttft_ms: 1000            # TTFT target of the context's slo_attainment and the metrics
      oscillation_window_s: 60     # two opposite scale actions closer than this = one oscillation
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.policies.lifecycle import DRAIN, WARMUP
from simulator.schema import At, Choice, Either, Int, ListOf, Mapping, Number, Switch, from_param

from .policies import POLICIES

DELAY_KINDS = ("fixed", "uniform", "exponential")
MAX_SLO_WINDOW = 100_000   # the SLO trigger's ring lives in the kernel's cluster scalars


@dataclass(frozen=True)
class DelaySpec:
    """A duration in seconds: ``fixed`` a, ``uniform`` in [a, b], ``exponential`` with mean a."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    def draw(self, rng: np.random.Generator) -> float:
        """One duration (seconds); fixed delays consume no randomness."""
        if self.kind == "uniform":
            return float(rng.uniform(self.a, self.b))
        if self.kind == "exponential":
            return float(rng.exponential(self.a))
        return self.a


@dataclass(frozen=True)
class AutoscalerConfig:
    """A validated autoscaler (see the module docstring for the meaning of each field)."""

    policy: str = "threshold"
    params: tuple[tuple[str, float], ...] = ()
    min_replicas: int = 1
    max_replicas: int = 4
    initial_replicas: int | None = None
    interval_s: float = 10.0
    trigger_load_per_replica: int = 0
    trigger_slo_attainment: float = 0.0
    trigger_slo_window: int = 50
    provisioning_delay_s: DelaySpec = field(default_factory=DelaySpec)
    model_load_time_s: DelaySpec = field(default_factory=DelaySpec)
    warmup_duration_s: float = 0.0
    warmup_profile: str = "linear"
    warmup_penalty: float = 2.0
    drain_policy: str = "wait"
    slo_ttft_ms: float = 1000.0
    oscillation_window_s: float = 60.0

    def initial(self, num_instances: int) -> int:
        """Replicas started (READY) at time 0."""
        n = num_instances if self.initial_replicas is None else self.initial_replicas
        return min(max(n, self.min_replicas), self.max_replicas)

    @property
    def slo_trigger_window(self) -> int:
        """First tokens in the SLO trigger's window; 0 when the trigger is off."""
        return self.trigger_slo_window if self.trigger_slo_attainment > 0 else 0

    def slo_trigger_max_misses(self) -> int:
        """Most misses a full SLO-trigger window may hold while its attainment
        ``(window - misses) / window`` still meets ``trigger_slo_attainment``."""
        k = self.trigger_slo_window
        return max(m for m in range(k + 1) if (k - m) / k >= self.trigger_slo_attainment)


def _delay(v, at) -> DelaySpec:
    if isinstance(v, float):
        return DelaySpec("fixed", v)
    kind, arg = next(iter(v.items()))
    if kind == "uniform":
        lo, hi = arg
        if lo > hi:
            (at / "uniform").fail(f"low {lo:g} is greater than high {hi:g}")
        return DelaySpec("uniform", lo, hi)
    return DelaySpec(kind, arg)


def delay_field(**kw) -> Either:
    """A duration in seconds (>= 0): a number, ``{uniform: [lo, hi]}``, ``{exponential: mean}``
    or ``{fixed: value}``; parsed to a :class:`DelaySpec`."""
    return Either(
        Number(ge=0),
        Mapping({"fixed": Number(ge=0), "uniform": ListOf(Number(ge=0), min_items=2, max_items=2),
                 "exponential": Number(ge=0, help="mean")}, exactly_one=DELAY_KINDS),
        then=_delay, unit="s", **kw)


def declared_params(policy: str) -> tuple:
    """The declared parameters (:class:`simulator.policies.declare.Param`) of autoscaler
    ``policy``, in declaration order."""
    return tuple(POLICIES[policy].PARAMS)


def params_schema(policy: str) -> Mapping:
    """The ``params`` mapping of ``policy``: its declared parameters, each within its bounds;
    parsed to ``((name, value), ...)`` in declaration order, holding only the given ones."""
    return Mapping({p.name: from_param(p) for p in declared_params(policy)},
                   fill_defaults=False, key_what=f"parameter of {policy}",
                   then=lambda v, at: tuple((k, float(x)) for k, x in v.items()),
                   help=f"parameters of the {policy} policy")


def _config(v, at) -> AutoscalerConfig:
    cfg = AutoscalerConfig(**v)
    check_bounds(cfg, at)
    return cfg


_D = AutoscalerConfig()
AUTOSCALER = Mapping({
    "policy": Choice(lambda: tuple(POLICIES), label="autoscaler policy", required=True,
                     help="autoscaling policy"),
    "params": Switch("policy", lambda: {name: params_schema(name) for name in POLICIES},
                     default=(), help="the policy's parameters (default: their declared defaults)"),
    "min_replicas": Int(ge=1, default=_D.min_replicas, unit="replicas", help="fewest replicas"),
    "max_replicas": Int(ge=1, default=_D.max_replicas, unit="replicas", help="most replicas"),
    "initial_replicas": Int(ge=1, unit="replicas",
                            help="replicas at time 0 (default: the cluster's num_instances "
                                 "clipped into [min_replicas, max_replicas])"),
    "interval_s": Number(ge=1e-3, default=_D.interval_s, unit="s", help="evaluation period"),
    "trigger_load_per_replica": Int(ge=0, default=_D.trigger_load_per_replica,
                                    unit="requests/replica",
                                    help="> 0: also evaluate when the load per routable "
                                         "instance reaches it"),
    "trigger_slo_attainment": Number(ge=0, le=1, default=_D.trigger_slo_attainment,
                                     help="> 0: also evaluate when the SLO attainment of the last "
                                          "trigger_slo_window first tokens falls below it"),
    "trigger_slo_window": Int(ge=1, le=MAX_SLO_WINDOW, default=_D.trigger_slo_window,
                              unit="first tokens", help="window of the SLO trigger"),
    "provisioning_delay_s": delay_field(default=_D.provisioning_delay_s,
                                        help="from the scale-up decision to the replica existing"),
    "model_load_time_s": delay_field(default=_D.model_load_time_s,
                                     help="from the replica existing to it serving"),
    "warmup_duration_s": Number(ge=0, default=_D.warmup_duration_s, unit="s",
                                help="a new replica's warmup"),
    "warmup_profile": Choice(WARMUP.names, label="warmup profile", default=_D.warmup_profile,
                             help="how the warmup penalty decays"),
    "warmup_penalty": Number(ge=1, le=100, default=_D.warmup_penalty,
                             help="step-time multiplier when warmup starts"),
    "drain_policy": Choice(DRAIN.names, label="drain policy", default=_D.drain_policy,
                           help="what a replica being removed does with its requests"),
    "slo_ttft_ms": Number(ge=0, default=_D.slo_ttft_ms, unit="ms",
                          help="TTFT target of the SLO attainment (policy context and metrics)"),
    "oscillation_window_s": Number(ge=0, default=_D.oscillation_window_s, unit="s",
                                   help="two opposite actions closer than this count as one "
                                        "oscillation"),
}, then=_config, help="autoscaling of a monolithic cluster (blis-evo extension)")
"""The ``autoscaler`` mapping (:mod:`simulator.schema` declaration)."""
KEYS = tuple(AUTOSCALER.fields)


def parse_autoscaler(doc: Any, path: str = "autoscaler") -> AutoscalerConfig:
    """Validate an ``autoscaler`` mapping; one-line :class:`InputError` naming the key path
    (``path`` prefixes it, e.g. ``exp.yaml: autoscaler``)."""
    return AUTOSCALER.parse(doc, At("", path))


def check_bounds(cfg: AutoscalerConfig, path: "str | At" = "autoscaler") -> None:
    """min_replicas <= max_replicas (and initial_replicas within them when given)."""
    at = path if isinstance(path, At) else At("", path)
    if cfg.min_replicas > cfg.max_replicas:
        (at / "min_replicas").fail(f"must be <= max_replicas ({cfg.max_replicas}), got "
                                   f"{cfg.min_replicas}")
    if cfg.initial_replicas is not None and not cfg.min_replicas <= cfg.initial_replicas <= cfg.max_replicas:
        (at / "initial_replicas").fail(f"must be in [min_replicas, max_replicas] = "
                                       f"[{cfg.min_replicas}, {cfg.max_replicas}], got "
                                       f"{cfg.initial_replicas}")


def to_mapping(cfg: AutoscalerConfig) -> dict:
    """The config as an ``autoscaler`` mapping that :func:`parse_autoscaler` reads back equal."""
    def delay(d: DelaySpec):
        if d.kind == "uniform":
            return {"uniform": [d.a, d.b]}
        return d.a if d.kind == "fixed" else {d.kind: d.a}
    out: dict[str, Any] = {"policy": cfg.policy}
    if cfg.params:
        out["params"] = {k: v for k, v in cfg.params}
    out.update(min_replicas=cfg.min_replicas, max_replicas=cfg.max_replicas)
    if cfg.initial_replicas is not None:
        out["initial_replicas"] = cfg.initial_replicas
    out.update(interval_s=cfg.interval_s, trigger_load_per_replica=cfg.trigger_load_per_replica,
               trigger_slo_attainment=cfg.trigger_slo_attainment,
               trigger_slo_window=cfg.trigger_slo_window,
               provisioning_delay_s=delay(cfg.provisioning_delay_s),
               model_load_time_s=delay(cfg.model_load_time_s),
               warmup_duration_s=cfg.warmup_duration_s, warmup_profile=cfg.warmup_profile,
               warmup_penalty=cfg.warmup_penalty, drain_policy=cfg.drain_policy,
               slo_ttft_ms=cfg.slo_ttft_ms, oscillation_window_s=cfg.oscillation_window_s)
    return out
