"""Genome of a cluster control policy: gene space, encode/decode, canonical form and operators.

An individual is a flat ``list`` of numbers, one per gene of a :class:`GeneSpace`.  Each gene
has a kind:

``cat``   categorical index (int) into a list of registered policy names;
``bit``   on/off switch (int 0/1) of one weighted-routing scorer;
``real``  float in ``[low, high]`` (scorer weights, real policy parameters);
``int``   int in ``[low, high]`` (integer policy parameters).

The space is declared by a plain mapping (an experiment YAML's ``search_space``)::

    routing:    {choices: [round-robin, least-loaded, weighted]}
    scheduler:  {choices: [fcfs, priority-fcfs, sjf]}
    priority:   {choices: [constant, slo-based]}
    admission:  {choices: [always-admit, token-bucket]}
    scorers:
      prefix-affinity: {weight: [0, 5]}
      queue-depth:     {weight: [0, 5]}
    token_bucket_capacity:    {int: [1000, 100000]}
    token_bucket_refill_rate: {real: [100, 100000]}
    snapshot_refresh_interval: {int: [0, 50000]}        # engine knob, see decode_phenotype

Every key is optional; a family that is absent keeps the :class:`PolicyConfig` default (the
scorers default to the llm-d 3:2:2 profile).  A genome decodes to a
:class:`~blis_evo.phenotype.Phenotype` (:func:`decode_phenotype`): the policy (:func:`decode`),
the engine knobs and the deployment layout.  The DEAP ``creator`` classes live at module top
level so that Ray workers can unpickle individuals.  All randomness comes from an explicit
``numpy.random.Generator``; nothing here touches the global ``random`` / ``np.random``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np
from deap import base, creator

from blis_evo.phenotype import EngineKnobs, Layout, Phenotype
from simulator.autoscale.policies import POLICIES as AUTOSCALERS
from simulator.config import PolicyConfig, ScorerSpec
from simulator.errors import InputError
from simulator.policies.declare import BOOL, INT
from simulator.policies.registry import family, policy_params, valid_names
from simulator.policy_encoding import POLICY_FAMILIES
from simulator.slo import PRIORITY_MAX, PRIORITY_MIN, SLO_CLASS_NAMES, slo_priority

# ---------------------------------------------------------------------------------------------
# DEAP classes (module top level: picklable by reference in Ray workers)
# ---------------------------------------------------------------------------------------------

if not hasattr(creator, "FitnessMax"):
    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
if not hasattr(creator, "FitnessMulti"):
    # weights are set per run by search.vector.individual_class (class attribute); (1, 1) is a
    # placeholder.
    creator.create("FitnessMulti", base.Fitness, weights=(1.0, 1.0))
if not hasattr(creator, "Individual"):
    creator.create("Individual", list, fitness=creator.FitnessMax)
if not hasattr(creator, "IndividualMulti"):
    creator.create("IndividualMulti", list, fitness=creator.FitnessMulti)

# Module aliases.  Note: DEAP >= 1.4 pickles creator classes *by value* (``meta_create``), so
# unpickling an individual re-creates the class (and rebinds ``deap.creator.<name>``); compare
# individuals by content, not by ``type(x) is Individual``.
FitnessMax = creator.FitnessMax
FitnessMulti = creator.FitnessMulti
Individual = creator.Individual
IndividualMulti = creator.IndividualMulti

_PREFIX = "search_space"
GATEWAY_FAMILIES = ("saturation_detector", "dispatch_order", "fairness")
"""Families that only matter with a gateway queue (flow_control: gateway)."""
_GENE_ORDER = ("routing", "scheduler", "priority", "admission", "preemption", "flow_control",
               "saturation_detector", "dispatch_order", "fairness")
"""The policy families a space may search (each a ``cat`` gene under the family's ``gene``
key), in gene order."""


def _families() -> dict[str, str]:
    """search_space key -> policy family (and PolicyConfig field) of the searchable families."""
    return {family(key).gene: key for key in _GENE_ORDER}


def _policy_params() -> dict[str, tuple[str, str]]:
    """Declared policy parameter -> (family, policy that uses it): a parameter gene matters
    only when its family chose that policy (otherwise it keeps the base value)."""
    return {p.name: (fam.key, pol.name) for fam, pol, p in policy_params()}

# numeric engine knobs a search may also evolve (Phenotype.engine, see decode_phenotype)
SIM_PARAMS = tuple(f.name for f in fields(EngineKnobs))
# deployment-layout genes (Phenotype.layout; blis_evo.deployment.build_sim_config applies them):
# total replicas, prefill pool size (0 = monolithic) and the prefix-threshold decider's bound
LAYOUT_PARAMS = tuple(f.name for f in fields(Layout))
# autoscaler genes: the policy choice and its numeric parameters (need an experiment autoscaler)
AUTOSCALER_KEYS = ("autoscaler", "autoscaler_params")
AUTOSCALER_BOUNDS = ("min_replicas", "max_replicas")
_REAL_SIG_DIGITS = 6


@dataclass(frozen=True)
class Gene:
    """One gene: ``name`` (e.g. ``"routing"``, ``"scorer.queue-depth.on"``), ``kind``
    (``"cat" | "bit" | "real" | "int"``), bounds ``[low, high]`` and, for ``cat``, the choices."""

    name: str
    kind: str
    low: float
    high: float
    choices: tuple[str, ...] = ()


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)


def _bounds(value: Any, path: str, integer: bool, signed: bool = False) -> tuple[float, float]:
    """Validate a ``[low, high]`` pair of finite numbers with low <= high (>= 0 unless
    ``signed``)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InputError(f"{_PREFIX}.{path}: expected [low, high], got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{_PREFIX}.{path}: bounds must be finite numbers, got {value!r}")
        if integer and float(v) != int(v):
            raise InputError(f"{_PREFIX}.{path}: integer bounds expected, got {value!r}")
    low, high = value
    if low > high:
        raise InputError(f"{_PREFIX}.{path}: low {low} is greater than high {high}")
    if low < 0 and not signed:
        raise InputError(f"{_PREFIX}.{path}: bounds must be non-negative, got {value!r}")
    return (float(int(low)), float(int(high))) if integer else (float(low), float(high))


def _only_keys(value: Any, path: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{_PREFIX}.{path}: expected a mapping, got {_type_name(value)}")
    for key in value:
        if key not in allowed:
            raise InputError(f"{_PREFIX}.{path}.{key}: unknown key (allowed: {', '.join(allowed)})")
    return value


def _round_sig(x: float, digits: int = _REAL_SIG_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0 stays 0)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(round(x, digits - 1 - int(math.floor(math.log10(abs(x))))))


class GeneSpace:
    """The typed genes of a search space, built from a plain ``search_space`` mapping.

    Parameters
    ----------
    spec : mapping
        The experiment's ``search_space`` (see the module docstring).  Validated strictly;
        errors are one-line :class:`InputError` naming the key.
    weight_decimals : int
        Scorer weights are rounded to this many decimals when decoding (and an "on" scorer's
        weight is at least ``10**-weight_decimals``, since the bundle requires weights > 0).
    base : PolicyConfig
        Values for the families that the space does not search.
    """

    def __init__(self, spec: Mapping[str, Any], *, weight_decimals: int = 3,
                 base: PolicyConfig = PolicyConfig()):
        if not isinstance(spec, Mapping):
            raise InputError(f"{_PREFIX}: expected a mapping, got {_type_name(spec)}")
        families, policy_param_genes = _families(), _policy_params()
        allowed = (*families, "scorers", *policy_param_genes, *SIM_PARAMS, *LAYOUT_PARAMS,
                   *AUTOSCALER_KEYS, "slo_priorities")
        for key in spec:
            if key not in allowed:
                raise InputError(f"{_PREFIX}.{key}: unknown key (allowed: {', '.join(allowed)})")
        self.weight_decimals = int(weight_decimals)
        self.base = base
        genes: list[Gene] = []
        for key, family_key in families.items():
            if key not in spec:
                continue
            entry = _only_keys(spec[key], key, ("choices",))
            choices = entry.get("choices")
            if not isinstance(choices, list) or not choices:
                raise InputError(f"{_PREFIX}.{key}.choices: expected a non-empty list of names")
            valid = valid_names(family_key)
            for name in choices:
                if not isinstance(name, str) or name not in valid:
                    raise InputError(f"{_PREFIX}.{key}.choices: unknown {family_key} policy {name!r}; "
                                     f"valid: {', '.join(valid)}")
            if len(set(choices)) != len(choices):
                raise InputError(f"{_PREFIX}.{key}.choices: duplicate names in {choices!r}")
            genes.append(Gene(key, "cat", 0.0, float(len(choices) - 1), tuple(choices)))
        self.scorer_names: tuple[str, ...] = ()
        if "scorers" in spec:
            scorers = spec["scorers"]
            if not isinstance(scorers, dict) or not scorers:
                raise InputError(f"{_PREFIX}.scorers: expected a non-empty mapping name -> {{weight: [low, high]}}")
            valid = valid_names("scorer")
            for name, entry in scorers.items():
                if name not in valid:
                    raise InputError(f"{_PREFIX}.scorers.{name}: unknown scorer; valid: {', '.join(valid)}")
                entry = _only_keys(entry, f"scorers.{name}", ("weight",))
                if "weight" not in entry:
                    raise InputError(f"{_PREFIX}.scorers.{name}.weight: missing [low, high]")
                low, high = _bounds(entry["weight"], f"scorers.{name}.weight", integer=False)
                if high <= 0:
                    raise InputError(f"{_PREFIX}.scorers.{name}.weight: high bound must be > 0")
                genes.append(Gene(f"scorer.{name}.on", "bit", 0.0, 1.0))
                genes.append(Gene(f"scorer.{name}.weight", "real", low, high))
            self.scorer_names = tuple(scorers)
        declared = {p.name: p for _, _, p in policy_params()}
        for key in (*policy_param_genes, *SIM_PARAMS, *LAYOUT_PARAMS):
            if key not in spec:
                continue
            entry = spec[key]
            if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in ("int", "real"):
                raise InputError(f"{_PREFIX}.{key}: expected {{int: [low, high]}} or {{real: [low, high]}}")
            kind = next(iter(entry))
            integer_only = key in (*SIM_PARAMS, *LAYOUT_PARAMS) or (
                key in declared and declared[key].kind in (INT, BOOL))
            if integer_only and kind != "int":
                raise InputError(f"{_PREFIX}.{key}: must be an int gene ({{int: [low, high]}})")
            low, high = _bounds(entry[kind], f"{key}.{kind}", integer=kind == "int",
                                signed=key in declared and declared[key].low < 0)
            if key in declared and not declared[key].low <= low <= high <= declared[key].high:
                raise InputError(f"{_PREFIX}.{key}.{kind}: [{low:g}, {high:g}] is outside the "
                                 f"parameter's range: {declared[key].bounds_text()}")
            if key == "num_instances" and low < 1:
                raise InputError(f"{_PREFIX}.num_instances: a cluster needs >= 1 instance "
                                 f"(got low bound {low:g})")
            if key == "pd_prefill_replicas" and base.autoscaler is not None:
                raise InputError(f"{_PREFIX}.pd_prefill_replicas: autoscaling (the experiment's "
                                 "autoscaler section) applies to monolithic deployments only")
            genes.append(Gene(key, kind, low, high))
        self.autoscaler_params: tuple[str, ...] = ()
        genes += self._autoscaler_genes(spec, base)
        self.slo_classes: tuple[str, ...] = ()
        genes += self._slo_priority_genes(spec)
        if not genes:
            raise InputError(f"{_PREFIX}: declares no genes")
        self.genes: tuple[Gene, ...] = tuple(genes)
        self.index: dict[str, int] = {g.name: i for i, g in enumerate(genes)}

    def _autoscaler_genes(self, spec: Mapping[str, Any], base: PolicyConfig) -> list[Gene]:
        """``autoscaler: {choices: [policy, ...]}`` and ``autoscaler_params: {name: {real|int:
        [low, high]}}`` (a parameter of any autoscaler policy, or min_replicas / max_replicas)."""
        if not any(k in spec for k in AUTOSCALER_KEYS):
            return []
        if base.autoscaler is None:
            raise InputError(f"{_PREFIX}.autoscaler: needs the experiment's autoscaler section")
        genes = []
        if "autoscaler" in spec:
            choices = _only_keys(spec["autoscaler"], "autoscaler", ("choices",)).get("choices")
            if not isinstance(choices, list) or not choices or len(set(choices)) != len(choices):
                raise InputError(f"{_PREFIX}.autoscaler.choices: expected a non-empty list of distinct names")
            for name in choices:
                if name not in AUTOSCALERS:
                    raise InputError(f"{_PREFIX}.autoscaler.choices: unknown autoscaler {name!r}; "
                                     f"valid: {', '.join(AUTOSCALERS)}")
            genes.append(Gene("autoscaler", "cat", 0.0, float(len(choices) - 1), tuple(choices)))
        params = spec.get("autoscaler_params") or {}
        known = {p.name for cls in AUTOSCALERS.values() for p in cls.PARAMS} | set(AUTOSCALER_BOUNDS)
        for name, entry in _only_keys(params, "autoscaler_params", tuple(sorted(known))).items():
            path = f"autoscaler_params.{name}"
            if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in ("int", "real"):
                raise InputError(f"{_PREFIX}.{path}: expected {{int: [low, high]}} or {{real: [low, high]}}")
            kind = next(iter(entry))
            if name in AUTOSCALER_BOUNDS and kind != "int":
                raise InputError(f"{_PREFIX}.{path}: must be an int gene ({{int: [low, high]}})")
            low, high = _bounds(entry[kind], f"{path}.{kind}", integer=kind == "int")
            if name in AUTOSCALER_BOUNDS and low < 1:
                raise InputError(f"{_PREFIX}.{path}: replicas must be >= 1")
            genes.append(Gene(f"autoscaler.{name}", kind, low, high))
        self.autoscaler_params = tuple(params)
        return genes

    def _slo_priority_genes(self, spec: Mapping[str, Any]) -> list[Gene]:
        """``slo_priorities: {class: {int: [low, high]}}``: the SLO-tier priority of a class
        (:mod:`simulator.slo`; bounds within [-100, 100])."""
        entries = spec.get("slo_priorities")
        if entries is None:
            return []
        genes = []
        for name, entry in _only_keys(entries, "slo_priorities", SLO_CLASS_NAMES).items():
            path = f"slo_priorities.{name}"
            if not isinstance(entry, dict) or list(entry) != ["int"]:
                raise InputError(f"{_PREFIX}.{path}: expected {{int: [low, high]}}")
            low, high = _bounds(entry["int"], f"{path}.int", integer=True, signed=True)
            if not PRIORITY_MIN <= low <= high <= PRIORITY_MAX:
                raise InputError(f"{_PREFIX}.{path}.int: [{low:g}, {high:g}] is outside "
                                 f"[{PRIORITY_MIN}, {PRIORITY_MAX}]")
            genes.append(Gene(f"slo_priority.{name}", "int", low, high))
        if not genes:
            raise InputError(f"{_PREFIX}.slo_priorities: expected a non-empty mapping "
                             "class -> {int: [low, high]}")
        self.slo_classes = tuple(entries)
        return genes

    def __len__(self) -> int:
        return len(self.genes)

    def __repr__(self) -> str:
        return f"GeneSpace({[g.name for g in self.genes]})"

    # convenience delegates (the module-level functions are the implementation)
    def decode(self, genome: Sequence[float]) -> PolicyConfig:
        """See :func:`decode`."""
        return decode(self, genome)

    def phenotype(self, genome: Sequence[float]) -> Phenotype:
        """See :func:`decode_phenotype`."""
        return decode_phenotype(self, genome)

    def encode(self, phenotype: Phenotype | PolicyConfig) -> list:
        """See :func:`encode`."""
        return encode(self, phenotype)

    def canonical(self, genome: Sequence[float]) -> tuple:
        """See :func:`canonical`."""
        return canonical(self, genome)

    def random_genome(self, rng: np.random.Generator) -> list:
        """See :func:`random_genome`."""
        return random_genome(self, rng)

    def mutate(self, ind: list, rng: np.random.Generator, indpb: float, eta: float) -> tuple[list]:
        """See :func:`mutate`."""
        return mutate(self, ind, rng, indpb=indpb, eta=eta)

    def crossover(self, a: list, b: list, rng: np.random.Generator, eta: float) -> tuple[list, list]:
        """See :func:`crossover`."""
        return crossover(self, a, b, rng, eta=eta)


# ---------------------------------------------------------------------------------------------
# decode / encode / canonical
# ---------------------------------------------------------------------------------------------


def _gene(space: GeneSpace, genome: Sequence[float], name: str):
    i = space.index.get(name)
    return None if i is None else genome[i]


def _check_length(space: GeneSpace, genome: Sequence[float]) -> None:
    if len(genome) != len(space.genes):
        raise ValueError(f"genome has {len(genome)} genes, space has {len(space.genes)}")


def decode(space: GeneSpace, genome: Sequence[float]) -> PolicyConfig:
    """Decode a genome to a :class:`PolicyConfig` whose irrelevant parts are normalised.

    * Categorical genes pick their choice; absent families keep ``space.base``.
    * Scorers only matter for ``weighted`` routing; otherwise ``scorers`` is ``space.base.scorers``.
      For weighted routing the "on" scorers are kept in declaration order with weights rounded to
      ``space.weight_decimals`` (at least ``10**-weight_decimals``).  **Fallback:** if no scorer is
      on, the scorer with the largest weight gene (first on ties) is used alone.  A lone scorer
      always gets weight 1.0 (weights are normalised, so its value does not matter).
    * Token-bucket parameters only matter for ``token-bucket`` admission; otherwise they are
      ``space.base``'s (likewise every policy's parameters).  Real parameters are rounded to 6
      significant digits.
    * The saturation detector, dispatch order and fairness only matter with flow control
      (``gateway``); otherwise they are ``space.base``'s.

    Two genomes decode to the same policy iff their :func:`canonical` forms are equal.
    """
    _check_length(space, genome)
    fields: dict[str, Any] = {}
    for key, field_name in _families().items():
        i = space.index.get(key)
        if i is not None:
            fields[field_name] = space.genes[i].choices[int(genome[i])]
    policy = replace(space.base, **fields)
    if policy.flow_control == "off":  # the gateway's choices matter only with a gateway
        policy = replace(policy, **{k: getattr(space.base, k) for k in GATEWAY_FAMILIES})
    if policy.routing == "weighted" and space.scorer_names:
        quantum = 10.0 ** -space.weight_decimals
        on: list[ScorerSpec] = []
        best_name, best_w = None, -math.inf
        for name in space.scorer_names:
            w = float(_gene(space, genome, f"scorer.{name}.weight"))
            if w > best_w:
                best_name, best_w = name, w
            if int(_gene(space, genome, f"scorer.{name}.on")):
                on.append(ScorerSpec(name, max(round(w, space.weight_decimals), quantum)))
        if not on:
            on = [ScorerSpec(best_name, 1.0)]
        elif len(on) == 1:  # weights are normalised: a lone scorer's weight is irrelevant
            on = [ScorerSpec(on[0].name, 1.0)]
        policy = replace(policy, scorers=tuple(on))
    elif policy.routing != "weighted":
        policy = replace(policy, scorers=space.base.scorers)
    params = {}
    for key, (family_key, value) in _policy_params().items():
        i = space.index.get(key)
        if i is None:
            continue
        if getattr(policy, family_key) != value:
            params[key] = space.base.param(key)
        elif space.genes[i].kind == "int":
            params[key] = float(int(genome[i]))
        else:
            params[key] = _round_sig(float(genome[i]))
    policy = policy.with_params(params)
    if space.slo_classes:
        tiers = dict(space.base.slo_priorities)
        for name in space.slo_classes:
            tiers[name] = int(genome[space.index[f"slo_priority.{name}"]])
        policy = replace(policy, slo_priorities=tuple(tiers.items()))
    if policy.autoscaler is not None and (space.autoscaler_params or "autoscaler" in space.index):
        policy = replace(policy, autoscaler=_decode_autoscaler(space, genome, policy.autoscaler))
    return policy


def _decode_autoscaler(space: GeneSpace, genome: Sequence[float], asc):
    """The base autoscaler with the evolved policy, its declared parameters (clipped into the
    policy's bounds, 6 significant digits) and replica bounds (max raised to min if below)."""
    name = asc.policy
    i = space.index.get("autoscaler")
    if i is not None:
        name = space.genes[i].choices[int(genome[i])]
    declared = {p.name: p for p in AUTOSCALERS[name].PARAMS}
    values = dict(asc.params) if name == asc.policy else {}
    bounds = {"min_replicas": asc.min_replicas, "max_replicas": asc.max_replicas}
    for p in space.autoscaler_params:
        v = float(genome[space.index[f"autoscaler.{p}"]])
        if p in bounds:
            bounds[p] = int(v)
        elif p in declared:
            values[p] = _round_sig(min(max(v, declared[p].low), declared[p].high))
    params = tuple((k, float(values[k])) for k in declared if k in values)
    hi = max(bounds["max_replicas"], bounds["min_replicas"])
    return replace(asc, policy=name, params=params, min_replicas=bounds["min_replicas"],
                   max_replicas=hi)


def decode_phenotype(space: GeneSpace, genome: Sequence[float]) -> Phenotype:
    """Decode a genome to its :class:`~blis_evo.phenotype.Phenotype`: the policy of
    :func:`decode`, and the engine knobs (:data:`SIM_PARAMS`) and layout fields
    (:data:`LAYOUT_PARAMS`) the space evolves, as ints (the others stay None: the experiment's
    values apply)."""
    policy = decode(space, genome)

    def ints(names: tuple[str, ...]) -> dict[str, int]:
        return {key: int(genome[space.index[key]]) for key in names if key in space.index}

    return Phenotype(policy, EngineKnobs(**ints(SIM_PARAMS)), Layout(**ints(LAYOUT_PARAMS)))


def canonical(space: GeneSpace, genome: Sequence[float]) -> tuple:
    """Hashable normal form of a genome for the evaluation cache.

    Built from the decoded phenotype (policy names, on-scorers with rounded weights, and only the
    parameters that matter), so off scorers' weights, scorer genes under non-weighted routing and
    token-bucket genes under other admission policies do not split the cache, and equal canonical
    forms always mean identical simulations.
    """
    ph = decode_phenotype(space, genome)
    p = ph.policy
    form: list = []
    for key in POLICY_FAMILIES:   # each choice followed by its family's parameter values
        form.append(getattr(p, key))
        form.extend(p.param(param.name) for param in family(key).params())
        if key == "routing":
            form.append(tuple((s.name, s.weight) for s in p.scorers))
    form.append(tuple(sorted(ph.knob_items())))
    return tuple(form) + ((p.autoscaler,) if p.autoscaler is not None else ())


def encode(space: GeneSpace, phenotype: Phenotype | PolicyConfig) -> list:
    """Encode a phenotype (or a bare policy: no engine knob or layout field set) as a genome of
    ``space``; unset knobs and layout fields are encoded at their gene's lower bound.

    Raises :class:`InputError` if a searched family's value is not among its choices or a
    relevant numeric value is outside its bounds.  Values that do not affect the phenotype
    (weights of absent scorers, token bucket under other admission) are clipped into bounds;
    absent scorers are encoded "off" at their lower weight bound.  ``decode(encode(p)) == p``
    for every policy ``p`` that :func:`decode` can produce, and likewise
    ``decode_phenotype(encode(ph)) == ph`` for :func:`decode_phenotype`.
    """
    phenotype = Phenotype.of(phenotype)
    policy = phenotype.policy
    genome: list = []
    weights = {s.name: s.weight for s in policy.scorers}
    weighted = policy.routing == "weighted"
    if weighted and space.scorer_names:
        for name in weights:
            if name not in space.scorer_names:
                raise InputError(f"{_PREFIX}.scorers: policy scorer {name!r} is not in the search space")
    asc = policy.autoscaler
    for g in space.genes:
        if g.name == "autoscaler" or g.name.startswith("autoscaler."):
            genome.append(_encode_autoscaler_gene(g, asc))
        elif g.name.startswith("slo_priority."):
            value = slo_priority(g.name[len("slo_priority."):], policy.slo_priorities)
            if not g.low <= value <= g.high:
                raise InputError(f"{_PREFIX}.slo_priorities.{g.name[13:]}: {value} outside "
                                 f"[{g.low:g}, {g.high:g}]")
            genome.append(int(value))
        elif g.kind == "cat":
            value = getattr(policy, _families()[g.name])
            if value not in g.choices:
                raise InputError(f"{_PREFIX}.{g.name}: {value!r} is not among the choices {list(g.choices)}")
            genome.append(g.choices.index(value))
        elif g.name.startswith("scorer."):
            name, what = g.name[len("scorer."):].rsplit(".", 1)
            if what == "on":
                genome.append(int(name in weights))
            else:
                w = weights.get(name, g.low)
                if weighted and len(weights) > 1 and name in weights and not g.low <= w <= g.high:
                    raise InputError(f"{_PREFIX}.scorers.{name}.weight: {w} outside [{g.low}, {g.high}]")
                genome.append(float(min(max(w, g.low), g.high)))
        else:
            owners = _policy_params()
            if g.name in owners:
                family_key, active = owners[g.name]
                value = policy.param(g.name)
                relevant = getattr(policy, family_key) == active
            else:
                knob = phenotype.knob(g.name)
                value = float(g.low if knob is None else knob)
                relevant = knob is not None
            if relevant and not g.low <= value <= g.high:
                raise InputError(f"{_PREFIX}.{g.name}: {value} outside [{g.low}, {g.high}]")
            value = min(max(value, g.low), g.high)
            genome.append(int(round(value)) if g.kind == "int" else float(value))
    return genome


def _encode_autoscaler_gene(g: Gene, asc):
    if asc is None:
        raise InputError(f"{_PREFIX}.autoscaler: the policy has no autoscaler")
    if g.kind == "cat":
        if asc.policy not in g.choices:
            raise InputError(f"{_PREFIX}.autoscaler: {asc.policy!r} is not among the choices {list(g.choices)}")
        return g.choices.index(asc.policy)
    name = g.name[len("autoscaler."):]
    value = float(getattr(asc, name) if name in AUTOSCALER_BOUNDS else dict(asc.params).get(name, g.low))
    value = min(max(value, g.low), g.high)
    return int(round(value)) if g.kind == "int" else value


def bundle_dict(phenotype: Phenotype | PolicyConfig) -> dict:
    """The phenotype (or a bare policy) as a mapping in the policy-bundle schema of ``blis run
    --policy-config``, so that the file reproduces exactly what was evaluated; see
    :meth:`blis_evo.phenotype.Phenotype.bundle`.  Dump with
    ``yaml.safe_dump(bundle_dict(ph), sort_keys=False)``.
    """
    return Phenotype.of(phenotype).bundle()


def experiment_space(exp, **kwargs) -> GeneSpace:
    """The gene space of an experiment's ``search_space``, with the experiment's autoscaler (if
    any) as the base every decoded policy carries."""
    return GeneSpace(exp.search_space, base=PolicyConfig(autoscaler=exp.autoscaler), **kwargs)


# ---------------------------------------------------------------------------------------------
# random genomes and variation operators (pure apart from mutating the individuals passed in)
# ---------------------------------------------------------------------------------------------


def _sample_gene(g: Gene, rng: np.random.Generator):
    if g.kind == "cat":
        return int(rng.integers(len(g.choices)))
    if g.kind == "bit":
        return int(rng.integers(2))
    if g.kind == "int":
        return int(rng.integers(int(g.low), int(g.high) + 1))
    return float(rng.uniform(g.low, g.high)) if g.high > g.low else float(g.low)


def _repair(g: Gene, x: float):
    """Clip a numeric value into the gene's bounds and cast it to the gene's type."""
    x = min(max(float(x), g.low), g.high)
    return int(round(x)) if g.kind in ("int", "cat", "bit") else x


def random_genome(space: GeneSpace, rng: np.random.Generator) -> list:
    """A uniformly random genome (plain list; wrap it in ``Individual`` for DEAP)."""
    return [_sample_gene(g, rng) for g in space.genes]


def _poly(x: float, low: float, high: float, eta: float, rng: np.random.Generator) -> float:
    """Bounded polynomial mutation of one value (Deb & Goyal; DEAP ``mutPolynomialBounded``)."""
    if high <= low:
        return low
    d1, d2 = (x - low) / (high - low), (high - x) / (high - low)
    u = float(rng.random())
    mut_pow = 1.0 / (eta + 1.0)
    if u < 0.5:
        xy = 1.0 - d1
        val = 2.0 * u + (1.0 - 2.0 * u) * xy ** (eta + 1.0)
        dq = val ** mut_pow - 1.0
    else:
        xy = 1.0 - d2
        val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy ** (eta + 1.0)
        dq = 1.0 - val ** mut_pow
    return x + dq * (high - low)


def mutate(space: GeneSpace, ind: list, rng: np.random.Generator, *, indpb: float,
           eta: float) -> tuple[list]:
    """Mutate ``ind`` in place, each gene with probability ``indpb``; returns ``(ind,)``.

    Real/int genes: bounded polynomial mutation (distribution index ``eta``), repaired into
    bounds (ints rounded).  Categorical genes: uniform resample among the *other* choices.
    Bits: flip.  Exactly one ``rng.random()`` draw per gene decides, so the stream consumed is
    predictable.  The caller invalidates the fitness.
    """
    for i, g in enumerate(space.genes):
        if rng.random() >= indpb:
            continue
        if g.kind == "bit":
            ind[i] = 1 - int(ind[i])
        elif g.kind == "cat":
            n = len(g.choices)
            if n > 1:
                k = int(rng.integers(n - 1))
                ind[i] = k + (k >= int(ind[i]))
        else:
            ind[i] = _repair(g, _poly(float(ind[i]), g.low, g.high, eta, rng))
    return (ind,)


def _sbx(x1: float, x2: float, low: float, high: float, eta: float,
         rng: np.random.Generator) -> tuple[float, float]:
    """Bounded simulated binary crossover of one value pair (DEAP ``cxSimulatedBinaryBounded``)."""
    if abs(x1 - x2) <= 1e-14 or high <= low:
        return x1, x2
    y1, y2 = min(x1, x2), max(x1, x2)
    u = float(rng.random())

    def child(beta: float) -> float:
        alpha = 2.0 - beta ** -(eta + 1.0)
        if u <= 1.0 / alpha:
            return (u * alpha) ** (1.0 / (eta + 1.0))
        return (1.0 / (2.0 - u * alpha)) ** (1.0 / (eta + 1.0))

    bq = child(1.0 + 2.0 * (y1 - low) / (y2 - y1))
    c1 = 0.5 * (y1 + y2 - bq * (y2 - y1))
    bq = child(1.0 + 2.0 * (high - y2) / (y2 - y1))
    c2 = 0.5 * (y1 + y2 + bq * (y2 - y1))
    c1, c2 = min(max(c1, low), high), min(max(c2, low), high)
    if rng.random() <= 0.5:
        c1, c2 = c2, c1
    return c1, c2


def crossover(space: GeneSpace, a: list, b: list, rng: np.random.Generator, *,
              eta: float) -> tuple[list, list]:
    """Cross ``a`` and ``b`` in place; returns ``(a, b)``.

    Per gene, with probability 0.5: real/int genes get bounded SBX (distribution index ``eta``;
    ints rounded), categorical and bit genes are swapped.  The caller invalidates fitnesses.
    """
    for i, g in enumerate(space.genes):
        if rng.random() >= 0.5:
            continue
        if g.kind in ("cat", "bit"):
            a[i], b[i] = b[i], a[i]
        else:
            c1, c2 = _sbx(float(a[i]), float(b[i]), g.low, g.high, eta, rng)
            a[i], b[i] = _repair(g, c1), _repair(g, c2)
    return a, b
