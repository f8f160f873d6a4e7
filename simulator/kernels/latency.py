"""Step-time kernels (numba, nopython): β-regression, roofline and trained-physics.

Ports of ``Simulator.getStepTime`` (sim/simulator.go) and ``rooflineStepTime``
(sim/roofline_step.go) of the reference at BLIS cbb0de7b, and of the trained-physics step time
(sim/latency/trained_physics_model.go) of BLIS f90a1e3a.  Both return whole microseconds
(ticks).  The float operations are done in the reference's order so the results match it bit for
bit; numba does not contract multiply-adds into FMAs without fastmath, which we never enable here.

Also the codes of the models (``LAT_*``) and the layouts of the roofline (``RP_*``) and
trained-physics (``TPP_*``) parameter vectors, which simulator.latency fills at the input boundary.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# Step-time models (``P[P_LAT_KIND]``)
LAT_BLACKBOX = 0
LAT_ROOFLINE = 1
LAT_TRAINED_PHYSICS = 2
LAT_KINDS = {"blackbox": LAT_BLACKBOX, "roofline": LAT_ROOFLINE, "trained-physics": LAT_TRAINED_PHYSICS}

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

# ---------------------------------------------------------------------------------------------
# Layout of the trained-physics parameter vector (``LatencyConfig.roofline_params`` when the kind
# is trained-physics; ``st.RP`` here), built by simulator.latency.trained_physics_params.  Every
# integer quantity is already resolved with the reference's integer arithmetic (head dim =
# hidden // heads, MoE layer split, ...) and stored as float64.
# ---------------------------------------------------------------------------------------------
TPP_LAYERS = 0  # L: transformer layers
TPP_MOE_LAYERS = 1  # MoE layers (0 for dense models)
TPP_DENSE_LAYERS = 2  # dense-FFN layers (L for dense models)
TPP_HIDDEN = 3  # d
TPP_HEADS = 4  # attention heads
TPP_HEAD_DIM = 5  # d_h = hidden // heads
TPP_DKV = 6  # kv_heads * d_h
TPP_DFF_MOE = 7  # routed-expert FFN width
TPP_DFF_DENSE = 8  # dense-layer FFN width
TPP_KEFF = 9  # experts per token, at least 1
TPP_EXPERTS = 10  # routed experts (0 for dense)
TPP_IS_MOE = 11  # 1.0 when the model has >= 2 experts
TPP_INTERLEAVED = 12  # 1.0 for interleaved MoE/dense architectures (per-MoE-layer overhead on)
TPP_TP = 13  # tensor parallelism
TPP_WEIGHT_BPP = 14  # bytes per weight parameter (quantization-aware)
TPP_ACT_BPP = 15  # bytes per activation element (compute dtype)
TPP_DP = 16  # data parallelism (>= 1; > 1 only for MoE)
TPP_MOE_GROUP = 17  # flattened MoE group: tp*dp for MoE, tp for dense
TPP_SHARED_FFN = 18  # shared-expert FFN width (0: none)
TPP_ALL2ALL = 19  # 1.0: top-k all-to-all dispatch volume; 0.0: all-gather (hidden-state) volume
TPP_FLOPS_US = 20  # peak FLOP per µs (FP8 peak for 1-byte weights on FP8-capable GPUs)
TPP_BW_US = 21  # HBM bytes per µs
TPP_PREFILL_SPLIT = 22  # 1.0: prefill = b1a*compute + b1b*kv; 0.0: b1*max(compute, kv)
TPP_DECODE_SPLIT = 23  # 1.0: decode = b2a*compute + b2b*kv; 0.0: b2*max(compute, kv)
TPP_BETA = 24  # 11 coefficients from here: b1(a), b2(a), b3 weights, b4 TP comm, b5 per layer,
#                b6 per request, b7 per step, b8 per MoE layer, b1b prefill kv, b2b decode kv, bEP
TPP_NBETA = 11
TPP_LEN = TPP_BETA + TPP_NBETA
_KV_ELEM_BYTES = 2.0  # KV cache elements are 16-bit whatever the weight precision


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


# ---------------------------------------------------------------------------------------------
# Trained-physics (BLIS f90a1e3a)
# ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def tp_prefill_attn_flops(tpv, new_tokens, input_len):
    """Attention FLOPs one prefill request adds (per layer, before the DP split): the reference
    sizes the attended span by the request's whole prompt plus half the new chunk."""
    h_per_gpu = tpv[TPP_HEADS] / tpv[TPP_TP]
    ti = np.float64(new_tokens)
    si = np.float64(input_len)
    return 4 * h_per_gpu * ti * (si + ti / 2) * tpv[TPP_HEAD_DIM]


@njit(cache=True, inline="always")
def _tp_moe_ffn_flops(tpv, tokens, tpdp):
    """FFN FLOPs of a token population: routed experts (busiest GPU of a balanced placement),
    shared experts and dense layers."""
    d = tpv[TPP_HIDDEN]
    n_moe = tpv[TPP_MOE_LAYERS]
    n_dense = tpv[TPP_DENSE_LAYERS]
    flops = 0.0
    if n_moe > 0:
        per_gpu_tokens = tokens * tpv[TPP_KEFF] / tpv[TPP_MOE_GROUP]
        flops += n_moe * per_gpu_tokens * 6 * d * tpv[TPP_DFF_MOE]
        if tpv[TPP_SHARED_FFN] != 0:
            flops += n_moe * tokens * 6 * d * tpv[TPP_SHARED_FFN] / tpdp
    if n_dense > 0:
        flops += n_dense * tokens * 1 * 6 * d * tpv[TPP_DFF_DENSE] / tpdp
    return flops


@njit(cache=True, inline="always")
def _tp_allreduce(tpv, units, tokens):
    """Ring all-reduce basis (µs before its coefficient) of ``units`` reductions of ``tokens``
    hidden states over the TP group; 0 at tp = 1."""
    tp = tpv[TPP_TP]
    if tp <= 1:
        return 0.0
    factor = (tp - 1) / tp
    return units * tokens * tpv[TPP_HIDDEN] * tpv[TPP_ACT_BPP] * 2.0 * factor / tpv[TPP_BW_US]


@njit(cache=True)
def trained_physics_step_us(tpv, pf_tokens, pf_attn, dc_tokens, sum_ctx, batch_size):
    """Trained-physics step time in whole µs (port of the reference's TrainedPhysicsModel.StepTime).

    ``pf_tokens``: new prefill tokens of the batch; ``pf_attn``: the sum of
    :func:`tp_prefill_attn_flops` over its prefill requests (in batch order); ``dc_tokens``: its
    decode requests (one token each); ``sum_ctx``: the sum of their ProgressIndex;
    ``batch_size``: every request in the batch.  The roofline basis terms (prefill compute and KV
    writes, decode compute and KV reads, weight loading, TP all-reduce, MoE all-reduce or
    dispatch) are scaled by the fitted β and the per-layer, per-request, per-step and per-MoE-layer
    overheads added; the float sum is truncated toward zero and is at least 1.
    """
    if batch_size == 0:
        return np.int64(1)
    n_layers = tpv[TPP_LAYERS]
    d = tpv[TPP_HIDDEN]
    dkv = tpv[TPP_DKV]
    tp = tpv[TPP_TP]
    dp = tpv[TPP_DP]
    tpdp = tp * dp
    h_per_gpu = tpv[TPP_HEADS] / tp
    d_h = tpv[TPP_HEAD_DIM]
    flops_us = tpv[TPP_FLOPS_US]
    bw_us = tpv[TPP_BW_US]
    b = TPP_BETA
    pf = np.float64(pf_tokens)
    dc = np.float64(dc_tokens)
    ctx = np.float64(sum_ctx)

    t_pf_compute = 0.0
    t_pf_kv = 0.0
    if pf > 0:
        proj = n_layers * 2 * pf * d * (2 * d + 2 * dkv) / tpdp
        attn = n_layers * pf_attn / dp
        ffn = _tp_moe_ffn_flops(tpv, pf, tpdp)
        t_pf_compute = (proj + attn + ffn) / flops_us
        t_pf_kv = n_layers * 2 * (dkv / tpdp) * pf * _KV_ELEM_BYTES / bw_us

    t_dc_compute = 0.0
    t_dc_kv = 0.0
    if dc > 0:
        proj = n_layers * 2 * dc * d * (2 * d + 2 * dkv) / tpdp
        attn = n_layers * 4 * h_per_gpu * ctx * d_h / dp
        ffn = _tp_moe_ffn_flops(tpv, dc, tpdp)
        t_dc_compute = (proj + attn + ffn) / flops_us
        t_dc_kv = n_layers * 2 * (dkv / tpdp) * _KV_ELEM_BYTES * (ctx + dc) / bw_us

    bpp = tpv[TPP_WEIGHT_BPP]
    n_moe = tpv[TPP_MOE_LAYERS]
    n_dense = tpv[TPP_DENSE_LAYERS]
    bytes_attn = n_layers * d * (2 * d + 2 * dkv) * bpp / tp
    bytes_ffn = 0.0
    if n_moe > 0:
        experts_per_gpu = tpv[TPP_EXPERTS] / tpv[TPP_MOE_GROUP]
        bytes_ffn += n_moe * experts_per_gpu * 3 * d * tpv[TPP_DFF_MOE] * bpp
        if tpv[TPP_SHARED_FFN] > 0:
            bytes_ffn += n_moe * 3 * d * tpv[TPP_SHARED_FFN] * bpp / tp
    if n_dense > 0:
        bytes_ffn += n_dense * 1 * 3 * d * tpv[TPP_DFF_DENSE] * bpp / tp
    t_weight = (bytes_attn + bytes_ffn) / bw_us

    total = pf + dc
    t_tp_attn = 0.0
    t_tp_dense = 0.0
    if tp > 1:
        t_tp_attn = _tp_allreduce(tpv, n_layers, total) / dp
        t_tp_dense = _tp_allreduce(tpv, n_dense, total) / dp
    is_moe = tpv[TPP_IS_MOE] != 0
    t_moe_reduce = 0.0
    if is_moe and n_moe > 0 and dp == 1 and tp > 1:
        t_moe_reduce = _tp_allreduce(tpv, n_moe, total)
    t_moe_dispatch = 0.0
    if is_moe and dp > 1:
        group = tpv[TPP_MOE_GROUP]
        if tpv[TPP_ALL2ALL] != 0:
            comm_tokens = (total / dp) * tpv[TPP_KEFF] * (group - 1) / group * 2
            per_layer = comm_tokens * d * tpv[TPP_ACT_BPP] / bw_us
        else:
            per_layer = (total / dp) * (group - 1) / group * 2 * d * tpv[TPP_ACT_BPP] / bw_us
        t_moe_dispatch = per_layer * n_moe

    if tpv[TPP_PREFILL_SPLIT] != 0:
        prefill_term = tpv[b + 0] * t_pf_compute + tpv[b + 8] * t_pf_kv
    else:
        prefill_term = tpv[b + 0] * max(t_pf_compute, t_pf_kv)
    if tpv[TPP_DECODE_SPLIT] != 0:
        decode_term = tpv[b + 1] * t_dc_compute + tpv[b + 9] * t_dc_kv
    else:
        decode_term = tpv[b + 1] * max(t_dc_compute, t_dc_kv)
    moe_scaling = 1.0 if tpv[TPP_INTERLEAVED] != 0 else 0.0

    step = (prefill_term
            + decode_term
            + tpv[b + 2] * t_weight
            + tpv[b + 3] * (t_tp_attn + t_tp_dense + t_moe_reduce)
            + tpv[b + 10] * t_moe_dispatch
            + tpv[b + 4] * n_layers
            + tpv[b + 5] * np.float64(batch_size)
            + tpv[b + 6]
            + tpv[b + 7] * moe_scaling * n_moe)
    if not step < 9.223372036854775807e18:  # NaN or beyond int64: the reference clamps to max
        return np.int64(9223372036854775807)
    t = np.int64(step)
    if t < 1:
        t = np.int64(1)
    return t
