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


@njit(cache=True)
def ckey_push(tm, pr, sq, pay, size, t, p, s, payload):
    """Push onto a heap ordered by (time, priority, seq); returns the new size."""
    j = size
    tm[j] = t
    pr[j] = p
    sq[j] = s
    pay[j] = payload
    while j > 0:
        i = (j - 1) // 2
        if not _cless(tm, pr, sq, j, i):
            break
        tm[i], tm[j] = tm[j], tm[i]
        pr[i], pr[j] = pr[j], pr[i]
        sq[i], sq[j] = sq[j], sq[i]
        pay[i], pay[j] = pay[j], pay[i]
        j = i
    return size + 1


@njit(cache=True)
def ckey_pop(tm, pr, sq, pay, size):
    """Pop the minimum (time, priority, seq) entry; returns (time, priority, payload)."""
    n = size - 1
    rt, rp, rpay = tm[0], pr[0], pay[0]
    tm[0], pr[0], sq[0], pay[0] = tm[n], pr[n], sq[n], pay[n]
    i = 0
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            break
        j = j1
        if j1 + 1 < n and _cless(tm, pr, sq, j1 + 1, j1):
            j = j1 + 1
        if not _cless(tm, pr, sq, j, i):
            break
        tm[i], tm[j] = tm[j], tm[i]
        pr[i], pr[j] = pr[j], pr[i]
        sq[i], sq[j] = sq[j], sq[i]
        pay[i], pay[j] = pay[j], pay[i]
        i = j
    return rt, rp, rpay
