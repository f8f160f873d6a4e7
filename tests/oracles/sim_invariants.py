"""Pure-Python invariant checkers and tiny oracles for the simulator's final kernel state.

Used by tests/simulator/test_properties.py.  Every checker raises AssertionError with a message
naming the broken invariant; nothing here imports numba kernels (only the layout constants).
"""
from __future__ import annotations

import numpy as np

from simulator.kernels import layout as L
from simulator.kernels.request_states import REQ_COMPLETED, REQ_DROPPED, REQ_QUEUED, REQ_RUNNING


# --------------------------------------------------------------------------- scorer oracles

def queue_depth_scores(loads):
    """score_queue_depth: min-max normalised load, 1 = least loaded, all 1 when loads are equal."""
    lo, hi = min(loads), max(loads)
    if hi == lo:
        return [1.0] * len(loads)
    return [float(hi - x) / float(hi - lo) for x in loads]


def load_balance_scores(loads):
    """score_load_balance: 1 / (1 + load)."""
    return [1.0 / (1.0 + float(x)) for x in loads]


def kv_utilization_scores(used, total):
    """score_kv_utilization on a fresh snapshot: 1 - used / total."""
    return [1.0 - u / total for u in used]


# --------------------------------------------------------------------------- hash maps

def table_items(T) -> dict:
    """Entries of an open-addressing table (kernels/hashtable.py) as a dict, after checking the
    table itself: keys unique, every stored key found again by ``ht_get`` with its value (no probe
    chain broken), load factor <= 1/2 (the sizing the engine promises)."""
    from simulator.kernels.hashtable import ht_get, table_entries
    k_arr, v_arr = table_entries(T)
    keys = k_arr.tolist()
    vals = v_arr.tolist()
    assert len(set(keys)) == len(keys), "hash table holds a key twice"
    assert 2 * len(keys) <= T.shape[0], f"hash table load {len(keys)}/{T.shape[0]} above 1/2"
    for k, v in zip(keys, vals):
        assert int(ht_get(T, np.int64(k))) == v, f"key {k} not reachable by probing"
    return dict(zip(keys, vals))


def kv_prefix_map(st) -> dict:
    """The KV prefix-cache map (hash ^ salt[i]) -> block, whatever its storage."""
    if hasattr(st, "HT"):
        return table_items(st.HT)
    return dict(st.HMAP.items())


def router_prefix_map(st) -> dict:
    """The router prefix index (hash ^ px_salt[i]) -> LRU node, whatever its storage."""
    if hasattr(st, "PXT"):
        return table_items(st.PXT)
    return dict(st.PXMAP.items())


# --------------------------------------------------------------------------- KV cache

def check_kv_conservation(st, cfg) -> None:
    """Per instance: used == #KB_INUSE == TB - free-list length; the free list is a well-formed
    doubly linked list of exactly the not-in-use blocks of that instance; free blocks have ref 0,
    used blocks ref > 0, and every ref count equals the number of request block lists holding the
    block (only running requests hold blocks).  (CPU tier: ``check_cpu_tier``.)"""
    N, TB = cfg.num_instances, cfg.total_kv_blocks
    KB, I, R = st.KB, st.I, st.R
    arena = st.ARENA[0]
    n = R.shape[1]
    exp_ref = np.zeros(N * TB, dtype=np.int64)
    for r in range(n):
        ln = int(R[L.R_BL_LEN, r])
        if ln == 0:
            continue
        assert R[L.R_STATE, r] == REQ_RUNNING, \
            f"request {r} holds {ln} blocks in state {R[L.R_STATE, r]} (only running requests may)"
        i = int(R[L.R_INST, r])
        s = int(R[L.R_BL_START, r])
        blocks = arena[s:s + ln]
        assert ((blocks >= i * TB) & (blocks < (i + 1) * TB)).all(), \
            f"request {r} on instance {i} holds blocks of another instance: {blocks}"
        np.add.at(exp_ref, blocks, 1)
    for i in range(N):
        lo, hi = i * TB, (i + 1) * TB
        inuse = KB[L.KB_INUSE, lo:hi].astype(np.int64)
        ref = KB[L.KB_REF, lo:hi].astype(np.int64)
        assert set(np.unique(inuse).tolist()) <= {0, 1}, f"instance {i}: KB_INUSE not 0/1"
        used = int(I[L.I_USED, i])
        assert used == int(inuse.sum()), f"instance {i}: I_USED={used} != #in-use={int(inuse.sum())}"
        assert 0 <= used <= TB
        seen = []
        prev = -1
        b = int(I[L.I_FREE_HEAD, i])
        while b != -1:
            assert lo <= b < hi, f"instance {i}: free-list block {b} outside [{lo},{hi})"
            assert int(KB[L.KB_PREV, b]) == prev, \
                f"instance {i}: block {b} prev={int(KB[L.KB_PREV, b])} expected {prev}"
            seen.append(b)
            assert len(seen) <= TB, f"instance {i}: free list has a cycle"
            prev = b
            b = int(KB[L.KB_NEXT, b])
        assert int(I[L.I_FREE_TAIL, i]) == prev, \
            f"instance {i}: I_FREE_TAIL={int(I[L.I_FREE_TAIL, i])} but list ends at {prev}"
        assert len(set(seen)) == len(seen)
        assert len(seen) == TB - used, f"instance {i}: free-list length {len(seen)} != TB-used {TB - used}"
        free = np.zeros(TB, dtype=bool)
        if seen:
            free[np.asarray(seen) - lo] = True
        assert (free == (inuse == 0)).all(), f"instance {i}: free list != not-in-use blocks"
        assert (ref[free] == 0).all(), f"instance {i}: a free block has ref > 0"
        assert (ref[~free] > 0).all(), f"instance {i}: a used block has ref <= 0"
        assert (ref == exp_ref[lo:hi]).all(), \
            f"instance {i}: ref counts {ref.tolist()} != block-list occurrences {exp_ref[lo:hi].tolist()}"


def check_cpu_tier(st, cfg) -> None:
    """CPU tier per instance: I_CPU_USED == number of CPU_HAS rows set <= kv_cpu_blocks."""
    TB = cfg.total_kv_blocks
    for i in range(cfg.num_instances):
        lo, hi = i * TB, (i + 1) * TB
        cpu_used = int(st.I[L.I_CPU_USED, i])
        if cfg.kv_cpu_blocks > 0:
            has = int(st.CPU[L.CPU_HAS, lo:hi].sum())
            assert cpu_used == has, f"instance {i}: I_CPU_USED={cpu_used} != #CPU_HAS={has}"
            assert cpu_used <= cfg.kv_cpu_blocks
        else:
            assert cpu_used == 0


def check_hash_map(st, cfg) -> None:
    """Every prefix-cache map entry (hash ^ salt[i]) -> block points to a block of instance i
    whose stored hash is that hash."""
    TB = cfg.total_kv_blocks
    for key, b in kv_prefix_map(st).items():
        i = b // TB
        assert 0 <= i < cfg.num_instances
        h = int(st.BH[b])
        assert h != 0, f"HMAP entry -> block {b} with no hash"
        assert (h ^ int(st.I[L.I_KV_SALT, i])) == key, f"HMAP entry -> block {b} with another hash"


# --------------------------------------------------------------------------- router prefix index

def check_prefix_index(st, cfg) -> None:
    """Router LRU per instance: size <= capacity, a well-formed list of `size` nodes in the
    instance's node range, each mapped from (hash ^ salt) in PXMAP; map size == sum of sizes."""
    N, cap = cfg.num_instances, cfg.router_lru_capacity
    I, PXA = st.I, st.PXA
    PXMAP = router_prefix_map(st)
    assert len(PXMAP) <= N * cap, f"len(PXMAP)={len(PXMAP)} > N*cap={N * cap}"
    total = 0
    for i in range(N):
        size = int(I[L.I_LRU_SIZE, i])
        assert 0 <= size <= cap, f"instance {i}: LRU size {size} > capacity {cap}"
        total += size
        prev = -1
        node = int(I[L.I_LRU_HEAD, i])
        count = 0
        while node != -1:
            assert i * cap <= node < (i + 1) * cap, f"instance {i}: LRU node {node} out of range"
            assert int(PXA[L.PX_PREV, node]) == prev
            key = int(PXA[L.PX_HASH, node]) ^ int(I[L.I_PX_SALT, i])
            assert key in PXMAP and PXMAP[key] == node, f"instance {i}: LRU node {node} not in PXMAP"
            count += 1
            assert count <= cap, f"instance {i}: LRU list has a cycle"
            prev = node
            node = int(PXA[L.PX_NEXT, node])
        assert int(I[L.I_LRU_TAIL, i]) == prev
        assert count == size, f"instance {i}: LRU list length {count} != size {size}"
    assert total == len(PXMAP), f"sum of LRU sizes {total} != len(PXMAP) {len(PXMAP)}"


# --------------------------------------------------------------------------- helpers

def blocks_needed(n_in, n_out, block):
    """Blocks a request needs to run to completion: ceil((n_in + n_out) / block)."""
    return (np.asarray(n_in) + np.asarray(n_out) + block - 1) // block


SERVED_STATES = (REQ_QUEUED, REQ_RUNNING, REQ_COMPLETED)
FINAL_STATES = (REQ_COMPLETED, REQ_DROPPED)


def check_block_fill(st, cfg) -> None:
    """Paged-KV layout of every request holding blocks: each block stores 1..B tokens and all but
    the request's last block are full (no empty or half-empty block in the middle)."""
    B = cfg.block_size
    R, KB = st.R, st.KB
    arena = st.ARENA[0]
    for r in range(R.shape[1]):
        ln = int(R[L.R_BL_LEN, r])
        if ln == 0:
            continue
        s = int(R[L.R_BL_START, r])
        blocks = arena[s:s + ln]
        ntok = KB[L.KB_NTOK, blocks].astype(np.int64)
        assert ((ntok >= 1) & (ntok <= B)).all(), \
            f"request {r} holds blocks {blocks.tolist()} with token counts {ntok.tolist()} (B={B})"
        assert (ntok[:-1] == B).all(), \
            f"request {r}: non-last block not full: token counts {ntok.tolist()} (B={B})"
