"""Genetic programming of routing score rules (``python -m search.evolve --genome gp``).

The genome is a strongly typed DEAP expression tree over the routing features of a code
policy (:data:`simulator.codepolicy.ROUTING`): float primitives ``add sub mul pdiv neg min max``
and ``if_then_else(bool, float, float)``, bool primitives ``lt gt and_ or_ not_``, ephemeral
constants in [-5, 5] (2 decimals) and ``True``/``False``.  A tree is written out as the source
text of a ``score()`` code policy (:func:`tree_source`) and goes through the same sandbox and
numba compilation as a hand-written policy (``load_code_policy``); its fitness is the usual
``search.evaluate.evaluate`` of ``PolicyConfig(routing="code")`` on the experiment's train
seeds, fanned out by :class:`search.parallel.Evaluator` (Ray with ``--workers > 1``).

The :class:`RuleTrees` representation (:mod:`search.representation`) runs in the common
search loop (:mod:`search.loop`) with the ``gp`` strategy: parents by DEAP's double tournament
(fitness tournament of the experiment's size, then a parsimony tournament preferring the smaller
tree), survivors = best distinct rules of parents + offspring (elitism).  Offspring: consecutive
parent pairs crossed (one-point) with ``cxpb``, then each child mutated with ``mutpb`` by
uniform-subtree, node-replacement or ephemeral mutation; bloat control by static limits
(height <= :data:`MAX_HEIGHT`, at most :data:`MAX_NODES` nodes).  DEAP's GP operators draw
from Python's global ``random`` module; they run under :func:`search.selection.deap_random`
on the search's own ``random.Random``, so the global generator is left as found and the run is
a deterministic function of the seed (and resumable: the checkpoint holds that state).
"""
from __future__ import annotations

import functools
import operator
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from deap import base, creator, gp

from blis_evo.phenotype import Phenotype
from simulator.codepolicy import ROUTING, load_code_policy
from simulator.config import PolicyConfig
from simulator.errors import InputError
from simulator.fileio import atomic_write

from .selection import deap_random

FEATURES = tuple(f.name for f in ROUTING.features)
MAX_HEIGHT = 8
"""Static depth limit of a rule tree (bloat control)."""
MAX_NODES = 40
"""Static size limit of a rule tree (bloat control)."""
PDIV_EPS = 1e-9

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
    is ``[source]`` (one gene, the rule's code policy source), no engine knobs or layout
    evolve."""

    genes: tuple = ("score",)
    index: tuple = ()

    def canonical(self, genome) -> str:
        """Cache key: the rule source (equal source = identical simulation)."""
        return genome[0]

    def decode(self, genome) -> PolicyConfig:
        """The policy that runs the rule."""
        return rule_policy(genome[0])

    def phenotype(self, genome) -> Phenotype:
        """The rule's policy, with the experiment's engine knobs and layout."""
        return Phenotype(self.decode(genome))


# ---------------------------------------------------------------------------------------------
# the representation
# ---------------------------------------------------------------------------------------------


@functools.cache
def _toolbox():
    """DEAP's tree generator and variation operators, wrapped in the static size limits."""
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
    """A ramped half-and-half tree (depth 1-4) within the static limits (global ``random``)."""
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
            with deap_random(rng):
                kids[i - 1], kids[i] = tb.mate(kids[i - 1], kids[i])
            del kids[i - 1].fitness.values, kids[i].fitness.values
    for i, k in enumerate(kids):
        if rng.random() < mutpb:
            op = (tb.mut_uniform, tb.mut_node, tb.mut_const)[rng.randrange(3)]
            with deap_random(rng):
                kids[i], = op(k)
            del kids[i].fitness.values
    return kids


def _ephemeral_class():
    """The primitive set's ephemeral-constant terminal class."""
    return next(t for t in primitive_set().terminals[float] if isinstance(t, gp.MetaEphemeral))


def _check_weights(weights) -> None:
    if tuple(weights) != (1.0,):
        raise InputError(f"gp: rule trees need one maximised objective, got weights {tuple(weights)!r}")


@dataclass(frozen=True)
class RuleTrees:
    """Rule trees as a search representation (:class:`search.representation.Representation`)
    for the ``gp`` strategy: crossover with ``cxpb`` per parent pair, mutation with ``mutpb``
    per child.  Seeds are rules in DEAP string form (default :data:`SEED_RULES`)."""

    cxpb: float = 0.6
    mutpb: float = 0.3
    name = "gp"
    algorithms = ("gp",)

    def __post_init__(self):
        if not (0 <= self.cxpb <= 1 and 0 <= self.mutpb <= 1):
            raise InputError(f"gp: need 0 <= cxpb, mutpb <= 1, got {self.cxpb}, {self.mutpb}")

    def settings(self) -> dict:
        """Variation settings and the static size limits (a resumed run must share them)."""
        return {"cxpb": self.cxpb, "mutpb": self.mutpb, "max_height": MAX_HEIGHT,
                "max_nodes": MAX_NODES}

    def new_rng(self, seed: int) -> random.Random:
        """A ``random.Random`` seeded with ``seed`` (DEAP's GP operators run on its state)."""
        return random.Random(seed)

    def rng_state(self, rng: random.Random):
        """The generator's state."""
        return rng.getstate()

    def restore_rng(self, state) -> random.Random:
        """A generator continuing from ``state``."""
        rng = random.Random()
        rng.setstate(state)
        return rng

    def initial(self, seeds: Sequence[str], n: int, rng: random.Random, weights) -> list:
        """The seed rules, then random ramped half-and-half trees (depth 1-4), ``n`` in all."""
        _check_weights(weights)
        pop = [parse_rule(r) for r in seeds][:n]
        tb = _toolbox()
        with deap_random(rng):
            pop += [_random_tree(tb) for _ in range(n - len(pop))]
        return pop

    def breed(self, parents: Callable[[int], list], n: int, rng: random.Random) -> list:
        """``n`` parents selected at once, crossed pairwise and mutated (DEAP's ``varAnd``)."""
        return _vary(parents(n), _toolbox(), self.cxpb, self.mutpb, rng)

    def key(self, tree) -> str:
        """The rule's DEAP string form (equal strings = equal rules)."""
        return str(tree)

    def genome(self, tree) -> list:
        """``[source]``: the rule as code-policy source (what :class:`RuleSpace` decodes)."""
        return [tree_source(tree)]

    def encode(self, tree) -> tuple[str, tuple[int, ...]]:
        """``(DEAP string form, positions of the ephemeral constants)``: the string alone
        would bring those back as fixed constants, which ``mut_const`` cannot change, and a
        resumed run would vary differently."""
        return str(tree), tuple(i for i, node in enumerate(tree)
                                if isinstance(type(node), gp.MetaEphemeral))

    def decode(self, row: tuple[str, tuple[int, ...]], weights):
        """The tree of an :meth:`encode` row, its ephemeral constants restored as such."""
        _check_weights(weights)
        text, ephemerals = row
        tree = parse_rule(text)
        cls = _ephemeral_class()
        for i in ephemerals:
            node = cls.__new__(cls)      # an ephemeral holding the saved value (no new draw)
            node.value = tree[i].value
            tree[i] = node
        return tree

    @property
    def phenotypes(self) -> RuleSpace:
        """:class:`RuleSpace` (the evaluator runs the rule source)."""
        return RuleSpace()

    def phenotype(self, tree) -> Phenotype:
        """The code policy running the rule (no engine knobs or layout)."""
        return Phenotype(rule_policy(tree_source(tree)))

    def describe(self, tree) -> dict:
        """``{"rule": DEAP form, "source": code policy}``."""
        return {"rule": str(tree), "source": tree_source(tree)}

    def champion(self, tree, out: Path) -> tuple[dict, str]:
        """Write ``champion_score.py``; the bundle running it and its source."""
        Path(out).mkdir(parents=True, exist_ok=True)
        return champion_files(tree, out), tree_source(tree)


def champion_files(tree, out: Path) -> dict:
    """Write ``champion_score.py`` (the rule as a code policy) into ``out``; return the bundle
    mapping (``routing: {policy: code, code_path: champion_score.py}``, the other families at
    their defaults) that ``blis run --policy-config champion.yaml`` runs."""
    atomic_write(Path(out) / "champion_score.py", tree_source(tree))
    d = PolicyConfig()
    return {"admission": {"policy": d.admission},
            "routing": {"policy": "code", "code_path": "champion_score.py"},
            "priority": {"policy": d.priority}, "scheduler": d.scheduler}
