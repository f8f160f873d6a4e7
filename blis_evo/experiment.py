"""Experiment definitions for the policy search: frozen dataclasses and a strict YAML loader.

An experiment names the cluster (model, hardware, TP, instances, KV blocks, batch limits), the
workload (a workload spec -- a file or inline --, a scenario preset, or a trace), the train and
held-out seeds, the search space (opaque here; the genome module interprets it), the objectives,
the anomaly penalties and the search settings.

Parsing is strict: unknown keys, wrong types and bad values raise
:class:`simulator.errors.InputError` with one line naming the file and the key path, e.g.
``exp.yaml: search.population must be >= 2, got 1``.  Relative paths are resolved against the
experiment file's directory.

:func:`default_experiment` returns the default experiment, whose YAML ships in the package as
``blis_evo/data/default_experiment.yaml``; ``experiments/default.yaml`` is a link to that file.
:func:`experiment_from_arg` reads the experiment a command line names (``default`` or a path).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import math
import os
from typing import Any
from dataclasses import dataclass, field, replace
from pathlib import Path

from simulator.autoscale.config import parse_autoscaler
from simulator.config import LatencyConfig
from simulator.errors import InputError, one_line
from simulator.latency import resolve_latency
from simulator.metrics import VALID_FITNESS_KEYS
from simulator.schema import load_yaml
from simulator.workload.scenarios import SCENARIO_NAMES
from simulator.workload.spec import (WorkloadSpec, load_workload_spec, parse_workload_spec,
                                     scenario_spec)
from simulator.workload.tracev2 import is_trace_v2, trace_v2_paths

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
DEFAULT_EXPERIMENT_PATH = EXPERIMENTS_DIR / "default.yaml"
DEFAULT_EXPERIMENT_FILE = Path(__file__).resolve().parent / "data" / "default_experiment.yaml"
DEFAULT_EXPERIMENT_NAME = "default"
"""What a command line writes for the embedded default experiment (``--experiment default``)."""

SLO_ATTAINMENT = "slo_attainment"
WEIGHT_KEYS: tuple[str, ...] = tuple(VALID_FITNESS_KEYS) + (SLO_ATTAINMENT,)
"""Keys allowed in ``objectives.weights``: the fitness keys of blis_evo.metrics + slo_attainment."""
COST_KEYS = ("replica_seconds", "avg_replicas")
"""Cost objectives (autoscaling; a fixed cluster costs num_instances over the run span)."""
OBJECTIVE_KEYS: tuple[str, ...] = WEIGHT_KEYS + COST_KEYS + ("gpus",)
"""Keys allowed in ``objectives.multi[].key`` (also ``slo_attainment.<class>``); ``gpus`` is
instances x TP of the evaluated deployment (varies with the ``num_instances`` layout gene)."""
DIRECTIONS = ("min", "max")
PENALTY_KEYS = ("priority_inversions", "hol_blocking_events", "rejected_requests",
                "dropped_requests", "slo_violations", "scale_oscillation")
ALGORITHMS = ("ga", "nsga2")
MODES = ("single", "multi")


# ----------------------------------------------------------------------------------------------
# Data model
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterSpec:
    """The simulated cluster.  ``latency`` and ``total_kv_blocks`` are resolved at load time
    (``total_kv_blocks`` from defaults.yaml when the YAML omits it)."""

    model: str
    hardware: str
    tp: int
    vllm_version: str
    num_instances: int
    total_kv_blocks: int
    max_running_reqs: int
    max_scheduled_tokens: int
    long_prefill_token_threshold: int
    block_size: int
    latency: LatencyConfig


@dataclass(frozen=True)
class WorkloadSource:
    """Where requests come from: exactly one of a spec, a preset or a trace.

    ``kind`` is ``"spec"``, ``"preset"`` or ``"trace"``.  For ``spec`` and ``preset`` the parsed
    (and rate-overridden) :class:`WorkloadSpec` is in ``spec``; ``path`` is the absolute spec or
    trace path (``""`` for an inline spec), ``preset`` the preset name.
    """

    kind: str
    num_requests: int
    path: str = ""
    preset: str = ""
    spec: WorkloadSpec | None = None
    horizon_us: int | None = None
    rate: float | None = None


@dataclass(frozen=True)
class Seeds:
    """Workload seeds: ``train`` drive the search, ``heldout`` the final comparison."""

    train: tuple[int, ...]
    heldout: tuple[int, ...]


@dataclass(frozen=True)
class Objective:
    """One objective of a multi-objective search: a metric key and whether to min or max it."""

    key: str
    direction: str


@dataclass(frozen=True)
class Objectives:
    """Objective settings.

    ``weights`` (sorted ``(key, weight)`` pairs) define the scalar fitness in both modes;
    ``multi`` the NSGA-II objectives (mode ``multi``); ``primary`` the key reports judge
    improvement on (default: the highest-weighted key).
    """

    mode: str
    weights: tuple[tuple[str, float], ...]
    multi: tuple[Objective, ...] = ()
    primary: str = ""

    @property
    def weight_map(self) -> dict[str, float]:
        """The weights as a dict."""
        return dict(self.weights)


@dataclass(frozen=True)
class Penalties:
    """Anomaly penalty weights.  The fitness is multiplied by exp(-Σ weight × rate), with the
    rates per request (SLO-class priority inversions, rejected, dropped, SLO-violating
    requests) or per instance (HOL-blocking events); see ``search.evaluate.evaluate``."""

    priority_inversions: float = 0.0
    hol_blocking_events: float = 0.0
    rejected_requests: float = 0.0
    dropped_requests: float = 0.0
    slo_violations: float = 0.0
    # rate: oscillations per scale action (autoscaling); out of the repr so that experiments
    # without it keep their digest (experiment_digest adds it when set)
    scale_oscillation: float = field(default=0.0, repr=False)


@dataclass(frozen=True)
class SearchSettings:
    """Evolutionary-search settings."""

    algorithm: str = "ga"
    population: int = 24
    generations: int = 50
    cxpb: float = 0.6
    mutpb: float = 0.3
    tournament: int = 3
    patience: int = 0
    target: float | None = None
    seed: int = 0
    workers: int = 1


@dataclass(frozen=True)
class Experiment:
    """A whole experiment.  Hashable (``search_space`` is excluded from the hash) so that it can
    key caches of generated workloads."""

    name: str
    cluster: ClusterSpec
    workload: WorkloadSource
    seeds: Seeds
    objectives: Objectives
    penalties: Penalties
    search: SearchSettings
    search_space: dict = field(default_factory=dict, hash=False)
    source: str = field(default="", compare=False)
    autoscaler: Any = field(default=None, repr=False)  # simulator.autoscale AutoscalerConfig


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "nothing"
    return str(v)


class _P:
    def __init__(self, src: str, base_dir: str):
        self.src = src
        self.base_dir = base_dir

    def fail(self, path: str, msg: str):
        raise InputError(f"{self.src}: {path} {msg}" if path else f"{self.src}: {msg}")

    def mapping(self, node, path, allowed, required=()):
        if not isinstance(node, dict):
            self.fail(path or "document", f"must be a mapping, got {_fmt(node)}")
        for k in node:
            if not isinstance(k, str) or k not in allowed:
                self.fail(f"{path}.{k}" if path else str(k),
                          f"is not a known key (valid: {', '.join(allowed)})")
        for k in required:
            if node.get(k) is None:
                self.fail(f"{path}.{k}" if path else k, "is required")
        return node

    def string(self, v, path, nonempty=True) -> str:
        if not isinstance(v, str):
            self.fail(path, f"must be a string, got {_fmt(v)}")
        if nonempty and not v.strip():
            self.fail(path, "must not be empty")
        return v

    def integer(self, v, path, lo=None, hi=None) -> int:
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(path, f"must be an integer, got {_fmt(v)}")
        if not -2**63 <= v < 2**63:
            self.fail(path, f"must fit in a 64-bit integer, got {v}")
        if lo is not None and v < lo:
            self.fail(path, f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            self.fail(path, f"must be <= {hi}, got {v}")
        return v

    def number(self, v, path, lo=None, hi=None, lo_open=False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(path, f"must be a number, got {_fmt(v)}")
        f = float(v)
        if not math.isfinite(f):
            self.fail(path, f"must be a finite number, got {v}")
        if lo is not None and (f <= lo if lo_open else f < lo):
            self.fail(path, f"must be {'>' if lo_open else '>='} {lo:g}, got {v}")
        if hi is not None and f > hi:
            self.fail(path, f"must be <= {hi:g}, got {v}")
        return f

    def choice(self, v, path, valid) -> str:
        if not isinstance(v, str) or v not in valid:
            self.fail(path, f"must be one of {', '.join(valid)}, got {_fmt(v)}")
        return v

    def path(self, v, path) -> str:
        s = self.string(v, path)
        return s if os.path.isabs(s) else os.path.normpath(os.path.join(self.base_dir, s))

    # -- sections -----------------------------------------------------------------------------
    def cluster(self, node) -> ClusterSpec:
        keys = ("model", "hardware", "tp", "vllm_version", "num_instances", "total_kv_blocks",
                "max_running_reqs", "max_scheduled_tokens", "long_prefill_token_threshold",
                "block_size")
        self.mapping(node, "cluster", keys, ("model", "hardware", "tp", "num_instances"))
        g = node.get
        model = self.string(g("model"), "cluster.model")
        hardware = self.string(g("hardware"), "cluster.hardware")
        tp = self.integer(g("tp"), "cluster.tp", 1)
        vllm = self.string(g("vllm_version"), "cluster.vllm_version") \
            if g("vllm_version") is not None else ""
        n_inst = self.integer(g("num_instances"), "cluster.num_instances", 1, 4096)
        kv = g("total_kv_blocks")
        kv = self.integer(kv, "cluster.total_kv_blocks", 1) if kv is not None else None
        mrr = self.integer(g("max_running_reqs") if g("max_running_reqs") is not None else 256,
                           "cluster.max_running_reqs", 1)
        mst = self.integer(g("max_scheduled_tokens") if g("max_scheduled_tokens") is not None
                           else 2048, "cluster.max_scheduled_tokens", 1)
        lpt = self.integer(g("long_prefill_token_threshold") or 0,
                           "cluster.long_prefill_token_threshold", 0)
        bs = self.integer(g("block_size") if g("block_size") is not None else 16,
                          "cluster.block_size", 1)
        try:
            res = resolve_latency(model=model, hardware=hardware, tp=tp, vllm_version=vllm,
                                  total_kv_blocks_explicit=kv is not None)
        except InputError as e:
            self.fail("cluster", f"has no usable latency model: {e}")
        if kv is None:
            kv = int(res.total_kv_blocks)
        return ClusterSpec(model=res.model, hardware=res.hardware, tp=res.tp,
                           vllm_version=res.vllm_version, num_instances=n_inst,
                           total_kv_blocks=kv, max_running_reqs=mrr, max_scheduled_tokens=mst,
                           long_prefill_token_threshold=lpt, block_size=bs, latency=res.config)

    def workload(self, node) -> WorkloadSource:
        keys = ("spec", "preset", "trace", "num_requests", "horizon_us", "rate")
        self.mapping(node, "workload", keys, ("num_requests",))
        g = node.get
        given = [k for k in ("spec", "preset", "trace") if g(k) is not None]
        if len(given) != 1:
            self.fail("workload", "must give exactly one of spec, preset, trace"
                      + (f" (got {', '.join(given)})" if given else ""))
        num = self.integer(g("num_requests"), "workload.num_requests", 1)
        horizon = g("horizon_us")
        horizon = self.integer(horizon, "workload.horizon_us", 1) if horizon is not None else None
        rate = g("rate")
        rate = self.number(rate, "workload.rate", 0.0, lo_open=True) if rate is not None else None
        kind = given[0]
        path = preset = ""
        spec = None
        if kind == "spec":
            s = g("spec")
            if isinstance(s, dict):
                spec = parse_workload_spec(s, src=f"{self.src}: workload.spec", base_dir=self.base_dir)
            elif isinstance(s, str):
                path = self.path(s, "workload.spec")
                if not os.path.isfile(path):
                    self.fail("workload.spec", f"file {s!r} does not exist")
                spec = load_workload_spec(path)
            else:
                self.fail("workload.spec", f"must be a path or an inline spec mapping, got {_fmt(s)}")
        elif kind == "preset":
            preset = self.choice(g("preset"), "workload.preset", SCENARIO_NAMES)
            spec = scenario_spec(preset)
        else:
            path = self.path(g("trace"), "workload.trace")
            if not os.path.exists(path):
                self.fail("workload.trace", f"{g('trace')!r} does not exist")
            if rate is not None:
                self.fail("workload.rate", "does not apply to a trace")
        if spec is not None and rate is not None:
            spec = replace(spec, aggregate_rate=rate)
        return WorkloadSource(kind=kind, num_requests=num, path=path, preset=preset, spec=spec,
                              horizon_us=horizon, rate=rate)

    def seed_list(self, v, path) -> tuple[int, ...]:
        if not isinstance(v, list) or not v:
            self.fail(path, f"must be a non-empty list of integers, got {_fmt(v)}")
        out = tuple(self.integer(x, f"{path}[{i}]", 0) for i, x in enumerate(v))
        if len(set(out)) != len(out):
            self.fail(path, "must not repeat a seed")
        return out

    def seeds(self, node) -> Seeds:
        self.mapping(node, "seeds", ("train", "heldout"), ("train", "heldout"))
        train = self.seed_list(node["train"], "seeds.train")
        held = self.seed_list(node["heldout"], "seeds.heldout")
        both = sorted(set(train) & set(held))
        if both:
            self.fail("seeds.heldout", f"must not share seeds with seeds.train (shared: {both})")
        return Seeds(train, held)

    def objectives(self, node) -> Objectives:
        self.mapping(node, "objectives", ("mode", "weights", "multi", "primary"), ("mode", "weights"))
        mode = self.choice(node["mode"], "objectives.mode", MODES)
        w = node["weights"]
        if not isinstance(w, dict) or not w:
            self.fail("objectives.weights", f"must be a non-empty mapping of metric: weight, got {_fmt(w)}")
        weights = []
        for k, v in w.items():
            if k not in WEIGHT_KEYS:
                self.fail(f"objectives.weights.{k}", f"is not a known metric (valid: {', '.join(WEIGHT_KEYS)})")
            weights.append((k, self.number(v, f"objectives.weights.{k}", 0.0)))
        if not any(v > 0 for _, v in weights):
            self.fail("objectives.weights", "must have at least one positive weight")
        weights.sort()
        multi: list[Objective] = []
        m = node.get("multi")
        if m is not None:
            if not isinstance(m, list) or not m:
                self.fail("objectives.multi", f"must be a non-empty list of {{key, direction}}, got {_fmt(m)}")
            for i, o in enumerate(m):
                p = f"objectives.multi[{i}]"
                self.mapping(o, p, ("key", "direction"), ("key", "direction"))
                key = self.string(o["key"], f"{p}.key")
                base = key.split(".", 1)[0] if key.startswith(SLO_ATTAINMENT + ".") else key
                if base not in OBJECTIVE_KEYS:
                    self.fail(f"{p}.key", f"must be one of {', '.join(OBJECTIVE_KEYS)} "
                                          f"(or slo_attainment.<class>), got {key!r}")
                if any(x.key == key for x in multi):
                    self.fail(f"{p}.key", f"repeats objective {key!r}")
                multi.append(Objective(key, self.choice(o["direction"], f"{p}.direction", DIRECTIONS)))
        if mode == "multi" and len(multi) < 2:
            self.fail("objectives.multi", "must list at least 2 objectives when mode is multi")
        if mode == "single" and multi:
            self.fail("objectives.multi", "is only allowed when mode is multi")
        primary = node.get("primary")
        if primary is not None:
            primary = self.choice(primary, "objectives.primary", WEIGHT_KEYS)
        else:
            primary = max(weights, key=lambda kv: (kv[1], -WEIGHT_KEYS.index(kv[0])))[0]
        return Objectives(mode, tuple(weights), tuple(multi), primary)

    def penalties(self, node) -> Penalties:
        self.mapping(node, "penalties", PENALTY_KEYS)
        return Penalties(**{k: self.number(node.get(k, 0.0) if node.get(k) is not None else 0.0,
                                           f"penalties.{k}", 0.0) for k in PENALTY_KEYS})

    def search(self, node) -> SearchSettings:
        keys = ("algorithm", "population", "generations", "cxpb", "mutpb", "tournament",
                "patience", "target", "seed", "workers")
        self.mapping(node, "search", keys)
        d = SearchSettings()
        g = lambda k: node.get(k) if node.get(k) is not None else getattr(d, k)  # noqa: E731
        cxpb = self.number(g("cxpb"), "search.cxpb", 0.0, 1.0)
        mutpb = self.number(g("mutpb"), "search.mutpb", 0.0, 1.0)
        if cxpb + mutpb > 1.0 + 1e-12:
            self.fail("search.mutpb", f"plus search.cxpb must be <= 1, got {cxpb} + {mutpb}")
        pop = self.integer(g("population"), "search.population", 2)
        tour = self.integer(g("tournament"), "search.tournament", 1)
        if tour > pop:
            self.fail("search.tournament", f"must be <= search.population ({pop}), got {tour}")
        target = node.get("target")
        return SearchSettings(
            algorithm=self.choice(g("algorithm"), "search.algorithm", ALGORITHMS),
            population=pop,
            generations=self.integer(g("generations"), "search.generations", 0),
            cxpb=cxpb, mutpb=mutpb, tournament=tour,
            patience=self.integer(g("patience"), "search.patience", 0),
            target=self.number(target, "search.target") if target is not None else None,
            seed=self.integer(g("seed"), "search.seed", 0),
            workers=self.integer(g("workers"), "search.workers", 1, 1024),
        )

    def experiment(self, doc) -> Experiment:
        keys = ("name", "cluster", "workload", "seeds", "search_space", "objectives",
                "penalties", "search", "autoscaler")
        self.mapping(doc, "", keys, ("name", "cluster", "workload", "seeds", "objectives"))
        ss = doc.get("search_space")
        if ss is None:
            ss = {}
        if not isinstance(ss, dict):
            self.fail("search_space", f"must be a mapping, got {_fmt(ss)}")
        objectives = self.objectives(doc["objectives"])
        search = self.search(doc.get("search") if doc.get("search") is not None else {})
        if search.algorithm == "nsga2" and objectives.mode != "multi":
            self.fail("search.algorithm", "nsga2 needs objectives.mode: multi")
        return Experiment(
            name=self.string(doc["name"], "name"),
            cluster=self.cluster(doc["cluster"]),
            workload=self.workload(doc["workload"]),
            seeds=self.seeds(doc["seeds"]),
            objectives=objectives,
            penalties=self.penalties(doc.get("penalties") if doc.get("penalties") is not None else {}),
            search=search,
            search_space=copy.deepcopy(ss),
            source=self.src,
            autoscaler=(parse_autoscaler(doc["autoscaler"], f"{self.src}: autoscaler")
                        if doc.get("autoscaler") is not None else None),
        )


def parse_experiment(text: str, *, src: str = "<experiment>", base_dir: str = ".") -> Experiment:
    """Parse and validate experiment YAML text.

    ``src`` prefixes error messages; ``base_dir`` resolves relative paths.  Raises
    :class:`InputError` (one line naming the key path) on any problem.
    """
    return _P(src, base_dir).experiment(load_yaml(text, src, "experiment"))


def load_experiment(path) -> Experiment:
    """Read and strictly validate an experiment YAML file (relative paths resolve against its
    directory).  Raises :class:`InputError` with one line naming the file and the key path."""
    p = os.fspath(path)
    try:
        text = Path(p).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read experiment {p!r}: {e.strerror or e}") from None
    return parse_experiment(text, src=p, base_dir=os.path.dirname(os.path.abspath(p)))


# ----------------------------------------------------------------------------------------------
# Identity
# ----------------------------------------------------------------------------------------------


def experiment_digest(exp) -> str:
    """``sha256:<hex>`` of the experiment as loaded: equal digests mean the same simulations
    and scores (a batch reruns an edited experiment; a resumed search refuses one).

    Hashes ``repr`` of the frozen :class:`blis_evo.experiment.Experiment` (deterministic: plain
    dataclasses, tuples, dicts in file order, floats) with what does not change results
    neutralised: the file it came from, where a workload spec file lives (its parsed content
    is hashed), and ``search.seed`` / ``search.generations`` / ``search.workers`` (callers pass
    seed and generations explicitly and record them separately; results do not depend on
    workers).  A trace is hashed by the content of its files, not its path.
    """
    search = dataclasses.replace(exp.search, seed=0, generations=0, workers=1)
    neutral = dataclasses.replace(exp, source="", search=search,
                                  workload=_workload_identity(exp.workload))
    text = repr(neutral)
    if exp.autoscaler is not None:  # (not in the repr, so experiments without one keep their digest)
        text += repr(exp.autoscaler) + repr(exp.penalties.scale_oscillation)
    spec = exp.workload.spec
    if spec is not None and spec.load_profile is not None:
        text += repr(spec.load_profile)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _workload_identity(workload):
    """The workload with its file path replaced by a content digest (trace) or cleared (spec)."""
    if workload.kind != "trace":
        return dataclasses.replace(workload, path="")
    h = hashlib.sha256()
    try:
        for name in _trace_files(workload.path):
            h.update(os.path.basename(name).encode() + b"\0")
            with open(name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    except OSError as e:
        raise InputError(f"cannot read trace {workload.path!r}: {e.strerror or e}") from None
    return dataclasses.replace(workload, path="sha256:" + h.hexdigest())


def _trace_files(path: str) -> list[str]:
    """The files a trace consists of: header, data and token sidecar (trace v2) or the CSV."""
    if is_trace_v2(path):
        t = trace_v2_paths(path)
        return [f for f in (t.header, t.data, t.tokens) if f is not None and os.path.isfile(f)]
    return [path]


def default_experiment() -> Experiment:
    """The default experiment shipped with the package (``experiments/default.yaml``)."""
    return parse_experiment(default_experiment_text(), src="<default experiment>",
                            base_dir=str(EXPERIMENTS_DIR))


@functools.lru_cache(maxsize=1)
def default_experiment_text() -> str:
    """The default experiment's YAML text, shipped in the package (``blis_evo/data``); the
    documented ``experiments/default.yaml`` is a link to the same file."""
    return DEFAULT_EXPERIMENT_FILE.read_text(encoding="utf-8")


def experiment_from_arg(text: str | None, flag: str = "--experiment") -> Experiment:
    """The experiment named on a command line: ``None``/``""``/``"default"`` is the embedded
    default experiment (same text as ``experiments/default.yaml``), anything else a YAML path.

    Raises InputError (one line, prefixed with ``flag``) when the file is missing or invalid.
    """
    if text is None or text == "" or text == DEFAULT_EXPERIMENT_NAME:
        return default_experiment()
    try:
        return load_experiment(text)
    except InputError as exc:
        raise InputError(f"{flag}: {one_line(exc)}") from None

