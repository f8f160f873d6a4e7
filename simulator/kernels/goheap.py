"""Binary min-heaps over parallel arrays.

``go_push``/``go_pop`` reproduce Go's ``container/heap`` sift order exactly for a heap ordered by
time alone (the reference's per-instance event queue), because ties between equal-time events
are resolved by that order.  ``ckey_*`` is an ordinary heap for a total order (the cluster queue).
"""
from numba import njit


@njit(cache=True)
def go_push(tm, pay, size, t, p):
    """Push (t, p) into the heap stored in tm[:size], pay[:size]; returns the new size.
    The caller guarantees capacity."""
    j = size
    tm[j] = t
    pay[j] = p
    while True:
        i = (j - 1) // 2 if j > 0 else 0
        if i == j or not (tm[j] < tm[i]):
            break
        tm[i], tm[j] = tm[j], tm[i]
        pay[i], pay[j] = pay[j], pay[i]
        j = i
    return size + 1


@njit(cache=True)
def go_pop(tm, pay, size):
    """Pop the root exactly as Go's heap.Pop does (swap root with last, sift down over n-1).
    Returns (time, payload); the new size is size - 1."""
    n = size - 1
    tm[0], tm[n] = tm[n], tm[0]
    pay[0], pay[n] = pay[n], pay[0]
    i = 0
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            break
        j = j1
        j2 = j1 + 1
        if j2 < n and tm[j2] < tm[j1]:
            j = j2
        if not (tm[j] < tm[i]):
            break
        tm[i], tm[j] = tm[j], tm[i]
        pay[i], pay[j] = pay[j], pay[i]
        i = j
    return tm[n], pay[n]


@njit(cache=True, inline="always")
def _cless(tm, pr, sq, a, b):
    if tm[a] != tm[b]:
        return tm[a] < tm[b]
    if pr[a] != pr[b]:
        return pr[a] < pr[b]
    return sq[a] < sq[b]


@njit(cache=True, inline="always")
def _cswap(tm, pr, sq, pay, a, b):
    tm[a], tm[b] = tm[b], tm[a]
    pr[a], pr[b] = pr[b], pr[a]
    sq[a], sq[b] = sq[b], sq[a]
    pay[a], pay[b] = pay[b], pay[a]


@njit(cache=True, inline="always")
def _csift_up(tm, pr, sq, pay, j):
    while j > 0:
        i = (j - 1) // 2
        if not _cless(tm, pr, sq, j, i):
            break
        _cswap(tm, pr, sq, pay, i, j)
        j = i


@njit(cache=True, inline="always")
def _csift_down(tm, pr, sq, pay, i, n):
    """Sift entry i down within the heap tm[:n] (and its parallel arrays)."""
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            break
        j = j1
        if j1 + 1 < n and _cless(tm, pr, sq, j1 + 1, j1):
            j = j1 + 1
        if not _cless(tm, pr, sq, j, i):
            break
        _cswap(tm, pr, sq, pay, i, j)
        i = j


@njit(cache=True)
def ckey_push(tm, pr, sq, pay, size, t, p, s, payload):
    """Push onto a heap ordered by (time, priority, seq); returns the new size."""
    tm[size], pr[size], sq[size], pay[size] = t, p, s, payload
    _csift_up(tm, pr, sq, pay, size)
    return size + 1


@njit(cache=True)
def ckey_remove(tm, pr, sq, pay, size, j):
    """Delete entry j from the (time, priority, seq) heap; returns the new size.  Pop order of the
    other entries is unchanged: their keys are distinct, so the heap's layout never shows."""
    n = size - 1
    tm[j], pr[j], sq[j], pay[j] = tm[n], pr[n], sq[n], pay[n]
    if j < n:
        _csift_up(tm, pr, sq, pay, j)     # the moved entry may belong higher or lower
        _csift_down(tm, pr, sq, pay, j, n)
    return n


@njit(cache=True)
def ckey_pop(tm, pr, sq, pay, size):
    """Pop the minimum (time, priority, seq) entry; returns (time, priority, payload)."""
    n = size - 1
    rt, rp, rpay = tm[0], pr[0], pay[0]
    tm[0], pr[0], sq[0], pay[0] = tm[n], pr[n], sq[n], pay[n]
    _csift_down(tm, pr, sq, pay, 0, n)
    return rt, rp, rpay
