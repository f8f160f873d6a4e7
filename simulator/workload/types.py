"""The request table every workload source produces (struct of arrays, tokens as CSR)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    """Requests sorted by arrival, ids ``request_<i>`` by position.

    Attributes
    ----------
    arrival_us : int64 array (n,)
        Arrival time in microseconds (non-decreasing).
    n_in, n_out : int64 arrays (n,)
        Input (prompt) and output token counts.
    token_ptr : int64 array (n + 1,)
        Request ``i``'s tokens are ``tokens[token_ptr[i]:token_ptr[i+1]]``: its ``n_in`` input ids
        followed by its ``n_out`` output ids.
    tokens : int32 array
        All token ids, concatenated.
    slo_class, tenant : int32 arrays (n,) or None
        Codes into ``slo_names`` / ``tenant_names`` ("" is a valid name).
    """

    arrival_us: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    token_ptr: np.ndarray
    tokens: np.ndarray
    slo_class: np.ndarray | None = None
    tenant: np.ndarray | None = None
    slo_names: tuple[str, ...] = ("",)
    tenant_names: tuple[str, ...] = ("",)

    @property
    def num_requests(self) -> int:
        """Number of requests in the table."""
        return int(self.arrival_us.shape[0])


def workload_from_lists(arrivals_us, inputs, outputs) -> Workload:
    """Build a Workload from Python sequences of arrival times and token-id lists."""
    n = len(arrivals_us)
    n_in = np.fromiter((len(x) for x in inputs), dtype=np.int64, count=n)
    n_out = np.fromiter((len(x) for x in outputs), dtype=np.int64, count=n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_in + n_out, out=ptr[1:])
    tokens = np.empty(int(ptr[-1]), dtype=np.int32)
    for i in range(n):
        a = ptr[i]
        tokens[a:a + n_in[i]] = inputs[i]
        tokens[a + n_in[i]:ptr[i + 1]] = outputs[i]
    return Workload(np.asarray(arrivals_us, dtype=np.int64), n_in, n_out, ptr, tokens)
