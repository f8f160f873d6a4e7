"""Cluster event kinds and their scheduling.

Cluster events are ordered by (time, kind, sequence): at equal times a lower kind runs first, so
every kind is numbered here, in one table, rather than in the module that handles it.  The queue
is allocated once (engine.build_state proves its bound); a push beyond it raises rather than
writing past the arrays.
"""
import numpy as np
from numba import njit

from .goheap import ckey_push, ckey_remove
from .layout import CE_PRIO, CE_REQ, CE_SEQ, CE_TIME, CL_CSIZE, CL_SEQ

CE_ARRIVAL = np.int64(0)     # a request reaches the cluster
CE_ADMISSION = np.int64(1)   # the admission policy decides
CE_ROUTING = np.int64(2)     # the router picks an instance
CE_XF_READY = np.int64(3)    # P/D: a transfer unit is ready for the link (kernels/disagg.py)
CE_XF_DONE = np.int64(4)     # P/D: a request's last KV block arrived at its decode instance
CE_LIFECYCLE = np.int64(5)   # autoscaling: an instance's next lifecycle transition (kernels/autoscale.py)
CE_FIRST_TOKEN = np.int64(6)  # autoscaling SLO trigger: a request's first token (kernels/autoscale.py)
CE_GW_TTL = np.int64(7)      # flow control: a request's wait in the gateway queue ran out (kernels/gateway.py)
CE_GW_TICK = np.int64(8)     # flow control: periodic dispatch attempt (kernels/gateway.py)


@njit(cache=True, inline="always")
def cpush_seq(CE, CL, t, kind, seq, r):
    """Schedule cluster event (t, kind, r) with tie-break sequence number ``seq`` (one reserved
    earlier from ``CL_SEQ``); raises if the queue is full."""
    if CL[CL_CSIZE] >= CE.shape[1]:
        raise RuntimeError("cluster event queue overflow (engine.build_state sizes it)")
    CL[CL_CSIZE] = ckey_push(CE[CE_TIME], CE[CE_PRIO], CE[CE_SEQ], CE[CE_REQ], CL[CL_CSIZE],
                             t, kind, seq, r)


@njit(cache=True, inline="always")
def cpush(CE, CL, t, kind, r):
    """Schedule cluster event (t, kind, r); ``kind`` doubles as the tie-break priority."""
    cpush_seq(CE, CL, t, kind, CL[CL_SEQ], r)
    CL[CL_SEQ] += 1


@njit(cache=True)
def cremove(CE, CL, kind, r):
    """Delete the pending cluster event (kind, r) if there is one (a linear scan: for rare
    cancellations only).  Returns True if one was deleted."""
    for j in range(CL[CL_CSIZE]):
        if CE[CE_PRIO, j] == kind and CE[CE_REQ, j] == r:
            CL[CL_CSIZE] = ckey_remove(CE[CE_TIME], CE[CE_PRIO], CE[CE_SEQ], CE[CE_REQ],
                                       CL[CL_CSIZE], j)
            return True
    return False
