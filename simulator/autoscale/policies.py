"""Autoscale policies: one interface, a registry of templates.

A policy is a class whose ``evaluate(ctx: AutoscaleContext) -> ScaleDecision`` looks at the
cluster and says whether to scale and to which replica count.  ``PARAMS`` declares its tunable
parameters (:class:`simulator.policies.declare.Param`: default, bounds, unit, help), which the
bundle parser validates and the search evolves.  Adding a policy = one class + one entry in
:data:`POLICIES` (the autoscaler family of :mod:`simulator.policies.registry` reads it).  Policies may keep state between
evaluations (one instance per run); they must not read clocks or global randomness.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from simulator.policies.declare import FLOAT, Param


@dataclass(frozen=True)
class AutoscaleContext:
    """What a policy sees at an evaluation.

    ``replicas`` counts started instances (provisioning, loading, warming or ready; not draining
    or stopped), ``ready`` the routable ones.  ``load`` is queued + running + in-flight requests
    on routable instances plus requests waiting in the router; ``queue_depth`` only the waiting
    part (wait queues + router wait list).  ``kv_utilization`` is the mean KV-block utilisation
    of routable instances (0 when none).  ``request_rate`` is arrivals per second over the last
    ``window_s``; ``slo_attainment`` the fraction of first tokens in that window within the TTFT
    target (1 when none); ``window_slo_attainment`` the same over the SLO trigger's window (the
    last ``trigger_slo_window`` first tokens; 1 when that trigger is off or none was seen).
    ``since_last_action_s`` is ``inf`` before the first scale action.  ``trigger`` says why the
    policy is called: ``interval`` (periodic), ``load`` (queue trigger) or ``slo`` (SLO trigger);
    ``triggered`` is True for the two event triggers.
    """

    now_s: float
    replicas: int
    ready: int
    min_replicas: int
    max_replicas: int
    request_rate: float
    load: int
    queue_depth: int
    kv_utilization: float
    slo_attainment: float
    since_last_action_s: float
    window_s: float
    triggered: bool = False
    trigger: str = "interval"
    window_slo_attainment: float = 1.0


@dataclass(frozen=True)
class ScaleDecision:
    """``action`` is ``"none"``, ``"up"`` or ``"down"``; ``target`` the wanted replica count (the
    controller clips it into [min, max]); ``reason`` a short text for the decision trace."""

    action: str
    target: int
    reason: str = ""


def _hold(ctx: AutoscaleContext, reason: str = "") -> ScaleDecision:
    return ScaleDecision("none", ctx.replicas, reason)


def _towards(ctx: AutoscaleContext, desired: int, reason: str) -> ScaleDecision:
    desired = min(max(desired, ctx.min_replicas), ctx.max_replicas)
    if desired > ctx.replicas:
        return ScaleDecision("up", desired, reason)
    if desired < ctx.replicas:
        return ScaleDecision("down", desired, reason)
    return _hold(ctx, reason)


class Policy:
    """Base: ``self.p`` holds every declared parameter (defaults filled in)."""

    PARAMS: tuple[Param, ...] = ()
    HELP = ""   # one line for the docs' policy table

    def __init__(self, params: Mapping[str, float] | None = None):
        self.p = {p.name: float(p.default) for p in self.PARAMS}
        self.p.update({k: float(v) for k, v in (params or {}).items()})

    def cooling(self, ctx: AutoscaleContext) -> bool:
        """True while the last action is more recent than the ``cooldown_s`` parameter."""
        return ctx.since_last_action_s < self.p.get("cooldown_s", 0.0)

    def evaluate(self, ctx: AutoscaleContext) -> ScaleDecision:  # pragma: no cover - interface
        """Decide; see the module docstring."""
        raise NotImplementedError


_COOLDOWN = Param("cooldown_s", FLOAT, 30.0, 0.0, 3600.0, "s", "no action this long after the last one")


class Threshold(Policy):
    """Bands with hysteresis: add ``step`` replicas when load per replica exceeds ``up_load`` or
    KV utilisation exceeds ``up_kv`` or SLO attainment (the lower of the interval's and the SLO
    trigger window's) falls below ``slo_target``; remove ``step`` when load per replica is
    below ``down_load`` and KV utilisation below ``down_kv``
    (the gap between the bands is the hysteresis); nothing during ``cooldown_s``."""

    HELP = "load / KV / SLO bands with hysteresis and a cooldown"

    PARAMS = (
        Param("up_load", FLOAT, 16.0, 0.5, 512.0, "requests/replica", "scale up above this load"),
        Param("down_load", FLOAT, 4.0, 0.0, 512.0, "requests/replica", "scale down below this load"),
        Param("up_kv", FLOAT, 0.8, 0.0, 1.0, "fraction", "scale up above this KV utilisation"),
        Param("down_kv", FLOAT, 0.3, 0.0, 1.0, "fraction", "scale down only below this KV utilisation"),
        Param("slo_target", FLOAT, 0.0, 0.0, 1.0, "fraction", "scale up below this SLO attainment"),
        Param("step", FLOAT, 1.0, 1.0, 64.0, "replicas", "replicas added or removed per action"),
        _COOLDOWN)

    def evaluate(self, ctx):
        if self.cooling(ctx):
            return _hold(ctx, "cooldown")
        per = ctx.load / max(ctx.replicas, 1)
        step = int(self.p["step"])
        if per > self.p["up_load"]:
            return _towards(ctx, ctx.replicas + step, f"load/replica {per:.1f} > {self.p['up_load']:g}")
        if ctx.kv_utilization > self.p["up_kv"]:
            return _towards(ctx, ctx.replicas + step, f"kv {ctx.kv_utilization:.2f} > {self.p['up_kv']:g}")
        slo = min(ctx.slo_attainment, ctx.window_slo_attainment)
        if slo < self.p["slo_target"]:
            return _towards(ctx, ctx.replicas + step, f"slo {slo:.2f} < {self.p['slo_target']:g}")
        if per < self.p["down_load"] and ctx.kv_utilization < self.p["down_kv"]:
            return _towards(ctx, ctx.replicas - step, f"load/replica {per:.1f} < {self.p['down_load']:g}")
        return _hold(ctx)


class TargetUtilization(Policy):
    """Keep KV utilisation near ``target``: desired = ceil(replicas * utilisation / target),
    acted on only when utilisation / target is off by more than ``tolerance``."""

    HELP = "hold KV utilisation near a target"

    PARAMS = (
        Param("target", FLOAT, 0.6, 0.05, 1.0, "fraction", "KV utilisation to hold"),
        Param("tolerance", FLOAT, 0.1, 0.0, 1.0, "fraction", "relative deviation left alone"),
        _COOLDOWN)

    def evaluate(self, ctx):
        if self.cooling(ctx):
            return _hold(ctx, "cooldown")
        ratio = ctx.kv_utilization / self.p["target"]
        if abs(ratio - 1.0) <= self.p["tolerance"]:
            return _hold(ctx, "within tolerance")
        return _towards(ctx, math.ceil(ctx.replicas * ratio),
                        f"kv {ctx.kv_utilization:.2f} vs target {self.p['target']:g}")


class QueueDepthPerReplica(Policy):
    """Size the pool so each replica holds about ``target`` requests:
    desired = ceil(load / target)."""

    HELP = "size the pool to a target load per replica"

    PARAMS = (
        Param("target", FLOAT, 8.0, 0.5, 512.0, "requests/replica", "load per replica to hold"),
        _COOLDOWN)

    def evaluate(self, ctx):
        if self.cooling(ctx):
            return _hold(ctx, "cooldown")
        return _towards(ctx, math.ceil(ctx.load / self.p["target"]),
                        f"load {ctx.load} / target {self.p['target']:g}")


class Oscillator(Policy):
    """Pathological (for tests): alternately scales up and down by ``step`` every ``period``
    evaluations, whatever the load."""

    HELP = "scale up and down in turn (pathological)"

    PARAMS = (
        Param("period", FLOAT, 1.0, 1.0, 100.0, "evaluations", "evaluations between actions"),
        Param("step", FLOAT, 1.0, 1.0, 64.0, "replicas", "replicas added or removed per action"))

    def __init__(self, params=None):
        super().__init__(params)
        self.calls = 0

    def evaluate(self, ctx):
        self.calls += 1
        period = int(self.p["period"])
        if self.calls % period:
            return _hold(ctx)
        up = (self.calls // period) % 2 == 1
        step = int(self.p["step"])
        return _towards(ctx, ctx.replicas + (step if up else -step), "oscillate")


POLICIES: dict[str, type[Policy]] = {
    "threshold": Threshold,
    "target-utilization": TargetUtilization,
    "queue-depth-per-replica": QueueDepthPerReplica,
    "oscillator": Oscillator,
}
"""Registry: autoscaler policy name -> class."""


def make_policy(name: str, params: Mapping[str, float] | None = None) -> Policy:
    """A fresh policy instance (names and params are validated by :mod:`.config`)."""
    return POLICIES[name](params)
