"""Load profiles: the time warp's grid stays as long as the warp needs, and the warp matches the
closed-form inverse of Λ for piecewise-constant profiles.

Before, the grid ran to s_max / min m even when the dip was short: a diurnal profile with
amplitude 0.99 over an hour took 3.6e7 points per array, a 0.001 step 3.6e8."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.workload.load_profile import _GRID_S, LoadProfile
from tests.simulator.test_properties import SETTINGS

HOUR = 3600.0
HOUR_POINTS = HOUR / _GRID_S


@pytest.mark.parametrize("profile", [
    LoadProfile("diurnal", amplitude=0.99, period_s=HOUR),
    LoadProfile("step", factor=0.001, start_s=60.0, end_s=120.0),
    LoadProfile("spike", factor=0.001, start_s=600.0, end_s=610.0),
    LoadProfile("step", factor=0.001, start_s=3000.0),
    LoadProfile("ramp", factor=0.001, start_s=3000.0, end_s=3001.0),
])
def test_extreme_profiles_warp_an_hour_on_a_small_grid(profile):
    horizon_s = HOUR
    op_h = profile.operational_us(int(horizon_s * 1e6))
    # the warp back of the operational horizon needs a grid of about the real horizon
    t, lam = profile._grid(op_h / 1e6)
    assert t.size == lam.size
    assert t.size < 3 * HOUR_POINTS
    assert lam[-1] >= op_h / 1e6
    t_op, _ = profile._grid(0.0, t_min=horizon_s)
    assert t_op.size < HOUR_POINTS + 10
    real = profile.to_real_us(np.array([0, op_h // 2, op_h], dtype=np.int64))
    assert real[-1] == pytest.approx(horizon_s * 1e6, abs=2 * _GRID_S * 1e6 / 0.001)


def _exact_inverse(f, a, b, s):
    """Λ⁻¹(s) for m = f on [a, b), 1 elsewhere (Λ is piecewise linear)."""
    if s <= a:
        return s
    if s <= a + f * (b - a):
        return a + (s - a) / f
    return s + (b - a) * (1.0 - f)


@settings(SETTINGS, max_examples=60)
@given(f=st.sampled_from([0.01, 0.2, 0.5, 2.0, 7.0]), a=st.floats(0.0, 30.0),
       width=st.floats(0.05, 30.0), spike=st.booleans(),
       ops=st.lists(st.floats(0.0, 120.0), min_size=1, max_size=20))
def test_step_warp_matches_the_exact_inverse(f, a, width, spike, ops):
    p = LoadProfile("spike" if spike else "step", factor=f, start_s=a, end_s=a + width)
    op_us = np.sort(np.array([int(x * 1e6) for x in ops], dtype=np.int64))
    got = p.to_real_us(op_us)
    want = np.array([_exact_inverse(f, a, a + width, x / 1e6) * 1e6 for x in op_us])
    # the numerical Λ differs from the exact one only in the two grid cells holding the edges
    # of [a, a + width), by at most one cell's |1 - f|; Λ⁻¹ has slope at most 1 / min(f, 1)
    tol = 2 * _GRID_S * abs(1.0 - f) / min(f, 1.0) * 1e6 + 2
    assert np.abs(got - want).max() <= tol
