"""64-bit chained block hashes of token sequences (stand-in for the reference's SHA-256 hex).

Only hash *equality* matters in BLIS (KV prefix reuse, router prefix index), so a fast
FNV-style fold per block plus a splitmix64 finaliser is used.  The hash of a token sequence of
length L is defined blockwise with block size B: full blocks chain
``h_k = chunk(h_{k-1}, fold(block_k))``; a trailing partial block is folded into
``partial(h, acc, L)``.  The rolling state (h, acc, length) lets the kernel hash content as it is
stored, in O(1) per token.  0 is reserved for "no hash".
"""
import numpy as np
from numba import njit

FNV_OFFSET = np.int64(-3750763034362895579)  # 0xcbf29ce484222325 as int64
FNV_PRIME = np.int64(1099511628211)
SEED = np.int64(0x5BD1E9955BD1E995)
PARTIAL_TAG = np.int64(0x2545F4914F6CDD1D)
GOLDEN = np.int64(0x9E3779B97F4A7C15 - (1 << 64))


@njit(cache=True, inline="always")
def mix64(x):
    """splitmix64 finaliser on int64 bits (logical shifts emulated with masks)."""
    x = (x ^ ((x >> 30) & 0x3FFFFFFFF)) * np.int64(-4658895280553007687)  # 0xbf58476d1ce4e5b9
    x = (x ^ ((x >> 27) & 0x1FFFFFFFFF)) * np.int64(-7723592293110705685)  # 0x94d049bb133111eb
    return x ^ ((x >> 31) & 0x1FFFFFFFF)


@njit(cache=True, inline="always")
def fold_token(acc, tok):
    """Fold one token id into a block accumulator."""
    return (acc ^ (np.int64(tok) + 1)) * FNV_PRIME


@njit(cache=True, inline="always")
def chunk_hash(prev, acc):
    """Hash of a sequence whose last full block has accumulator ``acc``; never 0."""
    h = mix64(prev * np.int64(31) + acc)
    return h if h != 0 else np.int64(1)


@njit(cache=True, inline="always")
def partial_hash(prev, acc, length):
    """Hash of a sequence ending in a partial block (distinct from every full-block hash)."""
    h = mix64(prev ^ (acc * GOLDEN) ^ (length * PARTIAL_TAG) ^ PARTIAL_TAG)
    return h if h != 0 else np.int64(2)


@njit(cache=True)
def prefix_hash(tokens, start, length, block, aligned, aptr):
    """Hash of ``tokens[start:start+length]`` using precomputed aligned hashes ``aligned[aptr + k]``
    (hash of the first (k+1)*block tokens) for the full blocks; O(block) for the remainder."""
    k = length // block
    prev = SEED if k == 0 else aligned[aptr + k - 1]
    rem = length - k * block
    if rem == 0:
        return prev
    acc = FNV_OFFSET
    base = start + k * block
    for j in range(rem):
        acc = fold_token(acc, tokens[base + j])
    return partial_hash(prev, acc, np.int64(length))


@njit(cache=True)
def aligned_block_hashes(tokens, tok_ptr, n_in, block, out_ptr):
    """Hashes of every full-block prefix of each request's *input*: out[out_ptr[r] + k] = hash of
    the first (k+1)*block input tokens of request r.  ``out_ptr`` has n+1 entries."""
    n = n_in.shape[0]
    out = np.empty(out_ptr[n], dtype=np.int64)
    for r in range(n):
        h = SEED
        base = tok_ptr[r]
        o = out_ptr[r]
        nb = n_in[r] // block
        for k in range(nb):
            acc = FNV_OFFSET
            s = base + k * block
            for j in range(block):
                acc = fold_token(acc, tokens[s + j])
            h = chunk_hash(h, acc)
            out[o + k] = h
    return out


@njit(cache=True)
def full_input_hashes(tokens, tok_ptr, n_in, block, aligned, aptr):
    """Hash of each request's whole input (the prefix-affinity routing policy's key)."""
    n = n_in.shape[0]
    out = np.empty(n, dtype=np.int64)
    for r in range(n):
        out[r] = prefix_hash(tokens, tok_ptr[r], n_in[r], block, aligned, aptr[r])
    return out
