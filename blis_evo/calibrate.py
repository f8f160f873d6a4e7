"""``blis calibrate``: compare an observed trace with the simulator, and fit α/β to it.

1. **Load** an observed trace v2 (:mod:`simulator.workload.tracev2`, normally ``mode: real``
   from ``blis observe``).  Rows whose ``status`` is not ``ok`` are excluded (counted by
   status), as are ``ok`` rows with impossible times (first chunk before the send, last before
   the first, no chunk) and the header's ``warm_up_requests`` first rows (replayed, since they
   loaded the server, but not compared or fitted).  Real metrics per request:
   TTFT = first_chunk − send, E2E = last_chunk − send, ITL = (E2E − TTFT)/(num_chunks − 1)
   (only with two or more chunks).
2. **Replay** the kept requests through :func:`simulator.run` with the given coefficients and
   cluster flags: arrivals are the recorded *send* times (when the server saw them); output
   lengths are the server's reported completion tokens where the trace has them, else the
   ``output_tokens`` column; token ids are exact when the trace has ``tokens.npz``.  A response
   received in one piece (one chunk, first chunk time == last) is compared on its completion:
   its simulated "first chunk" is its simulated E2E.  The simulated ITL uses the same
   ``num_chunks − 1`` denominator as the real one.
3. **Compare** TTFT, E2E and ITL: MAPE (%), Pearson r, and p50/p90/p99 of real vs simulated
   with their relative error.
4. **Fit** (``--fit``) α/β by least squares on the step model (:mod:`blis_evo.stepmodel`), then
   re-simulate with the fitted coefficients and compare again (the honest check).

What a black box identifies (serial server, one request at a time; θ = α0, α1, α2, β0, β1, β2;
m = output tokens)::

    ITL (token gap)                            g  = β0 + β2 + α2
    TTFT of a request that found the server    c0 = α0 + β0 + α2   (intercept)
    idle: c0 + c1·n_in                         c1 = α1 + β1        (slope)
    first-token gap of a backlogged request    first_k − first_p = m_p·β0 + n_k·β1 + (m_p − 1)·β2
    k after its predecessor p                  (the server is free at first_p − α2 + (m_p−1)(β0+β2))

With idle *and* backlogged requests (and varied prompt and output lengths) all six are
identified: β from the backlog, then α2 = g − β0 − β2, α1 = c1 − β1, α0 = c0 − β0 − α2.
Without queueing only g, c0 and c1 are; with a single output length in the backlog only
m·β0 + (m − 1)·β2 for that m.  The data decide: each stage's least-squares design (columns
scaled to unit norm; singular values below ``RCOND`` = 1e-3 of the largest count as zero)
yields the directions of θ it determines, with standard errors (σ/s per direction; the ITL
median 1.2533·sd/√n).

Solving: among all sets of coefficients fixed at 0, smallest first and in the priority order
α2, α1, α0, β2, β1, β0, those that leave the rest determined are solved by least squares
weighted with the standard errors; solutions with a negative coefficient are dropped.  A
solution that meets every identified combination wins (the zeros are then a *convention*:
they only fill directions the data leave open); else the smallest weighted residual (the
zeros are *clamped* by non-negativity, and the least precisely known combinations move most).
So without queueing: α2 = α1 = 0 and α0 = 0 (β0 = c0, β2 = g − c0), or, if that made β2
negative, β2 = 0 (β0 = g, α0 = c0 − g); either way the server stays busy until the last token
is emitted, the most queueing the data allow.

On a serial server α1 is finally checked against the observed service order: a FIFO server
serves in queue-join order, so consecutive requests a, b give ``send_a + α1·n_a <
send_b + α1·n_b``.  If the least-squares α1 breaks more of these than some other α1 in
[0, c1], it moves to the nearest value breaking the fewest (2 µs of queue-join margin inside
the interval) and β1 = c1 − α1: near-simultaneous requests are then replayed in the observed
order, which per-request TTFT errors are very sensitive to.

Which requests feed each stage (compared requests; idle and backlog only with prompts within
one step's token budget, ``--max-num-scheduled-tokens``):

* serial replay (``--max-num-running-reqs 1`` and one instance): ITL from every streamed request;
  idle TTFT from requests sent after the last chunk of every request served before them
  (service order = first-token order; a one-piece response's first token is estimated as
  last − (m − 1)·g); backlog from requests certainly queued: ``send + ĉ0 + ĉ1·n_in <
  first_p − ĝ`` (the queue-join time is at most the idle TTFT after the send, the
  predecessor's server-free time at least first_p − α2 >= first_p − g, for any non-negative
  coefficients);
* batched or multi-instance replay: ITL and idle TTFT from isolated requests only (their
  [send, last chunk] overlaps no other request's); no backlog stage.

The serial server of :mod:`blis_evo.stepmodel` includes the engine's rule that an instance is
freed when a request's last step starts, so a request joining during its predecessor's last step
starts at once; the backlog stage only uses requests that were certainly waiting before that.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import yaml

import simulator
from simulator.config import LatencyConfig, PolicyConfig, SimConfig
from simulator.errors import InputError
from simulator.fileio import atomic_write, read_text
from simulator.latency import load_defaults, resolve_latency
from simulator.workload.tracev2 import STATUSES, read_trace_v2
from simulator.workload.types import Workload

from .commands import EXIT_OK, check_output_file, one_line, run_subcommand
from .flags import InputErrorParser
from .go_scalars import parse_go_float


THETA = ("alpha0", "alpha1", "alpha2", "beta0", "beta1", "beta2")
"""Order of the six coefficients in θ (µs, µs/token)."""

CONVENTION_ORDER = (2, 1, 0, 5, 4, 3)
"""Coefficients set to zero, in this priority, when the data leave the split open."""

NAMED_COMBINATIONS = {
    "beta0+beta2+alpha2": (0, 0, 1, 1, 0, 1),
    "alpha0+beta0+alpha2": (1, 0, 1, 1, 0, 0),
    "alpha1+beta1": (0, 1, 0, 0, 1, 0),
    "beta0+beta2": (0, 0, 0, 1, 0, 1),
    "alpha0": (1, 0, 0, 0, 0, 0),
    "alpha1": (0, 1, 0, 0, 0, 0),
    "alpha2": (0, 0, 1, 0, 0, 0),
    "beta0": (0, 0, 0, 1, 0, 0),
    "beta1": (0, 0, 0, 0, 1, 0),
    "beta2": (0, 0, 0, 0, 0, 1),
}
"""Combinations reported under ``fitted.identifiable`` (token gap, idle-TTFT intercept and
slope, decode step, then each coefficient)."""

METRICS = ("ttft", "e2e", "itl")
PERCENTILES = (50, 90, 99)
RCOND = 1e-3
DEFAULT_KV_BLOCKS = 1_000_000
DEFAULT_MAX_SCHEDULED_TOKENS = 2048
DEFAULT_SEED = 42

_G = np.array(NAMED_COMBINATIONS["beta0+beta2+alpha2"], dtype=np.float64)
_C0 = np.array(NAMED_COMBINATIONS["alpha0+beta0+alpha2"], dtype=np.float64)
_C1 = np.array(NAMED_COMBINATIONS["alpha1+beta1"], dtype=np.float64)
_BETA = np.eye(6)[3:6]


# ---------------------------------------------------------------------------------------------
# Observed trace
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observed:
    """The replayable part of an observed trace, sorted by send time.

    ``workload`` holds the kept requests (arrival = send time); ``send_us``, ``first_us``,
    ``last_us`` (float64) and ``chunks`` (int64) are aligned with it; ``compare`` marks the
    requests that are compared and fitted (not warm-up).  ``excluded`` counts the rows not
    compared, by reason; ``total`` is the number of trace rows.
    """

    path: str
    mode: str
    header: dict
    total: int
    excluded: dict
    workload: object
    send_us: np.ndarray
    first_us: np.ndarray
    last_us: np.ndarray
    chunks: np.ndarray
    compare: np.ndarray

    @property
    def whole(self) -> np.ndarray:
        """Requests received in one piece (one chunk, first == last): compared on completion."""
        return (self.chunks <= 1) & (self.first_us == self.last_us)


def _subset_workload(wl, idx: np.ndarray, arrival: np.ndarray, n_out: np.ndarray):
    """Requests ``idx`` of ``wl`` (in that order) with new arrival times and output lengths
    (output ids cut to ``n_out``, or padded with id 0 beyond the recorded ones)."""
    n_in = wl.n_in[idx].astype(np.int64)
    n_out = np.asarray(n_out, dtype=np.int64)
    ptr = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(n_in + n_out, out=ptr[1:])
    tokens = np.zeros(int(ptr[-1]), dtype=np.int32)
    for k, i in enumerate(idx.tolist()):
        src = wl.tokens[wl.token_ptr[i]:wl.token_ptr[i + 1]][:n_in[k] + n_out[k]]
        tokens[ptr[k]:ptr[k] + src.size] = src
    return Workload(np.asarray(arrival, dtype=np.int64), n_in, n_out, ptr, tokens)


def _exclusions(rec, warm_up: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(kept rows, compared-among-kept mask, counts by reason) of the trace rows.

    Compared: status ok with possible chunk times, after the warm-up rows.  Also kept for the
    replay but not compared: warm-up rows, and failed requests that streamed some tokens before
    failing (a dropped or timed-out stream still loaded the server, and leaving it out would
    make every later request look faster than the server was).  Counts by reason: each non-ok
    status, ``no_status``, ``invalid_timing`` (ok with impossible times), ``warm_up`` and
    ``replayed_failed`` (the failed rows kept for the replay; also counted under their status).
    """
    status = np.array(rec.status, dtype=object)
    ok = rec.ok
    valid = ((rec.first_chunk_us >= rec.send_us) & (rec.last_chunk_us >= rec.first_chunk_us)
             & (rec.num_chunks >= 1))
    served_failed = ~ok & (status != "") & valid
    kept = (ok & valid) | served_failed
    warm = np.arange(status.size) < warm_up
    counts = {s: int(np.sum(status == s)) for s in STATUSES if s != "ok"}
    counts.update(no_status=int(np.sum(status == "")), invalid_timing=int(np.sum(ok & ~valid)),
                  warm_up=int(np.sum(ok & valid & warm)),
                  replayed_failed=int(np.sum(served_failed)))
    return np.flatnonzero(kept), (~warm & ok)[kept], counts


def _output_tokens(trace, rows: np.ndarray) -> np.ndarray:
    """Output tokens generated: the server's usage report where known, else the trace's
    ``output_tokens`` column; for a failed request, the chunks it streamed before failing."""
    rec = trace.observed
    server = rec.server_completion_tokens[rows]
    n = np.where(server >= 0, server, trace.workload.n_out[rows]).astype(np.int64)
    failed = ~rec.ok[rows]
    return np.where(failed, rec.num_chunks[rows], n).astype(np.int64)


def load_observed(path: str, seed: int = DEFAULT_SEED) -> Observed:
    """Read the trace v2 at ``path`` (directory or header) for calibration.

    Token ids come from ``tokens.npz`` when present, else are synthesised from ``seed`` (as
    ``blis run`` replays do); output lengths from the server's usage report when the trace has
    one.  Raises InputError (naming ``--trace``) on a missing or malformed trace, or when no
    ``ok`` request with valid times is left to compare.
    """
    try:
        trace = read_trace_v2(path, seed=seed)
    except InputError as exc:
        raise InputError(f"--trace: {one_line(exc)}") from None
    rec = trace.observed
    warm_up = int(trace.header.get("warm_up_requests") or 0)
    kept, compare, excluded = _exclusions(rec, warm_up)
    if not compare.any():
        why = ", ".join(f"{k} {v}" for k, v in excluded.items() if v) or "no rows"
        raise InputError(f"--trace: {os.fspath(path)!r} has no request to compare: none of its "
                         f"{len(rec)} rows has status ok and valid chunk times after the "
                         f"{warm_up} warm-up rows ({why})")
    by_send = np.argsort(rec.send_us[kept], kind="stable")
    order = kept[by_send]
    send = rec.send_us[order]
    return Observed(
        path=os.fspath(path), mode=str(trace.header.get("mode") or ""), header=trace.header,
        total=len(rec), excluded=excluded,
        workload=_subset_workload(trace.workload, order, send, _output_tokens(trace, order)),
        send_us=send.astype(np.float64), first_us=rec.first_chunk_us[order].astype(np.float64),
        last_us=rec.last_chunk_us[order].astype(np.float64),
        chunks=rec.num_chunks[order].astype(np.int64), compare=compare[by_send])


# ---------------------------------------------------------------------------------------------
# Metrics, replay, comparison
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestMetrics:
    """Per-request TTFT, E2E and ITL (µs, float64, NaN when absent), aligned with Observed."""

    ttft: np.ndarray
    e2e: np.ndarray
    itl: np.ndarray


def _per_chunk(ttft: np.ndarray, e2e: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """(E2E − TTFT)/(chunks − 1) where there are two or more chunks, else NaN."""
    out = np.full(ttft.shape, np.nan)
    many = chunks >= 2
    out[many] = (e2e[many] - ttft[many]) / (chunks[many] - 1)
    return out


def real_metrics(obs: Observed) -> RequestMetrics:
    """Observed TTFT = first − send, E2E = last − send, ITL = (E2E − TTFT)/(chunks − 1)."""
    ttft = obs.first_us - obs.send_us
    e2e = obs.last_us - obs.send_us
    return RequestMetrics(ttft, e2e, _per_chunk(ttft, e2e, obs.chunks))


def sim_config(latency, *, num_instances: int, max_running: int, max_scheduled: int,
               kv_blocks: int, block_size: int):
    """The SimConfig of a calibration replay (other knobs at their ``blis run`` defaults)."""
    return SimConfig(num_instances=num_instances, max_running_reqs=max_running,
                     max_scheduled_tokens=max_scheduled, total_kv_blocks=kv_blocks,
                     block_size=block_size, latency=latency)


def replay(obs: Observed, cfg) -> RequestMetrics:
    """Simulate the observed requests under ``cfg``; the simulated metrics, defined like the
    real ones (one-piece responses: TTFT = E2E; ITL over the real chunk count)."""
    res = simulator.run(cfg, PolicyConfig(), obs.workload)
    e2e = np.asarray(res.e2e_us, dtype=np.float64)
    ttft = np.where(obs.whole, e2e, np.asarray(res.ttft_us, dtype=np.float64))
    return RequestMetrics(ttft, e2e, _per_chunk(ttft, e2e, obs.chunks))


def _finite(x) -> float | None:
    """``x`` as a float, None when NaN/inf/absent (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


def mape_pct(real: np.ndarray, sim: np.ndarray) -> float | None:
    """Mean absolute percentage error of ``sim`` against ``real`` (%), over real > 0."""
    keep = real > 0
    if not keep.any():
        return None
    return float(100.0 * np.mean(np.abs(sim[keep] - real[keep]) / real[keep]))


def pearson_r(real: np.ndarray, sim: np.ndarray) -> float | None:
    """Pearson correlation of the pairs; None below 3 pairs or with a constant side."""
    if real.size < 3 or np.ptp(real) == 0 or np.ptp(sim) == 0:
        return None
    return _finite(np.corrcoef(real, sim)[0, 1])


def percentile_errors(real: np.ndarray, sim: np.ndarray) -> dict:
    """p50/p90/p99 of real and simulated values (ms) and sim's relative error (%)."""
    out = {}
    for p in PERCENTILES:
        r = float(np.percentile(real, p)) if real.size else math.nan
        s = float(np.percentile(sim, p)) if sim.size else math.nan
        out[f"p{p}"] = {"real_ms": _finite(r / 1e3), "sim_ms": _finite(s / 1e3),
                        "error_pct": _finite(100.0 * (s - r) / r) if r != 0 else None}
    return out


def compare(real: RequestMetrics, sim: RequestMetrics, mask: np.ndarray) -> dict:
    """MAPE, Pearson r, percentile errors and sample counts per metric over ``mask`` (pairs
    where both sides exist)."""
    out = {"samples": {}, "mape": {}, "pearson": {}, "percentiles": {}}
    for m in METRICS:
        r, s = getattr(real, m), getattr(sim, m)
        keep = mask & np.isfinite(r) & np.isfinite(s)
        out["samples"][m] = int(keep.sum())
        out["mape"][m] = mape_pct(r[keep], s[keep])
        out["pearson"][m] = pearson_r(r[keep], s[keep])
        out["percentiles"][m] = percentile_errors(r[keep], s[keep])
    return out


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One least-squares problem ``y ≈ X·(M·θ)``: ``X`` (n × p), ``y`` (n, µs), ``M`` (p × 6).
    ``robust``: a single-parameter stage estimated by the median of ``y`` (X is all ones)."""

    name: str
    X: np.ndarray
    y: np.ndarray
    M: np.ndarray
    robust: bool = False


@dataclass(frozen=True)
class FitResult:
    """Fitted coefficients and how they were obtained (see the module docstring)."""

    alpha: tuple[float, float, float]
    beta: tuple[float, float, float]
    identifiable: dict
    conventions: tuple[str, ...]
    clamped: tuple[str, ...]
    model: str
    residuals: dict
    service_order: dict | None = None


@dataclass(frozen=True)
class Identified:
    """Linear combinations of θ determined by data: ``rows`` (k × 6) · θ = ``values`` (k,),
    each with a standard error ``stderr`` (k,)."""

    rows: np.ndarray
    values: np.ndarray
    stderr: np.ndarray

    @staticmethod
    def concat(parts: Sequence["Identified"]) -> "Identified":
        """All combinations of ``parts``, stacked."""
        return Identified(np.vstack([np.zeros((0, 6)), *[p.rows for p in parts]]),
                          np.concatenate([np.zeros(0), *[p.values for p in parts]]),
                          np.concatenate([np.zeros(0), *[p.stderr for p in parts]]))


UNKNOWN_NOISE_FRACTION = 0.1
"""Noise assumed (relative to the observations) for a stage with too few rows to estimate it:
two idle requests fit a line exactly, which must not outweigh a well-sampled stage."""


def stage_rows(stage: Stage) -> Identified:
    """The combinations of θ ``stage`` identifies, their least-squares values and standard
    errors.  Columns are scaled to unit norm; directions with singular values below
    ``RCOND`` times the largest are not identified.  A robust stage gives the median of ``y``
    (standard error 1.2533·sd/√n)."""
    n = stage.y.size
    if n == 0:
        return Identified(np.zeros((0, 6)), np.zeros(0), np.zeros(0))
    if stage.robust:
        se = 1.2533 * float(np.std(stage.y)) / math.sqrt(n)
        if n < 3:  # too few samples to estimate the noise
            se = UNKNOWN_NOISE_FRACTION * abs(float(np.median(stage.y)))
        return Identified(stage.M.copy(), np.array([np.median(stage.y)]), np.array([se]))
    scale = np.linalg.norm(stage.X, axis=0)
    scale[scale == 0] = 1.0
    xs = stage.X / scale
    _, s, vt = np.linalg.svd(xs, full_matrices=False)
    r = int(np.sum(s > RCOND * s[0])) if s.size and s[0] > 0 else 0
    sol = np.linalg.lstsq(xs, stage.y, rcond=RCOND)[0]
    rss = float(np.sum((stage.y - xs @ sol) ** 2))
    if n > r + 1:
        sigma = math.sqrt(rss / (n - r))
    else:  # (nearly) exactly determined: the noise is unknown, so trust it little, not fully
        sigma = UNKNOWN_NOISE_FRACTION * float(np.max(np.abs(stage.y), initial=0.0))
    return Identified((vt[:r] * scale) @ stage.M, vt[:r] @ sol, sigma / s[:r])


def _rank(a: np.ndarray) -> int:
    """Numerical rank (0 for an empty matrix)."""
    return int(np.linalg.matrix_rank(a)) if a.size else 0


def _zero_sets():
    """Every set of coefficients to fix at 0: smallest first, then by :data:`CONVENTION_ORDER`."""
    for k in range(7):
        yield from itertools.combinations(CONVENTION_ORDER, k)


def _weighted(ident: Identified) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit-norm rows, rows / stderr, values / stderr); stderr floored at 1e-9 relative."""
    norm = np.linalg.norm(ident.rows, axis=1)
    se = np.maximum(ident.stderr, 1e-9 * (np.abs(ident.values) + norm) + 1e-300)
    return ident.rows / norm[:, None], ident.rows / se[:, None], ident.values / se


def _solve_free(unit: np.ndarray, a: np.ndarray, b: np.ndarray, zeros) -> np.ndarray | None:
    """Weighted least squares with the ``zeros`` fixed at 0; None if the rest is not determined."""
    free = [i for i in range(6) if i not in zeros]
    if _rank(unit[:, free]) < len(free):
        return None
    theta = np.zeros(6)
    if free:
        theta[free] = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
    return theta


def _consistent(ident: Identified, theta: np.ndarray) -> bool:
    """Whether θ meets every identified combination (to rounding)."""
    got = ident.rows @ theta
    scale = np.abs(ident.values) + np.linalg.norm(ident.rows, axis=1) * np.linalg.norm(theta)
    return bool(np.all(np.abs(got - ident.values) <= 1e-7 * scale + 1e-9))


def solve_with_conventions(ident: Identified):
    """θ >= 0 from the identified combinations (module docstring).

    Candidates: every zero set (:func:`_zero_sets`) that leaves the other coefficients
    determined, solved by least squares weighted with the standard errors, kept if >= 0.
    Preferred: one that meets every identified combination (the zeros only fill directions
    the data leave open; first in convention order); otherwise the smallest weighted residual
    (non-negativity then moves the least precisely known combinations most).  Returns
    (θ, zeroed indices, exact).
    """
    unit, a, b = _weighted(ident)
    tol = 1e-9 * (1.0 + float(np.max(np.abs(ident.values), initial=0.0)))
    best = None
    for i, zeros in enumerate(_zero_sets()):
        theta = _solve_free(unit, a, b, zeros)
        if theta is None or np.any(theta < -tol):
            continue
        theta = np.maximum(theta, 0.0)
        exact = _consistent(ident, theta)
        key = (not exact, 0.0 if exact else float(np.sum((a @ theta - b) ** 2)), i)
        if best is None or key < best[0]:
            best = (key, theta, zeros, exact)
    return best[1], best[2], best[3]


def identifiable(ident: Identified, theta: np.ndarray) -> dict:
    """For each of :data:`NAMED_COMBINATIONS`: whether the data determine it, its fitted value
    and standard error (µs or µs/token; value and stderr None when only a convention sets it)."""
    unit = _weighted(ident)[0]
    r = _rank(unit)
    out = {}
    for name, w in NAMED_COMBINATIONS.items():
        w = np.asarray(w, dtype=np.float64)
        known = r > 0 and _rank(np.vstack([unit, w / np.linalg.norm(w)])) == r
        se = None
        if known:
            coef = np.linalg.lstsq(ident.rows.T, w, rcond=None)[0]
            se = _finite(math.sqrt(float(np.sum((coef * ident.stderr) ** 2))))
        out[name] = {"identified": bool(known), "value": float(w @ theta) if known else None,
                     "stderr": se}
    return out


def service_order(obs: Observed, g: float | None) -> np.ndarray:
    """Request indices in first-token order (ties by send order): a serial server's order.
    A one-piece response's first token is estimated as last − (n_out − 1)·g."""
    m1 = obs.workload.n_out.clip(min=1) - 1
    first = np.where(obs.whole, obs.last_us - m1 * (g or 0.0), obs.first_us)
    return np.lexsort((np.arange(obs.send_us.size), first))


def found_idle_serial(obs: Observed, order: np.ndarray) -> np.ndarray:
    """Mask: sent after the last chunk of every request served before it (serial server)."""
    last_before = np.concatenate([[-np.inf], np.maximum.accumulate(obs.last_us[order])[:-1]])
    idle = np.zeros(obs.send_us.size, dtype=bool)
    idle[order] = obs.send_us[order] > last_before
    return idle


def isolated(obs: Observed) -> np.ndarray:
    """Mask: [send, last chunk] overlaps no other request's (requests are in send order)."""
    prev_last = np.concatenate([[-np.inf], np.maximum.accumulate(obs.last_us)[:-1]])
    next_send = np.concatenate([obs.send_us[1:], [np.inf]])
    return (obs.send_us > prev_last) & (obs.last_us < next_send)


def _itl_stage(obs: Observed, use: np.ndarray) -> Stage:
    """Per-token gap (last − first)/(n_out − 1) of streamed requests; median → g."""
    m = obs.workload.n_out.astype(np.float64)
    sel = use & ~obs.whole & (m >= 2)
    y = (obs.last_us[sel] - obs.first_us[sel]) / (m[sel] - 1)
    return Stage("itl", np.ones((y.size, 1)), y, _G[None, :], robust=True)


def _idle_stage(obs: Observed, use: np.ndarray, g: float | None) -> Stage:
    """Idle-server time to first token = c0 + c1·n_in (one-piece responses: E2E − (m−1)·g);
    without a known g, E2E = c0 + c1·n_in + (m−1)·g fits g too."""
    n = obs.workload.n_in[use].astype(np.float64)
    m1 = obs.workload.n_out[use].astype(np.float64).clip(min=1) - 1
    ttft = obs.first_us[use] - obs.send_us[use]
    e2e = obs.last_us[use] - obs.send_us[use]
    if g is None:
        return Stage("idle_ttft", np.column_stack([np.ones_like(n), n, m1]), e2e,
                     np.vstack([_C0, _C1, _G]))
    y = np.where(obs.whole[use], e2e - m1 * g, ttft)
    return Stage("idle_ttft", np.column_stack([np.ones_like(n), n]), y, np.vstack([_C0, _C1]))


def _backlog_stage(obs: Observed, order: np.ndarray, eligible: np.ndarray, idle: Stage,
                   g: float) -> Stage:
    """First-chunk gaps of certainly-queued requests after their predecessor (serial)."""
    ident = stage_rows(idle)
    phi = (np.linalg.lstsq(ident.rows, ident.values, rcond=None)[0] if ident.values.size
           else np.zeros(6))
    k, p = order[1:], order[:-1]
    n_k = obs.workload.n_in[k].astype(np.float64)
    m_p = obs.workload.n_out[p].astype(np.float64).clip(min=1)
    idle_ttft = _C0 @ phi + (_C1 @ phi) * n_k
    sure = obs.send_us[k] + idle_ttft < obs.first_us[p] - g
    sel = sure & eligible[k] & obs.compare[p] & ~obs.whole[k] & ~obs.whole[p]
    x = np.column_stack([m_p, n_k, m_p - 1])[sel]
    return Stage("backlog_gap", x, (obs.first_us[k] - obs.first_us[p])[sel], _BETA)


def build_stages(obs: Observed, *, serial: bool, max_scheduled: int) -> list[Stage]:
    """The ITL, idle-TTFT and (serial only) backlog stages of ``obs`` (module docstring)."""
    use = obs.compare & (obs.workload.n_in <= max_scheduled)
    if serial:
        itl = _itl_stage(obs, obs.compare)
        g_vals = stage_rows(itl).values
        g = float(g_vals[0]) if g_vals.size else None
        order = service_order(obs, g)
        idle = _idle_stage(obs, use & found_idle_serial(obs, order), g)
        if g is None:
            return [itl, idle]
        return [itl, idle, _backlog_stage(obs, order, use, idle, g)]
    iso = isolated(obs)
    itl = _itl_stage(obs, obs.compare & iso)
    g_vals = stage_rows(itl).values
    return [itl, _idle_stage(obs, use & iso, float(g_vals[0]) if g_vals.size else None)]


def stage_residuals(stage: Stage, theta: np.ndarray) -> dict:
    """Requests used, rank and residuals (µs) of ``stage`` under the fitted θ."""
    res = stage.y - stage.X @ (stage.M @ theta) if stage.y.size else np.zeros(0)
    rank = int(stage_rows(stage).values.size)
    return {"requests": int(stage.y.size), "rank": rank,
            "rms_us": _finite(np.sqrt(np.mean(res ** 2))) if res.size else None,
            "max_abs_us": _finite(np.max(np.abs(res))) if res.size else None}


def order_bounds(obs: Observed, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds on α1 from the service order of a FIFO serial server, which serves in queue-join
    order: for consecutive requests a, b, ``send_a + α1·n_a < send_b + α1·n_b`` (α0 cancels).
    Returns (bound, is_upper, |n_a − n_b|) of the pairs with different prompt lengths."""
    a, b = order[:-1], order[1:]
    n = obs.workload.n_in.astype(np.float64)
    dn = n[a] - n[b]
    keep = dn != 0
    return (obs.send_us[b] - obs.send_us[a])[keep] / dn[keep], dn[keep] > 0, np.abs(dn[keep])


def _violations(x, bound: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Order constraints that α1 = ``x`` (scalar or array) breaks: upper bounds <= x plus
    lower bounds >= x."""
    ub, lb = np.sort(bound[upper]), np.sort(bound[~upper])
    x = np.asarray(x, dtype=np.float64)
    return np.searchsorted(ub, x, "right") + lb.size - np.searchsorted(lb, x, "left")


def _segments(c1: float, bound: np.ndarray, dn: np.ndarray):
    """Segments of [0, c1] between the bounds inside it: (lo, hi, margin at lo, margin at hi),
    the margin being 2 µs of queue-join gap for the pair that sets the end (robust to the
    simulator's integer delays), at most half the segment."""
    inside = (bound >= 0) & (bound <= c1)
    edges, inv = np.unique(np.concatenate([[0.0, c1], bound[inside]]), return_inverse=True)
    dn_edge = np.zeros(edges.size)
    np.maximum.at(dn_edge, inv[2:], dn[inside])
    lo, hi = edges[:-1], edges[1:]
    half = (hi - lo) / 2
    margin = np.where(dn_edge > 0, 2.0 / np.where(dn_edge > 0, dn_edge, 1.0), 0.0)
    return lo, hi, np.minimum(half, margin[:-1]), np.minimum(half, margin[1:])


def refine_alpha1(x0: float, c1: float, bound: np.ndarray, upper: np.ndarray,
                  dn: np.ndarray) -> tuple[float, dict]:
    """α1 in [0, c1] (β1 = c1 − α1 >= 0) breaking the fewest order constraints, nearest to the
    least-squares ``x0`` (kept when it is already among the best); and a summary."""
    v0 = int(_violations(x0, bound, upper))
    info = {"pairs": int(np.sum((bound > 0) & (bound < c1))), "violations_least_squares": v0,
            "violations": v0, "adjusted": False}
    lo, hi, m_lo, m_hi = _segments(c1, bound, dn)
    if lo.size == 0:
        return x0, info
    counts = _violations((lo + hi) / 2, bound, upper)
    best = counts == counts.min()
    if v0 <= counts.min():
        return x0, info
    cand = np.minimum(np.maximum(x0, lo + m_lo), hi - m_hi)[best]
    x = float(cand[np.argmin(np.abs(cand - x0))])
    return x, {**info, "violations": int(counts.min()), "adjusted": True,
               "alpha1_least_squares": x0}


def _no_fit_message(stages: list[Stage], serial: bool) -> str:
    """Why a fit found no step time: the requests each stage could use."""
    used = ", ".join(f"{s.name} {s.y.size}" for s in stages)
    why = ("" if serial else "; with batching (--max-num-running-reqs > 1) or several "
           "instances only requests served alone count (sent after every earlier request's "
           "last chunk, done before the next send)")
    return f"--fit: the trace determines no step time (usable requests: {used}){why}"


def fit_step_model(obs: Observed, *, serial: bool, max_scheduled: int) -> FitResult:
    """Least-squares α/β of the step model from the observed times (module docstring); on a
    serial server α1 (and β1 = c1 − α1) is then moved, if needed, into the range that keeps
    the observed service order.  Raises InputError when the data determine no step time."""
    stages = build_stages(obs, serial=serial, max_scheduled=max_scheduled)
    ident = Identified.concat([stage_rows(s) for s in stages])
    theta, zeros, exact = solve_with_conventions(ident)
    if not np.any(theta[3:] > 0):
        raise InputError(_no_fit_message(stages, serial))
    order_info = None
    if serial and identifiable(ident, theta)["alpha1+beta1"]["identified"]:
        c1 = float(theta[1] + theta[4])
        order = service_order(obs, float(_G @ theta))
        x, order_info = refine_alpha1(float(theta[1]), c1, *order_bounds(obs, order))
        theta[1], theta[4] = x, c1 - x
    return FitResult(alpha=tuple(float(x) for x in theta[:3]),
                     beta=tuple(float(x) for x in theta[3:]),
                     identifiable=identifiable(ident, theta),
                     conventions=tuple(f"{THETA[i]} = 0" for i in zeros) if exact else (),
                     clamped=() if exact else tuple(THETA[i] for i in zeros if theta[i] == 0),
                     model="serial" if serial else "isolated-requests",
                     residuals={s.name: stage_residuals(s, theta) for s in stages},
                     service_order=order_info)


# ---------------------------------------------------------------------------------------------
# defaults.yaml entry
# ---------------------------------------------------------------------------------------------

def defaults_entry(model: str, gpu: str, tp: int, vllm_version: str, fit: FitResult,
                   kv_blocks: int) -> dict:
    """A ``models:`` row of defaults.yaml for the fitted coefficients (``id`` lowercased, as
    ``blis run`` looks it up)."""
    return {"id": model.lower(), "GPU": gpu, "tensor_parallelism": int(tp),
            "vllm_version": vllm_version, "alpha_coeffs": list(fit.alpha),
            "beta_coeffs": list(fit.beta), "total_kv_blocks": int(kv_blocks)}


def _read_defaults_file(path: str) -> dict:
    """The existing ``--save-defaults`` file (empty mapping if absent); InputError if unusable."""
    if not os.path.exists(path):
        return {}
    text = read_text(path, "--save-defaults")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"--save-defaults: cannot read {path!r}: {one_line(exc)}") from None
    doc = {} if doc is None else doc
    if not isinstance(doc, dict) or not isinstance(doc.get("models", []), list) \
            or not isinstance(doc.get("defaults", {}), dict):
        raise InputError(f"--save-defaults: {path!r} exists but is not a defaults.yaml mapping "
                         "(models: list, defaults: mapping)")
    return doc


def merge_defaults(doc: dict, entry: dict) -> dict:
    """``doc`` with ``entry`` replacing the ``models`` row of the same id/GPU/TP/vLLM version
    (appended if none), and a ``defaults`` row for the model if it has none."""
    key = ("id", "GPU", "tensor_parallelism", "vllm_version")
    models = [r for r in doc.get("models") or []
              if not (isinstance(r, dict) and all(r.get(k) == entry[k] for k in key))]
    defaults = dict(doc.get("defaults") or {})
    defaults.setdefault(entry["id"], {k: entry[k] for k in key[1:]})
    return {**doc, "defaults": defaults, "models": [*models, entry]}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _coeffs_doc(alpha, beta) -> dict:
    """``{"alpha_coeffs": [...], "beta_coeffs": [...]}``."""
    return {"alpha_coeffs": [float(x) for x in alpha], "beta_coeffs": [float(x) for x in beta]}


def results_document(obs: Observed, cluster: dict, given, comparison: dict | None,
                     fit: FitResult | None, after: dict | None) -> dict:
    """The ``--results-path`` JSON (see the README paragraph; times in ms, coefficients µs)."""
    none = {m: None for m in METRICS}
    doc = {
        "trace": {"path": obs.path, "mode": obs.mode, "rows": obs.total},
        "requests": int(obs.compare.sum()),
        "excluded": int(obs.total - obs.compare.sum()),
        "excluded_by_reason": dict(obs.excluded),
        "cluster": cluster,
        "coefficients": None if given is None else _coeffs_doc(given.alpha, given.beta),
        "samples": (comparison or {}).get("samples", none),
        "mape": (comparison or {}).get("mape", none),
        "pearson": (comparison or {}).get("pearson", none),
        "percentiles": (comparison or {}).get("percentiles", none),
    }
    if fit is not None:
        doc["fitted"] = {**_coeffs_doc(fit.alpha, fit.beta), "model": fit.model,
                         "identifiable": fit.identifiable, "conventions": list(fit.conventions),
                         "clamped_at_zero": list(fit.clamped), "residuals": fit.residuals,
                         "service_order": fit.service_order,
                         "samples_after_fit": after["samples"], "mape_after_fit": after["mape"],
                         "pearson_after_fit": after["pearson"],
                         "percentiles_after_fit": after["percentiles"]}
    return doc


def _num(x, fmt: str) -> str:
    """``x`` formatted, ``-`` for None."""
    return "-" if x is None else format(x, fmt)


def comparison_table(comp: dict) -> list[str]:
    """Lines of the per-metric table: samples, MAPE, Pearson r, p50/p90/p99 real/sim (ms)."""
    head = f"{'metric':<6} {'n':>6} {'MAPE%':>8} {'r':>7}" + "".join(
        f" {f'p{p} real':>10} {f'p{p} sim':>10} {'err%':>7}" for p in PERCENTILES)
    lines = [head]
    for m in METRICS:
        pc = comp["percentiles"][m]
        cells = "".join(f" {_num(pc[f'p{p}']['real_ms'], '.3f'):>10}"
                        f" {_num(pc[f'p{p}']['sim_ms'], '.3f'):>10}"
                        f" {_num(pc[f'p{p}']['error_pct'], '+.1f'):>7}" for p in PERCENTILES)
        lines.append(f"{m:<6} {comp['samples'][m]:>6} {_num(comp['mape'][m], '.2f'):>8} "
                     f"{_num(comp['pearson'][m], '.4f'):>7}{cells}")
    return lines


def _fmt_coeffs(alpha, beta) -> str:
    """``alpha [..] beta [..]`` with 6 significant digits."""
    return ("alpha [" + ", ".join(f"{x:.6g}" for x in alpha) + "] beta ["
            + ", ".join(f"{x:.6g}" for x in beta) + "]")


def report_text(doc: dict, given, fit: FitResult | None, after: dict | None) -> str:
    """The stdout report of a calibration (ms in the tables, coefficients in µs)."""
    reasons = ", ".join(f"{k} {v}" for k, v in doc["excluded_by_reason"].items() if v)
    c = doc["cluster"]
    lines = [f"calibrate: trace {doc['trace']['path']} (mode {doc['trace']['mode'] or '?'}): "
             f"{doc['requests']} requests compared, {doc['excluded']} excluded"
             + (f" ({reasons})" if reasons else ""),
             f"replay: {c['num_instances']} instance(s), max-num-running-reqs "
             f"{c['max_num_running_reqs']}, max-num-scheduled-tokens "
             f"{c['max_num_scheduled_tokens']}, total-kv-blocks {c['total_kv_blocks']}"]
    if given is not None:
        lines += ["", "given coefficients (us): " + _fmt_coeffs(given.alpha, given.beta)]
        lines += comparison_table(doc)
    if fit is not None:
        lines += [""] + fit_lines(fit) + ["after fit:"] + comparison_table(after)
    return "\n".join(lines) + "\n"


def fit_lines(fit: FitResult) -> list[str]:
    """Report lines of a fit: coefficients, requests per stage, identified combinations and
    the convention applied."""
    used = ", ".join(f"{k} {v['requests']}" for k, v in fit.residuals.items())
    named = [f"{k} = {v['value']:.6g}" for k, v in fit.identifiable.items() if v["identified"]]
    note = (f"; held at 0 by non-negativity: {', '.join(fit.clamped)}" if fit.clamped else "")
    return [f"fitted coefficients (us, {fit.model} model; requests per stage: {used}): "
            + _fmt_coeffs(fit.alpha, fit.beta),
            "identified: " + (", ".join(named) or "nothing"),
            "convention: " + (", ".join(fit.conventions) or "none") + note]


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Coefficients:
    """α and β (µs), three each."""

    alpha: tuple[float, float, float]
    beta: tuple[float, float, float]


def build_parser(prog: str = "blis calibrate") -> argparse.ArgumentParser:
    """The ``blis calibrate`` argument parser (errors raise InputError instead of exiting)."""
    p = InputErrorParser(prog=prog, allow_abbrev=False,
                         description="Compare an observed trace v2 with the simulator's replay "
                                     "of it; --fit estimates alpha/beta from it.")
    a = p.add_argument
    a("--trace", required=True, metavar="DIR", help="observed trace v2 (directory or header.yaml)")
    a("--results-path", required=True, metavar="FILE", help="JSON results (written atomically)")
    a("--fit", action="store_true", help="fit alpha/beta by least squares and re-simulate")
    a("--alpha-coeffs", metavar="A0,A1,A2", help="queueing/post-processing coefficients (us)")
    a("--beta-coeffs", metavar="B0,B1,B2", help="step-time coefficients (us)")
    a("--model", default="", help="LLM name: defaults.yaml lookup, and the --save-defaults id")
    a("--hardware", default="", help="GPU type (defaults.yaml lookup / --save-defaults GPU)")
    a("--tp", type=int, default=0, help="tensor parallelism (0: from defaults.yaml / the header)")
    a("--vllm-version", default="", help="vLLM version (defaults.yaml lookup / --save-defaults)")
    a("--defaults-filepath", default="", metavar="FILE",
      help="defaults YAML for --model lookups (default: the shipped copy)")
    a("--max-num-running-reqs", type=int, default=None, metavar="N",
      help="max running batch (default: the header's server.max_num_seqs, else 1)")
    a("--max-num-scheduled-tokens", type=int, default=DEFAULT_MAX_SCHEDULED_TOKENS, metavar="N",
      help=f"token budget per step (default {DEFAULT_MAX_SCHEDULED_TOKENS})")
    a("--total-kv-blocks", type=int, default=None, metavar="N",
      help=f"KV blocks per instance (default: the defaults.yaml row, else {DEFAULT_KV_BLOCKS})")
    a("--num-instances", type=int, default=1, metavar="N", help="instances (default 1)")
    a("--seed", type=int, default=DEFAULT_SEED,
      help=f"seed of synthetic token ids when the trace has no tokens.npz (default {DEFAULT_SEED})")
    a("--save-defaults", default="", metavar="FILE",
      help="with --fit: add the fitted coefficients as a defaults.yaml models: row to FILE")
    return p


def parse_coeffs(text: str, flag: str) -> tuple[float, float, float]:
    """Three finite comma-separated numbers; InputError naming ``flag`` otherwise."""
    parts = text.split(",")
    try:
        vals = tuple(parse_go_float(x.strip()) for x in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise InputError(f"{flag} must be 3 finite comma-separated numbers (us), e.g. "
                         f"1500,2,300; got {text!r}")
    return vals


def _check_ints(args) -> None:
    """Range checks of the integer flags."""
    for flag, value, lo in (("--tp", args.tp, 0), ("--max-num-scheduled-tokens",
                            args.max_num_scheduled_tokens, 1), ("--num-instances",
                            args.num_instances, 1), ("--max-num-running-reqs",
                            args.max_num_running_reqs, 1), ("--total-kv-blocks",
                            args.total_kv_blocks, 1)):
        if value is not None and value < lo:
            raise InputError(f"{flag} must be >= {lo}, got {value}")


def given_latency(args):
    """(Coefficients or None, KV blocks from defaults.yaml or None, note or ""): explicit
    --alpha-coeffs/--beta-coeffs, else the --model lookup, else None (only with --fit).  With
    --fit a model without a defaults.yaml row is no error (the fit is what is wanted; --model
    names the --save-defaults row): the note says only the fit is compared."""
    if (args.alpha_coeffs is None) != (args.beta_coeffs is None):
        raise InputError("--alpha-coeffs and --beta-coeffs must be given together")
    if args.alpha_coeffs is not None:
        beta = parse_coeffs(args.beta_coeffs, "--beta-coeffs")
        alpha = parse_coeffs(args.alpha_coeffs, "--alpha-coeffs")
        if not any(beta):
            raise InputError("--beta-coeffs are all zero, so every step would take 0 us; give "
                             "at least one non-zero step coefficient")
        return Coefficients(alpha, beta), None, ""
    if args.model:
        try:
            res = resolve_latency(model=args.model, hardware=args.hardware, tp=args.tp,
                                  vllm_version=args.vllm_version, latency_model="blackbox",
                                  defaults_path=args.defaults_filepath or None)
        except InputError as exc:
            if not args.fit:
                raise
            load_defaults(args.defaults_filepath or None)  # an unreadable file stays an error
            return None, None, f"note: {one_line(exc)}; comparing the fit only"
        return (Coefficients(tuple(res.config.alpha[:3]), tuple(res.config.beta[:3])),
                res.total_kv_blocks, "")
    if not args.fit:
        raise InputError("give --alpha-coeffs and --beta-coeffs, or --model (defaults.yaml "
                         "lookup with --hardware/--tp), or --fit")
    return None, None, ""


def _header_int(obs: Observed, key: str) -> int | None:
    """``server.<key>`` of the trace header when it is a positive integer."""
    v = (obs.header.get("server") or {}).get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def cluster_settings(args, obs: Observed, kv_from_defaults: int | None) -> dict:
    """The replay's cluster: flags, else the header's server block, else defaults."""
    max_running = args.max_num_running_reqs or _header_int(obs, "max_num_seqs") or 1
    kv = args.total_kv_blocks or kv_from_defaults or DEFAULT_KV_BLOCKS
    return {"num_instances": int(args.num_instances), "max_num_running_reqs": int(max_running),
            "max_num_scheduled_tokens": int(args.max_num_scheduled_tokens),
            "total_kv_blocks": int(kv), "block_size": _header_int(obs, "block_size") or 16}


def _replay_with(obs: Observed, cluster: dict, coeffs) -> RequestMetrics:
    """Simulated metrics of ``obs`` under ``coeffs`` on ``cluster``."""
    lat = LatencyConfig(kind="blackbox", alpha=tuple(coeffs.alpha), beta=tuple(coeffs.beta))
    return replay(obs, sim_config(lat, num_instances=cluster["num_instances"],
                                  max_running=cluster["max_num_running_reqs"],
                                  max_scheduled=cluster["max_num_scheduled_tokens"],
                                  kv_blocks=cluster["total_kv_blocks"],
                                  block_size=cluster["block_size"]))


def _save_identity(args, obs: Observed) -> tuple[str, str, int]:
    """(model id, GPU, TP) of the --save-defaults row: flags, else the trace header."""
    server = obs.header.get("server") or {}
    model = args.model or server.get("model") or ""
    if not model:
        raise InputError("--save-defaults needs --model (or server.model in the trace header) "
                         "for the row's id")
    if not args.hardware:
        raise InputError("--save-defaults needs --hardware for the row's GPU (e.g. H100)")
    return str(model), args.hardware, args.tp or _header_int(obs, "tensor_parallel") or 1


def run(args, out=None) -> int:
    """Execute a parsed ``blis calibrate``: validate everything, replay, fit, report, write."""
    out = sys.stdout if out is None else out
    _check_ints(args)
    if args.save_defaults and not args.fit:
        raise InputError("--save-defaults needs --fit (it saves the fitted coefficients)")
    given, kv_default, note = given_latency(args)
    check_output_file(args.results_path, "--results-path")
    if args.save_defaults:
        check_output_file(args.save_defaults, "--save-defaults")
        existing = _read_defaults_file(args.save_defaults)
    obs = load_observed(args.trace, seed=args.seed)
    identity = _save_identity(args, obs) if args.save_defaults else None
    cluster = cluster_settings(args, obs, kv_default)
    real = real_metrics(obs)
    comp = compare(real, _replay_with(obs, cluster, given), obs.compare) if given else None
    fit = after = None
    if args.fit:
        serial = cluster["max_num_running_reqs"] == 1 and cluster["num_instances"] == 1
        fit = fit_step_model(obs, serial=serial, max_scheduled=cluster["max_num_scheduled_tokens"])
        after = compare(real, _replay_with(obs, cluster, fit), obs.compare)
    doc = results_document(obs, cluster, given, comp, fit, after)
    # everything is rendered before anything is written; the report is printed last
    results_text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    defaults_text = None
    if args.save_defaults:
        entry = defaults_entry(*identity, args.vllm_version, fit, cluster["total_kv_blocks"])
        defaults_text = yaml.safe_dump(merge_defaults(existing, entry), sort_keys=False)
    report = report_text(doc, given, fit, after)
    atomic_write(args.results_path, results_text)
    if defaults_text is not None:
        atomic_write(args.save_defaults, defaults_text)
    if note:
        print(f"{note}", file=sys.stderr)
    out.write(report)
    out.flush()
    return EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str = "blis") -> int:
    """Run ``blis calibrate`` with ``argv`` (the flags after ``calibrate``); return the exit
    status: 0, 2 on bad input (``<prog>: error: <one line>`` on stderr, nothing written), 130
    on Ctrl-C, argparse's status for ``--help``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    return run_subcommand(prog, lambda: build_parser(f"{prog} calibrate").parse_args(args_list), run)


if __name__ == "__main__":
    raise SystemExit(main())
