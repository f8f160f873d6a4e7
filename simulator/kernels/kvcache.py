"""Paged KV cache with prefix caching and an optional CPU tier, one per instance.

Port of sim/kvcache.go and sim/kvcache_tiered.go @cbb0de7b.  All instances share flat block
arrays: instance ``i`` owns global block ids ``[i*TB, (i+1)*TB)``.  A request's block list lives in
a shared arena (``st.ARENA[0]``) at ``R[R_BL_START, r]`` with capacity ``R[R_BL_CAP, r]``.

Invariants kept (tested as properties): used + free-list length == TB per instance; a block is on
the free list iff its ref count is 0; ``HT`` maps (hash ^ salt[i]) to a block of instance i.

Deliberate difference from the reference (its bug in sim/kvcache.go at BLIS cbb0de7b): a failed
allocation rolls back to the request's previous block list instead of forgetting (leaking) it.
"""
import numpy as np
from numba import njit

from .hashtable import ht_del, ht_get, ht_put
from .hashing import FNV_OFFSET, SEED, chunk_hash, fold_token, partial_hash, prefix_hash
from .layout import (CL_ARENA_TOP, CPU_HAS, CPU_HASH, CPU_NTOK, CPU_TIME, I_CPU_HITS, I_CPU_MISS,
                     I_CPU_USED, I_FREE_HEAD, I_FREE_TAIL, I_HITS, I_KV_CLOCK, I_KV_SALT,
                     I_MISSES, I_OFFLOADS, I_PEND_LAT, I_THRASH, I_USED, KB_INUSE, KB_NEXT,
                     KB_NTOK, KB_PREV, KB_REF, P_BASE_LAT, P_BLOCK, P_CPU_BLOCKS, P_LEGACY,
                     P_N_INST, P_TOTAL_BLOCKS, PF_BANDWIDTH, PF_OFFLOAD_THR, R_BL_CAP, R_BL_LEN,
                     R_BL_START, R_CH_ACC, R_CH_H, R_CH_LEN, R_INST, R_KVH_PTR, R_N_IN, R_PI,
                     R_TOK_PTR, SC_CACHED2, SC_CM_BLK, SC_CM_WAS, SC_NA_BLK, SC_NA_ORIG)

NIL = -1


@njit(cache=True, inline="always")
def free_append(KB, I, i, b):
    """Append block b to the tail of instance i's free list."""
    KB[KB_NEXT, b] = NIL
    t = I[I_FREE_TAIL, i]
    if t != NIL:
        KB[KB_NEXT, t] = b
        KB[KB_PREV, b] = t
    else:
        I[I_FREE_HEAD, i] = b
        KB[KB_PREV, b] = NIL
    I[I_FREE_TAIL, i] = b


@njit(cache=True, inline="always")
def free_remove(KB, I, i, b):
    """Unlink block b from instance i's free list."""
    p = KB[KB_PREV, b]
    q = KB[KB_NEXT, b]
    if p != NIL:
        KB[KB_NEXT, p] = q
    else:
        I[I_FREE_HEAD, i] = q
    if q != NIL:
        KB[KB_PREV, q] = p
    else:
        I[I_FREE_TAIL, i] = p
    KB[KB_PREV, b] = NIL
    KB[KB_NEXT, b] = NIL


@njit(cache=True, inline="always")
def pop_free(KB, BH, HT, I, i):
    """Take the free-list head (LRU victim), dropping its cached hash; NIL if none."""
    b = I[I_FREE_HEAD, i]
    if b == NIL:
        return NIL
    free_remove(KB, I, i, b)
    h = BH[b]
    if h != 0:
        ht_del(HT, h ^ I[I_KV_SALT, i])
        BH[b] = 0
    KB[KB_NTOK, b] = 0
    return b


@njit(cache=True)
def lookup(HT, I, i, h):
    """Block of instance i holding hash h, or NIL."""
    return ht_get(HT, h ^ I[I_KV_SALT, i])


@njit(cache=True)
def get_cached_blocks(st, i, r, out):
    """Longest run of full input-prefix blocks of request r already cached on instance i
    (free blocks included).  Pure query: writes block ids into ``out``, returns the count."""
    R = st.R
    n = R[R_N_IN, r] // st.P[P_BLOCK]
    base = R[R_KVH_PTR, r]
    c = 0
    for k in range(n):
        b = lookup(st.HT, st.I, i, st.KVH[base + k])
        if b == NIL:
            break
        out[c] = b
        c += 1
    return c


@njit(cache=True, inline="always")
def list_append(R, ARENA, CL, r, b):
    """Append block b to request r's block list, relocating it in the arena when full."""
    arena = ARENA[0]
    if R[R_BL_LEN, r] == R[R_BL_CAP, r]:
        newcap = max(2 * R[R_BL_CAP, r], 4)
        top = CL[CL_ARENA_TOP]
        if top + newcap > arena.shape[0]:
            bigger = np.empty(max(2 * arena.shape[0], top + newcap), dtype=arena.dtype)
            bigger[:top] = arena[:top]
            ARENA[0] = bigger
            arena = bigger
        s = R[R_BL_START, r]
        for k in range(R[R_BL_LEN, r]):
            arena[top + k] = arena[s + k]
        R[R_BL_START, r] = top
        R[R_BL_CAP, r] = newcap
        CL[CL_ARENA_TOP] = top + newcap
    arena[R[R_BL_START, r] + R[R_BL_LEN, r]] = b
    R[R_BL_LEN, r] += 1


@njit(cache=True, inline="always")
def content_append(R, block, r, tok):
    """Fold one stored token into request r's rolling content hash."""
    R[R_CH_ACC, r] = fold_token(R[R_CH_ACC, r], tok)
    R[R_CH_LEN, r] += 1
    if R[R_CH_LEN, r] % block == 0:
        R[R_CH_H, r] = chunk_hash(R[R_CH_H, r], R[R_CH_ACC, r])
        R[R_CH_ACC, r] = FNV_OFFSET


@njit(cache=True, inline="always")
def content_hash(R, block, r):
    """Hash of the tokens request r has stored so far (what the reference hashes when a block
    fills): the chained hash when they end on a block boundary, else the partial-block hash."""
    if R[R_CH_LEN, r] % block == 0:
        return R[R_CH_H, r]
    return partial_hash(R[R_CH_H, r], R[R_CH_ACC, r], R[R_CH_LEN, r])


@njit(cache=True)
def _content_set_input_prefix(R, TOK, KVH, block, r, q):
    """Set r's rolling content state to its first q input tokens (prefill content has no gaps)."""
    k = q // block
    R[R_CH_H, r] = SEED if k == 0 else KVH[R[R_KVH_PTR, r] + k - 1]
    acc = FNV_OFFSET
    base = R[R_TOK_PTR, r] + k * block
    for j in range(q - k * block):
        acc = fold_token(acc, TOK[base + j])
    R[R_CH_ACC, r] = acc
    R[R_CH_LEN, r] = q


@njit(cache=True)
def allocate_gpu(st, r, start, end, cached, n_cached):
    """Port of KVCacheState.AllocateKVBlocks: reserve blocks for tokens [start, end) of request r
    (one output token when r is decoding), committing ``cached[:n_cached]`` prefix hits first when
    r holds no blocks yet.  Transactional: on failure every change is undone and False returned."""
    R, I, KB, BH, HT, SC = st.R, st.I, st.KB, st.BH, st.HT, st.SC
    i = R[R_INST, r]
    B = st.P[P_BLOCK]
    salt = I[I_KV_SALT, i]
    prefill = R[R_PI, r] < R[R_N_IN, r]
    legacy = st.P[P_LEGACY] != 0
    if prefill:
        L = end - start
        num_new = (L + B - 1) // B
        need = num_new
        if not legacy and R[R_BL_LEN, r] > 0:
            # the reference ignores the room left in a partial last block (and later allocates
            # an empty block for it); by default we count it
            nt = KB[KB_NTOK, st.ARENA[0][R[R_BL_START, r] + R[R_BL_LEN, r] - 1]]
            if 0 < nt < B:
                need = (max(L - (B - nt), 0) + B - 1) // B
        if need > st.P[P_TOTAL_BLOCKS] - I[I_USED, i]:
            return False
    else:
        L = 1
        num_new = 1
    tok0 = R[R_TOK_PTR, r] + start  # seq position of the first new token
    old_len = R[R_BL_LEN, r]
    old_h, old_acc, old_clen = R[R_CH_H, r], R[R_CH_ACC, r], R[R_CH_LEN, r]
    n_cm = 0
    n_na = 0
    part_blk = NIL
    part_old_ntok = 0
    part_hashed = False
    prog = 0
    while prog < L:
        latest = NIL
        if R[R_BL_LEN, r] > 0:
            latest = st.ARENA[0][R[R_BL_START, r] + R[R_BL_LEN, r] - 1]
        else:
            R[R_CH_H, r] = SEED
            R[R_CH_ACC, r] = FNV_OFFSET
            R[R_CH_LEN, r] = 0
            for k in range(n_cached):
                c = cached[k]
                SC[SC_CM_BLK, n_cm] = c
                SC[SC_CM_WAS, n_cm] = KB[KB_INUSE, c]
                n_cm += 1
                KB[KB_REF, c] += 1
                if KB[KB_INUSE, c] == 0:
                    KB[KB_INUSE, c] = 1
                    I[I_USED, i] += 1
                    free_remove(KB, I, i, c)
                I[I_HITS, i] += 1
                list_append(R, st.ARENA, st.CL, r, c)
            if n_cached > 0:
                _content_set_input_prefix(R, st.TOK, st.KVH, B, r, n_cached * B)
        if latest != NIL and KB[KB_NTOK, latest] > 0 and KB[KB_NTOK, latest] < B:
            take = min(B - KB[KB_NTOK, latest], L - prog)
            if part_blk == NIL:
                part_blk = latest
                part_old_ntok = KB[KB_NTOK, latest]
            for j in range(take):
                content_append(R, B, r, st.TOK[tok0 + prog + j])
            KB[KB_NTOK, latest] += take
            prog += take
            if KB[KB_NTOK, latest] == B:
                h = content_hash(R, B, r)
                BH[latest] = h
                ht_put(HT, h ^ salt, latest)
                part_hashed = True
        else:
            n_blocks = num_new if legacy else (L - prog + B - 1) // B
            for k in range(n_blocks):
                head = I[I_FREE_HEAD, i]
                orig = BH[head] if head != NIL else 0
                b = pop_free(KB, BH, HT, I, i)
                if b == NIL:
                    _rollback(st, i, r, n_cm, n_na, old_len, part_blk, part_old_ntok, part_hashed)
                    R[R_CH_H, r], R[R_CH_ACC, r], R[R_CH_LEN, r] = old_h, old_acc, old_clen
                    return False
                s = prog
                e = min(prog + B, L)
                KB[KB_NTOK, b] = e - s
                if not prefill:
                    for j in range(s, e):
                        content_append(R, B, r, st.TOK[tok0 + j])
                KB[KB_REF, b] = 1
                KB[KB_INUSE, b] = 1
                I[I_USED, i] += 1
                I[I_MISSES, i] += 1
                if e - s == B and prefill:
                    q = start + e
                    if q % B == 0:
                        h = st.KVH[R[R_KVH_PTR, r] + q // B - 1]
                    else:
                        h = prefix_hash(st.TOK, R[R_TOK_PTR, r], q, B, st.KVH, R[R_KVH_PTR, r])
                    BH[b] = h
                    ht_put(HT, h ^ salt, b)
                SC[SC_NA_BLK, n_na] = b
                SC[SC_NA_ORIG, n_na] = orig
                n_na += 1
                list_append(R, st.ARENA, st.CL, r, b)
                prog = e
            if prefill:
                _content_set_input_prefix(R, st.TOK, st.KVH, B, r, start + L)
    return True


@njit(cache=True)
def _rollback(st, i, r, n_cm, n_na, old_len, part_blk, part_old_ntok, part_hashed):
    KB, BH, HT, I, SC = st.KB, st.BH, st.HT, st.I, st.SC
    salt = I[I_KV_SALT, i]
    for k in range(n_na - 1, -1, -1):
        b = SC[SC_NA_BLK, k]
        h = BH[b]
        if h != 0:
            ht_del(HT, h ^ salt)
        orig = SC[SC_NA_ORIG, k]
        BH[b] = orig
        if orig != 0:
            ht_put(HT, orig ^ salt, b)
        KB[KB_INUSE, b] = 0
        KB[KB_REF, b] = 0
        KB[KB_NTOK, b] = 0
        I[I_USED, i] -= 1
        I[I_MISSES, i] -= 1
        free_append(KB, I, i, b)
    for k in range(n_cm):
        c = SC[SC_CM_BLK, k]
        KB[KB_REF, c] -= 1
        I[I_HITS, i] -= 1
        if SC[SC_CM_WAS, k] == 0 and KB[KB_REF, c] == 0:
            KB[KB_INUSE, c] = 0
            I[I_USED, i] -= 1
            free_append(KB, I, i, c)
    if part_blk != NIL:
        if part_hashed:
            key = BH[part_blk] ^ salt
            if ht_get(HT, key) == part_blk:
                ht_del(HT, key)
            BH[part_blk] = 0
        KB[KB_NTOK, part_blk] = part_old_ntok
    st.R[R_BL_LEN, r] = old_len


@njit(cache=True)
def release(st, r):
    """Port of ReleaseKVBlocks (+ the tiered offload pass): drop r's references, newest block
    first, so the longest prefixes are evicted first; freed blocks keep their hashes."""
    R, I, KB = st.R, st.I, st.KB
    i = R[R_INST, r]
    arena = st.ARENA[0]
    s = R[R_BL_START, r]
    for k in range(R[R_BL_LEN, r] - 1, -1, -1):
        b = arena[s + k]
        KB[KB_REF, b] -= 1
        if KB[KB_REF, b] == 0:
            KB[KB_INUSE, b] = 0
            I[I_USED, i] -= 1
            free_append(KB, I, i, b)
    R[R_BL_LEN, r] = 0
    R[R_CH_H, r] = SEED
    R[R_CH_ACC, r] = FNV_OFFSET
    R[R_CH_LEN, r] = 0
    if st.P[P_CPU_BLOCKS] > 0:
        _maybe_offload(st, i)


@njit(cache=True)
def _maybe_offload(st, i):
    """Move hashed free GPU blocks to the CPU tier while GPU utilisation exceeds the threshold."""
    I, KB, BH, CPU, HT = st.I, st.KB, st.BH, st.CPU, st.HT
    total = st.P[P_TOTAL_BLOCKS]
    while True:
        if I[I_USED, i] / total <= st.PF[PF_OFFLOAD_THR]:
            break
        if I[I_CPU_USED, i] >= st.P[P_CPU_BLOCKS]:
            break
        b = I[I_FREE_HEAD, i]
        while b != NIL and BH[b] == 0:
            b = KB[KB_NEXT, b]
        if b == NIL:
            break
        if CPU[CPU_HAS, b] == 0 or st.P[P_LEGACY] != 0:
            # the reference counts a re-offload of the same GPU block id twice (its CPU map is
            # keyed by that id); by default the overwritten copy is counted once
            I[I_CPU_USED, i] += 1
        CPU[CPU_HAS, b] = 1
        CPU[CPU_HASH, b] = BH[b]
        CPU[CPU_TIME, b] = I[I_KV_CLOCK, i]
        CPU[CPU_NTOK, b] = KB[KB_NTOK, b]
        I[I_OFFLOADS, i] += 1
        free_remove(KB, I, i, b)
        ht_del(HT, BH[b] ^ I[I_KV_SALT, i])
        BH[b] = 0
        KB[KB_NTOK, b] = 0
        free_append(KB, I, i, b)


@njit(cache=True)
def _try_reload(st, i):
    """Bring every CPU-tier block whose hash is not on the GPU back into free GPU blocks
    (ascending original block id), charging transfer latency to the next step."""
    I, KB, BH, CPU, HT = st.I, st.KB, st.BH, st.CPU, st.HT
    if I[I_CPU_USED, i] == 0:
        return False
    total = st.P[P_TOTAL_BLOCKS]
    reloaded = False
    lo = i * total
    for b0 in range(lo, lo + total):
        if CPU[CPU_HAS, b0] == 0:
            continue
        h = CPU[CPU_HASH, b0]
        if h == 0 or lookup(HT, I, i, h) != NIL:
            continue
        blk = pop_free(KB, BH, HT, I, i)
        if blk == NIL:
            break
        KB[KB_NTOK, blk] = CPU[CPU_NTOK, b0]
        KB[KB_REF, blk] = 0
        KB[KB_INUSE, blk] = 0
        BH[blk] = h
        ht_put(HT, h ^ I[I_KV_SALT, i], blk)
        free_append(KB, I, i, blk)
        I[I_PEND_LAT, i] += st.P[P_BASE_LAT] + np.int64(np.ceil(st.P[P_BLOCK] / st.PF[PF_BANDWIDTH]))
        if I[I_KV_CLOCK, i] - CPU[CPU_TIME, b0] < 1000:
            I[I_THRASH, i] += 1
        CPU[CPU_HAS, b0] = 0
        I[I_CPU_USED, i] -= 1
        I[I_CPU_HITS, i] += 1
        reloaded = True
    return reloaded


@njit(cache=True)
def allocate(st, r, start, end, cached, n_cached):
    """KVStore.AllocateKVBlocks: the GPU allocation, falling back to a CPU-tier reload and one
    retry (from a later start if the reload made more of the prefix cached) when tiered."""
    if allocate_gpu(st, r, start, end, cached, n_cached):
        return True
    if st.P[P_CPU_BLOCKS] <= 0:
        return False
    i = st.R[R_INST, r]
    if _try_reload(st, i):
        cached2 = st.SC[SC_CACHED2]
        n2 = get_cached_blocks(st, i, r, cached2)
        new_start = n2 * st.P[P_BLOCK]
        if new_start > start:
            return allocate_gpu(st, r, new_start, end, cached2, n2)
        return allocate_gpu(st, r, start, end, cached, n_cached)
    st.I[I_CPU_MISS, i] += 1
    return False


@njit(cache=True)
def cache_hit_rate(I, i):
    """Per-block hit rate (GPU hits + CPU reloads over all lookups), 0 when nothing happened."""
    hits = I[I_HITS, i] + I[I_CPU_HITS, i]
    total = hits + I[I_MISSES, i] + I[I_CPU_MISS, i]
    if total == 0:
        return 0.0
    return hits / total


@njit(cache=True)
def cache_hit_rates(st):
    """``cache_hit_rate`` of every instance, in one call (the engine's read-out of a run)."""
    n = st.P[P_N_INST]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = cache_hit_rate(st.I, i)
    return out
