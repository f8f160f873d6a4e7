"""Paged KV cache with prefix caching and an optional CPU tier, one per instance.

Port of sim/kvcache.go and sim/kvcache_tiered.go @cbb0de7b.  All instances share flat block
arrays: instance ``i`` owns global block ids ``[i*TB, (i+1)*TB)``.  A request's block list lives in
a shared arena (``kv.arena[0]``) at ``rq.bl_start[r]`` with capacity ``rq.bl_cap[r]``.

Invariants kept (tested as properties): used + free-list length == TB per instance; a block is on
the free list iff its ref count is 0; ``hmap`` maps (hash ^ salt[i]) to a block of instance i.

Deliberate differences from the reference (its bugs, see REFERENCE.md 1(l)): a failed allocation
rolls back to the request's previous block list instead of forgetting (leaking) it.
"""
import numpy as np
from numba import njit

from .hashing import FNV_OFFSET, SEED, chunk_hash, fold_token, partial_hash, prefix_hash

NIL = -1


@njit(cache=True)
def free_append(kv, ins, i, b):
    """Append block b to the tail of instance i's free list."""
    kv.nxt[b] = NIL
    t = ins.free_tail[i]
    if t != NIL:
        kv.nxt[t] = b
        kv.prv[b] = t
    else:
        ins.free_head[i] = b
        kv.prv[b] = NIL
    ins.free_tail[i] = b


@njit(cache=True)
def free_remove(kv, ins, i, b):
    """Unlink block b from instance i's free list."""
    p = kv.prv[b]
    q = kv.nxt[b]
    if p != NIL:
        kv.nxt[p] = q
    else:
        ins.free_head[i] = q
    if q != NIL:
        kv.prv[q] = p
    else:
        ins.free_tail[i] = p
    kv.prv[b] = NIL
    kv.nxt[b] = NIL


@njit(cache=True)
def pop_free(kv, ins, i):
    """Take the free-list head (LRU victim), dropping its cached hash; NIL if none."""
    b = ins.free_head[i]
    if b == NIL:
        return NIL
    free_remove(kv, ins, i, b)
    h = kv.bhash[b]
    if h != 0:
        key = h ^ kv.salt[i]
        if key in kv.hmap:
            del kv.hmap[key]
        kv.bhash[b] = 0
    kv.ntok[b] = 0
    return b


@njit(cache=True)
def lookup(kv, i, h):
    """Block of instance i holding hash h, or NIL."""
    key = h ^ kv.salt[i]
    if key in kv.hmap:
        return kv.hmap[key]
    return NIL


@njit(cache=True)
def set_hash(kv, i, b, h):
    """Give block b hash h and (re)point the hash map at it, as the reference does."""
    kv.bhash[b] = h
    kv.hmap[h ^ kv.salt[i]] = b


@njit(cache=True)
def get_cached_blocks(kv, rq, p, i, r, out):
    """Longest run of full input-prefix blocks of request r already cached on instance i
    (free blocks included).  Pure query: writes block ids into ``out``, returns the count."""
    n = rq.n_in[r] // p.block
    base = rq.kvh_ptr[r]
    c = 0
    for k in range(n):
        b = lookup(kv, i, rq.kvh[base + k])
        if b == NIL:
            break
        out[c] = b
        c += 1
    return c


@njit(cache=True)
def _list_append(kv, rq, r, b):
    """Append block b to request r's block list, relocating it in the arena when full."""
    if rq.bl_len[r] == rq.bl_cap[r]:
        arena = kv.arena[0]
        newcap = max(2 * rq.bl_cap[r], 4)
        top = kv.arena_top[0]
        if top + newcap > arena.shape[0]:
            bigger = np.empty(max(2 * arena.shape[0], top + newcap), dtype=arena.dtype)
            bigger[:top] = arena[:top]
            kv.arena[0] = bigger
            arena = bigger
        s = rq.bl_start[r]
        for k in range(rq.bl_len[r]):
            arena[top + k] = arena[s + k]
        rq.bl_start[r] = top
        rq.bl_cap[r] = newcap
        kv.arena_top[0] = top + newcap
    kv.arena[0][rq.bl_start[r] + rq.bl_len[r]] = b
    rq.bl_len[r] += 1


@njit(cache=True, inline="always")
def _content_append(rq, p, r, tok):
    """Fold one stored token into request r's rolling content hash."""
    rq.ch_acc[r] = fold_token(rq.ch_acc[r], tok)
    rq.ch_len[r] += 1
    if rq.ch_len[r] % p.block == 0:
        rq.ch_h[r] = chunk_hash(rq.ch_h[r], rq.ch_acc[r])
        rq.ch_acc[r] = FNV_OFFSET


@njit(cache=True, inline="always")
def _content_hash(rq, p, r):
    if rq.ch_len[r] % p.block == 0:
        return rq.ch_h[r]
    return partial_hash(rq.ch_h[r], rq.ch_acc[r], rq.ch_len[r])


@njit(cache=True)
def _content_set_input_prefix(rq, p, r, q):
    """Set r's rolling content state to its first q input tokens (prefill content has no gaps)."""
    k = q // p.block
    rq.ch_h[r] = SEED if k == 0 else rq.kvh[rq.kvh_ptr[r] + k - 1]
    acc = FNV_OFFSET
    base = rq.tok_ptr[r] + k * p.block
    for j in range(q - k * p.block):
        acc = fold_token(acc, rq.tokens[base + j])
    rq.ch_acc[r] = acc
    rq.ch_len[r] = q


@njit(cache=True)
def allocate_gpu(kv, ins, rq, p, sc, r, start, end, cached, n_cached):
    """Port of KVCacheState.AllocateKVBlocks: reserve blocks for tokens [start, end) of request r
    (one output token when r is decoding), committing ``cached[:n_cached]`` prefix hits first when
    r holds no blocks yet.  Transactional: on failure every change is undone and False returned."""
    i = rq.inst[r]
    B = p.block
    prefill = rq.pi[r] < rq.n_in[r]
    if prefill:
        L = end - start
        num_new = (L + B - 1) // B
        if num_new > p.total_blocks - ins.used[i]:
            return False
    else:
        L = 1
        num_new = 1
    tok0 = rq.tok_ptr[r] + start  # seq position of the first new token (input ids then output ids)
    old_len = rq.bl_len[r]
    old_h, old_acc, old_clen = rq.ch_h[r], rq.ch_acc[r], rq.ch_len[r]
    n_cm = 0
    n_na = 0
    part_blk = NIL
    part_old_ntok = 0
    part_hashed = False
    prog = 0
    while prog < L:
        latest = NIL
        if rq.bl_len[r] > 0:
            latest = kv.arena[0][rq.bl_start[r] + rq.bl_len[r] - 1]
        else:
            rq.ch_h[r] = SEED
            rq.ch_acc[r] = FNV_OFFSET
            rq.ch_len[r] = 0
            for k in range(n_cached):
                c = cached[k]
                sc.cm_blk[n_cm] = c
                sc.cm_was[n_cm] = kv.inuse[c]
                n_cm += 1
                kv.ref[c] += 1
                if kv.inuse[c] == 0:
                    kv.inuse[c] = 1
                    ins.used[i] += 1
                    free_remove(kv, ins, i, c)
                ins.hits[i] += 1
                _list_append(kv, rq, r, c)
            if n_cached > 0:
                _content_set_input_prefix(rq, p, r, n_cached * B)
        if latest != NIL and kv.ntok[latest] > 0 and kv.ntok[latest] < B:
            take = min(B - kv.ntok[latest], L - prog)
            if part_blk == NIL:
                part_blk = latest
                part_old_ntok = kv.ntok[latest]
            for j in range(take):
                _content_append(rq, p, r, rq.tokens[tok0 + prog + j])
            kv.ntok[latest] += take
            prog += take
            if kv.ntok[latest] == B:
                set_hash(kv, i, latest, _content_hash(rq, p, r))
                part_hashed = True
        else:
            for k in range(num_new):
                head = ins.free_head[i]
                orig = kv.bhash[head] if head != NIL else 0
                b = pop_free(kv, ins, i)
                if b == NIL:
                    _rollback(kv, ins, rq, sc, i, r, n_cm, n_na, old_len, part_blk, part_old_ntok,
                              part_hashed)
                    rq.ch_h[r], rq.ch_acc[r], rq.ch_len[r] = old_h, old_acc, old_clen
                    return False
                s = prog
                e = min(prog + B, L)
                kv.ntok[b] = e - s
                if prefill:
                    _content_set_input_prefix(rq, p, r, start + e)
                else:
                    for j in range(s, e):
                        _content_append(rq, p, r, rq.tokens[tok0 + j])
                kv.ref[b] = 1
                kv.inuse[b] = 1
                ins.used[i] += 1
                ins.misses[i] += 1
                if e - s == B and prefill:
                    h = prefix_hash(rq.tokens, rq.tok_ptr[r], start + e, B, rq.kvh, rq.kvh_ptr[r])
                    set_hash(kv, i, b, h)
                sc.na_blk[n_na] = b
                sc.na_orig[n_na] = orig
                n_na += 1
                _list_append(kv, rq, r, b)
                prog = e
    return True


@njit(cache=True)
def _rollback(kv, ins, rq, sc, i, r, n_cm, n_na, old_len, part_blk, part_old_ntok, part_hashed):
    for k in range(n_na - 1, -1, -1):
        b = sc.na_blk[k]
        h = kv.bhash[b]
        if h != 0:
            key = h ^ kv.salt[i]
            if key in kv.hmap:
                del kv.hmap[key]
        kv.bhash[b] = sc.na_orig[k]
        if sc.na_orig[k] != 0:
            kv.hmap[sc.na_orig[k] ^ kv.salt[i]] = b
        kv.inuse[b] = 0
        kv.ref[b] = 0
        kv.ntok[b] = 0
        ins.used[i] -= 1
        ins.misses[i] -= 1
        free_append(kv, ins, i, b)
    for k in range(n_cm):
        c = sc.cm_blk[k]
        kv.ref[c] -= 1
        ins.hits[i] -= 1
        if sc.cm_was[k] == 0 and kv.ref[c] == 0:
            kv.inuse[c] = 0
            ins.used[i] -= 1
            free_append(kv, ins, i, c)
    if part_blk != NIL:
        if part_hashed:
            key = kv.bhash[part_blk] ^ kv.salt[i]
            if key in kv.hmap and kv.hmap[key] == part_blk:
                del kv.hmap[key]
            kv.bhash[part_blk] = 0
        kv.ntok[part_blk] = part_old_ntok
    rq.bl_len[r] = old_len


@njit(cache=True)
def release(kv, ins, rq, p, r):
    """Port of ReleaseKVBlocks (+ the tiered offload pass): drop r's references, newest block
    first, so the longest prefixes are evicted first; freed blocks keep their hashes."""
    i = rq.inst[r]
    arena = kv.arena[0]
    s = rq.bl_start[r]
    for k in range(rq.bl_len[r] - 1, -1, -1):
        b = arena[s + k]
        kv.ref[b] -= 1
        if kv.ref[b] == 0:
            kv.inuse[b] = 0
            ins.used[i] -= 1
            free_append(kv, ins, i, b)
    rq.bl_len[r] = 0
    rq.ch_h[r] = SEED
    rq.ch_acc[r] = FNV_OFFSET
    rq.ch_len[r] = 0
    if p.cpu_blocks > 0:
        _maybe_offload(kv, ins, p, i)


@njit(cache=True)
def _maybe_offload(kv, ins, p, i):
    """Move hashed free GPU blocks to the CPU tier while GPU utilisation exceeds the threshold."""
    while True:
        util = ins.used[i] / p.total_blocks
        if util <= p.offload_threshold:
            break
        if ins.cpu_used[i] >= p.cpu_blocks:
            break
        b = ins.free_head[i]
        while b != NIL and kv.bhash[b] == 0:
            b = kv.nxt[b]
        if b == NIL:
            break
        kv.cpu_has[b] = 1
        kv.cpu_hash[b] = kv.bhash[b]
        kv.cpu_time[b] = ins.kv_clock[i]
        kv.cpu_ntok[b] = kv.ntok[b]
        ins.cpu_used[i] += 1
        ins.offloads[i] += 1
        free_remove(kv, ins, i, b)
        key = kv.bhash[b] ^ kv.salt[i]
        if key in kv.hmap:
            del kv.hmap[key]
        kv.bhash[b] = 0
        kv.ntok[b] = 0
        free_append(kv, ins, i, b)


@njit(cache=True)
def _try_reload(kv, ins, p, i):
    """Bring every CPU-tier block whose hash is not on the GPU back into free GPU blocks
    (ascending original block id), charging transfer latency to the next step."""
    reloaded = False
    lo = i * p.total_blocks
    if ins.cpu_used[i] == 0:
        return False
    for b0 in range(lo, lo + p.total_blocks):
        if kv.cpu_has[b0] == 0:
            continue
        h = kv.cpu_hash[b0]
        if h == 0:
            continue
        if lookup(kv, i, h) != NIL:
            continue
        blk = pop_free(kv, ins, i)
        if blk == NIL:
            break
        kv.ntok[blk] = kv.cpu_ntok[b0]
        kv.ref[blk] = 0
        kv.inuse[blk] = 0
        set_hash(kv, i, blk, h)
        free_append(kv, ins, i, blk)
        ins.pend_lat[i] += p.base_latency + np.int64(np.ceil(p.block / p.bandwidth))
        if ins.kv_clock[i] - kv.cpu_time[b0] < 1000:
            ins.thrash[i] += 1
        kv.cpu_has[b0] = 0
        ins.cpu_used[i] -= 1
        ins.cpu_hits[i] += 1
        reloaded = True
    return reloaded


@njit(cache=True)
def allocate(kv, ins, rq, p, sc, r, start, end, cached, n_cached):
    """KVStore.AllocateKVBlocks: the GPU allocation, falling back to a CPU-tier reload and one
    retry (from a later start if the reload made more of the prefix cached) when tiered."""
    if allocate_gpu(kv, ins, rq, p, sc, r, start, end, cached, n_cached):
        return True
    if p.cpu_blocks <= 0:
        return False
    i = rq.inst[r]
    if _try_reload(kv, ins, p, i):
        n2 = get_cached_blocks(kv, rq, p, i, r, sc.cached2)
        new_start = n2 * p.block
        if new_start > start:
            return allocate_gpu(kv, ins, rq, p, sc, r, new_start, end, sc.cached2, n2)
        return allocate_gpu(kv, ins, rq, p, sc, r, start, end, cached, n_cached)
    ins.cpu_miss[i] += 1
    return False


@njit(cache=True)
def cache_hit_rate(ins, i):
    """Per-block hit rate (GPU hits + CPU reloads over all lookups), 0 when nothing happened."""
    hits = ins.hits[i] + ins.cpu_hits[i]
    total = hits + ins.misses[i] + ins.cpu_miss[i]
    if total == 0:
        return 0.0
    return hits / total
