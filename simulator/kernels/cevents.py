"""Cluster event kinds and their scheduling.

Cluster events are ordered by (time, kind, sequence): at equal times a lower kind runs first, so
every kind is numbered here, in one table, rather than in the module that handles it.
"""
import numpy as np
from numba import njit

from .goheap import ckey_push
from .layout import CE_PRIO, CE_REQ, CE_SEQ, CE_TIME, CL_CSIZE, CL_SEQ

CE_ARRIVAL = np.int64(0)     # a request reaches the cluster
CE_ADMISSION = np.int64(1)   # the admission policy decides
CE_ROUTING = np.int64(2)     # the router picks an instance
CE_XF_READY = np.int64(3)    # P/D: a transfer unit is ready for the link (kernels/disagg.py)
CE_XF_DONE = np.int64(4)     # P/D: a request's last KV block arrived at its decode instance
CE_LIFECYCLE = np.int64(5)   # autoscaling: an instance's next lifecycle transition (kernels/autoscale.py)
CE_FIRST_TOKEN = np.int64(6)  # autoscaling SLO trigger: a request's first token (kernels/autoscale.py)


@njit(cache=True, inline="always")
def cpush(CE, CL, t, kind, r):
    """Schedule cluster event (t, kind, r); ``kind`` doubles as the tie-break priority."""
    CL[CL_CSIZE] = ckey_push(CE[CE_TIME], CE[CE_PRIO], CE[CE_SEQ], CE[CE_REQ], CL[CL_CSIZE],
                             t, kind, CL[CL_SEQ], r)
    CL[CL_SEQ] += 1
