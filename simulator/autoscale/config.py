"""Autoscaler configuration: frozen dataclasses and the one strict parser of the ``autoscaler``
mapping (policy bundle YAML, experiment YAML; the CLI builds the same mapping from flags).

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

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.errors import InputError
from simulator.kernels.autoscale import DRAIN_IMMEDIATE, DRAIN_REDIRECT, DRAIN_WAIT
from simulator.kernels.warmup import WARM_EXPONENTIAL, WARM_LINEAR, WARM_STEP

from .policies import POLICIES

DRAIN_POLICIES = {"wait": DRAIN_WAIT, "immediate": DRAIN_IMMEDIATE, "redirect": DRAIN_REDIRECT}
WARMUP_PROFILES = {"linear": WARM_LINEAR, "exponential": WARM_EXPONENTIAL, "step": WARM_STEP}
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


KEYS = ("policy", "params", "min_replicas", "max_replicas", "initial_replicas", "interval_s",
        "trigger_load_per_replica", "trigger_slo_attainment", "trigger_slo_window",
        "provisioning_delay_s", "model_load_time_s",
        "warmup_duration_s", "warmup_profile", "warmup_penalty", "drain_policy", "slo_ttft_ms",
        "oscillation_window_s")


def _fail(path: str, msg: str):
    raise InputError(f"{path}: {msg}")


def _num(v: Any, path: str, lo: float = 0.0, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail(path, f"expected a number, got {v!r}")
    if not lo <= v <= hi:
        _fail(path, f"must be in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def _int(v: Any, path: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        _fail(path, f"expected an integer, got {v!r}")
    if v < lo:
        _fail(path, f"must be >= {lo}, got {v}")
    return int(v)


def _choice(v: Any, path: str, valid) -> str:
    if not isinstance(v, str) or v not in valid:
        _fail(path, f"unknown value {v!r}; valid: {', '.join(valid)}")
    return v


def parse_delay(v: Any, path: str) -> DelaySpec:
    """A number, ``{uniform: [lo, hi]}`` or ``{exponential: mean}`` (seconds, >= 0)."""
    if not isinstance(v, dict):
        return DelaySpec("fixed", _num(v, path))
    if len(v) != 1 or next(iter(v)) not in DELAY_KINDS:
        _fail(path, f"expected a number or one of {{{', '.join(DELAY_KINDS)}: ...}}, got {v!r}")
    kind, arg = next(iter(v.items()))
    if kind == "uniform":
        if not isinstance(arg, list) or len(arg) != 2:
            _fail(f"{path}.uniform", f"expected [low, high], got {arg!r}")
        lo, hi = _num(arg[0], f"{path}.uniform"), _num(arg[1], f"{path}.uniform")
        if lo > hi:
            _fail(f"{path}.uniform", f"low {lo:g} is greater than high {hi:g}")
        return DelaySpec("uniform", lo, hi)
    return DelaySpec(kind, _num(arg, f"{path}.{kind}"))


def parse_params(policy: str, v: Any, path: str) -> tuple[tuple[str, float], ...]:
    """A policy's parameters, each within its declared [low, high], in declaration order."""
    if v is None:
        return ()
    if not isinstance(v, dict):
        _fail(path, f"expected a mapping, got {v!r}")
    declared = POLICIES[policy].PARAMS
    for k in v:
        if k not in declared:
            _fail(f"{path}.{k}", f"unknown parameter of {policy} (allowed: {', '.join(declared) or 'none'})")
    return tuple((k, _num(v[k], f"{path}.{k}", declared[k][1], declared[k][2]))
                 for k in declared if k in v)


def parse_autoscaler(doc: Any, path: str = "autoscaler") -> AutoscalerConfig:
    """Validate an ``autoscaler`` mapping; one-line :class:`InputError` naming the key."""
    if not isinstance(doc, dict):
        _fail(path, f"expected a mapping, got {doc!r}")
    for k in doc:
        if k not in KEYS:
            _fail(f"{path}.{k}", f"unknown key (allowed: {', '.join(KEYS)})")
    if "policy" not in doc:
        _fail(f"{path}.policy", f"missing; valid: {', '.join(POLICIES)}")
    policy = _choice(doc["policy"], f"{path}.policy", tuple(POLICIES))
    out: dict[str, Any] = {"policy": policy,
                           "params": parse_params(policy, doc.get("params"), f"{path}.params")}
    for k in ("min_replicas", "max_replicas"):
        if k in doc:
            out[k] = _int(doc[k], f"{path}.{k}", 1)
    if "initial_replicas" in doc and doc["initial_replicas"] is not None:
        out["initial_replicas"] = _int(doc["initial_replicas"], f"{path}.initial_replicas", 1)
    if "trigger_load_per_replica" in doc:
        out["trigger_load_per_replica"] = _int(doc["trigger_load_per_replica"],
                                               f"{path}.trigger_load_per_replica")
    if "trigger_slo_attainment" in doc:
        out["trigger_slo_attainment"] = _num(doc["trigger_slo_attainment"],
                                             f"{path}.trigger_slo_attainment", 0.0, 1.0)
    if "trigger_slo_window" in doc:
        out["trigger_slo_window"] = _int(doc["trigger_slo_window"], f"{path}.trigger_slo_window", 1)
        if out["trigger_slo_window"] > MAX_SLO_WINDOW:
            _fail(f"{path}.trigger_slo_window",
                  f"must be <= {MAX_SLO_WINDOW}, got {out['trigger_slo_window']}")
    if "interval_s" in doc:
        out["interval_s"] = _num(doc["interval_s"], f"{path}.interval_s", 1e-3)
    for k in ("warmup_duration_s", "slo_ttft_ms", "oscillation_window_s"):
        if k in doc:
            out[k] = _num(doc[k], f"{path}.{k}")
    if "warmup_penalty" in doc:
        out["warmup_penalty"] = _num(doc["warmup_penalty"], f"{path}.warmup_penalty", 1.0, 100.0)
    for k in ("provisioning_delay_s", "model_load_time_s"):
        if k in doc:
            out[k] = parse_delay(doc[k], f"{path}.{k}")
    if "warmup_profile" in doc:
        out["warmup_profile"] = _choice(doc["warmup_profile"], f"{path}.warmup_profile",
                                        tuple(WARMUP_PROFILES))
    if "drain_policy" in doc:
        out["drain_policy"] = _choice(doc["drain_policy"], f"{path}.drain_policy",
                                      tuple(DRAIN_POLICIES))
    cfg = AutoscalerConfig(**out)
    check_bounds(cfg, path)
    return cfg


def check_bounds(cfg: AutoscalerConfig, path: str = "autoscaler") -> None:
    """min_replicas <= max_replicas (and initial_replicas within them when given)."""
    if cfg.min_replicas > cfg.max_replicas:
        _fail(f"{path}.min_replicas", f"{cfg.min_replicas} is greater than max_replicas {cfg.max_replicas}")
    if cfg.initial_replicas is not None and not cfg.min_replicas <= cfg.initial_replicas <= cfg.max_replicas:
        _fail(f"{path}.initial_replicas",
              f"must be in [{cfg.min_replicas}, {cfg.max_replicas}], got {cfg.initial_replicas}")


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
