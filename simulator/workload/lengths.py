"""Token-length distributions of workload-spec clients, sampled vectorised.

Behaviour follows the reference's samplers (all results are integers, rounded half away from
zero, and at least 1, except that a gaussian with ``min == max`` always returns ``min``):

* ``gaussian`` {mean, std_dev, min, max}: ``round(clamp(mean + std_dev·Z, min, max))``;
* ``exponential`` {mean}: ``round(mean·E)``;
* ``pareto_lognormal`` {alpha, xm, mu, sigma, mix_weight}: with probability ``mix_weight`` a
  Pareto draw ``xm / U^(1/alpha)``, otherwise a log-normal ``exp(mu + sigma·Z)``;
* ``empirical`` {value: probability, ...}: normalised, sampled by inverse CDF (the smallest value
  whose cumulative probability reaches ``U``); values with probability <= 0 are never drawn.

The random stream is numpy's, so individual samples differ from the reference's.
"""
from __future__ import annotations

import numpy as np

from simulator.workload.distribution import round_half_away
from simulator.workload.spec import DistSpec

MAX_LENGTH = 2 ** 31 - 1
"""Samples are capped here (a Pareto tail can otherwise overflow the integer conversion)."""


class LengthSampler:
    """Samples one :class:`~simulator.workload.spec.DistSpec`; build once, call many times."""

    def __init__(self, dist: DistSpec):
        self.dist = dist
        self.type = dist.type
        p = dist.param
        if self.type == "gaussian":
            self.mean, self.std = p("mean"), p("std_dev")
            self.lo, self.hi = int(p("min")), int(p("max"))
        elif self.type == "exponential":
            self.mean = p("mean")
        elif self.type == "pareto_lognormal":
            self.alpha, self.xm = p("alpha"), p("xm")
            self.mu, self.sigma, self.mix = p("mu"), p("sigma"), p("mix_weight")
        elif self.type == "empirical":
            pdf = sorted(dist.pdf().items())
            total = sum(v for _, v in pdf)
            keep = [(k, v) for k, v in pdf if v > 0]
            self.values = np.array([k for k, _ in keep], dtype=np.int64)
            self.cdf = np.cumsum(np.array([v for _, v in keep], dtype=np.float64) / total)
            if self.cdf.size:
                self.cdf[-1] = 1.0
        else:
            raise ValueError(f"unknown distribution type {self.type!r}")

    def mean_value(self) -> float | None:
        """The distribution's continuous mean where it has a simple closed form (for tests)."""
        if self.type == "exponential":
            return self.mean
        if self.type == "empirical":
            pr = np.diff(np.concatenate(([0.0], self.cdf)))
            return float((pr * self.values).sum())
        return None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` samples as an int64 array."""
        n = int(n)
        t = self.type
        if t == "gaussian":
            if self.lo == self.hi:
                return np.full(n, self.lo, dtype=np.int64)
            x = rng.standard_normal(n) * self.std + self.mean
            x = np.clip(x, float(self.lo), float(self.hi))
        elif t == "exponential":
            x = rng.standard_exponential(n) * self.mean
        elif t == "pareto_lognormal":
            pick = rng.random(n) < self.mix
            u = 1.0 - rng.random(n)  # (0, 1]: no division by zero
            z = rng.standard_normal(n)
            with np.errstate(over="ignore"):
                x = np.where(pick, self.xm / u ** (1.0 / self.alpha),
                             np.exp(self.mu + self.sigma * z))
        else:  # empirical
            if self.values.size == 0:
                return np.ones(n, dtype=np.int64)
            if self.values.size == 1:
                return np.full(n, self.values[0], dtype=np.int64)
            idx = np.searchsorted(self.cdf, rng.random(n), side="left")
            np.minimum(idx, self.values.size - 1, out=idx)
            return self.values[idx]
        out = round_half_away(np.minimum(x, float(MAX_LENGTH))).astype(np.int64)
        np.maximum(out, 1, out=out)
        return out
