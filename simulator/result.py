"""What one simulation run returns: per-request, per-instance and cluster arrays (no formatting)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class PdOutcome:
    """P/D part of a ``SimResult`` (None for a monolithic run).

    Per instance: ``inst_pool`` (1 prefill, 2 decode), ``inst_busy_us`` (sum of step times).
    Per request: ``req_prefill_instance`` / ``req_decode_instance`` (-1 when not chosen; a
    request not disaggregated has only a decode instance), ``req_phase`` (kernels/disagg.PD_*),
    ``prefill_done_us``, ``prefill_free_us`` (prefill instance released its blocks = transfer
    complete), ``decode_admit_us`` (decode instance allocated them), -1 when not reached.
    Cluster: requests disaggregated, transfers completed, blocks and bytes put on the link,
    summed transfer time (prefill end to arrival, µs), ``backpressure`` throttled requests,
    ``transfer_queue`` requests prefilled but not yet admitted at the end.
    """

    inst_pool: np.ndarray
    inst_busy_us: np.ndarray
    req_prefill_instance: np.ndarray
    req_decode_instance: np.ndarray
    req_phase: np.ndarray
    prefill_done_us: np.ndarray
    prefill_free_us: np.ndarray
    decode_admit_us: np.ndarray
    disaggregated: int
    transfers: int
    transfer_blocks: int
    transfer_bytes: float
    transfer_time_us: int
    backpressure: int
    transfer_queue: int


@dataclass(frozen=True)
class SimResult:
    """Raw outcome of ``simulator.run``.

    Per request (shape (n,)); times are int64 microseconds, -1 when the event did not happen:
      req_state (``REQ_*`` of simulator/kernels/request_states.py), req_instance (-1 if never routed), arrival_us, routed_us, queued_us,
      scheduled_us (first scheduling), first_token_us (sim time the first token was produced,
      without alpha2), done_us (end of the completing step), ttft_us / e2e_us / itl_us (float64,
      NaN when absent; the reference's metric definitions), sched_delay_us (int64, -1 absent),
      preemptions (int64).
    Per instance (shape (N,)): inst_* counters (see field names).
    ITL samples: ``itl_values_us`` (float64) with ``itl_counts`` (int64) and ``itl_instance``
      (int32): the multiset of per-token ITL entries of completed requests, run-length encoded.
    Control plane: ``admitted``/``rejected`` admission decisions (an admitted request may still be
      waiting for its routing decision at the horizon), ``route_target`` per routing decision in
      decision order (int32, traced runs only; under autoscaling drains a re-routed request has
      one decision per routing), ``route_regret`` (float64) when counterfactual_k > 0.
    ``code_nonfinite``: NaN/inf values returned by code policies (routing scores and
      priorities; each counted as the lowest value).
    """

    n_in: np.ndarray
    n_out: np.ndarray
    req_state: np.ndarray
    req_instance: np.ndarray
    arrival_us: np.ndarray
    routed_us: np.ndarray
    queued_us: np.ndarray
    scheduled_us: np.ndarray
    first_token_us: np.ndarray
    done_us: np.ndarray
    ttft_us: np.ndarray
    e2e_us: np.ndarray
    itl_us: np.ndarray
    sched_delay_us: np.ndarray
    preemptions: np.ndarray

    inst_completed: np.ndarray
    inst_still_queued: np.ndarray
    inst_still_running: np.ndarray
    inst_dropped: np.ndarray
    inst_input_tokens: np.ndarray
    inst_output_tokens: np.ndarray
    inst_sim_ended_us: np.ndarray
    inst_preemptions: np.ndarray
    inst_kv_alloc_failures: np.ndarray
    inst_cache_hit_rate: np.ndarray
    inst_kv_thrashing_rate: np.ndarray
    inst_peak_kv_blocks: np.ndarray
    inst_kv_block_us: np.ndarray
    inst_steps: np.ndarray
    inst_waitq_sum: np.ndarray

    itl_values_us: np.ndarray
    itl_counts: np.ndarray
    itl_instance: np.ndarray

    rejected: int
    admitted: int
    route_target: np.ndarray
    route_regret: np.ndarray
    trace_on: bool
    num_instances: int
    code_nonfinite: int = 0
    slo_class: np.ndarray | None = None
    slo_names: tuple = ("",)
    tenant: np.ndarray | None = None
    tenant_names: tuple = ("",)
    pd: PdOutcome | None = None   # P/D disaggregation outcome (simulator.disagg.pd_outcome), None if monolithic
    # SLO tiers and gateway flow control (kernels/gateway.py): per request its SLO priority,
    # gateway enqueue and dispatch times (-1 never); run counters (None without flow control
    # and tenant budgets): peak_depth, still_queued, shed, rejected, expired, evicted,
    # budget_shed
    slo_priority: np.ndarray | None = None
    gw_enqueued_us: np.ndarray | None = None
    gw_dispatched_us: np.ndarray | None = None
    gateway: dict | None = None
    autoscale: object | None = None   # simulator.autoscale.controller.AutoscaleOutcome when autoscaled
