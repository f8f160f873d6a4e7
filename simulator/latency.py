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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from simulator.config import LatencyConfig
from simulator.errors import InputError, one_line
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
) -> ResolvedLatency:
    """Pick the step-time model and its coefficients the way the reference CLI does.

    ``latency_model=None`` reproduces cmd/root.go: with all-zero α/β and neither
    ``--model-config-folder`` nor ``--hardware-config``, the (lowercased) model's row in
    defaults.yaml supplies α, β and the KV block count (missing hardware/tp/vllm-version are
    filled from ``defaults[model]`` first).  If α/β are still all zero, the roofline model is
    used, which needs the config folder, hardware config, ``--hardware`` and ``--tp > 0``.
    ``"roofline"`` forces roofline (α stays the CLI value, as in the reference);
    ``"blackbox"`` forces the α/β regression (CLI values, else the defaults.yaml row).
    Every case in which the reference would crash or run with zero step times raises InputError.
    """
    if not model:
        raise InputError("--model is required (LLM name, e.g. meta-llama/llama-3.1-8b-instruct)")
    if latency_model not in (None, "", "auto", "blackbox", "roofline"):
        raise InputError(f"--latency-model must be 'blackbox' or 'roofline', got {latency_model!r}")
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

    use_roofline = mode == "roofline" or (mode is None and cli_zero and (folder or hw_path))
    if use_roofline:
        return _resolve_roofline(model, hardware, tp, vllm_version, alpha_t, beta_t, folder, hw_path)

    kv_blocks: int | None = None
    if cli_zero:
        # Defaults lookup (the reference only does it when no roofline paths were given; a
        # forced blackbox does it regardless).
        model = model.lower()
        defaults = load_defaults(defaults_path)
        d_gpu, d_tp, d_vllm = _default_specs(defaults, model)
        if tp == 0 and d_tp > 0:
            tp = d_tp
        if not hardware and d_gpu:
            hardware = d_gpu
        if not vllm_version and d_vllm:
            vllm_version = d_vllm
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
