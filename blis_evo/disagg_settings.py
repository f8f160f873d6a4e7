"""P/D disaggregation settings: the policy bundle's ``disaggregation`` section and the ``--architecture``
/ ``--prefill-replicas`` / ``--decode-replicas`` / ``--pd-*`` flags, resolved into a
:class:`simulator.config.DisaggConfig` (explicit flag > bundle section > default).

Bundle section (every key optional)::

    disaggregation:
      architecture: disaggregated        # or monolithic (default)
      prefill_replicas: 2
      decode_replicas: 2
      decider: prefix-threshold          # always | never | prefix-threshold
      prefix_threshold: 256              # tokens of uncached prompt
      transfer: {bandwidth_gbps: 25, base_latency_us: 50, granularity: block,
                 pipelining: true, kv_bytes_per_token: 131072}
      backpressure: {threshold: 8, retry_us: 1000}
      decode_scorers: [{name: queue-depth, weight: 1}]
"""
from __future__ import annotations

import math
from typing import Any

from simulator.policies import registry
from simulator.config import DEFAULT_KV_BYTES_PER_TOKEN, DisaggConfig
from simulator.errors import InputError

from .scorers import scorer_list

ARCHITECTURES = ("monolithic", "disaggregated")
GRANULARITIES = ("request", "block")

# (flag name, bundle key path, kind, default)
PD_FIELDS = (
    ("architecture", "architecture", "str", "monolithic"),
    ("prefill-replicas", "prefill_replicas", "int", 1),
    ("decode-replicas", "decode_replicas", "int", 1),
    ("pd-decider", "decider", "str", "always"),
    ("pd-prefix-threshold", "prefix_threshold", "int", 256),
    ("pd-transfer-bandwidth", "transfer.bandwidth_gbps", "float", 25.0),
    ("pd-transfer-base-latency", "transfer.base_latency_us", "int", 0),
    ("pd-transfer-granularity", "transfer.granularity", "str", "request"),
    ("pd-transfer-pipelining", "transfer.pipelining", "bool", False),
    ("pd-kv-bytes-per-token", "transfer.kv_bytes_per_token", "float", DEFAULT_KV_BYTES_PER_TOKEN),
    ("pd-backpressure-threshold", "backpressure.threshold", "int", 0),
    ("pd-backpressure-retry", "backpressure.retry_us", "int", 1000),
)
_SECTION_KEYS = ("architecture", "prefill_replicas", "decode_replicas", "decider",
                 "prefix_threshold", "transfer", "backpressure", "decode_scorers")


def _check_value(where: str, kind: str, key: str, value: Any) -> Any:
    """Type and range check of one setting; ``where`` names it in the one-line error."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise InputError(f"{where}: expected a string, got {value!r}")
        allowed = {"architecture": ARCHITECTURES, "decider": tuple(registry.valid_names("pd-decider")),
                   "transfer.granularity": GRANULARITIES}[key]
        if value not in allowed:
            raise InputError(f"{where}: unknown value {value!r}; valid: {', '.join(allowed)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind == "int" and not isinstance(value, int)):
        raise InputError(f"{where}: expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    if kind == "float":
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"{where}: must be a finite number > 0, got {value!r}")
        return float(value)
    lo = 1 if key in ("prefill_replicas", "decode_replicas", "backpressure.retry_us") else 0
    if value < lo:
        raise InputError(f"{where}: must be an integer >= {lo}, got {value}")
    return int(value)


def parse_disagg_section(doc: Any, prefix: str = "policy-config disaggregation") -> dict[str, Any]:
    """Validate the bundle's ``disaggregation`` mapping; returns {flag name: value} for the keys
    set, plus ``"decode_scorers"`` (a ScorerSpec tuple) when given.  One-line InputError naming
    the key path on the first bad key or value."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError(f"{prefix}: expected a mapping")
    for key in doc:
        if key not in _SECTION_KEYS:
            raise InputError(f"{prefix}.{key}: unknown key (allowed: {', '.join(_SECTION_KEYS)})")
    out: dict[str, Any] = {}
    for sub in ("transfer", "backpressure"):
        part = doc.get(sub)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise InputError(f"{prefix}.{sub}: expected a mapping")
        allowed = [k.split(".", 1)[1] for _, k, _, _ in PD_FIELDS if k.startswith(sub + ".")]
        for key in part:
            if key not in allowed:
                raise InputError(f"{prefix}.{sub}.{key}: unknown key (allowed: {', '.join(allowed)})")
    for flag, key, kind, _ in PD_FIELDS:
        node: Any = doc
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            out[flag] = _check_value(f"{prefix}.{key}", kind, key, node)
    if doc.get("decode_scorers") is not None:
        out["decode_scorers"] = scorer_list(doc["decode_scorers"], "disaggregation.decode_scorers")
    return out


def resolve_disaggregation(flag_values: dict[str, Any], explicit: frozenset[str],
                           section: dict[str, Any], decode_scorers_flag: tuple = (),
                           num_instances: int | None = None) -> DisaggConfig | None:
    """Merge explicit flags over the bundle section over defaults; None when monolithic.

    ``num_instances`` is the explicit ``--num-instances`` (None if not given): with a
    disaggregated architecture it must equal prefill + decode replicas."""
    v: dict[str, Any] = {}
    for flag, key, kind, default in PD_FIELDS:
        if flag in explicit:
            v[flag] = _check_value(f"--{flag}", kind, key, flag_values[flag])
        else:
            v[flag] = section.get(flag, default)
    if v["architecture"] == "monolithic":
        return None
    if v["pd-transfer-pipelining"] and v["pd-transfer-granularity"] != "block":
        raise InputError("--pd-transfer-pipelining needs --pd-transfer-granularity block "
                         "(transfer.granularity: block), got request")
    p, d = v["prefill-replicas"], v["decode-replicas"]
    if num_instances is not None and num_instances != p + d:
        raise InputError(f"--num-instances {num_instances} != --prefill-replicas {p} + "
                         f"--decode-replicas {d} (a disaggregated deployment has p + d instances)")
    return DisaggConfig(
        prefill_replicas=p, decode_replicas=d, decider=v["pd-decider"],
        prefix_threshold=v["pd-prefix-threshold"], bandwidth_gbps=v["pd-transfer-bandwidth"],
        base_latency_us=v["pd-transfer-base-latency"],
        granularity=v["pd-transfer-granularity"], pipelining=v["pd-transfer-pipelining"],
        kv_bytes_per_token=v["pd-kv-bytes-per-token"],
        backpressure_threshold=v["pd-backpressure-threshold"],
        backpressure_retry_us=v["pd-backpressure-retry"],
        decode_scorers=tuple(decode_scorers_flag) or tuple(section.get("decode_scorers", ())))
