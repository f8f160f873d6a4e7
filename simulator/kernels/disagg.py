"""Prefill/decode disaggregation: the request's phases, the KV transfer link, ownership handover.

A disaggregated request (``R[R_PD, r] != PD_NONE``) moves through

    PD_PREFILL  routed to a prefill instance; runs its prefill there (no token is emitted);
    PD_XFER     prefill done: its prompt KV blocks travel to the decode instance over the shared
                link; the prefill instance still owns (and holds) the blocks;
    PD_AWAIT    every block arrived: the prefill instance released its blocks (handover) and the
                request waits in the decode instance's queue with its progress index at
                ``n_in - 1``;
    PD_DECODE   the decode instance admitted it: it allocated the prompt's blocks (the arrived
                KV) and recomputes only the last prompt token, which emits the first token —
                vLLM's rule when the whole prompt is an external cache hit — so TTFT includes
                prefill, transfer, decode queueing and that first decode-side step.

Single ownership: between PD_XFER and PD_AWAIT the blocks live on the prefill instance only; the
decode instance allocates them no earlier than the handover (``R_PF_FREE <= R_DC_ADMIT``), and a
request's block list always belongs to ``R_INST`` alone.

The link: one shared link for the cluster, first come first served.  A transfer unit (the whole
request, or one block with per-block granularity) occupies it for ceil(bytes / bandwidth) µs and
arrives ``P_PD_XF_BASE`` µs after leaving it.  Units join the link when their blocks are ready:
at prefill end, or — with pipelining — as each prefill chunk's full blocks complete, so transfer
overlaps the remaining prefill.  Ready events are cluster events at the step's end time, so the
link serves units in ready-time order.

Backpressure: ``CL_XF_Q`` counts requests prefilled but not yet admitted by their decode
instance (on the link, in flight, or queued at the decode instance).  While it is at or above
``P_PD_BP_THRESH`` new disaggregated requests wait for prefill routing (retried every
``P_PD_BP_RETRY`` µs); each throttled request counts one ``pd_backpressure``.
"""
import numpy as np
from numba import njit

from .cevents import CE_XF_DONE, CE_XF_READY, cpush
from .kvcache import release
from .layout import (I_PENDING, CL_XF_BLOCKS,
                     CL_XF_LINK_FREE, CL_XF_N, CL_XF_Q, CL_XF_TIME, P_BLOCK, P_PD_GRAN,
                     P_PD_PIPELINE, P_PD_XF_BASE, PF_PD_BLOCK_BYTES, PF_PD_BW, R_DC_ADMIT,
                     R_INST, R_N_IN, R_PD, R_PD_DECODE, R_PF_DONE, R_PF_FREE, R_PI, R_XF_ARRIVE,
                     R_XF_SENT)

PD_NONE = 0
PD_PREFILL = 1
PD_XFER = 2
PD_AWAIT = 3
PD_DECODE = 4
PD_HELD = 5      # throttled by backpressure, waiting for prefill routing

POOL_MONOLITHIC = 0
POOL_PREFILL = 1
POOL_DECODE = 2



@njit(cache=True)
def prefill_progress(st, r, end):
    """Hook at the end of a prefill-instance step for a PD_PREFILL request: queue its newly ready
    blocks for transfer (at prefill end, or per chunk when pipelining).  Returns True when its
    prefill is complete and it leaves the prefill batch (keeping its blocks until transferred)."""
    R = st.R
    if R[R_PI, r] >= R[R_N_IN, r]:
        R[R_PD, r] = PD_XFER
        R[R_PF_DONE, r] = end
        st.CL[CL_XF_Q] += 1
        cpush(st.CE, st.CL, end, CE_XF_READY, r)
        return True
    if st.P[P_PD_PIPELINE] != 0 and R[R_PI, r] // st.P[P_BLOCK] > R[R_XF_SENT, r]:
        cpush(st.CE, st.CL, end, CE_XF_READY, r)
    return False


@njit(cache=True)
def transfer_ready(st, t, r):
    """CE_XF_READY: put r's ready-but-unsent blocks on the link (FIFO); once its prefill is done
    and every block is on the link, schedule the handover at the last block's arrival."""
    R, CL, P, PF = st.R, st.CL, st.P, st.PF
    B = P[P_BLOCK]
    total = (R[R_N_IN, r] + B - 1) // B
    ready = total if R[R_PD, r] == PD_XFER else min(R[R_PI, r] // B, total)
    k = ready - R[R_XF_SENT, r]
    if k > 0:
        units = k if P[P_PD_GRAN] != 0 else 1
        per_unit = PF[PF_PD_BLOCK_BYTES] * np.float64(k // units)
        occupy = np.int64(np.ceil(per_unit / PF[PF_PD_BW]))
        free = max(t, CL[CL_XF_LINK_FREE]) + units * occupy
        CL[CL_XF_LINK_FREE] = free
        R[R_XF_ARRIVE, r] = free + P[P_PD_XF_BASE]
        R[R_XF_SENT, r] = ready
        CL[CL_XF_BLOCKS] += k
    if R[R_PD, r] == PD_XFER:
        cpush(st.CE, CL, max(t, R[R_XF_ARRIVE, r]), CE_XF_DONE, r)


@njit(cache=True)
def transfer_handover(st, t, r):
    """CE_XF_DONE: every block arrived.  The prefill instance releases them, the request moves to
    its decode instance (returned; the caller queues it there) waiting to recompute only the
    last prompt token."""
    R, CL = st.R, st.CL
    release(st, r)                       # R_INST is still the prefill instance
    R[R_PF_FREE, r] = t
    CL[CL_XF_N] += 1
    CL[CL_XF_TIME] += t - R[R_PF_DONE, r]
    d = R[R_PD_DECODE, r]
    R[R_INST, r] = d
    R[R_PI, r] = R[R_N_IN, r] - 1
    R[R_PD, r] = PD_AWAIT
    return d


@njit(cache=True, inline="always")
def decode_admit_span(st, r, n_cached):
    """Cached prefix blocks to commit when the decode instance admits a PD_AWAIT request: at
    most all but the block holding the last prompt token, which is recomputed."""
    return min(n_cached, (st.R[R_N_IN, r] - 1) // st.P[P_BLOCK])


@njit(cache=True, inline="always")
def decode_admitted(st, r, now):
    """The decode instance allocated the arrived KV and scheduled the last prompt token."""
    st.R[R_PD, r] = PD_DECODE
    st.R[R_DC_ADMIT, r] = now
    st.CL[CL_XF_Q] -= 1


@njit(cache=True)
def awaiting_dropped(st, r):
    """Undo what a dropped disaggregated request still holds: a PD_AWAIT one (the decode
    instance can never fit it) leaves the transfer queue; a PD_PREFILL one (dropped on its prefill
    instance) no longer counts as pending at its decode instance."""
    R = st.R
    if R[R_PD, r] == PD_AWAIT:
        st.CL[CL_XF_Q] -= 1
    elif R[R_PD, r] == PD_PREFILL:
        st.I[I_PENDING, R[R_PD_DECODE, r]] -= 1
