"""Trained-physics step time (simulator.kernels.latency) and its resolution (simulator.latency):
input errors as one-line messages naming the value and what is available, exit 2 from the CLI;
properties of the step time (positive, non-decreasing in prefill tokens and decode batch size,
MoE terms absent for dense models)."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator.latency as L
from simulator.errors import InputError
from simulator.kernels import latency as K

DATA = Path(__file__).resolve().parents[2] / "blis_evo" / "data"
LLAMA = "meta-llama/llama-3.1-8b-instruct"
MIXTRAL = "mistralai/mixtral-8x7b-v0.1"


def resolve(model=LLAMA, **kw):
    kw.setdefault("hardware", "H100")
    kw.setdefault("tp", 1)
    return L.resolve_latency(model=model, latency_model="trained-physics", **kw)


def tpv(model=LLAMA, **kw) -> np.ndarray:
    return np.asarray(resolve(model, **kw).config.roofline_params, dtype=np.float64)


def step(v, prefill=(), decode=()):
    """Step time of a batch: ``prefill`` = [(new tokens, input len)], ``decode`` = [progress]."""
    attn = 0.0
    for n, s in prefill:
        attn += K.tp_prefill_attn_flops(v, n, s)
    return int(K.trained_physics_step_us(v, sum(n for n, _ in prefill), attn, len(decode),
                                         sum(decode), len(prefill) + len(decode)))


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------


def test_resolves_with_shipped_coefficients():
    r = resolve()
    assert r.config.kind == "trained-physics"
    assert r.config.alpha == (15563.199579, 777.3455, 45.907545)
    assert len(r.config.beta) == 11
    assert len(r.config.roofline_params) == K.TPP_LEN
    assert r.config.context_tokens == 131072
    assert r.model == LLAMA


def test_cli_coefficients_override_defaults():
    r = resolve(alpha=(1.0, 2.0, 3.0), beta=(1, 0, 1, 1, 10, 1, 100))
    v = r.config.roofline_params
    assert r.config.alpha == (1.0, 2.0, 3.0)
    assert v[K.TPP_PREFILL_SPLIT] == 0 and v[K.TPP_DECODE_SPLIT] == 0
    assert v[K.TPP_BETA + 10] == v[K.TPP_BETA + 3]  # the dispatch coefficient defaults to TP's


def test_moe_layout():
    v = tpv(MIXTRAL, tp=2)
    assert v[K.TPP_IS_MOE] == 1 and v[K.TPP_MOE_LAYERS] == 32 and v[K.TPP_DENSE_LAYERS] == 0
    assert v[K.TPP_EXPERTS] == 8 and v[K.TPP_KEFF] == 2 and v[K.TPP_MOE_GROUP] == 2
    scout = tpv("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic", tp=4)
    assert scout[K.TPP_INTERLEAVED] == 1 and scout[K.TPP_MOE_LAYERS] == 24
    assert scout[K.TPP_WEIGHT_BPP] == 1.0 and scout[K.TPP_FLOPS_US] == 1979.0e6  # FP8 peak


@pytest.mark.parametrize("kw, needles", [
    (dict(model="acme/no-such-model"), ["no-such-model", "available:", "llama-3.1-8b-instruct",
                                        "--model-config-folder"]),
    (dict(hardware="B200"), ["'B200'", "available: A100-80, A100-SXM, H100, L40S"]),
    (dict(tp=3), ["--tp 3", "32 attention heads, 8 KV heads", "valid --tp values: 1, 2, 4, 8"]),
    (dict(dp=2), ["--dp 2", "dense"]),
    (dict(model=MIXTRAL, tp=2, dp=2, moe_comm_backend="nccl"), ["'nccl'", "pplx"]),
    (dict(beta=(1.0, 2.0, 3.0)), ["--beta-coeffs", "7 to 11"]),
])
def test_input_errors_are_one_line(kw, needles):
    kw = {"model": LLAMA, **kw}
    with pytest.raises(InputError) as exc:
        resolve(**kw)
    msg = str(exc.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def _cli(argv):
    from blis_evo.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


_RUN = ["run", "--latency-model", "trained-physics", "--num-requests", "2", "--rate", "1",
        "--prompt-tokens", "64", "--prompt-tokens-stdev", "0", "--prompt-tokens-min", "0",
        "--prompt-tokens-max", "64", "--output-tokens", "4", "--output-tokens-stdev", "0",
        "--output-tokens-min", "0", "--output-tokens-max", "4"]


@pytest.mark.parametrize("extra, needle", [
    (["--model", "acme/nope", "--hardware", "H100", "--tp", "1"], "available:"),
    (["--model", LLAMA, "--hardware", "TPU", "--tp", "1"], "available: A100-80"),
    (["--model", LLAMA, "--hardware", "H100", "--tp", "5"], "valid --tp values"),
    (["--model", LLAMA, "--hardware", "H100", "--tp", "1", "--max-model-len", "32"],
     "64-token prompt, longer than the model's 32-token context"),
])
def test_cli_exit_2_one_line(extra, needle):
    code, out, err = _cli(_RUN + extra)
    assert code == 2
    assert out == ""
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and needle in lines[0], err


def test_context_from_model_config(tmp_path):
    cfg = json.loads((DATA / "model_configs" / "llama-3.1-8b-instruct" / "config.json").read_text())
    cfg["max_position_embeddings"] = 100
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    code, _, err = _cli(_RUN + ["--model", LLAMA, "--hardware", "H100", "--tp", "1",
                                "--prompt-tokens-max", "200", "--prompt-tokens", "150",
                                "--model-config-folder", str(tmp_path)])
    assert code == 2 and "100-token context" in err, err


def test_help_lists_the_model():
    code, out, err = _cli(["run", "--help"])
    assert code == 0
    assert "trained-physics" in out + err


# ---------------------------------------------------------------------------------------------
# Properties of the step time
# ---------------------------------------------------------------------------------------------

_MODELS = [(LLAMA, 1), (LLAMA, 2), (LLAMA, 4), ("qwen/qwen2.5-7b-instruct", 1),
           ("qwen/qwen2.5-7b-instruct", 2), (MIXTRAL, 2),
           ("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic", 4), ("qwen/qwen3-30b-a3b", 2),
           ("deepseek-ai/deepseek-v2-lite", 1)]
_VECS = {(m, tp): tpv(m, tp=tp) for m, tp in _MODELS}
model_st = st.sampled_from(sorted(_VECS))


@settings(max_examples=150, deadline=None)
@given(model_st, st.integers(0, 8192), st.integers(0, 8192), st.integers(1, 4096),
       st.lists(st.integers(1, 32768), max_size=64))
def test_positive_and_monotone_in_prefill_tokens(key, n1, n2, extra, decode):
    v = _VECS[key]
    lo, hi = sorted((n1, n2))
    a = step(v, [(lo, lo + extra)] if lo else [], decode)
    b = step(v, [(hi, hi + extra)] if hi else [], decode)
    assert a >= 1 and b >= 1
    assert b >= a


@settings(max_examples=150, deadline=None)
@given(model_st, st.lists(st.integers(1, 32768), max_size=256), st.integers(1, 32768),
       st.integers(0, 2048))
def test_monotone_in_decode_batch(key, decode, more, prefill):
    v = _VECS[key]
    pf = [(prefill, prefill)] if prefill else []
    assert step(v, pf, decode + [more]) >= step(v, pf, decode) >= 1


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([(LLAMA, 1), (LLAMA, 4), ("qwen/qwen2.5-7b-instruct", 2)]),
       st.integers(0, 4096), st.lists(st.integers(1, 16384), max_size=32),
       st.floats(0, 1e4), st.floats(0, 1e4))
def test_moe_terms_vanish_for_dense_models(key, prefill, decode, b8, bep):
    """The MoE-layer overhead and the dispatch coefficient do not change a dense model's step."""
    v = _VECS[key]
    assert v[K.TPP_MOE_LAYERS] == 0 and v[K.TPP_IS_MOE] == 0
    w = v.copy()
    w[K.TPP_BETA + 7] = b8
    w[K.TPP_BETA + 10] = bep
    w[K.TPP_INTERLEAVED] = 1.0
    w[K.TPP_DP] = 1.0
    pf = [(prefill, prefill)] if prefill else []
    assert step(w, pf, decode) == step(v, pf, decode)


def test_moe_terms_present_for_moe_models():
    v = _VECS[(MIXTRAL, 2)]
    w = v.copy()
    w[K.TPP_MOE_LAYERS] = 0
    w[K.TPP_DENSE_LAYERS] = v[K.TPP_LAYERS]
    assert step(v, [(512, 512)], [1000] * 8) != step(w, [(512, 512)], [1000] * 8)


def test_dp_dispatch_only_for_moe():
    base = resolve(MIXTRAL, tp=2).config.roofline_params
    dp2 = resolve(MIXTRAL, tp=2, dp=2).config.roofline_params
    a2a = resolve(MIXTRAL, tp=2, dp=2, moe_comm_backend="pplx").config.roofline_params
    assert dp2[K.TPP_MOE_GROUP] == 4 and dp2[K.TPP_ALL2ALL] == 0 and a2a[K.TPP_ALL2ALL] == 1
    v0, v1, v2 = (np.asarray(x) for x in (base, dp2, a2a))
    s0, s1, s2 = (step(x, [(256, 256)], [500] * 16) for x in (v0, v1, v2))
    assert s0 >= 1 and s1 >= 1 and s2 > s1  # top-k all-to-all moves k times the all-gather volume


# ---------------------------------------------------------------------------------------------
# KV cache sized from GPU memory (trained-physics, no --total-kv-blocks)
# ---------------------------------------------------------------------------------------------


def _mc(model):
    return L.parse_model_config(L.bundled_model_config_dir(model.lower(), None) / "config.json",
                                model.lower())


@pytest.mark.parametrize("model, published", [(LLAMA, 8.03e9), (MIXTRAL, 46.7e9)])
def test_weight_bytes_match_published_parameter_counts(model, published):
    # bf16: 2 bytes per parameter; the model cards give 8.03B and 46.7B parameters.
    params = L.model_weight_bytes(_mc(model)) / 2
    assert abs(params - published) / published < 0.005


def test_kv_blocks_by_hand_llama_h100_tp1():
    from fractions import Fraction as Fr
    # 8,030,261,248 parameters: embeddings + untied LM head (2 x 128256 x 4096), 32 layers of
    # attention (4096 x (4096 + 2 x 8 x 128) + 4096^2), two norms and a 3-matrix MLP, a final norm.
    params = 2 * 128256 * 4096 + 32 * (4096 * 6144 + 4096 ** 2 + 2 * 4096 + 3 * 4096 * 14336) + 4096
    assert params == 8_030_261_248
    free = (Fr(80) * Fr(9, 10) - Fr(55, 10) - Fr(15, 100)) * 2 ** 30 - 2 * params
    per_block = 32 * 2 * 128 * 8 * 2 * 16  # layers x (K, V) x head dim x KV heads x bf16 x tokens
    assert resolve(tp=1).total_kv_blocks == free // per_block == 26312


def _measured_blocks(model_id, gpu, tp):
    import yaml
    rows = yaml.safe_load((DATA / "defaults.yaml").read_text())["models"]
    (row,) = [r for r in rows if r["id"] == model_id and r["GPU"] == gpu
              and r["tensor_parallelism"] == tp and r["vllm_version"].endswith("v0.8.4")]
    return row["total_kv_blocks"]


@pytest.mark.parametrize("model, measured_id, tp, tolerance", [
    (LLAMA, LLAMA, 2, 0.10), (LLAMA, LLAMA, 4, 0.10),
    (MIXTRAL, "mistralai/mixtral-8x7b-instruct-v0.1", 2, 0.20)])
def test_kv_blocks_near_vllm_measurements(model, measured_id, tp, tolerance):
    # the vLLM-measured block counts of the defaults YAML (the reference's own tolerances)
    measured = _measured_blocks(measured_id, "H100", tp)
    got = resolve(model, tp=tp).total_kv_blocks
    assert abs(got - measured) / measured < tolerance, (got, measured)


@pytest.mark.parametrize("model, gpu, tp, kw, go_blocks", [
    (LLAMA, "H100", 1, {}, 26312), (LLAMA, "H100", 2, {}, 125278), (LLAMA, "H100", 4, {}, 543011),
    (MIXTRAL, "H100", 2, {}, 48956), (MIXTRAL, "H100", 2, {"dp": 2}, 97912),
    ("qwen/qwen2.5-7b-instruct", "A100-80", 1, {}, 61048),
    ("qwen/qwen3-30b-a3b", "H100", 2, {}, 107423),
    ("meta-llama/llama-3.1-70b-instruct", "H100", 4, {}, 121801),
    (LLAMA, "H100", 1, {"gpu_memory_utilization": 0.5}, 9928)])
def test_kv_blocks_equal_the_references(model, gpu, tp, kw, go_blocks):
    # "auto-calculated total-kv-blocks=N" logged by the Go reference at f90a1e3a for the same
    # model, GPU, TP and flags (run side by side on 2026-12-05)
    assert resolve(model, hardware=gpu, tp=tp, **kw).total_kv_blocks == go_blocks


def test_kv_blocks_scale_with_dp_and_memory_fraction():
    base = resolve(MIXTRAL, tp=2).total_kv_blocks
    assert resolve(MIXTRAL, tp=2, dp=2).total_kv_blocks == 2 * base
    assert resolve(MIXTRAL, tp=2, gpu_memory_utilization=0.7).total_kv_blocks < base
    assert resolve(MIXTRAL, tp=2, total_kv_blocks_explicit=True).total_kv_blocks is None


def test_model_that_does_not_fit_names_the_gpus_it_needs():
    with pytest.raises(InputError) as exc:
        resolve("meta-llama/llama-3.1-70b-instruct", tp=1)
    msg = str(exc.value)
    assert "\n" not in msg and "does not fit on 1 GPU" in msg and "at least 2 GPUs" in msg


@pytest.mark.parametrize("extra, needle", [
    (["--model", LLAMA, "--enable-expert-parallel"], "--enable-expert-parallel needs a MoE model"),
    (["--model", MIXTRAL, "--tp", "2", "--moe-comm-backend", "nccl"], "valid: naive"),
    (["--model", LLAMA, "--gpu-memory-utilization", "1.5"], "(0, 1.0]"),
    (["--model", LLAMA, "--gpu-memory-utilization", "0"], "(0, 1.0]"),
    (["--model", LLAMA, "--dp", "0"], "--dp"),
])
def test_moe_and_memory_flags_exit_2_one_line(extra, needle):
    argv = _RUN + ["--hardware", "H100"] + (["--tp", "1"] if "--tp" not in extra else []) + extra
    code, out, err = _cli(argv)
    assert code == 2 and out == ""
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and needle in lines[0], err


def test_dp_and_expert_parallel_need_trained_physics():
    code, out, err = _cli(["run", "--model", LLAMA, "--num-requests", "2", "--dp", "2"])
    assert code == 2 and "need --latency-model trained-physics" in err, err


def test_cli_run_uses_the_memory_sized_cache(tmp_path):
    out = tmp_path / "r.json"
    for extra in ([], ["--dp", "2", "--enable-expert-parallel"]):
        code, _, err = _cli(_RUN + ["--model", MIXTRAL, "--hardware", "H100", "--tp", "2",
                                    "--log", "info", "--results-path", str(out)] + extra)
        assert code == 0, err
        blocks = resolve(MIXTRAL, tp=2, dp=2 if extra else 1).total_kv_blocks
        assert f"Starting simulation with {blocks} KV blocks" in err
