"""Fixed-capacity open-addressing hash map int64 -> non-negative int64 in one array (linear
probing, backward-shift deletion, so no tombstones).  Several times faster than numba's typed Dict
for the KV prefix map and the router's prefix index, and part of the plain-array kernel state.

Layout: ``T[s, 0]`` key and ``T[s, 1]`` value of slot ``s`` (adjacent, one cache line per probe);
a slot is empty when its value is -1.  The slot count is a power of two, at least twice the most
entries ever held.
"""
import numpy as np
from numba import njit

MISSING = np.int64(-1)


def table_capacity(max_entries: int) -> int:
    """Power-of-two slot count keeping the load factor at or below one half."""
    cap = 16
    while cap < 2 * max_entries:
        cap *= 2
    return cap


def new_table(max_entries: int) -> np.ndarray:
    """An empty table able to hold ``max_entries`` entries."""
    T = np.zeros((table_capacity(max_entries), 2), dtype=np.int64)
    T[:, 1] = -1
    return T


def table_entries(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys and values of the occupied slots (for tests and debugging)."""
    used = T[:, 1] >= 0
    return T[used, 0], T[used, 1]


@njit(cache=True, inline="always")
def _slot(k, mask):
    return (k ^ ((k >> 31) & 0x1FFFFFFFF)) & mask


@njit(cache=True)
def ht_get(T, k):
    """Value stored for key k, or -1."""
    mask = T.shape[0] - 1
    s = _slot(k, mask)
    while T[s, 1] >= 0:
        if T[s, 0] == k:
            return T[s, 1]
        s = (s + 1) & mask
    return MISSING


@njit(cache=True)
def ht_put(T, k, v):
    """Insert or overwrite key k with value v >= 0; returns 1 if a new entry was created."""
    mask = T.shape[0] - 1
    s = _slot(k, mask)
    while T[s, 1] >= 0:
        if T[s, 0] == k:
            T[s, 1] = v
            return 0
        s = (s + 1) & mask
    T[s, 0] = k
    T[s, 1] = v
    return 1


@njit(cache=True)
def ht_del(T, k):
    """Delete key k if present (backward-shift); returns 1 if an entry was removed, else 0."""
    mask = T.shape[0] - 1
    s = _slot(k, mask)
    while T[s, 1] >= 0:
        if T[s, 0] == k:
            break
        s = (s + 1) & mask
    if T[s, 1] < 0:
        return 0
    hole = s
    j = (s + 1) & mask
    while T[j, 1] >= 0:
        home = _slot(T[j, 0], mask)
        # move j back into the hole unless its home lies cyclically in (hole, j]
        if (j > hole and (home <= hole or home > j)) or (j < hole and (home <= hole and home > j)):
            T[hole, 0] = T[j, 0]
            T[hole, 1] = T[j, 1]
            hole = j
        j = (j + 1) & mask
    T[hole, 1] = -1
    return 1
