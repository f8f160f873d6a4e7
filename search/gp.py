"""Genetic programming of routing score rules (``python -m search.evolve --genome gp``).

The genome is a strongly typed DEAP expression tree over the seven routing features of a code
policy (:data:`simulator.codepolicy.ROUTING`): float primitives ``add sub mul pdiv neg min max``
and ``if_then_else(bool, float, float)``, bool primitives ``lt gt and_ or_ not_``, ephemeral
constants in [-5, 5] (2 decimals) and ``True``/``False``.  A tree is written out as the source
text of a ``score()`` code policy (:func:`tree_source`) and goes through the same sandbox and
numba compilation as a hand-written policy (``load_code_policy``); its fitness is the usual
``search.evaluate.evaluate`` of ``PolicyConfig(routing="code")`` on the experiment's train
seeds, fanned out by :class:`search.parallel.Evaluator` (Ray with ``--workers > 1``).

Loop: (mu+lambda) with elitism like the parameter GA (survivors = best distinct rules of
parents + offspring, :func:`search.ga.sel_distinct_best`); parents by DEAP's double tournament
(fitness tournament of the experiment's size, then a parsimony tournament preferring the smaller
tree); one-point crossover and uniform-subtree / ephemeral / node-replacement mutation; bloat
control by static limits (height <= :data:`MAX_HEIGHT`, at most :data:`MAX_NODES` nodes).
DEAP's GP operators draw from Python's global ``random`` module; the search keeps its own
``random.Random`` and swaps its state in around each operator call, so the global generator is
left as found and the run is a deterministic function of the seed (and resumable: the
checkpoint holds that state).
"""
from __future__ import annotations

import functools
import operator
import pickle
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from deap import base, creator, gp, tools

from simulator.codepolicy import ROUTING, load_code_policy
from simulator.config import PolicyConfig
from simulator.errors import InputError
from simulator.fileio import atomic_write

from .ga import (SearchState, _individuals, _plain, _record, check_resume_settings,
                 restore_archive, sel_distinct_best)

FEATURES = tuple(f.name for f in ROUTING.features)
MAX_HEIGHT = 8
"""Static depth limit of a rule tree (bloat control)."""
MAX_NODES = 40
"""Static size limit of a rule tree (bloat control)."""
PARSIMONY_SIZE = 1.4
"""Size of the parsimony tournament of DEAP's double tournament (1 < s <= 2)."""
PDIV_EPS = 1e-9
CHECKPOINT_VERSION = 1

SEED_RULES = (
    "sub(sub(sub(mul(3.0, prefix_match), queue_depth), batch_size), pending)",
    "neg(add(add(queue_depth, batch_size), pending))",
    "sub(mul(10.0, prefix_match), add(add(queue_depth, batch_size), pending))",
    "sub(sub(mul(3.0, prefix_match), mul(2.0, kv_utilization)), "
    "mul(0.1, add(add(queue_depth, batch_size), pending)))",
)
"""Sensible rules in the initial population: prefix affinity traded against load."""


def _constant() -> float:
    return round(random.uniform(-5.0, 5.0), 2)


def _pdiv(a: float, b: float) -> float:
    return a / b if abs(b) > PDIV_EPS else 1.0


def _if_then_else(c: bool, a: float, b: float) -> float:
    return a if c else b


@functools.cache
def primitive_set() -> gp.PrimitiveSetTyped:
    """The typed primitive set (built once per process: DEAP registers ephemerals globally)."""
    ps = gp.PrimitiveSetTyped("score", [float] * len(FEATURES), float)
    ps.renameArguments(**{f"ARG{i}": name for i, name in enumerate(FEATURES)})
    for name, fn in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                     ("pdiv", _pdiv), ("min", min), ("max", max)):
        ps.addPrimitive(fn, [float, float], float, name=name)
    ps.addPrimitive(operator.neg, [float], float, name="neg")
    ps.addPrimitive(_if_then_else, [bool, float, float], float, name="if_then_else")
    ps.addPrimitive(operator.lt, [float, float], bool, name="lt")
    ps.addPrimitive(operator.gt, [float, float], bool, name="gt")
    ps.addPrimitive(operator.and_, [bool, bool], bool, name="and_")
    ps.addPrimitive(operator.or_, [bool, bool], bool, name="or_")
    ps.addPrimitive(operator.not_, [bool], bool, name="not_")
    ps.addEphemeralConstant("blis_gp_const", _constant, float)
    ps.addTerminal(True, bool)
    ps.addTerminal(False, bool)
    return ps


def _tree_class():
    if not hasattr(creator, "BlisGPFitness"):
        creator.create("BlisGPFitness", base.Fitness, weights=(1.0,))
        creator.create("BlisGPTree", gp.PrimitiveTree, fitness=creator.BlisGPFitness)
    return creator.BlisGPTree


def parse_rule(text: str):
    """A rule tree from its DEAP string form (e.g. ``sub(prefix_match, queue_depth)``)."""
    return _tree_class()(gp.PrimitiveTree.from_string(text, primitive_set()))


# ---------------------------------------------------------------------------------------------
# tree -> code policy source
# ---------------------------------------------------------------------------------------------

_INFIX = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "gt": ">", "and_": "and", "or_": "or"}


def tree_source(tree) -> str:
    """The rule as the source of a ``score()`` code policy (readable, sandbox-compatible).

    Protected division's denominator is bound to a local first (``dK``) and divided only when
    ``abs(dK) > 1e-9`` (else 1.0), as ``pdiv`` evaluates it.  The tree's DEAP form is kept in
    the docstring, so the file round-trips through :func:`parse_rule`.
    """
    lines: list[str] = []
    pos = 0

    def emit() -> str:
        nonlocal pos
        node = tree[pos]
        pos += 1
        if isinstance(node, gp.Terminal):
            v = node.value
            if isinstance(v, str):
                return v
            if isinstance(v, bool):
                return "True" if v else "False"
            return repr(float(v))
        args = [emit() for _ in range(node.arity)]
        name = node.name
        if name in _INFIX:
            return f"({args[0]} {_INFIX[name]} {args[1]})"
        if name == "neg":
            return f"(-{args[0]})"
        if name == "not_":
            return f"(not {args[0]})"
        if name in ("min", "max"):
            return f"{name}({args[0]}, {args[1]})"
        if name == "if_then_else":
            return f"({args[1]} if {args[0]} else {args[2]})"
        if name == "pdiv":
            d = f"d{len(lines)}"
            lines.append(f"    {d} = {args[1]}")
            return f"({args[0]} / {d} if abs({d}) > {PDIV_EPS!r} else 1.0)"
        raise ValueError(f"unknown primitive {name}")

    expr = emit()
    body = "\n".join(lines + [f"    return {expr}"])
    return (f'"""Routing score rule evolved by search.gp (genetic programming).\n\n'
            f"DEAP tree: {tree}\n\"\"\"\n\n\n{ROUTING.signature}:\n{body}\n")


def rule_policy(source: str) -> PolicyConfig:
    """``PolicyConfig(routing="code")`` running the score rule ``source`` (sandbox-checked)."""
    return PolicyConfig(routing="code", routing_code=load_code_policy(source, "routing", "<gp rule>"))


@dataclass(frozen=True)
class RuleSpace:
    """What :class:`search.parallel.Evaluator` needs of a genome space, for GP rules: a genome
    is ``[source]`` (one gene, the rule's code policy source), no engine knobs evolve."""

    genes: tuple = ("score",)
    index: tuple = ()

    def canonical(self, genome) -> str:
        """Cache key: the rule source (equal source = identical simulation)."""
        return genome[0]

    def decode(self, genome) -> PolicyConfig:
        """The policy that runs the rule."""
        return rule_policy(genome[0])


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------


@contextmanager
def _deap_random(rng: random.Random):
    """Run DEAP operators (which use the global ``random``) on ``rng``'s state."""
    saved = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(saved)


def _toolbox():
    ps = primitive_set()
    tb = base.Toolbox()
    tb.register("expr", gp.genHalfAndHalf, pset=ps, min_=1, max_=4)
    tb.register("mate", gp.cxOnePoint)
    tb.register("subtree", gp.genFull, min_=0, max_=2)
    tb.register("mut_uniform", gp.mutUniform, expr=tb.subtree, pset=ps)
    tb.register("mut_node", gp.mutNodeReplacement, pset=ps)
    tb.register("mut_const", gp.mutEphemeral, mode="one")
    for op in ("mate", "mut_uniform", "mut_node", "mut_const"):
        tb.decorate(op, gp.staticLimit(key=operator.attrgetter("height"), max_value=MAX_HEIGHT))
        tb.decorate(op, gp.staticLimit(key=len, max_value=MAX_NODES))
    return tb


def _random_tree(tb):
    cls = _tree_class()
    while True:
        t = cls(tb.expr())
        if t.height <= MAX_HEIGHT and len(t) <= MAX_NODES:
            return t


def _vary(parents: list, tb, cxpb: float, mutpb: float, rng: random.Random) -> list:
    """Offspring of ``parents`` (consecutive pairs): crossover with ``cxpb``, then each child
    mutated with ``mutpb`` by one of the three mutations."""
    kids = [tb.clone(p) for p in parents]
    for i in range(1, len(kids), 2):
        if rng.random() < cxpb:
            with _deap_random(rng):
                kids[i - 1], kids[i] = tb.mate(kids[i - 1], kids[i])
            del kids[i - 1].fitness.values, kids[i].fitness.values
    for i, k in enumerate(kids):
        if rng.random() < mutpb:
            op = (tb.mut_uniform, tb.mut_node, tb.mut_const)[rng.randrange(3)]
            with _deap_random(rng):
                kids[i], = op(k)
            del kids[i].fitness.values
    return kids


def _evaluate(individuals: list, evaluate_batch) -> int:
    todo = [ind for ind in individuals if not ind.fitness.valid]
    if todo:
        for ind, fit in zip(todo, evaluate_batch([[tree_source(t)] for t in todo])):
            ind.fitness.values = fit
    return len(todo)


def _save(state: SearchState, path: str) -> None:
    payload = {"version": CHECKPOINT_VERSION, "genome": "gp", "settings": state.settings,
               "generation": state.generation, "population": _plain(state.population, str),
               "halloffame": _plain(state.halloffame, str), "logbook": state.logbook,
               "rng_state": state.rng.getstate(), "stall": state.stall,
               "nevals_total": state.nevals_total, "extra": state.extra}
    atomic_write(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def _load(path: str, settings: dict) -> SearchState:
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unreadable or foreign file is bad input
        raise InputError(f"--resume: cannot read checkpoint {path}: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("genome") != "gp" \
            or payload.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"--resume: {path} is not a --genome gp search checkpoint")
    check_resume_settings(payload["settings"], settings)
    hof = restore_archive(tools.HallOfFame(settings["hof_size"]), parse_rule,
                          payload["halloffame"])
    rng = random.Random()
    rng.setstate(payload["rng_state"])
    return SearchState(population=_individuals(parse_rule, payload["population"]),
                       generation=payload["generation"],
                       halloffame=hof, pareto=None, logbook=payload["logbook"], rng=rng,
                       settings=settings, stall=payload["stall"],
                       nevals_total=payload["nevals_total"], extra=payload["extra"])


def run_gp(evaluate_batch: Callable[[list], Sequence[Sequence[float]]], *, population: int = 24,
           generations: int = 10, cxpb: float = 0.6, mutpb: float = 0.3, tournament: int = 3,
           seed: int = 0, hof_size: int = 10, seed_rules: Sequence[str] = SEED_RULES,
           checkpoint_path: str | None = None, resume_from: str | None = None,
           on_generation: Callable[[SearchState], None] | None = None,
           extra_state: dict | None = None, fingerprint: str = "") -> SearchState:
    """Evolve score rules; returns the final :class:`search.ga.SearchState` (individuals are
    rule trees; ``champion`` the best).

    ``evaluate_batch(list of [source]) -> list of (fitness,)`` scores rule sources (the caller
    parallelises and caches).  Generation 0 is ``seed_rules`` (DEAP string form) followed by
    random ramped half-and-half trees (depth 1-4).  A checkpoint is written after every
    generation; ``resume_from`` continues one written with the same settings and
    ``fingerprint`` (InputError otherwise).  ``extra_state`` is saved with it (the evaluation
    cache) and restored in place on resume.
    """
    if population < 2 or tournament < 1 or not (0 <= cxpb <= 1 and 0 <= mutpb <= 1):
        raise InputError("gp: need population >= 2, tournament >= 1, 0 <= cxpb, mutpb <= 1")
    settings = {"genome": "gp", "population": population, "cxpb": cxpb, "mutpb": mutpb,
                "tournament": tournament, "seed": seed, "hof_size": hof_size,
                "seed_rules": tuple(seed_rules), "max_height": MAX_HEIGHT,
                "max_nodes": MAX_NODES, "fingerprint": fingerprint}
    tb = _toolbox()
    names = ("fitness",)

    def finish_generation(state: SearchState, nevals: int) -> None:
        state.nevals_total += nevals
        best = state.halloffame[0].fitness.values if len(state.halloffame) else None
        state.halloffame.update(state.population)
        improved = best is None or state.halloffame[0].fitness.values > best
        state.stall = 0 if improved else state.stall + 1
        _record(state, nevals, names)
        if checkpoint_path:
            _save(state, checkpoint_path)
        if on_generation:
            on_generation(state)

    extra = extra_state if extra_state is not None else {}
    if resume_from:
        state = _load(resume_from, settings)
        extra.update(state.extra)
        state.extra = extra
    else:
        rng = random.Random(seed)
        pop = [parse_rule(r) for r in seed_rules][:population]
        with _deap_random(rng):
            pop += [_random_tree(tb) for _ in range(population - len(pop))]
        state = SearchState(population=pop, generation=0, halloffame=tools.HallOfFame(hof_size),
                            pareto=None, logbook=tools.Logbook(), rng=rng, settings=settings,
                            extra=extra)
        state.logbook.header = ("gen", "nevals", "fitness_min", "fitness_avg", "fitness_max",
                                "best", "stall")
        finish_generation(state, _evaluate(state.population, evaluate_batch))

    while state.generation < generations:
        with _deap_random(state.rng):
            parents = tools.selDoubleTournament(state.population, population,
                                                fitness_size=tournament,
                                                parsimony_size=PARSIMONY_SIZE, fitness_first=True)
        offspring = _vary(parents, tb, cxpb, mutpb, state.rng)
        nevals = _evaluate(offspring, evaluate_batch)
        state.population = sel_distinct_best(state.population + offspring, population,
                                             lambda nodes: str(gp.PrimitiveTree(nodes)))
        state.generation += 1
        finish_generation(state, nevals)
    return state


def champion_files(tree, out: Path) -> dict:
    """Write ``champion_score.py`` (the rule as a code policy) into ``out``; return the bundle
    mapping (``routing: {policy: code, code_path: champion_score.py}``, the other families at
    their defaults) that ``blis run --policy-config champion.yaml`` runs."""
    atomic_write(Path(out) / "champion_score.py", tree_source(tree))
    d = PolicyConfig()
    return {"admission": {"policy": d.admission},
            "routing": {"policy": "code", "code_path": "champion_score.py"},
            "priority": {"policy": d.priority}, "scheduler": d.scheduler}
