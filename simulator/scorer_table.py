"""The weighted router's scorer table as the kernels take it: scorer codes in configured order
and weights normalised to sum to 1.  Built for the routing policy (engine) and for the decode
pool's ``decode_scorers`` under P/D disaggregation (disagg)."""
from __future__ import annotations

import numpy as np

from . import codes, registry
from .config import PolicyConfig


def scorer_table(policy: PolicyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Scorer codes in configured order and weights normalised to sum to 1 (left-to-right sum,
    as the reference adds them); empty arrays unless the routing policy is weighted."""
    if registry.code_of("routing", policy.routing) != codes.ROUTE_WEIGHTED:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    total = 0.0
    for s in policy.scorers:
        total += s.weight
    sc_codes = np.array([registry.code_of("scorer", s.name) for s in policy.scorers], dtype=np.int64)
    weights = np.array([s.weight / total for s in policy.scorers], dtype=np.float64)
    return sc_codes, weights
