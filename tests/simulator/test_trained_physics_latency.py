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
