"""Fixed-capacity open-addressing hash map int64 -> int64 in one array (linear probing,
backward-shift deletion, so no tombstones).  Several times faster than numba's typed Dict for the
KV prefix map and the router's prefix index, and part of the plain-array kernel state.

Layout: ``T[HT_KEY, s]``, ``T[HT_VAL, s]``, ``T[HT_USED, s]`` for slots ``s < capacity`` (a power of
two, at least twice the most entries ever held); the entry count lives with the caller.
"""
import numpy as np
from numba import njit

HT_KEY = 0
HT_VAL = 1
HT_USED = 2
NHT = 3
MISSING = np.int64(-1)


def table_capacity(max_entries: int) -> int:
    """Power-of-two slot count keeping the load factor at or below one half."""
    cap = 16
    while cap < 2 * max_entries:
        cap *= 2
    return cap


@njit(cache=True, inline="always")
def _slot(k, mask):
    return (k ^ ((k >> 31) & 0x1FFFFFFFF)) & mask


@njit(cache=True)
def ht_get(T, k):
    """Value stored for key k, or -1."""
    mask = T.shape[1] - 1
    s = _slot(k, mask)
    while T[HT_USED, s] != 0:
        if T[HT_KEY, s] == k:
            return T[HT_VAL, s]
        s = (s + 1) & mask
    return MISSING


@njit(cache=True)
def ht_put(T, k, v):
    """Insert or overwrite key k; returns 1 if a new entry was created, else 0."""
    mask = T.shape[1] - 1
    s = _slot(k, mask)
    while T[HT_USED, s] != 0:
        if T[HT_KEY, s] == k:
            T[HT_VAL, s] = v
            return 0
        s = (s + 1) & mask
    T[HT_USED, s] = 1
    T[HT_KEY, s] = k
    T[HT_VAL, s] = v
    return 1


@njit(cache=True)
def ht_del(T, k):
    """Delete key k if present (backward-shift); returns 1 if an entry was removed, else 0."""
    mask = T.shape[1] - 1
    s = _slot(k, mask)
    while T[HT_USED, s] != 0:
        if T[HT_KEY, s] == k:
            break
        s = (s + 1) & mask
    if T[HT_USED, s] == 0:
        return 0
    hole = s
    j = (s + 1) & mask
    while T[HT_USED, j] != 0:
        home = _slot(T[HT_KEY, j], mask)
        # move j back into the hole unless its home lies cyclically in (hole, j]
        if (j > hole and (home <= hole or home > j)) or (j < hole and (home <= hole and home > j)):
            T[HT_KEY, hole] = T[HT_KEY, j]
            T[HT_VAL, hole] = T[HT_VAL, j]
            hole = j
        j = (j + 1) & mask
    T[HT_USED, hole] = 0
    return 1
