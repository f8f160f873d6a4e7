"""Step-time kernels (numba, nopython): β-regression and roofline.

Ports of ``Simulator.getStepTime`` (sim/simulator.go) and ``rooflineStepTime``
(sim/roofline_step.go) of the reference at BLIS cbb0de7b.  Both return whole microseconds
(ticks).  The float operations are done in the reference's order so the results match it bit for
bit; numba does not contract multiply-adds into FMAs without fastmath, which we never enable here.

Also the codes of the two models (``LAT_*``) and the layout of the roofline parameter vector
(``RP_*``), which simulator.latency fills at the input boundary.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# Step-time models (``P[P_LAT_KIND]``)
LAT_BLACKBOX = 0
LAT_ROOFLINE = 1

# ---------------------------------------------------------------------------------------------
# Layout of the roofline parameter vector (``LatencyConfig.roofline_params``, ``st.RP`` here),
# built by simulator.latency.roofline_params.
# Model fields are already resolved (kv heads defaulted to heads, FFN width defaulted to 4*hidden)
# and stored as float64; hardware fields are the raw calibration values in their file units.
# ---------------------------------------------------------------------------------------------
RP_LAYERS = 0  # num_hidden_layers (L)
RP_HIDDEN = 1  # hidden_size (d)
RP_HEADS = 2  # num_attention_heads (H)
RP_KV_HEADS = 3  # num_key_value_heads, defaulted to H when absent/0 (Hkv)
RP_FFN = 4  # intermediate_size, defaulted to 4*d when absent/<=0 (dFF)
RP_BYTES_PER_PARAM = 5  # from torch_dtype (bpp)
RP_TFLOPS_PEAK = 6  # TFlopsPeak, 1e12 FLOP/s
RP_BW_PEAK_TBS = 7  # BwPeakTBs, TB/s
RP_BW_EFF = 8  # BwEffConstant, fraction of peak bandwidth
RP_T_OVERHEAD_US = 9  # TOverheadMicros, fixed per-step overhead (µs)
RP_PER_LAYER_US = 10  # perLayerOverhead (µs per layer)
RP_MFU_PREFILL = 11  # mfuPrefill
RP_MFU_DECODE = 12  # mfuDecode
RP_ALLREDUCE_US = 13  # allReduceLatency (µs; two all-reduces per layer when tp > 1)
RP_LEN = 14


@njit(cache=True)
def blackbox_step_us(beta, prefill_tokens, decode_tokens):
    """β-model step time: ``int64(β0 + β1·prefill_tokens + β2·decode_tokens)`` (truncates toward 0).

    ``prefill_tokens`` is the batch's newly scheduled (cache-miss) prompt tokens and
    ``decode_tokens`` its number of decode requests, as the reference's regression features.
    """
    total = 0.0
    total += beta[0]
    total += beta[1] * np.float64(prefill_tokens)
    total += beta[2] * np.float64(decode_tokens)
    return np.int64(total)


@njit(cache=True, inline="always")
def _go_round(x):
    """Go ``math.Round``: nearest integer, halves away from zero (``x - trunc(x)`` is exact)."""
    t = math.trunc(x)
    if abs(x - t) >= 0.5:
        t += math.copysign(1.0, x)
    return t


@njit(cache=True, inline="always")
def _flops(rp, seq, new_t):
    """(GEMM FLOPs, vector FLOPs) of one request over all layers, before the TP split."""
    d = rp[RP_HIDDEN]
    n_layers = rp[RP_LAYERS]
    n_heads = rp[RP_HEADS]
    n_kv = rp[RP_KV_HEADS]
    d_ff = rp[RP_FFN]
    d_head = d / n_heads
    d_kv = n_kv * d_head
    qkv = 2 * new_t * (d * d + 2 * d * d_kv)
    proj = 2 * new_t * d * d
    gemm = (qkv + proj) * n_layers
    ctx = seq
    if new_t > 1:
        ctx = seq + (new_t - 1) / 2.0
    attn = 4 * n_heads * new_t * ctx * d_head
    rope = 2 * new_t * d
    vector = (5 * n_heads * new_t * ctx) + rope
    gemm += attn * n_layers
    sram = vector * n_layers
    gemm += 2 * new_t * (3 * d * d_ff) * n_layers
    return gemm, sram


@njit(cache=True, inline="always")
def _weight_bytes(rp):
    d = rp[RP_HIDDEN]
    n_layers = rp[RP_LAYERS]
    d_head = d / rp[RP_HEADS]
    d_kv = rp[RP_KV_HEADS] * d_head
    per_layer = d * (d + 2 * d_kv) + (d * d) + (3 * d * rp[RP_FFN])
    return per_layer * n_layers * rp[RP_BYTES_PER_PARAM]


@njit(cache=True, inline="always")
def _dynamic_bytes(rp, weights, seq, new_t):
    """Non-weight HBM bytes of one request: the reference's (total - weights), where total is
    summed as activations + kv_access + kv_growth + weights (its sorted-key order)."""
    d = rp[RP_HIDDEN]
    n_layers = rp[RP_LAYERS]
    bpp = rp[RP_BYTES_PER_PARAM]
    d_head = d / rp[RP_HEADS]
    kv_per_token = 2 * n_layers * rp[RP_KV_HEADS] * d_head * bpp
    growth = kv_per_token * new_t
    access = kv_per_token * seq
    act = n_layers * d * bpp * new_t
    total = 0.0
    total += act
    total += access
    total += growth
    total += weights
    return total - weights


@njit(cache=True)
def roofline_step_us(rp, tp, pf_pi, pf_n, n_pf, dc_pi, dc_n, n_dc):
    """Roofline step time in µs for one batch (port of the reference's rooflineStepTime).

    ``rp``: float64 vector from ``simulator.latency.roofline_params``.  ``tp`` > 0.
    ``pf_pi[:n_pf]`` / ``pf_n[:n_pf]``: ProgressIndex and NumNewTokens of the batch's prefill
    requests; ``dc_pi[:n_dc]``: ProgressIndex of its decode requests.  ``dc_n`` is accepted for
    symmetry but, as in the reference, every decode request counts exactly one new token.
    Prefill and decode are each bounded by max(compute, memory) with the weights read once per
    phase; layer, all-reduce (tp > 1) and fixed overheads are added; the total is rounded to the
    nearest µs (halves away from zero, Go math.Round).
    """
    tp_f = np.float64(tp)
    peak_flops = rp[RP_TFLOPS_PEAK] * 1e12
    peak_bw = rp[RP_BW_PEAK_TBS] * 1e12
    eff_bw = peak_bw * rp[RP_BW_EFF]
    vector_peak = peak_flops * 0.10

    p_compute = 0.0
    p_memory = 0.0
    d_compute = 0.0
    d_memory = 0.0
    weights = _weight_bytes(rp)

    if n_pf > 0:
        gemm_sum = 0.0
        vec_sum = 0.0
        dyn_sum = 0.0
        for i in range(n_pf):
            seq = np.float64(pf_pi[i])
            new_t = np.float64(pf_n[i])
            g, v = _flops(rp, seq, new_t)
            gemm_sum += g / tp_f
            vec_sum += v / tp_f
            dyn_sum += _dynamic_bytes(rp, weights, seq, new_t) / tp_f
        w = weights / tp_f
        p_compute = (gemm_sum / (peak_flops * rp[RP_MFU_PREFILL])) + (vec_sum / vector_peak)
        p_memory = (w + dyn_sum) / eff_bw

    if n_dc > 0:
        gemm_sum = 0.0
        vec_sum = 0.0
        dyn_sum = 0.0
        for i in range(n_dc):
            seq = np.float64(dc_pi[i])
            g, v = _flops(rp, seq, 1.0)
            gemm_sum += g / tp_f
            vec_sum += v / tp_f
            dyn_sum += _dynamic_bytes(rp, weights, seq, 1.0) / tp_f
        w = weights / tp_f
        d_compute = (gemm_sum / (peak_flops * rp[RP_MFU_DECODE])) + (vec_sum / vector_peak)
        d_memory = (w + dyn_sum) / eff_bw

    hw_s = max(p_compute, p_memory) + max(d_compute, d_memory)
    n_layers = rp[RP_LAYERS]
    layer_s = (n_layers * rp[RP_PER_LAYER_US]) / 1e6
    comm_s = 0.0
    if tp > 1:
        comm_s = (n_layers * 2 * rp[RP_ALLREDUCE_US]) / 1e6
    total_us = (hw_s * 1e6) + (layer_s * 1e6) + (comm_s * 1e6) + rp[RP_T_OVERHEAD_US]
    return np.int64(_go_round(total_us))
