"""Warmup penalty of a newly started instance (autoscaling).

While ``I_WARM_FROM <= now < I_WARM_END`` an instance's step times are multiplied by a factor
that starts at ``PF_WARM_PENALTY`` and decays to 1 by ``I_WARM_END`` along the configured profile
(linear, exponential with 5 time constants over the warmup, or a step that stays at the penalty
until the end).  Outside that window, or with the penalty at 1, step times are unchanged.
"""
import numpy as np
from numba import njit

from .layout import I_WARM_END, I_WARM_FROM, P_WARM_PROFILE, PF_WARM_PENALTY

# Warmup profiles (``P[P_WARM_PROFILE]``): step-time multiplier decaying from the penalty to 1
WARM_LINEAR = 0
WARM_EXPONENTIAL = 1
WARM_STEP = 2

EXP_RATE = 5.0   # exponential profile: penalty decays as exp(-EXP_RATE * fraction elapsed)


@njit(cache=True)
def warmup_factor(profile, penalty, frac):
    """Step-time multiplier after ``frac`` (in [0, 1)) of the warmup has elapsed."""
    if profile == WARM_LINEAR:
        return 1.0 + (penalty - 1.0) * (1.0 - frac)
    if profile == WARM_EXPONENTIAL:
        return 1.0 + (penalty - 1.0) * np.exp(-EXP_RATE * frac)
    return penalty


@njit(cache=True)
def warmup_step_time(st, i, now, dt):
    """Step time ``dt`` of instance i starting at ``now``, stretched if it is still warming."""
    I = st.I
    end = I[I_WARM_END, i]
    start = I[I_WARM_FROM, i]
    if now >= end or now < start or end <= start:
        return dt
    frac = np.float64(now - start) / np.float64(end - start)
    f = warmup_factor(st.P[P_WARM_PROFILE], st.PF[PF_WARM_PENALTY], frac)
    return np.int64(np.float64(dt) * f)
