"""Workload-spec YAML (``--workload-spec``): the data model and a strict loader.

A workload spec describes multi-tenant traffic as a list of *clients*, each with its own share of
the aggregate request rate, arrival process, prompt/output length distributions, optional shared
prefix group, activity windows, multimodal or multi-turn reasoning behaviour.  The schema is the
reference simulator's (``version``, ``seed``, ``category``, ``aggregate_rate``, ``horizon``,
``num_requests``, ``clients``, ``servegen_data``).

Parsing is strict: unknown keys, duplicate keys, wrong types and out-of-range values raise
:class:`~simulator.errors.InputError` with one line naming the file and the key path, e.g.
``spec.yaml: clients[2].arrival.cv must be in [0.01, 10.4], got 20``.  The reference rejects
unknown keys and a few bad values; the extra range checks here (distribution parameters, windows,
multi-turn settings) reject inputs on which the reference silently produces degenerate traffic.

When ``clients`` is empty and ``servegen_data`` is given, the ServeGen native data directory is
read at load time and turned into one client per ``chunk-<id>-trace.csv`` (see
:func:`load_servegen_clients`), so a loaded spec is always self-contained.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import yaml

from simulator.errors import InputError

from .load_profile import LoadProfile, parse_load_profile
from .scenarios import DEFAULT_NUM_REQUESTS, DEFAULT_RATE, DEFAULT_SEED, scenario_document

ARRIVAL_PROCESSES = ("poisson", "gamma", "weibull")
DIST_TYPES = ("gaussian", "exponential", "pareto_lognormal", "empirical")
CATEGORIES = ("", "language", "multimodal", "reasoning")
SLO_CLASSES = ("", "realtime", "interactive", "batch")
CONTEXT_GROWTH = ("", "none", "accumulate")

WEIBULL_CV_MIN = 0.01
WEIBULL_CV_MAX = 10.4
PRESET_PREFIX = "preset:"
"""``load_workload_spec("preset:NAME")`` loads a built-in scenario instead of a file."""
DEFAULT_PREFIX_LENGTH = 50
"""Prefix length of a group whose first member gives no (or a zero) ``prefix_length``."""

# Named parameters each distribution type needs (empirical takes integer keys instead).
_DIST_PARAMS = {
    "gaussian": ("mean", "std_dev", "min", "max"),
    "exponential": ("mean",),
    "pareto_lognormal": ("alpha", "xm", "mu", "sigma", "mix_weight"),
}


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
# YAML reading
# ----------------------------------------------------------------------------------------------

def load_strict_yaml(text: str, src: str, what: str, invalid: str = "not valid YAML"):
    """Parse one YAML document with the strict loader (duplicate keys rejected); InputError
    ``"<src>: <invalid>: <reason>"`` on a syntax error and ``"<src>: the <what> is empty"`` on
    an empty document.  Shared by the workload-spec, experiment and batch-jobs readers."""
    try:
        doc = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise InputError(f"{src}: {invalid}: {' '.join(str(e).split())}") from None
    if doc is None:
        raise InputError(f"{src}: the {what} is empty")
    return doc


def _yaml_loader():
    """A SafeLoader subclass that rejects duplicate mapping keys (as the reference's YAML does)."""
    class _StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "found an unhashable mapping key", key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} is defined twice", key_node.start_mark)
            seen[key] = True
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return _StrictLoader


def _fmt(v) -> str:
    """How a bad value is shown in an error message."""
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "nothing"
    return str(v)


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


class _Parser:
    """Walks the YAML tree with the file name for error messages."""

    def __init__(self, src: str):
        self.src = src

    def fail(self, path: str, msg: str):
        raise InputError(f"{self.src}: {path} {msg}" if path else f"{self.src}: {msg}")

    # -- primitives --------------------------------------------------------------------------
    def mapping(self, node, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()):
        if not isinstance(node, dict):
            self.fail(path or "document", f"must be a mapping, got {_fmt(node)}")
        for k in node:
            if not isinstance(k, str) or k not in allowed:
                self.fail(_join(path, k), f"is not a known key (valid: {', '.join(allowed)})")
        for k in required:
            if node.get(k) is None:
                self.fail(_join(path, k), "is required")
        return node

    def string(self, v, path: str) -> str:
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            self.fail(path, f"must be a string, got {_fmt(v)}")
        return str(v)

    def integer(self, v, path: str, lo: int | None = None) -> int:
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(path, f"must be an integer, got {_fmt(v)}")
        if not -2**63 <= v < 2**63:
            self.fail(path, f"must fit in a 64-bit integer, got {v}")
        if lo is not None and v < lo:
            self.fail(path, f"must be >= {lo}, got {v}")
        return v

    def number(self, v, path: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(path, f"must be a number, got {_fmt(v)}")
        f = float(v)
        if not math.isfinite(f):
            self.fail(path, f"must be a finite number, got {v}")
        return f

    def positive(self, v, path: str) -> float:
        f = self.number(v, path)
        if f <= 0:
            self.fail(path, f"must be > 0, got {_fmt(v)}")
        return f

    def nonneg(self, v, path: str) -> float:
        f = self.number(v, path)
        if f < 0:
            self.fail(path, f"must be >= 0, got {_fmt(v)}")
        return f

    def boolean(self, v, path: str) -> bool:
        if not isinstance(v, bool):
            self.fail(path, f"must be true or false, got {_fmt(v)}")
        return v

    def choice(self, v, path: str, valid: tuple[str, ...]) -> str:
        s = self.string(v, path)
        if s not in valid:
            shown = ", ".join(x for x in valid if x)
            self.fail(path, f"must be one of {shown}, got {s!r}")
        return s

    # -- compound ----------------------------------------------------------------------------
    def dist(self, node, path: str, min_value: int) -> DistSpec:
        """A distribution; ``min_value`` is the smallest value it may produce (1 for lengths)."""
        self.mapping(node, path, ("type", "params", "file"), ("type",))
        typ = self.choice(node["type"], _join(path, "type"), DIST_TYPES)
        if node.get("file") is not None:
            self.fail(_join(path, "file"), "is not supported (as in the reference); give the "
                                           "empirical PDF inline in params")
        params = node.get("params")
        ppath = _join(path, "params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self.fail(ppath, f"must be a mapping, got {_fmt(params)}")
        if typ == "empirical":
            return self._empirical(params, ppath, typ, min_value)
        names = _DIST_PARAMS[typ]
        self.mapping(params, ppath, names, names)
        p = {k: self.number(params[k], _join(ppath, k)) for k in names}
        if typ == "gaussian":
            for k in ("min", "max"):
                if p[k] != int(p[k]):
                    self.fail(_join(ppath, k), f"must be an integer, got {_fmt(params[k])}")
                if p[k] < 0:
                    self.fail(_join(ppath, k), f"must be >= 0, got {_fmt(params[k])}")
            if p["std_dev"] < 0:
                self.fail(_join(ppath, "std_dev"), f"must be >= 0, got {_fmt(params['std_dev'])}")
            if p["max"] < p["min"]:
                self.fail(_join(ppath, "max"), f"must be >= min ({_fmt(params['min'])}), "
                                              f"got {_fmt(params['max'])}")
            if p["max"] < min_value:
                self.fail(_join(ppath, "max"), f"must be >= {min_value}, got {_fmt(params['max'])}")
        elif typ == "exponential":
            if p["mean"] <= 0:
                self.fail(_join(ppath, "mean"), f"must be > 0, got {_fmt(params['mean'])}")
        else:  # pareto_lognormal
            for k in ("alpha", "xm"):
                if p[k] <= 0:
                    self.fail(_join(ppath, k), f"must be > 0, got {_fmt(params[k])}")
            if p["sigma"] < 0:
                self.fail(_join(ppath, "sigma"), f"must be >= 0, got {_fmt(params['sigma'])}")
            if not 0 <= p["mix_weight"] <= 1:
                self.fail(_join(ppath, "mix_weight"),
                          f"must be in [0, 1], got {_fmt(params['mix_weight'])}")
        return DistSpec(typ, tuple((k, p[k]) for k in names))

    def _empirical(self, params: dict, ppath: str, typ: str, min_value: int) -> DistSpec:
        if not params:
            self.fail(ppath, "must list at least one value: probability pair for an empirical "
                             "distribution")
        out = {}
        for k, v in params.items():
            kp = _join(ppath, k)
            key = k
            if isinstance(key, str):
                try:
                    key = int(key.strip())
                except ValueError:
                    self.fail(kp, "is not an integer value (empirical keys are token counts)")
            if isinstance(key, float) and key == int(key):
                key = int(key)
            if isinstance(key, bool) or not isinstance(key, int):
                self.fail(kp, "is not an integer value (empirical keys are token counts)")
            if key < min_value:
                self.fail(kp, f"must be >= {min_value} (empirical values), got {key}")
            if key in out:
                self.fail(kp, "is given twice")
            out[key] = self.nonneg(v, kp)
        if not any(p > 0 for p in out.values()):
            self.fail(ppath, "must have at least one positive probability")
        return DistSpec(typ, tuple((str(k), p) for k, p in out.items()))

    def arrival(self, node, path: str) -> ArrivalSpec:
        self.mapping(node, path, ("process", "cv"), ("process",))
        proc = self.choice(node["process"], _join(path, "process"), ARRIVAL_PROCESSES)
        cv = node.get("cv")
        if cv is not None:
            cpath = _join(path, "cv")
            cv = self.number(cv, cpath)
            if proc == "weibull" and not WEIBULL_CV_MIN <= cv <= WEIBULL_CV_MAX:
                self.fail(cpath, f"must be in [{WEIBULL_CV_MIN}, {WEIBULL_CV_MAX}], "
                                 f"got {_fmt(node['cv'])}")
            if cv <= 0:
                self.fail(cpath, f"must be > 0, got {_fmt(node['cv'])}")
        return ArrivalSpec(proc, cv)

    def client(self, node, path: str) -> ClientSpec:
        keys = ("id", "tenant_id", "slo_class", "rate_fraction", "arrival", "input_distribution",
                "output_distribution", "prefix_group", "prefix_length", "streaming", "network",
                "lifecycle", "multimodal", "reasoning", "slo_targets")
        self.mapping(node, path, keys, ("rate_fraction", "arrival", "output_distribution"))
        g = node.get
        kw = {}
        for k in ("id", "tenant_id", "prefix_group"):
            if g(k) is not None:
                kw[k] = self.string(g(k), _join(path, k))
        if g("slo_class") is not None:
            kw["slo_class"] = self.choice(g("slo_class"), _join(path, "slo_class"), SLO_CLASSES)
        kw["rate_fraction"] = self.positive(g("rate_fraction"), _join(path, "rate_fraction"))
        kw["arrival"] = self.arrival(g("arrival"), _join(path, "arrival"))
        if g("multimodal") is not None:
            kw["multimodal"] = self.multimodal(g("multimodal"), _join(path, "multimodal"))
        if g("input_distribution") is not None:
            kw["input_distribution"] = self.dist(g("input_distribution"),
                                                 _join(path, "input_distribution"), 1)
        elif "multimodal" not in kw:
            self.fail(_join(path, "input_distribution"), "is required")
        kw["output_distribution"] = self.dist(g("output_distribution"),
                                              _join(path, "output_distribution"), 1)
        if g("prefix_length") is not None:
            kw["prefix_length"] = self.integer(g("prefix_length"), _join(path, "prefix_length"), 0)
        if g("streaming") is not None:
            kw["streaming"] = self.boolean(g("streaming"), _join(path, "streaming"))
        if g("network") is not None:
            npath = _join(path, "network")
            n = self.mapping(g("network"), npath, ("rtt_ms", "bandwidth_mbps"))
            kw["network"] = NetworkSpec(
                self.nonneg(n.get("rtt_ms", 0), _join(npath, "rtt_ms")),
                self.nonneg(n.get("bandwidth_mbps", 0), _join(npath, "bandwidth_mbps")))
        if g("lifecycle") is not None:
            kw["lifecycle"] = self.lifecycle(g("lifecycle"), _join(path, "lifecycle"))
        if g("reasoning") is not None:
            kw["reasoning"] = self.reasoning(g("reasoning"), _join(path, "reasoning"))
            if kw["reasoning"].multi_turn is not None and "input_distribution" not in kw:
                self.fail(_join(path, "input_distribution"),
                          "is required for multi-turn clients")
        if g("slo_targets") is not None:
            spath = _join(path, "slo_targets")
            s = self.mapping(g("slo_targets"), spath, ("ttft_ms", "tpot_ms", "e2e_ms"))
            kw["slo_targets"] = SLOTargets(**{
                k: (self.positive(s[k], _join(spath, k)) if s.get(k) is not None else None)
                for k in ("ttft_ms", "tpot_ms", "e2e_ms")})
        return ClientSpec(**kw)

    def lifecycle(self, node, path: str) -> LifecycleSpec:
        self.mapping(node, path, ("windows",), ("windows",))
        wpath = _join(path, "windows")
        ws = node["windows"]
        if not isinstance(ws, list) or not ws:
            self.fail(wpath, f"must be a non-empty list of windows, got {_fmt(ws)}")
        out = []
        for i, w in enumerate(ws):
            p = f"{wpath}[{i}]"
            self.mapping(w, p, ("start_us", "end_us"), ("start_us", "end_us"))
            s = self.integer(w["start_us"], _join(p, "start_us"), 0)
            e = self.integer(w["end_us"], _join(p, "end_us"))
            if e <= s:
                self.fail(_join(p, "end_us"), f"must be > start_us ({s}), got {e}")
            out.append(ActiveWindow(s, e))
        return LifecycleSpec(tuple(out))

    def multimodal(self, node, path: str) -> MultimodalSpec:
        names = ("text", "image", "image_count", "audio", "audio_count", "video", "video_count")
        keys = tuple(f"{n}_distribution" for n in names)
        self.mapping(node, path, keys)
        kw = {n: (self.dist(node[k], _join(path, k), 0) if node.get(k) is not None else None)
              for n, k in zip(names, keys)}
        for m in ("image", "audio", "video"):
            if (kw[m] is None) != (kw[f"{m}_count"] is None):
                missing = f"{m}_count_distribution" if kw[m] is not None else f"{m}_distribution"
                self.fail(_join(path, missing), f"is required when the other {m} distribution "
                                                "is given")
        if all(v is None for v in kw.values()):
            self.fail(path, "must give at least one distribution")
        return MultimodalSpec(**kw)

    def reasoning(self, node, path: str) -> ReasoningSpec:
        self.mapping(node, path, ("reason_ratio_distribution", "multi_turn"))
        rr = node.get("reason_ratio_distribution")
        if rr is not None:
            rr = self.dist(rr, _join(path, "reason_ratio_distribution"), 0)
        mt = node.get("multi_turn")
        if mt is not None:
            mpath = _join(path, "multi_turn")
            self.mapping(mt, mpath, ("max_rounds", "think_time_us", "context_growth"),
                         ("max_rounds",))
            mt = MultiTurnSpec(
                self.integer(mt["max_rounds"], _join(mpath, "max_rounds"), 1),
                self.integer(mt.get("think_time_us", 0), _join(mpath, "think_time_us"), 0),
                self.choice(mt.get("context_growth", ""), _join(mpath, "context_growth"),
                            CONTEXT_GROWTH))
        return ReasoningSpec(rr, mt)

    def spec(self, doc, base_dir: str) -> WorkloadSpec:
        keys = ("version", "seed", "category", "aggregate_rate", "horizon", "num_requests",
                "clients", "servegen_data", "load_profile")
        self.mapping(doc, "", keys, ("aggregate_rate",))
        g = doc.get
        kw = {}
        if g("version") is not None:
            kw["version"] = self.string(g("version"), "version")
        if g("seed") is not None:
            kw["seed"] = self.integer(g("seed"), "seed")
        if g("category") is not None:
            kw["category"] = self.choice(g("category"), "category", CATEGORIES)
        kw["aggregate_rate"] = self.positive(g("aggregate_rate"), "aggregate_rate")
        if g("horizon") is not None:
            kw["horizon"] = self.integer(g("horizon"), "horizon", 0)
        if g("num_requests") is not None:
            kw["num_requests"] = self.integer(g("num_requests"), "num_requests", 0)
        sg = None
        if g("servegen_data") is not None:
            self.mapping(g("servegen_data"), "servegen_data", ("path", "span_start", "span_end"),
                         ("path",))
            d = g("servegen_data")
            sg = ServeGenDataSpec(
                self.string(d["path"], "servegen_data.path"),
                self.integer(d.get("span_start", 0), "servegen_data.span_start", 0),
                self.integer(d.get("span_end", 0), "servegen_data.span_end", 0))
            kw["servegen_data"] = sg
        clients = g("clients")
        if clients is None:
            clients = []
        if not isinstance(clients, list):
            self.fail("clients", f"must be a list of clients, got {_fmt(clients)}")
        parsed = tuple(self.client(c, f"clients[{i}]") for i, c in enumerate(clients))
        if not parsed:
            if sg is None:
                self.fail("clients", "must list at least one client (or give servegen_data)")
            parsed = load_servegen_clients(sg, base_dir=base_dir, src=self.src)
        kw["clients"] = parsed
        if g("load_profile") is not None:
            kw["load_profile"] = parse_load_profile(self, g("load_profile"))
        return WorkloadSpec(**kw)


def parse_workload_spec(doc, *, src: str = "<spec>", base_dir: str = ".") -> WorkloadSpec:
    """Validate an already-loaded YAML document (dict) and build a :class:`WorkloadSpec`.

    Useful for specs built in code (scenario presets, trace headers).  ``src`` prefixes error
    messages; ``base_dir`` resolves a relative ``servegen_data.path``.
    """
    return _Parser(src).spec(doc, base_dir)


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
    try:
        with open(p, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"cannot read workload spec {p!r}: {e.strerror or e}") from None
    doc = load_strict_yaml(text, p, "workload spec", invalid="not a valid workload spec YAML")
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
