"""GuideLLM-style synthetic workloads (``--workload distribution`` and the named presets).

Behaviour follows the reference's distribution generator:

* arrivals are deterministic, not Poisson: request ``k`` arrives at ``k * step`` microseconds with
  ``step = int64(1 / (rate_per_s / 1e6))``, for as long as the arrival is before the horizon and
  fewer than ``num_requests`` requests exist;
* prompt and output lengths are ``round(clamp(N(0,1) * std + mean, min, max))`` with Go's
  ``math.Round`` (halves away from zero), and no random draw at all when ``min == max``;
* token ids are uniform in ``[0, 128000)``;
* one random prefix of ``prefix_tokens`` ids is drawn once and prepended to every prompt, so
  ``n_in = prefix_tokens + prompt length``.

The random stream is numpy's, not Go's, so individual lengths and ids differ from the reference;
the distributions, the arrival times and the request count are the same.
"""
from __future__ import annotations

import math
import os

import numpy as np
import yaml

from simulator.errors import InputError
from simulator.workload.types import Workload

MAX_TOKEN_ID = 128000
"""Token ids are drawn uniformly from ``[0, MAX_TOKEN_ID)``."""

PRESET_NAMES = ("chatbot", "summarization", "contentgen", "multidoc")

# defaults.yaml key -> generate_distribution keyword
_PRESET_KEYS = {
    "prefix_tokens": "prefix_tokens",
    "prompt_tokens": "prompt_mean",
    "prompt_tokens_stdev": "prompt_std",
    "prompt_tokens_min": "prompt_min",
    "prompt_tokens_max": "prompt_max",
    "output_tokens": "output_mean",
    "output_tokens_stdev": "output_std",
    "output_tokens_min": "output_min",
    "output_tokens_max": "output_max",
}

_INT64_LIMIT = 2**63


def arrival_step_us(rate_per_s: float) -> int | None:
    """Gap between consecutive arrivals: ``int64(1 / (rate_per_s / 1e6))`` microseconds.

    The same two double operations as the reference, then truncation toward zero.  Returns None
    when the gap does not fit int64 (absurdly low rates); the reference's conversion is undefined
    there, and :func:`generate_distribution` treats it as "the next arrival is past any horizon".
    """
    gap = 1.0 / (float(rate_per_s) / 1e6)
    if not math.isfinite(gap) or gap >= _INT64_LIMIT:
        return None
    return int(gap)


def num_distribution_requests(rate_per_s: float, num_requests: int, horizon_us: int) -> int:
    """How many requests the reference's arrival loop creates.

    The loop emits arrival ``t`` while ``t < horizon`` and the count is below ``num_requests``;
    its extra ``t > horizon`` break never changes the result.  A zero gap (rates above 1e6/s)
    puts every request at time 0.  Computed exactly with Python integers (the reference's int64
    clock could wrap for horizons near 2^63; that overflow is not reproduced).
    """
    num_requests = int(num_requests)
    horizon_us = int(horizon_us)
    if num_requests <= 0 or horizon_us <= 0:
        return 0
    step = arrival_step_us(rate_per_s)
    if step is None:
        return 1
    if step == 0:
        return num_requests
    return min(num_requests, -(-horizon_us // step))


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Go's ``math.Round``: nearest integer, halves away from zero (numpy's rint rounds to even)."""
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0.0)


def _lengths(rng: np.random.Generator, n: int, mean, std, lo, hi) -> np.ndarray:
    """n clamped-Gaussian lengths; no draw when lo == hi (as in the reference)."""
    if lo == hi:
        return np.full(n, int(lo), dtype=np.int64)
    val = rng.standard_normal(n) * float(std) + float(mean)
    val = np.maximum(float(lo), np.minimum(float(hi), val))
    return round_half_away(val).astype(np.int64)


def generate_distribution(*, rate_per_s: float, num_requests: int, horizon_us: int,
                          prefix_tokens: int, prompt_mean: int, prompt_std: int, prompt_min: int,
                          prompt_max: int, output_mean: int, output_std: int, output_min: int,
                          output_max: int, rng: np.random.Generator) -> Workload:
    """Generate the reference's distribution workload as a :class:`Workload`.

    Arrivals are evenly spaced (see :func:`arrival_step_us`), starting at 0.  Each request's input
    is the shared random prefix followed by a random prompt of clamped-Gaussian length; its output
    is a random list of clamped-Gaussian length.  Arguments are assumed already checked with
    :func:`validate_distribution_args`.  Fully vectorised; draws from ``rng`` in this order:
    prefix ids, all prompt lengths, all output lengths, all remaining token ids.
    """
    n = num_distribution_requests(rate_per_s, num_requests, horizon_us)
    step = arrival_step_us(rate_per_s)
    arrivals = np.arange(n, dtype=np.int64) * np.int64(step or 0)

    p = int(prefix_tokens)
    prefix = rng.integers(0, MAX_TOKEN_ID, size=p, dtype=np.int32)
    n_in = _lengths(rng, n, prompt_mean, prompt_std, prompt_min, prompt_max) + p
    n_out = _lengths(rng, n, output_mean, output_std, output_min, output_max)

    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_in + n_out, out=ptr[1:])
    tokens = rng.integers(0, MAX_TOKEN_ID, size=int(ptr[-1]), dtype=np.int32)
    if p and n:
        # Overwrite the first p input slots of every request with the shared prefix, in chunks
        # so the index array stays small.
        offs = np.arange(p, dtype=np.int64)
        chunk = max(1, (1 << 20) // p)
        for a in range(0, n, chunk):
            starts = ptr[a:min(n, a + chunk)]
            tokens[(starts[:, None] + offs).ravel()] = np.tile(prefix, starts.shape[0])
    return Workload(arrivals, n_in, n_out, ptr, tokens)


def preset_workload(name: str, defaults_path) -> dict:
    """Length parameters of a named preset from the ``workloads:`` section of ``defaults.yaml``.

    Returns a dict with the keyword names of :func:`generate_distribution` (``prefix_tokens``,
    ``prompt_mean``, ..., ``output_max``); missing keys are 0, as in the reference (multidoc has
    no ``prefix_tokens``).  The caller adds rate, request count, horizon and rng.  In the
    reference a preset replaces the length flags entirely and only the rate is checked.
    """
    path = os.fspath(defaults_path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise InputError(f"cannot read --defaults-filepath {path!r}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "invalid YAML"
        raise InputError(f"--defaults-filepath {path!r} is not valid YAML: {first}") from None
    presets = doc.get("workloads") if isinstance(doc, dict) else None
    presets = presets if isinstance(presets, dict) else {}
    entry = presets.get(name)
    if not isinstance(entry, dict):
        valid = sorted(set(PRESET_NAMES) | {str(k) for k in presets})
        raise InputError(f"--workload {name!r} is not defined; use one of "
                         f"{', '.join(valid)} (or distribution, traces)")
    out = {}
    for key, kw in _PRESET_KEYS.items():
        v = entry.get(key, 0)
        if v is None:
            v = 0
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputError(f"{path}: workloads.{name}.{key} must be an integer, got {v!r}")
        out[kw] = v
    return out


def validate_distribution_args(*, rate_per_s: float, num_requests: int, prefix_tokens: int,
                               prompt_mean: int, prompt_std: int, prompt_min: int,
                               prompt_max: int, output_mean: int, output_std: int,
                               output_min: int, output_max: int,
                               check_ranges: bool = True) -> None:
    """Reject distribution arguments the reference refuses (or would crash on).

    As in the reference: ``--rate`` must be finite and > 0, and for prompt and output both the mean
    **and the stdev** must lie in ``[min, max]`` (the reference really compares the stdev with the
    length bounds).  ``check_ranges=False`` skips the latter, which the reference does for named
    presets.  Added here: counts must be integers >= 0 (negative counts make the reference produce
    no requests or panic).  Raises :class:`~simulator.errors.InputError` naming the flag.
    """
    try:
        rate = float(rate_per_s)
    except (TypeError, ValueError):
        raise InputError(f"--rate must be a finite value > 0, got {rate_per_s!r}") from None
    if not (math.isfinite(rate) and rate > 0):
        raise InputError(f"--rate must be a finite value > 0, got {rate_per_s!r}")

    ints = {
        "--num-requests": num_requests, "--prefix-tokens": prefix_tokens,
        "--prompt-tokens": prompt_mean, "--prompt-tokens-stdev": prompt_std,
        "--prompt-tokens-min": prompt_min, "--prompt-tokens-max": prompt_max,
        "--output-tokens": output_mean, "--output-tokens-stdev": output_std,
        "--output-tokens-min": output_min, "--output-tokens-max": output_max,
    }
    for flag, v in ints.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InputError(f"{flag} must be an integer, got {v!r}")
        if v < 0:
            raise InputError(f"{flag} must be >= 0, got {v}")

    if not check_ranges:
        return
    for kind, mean, std, lo, hi in (("prompt", prompt_mean, prompt_std, prompt_min, prompt_max),
                                    ("output", output_mean, output_std, output_min, output_max)):
        bounds = f"[--{kind}-tokens-min, --{kind}-tokens-max] = [{lo}, {hi}]"
        for flag, v in ((f"--{kind}-tokens", mean), (f"--{kind}-tokens-stdev", std)):
            if v < lo or v > hi:
                raise InputError(f"{flag} must be within {bounds}, got {v}")
