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
import os
from typing import Any
from dataclasses import dataclass, field, replace
from pathlib import Path

from simulator.autoscale.config import AUTOSCALER
from simulator.config import LatencyConfig
from simulator.errors import InputError, one_line
from simulator.latency import MOE_COMM_BACKENDS, TRAINED_PHYSICS, resolve_latency
from simulator.metrics import VALID_FITNESS_KEYS
from simulator.schema import (MISSING, At, Bool, Choice, Custom, Either, Int, ListOf, Mapping, Number, Str,
                              Wording, load_yaml, range_text, show)
from simulator.workload.scenarios import SCENARIO_NAMES
from simulator.workload.spec import SPEC, WorkloadSpec, load_workload_spec, scenario_spec
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
    # "auto" (the blackbox row of defaults.yaml) or "trained-physics"; kept out of the repr (and
    # so of the experiment digest, which ``latency`` already determines).
    latency_model: str = field(default="auto", repr=False)


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
    # requests of sheddable SLO tiers (priority < 0) lost to admission, the gateway queue
    # (refused, shed, expired) or in-flight eviction, per request; ``rejected_requests`` then
    # counts those of the other tiers.  Unset (-1): the rejected_requests weight, so an
    # experiment that does not name it scores exactly as before tiers existed.
    shed_requests: float = field(default=-1.0, repr=False)

    def __post_init__(self):
        if self.shed_requests < 0:
            object.__setattr__(self, "shed_requests", self.rejected_requests)


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

class _Wording(Wording):
    """The standard wording, except that a number out of bounds names the bound it violates
    (``must be >= 1, got 0``)."""

    def out_of_range(self, field, got):
        low = (field.ge is not None and got < field.ge) or (field.gt is not None and got <= field.gt)
        side = range_text(ge=field.ge, gt=field.gt) if low else range_text(le=field.le, lt=field.lt)
        return f"must be {side}, got {show(got)}"


_WORDING = _Wording()


def _resolve(path: str, at: At) -> str:
    """``path`` resolved against the experiment file's directory (``at.context``)."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(at.context, path))


def _cluster(v: dict, at: At) -> ClusterSpec:
    try:
        res = resolve_latency(model=v["model"], hardware=v["hardware"], tp=v["tp"],
                              vllm_version=v["vllm_version"],
                              latency_model=v["latency_model"], dp=v["dp"],
                              enable_expert_parallel=v["enable_expert_parallel"],
                              moe_comm_backend=v["moe_comm_backend"],
                              block_size=v["block_size"],
                              gpu_memory_utilization=v["gpu_memory_utilization"],
                              total_kv_blocks_explicit="total_kv_blocks" in v)
    except InputError as e:
        at.fail(f"has no usable latency model: {e}")
    if "total_kv_blocks" not in v and res.total_kv_blocks is None:
        at.fail(f"total_kv_blocks: required here ({'; '.join(res.warnings)})")
    kv = v["total_kv_blocks"] if "total_kv_blocks" in v else int(res.total_kv_blocks)
    return ClusterSpec(model=res.model, hardware=res.hardware, tp=res.tp,
                       vllm_version=res.vllm_version, num_instances=v["num_instances"],
                       total_kv_blocks=kv, max_running_reqs=v["max_running_reqs"],
                       max_scheduled_tokens=v["max_scheduled_tokens"],
                       long_prefill_token_threshold=v["long_prefill_token_threshold"],
                       block_size=v["block_size"], latency=res.config,
                       latency_model=v["latency_model"])


CLUSTER = Mapping({
    "model": Str(nonempty=True, required=True, help="model name (as in defaults.yaml)"),
    "hardware": Str(nonempty=True, required=True, help="GPU type, e.g. H100"),
    "tp": Int(ge=1, required=True, help="tensor parallelism"),
    "latency_model": Choice(("auto", TRAINED_PHYSICS), default="auto",
                            help="step-time model: auto (the alpha/beta row of defaults.yaml for "
                                 "model/hardware/tp) or trained-physics (any shipped model "
                                 "config, any GPU of the hardware file)"),
    "dp": Int(ge=1, default=1, help="data parallelism of a MoE model (trained-physics)"),
    "enable_expert_parallel": Bool(default=False,
                                   help="expert parallelism of a MoE model (trained-physics)"),
    "moe_comm_backend": Choice(tuple(MOE_COMM_BACKENDS) + ("",), default="",
                               help="MoE all-to-all backend at dp > 1 (trained-physics; "
                                    "'' = allgather_reducescatter)"),
    "gpu_memory_utilization": Number(gt=0, le=1, default=0.9,
                                     help="fraction of GPU memory for weights and KV cache "
                                          "(trained-physics sizes the KV cache from it)"),
    "vllm_version": Str(nonempty=True, default="", help="vLLM version of the latency "
                                                        "coefficients (default: defaults.yaml's)"),
    "num_instances": Int(ge=1, le=4096, required=True, unit="instances",
                         help="serving instances"),
    "total_kv_blocks": Int(ge=1, unit="blocks",
                           help="KV blocks per instance (default: defaults.yaml's row, or for "
                                "trained-physics sized from GPU memory)"),
    "max_running_reqs": Int(ge=1, default=256, unit="requests", help="running-batch limit"),
    "max_scheduled_tokens": Int(ge=1, default=2048, unit="tokens", help="tokens per step"),
    "long_prefill_token_threshold": Int(ge=0, default=0, unit="tokens",
                                        help="chunked-prefill threshold (0: off)"),
    "block_size": Int(ge=1, default=16, unit="tokens", help="tokens per KV block"),
}, then=_cluster, required=True, help="the simulated cluster")


def _spec_file(path: str, at: At) -> tuple[str, WorkloadSpec]:
    full = _resolve(path, at)
    if not os.path.isfile(full):
        at.fail(f"file {path!r} does not exist")
    return full, load_workload_spec(full)


def _trace_file(path: str, at: At) -> str:
    full = _resolve(path, at)
    if not os.path.exists(full):
        at.fail(f"{path!r} does not exist")
    return full


def _workload(v: dict, at: At) -> WorkloadSource:
    kind = next(k for k in ("spec", "preset", "trace") if k in v)
    rate, path, preset, spec = v.get("rate"), "", "", None
    if kind == "spec":
        path, spec = v["spec"]
    elif kind == "preset":
        preset = v["preset"]
        spec = scenario_spec(preset)
    else:
        path = v["trace"]
        if rate is not None:
            (at / "rate").fail("does not apply to a trace")
    if spec is not None and rate is not None:
        spec = replace(spec, aggregate_rate=rate)
    return WorkloadSource(kind=kind, num_requests=v["num_requests"], path=path, preset=preset,
                          spec=spec, horizon_us=v.get("horizon_us"), rate=rate)


WORKLOAD = Mapping({
    "spec": Either(Str(nonempty=True, then=_spec_file), SPEC,
                   then=lambda v, at: v if isinstance(v, tuple) else ("", v),
                   what="a path or an inline spec mapping",
                   help="a workload spec: a file (relative to the experiment file) or inline"),
    "preset": Choice(SCENARIO_NAMES, help="a scenario preset"),
    "trace": Str(nonempty=True, then=_trace_file,
                 help="a trace (relative to the experiment file): a v1 CSV or a trace v2"),
    "num_requests": Int(ge=1, required=True, unit="requests", help="requests per simulation"),
    "horizon_us": Int(ge=1, unit="µs", help="simulation horizon"),
    "rate": Number(gt=0, unit="requests/s",
                   help="overrides the spec's or preset's aggregate_rate (not with a trace)"),
}, exactly_one=("spec", "preset", "trace"), then=_workload, required=True,
   help="where requests come from: exactly one of spec, preset, trace")


def _seeds(v: dict, at: At) -> Seeds:
    train, held = tuple(v["train"]), tuple(v["heldout"])
    both = sorted(set(train) & set(held))
    if both:
        (at / "heldout").fail(f"must not share seeds with seeds.train (shared: {both})")
    return Seeds(train, held)


def _seed_list(help: str) -> ListOf:
    return ListOf(Int(ge=0), min_items=1, unique="seed", required=True, help=help)


SEEDS = Mapping({"train": _seed_list("workload seeds the search scores on"),
                 "heldout": _seed_list("workload seeds of the final comparison")},
                then=_seeds, required=True, help="workload seeds")


def _weights(v: dict, at: At) -> tuple[tuple[str, float], ...]:
    if not v:
        at.expected(OBJECTIVE_WEIGHTS, v)
    if not any(w > 0 for w in v.values()):
        at.fail("must have at least one positive weight")
    return tuple(sorted(v.items()))


CLASS_LATENCY_KEYS: tuple[str, ...] = tuple(k for k in VALID_FITNESS_KEYS
                                         if k.endswith(("_ttft", "_e2e")))
"""Latency keys that also exist per SLO class, as ``<key>.<class>`` (e.g. ``p99_ttft.critical``:
the p99 TTFT of that class's requests)."""


def class_key(key: str) -> tuple[str, str] | None:
    """``(latency key, class)`` of a per-class key ``p99_ttft.critical``, else None."""
    base, dot, cls = key.partition(".")
    return (base, cls) if dot and cls and base in CLASS_LATENCY_KEYS else None


def _weight_entries(v: Any, at: At) -> dict:
    if not isinstance(v, dict):
        at.expected(OBJECTIVE_WEIGHTS, v)
    out = {}
    for key, w in v.items():
        if key not in WEIGHT_KEYS and class_key(str(key)) is None:
            (at / str(key)).fail(f"is not a known metric; valid: {', '.join(WEIGHT_KEYS)}, or "
                                 f"<{'|'.join(CLASS_LATENCY_KEYS)}>.<class>")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 \
                or w == float("inf"):
            (at / str(key)).fail(f"must be a finite number >= 0, got {w!r}")
        out[str(key)] = float(w)
    return _weights(out, at)


OBJECTIVE_WEIGHTS = Custom(_weight_entries, json_schema={
    "type": "object", "minProperties": 1,
    "additionalProperties": {"type": "number", "minimum": 0}}, required=True,
    what="a non-empty mapping of metric: weight",
    help="metric: weight; the scalar fitness in both modes (metrics: " + ", ".join(WEIGHT_KEYS)
         + ", or a latency key of one SLO class: p99_ttft.critical, ...)")


def _objective_key(key: str, at: At) -> str:
    base = key.split(".", 1)[0] if key.startswith(SLO_ATTAINMENT + ".") else key
    if class_key(key) is not None:
        return key
    if base not in OBJECTIVE_KEYS:
        at.fail(f"must be one of {', '.join(OBJECTIVE_KEYS)} (or slo_attainment.<class>), "
                f"got {key!r}")
    return key


def _multi(v: list, at: At) -> tuple[Objective, ...]:
    for i, o in enumerate(v):
        if any(x.key == o.key for x in v[:i]):
            (at / i / "key").fail(f"repeats objective {o.key!r}")
    return tuple(v)


def _objectives(v: dict, at: At) -> Objectives:
    mode, weights, multi = v["mode"], v["weights"], v.get("multi", ())
    if mode == "multi" and len(multi) < 2:
        (at / "multi").fail("must list at least 2 objectives when mode is multi")
    if mode == "single" and multi:
        (at / "multi").fail("is only allowed when mode is multi")
    order = {k: i for i, k in enumerate(WEIGHT_KEYS)}
    primary = v.get("primary") or max(
        weights, key=lambda kv: (kv[1], -order.get(kv[0], len(order))))[0]
    return Objectives(mode, weights, multi, primary)


OBJECTIVES = Mapping({
    "mode": Choice(MODES, required=True, help="single: GA on the weighted fitness; multi: "
                                              "NSGA-II on the multi objectives"),
    "weights": OBJECTIVE_WEIGHTS,
    "multi": ListOf(Mapping({
        "key": Str(nonempty=True, required=True, then=_objective_key,
                   help=f"a metric: {', '.join(OBJECTIVE_KEYS)} or slo_attainment.<class>"),
        "direction": Choice(DIRECTIONS, required=True)},
        then=lambda o, at: Objective(o["key"], o["direction"])),
        min_items=1, then=_multi, what="a non-empty list of {key, direction}",
        help="the NSGA-II objectives (mode multi; at least 2)"),
    "primary": Custom(lambda v, at: v if (v in WEIGHT_KEYS or class_key(str(v)))
                      else at.fail(f"must be one of {', '.join(WEIGHT_KEYS)} or a per-class "
                                   f"latency key (p99_ttft.critical, ...), got {v!r}"),
                      json_schema={"type": "string"},
                      help="the key reports judge improvement on (default: the "
                           "highest-weighted key)"),
}, then=_objectives, required=True, help="what the search optimises")

PENALTIES = Mapping({**{k: Number(ge=0, default=0.0, help="penalty weight") for k in PENALTY_KEYS},
                     "shed_requests": Number(ge=0, default=MISSING,
                                             help="penalty weight of lost requests of sheddable "
                                                  "SLO tiers (default: rejected_requests')")},
                    then=lambda v, at: Penalties(**v), default=Penalties(),
                    help="anomaly penalties: the fitness is multiplied by exp(-sum weight x rate)")


def _search(v: dict, at: At) -> SearchSettings:
    if v["cxpb"] + v["mutpb"] > 1.0 + 1e-12:
        (at / "mutpb").fail(f"plus search.cxpb must be <= 1, got {v['cxpb']} + {v['mutpb']}")
    if v["tournament"] > v["population"]:
        (at / "tournament").fail(f"must be <= search.population ({v['population']}), got "
                                 f"{v['tournament']}")
    return SearchSettings(**v)


_S = SearchSettings()
SEARCH = Mapping({
    "algorithm": Choice(ALGORITHMS, default=_S.algorithm, help="ga or nsga2 (objectives.mode: "
                                                               "multi)"),
    "population": Int(ge=2, default=_S.population, help="individuals per generation"),
    "generations": Int(ge=0, default=_S.generations, help="generations"),
    "cxpb": Number(ge=0, le=1, default=_S.cxpb, help="crossover probability"),
    "mutpb": Number(ge=0, le=1, default=_S.mutpb, help="mutation probability (cxpb + mutpb <= 1)"),
    "tournament": Int(ge=1, default=_S.tournament, help="tournament size (<= population)"),
    "patience": Int(ge=0, default=_S.patience, help="stop after this many generations without "
                                                    "improvement (0: never)"),
    "target": Number(help="stop once the best fitness reaches it"),
    "seed": Int(ge=0, default=_S.seed, help="search seed"),
    "workers": Int(ge=1, le=1024, default=_S.workers, help="evaluation workers"),
}, then=_search, default=_S, help="evolutionary-search settings")


def _search_space(v: Any, at: At) -> dict:
    if not isinstance(v, dict):
        at.expected("a mapping", v)
    return copy.deepcopy(v)


def _experiment(v: dict, at: At) -> Experiment:
    if v["search"].algorithm == "nsga2" and v["objectives"].mode != "multi":
        (at / "search" / "algorithm").fail("nsga2 needs objectives.mode: multi")
    return Experiment(name=v["name"], cluster=v["cluster"], workload=v["workload"],
                      seeds=v["seeds"], objectives=v["objectives"], penalties=v["penalties"],
                      search=v["search"], search_space=v.get("search_space", {}),
                      source=at.source, autoscaler=v.get("autoscaler"))


EXPERIMENT = Mapping({
    "name": Str(nonempty=True, required=True, help="experiment name"),
    "cluster": CLUSTER,
    "workload": WORKLOAD,
    "seeds": SEEDS,
    "search_space": Custom(_search_space, json_schema={"type": "object"}, what="a mapping",
                           help="the genes the search varies (read by search.genome: a policy "
                                "family or parameter name -> {choices: [...]}, {int: [lo, hi]} "
                                "or {float: [lo, hi]})"),
    "objectives": OBJECTIVES,
    "penalties": PENALTIES,
    "search": SEARCH,
    "autoscaler": AUTOSCALER,
}, then=_experiment, help="an experiment of the policy search (--experiment)")
"""The experiment file's schema (:mod:`simulator.schema` declaration; ``blis schema
experiment``)."""


def parse_experiment(text: str, *, src: str = "<experiment>", base_dir: str = ".") -> Experiment:
    """Parse and validate experiment YAML text.

    ``src`` prefixes error messages; ``base_dir`` resolves relative paths.  Raises
    :class:`InputError` (one line naming the key path) on any problem.
    """
    return EXPERIMENT.parse(load_yaml(text, src, "experiment"),
                            At(src, context=base_dir, wording=_WORDING))


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
    if exp.penalties.shed_requests != exp.penalties.rejected_requests:
        text += f"shed_requests={exp.penalties.shed_requests!r}"
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

