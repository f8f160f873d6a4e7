"""Workload-spec YAML (``--workload-spec``): the data model and a strict loader.

A workload spec describes multi-tenant traffic as a list of *clients*, each with its own share of
the aggregate request rate, arrival process, prompt/output length distributions, optional shared
prefix group, activity windows, multimodal or multi-turn reasoning behaviour.  The schema is the
reference simulator's (``version``, ``seed``, ``category``, ``aggregate_rate``, ``horizon``,
``num_requests``, ``clients``, ``servegen_data``).

Parsing is strict (the schema is :data:`SPEC`, declared with :mod:`simulator.schema`; ``blis
schema workload-spec`` prints it as JSON Schema): unknown keys, duplicate keys, wrong types and
out-of-range values raise :class:`~simulator.errors.InputError` with one line naming the file
and the key path, e.g.
``spec.yaml: clients[2].arrival.cv must be in [0.01, 10.4], got 20``.  The reference rejects
unknown keys and a few bad values; the extra range checks here (distribution parameters, windows,
multi-turn settings) reject inputs on which the reference silently produces degenerate traffic.

When ``clients`` is empty and ``servegen_data`` is given, the ServeGen native data directory is
read at load time and turned into one client per ``chunk-<id>-trace.csv`` (see
:func:`load_servegen_clients`), so a loaded spec is always self-contained.

``version`` is "1" (or empty) or "2", as in the reference at f90a1e3a.  SLO class names:
version 2 has ``critical``, ``standard``, ``sheddable``, ``batch``, ``background``; a version-1
spec may also use the version-1 names ``realtime`` and ``interactive`` (the reference upgrades
them to ``critical`` / ``standard``), a version-2 spec may not.  The class stays as written in
the loaded spec, the generated workload and the reports; :mod:`simulator.slo` maps it to its tier.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from simulator.errors import InputError
from simulator.schema import (At, Bool, Choice, Custom, Int, ListOf, Mapping, Number, Str, Switch,
                              forbidden, range_text, read_yaml, show)

from .load_profile import LOAD_PROFILE, LoadProfile
from .scenarios import DEFAULT_NUM_REQUESTS, DEFAULT_RATE, DEFAULT_SEED, scenario_document

ARRIVAL_PROCESSES = ("poisson", "gamma", "weibull")
DIST_TYPES = ("gaussian", "exponential", "pareto_lognormal", "empirical")
CATEGORIES = ("", "language", "multimodal", "reasoning")
SPEC_VERSIONS = ("", "1", "2")
"""Accepted ``version`` values ("" and "1": version 1; the reference upgrades both to "2")."""
SLO_CLASSES_V2 = ("", "critical", "standard", "sheddable", "batch", "background")
"""SLO class names of a version-2 spec ("" = none), as in the reference at f90a1e3a."""
V1_SLO_CLASSES = {"realtime": "critical", "interactive": "standard"}
"""Version-1-only class names and the version-2 class the reference upgrades each to.  A spec
with version "" or "1" may use them (and every version-2 name); a version-2 spec may not.  The
loaded spec keeps the name as written; :mod:`simulator.slo` maps it to its tier."""
SLO_CLASSES = SLO_CLASSES_V2 + tuple(V1_SLO_CLASSES)
"""Every accepted ``slo_class`` name (which ones a spec may use depends on its version)."""
CONTEXT_GROWTH = ("", "none", "accumulate")

WEIBULL_CV_MIN = 0.01
WEIBULL_CV_MAX = 10.4
PRESET_PREFIX = "preset:"
"""``load_workload_spec("preset:NAME")`` loads a built-in scenario instead of a file."""
DEFAULT_PREFIX_LENGTH = 50
"""Prefix length of a group whose first member gives no (or a zero) ``prefix_length``."""

# ----------------------------------------------------------------------------------------------
# Data model (frozen, hashable: a spec can key a cache of generated workloads)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DistSpec:
    """A token-length (or count / percentage) distribution.

    ``params`` holds ``(name, value)`` pairs in file order; for ``empirical`` the names are the
    integer values (as decimal strings) and the values their (unnormalised) probabilities.
    """

    type: str
    params: tuple[tuple[str, float], ...] = ()

    def param(self, name: str, default: float = 0.0) -> float:
        """Value of one named parameter (``default`` when absent)."""
        for k, v in self.params:
            if k == name:
                return v
        return default

    def pdf(self) -> dict[int, float]:
        """The empirical PDF ``{value: probability}`` (only meaningful for ``empirical``)."""
        return {int(k): v for k, v in self.params}


@dataclass(frozen=True)
class ArrivalSpec:
    """Inter-arrival process: ``poisson``, ``gamma`` or ``weibull`` with an optional ``cv``."""

    process: str = "poisson"
    cv: float | None = None


@dataclass(frozen=True)
class NetworkSpec:
    """Client-side network: round-trip time (ms) and bandwidth (Mbit/s, 0 = unlimited)."""

    rtt_ms: float = 0.0
    bandwidth_mbps: float = 0.0


def upload_delay_us(bandwidth_mbps, tokens):
    """Transfer time (µs) of ``tokens`` token ids at ``bandwidth_mbps`` Mbit/s.

    Each token is a 4-byte id, so the delay is ``tokens · 32 / bandwidth_mbps`` µs; a bandwidth
    <= 0 means unlimited (no delay).  Works element-wise on numpy arrays; the same formula serves
    downloads (output tokens).
    """
    bw = np.asarray(bandwidth_mbps, dtype=np.float64)
    n = np.asarray(tokens, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(bw > 0, (n * 4.0 * 8.0) / (bw * 1e6) * 1e6, 0.0)
    return float(d) if d.ndim == 0 else d


download_delay_us = upload_delay_us


def client_ttft_us(server_ttft_us, network: "NetworkSpec | None", input_tokens):
    """Client-side TTFT (µs): server TTFT + RTT + upload of the input tokens.

    ``network`` None returns the server value unchanged (the reference's ``ComputeClientTTFT``).
    """
    if network is None:
        return server_ttft_us
    return (server_ttft_us + network.rtt_ms * 1000.0
            + upload_delay_us(network.bandwidth_mbps, input_tokens))


def client_e2e_us(server_e2e_us, network: "NetworkSpec | None", input_tokens, output_tokens):
    """Client-side E2E (µs): server E2E + RTT + upload of the input + download of the output.

    ``network`` None returns the server value unchanged (the reference's ``ComputeClientE2E``).
    """
    if network is None:
        return server_e2e_us
    return (server_e2e_us + network.rtt_ms * 1000.0
            + upload_delay_us(network.bandwidth_mbps, input_tokens)
            + download_delay_us(network.bandwidth_mbps, output_tokens))


@dataclass(frozen=True)
class ActiveWindow:
    """A client is active for arrivals ``start_us <= t < end_us``."""

    start_us: int
    end_us: int


@dataclass(frozen=True)
class LifecycleSpec:
    """Activity windows of a client; arrivals outside every window are dropped."""

    windows: tuple[ActiveWindow, ...]


@dataclass(frozen=True)
class MultimodalSpec:
    """Per-modality length distributions; input = text + sum over modalities of count x item."""

    text: DistSpec | None = None
    image: DistSpec | None = None
    image_count: DistSpec | None = None
    audio: DistSpec | None = None
    audio_count: DistSpec | None = None
    video: DistSpec | None = None
    video_count: DistSpec | None = None


@dataclass(frozen=True)
class MultiTurnSpec:
    """Multi-turn sessions: ``max_rounds`` requests, ``think_time_us`` apart (plus output)."""

    max_rounds: int
    think_time_us: int = 0
    context_growth: str = ""


@dataclass(frozen=True)
class ReasoningSpec:
    """Reasoning clients: reason-ratio percentage distribution and optional multi-turn sessions."""

    reason_ratio: DistSpec | None = None
    multi_turn: MultiTurnSpec | None = None


@dataclass(frozen=True)
class SLOTargets:
    """Optional per-client latency targets in milliseconds (None = no target)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None


@dataclass(frozen=True)
class ClientSpec:
    """One client (traffic source) of a workload spec."""

    id: str = ""
    tenant_id: str = ""
    slo_class: str = ""
    rate_fraction: float = 1.0
    arrival: ArrivalSpec = field(default_factory=ArrivalSpec)
    input_distribution: DistSpec | None = None
    output_distribution: DistSpec | None = None
    prefix_group: str = ""
    prefix_length: int = 0
    streaming: bool = False
    network: NetworkSpec | None = None
    lifecycle: LifecycleSpec | None = None
    multimodal: MultimodalSpec | None = None
    reasoning: ReasoningSpec | None = None
    slo_targets: SLOTargets | None = None


@dataclass(frozen=True)
class ServeGenDataSpec:
    """ServeGen native data directory and the time span (seconds, 0 = open) to read from it."""

    path: str
    span_start: int = 0
    span_end: int = 0


@dataclass(frozen=True)
class WorkloadSpec:
    """A whole workload spec.  ``horizon`` (µs) and ``num_requests`` are 0 when not given."""

    version: str = ""
    seed: int = 0
    category: str = ""
    aggregate_rate: float = 0.0
    horizon: int = 0
    num_requests: int = 0
    clients: tuple[ClientSpec, ...] = ()
    servegen_data: ServeGenDataSpec | None = None
    # rate multiplier over time (workload/load_profile.py); out of the repr so that specs without
    # one keep their experiment digest (blis_evo.experiment.experiment_digest adds it when set)
    load_profile: "LoadProfile | None" = field(default=None, repr=False)

    def slo_targets_by_class(self) -> dict[str, dict]:
        """``{slo_class: {ttft_ms/tpot_ms/e2e_ms: value}}`` declared by the clients (the first
        client of a class that declares any target wins); ``{}`` when none declares one."""
        out: dict[str, dict] = {}
        for c in self.clients:
            t = c.slo_targets
            if t is None or c.slo_class in out:
                continue
            given = {k: getattr(t, k) for k in ("ttft_ms", "tpot_ms", "e2e_ms")
                     if getattr(t, k) is not None}
            if given:
                out[c.slo_class] = given
        return out


# ----------------------------------------------------------------------------------------------
# The schema (simulator.schema declarations; also `blis schema workload-spec`)
# ----------------------------------------------------------------------------------------------

_DIST_HELP = {0: "a distribution of counts or percentages (values >= 0)",
              1: "a distribution of token lengths (values >= 1)"}


def _gaussian(min_value: int):
    """Gaussian parameters; ``max`` at least ``min`` and ``min_value``."""
    def build(v, at):
        if v["max"] < v["min"]:
            (at / "max").fail(f"must be >= min ({v['min']}), got {v['max']}")
        if v["max"] < min_value:
            (at / "max").fail(f"must be >= {min_value}, got {v['max']}")
        return tuple((k, float(x)) for k, x in v.items())
    return Mapping({"mean": Number(required=True, help="mean"),
                    "std_dev": Number(ge=0, required=True, help="standard deviation"),
                    "min": Int(ge=0, any_size=True, required=True,
                               help="smallest value (samples are clipped)"),
                    "max": Int(ge=0, any_size=True, required=True,
                               help="largest value (samples are clipped)")},
                   then=build, help="gaussian parameters (samples rounded and clipped to [min, max])")


def _empirical(min_value: int):
    """An empirical PDF ``{value: probability}``: integer values >= ``min_value`` (keys may be
    written as strings), probabilities >= 0 and not all 0; kept in file order."""
    def check(params, at):
        if not isinstance(params, dict):
            at.expected("a mapping of value: probability", params)
        if not params:
            at.fail("must list at least one value: probability pair for an empirical distribution")
        out = {}
        for k, p in params.items():
            kp = at / k
            key = k
            if isinstance(key, str):
                try:
                    key = int(key.strip())
                except ValueError:
                    kp.fail("is not an integer value (empirical keys are token counts)")
            if isinstance(key, float) and math.isfinite(key) and key == int(key):
                key = int(key)
            if isinstance(key, bool) or not isinstance(key, int):
                kp.fail("is not an integer value (empirical keys are token counts)")
            if key < min_value:
                kp.fail(f"must be >= {min_value} (empirical values), got {key}")
            if key in out:
                kp.fail("is given twice")
            out[key] = _PROBABILITY.parse(p, kp)
        if not any(p > 0 for p in out.values()):
            at.fail("must have at least one positive probability")
        return tuple((str(k), p) for k, p in out.items())
    key = r"^\s*\+?0*[1-9][0-9_]*(\.0*)?\s*$" if min_value >= 1 else r"^\s*[-+]?[0-9_]+(\.0*)?\s*$"
    return Custom(check, what="a mapping of value: probability", json_schema={
        "type": "object", "minProperties": 1, "additionalProperties": False,
        "patternProperties": {key: {"type": "number", "minimum": 0}},
        "not": {"additionalProperties": {"const": 0}}},
        help="value: probability pairs (probabilities >= 0, not all 0; normalised)")


_PROBABILITY = Number(ge=0)


def _dist(min_value: int, help: str = "", **kw) -> Mapping:
    """A distribution field; ``min_value`` is the smallest value it may produce (1 for lengths)."""
    params = Switch("type", {
        "gaussian": _gaussian(min_value),
        "exponential": Mapping({"mean": Number(gt=0, required=True, help="mean")},
                               then=lambda v, at: (("mean", v["mean"]),)),
        "pareto_lognormal": Mapping(
            {"alpha": Number(gt=0, required=True, help="Pareto shape"),
             "xm": Number(gt=0, required=True, help="Pareto scale"),
             "mu": Number(required=True, help="lognormal mu"),
             "sigma": Number(ge=0, required=True, help="lognormal sigma"),
             "mix_weight": Number(ge=0, le=1, required=True, help="probability of the Pareto part")},
            then=lambda v, at: tuple(v.items())),
        "empirical": _empirical(min_value),
    }, required=True, help="the parameters of the distribution type")
    return Mapping({
        "type": Choice(DIST_TYPES, required=True, help="distribution type"),
        "file": forbidden("is not supported (as in the reference); give the empirical PDF inline "
                          "in params", help="not supported: give an empirical PDF inline"),
        "params": params,
    }, then=lambda v, at: DistSpec(v["type"], v["params"]), help=help or _DIST_HELP[min_value],
        ref="length_distribution" if min_value else "count_distribution", **kw)


def _arrival(v, at) -> ArrivalSpec:
    cv = v.get("cv")
    if cv is not None and v["process"] == "weibull" and not WEIBULL_CV_MIN <= cv <= WEIBULL_CV_MAX:
        (at / "cv").fail(f"must be {range_text(ge=WEIBULL_CV_MIN, le=WEIBULL_CV_MAX)}, got "
                         f"{show(cv)}")
    return ArrivalSpec(v["process"], cv)


def _window(v, at) -> ActiveWindow:
    if v["end_us"] <= v["start_us"]:
        (at / "end_us").fail(f"must be > start_us ({v['start_us']}), got {v['end_us']}")
    return ActiveWindow(v["start_us"], v["end_us"])


_MODALITIES = ("text", "image", "image_count", "audio", "audio_count", "video", "video_count")


def _multimodal(v, at) -> MultimodalSpec:
    kw = {n: v.get(f"{n}_distribution") for n in _MODALITIES}
    for m in ("image", "audio", "video"):
        if (kw[m] is None) != (kw[f"{m}_count"] is None):
            missing = f"{m}_count_distribution" if kw[m] is not None else f"{m}_distribution"
            (at / missing).fail(f"is required when the other {m} distribution is given")
    if all(d is None for d in kw.values()):
        at.fail("must give at least one distribution")
    return MultimodalSpec(**kw)


def _client(v, at) -> ClientSpec:
    if v.get("input_distribution") is None:
        if v.get("multimodal") is None:
            (at / "input_distribution").fail("is required")
        if v.get("reasoning") is not None and v["reasoning"].multi_turn is not None:
            (at / "input_distribution").fail("is required for multi-turn clients")
    return ClientSpec(**v)


_CLIENT = Mapping({
    "id": Str(allow_int=True, default="", help="client name"),
    "tenant_id": Str(allow_int=True, default="", help="tenant the client's requests belong to"),
    "slo_class": Choice(SLO_CLASSES, default="",
                        notes={n: "version 1 only" for n in V1_SLO_CLASSES},
                        help="SLO class of the client's requests (realtime and interactive: "
                             "version-1 specs only)"),
    "rate_fraction": Number(gt=0, required=True,
                            help="share of aggregate_rate (normalised over the clients)"),
    "arrival": Mapping({"process": Choice(ARRIVAL_PROCESSES, required=True,
                                          help="inter-arrival process"),
                        "cv": Number(gt=0, help="coefficient of variation of the gaps (gamma, "
                                                f"weibull: {WEIBULL_CV_MIN} .. {WEIBULL_CV_MAX})")},
                       required=True, then=_arrival, help="arrival process"),
    "input_distribution": _dist(1, "prompt length in tokens (required unless multimodal)"),
    "output_distribution": _dist(1, "output length in tokens", required=True),
    "prefix_group": Str(allow_int=True, default="", help="requests of a group share a prefix"),
    "prefix_length": Int(ge=0, default=0, unit="tokens",
                         help=f"shared prefix length (0: {DEFAULT_PREFIX_LENGTH})"),
    "streaming": Bool(default=False, help="stream the output"),
    "network": Mapping({"rtt_ms": Number(ge=0, default=0.0, unit="ms", help="round-trip time"),
                        "bandwidth_mbps": Number(ge=0, default=0.0, unit="Mbit/s",
                                                 help="bandwidth (0: unlimited)")},
                       then=lambda v, at: NetworkSpec(**v), help="client-side network"),
    "lifecycle": Mapping({"windows": ListOf(
        Mapping({"start_us": Int(ge=0, required=True, unit="µs", help="window start"),
                 "end_us": Int(required=True, unit="µs", help="window end (exclusive)")},
                then=_window),
        min_items=1, required=True, what="a non-empty list of windows",
        help="activity windows: arrivals outside every window are dropped")},
        then=lambda v, at: LifecycleSpec(tuple(v["windows"])), help="when the client is active"),
    "multimodal": Mapping({f"{n}_distribution": _dist(0, f"{n.replace('_', ' ')} distribution")
                           for n in _MODALITIES}, then=_multimodal,
                          help="input = text + sum over modalities of count x item tokens"),
    "reasoning": Mapping({
        "reason_ratio_distribution": _dist(0, "reasoning share of the output, in percent"),
        "multi_turn": Mapping({
            "max_rounds": Int(ge=1, required=True, help="requests per session"),
            "think_time_us": Int(ge=0, default=0, unit="µs", help="pause between rounds"),
            "context_growth": Choice(CONTEXT_GROWTH, default="",
                                     help="accumulate: each round's prompt includes the earlier "
                                          "rounds")},
            then=lambda v, at: MultiTurnSpec(**v), help="multi-turn sessions")},
        then=lambda v, at: ReasoningSpec(v.get("reason_ratio_distribution"), v.get("multi_turn")),
        help="reasoning clients"),
    "slo_targets": Mapping({k: Number(gt=0, unit="ms", help=f"{k[:-3].upper()} target")
                            for k in ("ttft_ms", "tpot_ms", "e2e_ms")},
                           then=lambda v, at: SLOTargets(**v), help="latency targets"),
}, then=_client, help="one traffic source")


def _version(v, at) -> str:
    """``version``: "1" or "2" (an integer as its text), or empty (version 1)."""
    if isinstance(v, bool) or not isinstance(v, (str, int)) or str(v) not in SPEC_VERSIONS:
        got = repr(v) if isinstance(v, float) else show(v)
        at.fail(f'must be "1" or "2" (or empty), got {got}')
    return str(v)


def _check_slo_classes(version: str, clients, at) -> None:
    """A version-2 spec may not use the version-1 class names (realtime, interactive)."""
    if version != "2":
        return
    for i, c in enumerate(clients):
        if c.slo_class in V1_SLO_CLASSES:
            who = f"(client {show(c.id)}) " if c.id else ""
            (at / "clients" / i / "slo_class").fail(
                f"{who}must be one of {', '.join(n for n in SLO_CLASSES_V2 if n)}"
                f" (or empty) in a version \"2\" spec, got {show(c.slo_class)}: realtime and "
                f"interactive are version-1 names (use critical / standard, or version: \"1\")")


def _spec(v, at) -> WorkloadSpec:
    """Builds the spec; a spec without clients takes them from its ServeGen data."""
    kw = dict(v)
    _check_slo_classes(kw["version"], kw.get("clients") or (), at)
    if not kw.get("clients"):
        sg = kw.get("servegen_data")
        if sg is None:
            (at / "clients").fail("must list at least one client (or give servegen_data)")
        kw["clients"] = load_servegen_clients(sg, base_dir=at.context or ".",
                                              src=at.source or "<spec>")
    kw["clients"] = tuple(kw["clients"])
    return WorkloadSpec(**kw)


SPEC = Mapping({
    "version": Custom(_version, default="", what='"1" or "2"',
                      json_schema={"type": ["string", "integer"], "enum": ["", "1", "2", 1, 2]},
                      help='schema version: "1" (or empty) or "2"; version 2 takes only the '
                           'version-2 SLO class names'),
    "seed": Int(default=0, help="workload seed (--seed overrides it)"),
    "category": Choice(CATEGORIES, default="", help="workload category"),
    "aggregate_rate": Number(gt=0, required=True, unit="requests/s",
                             help="total request rate of all clients"),
    "horizon": Int(ge=0, default=0, unit="µs", help="simulated time (0: until num_requests)"),
    "num_requests": Int(ge=0, default=0, help="requests to generate (0: until the horizon)"),
    "clients": ListOf(_CLIENT, what="a list of clients", help="traffic sources"),
    "servegen_data": Mapping({
        "path": Str(allow_int=True, required=True,
                    help="ServeGen native data directory (relative: to the working directory, "
                         "then to the spec's directory)"),
        "span_start": Int(ge=0, default=0, unit="s", help="first time read (0: open)"),
        "span_end": Int(ge=0, default=0, unit="s", help="time read up to (0: open)")},
        then=lambda v, at: ServeGenDataSpec(**v),
        help="clients from ServeGen data, when clients is empty"),
    "load_profile": LOAD_PROFILE,
}, then=_spec, help="a workload spec (--workload-spec)")
"""The workload-spec schema: :func:`parse_workload_spec` parses with it, ``blis schema
workload-spec`` prints it as JSON Schema."""


def parse_workload_spec(doc, *, src: str = "<spec>", base_dir: str = ".") -> WorkloadSpec:
    """Validate an already-loaded YAML document (dict) and build a :class:`WorkloadSpec`.

    Useful for specs built in code (scenario presets, trace headers).  ``src`` prefixes error
    messages; ``base_dir`` resolves a relative ``servegen_data.path``.
    """
    return SPEC.parse(doc, At(src, context=base_dir))


def scenario_spec(name: str, *, seed: int = DEFAULT_SEED, rate: float = DEFAULT_RATE,
                  num_requests: int = DEFAULT_NUM_REQUESTS) -> WorkloadSpec:
    """The validated :class:`WorkloadSpec` of scenario preset ``name``
    (:mod:`simulator.workload.scenarios`).

    Built from :func:`~simulator.workload.scenarios.scenario_document` through the same strict
    parser as a YAML file, so a preset equals the spec of the equivalent YAML.  Raises
    InputError for an unknown name (the message lists the valid names) or an invalid ``rate`` /
    ``num_requests``.
    """
    return parse_workload_spec(scenario_document(name, seed=seed, rate=rate,
                                                 num_requests=num_requests),
                               src=f"preset:{name}")


def load_workload_spec(path) -> WorkloadSpec:
    """Read, strictly parse and validate a workload-spec YAML file (or a scenario preset).

    ``"preset:NAME"`` returns the built-in scenario ``NAME`` (``bursty``, ``unfair-tenants``,
    ``prefix-heavy``, ``mixed-slo``; see :mod:`simulator.workload.scenarios`) with its default
    seed, rate and request count; an unknown name raises InputError listing the valid ones.

    Raises :class:`~simulator.errors.InputError` (one line, naming the file and the key path) for
    an unreadable file, invalid YAML, unknown or duplicate keys, wrong types and out-of-range
    values, and for unusable ServeGen data.  Returns a frozen :class:`WorkloadSpec`.
    """
    p = os.fspath(path)
    if p.startswith(PRESET_PREFIX):
        return scenario_spec(p[len(PRESET_PREFIX):])
    doc = read_yaml(p, "workload spec")
    return parse_workload_spec(doc, src=p, base_dir=os.path.dirname(os.path.abspath(p)))

# ----------------------------------------------------------------------------------------------
# ServeGen native data
# ----------------------------------------------------------------------------------------------

def _parse_pdf_dict(s: str) -> dict[int, float]:
    """Parse a Python-dict string ``"{100: 0.5, 200: 0.3}"`` into ``{int: float}``."""
    s = s.strip()
    if not (s.startswith("{") and s.endswith("}")):
        raise ValueError(f"expected a '{{...}}' dict string, got {s[:40]!r}")
    body = s[1:-1].strip()
    if not body:
        raise ValueError("empty PDF dictionary")
    out: dict[int, float] = {}
    for pair in body.split(","):
        pair = pair.strip()
        if not pair:
            continue
        k, sep, v = pair.partition(":")
        if not sep:
            raise ValueError(f"invalid key:value pair {pair!r}")
        key = int(float(k.strip()))
        out[key] = float(v.strip())
    if not out:
        raise ValueError("no entries in PDF dictionary")
    return out


def _resolve_dir(path: str, base_dir: str) -> str:
    if os.path.isabs(path) or os.path.isdir(path):
        return path
    alt = os.path.join(base_dir, path)
    return alt if os.path.isdir(alt) else path


def load_servegen_clients(sg: ServeGenDataSpec, *, base_dir: str = ".",
                          src: str = "<spec>") -> tuple[ClientSpec, ...]:
    """Turn a ServeGen native data directory into clients, as the reference does.

    For each ``chunk-<id>-trace.csv`` (rows ``start_s, rate, cv, pattern``; sorted by file name)
    the highest-rate row whose start lies in ``[span_start, span_end)`` (0 = open bound) gives the
    arrival process (``Gamma``/``Weibull`` with that cv, otherwise Poisson) and the rate fraction;
    chunks with no positive rate are skipped.  ``chunk-<id>-dataset.json`` maps window start times
    to ``input_tokens``/``output_tokens`` PDFs written as Python dicts; the first window (keys
    sorted as strings) inside the span with both PDFs becomes two empirical distributions.  A
    relative path is looked up from the working directory, then from the spec's directory.
    """
    where = "servegen_data.path"
    d = _resolve_dir(sg.path, base_dir)
    if not os.path.isdir(d):
        raise InputError(f"{src}: {where} {sg.path!r} is not a directory")
    traces = sorted(glob.glob(os.path.join(glob.escape(d), "chunk-*-trace.csv")))
    if not traces:
        raise InputError(f"{src}: {where} {sg.path!r} has no chunk-*-trace.csv files")
    clients = []
    for tp in traces:
        cid = os.path.basename(tp)[len("chunk-"):-len("-trace.csv")]
        best = None
        try:
            with open(tp, newline="", encoding="utf-8") as f:
                for rec in csv.reader(f):
                    if len(rec) < 4:
                        continue
                    try:
                        start, rate, cv = (float(x.strip()) for x in rec[:3])
                    except ValueError:
                        continue
                    if sg.span_start > 0 and start < sg.span_start:
                        continue
                    if sg.span_end > 0 and start >= sg.span_end:
                        continue
                    if rate > (best[1] if best else 0.0):
                        best = (start, rate, cv, rec[3].strip())
        except OSError as e:
            raise InputError(f"{src}: cannot read ServeGen trace {tp!r}: {e.strerror or e}") \
                from None
        if best is None:
            continue
        dp = os.path.join(d, f"chunk-{cid}-dataset.json")
        try:
            with open(dp, encoding="utf-8") as f:
                dataset = json.load(f)
        except OSError as e:
            raise InputError(f"{src}: cannot read ServeGen dataset {dp!r}: {e.strerror or e}") \
                from None
        except ValueError as e:
            raise InputError(f"{src}: ServeGen dataset {dp!r} is not valid JSON: {e}") from None
        if not isinstance(dataset, dict):
            raise InputError(f"{src}: ServeGen dataset {dp!r} must be a JSON object")
        pdf_in = pdf_out = ""
        for k in sorted(dataset):
            try:
                t = float(k)
            except ValueError:
                continue
            if sg.span_start > 0 and t < sg.span_start:
                continue
            if sg.span_end > 0 and t >= sg.span_end:
                continue
            w = dataset[k] if isinstance(dataset[k], dict) else {}
            pdf_in, pdf_out = w.get("input_tokens") or "", w.get("output_tokens") or ""
            if pdf_in and pdf_out:
                break
        if not (pdf_in and pdf_out):
            raise InputError(f"{src}: ServeGen dataset {dp!r} has no window with both "
                             "input_tokens and output_tokens PDFs in the span")
        dists = []
        for name, s in (("input_tokens", pdf_in), ("output_tokens", pdf_out)):
            try:
                pdf = _parse_pdf_dict(str(s))
            except ValueError as e:
                raise InputError(f"{src}: ServeGen dataset {dp!r}: bad {name} PDF: {e}") from None
            pdf = {k: p for k, p in pdf.items() if p > 0 and math.isfinite(p)}
            if not pdf:
                raise InputError(f"{src}: ServeGen dataset {dp!r}: {name} PDF has no positive "
                                 "probability")
            dists.append(DistSpec("empirical", tuple((str(k), p) for k, p in pdf.items())))
        pattern = best[3].lower()
        if pattern in ("gamma", "weibull") and best[2] > 0:
            cv = best[2]
            if pattern == "weibull":
                cv = min(max(cv, WEIBULL_CV_MIN), WEIBULL_CV_MAX)
            arrival = ArrivalSpec(pattern, cv)
        else:
            arrival = ArrivalSpec("poisson")
        clients.append(ClientSpec(id=f"servegen-chunk-{cid}", tenant_id=f"chunk-{cid}",
                                  rate_fraction=best[1], arrival=arrival,
                                  input_distribution=dists[0], output_distribution=dists[1]))
    if not clients:
        raise InputError(f"{src}: {where} {sg.path!r} has no chunk with a positive rate in the "
                         "span")
    return tuple(clients)
