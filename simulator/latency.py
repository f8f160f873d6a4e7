"""Latency-model resolution: which step-time model a run uses, and with which numbers.

Port of the coefficient / roofline selection in BLIS ``cmd/root.go`` + ``cmd/default_config.go``
and of the config parsing in ``sim/model_hardware_config.go`` (reference commit cbb0de7b).

Everything here runs once per run, at the input boundary, in plain Python.  The per-step
arithmetic lives in :mod:`simulator.kernels.latency` (numba) and consumes the flat float vector
built by :func:`roofline_params`.

Where the reference would panic, ``logrus.Fatalf``, or silently run with all-zero coefficients,
we raise :class:`simulator.errors.InputError` with a one-line message naming the flag(s).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from simulator.config import LatencyConfig
from simulator.errors import InputError, one_line
from simulator.kernels import latency as K
from simulator.kernels.latency import (
    RP_BYTES_PER_PARAM,
    RP_FFN,
    RP_HEADS,
    RP_HIDDEN,
    RP_KV_HEADS,
    RP_LAYERS,
    RP_LEN,
    RP_TFLOPS_PEAK,
)


# torch_dtype -> bytes per parameter, as the reference maps it (anything else -> 0 -> invalid).
_DTYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int8": 1,
    "uint8": 1,
    "fp8": 1,
    "int4": 1,
    "nf4": 1,
}

# Hardware calibration JSON keys, in RP_* order starting at RP_TFLOPS_PEAK.
_HW_FIELDS = (
    "TFlopsPeak",
    "BwPeakTBs",
    "BwEffConstant",
    "TOverheadMicros",
    "perLayerOverhead",
    "mfuPrefill",
    "mfuDecode",
    "allReduceLatency",
)
# Fields the reference requires to be > 0 and finite (they are denominators).
_HW_POSITIVE = ("TFlopsPeak", "BwPeakTBs", "BwEffConstant", "mfuPrefill", "mfuDecode")

_ROOFLINE_HINT = "--model-config-folder + --hardware-config (+ --hardware, --tp > 0)"


def default_data_path(name: str) -> Path:
    """Path of a file shipped under ``blis_evo/data`` (e.g. ``"defaults.yaml"``).

    The reference resolves its data files relative to the working directory; we ship them with
    the package so runs work from anywhere.
    """
    return Path(__file__).resolve().parent.parent / "blis_evo" / "data" / name


# ---------------------------------------------------------------------------------------------
# defaults.yaml
# ---------------------------------------------------------------------------------------------
def load_defaults(path: str | os.PathLike | None = None) -> dict:
    """Parse a BLIS ``defaults.yaml`` (``defaults``, ``models``, ``workloads``, ``version``).

    Returns the parsed mapping (``None`` path -> the shipped file).  Only the overall shape is
    checked here; rows are checked when a row is actually used, like the reference does.
    """
    p = Path(path) if path else default_data_path("defaults.yaml")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--defaults-filepath: cannot read {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = one_line(exc)
        raise InputError(f"--defaults-filepath: {str(p)!r} is not valid YAML: {msg}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"--defaults-filepath: {str(p)!r} must be a YAML mapping at top level")
    for key, typ, name in (("models", list, "a list"), ("defaults", dict, "a mapping"),
                           ("workloads", dict, "a mapping")):
        if data.get(key) is not None and not isinstance(data[key], typ):
            raise InputError(f"--defaults-filepath: {str(p)!r}: '{key}' must be {name}")
    return data


def _as_str(v: Any) -> str:
    return "" if v is None else str(v)


def _as_int(v: Any) -> int:
    if isinstance(v, bool) or v is None:
        return 0
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _default_specs(defaults: dict, model: str) -> tuple[str, int, str]:
    """(GPU, tp, vllm_version) from ``defaults[model]``, or ("", 0, "") when absent."""
    row = (defaults.get("defaults") or {}).get(model)
    if not isinstance(row, dict):
        return "", 0, ""
    return _as_str(row.get("GPU")), _as_int(row.get("tensor_parallelism")), _as_str(row.get("vllm_version"))


def _fill_from_defaults(defaults: dict, model: str, tp: int, hardware: str,
                        vllm_version: str) -> tuple[int, str, str]:
    """``(tp, hardware, vllm_version)`` with each one the user left unset (0 or "") taken from
    ``defaults[model]``, as the reference fills them before looking up coefficients."""
    d_gpu, d_tp, d_vllm = _default_specs(defaults, model)
    return (d_tp if tp == 0 and d_tp > 0 else tp,
            d_gpu if not hardware and d_gpu else hardware,
            d_vllm if not vllm_version and d_vllm else vllm_version)


def _find_coefficients(defaults: dict, model: str, tp: int, gpu: str, vllm: str) -> dict | None:
    """First ``models[]`` row matching all four keys exactly, or None."""
    for row in defaults.get("models") or ():
        if not isinstance(row, dict):
            continue
        if (_as_str(row.get("id")) == model and _as_int(row.get("tensor_parallelism")) == tp
                and _as_str(row.get("GPU")) == gpu and _as_str(row.get("vllm_version")) == vllm):
            return row
    return None


def _coeff_tuple(values: Any, flag: str) -> tuple[float, ...]:
    if values is None:
        values = (0.0, 0.0, 0.0)
    if isinstance(values, (str, bytes)):
        raise InputError(f"{flag}: expected a list of numbers, got {values!r}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{flag}: expected numbers, got {list(values)!r}") from None
    if len(out) < 3:
        raise InputError(f"{flag} needs at least 3 comma-separated numbers, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise InputError(f"{flag} must be finite numbers, got {list(out)!r}")
    return out


def _all_zero(values: Sequence[float]) -> bool:
    return all(v == 0 for v in values)


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResolvedLatency:
    """Outcome of :func:`resolve_latency`.

    ``config`` is what the engine needs.  ``total_kv_blocks`` is the KV block count taken from
    defaults.yaml (None when the run's own ``--total-kv-blocks`` applies).  ``model``,
    ``hardware``, ``tp`` and ``vllm_version`` are the values after the reference's default
    filling / lowercasing (for logging and output).
    """

    config: LatencyConfig
    total_kv_blocks: int | None
    hardware: str
    tp: int
    vllm_version: str
    model: str
    context_tokens: int | None = None  # the model's context length (trained-physics), if known
    notes: tuple[str, ...] = ()  # what the resolution chose, for the run's log (info)
    warnings: tuple[str, ...] = ()  # what it could not do or what has no effect (warning)


def resolve_latency(
    *,
    model: str,
    hardware: str | None = "",
    tp: int = 0,
    vllm_version: str | None = "",
    alpha: Sequence[float] | None = (0.0, 0.0, 0.0),
    beta: Sequence[float] | None = (0.0, 0.0, 0.0),
    model_config_folder: str | os.PathLike | None = "",
    hardware_config: str | os.PathLike | None = "",
    defaults_path: str | os.PathLike | None = None,
    latency_model: str | None = None,
    total_kv_blocks_explicit: bool = False,
    dp: int = 1,
    moe_comm_backend: str = "",
    enable_expert_parallel: bool = False,
    block_size: int = 16,
    gpu_memory_utilization: float = 0.9,
) -> ResolvedLatency:
    """Pick the step-time model and its coefficients the way the reference CLI does.

    ``latency_model=None`` reproduces cmd/root.go: with all-zero α/β and neither
    ``--model-config-folder`` nor ``--hardware-config``, the (lowercased) model's row in
    defaults.yaml supplies α, β and the KV block count (missing hardware/tp/vllm-version are
    filled from ``defaults[model]`` first).  If α/β are still all zero, the roofline model is
    used, which needs the config folder, hardware config, ``--hardware`` and ``--tp > 0``.
    ``"roofline"`` forces roofline (α stays the CLI value, as in the reference);
    ``"blackbox"`` forces the α/β regression (CLI values, else the defaults.yaml row).
    ``"trained-physics"`` uses the roofline basis scaled by fitted coefficients (CLI values when
    non-zero, else the defaults YAML's ``trained_physics_coefficients``) for any model with a
    config.json (``--model-config-folder``, else ``model_configs/<name>`` next to the defaults
    YAML) on any GPU of the hardware file; ``dp``/``moe_comm_backend``/``enable_expert_parallel``
    apply to MoE models (expert parallelism is validated but, as in the reference, does not
    change step times: experts are sharded over TP·DP either way).  Unless
    ``total_kv_blocks_explicit``, trained-physics sizes the KV cache from GPU memory
    (:func:`auto_kv_blocks` with ``block_size`` and ``gpu_memory_utilization``).  Every case in which the reference would crash or run with zero step times raises InputError.
    """
    if not model:
        raise InputError("--model is required (LLM name, e.g. meta-llama/llama-3.1-8b-instruct)")
    if latency_model not in (None, "", "auto", "blackbox", "roofline", TRAINED_PHYSICS):
        raise InputError(f"--latency-model must be 'blackbox', 'roofline' or '{TRAINED_PHYSICS}', "
                         f"got {latency_model!r}")
    mode = latency_model if latency_model in ("blackbox", "roofline") else None
    hardware = hardware or ""
    vllm_version = vllm_version or ""
    tp = int(tp or 0)
    if tp < 0:
        raise InputError(f"--tp must be >= 0 (0 = take it from defaults.yaml), got {tp}")
    folder = os.fspath(model_config_folder) if model_config_folder else ""
    hw_path = os.fspath(hardware_config) if hardware_config else ""
    alpha_t = _coeff_tuple(alpha, "--alpha-coeffs")
    beta_t = _coeff_tuple(beta, "--beta-coeffs")
    cli_zero = _all_zero(alpha_t) and _all_zero(beta_t)
    if int(dp) < 1:
        raise InputError(f"--dp must be >= 1, got {dp}")
    if latency_model == TRAINED_PHYSICS:
        return _resolve_trained_physics(
            model, hardware, tp, vllm_version, alpha_t, beta_t, folder, hw_path, defaults_path,
            int(dp), moe_comm_backend or "", bool(enable_expert_parallel),
            None if total_kv_blocks_explicit else (int(block_size), float(gpu_memory_utilization)))
    if int(dp) != 1 or enable_expert_parallel or moe_comm_backend:
        raise InputError("--dp > 1, --enable-expert-parallel and --moe-comm-backend need "
                         f"--latency-model trained-physics (got {latency_model or 'auto'})")

    use_roofline = mode == "roofline" or (mode is None and cli_zero and (folder or hw_path))
    if use_roofline:
        return _resolve_roofline(model, hardware, tp, vllm_version, alpha_t, beta_t, folder, hw_path)

    kv_blocks: int | None = None
    if cli_zero:
        # Defaults lookup (the reference only does it when no roofline paths were given; a
        # forced blackbox does it regardless).
        model = model.lower()
        defaults = load_defaults(defaults_path)
        tp, hardware, vllm_version = _fill_from_defaults(defaults, model, tp, hardware, vllm_version)
        row = _find_coefficients(defaults, model, tp, hardware, vllm_version)
        where = f"model {model!r} on {hardware or '?'}/tp={tp}/vllm {vllm_version!r}"
        if row is not None:
            alpha_t = _coeff_tuple(row.get("alpha_coeffs"), f"defaults.yaml alpha_coeffs for {where}")
            beta_t = _coeff_tuple(row.get("beta_coeffs"), f"defaults.yaml beta_coeffs for {where}")
        if row is None or (_all_zero(alpha_t) and _all_zero(beta_t)):
            raise InputError(
                f"no latency coefficients for {where} in defaults.yaml; pass --alpha-coeffs/"
                f"--beta-coeffs (3 comma-separated numbers each), or --model-config-folder + "
                f"--hardware-config for --latency-model roofline")
        if not total_kv_blocks_explicit:
            kv_blocks = _as_int(row.get("total_kv_blocks"))
            if kv_blocks <= 0:
                raise InputError(
                    f"defaults.yaml row for {where} has no positive total_kv_blocks; "
                    f"pass --total-kv-blocks (> 0)")
    if _all_zero(beta_t):
        raise InputError(
            "--beta-coeffs are all zero, so every step would take 0 µs; give at least one non-zero "
            f"step coefficient, or use --latency-model roofline with {_ROOFLINE_HINT}")
    cfg = LatencyConfig(kind="blackbox", alpha=alpha_t, beta=beta_t, tp=tp if tp > 0 else 1)
    return ResolvedLatency(config=cfg, total_kv_blocks=kv_blocks, hardware=hardware, tp=tp,
                           vllm_version=vllm_version, model=model)


def _resolve_roofline(model, hardware, tp, vllm_version, alpha_t, beta_t, folder, hw_path):
    missing = []
    if not folder:
        missing.append("--model-config-folder (folder holding config.json)")
    if not hw_path:
        missing.append("--hardware-config (e.g. hardware_config.json)")
    if not hardware:
        missing.append("--hardware (a GPU name in the hardware config)")
    if tp <= 0:
        missing.append("--tp (> 0)")
    if missing:
        raise InputError(
            f"the roofline latency model for {model!r} needs {', '.join(missing)}; "
            "or pass --alpha-coeffs/--beta-coeffs for the blackbox model")
    rp = roofline_params(os.path.join(folder, "config.json"), hw_path, hardware)
    cfg = LatencyConfig(kind="roofline", alpha=alpha_t, beta=beta_t, tp=tp, roofline_params=rp)
    return ResolvedLatency(config=cfg, total_kv_blocks=None, hardware=hardware, tp=tp,
                           vllm_version=vllm_version, model=model)


# ---------------------------------------------------------------------------------------------
# Roofline inputs
# ---------------------------------------------------------------------------------------------
def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON number {name}")


def _read_json(path: str | os.PathLike, flag: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{flag}: cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InputError(f"{flag}: {os.fspath(path)!r} is not valid JSON: {exc}") from None


def _json_int(raw: dict, key: str) -> int:
    """Integer field as the reference reads it: JSON number truncated toward zero, else 0."""
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 0
    if isinstance(v, float) and not math.isfinite(v):
        return 0
    return int(v)


def _model_fields(path: str | os.PathLike) -> tuple[int, int, int, int, int, float]:
    """(layers, hidden, heads, kv_heads, intermediate, bytes_per_param) from an HF config.json."""
    raw = _read_json(path, "--model-config-folder")
    if not isinstance(raw, dict):
        raise InputError(f"--model-config-folder: {os.fspath(path)!r} must hold a JSON object")
    text_cfg = raw.get("text_config")
    if isinstance(text_cfg, dict):  # multimodal wrapper: the text model's keys win
        raw = {**raw, **text_cfg}
    heads = _json_int(raw, "num_attention_heads")
    kv_heads = _json_int(raw, "num_key_value_heads") or heads
    dtype = raw.get("torch_dtype")
    bpp = float(_DTYPE_BYTES.get(dtype, 0)) if isinstance(dtype, str) else 0.0
    return (_json_int(raw, "num_hidden_layers"), _json_int(raw, "hidden_size"), heads, kv_heads,
            _json_int(raw, "intermediate_size"), bpp)


def _hardware_fields(path: str | os.PathLike, gpu: str) -> dict[str, float]:
    """Calibration of ``gpu`` from the hardware JSON (keys matched case-insensitively, like Go)."""
    where = os.fspath(path)
    raw = _read_json(path, "--hardware-config")
    if not isinstance(raw, dict) or not all(isinstance(v, dict) or v is None for v in raw.values()):
        raise InputError(f"--hardware-config: {where!r} must map GPU names to calibration objects")
    if gpu not in raw:
        raise InputError(f"--hardware: GPU {gpu!r} not found in {where!r} "
                         f"(available: {', '.join(sorted(raw)) or 'none'})")
    entry = raw[gpu] or {}
    out = {name: 0.0 for name in _HW_FIELDS}
    folded = {name.lower(): name for name in _HW_FIELDS}
    for key, val in entry.items():
        name = key if key in out else folded.get(key.lower())
        if name is None or val is None:
            continue
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise InputError(f"--hardware-config: {where!r} {gpu}.{key} must be a number, got {val!r}")
        out[name] = float(val)
    return out


def roofline_params(model_config_path: str | os.PathLike, hardware_config_path: str | os.PathLike,
                    gpu: str) -> tuple[float, ...]:
    """Build the roofline parameter vector (layout: the ``RP_*`` constants of
    :mod:`simulator.kernels.latency`).

    Parses the HF ``config.json`` (nested ``text_config`` merged over the top level; kv heads
    default to heads; FFN width defaults to 4*hidden; bytes/param from ``torch_dtype``) and the
    ``gpu`` entry of the hardware calibration JSON, then validates like the reference's
    ValidateRooflineConfig: layers, hidden, heads, bytes/param, TFlopsPeak, BwPeakTBs,
    BwEffConstant, mfuPrefill and mfuDecode must be > 0 and finite.  We also reject negative
    kv heads and negative or non-finite overheads (the reference would produce nonsense times).
    """
    layers, hidden, heads, kv_heads, inter, bpp = _model_fields(model_config_path)
    hw = _hardware_fields(hardware_config_path, gpu)
    mpath, hpath = os.fspath(model_config_path), os.fspath(hardware_config_path)
    model_checks = (("num_hidden_layers", layers), ("hidden_size", hidden),
                    ("num_attention_heads", heads))
    for field, val in model_checks:
        if val <= 0:
            raise InputError(f"--model-config-folder: {mpath!r} field {field} must be > 0, got {val}")
    if kv_heads < 0:
        raise InputError(f"--model-config-folder: {mpath!r} field num_key_value_heads must be >= 0, "
                         f"got {kv_heads}")
    if not bpp > 0:
        raise InputError(f"--model-config-folder: {mpath!r} field torch_dtype must be one of "
                         f"{', '.join(_DTYPE_BYTES)}")
    for field in _HW_FIELDS:
        v = hw[field]
        if field in _HW_POSITIVE:
            ok = math.isfinite(v) and v > 0
            need = "> 0"
        else:
            ok = math.isfinite(v) and v >= 0
            need = ">= 0"
        if not ok:
            raise InputError(f"--hardware-config: {hpath!r} field {gpu}.{field} must be a finite "
                             f"number {need}, got {v}")
    ffn = inter if inter > 0 else 4 * hidden
    rp = [0.0] * RP_LEN
    rp[RP_LAYERS] = float(layers)
    rp[RP_HIDDEN] = float(hidden)
    rp[RP_HEADS] = float(heads)
    rp[RP_KV_HEADS] = float(kv_heads)
    rp[RP_FFN] = float(ffn)
    rp[RP_BYTES_PER_PARAM] = bpp
    for i, field in enumerate(_HW_FIELDS):
        rp[RP_TFLOPS_PEAK + i] = hw[field]
    return tuple(rp)


# ---------------------------------------------------------------------------------------------
# Trained-physics (BLIS f90a1e3a: sim/latency/trained_physics_model.go, sim/latency/config.go,
# cmd/root.go resolveLatencyConfig, cmd/hfconfig.go)
# ---------------------------------------------------------------------------------------------
TRAINED_PHYSICS = "trained-physics"

# MoE dispatch/combine backends (vLLM's all-to-all choices) and their volume family:
# False = all-gather / reduce-scatter of hidden states, True = top-k all-to-all.
MOE_COMM_BACKENDS = {
    "naive": False,
    "allgather_reducescatter": False,
    "pplx": True,
    "deepep_high_throughput": True,
    "deepep_low_latency": True,
    "mori": True,
    "flashinfer_all2allv": True,
}
DEFAULT_MOE_COMM_BACKEND = "allgather_reducescatter"

_MOE_MIN_EXPERTS = 2
# Keys naming the routed-expert count, in the order the reference tries them.
_EXPERT_COUNT_KEYS = ("num_experts", "moe_num_experts", "n_routed_experts", "num_local_experts",
                      "num_routed_experts")
_W_BITS_NAME = re.compile(r"(?i)(?:^|[.\-_/])w(\d+)a\d+(?:$|[.\-_])")
_FP8_NAME = re.compile(r"(?i)(?:^|[.\-_/])fp8(?:$|[.\-_])")


@dataclass(frozen=True)
class ModelConfig:
    """The fields of an HF ``config.json`` the trained-physics model reads (after the
    reference's defaulting: kv heads default to heads, intermediate falls back to
    ``ffn_hidden_size``, the expert count to the first key that names >= 2 experts, ...)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    bytes_per_param: float
    experts: int = 0
    experts_per_tok: int = 0
    moe_ffn: int = 0
    shared_ffn: int = 0
    interleave_step: int = 0
    dense_ffn: int = 0
    weight_bytes_per_param: float = 0.0
    max_position_embeddings: int = 0
    context: int = 0  # max_position_embeddings after rope scaling (0 = unknown)
    # Fields only the KV-capacity estimate reads (:func:`auto_kv_blocks`).
    vocab: int = 0
    head_dim: int = 0  # explicit ``head_dim`` (0 = hidden / heads)
    kv_lora_rank: int = 0  # > 0: MLA, the cache holds a compressed latent per token and layer
    qk_rope_head_dim: int = 0
    first_k_dense: int = 0  # leading dense layers of a MoE model
    hidden_act: str = ""
    tie_embeddings: bool = False
    kv_shared_ffn: int = 0  # shared-expert width as the capacity estimate reads it
    moe_hint: str = ""  # "key=value" when the config looks MoE but names no expert count

    @property
    def is_moe(self) -> bool:
        return self.experts >= _MOE_MIN_EXPERTS

    @property
    def effective_weight_bpp(self) -> float:
        return self.weight_bytes_per_param if self.weight_bytes_per_param > 0 else self.bytes_per_param


def _quantized_weight_bytes(qc: dict) -> float:
    """Bytes per weight parameter from a ``quantization_config`` (0 when it does not say)."""
    bits = 0
    raw = qc.get("bits")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        bits = int(raw)
    elif isinstance(raw, str):
        try:
            bits = int(raw)
        except ValueError:
            bits = 0
    if bits > 0:
        return bits / 8.0
    method = qc.get("quant_method")
    method = method.lower() if isinstance(method, str) else ""
    if method == "fp8":
        return 1.0
    if method == "compressed-tensors":
        groups = qc.get("config_groups")
        if isinstance(groups, dict):
            for key in sorted(groups):
                g = groups[key]
                w = g.get("weights") if isinstance(g, dict) else None
                nb = w.get("num_bits") if isinstance(w, dict) else None
                if isinstance(nb, (int, float)) and not isinstance(nb, bool) and nb > 0:
                    return float(nb) / 8.0
    return 0.0


def weight_bytes_from_model_name(name: str) -> float:
    """Weight precision implied by a model name (``...-w4a16``, ``...-fp8-...``), else 0."""
    m = _W_BITS_NAME.search(name)
    if m and int(m.group(1)) > 0:
        return int(m.group(1)) / 8.0
    if _FP8_NAME.search(name):
        return 1.0
    return 0.0


def _rope_scaled_context(max_pos: int, raw: dict) -> int:
    """Context length after rope scaling, as the reference derives --max-model-len."""
    model_type = raw.get("model_type")
    model_type = model_type if isinstance(model_type, str) else ""
    rope = raw.get("rope_scaling")
    if max_pos <= 0 or "gemma3" in model_type or not isinstance(rope, dict):
        return max_pos
    rtype = rope.get("type") if isinstance(rope.get("type"), str) else ""
    if not rtype:
        rtype = rope.get("rope_type") if isinstance(rope.get("rope_type"), str) else ""
    if rtype in ("su", "longrope", "llama3"):
        return max_pos
    factor = rope.get("factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) \
            or factor <= 1.0:
        return max_pos
    base = max_pos
    if rtype == "yarn":
        orig = rope.get("original_max_position_embeddings")
        if isinstance(orig, (int, float)) and not isinstance(orig, bool) and orig > 0:
            base = int(orig)
    return int(float(base) * float(factor))


def parse_model_config(path: str | os.PathLike, model: str = "") -> ModelConfig:
    """Read an HF ``config.json`` (a nested ``text_config`` merged over the top level) the way
    the trained-physics model reads it; ``model`` (lowercased name) supplies the weight precision
    when the config has no usable ``quantization_config``."""
    raw = _read_json(path, "--model-config-folder")
    if not isinstance(raw, dict):
        raise InputError(f"--model-config-folder: {os.fspath(path)!r} must hold a JSON object")
    text_cfg = raw.get("text_config")
    if isinstance(text_cfg, dict):
        raw = {**raw, **text_cfg}

    def first(*keys):
        for k in keys:
            v = _json_int(raw, k)
            if v != 0:
                return v
        return 0

    heads = _json_int(raw, "num_attention_heads")
    kv_heads = first("num_key_value_heads", "num_kv_heads", "multi_query_group_num") or heads
    dtype = raw.get("torch_dtype")
    if not isinstance(dtype, str):
        dtype = raw.get("dtype")
    bpp = float(_DTYPE_BYTES.get(dtype, 0)) if isinstance(dtype, str) else 0.0
    inter = first("intermediate_size", "ffn_hidden_size")
    experts = 0
    for key in _EXPERT_COUNT_KEYS:
        if _json_int(raw, key) >= _MOE_MIN_EXPERTS:
            experts = _json_int(raw, key)
            break
    moe_ffn = _json_int(raw, "moe_intermediate_size")
    shared = _json_int(raw, "shared_expert_intermediate_size")
    if shared <= 0:
        shared = 0
        n_shared = _json_int(raw, "n_shared_experts")
        if n_shared > 0:
            shared = n_shared * (moe_ffn if moe_ffn != 0 else inter)
    wbpp = 0.0
    qc = raw.get("quantization_config")
    if isinstance(qc, dict):
        wbpp = _quantized_weight_bytes(qc)
    if wbpp == 0.0 and model:
        wbpp = weight_bytes_from_model_name(model)
    max_pos = _json_int(raw, "max_position_embeddings")
    shape = {k: _json_int(raw, k) for k in ("head_dim", "kv_lora_rank", "qk_rope_head_dim",
                                            "first_k_dense_replace")}
    for key, val in shape.items():
        if val < 0:
            raise InputError(f"model config {os.fspath(path)!r}: {key} must be >= 0, got {val}")
    act = raw.get("hidden_act")
    tie = raw.get("tie_word_embeddings")
    # The capacity estimate's shared-expert width falls back to ``intermediate_size`` alone.
    kv_shared = shared if _json_int(raw, "shared_expert_intermediate_size") > 0 else 0
    if not kv_shared and _json_int(raw, "n_shared_experts") > 0:
        kv_shared = _json_int(raw, "n_shared_experts") * (
            moe_ffn if moe_ffn != 0 else _json_int(raw, "intermediate_size"))
    moe_hint = ""
    if experts < _MOE_MIN_EXPERTS:
        for key in ("n_shared_experts", "num_experts_per_tok"):
            if _json_int(raw, key) > 0:
                moe_hint = f"{key}={_json_int(raw, key)}"
                break
    return ModelConfig(
        layers=_json_int(raw, "num_hidden_layers"), hidden=_json_int(raw, "hidden_size"),
        heads=heads, kv_heads=kv_heads, intermediate=inter, bytes_per_param=bpp,
        experts=experts, experts_per_tok=_json_int(raw, "num_experts_per_tok"), moe_ffn=moe_ffn,
        shared_ffn=shared, interleave_step=_json_int(raw, "interleave_moe_layer_step"),
        dense_ffn=_json_int(raw, "intermediate_size_mlp"), weight_bytes_per_param=wbpp,
        max_position_embeddings=max_pos, context=_rope_scaled_context(max_pos, raw),
        vocab=_json_int(raw, "vocab_size"), head_dim=shape["head_dim"],
        kv_lora_rank=shape["kv_lora_rank"], qk_rope_head_dim=shape["qk_rope_head_dim"],
        first_k_dense=shape["first_k_dense_replace"],
        hidden_act=act if isinstance(act, str) else "", tie_embeddings=tie is True,
        kv_shared_ffn=kv_shared, moe_hint=moe_hint)


@dataclass(frozen=True)
class HardwareCalib:
    """The fields of one GPU entry of the hardware JSON the trained-physics model reads."""

    tflops_peak: float
    tflops_fp8: float
    bw_peak_tbs: float
    memory_gib: float


def hardware_calib(path: str | os.PathLike, gpu: str) -> HardwareCalib:
    """``gpu``'s entry of a hardware JSON (exact name; the error lists the available GPUs)."""
    where = os.fspath(path)
    raw = _read_json(path, "--hardware-config")
    if not isinstance(raw, dict):
        raise InputError(f"--hardware-config: {where!r} must map GPU names to calibration objects")
    if gpu not in raw or not isinstance(raw[gpu], dict):
        names = ", ".join(sorted(k for k, v in raw.items() if isinstance(v, dict))) or "none"
        raise InputError(f"--hardware: GPU {gpu!r} is not in the hardware config {where!r} "
                         f"(available: {names})")
    entry = raw[gpu]
    vals = {}
    for key in ("TFlopsPeak", "TFlopsFP8", "BwPeakTBs", "MemoryGiB"):
        v = entry.get(key, 0.0)
        if v is None:
            v = 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"--hardware-config: {where!r} {gpu}.{key} must be a finite number, "
                             f"got {v!r}")
        vals[key] = float(v)
    for key in ("TFlopsPeak", "BwPeakTBs"):
        if not vals[key] > 0:
            raise InputError(f"--hardware-config: {where!r} {gpu}.{key} must be > 0 for the "
                             f"trained-physics model, got {vals[key]}")
    if vals["TFlopsFP8"] < 0:
        raise InputError(f"--hardware-config: {where!r} {gpu}.TFlopsFP8 must be >= 0, "
                         f"got {vals['TFlopsFP8']}")
    return HardwareCalib(vals["TFlopsPeak"], vals["TFlopsFP8"], vals["BwPeakTBs"], vals["MemoryGiB"])


def _valid_tps(heads: int, kv_heads: int, limit: int = 64) -> list[int]:
    return [t for t in range(1, limit + 1) if heads % t == 0 and kv_heads % t == 0]


def trained_physics_params(mc: ModelConfig, hw: HardwareCalib, tp: int, alpha: Sequence[float],
                           beta: Sequence[float], *, dp: int = 1,
                           moe_comm_backend: str = "", model: str = "",
                           where: str = "") -> tuple[float, ...]:
    """Build the trained-physics parameter vector (layout: the ``TPP_*`` constants of
    :mod:`simulator.kernels.latency`), validating like the reference's constructor: at least 3
    alpha and 7 beta coefficients, all finite and >= 0 (8 betas add the MoE-layer overhead, 9
    split the prefill term, 10 the decode term, an 11th sets the MoE dispatch coefficient, which
    otherwise equals the TP one); layers, heads, hidden, intermediate and bytes/param > 0; heads
    and KV heads divisible by ``tp``; a MoE config names its experts per token."""
    name = model or "the model"
    src = f" ({where})" if where else ""
    if len(alpha) < 3:
        raise InputError(f"--alpha-coeffs: the trained-physics model needs 3 values, got {len(alpha)}")
    if len(beta) < 7:
        raise InputError(f"--beta-coeffs: the trained-physics model needs 7 to 11 values, "
                         f"got {len(beta)}")
    for flag, vals in (("--alpha-coeffs", alpha), ("--beta-coeffs", beta)):
        for k, v in enumerate(vals):
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{flag}[{k}] must be a finite number >= 0, got {v}")
    if tp <= 0:
        raise InputError(f"--tp must be > 0 for the trained-physics model, got {tp}")
    if dp < 1:
        raise InputError(f"--dp must be >= 1, got {dp}")
    for field, val in (("num_hidden_layers", mc.layers), ("num_attention_heads", mc.heads),
                       ("hidden_size", mc.hidden), ("intermediate_size", mc.intermediate)):
        if val <= 0:
            raise InputError(f"model config of {name}{src}: {field} must be > 0, got {val}")
    if not mc.bytes_per_param > 0:
        raise InputError(f"model config of {name}{src}: torch_dtype must be one of "
                         f"{', '.join(_DTYPE_BYTES)}")
    if mc.heads % tp != 0 or mc.kv_heads % tp != 0:
        ok = ", ".join(str(t) for t in _valid_tps(mc.heads, mc.kv_heads))
        raise InputError(f"--tp {tp} does not divide {name} ({mc.heads} attention heads, "
                         f"{mc.kv_heads} KV heads); valid --tp values: {ok}")
    if mc.experts > 1 and mc.experts_per_tok <= 0:
        raise InputError(f"model config of {name}{src}: {mc.experts} experts but "
                         f"num_experts_per_tok is not > 0")
    if dp > 1 and not mc.is_moe:
        raise InputError(f"--dp {dp} needs a MoE model; {name} is dense (use --num-instances "
                         "for data-parallel replicas of a dense model)")
    backend = moe_comm_backend or DEFAULT_MOE_COMM_BACKEND
    if backend not in MOE_COMM_BACKENDS:
        raise InputError(f"--moe-comm-backend {backend!r} is not known "
                         f"(valid: {', '.join(MOE_COMM_BACKENDS)})")

    betas = [float(b) for b in beta[:11]] + [0.0] * max(0, 11 - len(beta))
    if len(beta) < 11:
        betas[10] = betas[3]
    head_dim = mc.hidden // mc.heads
    moe_layers, dense_layers = 0, mc.layers
    interleaved = mc.interleave_step > 0 and mc.is_moe
    if interleaved:
        moe_layers = mc.layers // (mc.interleave_step + 1)
        dense_layers = mc.layers - moe_layers
    elif mc.is_moe:
        moe_layers, dense_layers = mc.layers, 0
    wbpp = mc.effective_weight_bpp
    flops_us = hw.tflops_peak * 1e6
    if wbpp == 1.0 and hw.tflops_fp8 > 0:
        flops_us = hw.tflops_fp8 * 1e6
    v = [0.0] * K.TPP_LEN
    v[K.TPP_LAYERS] = mc.layers
    v[K.TPP_MOE_LAYERS] = moe_layers
    v[K.TPP_DENSE_LAYERS] = dense_layers
    v[K.TPP_HIDDEN] = mc.hidden
    v[K.TPP_HEADS] = mc.heads
    v[K.TPP_HEAD_DIM] = head_dim
    v[K.TPP_DKV] = mc.kv_heads * head_dim
    v[K.TPP_DFF_MOE] = mc.moe_ffn if mc.moe_ffn > 0 else mc.intermediate
    v[K.TPP_DFF_DENSE] = mc.dense_ffn if mc.dense_ffn > 0 else mc.intermediate
    v[K.TPP_KEFF] = max(1, mc.experts_per_tok)
    v[K.TPP_EXPERTS] = mc.experts
    v[K.TPP_IS_MOE] = 1.0 if mc.is_moe else 0.0
    v[K.TPP_INTERLEAVED] = 1.0 if interleaved else 0.0
    v[K.TPP_TP] = tp
    v[K.TPP_WEIGHT_BPP] = wbpp
    v[K.TPP_ACT_BPP] = mc.bytes_per_param
    v[K.TPP_DP] = dp
    v[K.TPP_MOE_GROUP] = tp * dp if mc.is_moe else tp
    v[K.TPP_SHARED_FFN] = mc.shared_ffn
    v[K.TPP_ALL2ALL] = 1.0 if MOE_COMM_BACKENDS[backend] else 0.0
    v[K.TPP_FLOPS_US] = flops_us
    v[K.TPP_BW_US] = hw.bw_peak_tbs * 1e6
    v[K.TPP_PREFILL_SPLIT] = 1.0 if len(beta) >= 9 else 0.0
    v[K.TPP_DECODE_SPLIT] = 1.0 if len(beta) >= 10 else 0.0
    v[K.TPP_BETA:K.TPP_BETA + K.TPP_NBETA] = betas
    return tuple(float(x) for x in v)


def bundled_model_config_dir(model: str, defaults_path: str | os.PathLike | None = None) -> Path:
    """``model_configs/<name after the org/>`` next to the defaults YAML (the shipped one by
    default), where the reference looks for a model's ``config.json``."""
    base = Path(defaults_path).parent if defaults_path else default_data_path("")
    short = model.split("/", 1)[1] if "/" in model else model
    if ".." in Path(short).parts or os.path.isabs(short) or not short:
        raise InputError(f"--model: {model!r} is not a usable model name")
    return base / "model_configs" / short


def available_model_configs(defaults_path: str | os.PathLike | None = None) -> list[str]:
    """Names of the model config folders shipped next to the defaults YAML."""
    base = (Path(defaults_path).parent if defaults_path else default_data_path("")) / "model_configs"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "config.json").is_file())


# KV-cache capacity from GPU memory, as vLLM sizes it and the reference estimates it.
_ACTIVATION_GIB_DENSE = 5.5
_ACTIVATION_GIB_MOE = 8.0
_NON_TORCH_GIB_TP1 = 0.15
_NON_TORCH_GIB_TP_MULTI = 0.6
_GIB = float(1 << 30)
_SWIGLU_ACTIVATIONS = ("", "silu", "swiglu", "geglu", "situ")


def kv_bytes_per_token(mc: ModelConfig, tp: int) -> float:
    """KV-cache bytes one token occupies on one GPU: 2 (K and V) × layers × KV heads × head
    dimension × bytes per value, split over ``tp``; for an MLA model the compressed latent
    (``kv_lora_rank + qk_rope_head_dim`` values per layer), which every rank holds whole."""
    if mc.kv_lora_rank > 0:
        width = mc.kv_lora_rank + mc.qk_rope_head_dim
        return float(mc.layers) * float(width) * mc.bytes_per_param
    head_dim = mc.head_dim if mc.head_dim > 0 else (mc.hidden // mc.heads if mc.heads else 0)
    kv_heads = mc.kv_heads if mc.kv_heads > 0 else mc.heads
    return float(mc.layers) * 2.0 * float(head_dim) * float(kv_heads) * mc.bytes_per_param / tp


def model_weight_bytes(mc: ModelConfig) -> int:
    """Weight bytes of the whole model (all ranks): embeddings, attention, SwiGLU MLPs (every
    routed and shared expert plus the router for MoE layers, a dense prefix of
    ``first_k_dense_replace`` layers), norms and an untied LM head, at the weight precision."""
    hidden, vocab, layers = mc.hidden, mc.vocab, mc.layers
    head_dim = mc.head_dim if mc.head_dim > 0 else (mc.hidden // mc.heads if mc.heads else 0)
    kv_dim = (mc.kv_heads if mc.kv_heads > 0 else mc.heads) * head_dim
    attention = hidden * (hidden + 2 * kv_dim) + hidden * hidden
    dense_mlp = 3 * hidden * mc.intermediate
    if mc.is_moe:
        expert_ffn = mc.moe_ffn if mc.moe_ffn > 0 else mc.intermediate
        moe_mlp = 3 * hidden * expert_ffn * mc.experts + mc.experts * hidden
        if mc.kv_shared_ffn > 0:
            moe_mlp += 3 * hidden * mc.kv_shared_ffn
        prefix_mlp = 3 * hidden * mc.dense_ffn if mc.dense_ffn > 0 else dense_mlp
        n_dense = min(max(mc.first_k_dense, 0), layers)
        mlp = n_dense * prefix_mlp + (layers - n_dense) * moe_mlp
    else:
        mlp = layers * dense_mlp
    total = (vocab * hidden + layers * (attention + 2 * hidden) + mlp
             + (0 if mc.tie_embeddings else vocab * hidden) + hidden)
    return int(float(total) * mc.effective_weight_bpp)


def auto_kv_blocks(mc: ModelConfig, hw: HardwareCalib, tp: int, dp: int, block_size: int,
                   gpu_memory_utilization: float, *, model: str = "the model") -> int:
    """KV blocks per instance that fit in GPU memory: ``tp`` GPUs × memory × utilisation,
    minus the weights, activation scratch (5.5 GiB dense, 8 GiB MoE) and non-torch memory
    (0.15 GiB per GPU at TP 1, else 0.6), divided by the bytes of one block; × ``dp`` for a
    MoE model served data-parallel.  A model that does not fit → InputError naming the
    minimum number of GPUs per instance."""
    if not (0 < gpu_memory_utilization <= 1.0) or not math.isfinite(gpu_memory_utilization):
        raise InputError(f"--gpu-memory-utilization must be a finite value in (0, 1.0], "
                         f"got {gpu_memory_utilization}")
    if block_size <= 0:
        raise InputError(f"--block-size-in-tokens must be > 0, got {block_size}")
    if mc.hidden_act not in _SWIGLU_ACTIVATIONS:
        raise InputError(f"{model}: hidden_act {mc.hidden_act!r} is not a SwiGLU-family "
                         f"activation (silu, swiglu, geglu, situ), so its weight size cannot be "
                         f"estimated; pass --total-kv-blocks")
    for field, val in (("vocab_size", mc.vocab), ("intermediate_size", mc.intermediate)):
        if val <= 0:
            raise InputError(f"{model}: {field} must be > 0 to size the KV cache, got {val}; "
                             f"pass --total-kv-blocks")
    per_block = int(kv_bytes_per_token(mc, tp) * float(block_size))
    if per_block <= 0:
        raise InputError(f"{model}: a KV block would take {per_block} bytes; pass --total-kv-blocks")
    available = hw.memory_gib * gpu_memory_utilization * float(tp)
    weights = float(model_weight_bytes(mc)) / _GIB
    activation = _ACTIVATION_GIB_MOE if mc.is_moe else _ACTIVATION_GIB_DENSE
    non_torch = (_NON_TORCH_GIB_TP1 if tp == 1 else _NON_TORCH_GIB_TP_MULTI) * float(tp)
    overhead = weights + activation + non_torch
    if overhead >= available:
        per_gpu = hw.memory_gib * gpu_memory_utilization - _NON_TORCH_GIB_TP_MULTI
        need = math.ceil((weights + activation) / per_gpu) if per_gpu > 0 else 0
        hint = f"; it needs at least {need} GPUs per instance (--tp)" if need else ""
        raise InputError(
            f"{model} does not fit on {tp} GPU(s): weights {weights:.2f} GiB + activations "
            f"{activation:.2f} + non-torch {non_torch:.2f} >= {available:.2f} GiB available "
            f"({hw.memory_gib:g} GiB x {gpu_memory_utilization:g} utilisation x {tp}){hint}")
    blocks = int((available - overhead) * _GIB) // per_block
    if blocks <= 0:
        raise InputError(f"{model}: no KV block fits in GPU memory; pass --total-kv-blocks")
    if mc.is_moe and dp > 1:
        blocks *= dp
    return blocks


def trained_physics_coefficients(defaults: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(alpha, beta) of the ``trained_physics_coefficients`` section of a defaults YAML
    (empty tuples when it has none)."""
    sec = defaults.get("trained_physics_coefficients")
    if not isinstance(sec, dict):
        return (), ()
    out = []
    for key in ("alpha_coeffs", "beta_coeffs"):
        vals = sec.get(key) or ()
        try:
            out.append(tuple(float(x) for x in vals))
        except (TypeError, ValueError):
            raise InputError(f"--defaults-filepath: trained_physics_coefficients.{key} must be a "
                             f"list of numbers, got {vals!r}") from None
    return out[0], out[1]


def _resolve_trained_physics(model, hardware, tp, vllm_version, alpha_t, beta_t, folder, hw_path,
                             defaults_path, dp, moe_comm_backend, expert_parallel, kv_sizing):
    model = model.lower()
    defaults = load_defaults(defaults_path)
    tp, hardware, _ = _fill_from_defaults(defaults, model, tp, hardware, "")
    missing = [m for m, bad in (("--hardware (GPU type)", not hardware), ("--tp (> 0)", tp <= 0))
               if bad]
    if missing:
        raise InputError(f"--latency-model trained-physics needs {' and '.join(missing)} for "
                         f"{model!r} (no default for it in the defaults YAML)")
    d_alpha, d_beta = trained_physics_coefficients(defaults)
    if _all_zero(beta_t):
        if len(d_beta) < 7 or _all_zero(d_beta):
            raise InputError("--latency-model trained-physics: the defaults YAML has no "
                             "trained_physics_coefficients; pass --beta-coeffs (7 to 11 values) "
                             "and --alpha-coeffs (3 values)")
        beta_t = d_beta
    if _all_zero(alpha_t) and d_alpha:
        alpha_t = d_alpha
    if folder:
        cfg_path = Path(folder) / "config.json"
    else:
        cfg_dir = bundled_model_config_dir(model, defaults_path)
        cfg_path = cfg_dir / "config.json"
        if not cfg_path.is_file():
            names = ", ".join(available_model_configs(defaults_path)) or "none"
            raise InputError(f"--model: no model config for {model!r} (looked for "
                             f"{str(cfg_path)!r}); available: {names}; or pass "
                             "--model-config-folder DIR (a folder holding its HF config.json)")
    hw_file = Path(hw_path) if hw_path else (
        Path(defaults_path).parent / "hardware_config.json" if defaults_path
        else default_data_path("hardware_config.json"))
    mc = parse_model_config(cfg_path, model)
    hw = hardware_calib(hw_file, hardware)
    if expert_parallel and not mc.is_moe:
        raise InputError(f"--enable-expert-parallel needs a MoE model; {model!r} is dense "
                         "(vLLM refuses this configuration)")
    params = trained_physics_params(mc, hw, tp, alpha_t, beta_t, dp=dp,
                                    moe_comm_backend=moe_comm_backend, model=repr(model),
                                    where=str(cfg_path))
    notes, warnings = [], []
    if moe_comm_backend and not mc.is_moe:
        warnings.append(f"--moe-comm-backend={moe_comm_backend} has no effect on a dense model")
    elif moe_comm_backend and dp <= 1:
        warnings.append(f"--moe-comm-backend={moe_comm_backend} has no effect at --dp=1 (the MoE "
                     "dispatch/combine cost is charged only when DP > 1)")
    kv_blocks = None
    if kv_sizing is not None:
        block_size, util = kv_sizing
        if mc.moe_hint:
            warnings.append(f"{model!r} looks MoE ({mc.moe_hint}) but names no expert count; the KV "
                         "cache keeps --total-kv-blocks (pass it explicitly)")
        elif hw.memory_gib <= 0:
            warnings.append(f"the hardware config gives no MemoryGiB for {hardware}; the KV cache "
                         "keeps --total-kv-blocks (pass it explicitly)")
        else:
            kv_blocks = auto_kv_blocks(mc, hw, tp, dp, block_size, util, model=repr(model))
            notes.append(f"KV cache sized from GPU memory: {kv_blocks} blocks of {block_size} "
                         f"tokens ({hw.memory_gib:g} GiB x {util:g}, TP={tp}, DP={dp})")
    cfg = LatencyConfig(kind=TRAINED_PHYSICS, alpha=tuple(alpha_t), beta=tuple(beta_t), tp=tp,
                        roofline_params=params, context_tokens=max(mc.context, 0))
    return ResolvedLatency(config=cfg, total_kv_blocks=kv_blocks, hardware=hardware, tp=tp,
                           vllm_version=vllm_version, model=model,
                           context_tokens=mc.context if mc.context > 0 else None,
                           notes=tuple(notes), warnings=tuple(warnings))
