"""The blackbox α/β step model as a single serial server's timeline, in closed form.

What the simulator computes for one instance that runs one request at a time
(``--max-num-running-reqs 1``, prompts within one step's token budget, no preemption), written
out per request so that a mock OpenAI-compatible server can *be* that model in real time and a
calibration can be checked against it:

* a request received at ``t`` joins the queue at ``t + α0 + α1·n_in`` (the per-request α delay
  overlaps other requests' service);
* the server takes queued requests first-come first-served; service starts at
  ``s = max(queued time, end of the previous request's last step)``;
* the prefill step takes ``β0 + β1·n_in``; the first token is emitted ``α2`` after it ends;
* each of the ``n_out − 1`` decode steps takes ``β0 + β2``; token ``k`` (1-based) is emitted at
  ``first + k·(β0 + β2 + α2)`` (the simulator adds α2 to every inter-token latency, so emission
  drifts by α2 per token while the server's steps do not);
* the server's steps end at ``E = s + β0 + β1·n_in + (n_out − 1)(β0 + β2)``, but the engine
  (like the reference) completes a request when its *last step starts*, at
  ``L = s`` (one output token) or ``L = s + β0 + β1·n_in + (n_out − 2)(β0 + β2)``: a request that
  was already waiting at ``L`` starts at ``E``, while one that joins the queue after ``L`` finds
  the instance idle and starts at once, overlapping the last step.

All times in µs.  Requests with ``n_out == 0`` are treated as ``n_out == 1`` (a completion always
returns at least one token), as the simulator does.  Two conditions for the equality with the
simulator: distinct queue-join and release times (the simulator breaks equal-time ties in its
event-heap order) and prompts that share no full KV block (a prefix-cache hit shortens the
prefill step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class StepModel:
    """α = (α0, α1, α2) and β = (β0, β1, β2), µs (the ``--alpha-coeffs`` / ``--beta-coeffs``)."""

    alpha: tuple[float, float, float]
    beta: tuple[float, float, float]

    def queue_delay(self, n_in: int) -> float:
        """α0 + α1·n_in: time from receipt to joining the queue."""
        return self.alpha[0] + self.alpha[1] * n_in

    def prefill_step(self, n_in: int) -> float:
        """β0 + β1·n_in: the prefill step of a lone request."""
        return self.beta[0] + self.beta[1] * n_in

    def decode_step(self) -> float:
        """β0 + β2: one decode step of a lone request."""
        return self.beta[0] + self.beta[2]

    def token_gap(self) -> float:
        """β0 + β2 + α2: spacing of emitted tokens after the first."""
        return self.decode_step() + self.alpha[2]


@dataclass(frozen=True)
class Timeline:
    """Per-request times (µs, float64 arrays aligned with the input order): ``start`` of
    service, ``first`` token emission, ``last`` token emission, ``released`` (the start of the
    last step, when the engine frees the instance) and ``done`` (the end of the last step)."""

    start: np.ndarray
    first: np.ndarray
    last: np.ndarray
    released: np.ndarray
    done: np.ndarray


def serial_timeline(model: StepModel, arrival_us: Sequence[float], n_in: Sequence[int],
                    n_out: Sequence[int]) -> Timeline:
    """Closed-form timeline of a serial FIFO server following ``model`` (see module docstring).

    Requests are served in order of their queue-join time (ties: input order), which is what
    the simulator does for one instance with one running request at a time.
    """
    arr = np.asarray(arrival_us, dtype=np.float64)
    nin = np.asarray(n_in, dtype=np.int64)
    nout = np.maximum(np.asarray(n_out, dtype=np.int64), 1)
    n = arr.size
    queued = arr + model.alpha[0] + model.alpha[1] * nin
    order = np.lexsort((np.arange(n), queued))
    start = np.empty(n)
    first = np.empty(n)
    last = np.empty(n)
    released = np.empty(n)
    done = np.empty(n)
    prev_released, prev_done = -np.inf, -np.inf
    for r in order:
        s = queued[r] if queued[r] > prev_released else prev_done
        prefill = model.prefill_step(int(nin[r]))
        m = int(nout[r])
        start[r] = s
        first[r] = s + prefill + model.alpha[2]
        last[r] = first[r] + (m - 1) * model.token_gap()
        released[r] = s if m == 1 else s + prefill + (m - 2) * model.decode_step()
        done[r] = s + prefill + (m - 1) * model.decode_step()
        prev_released, prev_done = released[r], done[r]
    return Timeline(start, first, last, released, done)
