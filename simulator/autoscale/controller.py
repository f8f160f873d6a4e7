"""Runs a simulation under an autoscaler: the event loop pauses at every evaluation tick (and
when the queue or SLO trigger fires), the policy decides, the decision is actuated, the loop
resumes.  Each evaluation has a trigger: ``interval`` (a periodic tick), ``load`` (the queue
trigger) or ``slo`` (the SLO-attainment trigger); it is in the policy's context and in the
scale action's record.

Actuation of a scale-up on a stopped slot draws the provisioning delay and model-load time from
a Generator derived from the run seed (``[seed, RNG_TAG]``, one draw each per start, in decision
order), so runs are deterministic.  Scale-ups first take back draining instances (no delay),
then start stopped slots in index order.  Scale-downs first cancel starts that are not routable
yet (most recent first), then drain WARMING instances, then READY ones, least loaded first (ties:
highest index).

Cost: an instance counts from the start of its provisioning until it is STOPPED (or the end of
the run): ``replica_seconds`` is the sum of those spans, ``avg_replicas`` divides it by the run
span [0, end], where ``end`` is the time of the last event (capped at the horizon).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.kernels import cluster as kc
from simulator.kernels import layout as L
from simulator.kernels.autoscale import (CE_LIFECYCLE, LC_DRAINING, LC_LOADING, LC_PROVISIONING,
                                         LC_READY, LC_STOPPED, LC_WARMING, RUN_DONE, RUN_PAUSED,
                                         RUN_SLO, start_instance, stop_instance)

from .config import AutoscalerConfig
from .policies import AutoscaleContext, ScaleDecision, make_policy

RNG_TAG = 0xA5CA1E   # the autoscaler's RNG stream: default_rng([seed, RNG_TAG])
_STARTED = (LC_PROVISIONING, LC_LOADING, LC_WARMING, LC_READY)


@dataclass(frozen=True)
class ScaleRecord:
    """One scale action: time (s), ``up``/``down``, replicas before and after, the reason, the
    instance slots acted on, for a scale-up when each becomes routable (s), and what triggered
    the evaluation (``interval``, ``load`` or ``slo``)."""

    time_s: float
    action: str
    from_replicas: int
    to_replicas: int
    reason: str
    instances: tuple[int, ...]
    routable_at_s: tuple[float, ...] = ()
    trigger: str = "interval"


@dataclass(frozen=True)
class AutoscaleOutcome:
    """What the autoscaler did in a run (see the module docstring for the cost definitions).

    ``spans`` (k, 3) int64: instance, provisioning start µs, stop µs (end of run if still up);
    ``replica_timeline`` (m, 2) int64: time µs, started replicas right after each decision (the
    first row is time 0); ``oscillations`` counts consecutive scale actions in opposite
    directions less than ``oscillation_window_s`` apart; ``rerouted`` requests sent back to the
    router by drains, ``parked`` requests that waited for a routable instance, ``bad_routes``
    routings to a non-routable instance (always 0; checked by the kernel)."""

    events: tuple[ScaleRecord, ...]
    spans: np.ndarray
    replica_timeline: np.ndarray
    end_us: int
    replica_seconds: float
    avg_replicas: float
    oscillations: int
    rerouted: int
    parked: int
    bad_routes: int
    slo_ttft_ms: float
    min_replicas: int
    max_replicas: int


class _Run:
    """Mutable bookkeeping of one autoscaled run."""

    def __init__(self, st, kst, cfg, asc: AutoscalerConfig):
        self.st, self.kst, self.asc = st, kst, asc
        self.policy = make_policy(asc.policy, dict(asc.params))
        self.rng = np.random.default_rng([int(cfg.seed), RNG_TAG])
        self.n = int(st.P[L.P_N_INST])
        self.open = {i: 0 for i in range(self.n) if st.I[L.I_LC, i] != LC_STOPPED}
        self.start_t = dict(self.open)
        self.spans: list[tuple[int, int, int]] = []
        self.events: list[ScaleRecord] = []
        self.timeline = [(0, len(self.open))]
        self.last_action_us: int | None = None
        self.arrivals = np.sort(st.R[L.R_ARRIVAL])
        self.window_us = int(round(asc.interval_s * 1e6))

    # ---------------------------------------------------------------- observation
    def close_stopped(self) -> None:
        """Close the cost span of every slot the kernel has stopped since the last look."""
        I = self.st.I
        for i in sorted(self.open):
            if I[L.I_LC, i] == LC_STOPPED:
                self.spans.append((i, self.open.pop(i), int(I[L.I_LC_STOP_T, i])))

    def replicas(self) -> int:
        """Started replicas now (provisioning through ready), the count min/max bound."""
        lc = self.st.I[L.I_LC]
        return int(np.isin(lc, _STARTED).sum())

    def window_attainment(self) -> float:
        """Attainment over the SLO trigger's window (its last ``trigger_slo_window`` first
        tokens, fewer until that many were seen); 1 when the trigger is off or none was seen."""
        k = int(self.st.P[L.P_AS_SLO_WIN])
        seen = min(int(self.st.CL[L.CL_SLO_SEEN]), k)
        if seen == 0:
            return 1.0
        return (seen - int(self.st.CL[L.CL_SLO_MISS])) / seen

    def context(self, now: int, trigger: str) -> AutoscaleContext:
        """What the policy sees at time ``now`` (µs), evaluated because of ``trigger``."""
        st, asc = self.st, self.asc
        I, R = st.I, st.R
        routable = I[L.I_ROUTABLE] != 0
        waiting = int(st.CL[L.CL_WAIT_LEN])
        queued = int(I[L.I_WQ_LEN][routable].sum())
        load = queued + int((I[L.I_BATCH_LEN] + I[L.I_PENDING])[routable].sum()) + waiting
        kv = float((I[L.I_USED][routable] / st.P[L.P_TOTAL_BLOCKS]).mean()) if routable.any() else 0.0
        lo = now - self.window_us
        n_arr = int(np.searchsorted(self.arrivals, now, "right") - np.searchsorted(self.arrivals, lo, "right"))
        first = R[L.R_FIRST]
        recent = (first > lo) & (first <= now)
        n_first = int(recent.sum())
        slo = 1.0
        if n_first:
            slo = float((R[L.R_TTFT][recent] <= asc.slo_ttft_ms * 1e3).sum()) / n_first
        since = np.inf if self.last_action_us is None else (now - self.last_action_us) / 1e6
        return AutoscaleContext(
            now_s=now / 1e6, replicas=self.replicas(), ready=int(routable.sum()),
            min_replicas=asc.min_replicas, max_replicas=asc.max_replicas,
            request_rate=n_arr / (self.window_us / 1e6), load=load, queue_depth=queued + waiting,
            kv_utilization=kv, slo_attainment=slo, since_last_action_s=since,
            window_s=self.window_us / 1e6, triggered=trigger != "interval", trigger=trigger,
            window_slo_attainment=self.window_attainment())

    # ---------------------------------------------------------------- actuation
    def _scale_up(self, now: int, k: int) -> list[int]:
        I = self.st.I
        lc = I[L.I_LC]
        slots = [i for i in range(self.n) if lc[i] == LC_DRAINING]
        slots += [i for i in range(self.n) if lc[i] == LC_STOPPED]
        done, ready_at = [], []
        for i in slots[:k]:
            if lc[i] == LC_STOPPED:
                t_load = now + int(round(self.asc.provisioning_delay_s.draw(self.rng) * 1e6))
                t_warm = t_load + int(round(self.asc.model_load_time_s.draw(self.rng) * 1e6))
                t_ready = t_warm + int(round(self.asc.warmup_duration_s * 1e6))
                start_instance(self.kst, np.int64(i), np.int64(now), np.int64(t_load),
                               np.int64(t_warm), np.int64(t_ready))
                self.open[i] = now
                self.start_t[i] = now
                ready_at.append(t_warm / 1e6)
            else:
                start_instance(self.kst, np.int64(i), np.int64(now), np.int64(now),
                               np.int64(now), np.int64(now))
                ready_at.append(now / 1e6)
            done.append(i)
        return done, tuple(ready_at)

    def _victims(self) -> list[int]:
        I = self.st.I
        lc = I[L.I_LC]
        load = I[L.I_WQ_LEN] + I[L.I_BATCH_LEN] + I[L.I_PENDING]
        pending = [i for i in range(self.n) if lc[i] in (LC_PROVISIONING, LC_LOADING)]
        pending.sort(key=lambda i: (-self.start_t[i], -i))
        warming = sorted((i for i in range(self.n) if lc[i] == LC_WARMING),
                         key=lambda i: (int(load[i]), -i))
        ready = sorted((i for i in range(self.n) if lc[i] == LC_READY),
                       key=lambda i: (int(load[i]), -i))
        return pending + warming + ready

    def _scale_down(self, now: int, k: int) -> list[int]:
        done = self._victims()[:k]
        for i in done:
            stop_instance(self.kst, np.int64(i), np.int64(now))
        self.close_stopped()
        return done, ()

    def apply(self, now: int, d: ScaleDecision, trigger: str = "interval") -> None:
        """Actuate a decision (target clipped into [min, max]) and record it if it acts."""
        if d.action not in ("up", "down"):
            return
        before = self.replicas()
        target = min(max(int(d.target), self.asc.min_replicas), self.asc.max_replicas)
        if d.action == "up" and target > before:
            slots, ready_at = self._scale_up(now, target - before)
        elif d.action == "down" and target < before:
            slots, ready_at = self._scale_down(now, before - target)
        else:
            return
        after = self.replicas()
        self.events.append(ScaleRecord(now / 1e6, d.action, before, after, d.reason, tuple(slots),
                                       ready_at, trigger))
        self.timeline.append((now, after))
        self.last_action_us = now

    def work_left(self) -> bool:
        """True while a request may still change state: an instance event, a non-lifecycle
        cluster event or a parked request is pending (lifecycle events alone do not keep the run
        going, or a policy that keeps starting instances would never let it end)."""
        st = self.st
        if (st.I[L.I_NEXT_T] != L.INT64_MAX).any() or st.CL[L.CL_WAIT_LEN] > 0:
            return True
        return bool((st.CE[L.CE_PRIO, :st.CL[L.CL_CSIZE]] != CE_LIFECYCLE).any())

    # ---------------------------------------------------------------- result
    def outcome(self) -> AutoscaleOutcome:
        """The run's scale events, replica spans and cost figures (module docstring)."""
        st, asc = self.st, self.asc
        end = int(min(max(int(st.CL[L.CL_LAST_T]), self.timeline[-1][0]), st.P[L.P_HORIZON]))
        self.close_stopped()
        spans = self.spans + [(i, t, end) for i, t in sorted(self.open.items())]
        spans_arr = np.array(sorted(spans, key=lambda s: (s[1], s[0])), dtype=np.int64).reshape(-1, 3)
        rs = float(np.clip(spans_arr[:, 2] - spans_arr[:, 1], 0, None).sum()) / 1e6
        osc = 0
        for a, b in zip(self.events, self.events[1:]):
            if a.action != b.action and b.time_s - a.time_s < asc.oscillation_window_s:
                osc += 1
        return AutoscaleOutcome(
            events=tuple(self.events), spans=spans_arr,
            replica_timeline=np.array(self.timeline, dtype=np.int64).reshape(-1, 2), end_us=end,
            replica_seconds=rs, avg_replicas=rs / (end / 1e6) if end > 0 else float(len(self.open)),
            oscillations=osc, rerouted=int(st.CL[L.CL_REROUTED]), parked=int(st.CL[L.CL_PARKED]),
            bad_routes=int(st.CL[L.CL_BAD_ROUTE]), slo_ttft_ms=asc.slo_ttft_ms,
            min_replicas=asc.min_replicas, max_replicas=asc.max_replicas)


def run_autoscaled(st, kst, cfg, asc: AutoscalerConfig) -> AutoscaleOutcome:
    """Run the event loop to the end under ``asc``; ``st`` holds the arrays ``kst`` wraps."""
    run = _Run(st, kst, cfg, asc)
    horizon = int(st.P[L.P_HORIZON])
    kc.seed_arrivals(kst)
    tick = run.window_us
    while True:
        code = kc.run_until(kst, np.int64(min(tick, horizon)))
        if code == RUN_DONE:
            break
        if code == RUN_PAUSED:
            if tick > horizon:  # the next event is past the horizon
                break
            now, trigger = tick, "interval"
            tick += run.window_us
        else:
            now, trigger = int(st.CL[L.CL_LAST_T]), "slo" if code == RUN_SLO else "load"
        if not run.work_left():
            break
        run.close_stopped()
        run.apply(now, run.policy.evaluate(run.context(now, trigger)), trigger)
    return run.outcome()
