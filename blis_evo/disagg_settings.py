"""P/D disaggregation settings: the policy bundle's ``disaggregation`` section and the ``--architecture``
/ ``--prefill-replicas`` / ``--decode-replicas`` / ``--pd-*`` flags, resolved into a
:class:`simulator.config.DisaggConfig` (explicit flag > bundle section > default).

Bundle section (every key optional; schema: :data:`DISAGGREGATION`)::

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

from typing import Any

from simulator.policies import registry
from simulator.config import DEFAULT_KV_BYTES_PER_TOKEN, DisaggConfig
from simulator.errors import InputError
from simulator.schema import At, Bool, Choice, Field, Int, Mapping, Number

from .bundle_values import BUNDLE_WORDING, PREFIX, BundleWording
from .scorers import scorer_list_field

ARCHITECTURES = ("monolithic", "disaggregated")
GRANULARITIES = ("request", "block")

PD_FIELDS = (  # (flag name, bundle key path, default)
    ("architecture", "architecture", "monolithic"),
    ("prefill-replicas", "prefill_replicas", 1),
    ("decode-replicas", "decode_replicas", 1),
    ("pd-decider", "decider", "always"),
    ("pd-prefix-threshold", "prefix_threshold", 256),
    ("pd-transfer-bandwidth", "transfer.bandwidth_gbps", 25.0),
    ("pd-transfer-base-latency", "transfer.base_latency_us", 0),
    ("pd-transfer-granularity", "transfer.granularity", "request"),
    ("pd-transfer-pipelining", "transfer.pipelining", False),
    ("pd-kv-bytes-per-token", "transfer.kv_bytes_per_token", DEFAULT_KV_BYTES_PER_TOKEN),
    ("pd-backpressure-threshold", "backpressure.threshold", 0),
    ("pd-backpressure-retry", "backpressure.retry_us", 1000),
)
"""Each setting's ``blis run`` flag, key path in the section and default."""
_DEFAULT = {key: default for _, key, default in PD_FIELDS}


def _int(lo: int, key: str, **kw) -> Int:
    """An integer setting (integer literals only, as the flags take them)."""
    return Int(ge=lo, integral_floats=False, default=_DEFAULT[key], **kw)


def _positive(key: str, **kw) -> Number:
    return Number(gt=0, what="a finite number > 0", default=_DEFAULT[key], **kw)


def _flag_values(section: dict, at: At) -> dict[str, Any]:
    """The parsed section as {flag name: value} (PD_FIELDS order) for the keys given, plus
    ``"decode_scorers"`` when given."""
    out: dict[str, Any] = {}
    for flag, key, _ in PD_FIELDS:
        node: Any = section
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            out[flag] = node
    if section.get("decode_scorers") is not None:
        out["decode_scorers"] = section["decode_scorers"]
    return out


DISAGGREGATION = Mapping({
    "architecture": Choice(ARCHITECTURES, label="architecture", default=_DEFAULT["architecture"],
                           help="disaggregated: separate prefill and decode pools"),
    "prefill_replicas": _int(1, "prefill_replicas", unit="replicas", help="prefill pool size"),
    "decode_replicas": _int(1, "decode_replicas", unit="replicas", help="decode pool size"),
    "decider": Choice(lambda: registry.valid_names("pd-decider"), label="P/D decider",
                      default=_DEFAULT["decider"],
                      help="which requests are disaggregated (prefilled in the prefill pool)"),
    "prefix_threshold": _int(0, "prefix_threshold", unit="tokens",
                             help="prefix-threshold decider: uncached prompt tokens above which "
                                  "a request is disaggregated"),
    "transfer": Mapping({
        "bandwidth_gbps": _positive("transfer.bandwidth_gbps", unit="GB/s",
                                    help="KV transfer link bandwidth"),
        "base_latency_us": _int(0, "transfer.base_latency_us", unit="µs",
                                help="fixed latency of a transfer"),
        "granularity": Choice(GRANULARITIES, label="granularity",
                              default=_DEFAULT["transfer.granularity"],
                              help="transfer the whole request's KV at once, or block by block"),
        "pipelining": Bool(default=False, help="overlap the transfer with the prefill "
                                               "(needs granularity: block)"),
        "kv_bytes_per_token": _positive("transfer.kv_bytes_per_token", unit="bytes",
                                        help="KV bytes per token when no roofline model gives it"),
    }, fill_defaults=False, help="the prefill-to-decode KV transfer"),
    "backpressure": Mapping({
        "threshold": _int(0, "backpressure.threshold", unit="requests",
                          help="> 0: hold transfers while a decode instance queues this many"),
        "retry_us": _int(1, "backpressure.retry_us", unit="µs", help="retry period of a held "
                                                                    "transfer"),
    }, fill_defaults=False, help="decode-pool backpressure"),
    "decode_scorers": scorer_list_field(help="the decode pool's routing scorers (default: the "
                                             "routing profile's)"),
}, fill_defaults=False, then=_flag_values,
   help="P/D disaggregation (blis-evo extension); explicit --architecture / --pd-* flags "
        "override it")
"""The bundle's ``disaggregation`` section (:mod:`simulator.schema` declaration), parsed to
{flag name: value} for the keys given."""


def _field(key: str) -> Field:
    """The declared field of a setting's key path (``transfer.bandwidth_gbps``)."""
    field: Field = DISAGGREGATION
    for part in key.split("."):
        field = field.fields[part]
    return field


class _FlagWording(BundleWording):
    """``--flag: problem``; an unknown name quotes the value the way the flags' messages do."""

    def unknown_name(self, field, got):
        if not isinstance(got, str):
            return super().unknown_name(field, got)
        return f"unknown value {got!r}; valid: {', '.join(field.allowed())}"


_FLAG_WORDING = _FlagWording()


def parse_disagg_section(doc: Any, at: At | None = None) -> dict[str, Any]:
    """Validate the bundle's ``disaggregation`` mapping (at ``at``; default: the bundle's
    ``disaggregation`` key); returns {flag name: value} for the keys set, plus
    ``"decode_scorers"`` (a ScorerSpec tuple) when given.  One-line InputError naming the key
    path on the first bad key or value."""
    if doc is None:
        return {}
    return DISAGGREGATION.parse(doc, at or At(PREFIX, "disaggregation", wording=BUNDLE_WORDING))


def resolve_disaggregation(flag_values: dict[str, Any], explicit: frozenset[str],
                           section: dict[str, Any], decode_scorers_flag: tuple = (),
                           num_instances: int | None = None) -> DisaggConfig | None:
    """Merge explicit flags over the bundle section over defaults; None when monolithic.

    ``num_instances`` is the explicit ``--num-instances`` (None if not given): with a
    disaggregated architecture it must equal prefill + decode replicas."""
    v: dict[str, Any] = {}
    for flag, key, default in PD_FIELDS:
        if flag in explicit:
            v[flag] = _field(key).parse(flag_values[flag], At("", f"--{flag}", wording=_FLAG_WORDING))
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
