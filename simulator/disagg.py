"""Prefill/decode disaggregation, Python side: encode a ``DisaggConfig`` for the kernels
(simulator/kernels/disagg.py has the flow) and read the P/D outcome back from the final state."""
from __future__ import annotations


import numpy as np

from .policies.registry import code_of
from .policy_encoding import scorer_table
from .config import DisaggConfig, PolicyConfig, SimConfig
from .kernels import layout as L
from .kernels.disagg import POOL_DECODE, POOL_PREFILL
from .kernels.latency import (RP_BYTES_PER_PARAM, RP_HEADS, RP_HIDDEN, RP_KV_HEADS, RP_LAYERS,
                              TPP_ACT_BPP, TPP_DKV, TPP_LAYERS, TPP_LEN)
from .result import PdOutcome


def pool_rows(dc: DisaggConfig) -> np.ndarray:
    """``I_POOL`` per instance: the prefill pool first, then the decode pool."""
    return np.array([POOL_PREFILL] * dc.prefill_replicas + [POOL_DECODE] * dc.decode_replicas,
                    dtype=np.int64)


def kv_bytes_per_token(cfg: SimConfig) -> float:
    """KV cache bytes one token occupies: 2 (K and V) x layers x KV heads x head dim x bytes per
    parameter from the roofline or trained-physics model config when there is one, else the
    configured value."""
    lat = cfg.latency
    if lat.kind == "roofline" and len(lat.roofline_params) > RP_BYTES_PER_PARAM:
        rp = lat.roofline_params
        head_dim = rp[RP_HIDDEN] / rp[RP_HEADS]
        return 2.0 * rp[RP_LAYERS] * rp[RP_KV_HEADS] * head_dim * rp[RP_BYTES_PER_PARAM]
    if lat.kind == "trained-physics" and len(lat.roofline_params) == TPP_LEN:
        tpv = lat.roofline_params  # KV heads x head dim, in the activation dtype
        return 2.0 * tpv[TPP_LAYERS] * tpv[TPP_DKV] * tpv[TPP_ACT_BPP]
    return float(cfg.disaggregation.kv_bytes_per_token)


def disagg_params(cfg: SimConfig, policy: PolicyConfig, sc_codes: np.ndarray,
                  sc_weights: np.ndarray, P: np.ndarray, PF: np.ndarray):
    """Fill the P/D rows of P and PF; returns the decode pool's scorer table (codes, weights):
    ``decode_scorers`` under weighted routing, else the routing scorer table."""
    dc = cfg.disaggregation
    dcodes, dweights = sc_codes, sc_weights
    if dc.decode_scorers and len(sc_codes):
        dcodes, dweights = scorer_table(policy, dc.decode_scorers)
    P[L.P_PD] = 1
    P[L.P_PD_DECIDER] = code_of("pd-decider", dc.decider)
    P[L.P_PD_THRESH] = dc.prefix_threshold
    P[L.P_PD_PIPELINE] = int(dc.pipelining)
    P[L.P_PD_GRAN] = int(dc.granularity == "block")
    P[L.P_PD_XF_BASE] = dc.base_latency_us
    P[L.P_PD_BP_THRESH] = dc.backpressure_threshold
    P[L.P_PD_BP_RETRY] = dc.backpressure_retry_us
    PF[L.PF_PD_BLOCK_BYTES] = kv_bytes_per_token(cfg) * cfg.block_size
    PF[L.PF_PD_BW] = dc.bandwidth_gbps * 1e3     # GB/s = 1e3 bytes per µs
    return dcodes, dweights


def pd_outcome(st, cfg: SimConfig) -> PdOutcome | None:
    """Read the P/D outcome from the final state arrays (None when monolithic)."""
    if cfg.disaggregation is None:
        return None
    R, I, CL = st.R, st.I, st.CL
    busy = np.array([int(st.SLOG[i][:I[L.I_STEPS, i]].sum()) for i in range(I.shape[1])],
                    dtype=np.int64)
    blocks = int(CL[L.CL_XF_BLOCKS])
    return PdOutcome(
        inst_pool=I[L.I_POOL].copy(), inst_busy_us=busy,
        req_prefill_instance=R[L.R_PD_PREFILL].copy(), req_decode_instance=R[L.R_PD_DECODE].copy(),
        req_phase=R[L.R_PD].copy(), prefill_done_us=R[L.R_PF_DONE].copy(),
        prefill_free_us=R[L.R_PF_FREE].copy(), decode_admit_us=R[L.R_DC_ADMIT].copy(),
        disaggregated=int(CL[L.CL_PD_DISAGG]), transfers=int(CL[L.CL_XF_N]),
        transfer_blocks=blocks, transfer_bytes=blocks * float(st.PF[L.PF_PD_BLOCK_BYTES]),
        transfer_time_us=int(CL[L.CL_XF_TIME]), backpressure=int(CL[L.CL_PD_BP]),
        transfer_queue=int(CL[L.CL_XF_Q]))


def pd_summary(result) -> dict | None:
    """JSON-ready P/D metrics of a run: per-pool busy fraction (step time over the run), transfer
    volume and time, the ``pd_backpressure`` anomaly.  None for a monolithic run."""
    pd = result.pd
    if pd is None:
        return None
    span = float(max(int(np.max(result.inst_sim_ended_us)), 1))
    pools = {}
    for name, code in (("prefill", POOL_PREFILL), ("decode", POOL_DECODE)):
        m = pd.inst_pool == code
        n = int(m.sum())
        pools[name] = {
            "instances": n,
            "busy_fraction": float(pd.inst_busy_us[m].sum()) / (span * max(n, 1)),
        }
    return {
        "pools": pools,
        "disaggregated_requests": pd.disaggregated,
        "transfers": pd.transfers,
        "transfer_blocks": pd.transfer_blocks,
        "transfer_bytes": pd.transfer_bytes,
        "transfer_time_ms_mean": (pd.transfer_time_us / pd.transfers / 1000.0) if pd.transfers else 0.0,
        "pd_backpressure": pd.backpressure,
    }
