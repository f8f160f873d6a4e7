"""Inter-arrival-time processes of workload-spec clients (poisson, gamma, weibull).

Parameterisations follow the reference: for a client rate ``r`` requests/µs and coefficient of
variation ``cv`` (default 1),

* ``poisson``: exponential gaps with mean ``1/r``;
* ``gamma``: shape ``1/cv²``, scale ``cv²/r`` (mean ``1/r``, cv as given); a shape below 0.01
  (cv > 10) falls back to Poisson, as in the reference;
* ``weibull``: shape ``k`` solved from cv by the reference's bisection over ``[0.1, 100]``,
  scale ``(1/r) / Γ(1 + 1/k)``.

Every gap is truncated to whole microseconds and is at least 1 µs.  Sampling is vectorised over
numpy ``Generator`` s; the random stream is numpy's, so individual gaps differ from the
reference's while the distributions are the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_RATE_PER_US = 1e-15
"""Rates below this are raised to it (the reference's guard against division by zero)."""

MAX_IAT_US = 2 ** 52
"""Gaps are capped here before the int64 conversion (only reachable with absurdly low rates)."""

GAMMA_MIN_SHAPE = 0.01


def weibull_cv(k: float) -> float:
    """Coefficient of variation of a Weibull distribution with shape ``k``."""
    g1 = math.gamma(1.0 + 1.0 / k)
    g2 = math.gamma(1.0 + 2.0 / k)
    return math.sqrt(g2 / (g1 * g1) - 1.0)


def weibull_shape_from_cv(cv: float) -> float:
    """Weibull shape ``k`` whose cv is within 1e-3 of ``cv``: the reference's bisection.

    Searches ``k`` in ``[0.1, 100]`` (cv decreases with ``k``) for at most 100 halvings and returns
    the first midpoint within tolerance, else the final midpoint.  Valid targets are
    [0.01, 10.4]; outside that the search ends at the nearer bound.
    """
    lo, hi = 0.1, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        c = weibull_cv(mid)
        if abs(c - cv) < 1e-3:
            return mid
        if c > cv:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class ArrivalSampler:
    """A resolved arrival process: ``kind`` in {poisson, gamma, weibull} and its parameters.

    ``mean_us`` is the mean gap; ``shape``/``scale`` are the gamma or weibull parameters.
    """

    kind: str
    mean_us: float
    shape: float = 1.0
    scale: float = 0.0

    def sample_float(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` continuous gaps in µs (before truncation), for tests of the distributions."""
        if self.kind == "gamma":
            return rng.gamma(self.shape, self.scale, n)
        if self.kind == "weibull":
            return self.scale * rng.weibull(self.shape, n)
        return rng.standard_exponential(n) * self.mean_us

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` gaps as int64 microseconds: truncated toward zero, at least 1."""
        x = np.minimum(self.sample_float(rng, n), float(MAX_IAT_US))
        iat = x.astype(np.int64)
        np.maximum(iat, 1, out=iat)
        return iat


def make_arrival_sampler(process: str, cv: float | None, rate_per_us: float) -> ArrivalSampler:
    """Build the sampler of one client from its arrival spec and rate (requests per µs).

    Why the fallbacks: they reproduce the reference exactly (cv <= 0 means 1; gamma with
    cv > 10 becomes Poisson; unknown processes are Poisson), so specs behave the same there.
    """
    rate = max(float(rate_per_us), MIN_RATE_PER_US)
    mean = 1.0 / rate
    c = 1.0 if cv is None or cv <= 0 else float(cv)
    if process == "gamma":
        shape = 1.0 / (c * c)
        if shape < GAMMA_MIN_SHAPE:
            return ArrivalSampler("poisson", mean)
        return ArrivalSampler("gamma", mean, shape, mean * c * c)
    if process == "weibull":
        k = weibull_shape_from_cv(c)
        return ArrivalSampler("weibull", mean, k, mean / math.gamma(1.0 + 1.0 / k))
    return ArrivalSampler("poisson", mean)
