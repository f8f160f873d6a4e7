"""Load profiles: a time-varying multiplier m(t) > 0 of a workload spec's request rate.

Arrivals are generated at the spec's base rate in *operational time* s and mapped to real time
t = Λ⁻¹(s), where Λ(t) = ∫₀ᵗ m(u) du; a Poisson stream of rate λ becomes one of rate λ·m(t)
(other arrival processes keep their shape in operational time).  Profiles (times in seconds)::

    load_profile: {type: step,    factor: 3, start_s: 60, end_s: 120}   # end_s optional
    load_profile: {type: ramp,    factor: 3, start_s: 60, end_s: 120}   # 1 -> factor, then held
    load_profile: {type: spike,   factor: 5, start_s: 60, duration_s: 10}
    load_profile: {type: diurnal, amplitude: 0.5, period_s: 600}        # 1 + a·sin(2πt/period)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.schema import Number, Tagged

PROFILE_TYPES = ("step", "ramp", "spike", "diurnal")
_GRID_S = 0.01   # resolution of the numerical inverse of Λ


@dataclass(frozen=True)
class LoadProfile:
    """A rate multiplier (see the module docstring)."""

    type: str
    factor: float = 1.0
    start_s: float = 0.0
    end_s: float = math.inf
    amplitude: float = 0.0
    period_s: float = 1.0

    def multiplier(self, t_s: np.ndarray) -> np.ndarray:
        """m(t) at times ``t_s`` (seconds)."""
        t = np.asarray(t_s, dtype=np.float64)
        if self.type == "diurnal":
            return 1.0 + self.amplitude * np.sin(2.0 * math.pi * t / self.period_s)
        if self.type == "ramp":
            width = max(self.end_s - self.start_s, 1e-12)
            frac = np.clip((t - self.start_s) / width, 0.0, 1.0)
            return 1.0 + (self.factor - 1.0) * frac
        inside = (t >= self.start_s) & (t < self.end_s)   # step and spike
        return np.where(inside, self.factor, 1.0)

    def _min_multiplier(self) -> float:
        if self.type == "diurnal":
            return max(1.0 - self.amplitude, 1e-6)
        return max(min(1.0, self.factor), 1e-6)

    def _reach_bound(self, s: float) -> float:
        """A real time by which Λ has reached ``s`` (an upper bound of Λ⁻¹(s), in seconds)."""
        if self.type == "diurnal":          # Λ(t) = t + a·period/2π·(1 - cos(2πt/period)) >= t
            return s
        f = self.factor
        if s <= self.start_s or (f >= 1.0 and self.type == "ramp"):   # m = 1 before start_s
            return s
        if self.type == "ramp":             # m >= factor from start_s on
            return self.start_s + (s - self.start_s) / f
        dip = f * (self.end_s - self.start_s)    # step and spike: Λ⁻¹ exactly
        if s <= self.start_s + dip:
            return self.start_s + (s - self.start_s) / f
        return s + (self.end_s - self.start_s) * (1.0 - f)

    def _grid(self, s_max: float, t_min: float = 0.0):
        """Real-time grid and Λ on it, long enough that Λ reaches ``s_max`` seconds and the grid
        reaches ``t_min`` seconds.  It starts at a bound of the time Λ reaches ``s_max`` and
        doubles while short (the numerical Λ may lag the exact one by a cell), never beyond
        ``s_max / min m`` (where Λ must have reached it); every grid is a prefix of the longest,
        so the interpolations over it do not depend on where it stops."""
        cap = max(t_min, s_max / self._min_multiplier()) + 2 * _GRID_S
        t_end = min(max(t_min, self._reach_bound(s_max)) + 2 * _GRID_S, cap)
        while True:
            t = np.arange(0.0, t_end + _GRID_S, _GRID_S)
            mid = self.multiplier(t[:-1] + _GRID_S / 2)
            lam = np.concatenate(([0.0], np.cumsum(mid * _GRID_S)))
            if t_end >= cap or (lam[-1] >= s_max and t[-1] >= t_min):
                return t, lam
            t_end = min(2.0 * t_end, cap)

    def operational_us(self, real_us: int) -> int:
        """Λ(t) for a real-time bound (µs)."""
        t, lam = self._grid(0.0, t_min=real_us / 1e6)
        return int(np.interp(real_us / 1e6, t, lam) * 1e6)

    def to_real_us(self, op_us: np.ndarray) -> np.ndarray:
        """Λ⁻¹: operational arrival times (µs) to real ones (µs), order preserved."""
        op = np.asarray(op_us, dtype=np.int64)
        if op.size == 0:
            return op.copy()
        t, lam = self._grid(float(op.max()) / 1e6)
        real = np.interp(op / 1e6, lam, t) * 1e6
        return np.maximum.accumulate(np.floor(real).astype(np.int64)) if _sorted(op) else \
            np.floor(real).astype(np.int64)


def _sorted(a: np.ndarray) -> bool:
    return bool(a.size < 2 or (a[1:] >= a[:-1]).all())


def _profile(v, at) -> LoadProfile:
    """Builds the profile: a spike ends ``duration_s`` after its start; a step or ramp must
    end after it starts."""
    kw = dict(v)
    if kw["type"] == "spike":
        kw["end_s"] = kw["start_s"] + kw.pop("duration_s")
    elif kw.get("end_s") is not None and kw["end_s"] <= kw["start_s"]:
        (at / "end_s").fail(f"must be greater than start_s {kw['start_s']}, got {kw['end_s']}")
    return LoadProfile(**kw)


_FACTOR = Number(gt=0, required=True, help="rate multiplier")
_START = Number(ge=0, required=True, unit="s", help="when the change starts")
LOAD_PROFILE = Tagged("type", {
    "step": {"factor": _FACTOR, "start_s": _START,
             "end_s": Number(gt=0, unit="s", help="when the factor ends (default: never)")},
    "ramp": {"factor": _FACTOR, "start_s": _START,
             "end_s": Number(gt=0, required=True, unit="s",
                             help="when the ramp reaches the factor (then held)")},
    "spike": {"factor": _FACTOR, "start_s": _START,
              "duration_s": Number(gt=0, default=1.0, unit="s", help="how long the spike lasts")},
    "diurnal": {"amplitude": Number(ge=0, lt=1, required=True, help="a in 1 + a*sin(2*pi*t/period)"),
                "period_s": Number(gt=0, required=True, unit="s", help="period of the sine")},
}, then=_profile, help="a rate multiplier over time: " + ", ".join(PROFILE_TYPES))
"""The ``load_profile`` key of a workload spec (:mod:`simulator.schema` declaration)."""
