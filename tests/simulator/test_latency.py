"""Latency-model resolution (defaults.yaml / roofline inputs) and the step-time kernels."""
from __future__ import annotations

import csv
import gzip
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from simulator import latency as L
from simulator.errors import InputError
from simulator.kernels import latency as KL
from simulator.kernels.latency import _go_round, blackbox_step_us, roofline_step_us

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "blis_evo" / "data"
LLAMA = "meta-llama/llama-3.1-8b-instruct"
LLAMA_DIR = DATA / "model_configs" / "llama-3.1-8b-instruct"
HW = DATA / "hardware_config.json"
PARITY = ROOT / "tests" / "fixtures" / "blis_parity"
EMPTY = np.zeros(0, dtype=np.int64)


def _roofline(tp=2, **kw):
    return L.resolve_latency(model=LLAMA, hardware="H100", tp=tp, model_config_folder=LLAMA_DIR,
                             hardware_config=HW, latency_model="roofline", **kw)


def _write_cfg(tmp_path, cfg: dict) -> Path:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


# ------------------------------------------------------------------ defaults.yaml


def test_load_shipped_defaults():
    d = L.load_defaults(L.default_data_path("defaults.yaml"))
    assert len(d["models"]) == 109
    assert len(d["defaults"]) == 28
    assert L.load_defaults(None)["version"] == d["version"]


def test_lookup_llama_h100_tp1():
    r = L.resolve_latency(model=LLAMA, hardware="H100", tp=1)
    assert r.config.kind == "blackbox"
    assert r.config.alpha == (232.46191091038054, 1.752360364195244, 3357.4400353290152)
    assert r.config.beta == (5752.705191348184, 17.25086436834028, 5.999143920128404)
    assert r.total_kv_blocks == 29205
    assert r.vllm_version == "vllm/vllm-openai:v0.8.4"  # filled from defaults[model]
    assert (r.hardware, r.tp, r.model) == ("H100", 1, LLAMA)


def test_lookup_lowercases_model_and_fills_defaults():
    r = L.resolve_latency(model="Meta-Llama/Llama-3.1-8B-Instruct")
    assert r.model == LLAMA
    assert (r.hardware, r.tp) == ("H100", 2)  # defaults[model]
    assert r.config.beta == (6910.420479880494, 17.67057489844186, 2.8377471109943855)
    assert r.total_kv_blocks == 132139


def test_explicit_total_kv_blocks_wins():
    r = L.resolve_latency(model=LLAMA, hardware="H100", tp=1, total_kv_blocks_explicit=True)
    assert r.total_kv_blocks is None
    assert r.config.beta[0] == 5752.705191348184


def test_explicit_coefficients_skip_lookup():
    r = L.resolve_latency(model="Some/Model", alpha=(0, 0, 0), beta=(1, 2, 3))
    assert r.config.kind == "blackbox" and r.config.beta == (1.0, 2.0, 3.0)
    assert r.model == "Some/Model" and r.total_kv_blocks is None


def test_forced_blackbox_uses_defaults_even_with_roofline_paths():
    r = L.resolve_latency(model=LLAMA, hardware="H100", tp=1, model_config_folder=LLAMA_DIR,
                          hardware_config=HW, latency_model="blackbox")
    assert r.config.kind == "blackbox" and r.total_kv_blocks == 29205


def test_auto_picks_roofline_when_paths_given():
    auto = L.resolve_latency(model=LLAMA, hardware="H100", tp=2, model_config_folder=LLAMA_DIR,
                             hardware_config=HW)
    assert auto.config == _roofline().config
    assert auto.config.kind == "roofline" and auto.total_kv_blocks is None


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        (dict(model="nope/model"), "--alpha-coeffs"),
        (dict(model="nope/model", latency_model="blackbox"), "--beta-coeffs"),
        (dict(model=LLAMA, hardware="H100", tp=3), "--alpha-coeffs"),
        (dict(model=LLAMA, alpha=(1.0, 2.0)), "--alpha-coeffs"),
        (dict(model=LLAMA, beta=(1.0, 2.0)), "--beta-coeffs"),
        (dict(model=LLAMA, alpha=(1.0, 2.0, 3.0)), "--beta-coeffs"),  # zero step times
        (dict(model=LLAMA, beta=(1.0, float("nan"), 3.0)), "--beta-coeffs"),
        (dict(model=LLAMA, latency_model="fast"), "--latency-model"),
        (dict(model=""), "--model"),
        (dict(model=LLAMA, tp=-1), "--tp"),
        (dict(model=LLAMA, latency_model="roofline", hardware="H100", tp=1), "--model-config-folder"),
        (dict(model=LLAMA, model_config_folder=LLAMA_DIR, hardware="H100", tp=1), "--hardware-config"),
        (dict(model=LLAMA, model_config_folder=LLAMA_DIR, hardware_config=HW, hardware="H100"), "--tp"),
        (dict(model=LLAMA, model_config_folder=LLAMA_DIR, hardware_config=HW, tp=1), "--hardware"),
        (dict(model=LLAMA, model_config_folder=LLAMA_DIR, hardware_config=HW, hardware="B200", tp=1),
         "--hardware"),
        (dict(model=LLAMA, model_config_folder="/nonexistent", hardware_config=HW, hardware="H100",
              tp=1), "--model-config-folder"),
        (dict(model=LLAMA, defaults_path="/nonexistent.yaml"), "--defaults-filepath"),
    ],
)
def test_errors_name_the_flag(kwargs, flag):
    with pytest.raises(InputError) as ei:
        L.resolve_latency(**kwargs)
    msg = str(ei.value)
    assert flag in msg and "\n" not in msg


def test_defaults_row_without_kv_blocks(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("models:\n- {id: m, GPU: X, tensor_parallelism: 1, vllm_version: v,"
                 " alpha_coeffs: [0, 0, 0], beta_coeffs: [1, 2, 3]}\n")
    with pytest.raises(InputError, match="--total-kv-blocks"):
        L.resolve_latency(model="M", hardware="X", tp=1, vllm_version="v", defaults_path=p)
    r = L.resolve_latency(model="M", hardware="X", tp=1, vllm_version="v", defaults_path=p,
                          total_kv_blocks_explicit=True)
    assert r.config.beta == (1.0, 2.0, 3.0) and r.model == "m"


# ------------------------------------------------------------------ roofline inputs


def test_roofline_params_layout_llama():
    rp = L.roofline_params(LLAMA_DIR / "config.json", HW, "H100")
    assert len(rp) == KL.RP_LEN
    assert rp[KL.RP_LAYERS] == 32 and rp[KL.RP_HIDDEN] == 4096 and rp[KL.RP_HEADS] == 32
    assert rp[KL.RP_KV_HEADS] == 8 and rp[KL.RP_FFN] == 14336 and rp[KL.RP_BYTES_PER_PARAM] == 2
    assert rp[KL.RP_TFLOPS_PEAK] == 989.5 and rp[KL.RP_BW_PEAK_TBS] == 3.35
    assert rp[KL.RP_BW_EFF] == 0.72 and rp[KL.RP_T_OVERHEAD_US] == 500.0
    assert rp[KL.RP_PER_LAYER_US] == 20.0 and rp[KL.RP_ALLREDUCE_US] == 20.0
    assert rp[KL.RP_MFU_PREFILL] == 0.65 and rp[KL.RP_MFU_DECODE] == 0.12


def test_roofline_params_text_config_and_defaults(tmp_path):
    folder = _write_cfg(tmp_path, {
        "hidden_size": 1, "torch_dtype": "float32",
        "text_config": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8},
    })
    rp = L.roofline_params(folder / "config.json", HW, "A100-SXM")
    assert rp[KL.RP_HIDDEN] == 256 and rp[KL.RP_LAYERS] == 4
    assert rp[KL.RP_KV_HEADS] == 8  # defaults to heads
    assert rp[KL.RP_FFN] == 1024  # defaults to 4 * hidden
    assert rp[KL.RP_BYTES_PER_PARAM] == 4 and rp[KL.RP_TFLOPS_PEAK] == 312


@pytest.mark.parametrize("cfg, field", [
    ({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "torch_dtype": "fp64"},
     "torch_dtype"),
    ({"num_hidden_layers": 2, "hidden_size": 64, "torch_dtype": "bfloat16"}, "num_attention_heads"),
    ({"num_hidden_layers": 0, "hidden_size": 64, "num_attention_heads": 4, "torch_dtype": "fp8"},
     "num_hidden_layers"),
])
def test_roofline_params_model_validation(tmp_path, cfg, field):
    folder = _write_cfg(tmp_path, cfg)
    with pytest.raises(InputError, match=field):
        L.roofline_params(folder / "config.json", HW, "H100")


def test_roofline_params_hardware_validation(tmp_path):
    hw = json.loads(HW.read_text())
    hw["H100"]["mfuDecode"] = 0
    p = tmp_path / "hw.json"
    p.write_text(json.dumps(hw))
    with pytest.raises(InputError, match="mfuDecode") as ei:
        L.roofline_params(LLAMA_DIR / "config.json", p, "H100")
    assert "--hardware-config" in str(ei.value)


# ------------------------------------------------------------------ kernels


def test_blackbox_step_truncates_toward_zero():
    beta = np.array([5752.705191348184, 17.25086436834028, 5.999143920128404])
    assert blackbox_step_us(beta, 100, 3) == int(5752.705191348184 + 17.25086436834028 * 100
                                                 + 5.999143920128404 * 3)
    assert blackbox_step_us(np.array([-1.5, 0.0, 0.0]), 0, 0) == -1
    assert blackbox_step_us(np.array([0.999, 0.0, 0.0]), 0, 0) == 0


def test_go_round_halves_away_from_zero():
    assert _go_round(2.5) == 3.0 and _go_round(-2.5) == -3.0
    assert _go_round(0.49999999999999994) == 0.0 and _go_round(1.4999) == 1.0


def _oracle_us(rp, tp, prefill, decode) -> Fraction:
    """Exact (rational) step time in µs from the reference's roofline formulas (BLIS cbb0de7b,
    sim/roofline_step.go)."""
    F = Fraction
    Lr, d, H, Hkv, dff, bpp = (F(rp[i]) for i in range(6))
    peak, bw, eff, tover, per_layer, mfu_p, mfu_d, ar = (F(rp[i]) for i in range(6, 14))
    dh = d / H
    dkv = Hkv * dh
    weights = Lr * bpp * (d * (d + 2 * dkv) + d * d + 3 * d * dff)

    def phase(reqs, mfu):
        if not reqs:
            return F(0)
        gemm = vec = dyn = F(0)
        for s, n in reqs:
            s, n = F(s), F(n)
            ctx = s + (n - 1) / 2 if n > 1 else s
            gemm += Lr * (2 * n * (d * d + 2 * d * dkv) + 2 * n * d * d + 4 * H * n * ctx * dh
                          + 6 * n * d * dff)
            vec += Lr * (5 * H * n * ctx + 2 * n * d)
            dyn += 2 * Lr * Hkv * dh * bpp * (n + s) + Lr * d * bpp * n
        compute = gemm / tp / (peak * F(10**12) * mfu) + vec / tp / (F(1, 10) * peak * F(10**12))
        memory = (weights + dyn) / tp / (bw * F(10**12) * eff)
        return max(compute, memory)

    hw_s = phase(prefill, mfu_p) + phase([(s, 1) for s in decode], mfu_d)
    comm = 2 * Lr * ar if tp > 1 else F(0)
    return hw_s * 10**6 + Lr * per_layer + comm + tover


def _run_kernel(rp, tp, prefill, decode):
    pf = np.array(prefill, dtype=np.int64).reshape(-1, 2)
    pf_pi = np.ascontiguousarray(pf[:, 0]) if len(prefill) else EMPTY
    pf_n = np.ascontiguousarray(pf[:, 1]) if len(prefill) else EMPTY
    dc_pi = np.array(decode, dtype=np.int64) if decode else EMPTY
    dc_n = np.ones(len(decode), dtype=np.int64)
    return int(roofline_step_us(np.asarray(rp, dtype=np.float64), tp, pf_pi, pf_n, len(prefill),
                                dc_pi, dc_n, len(decode)))


BATCHES = [
    ([(0, 85)], []),
    ([], [85]),
    ([(0, 2048)], []),
    ([(512, 256), (0, 1)], [100, 2000, 7]),
    ([], list(range(1, 400, 3))),
    ([(3000, 1024)], [50, 60, 70, 80]),
    ([(0, 1)], []),
]


@pytest.mark.parametrize("tp", [1, 2, 4])
@pytest.mark.parametrize("prefill, decode", BATCHES)
def test_roofline_kernel_matches_formula_oracle(tp, prefill, decode):
    rp = L.roofline_params(LLAMA_DIR / "config.json", HW, "H100")
    exact = _oracle_us(rp, tp, prefill, decode)
    got = _run_kernel(rp, tp, prefill, decode)
    # The kernel rounds a float64 evaluation; it may differ from the exact value only by float
    # noise, so it must equal the exact value rounded unless that sits right on a .5 boundary.
    assert abs(Fraction(got) - exact) <= Fraction(1, 2) + Fraction(1, 10**6)
    if abs(exact - int(exact) - Fraction(1, 2)) > Fraction(1, 10**6):
        assert got == round(exact)


def test_roofline_kernel_mha_model_oracle(tmp_path):
    folder = _write_cfg(tmp_path, {"num_hidden_layers": 12, "hidden_size": 768,
                                   "num_attention_heads": 12, "torch_dtype": "float16"})
    rp = L.roofline_params(folder / "config.json", HW, "A100-SXM")
    for tp in (1, 2):
        for prefill, decode in BATCHES:
            exact = _oracle_us(rp, tp, prefill, decode)
            got = _run_kernel(rp, tp, prefill, decode)
            assert abs(Fraction(got) - exact) <= Fraction(1, 2) + Fraction(1, 10**6)


def test_roofline_empty_batch_is_overheads_only():
    rp = _roofline().config.roofline_params
    assert _run_kernel(rp, 2, [], []) == 500 + 32 * 20 + 2 * 32 * 20
    assert _run_kernel(rp, 1, [], []) == 500 + 32 * 20


def test_roofline_single_prefill_plausible_and_matches_parity_fixture():
    rp = _roofline(tp=2).config.roofline_params
    step = _run_kernel(rp, 2, [(0, 85)], [])
    assert 1000 < step < 20000  # a few ms

    case = json.loads((PARITY / "single_roofline.json").read_text())
    assert "roofline" in case["flags"] and case["flags"][case["flags"].index("--tp") + 1] == "2"
    req0 = next(r for r in case["requests"] if r["requestID"] == "request_0")
    assert req0["num_prefill_tokens"] == 85 and req0["scheduling_delay_ms"] == 0
    with gzip.open(PARITY / case["trace"], "rt", newline="") as fh:
        arrivals = sorted(float(row["arrival_time"]) for row in csv.DictReader(fh))
    # request_0 is the first arrival and the next one comes after its first step ended, so it
    # was alone in the batch: with alpha = 0 its TTFT is exactly that step's time.
    assert arrivals[0] == req0["arrived_at"]
    assert arrivals[1] > req0["arrived_at"] + req0["ttft_ms"] / 1000
    assert step == round(req0["ttft_ms"] * 1000) == 5321
