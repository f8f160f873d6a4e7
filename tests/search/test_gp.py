"""GP-evolved routing rules (search.gp, ``python -m search.evolve --genome gp``); the loop
itself (determinism, elitism, resume) is tested with every algorithm in test_loop.py."""
from __future__ import annotations

import json
import math
import random

import pytest
from deap import gp
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_evo import cli
from blis_evo.bundle import load_policy_bundle
from blis_evo.settings import policy_from_bundle
from search.evolve import main
from search.gp import (FEATURES, SEED_RULES, RuleTrees, _random_tree, _toolbox, parse_rule,
                       primitive_set, tree_source)
from search.selection import deap_random
from simulator.codepolicy import compiled, load_code_policy

_PY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
       "pdiv": lambda a, b: a / b if abs(b) > 1e-9 else 1.0, "min": min, "max": max,
       "neg": lambda a: -a, "if_then_else": lambda c, a, b: a if c else b,
       "lt": lambda a, b: a < b, "gt": lambda a, b: a > b, "and_": lambda a, b: a and b,
       "or_": lambda a, b: a or b, "not_": lambda a: not a}


def _interpret(tree, env):
    """Evaluate a DEAP tree directly (independent of the generated source)."""
    pos = 0

    def ev():
        nonlocal pos
        node = tree[pos]
        pos += 1
        if node.arity == 0:
            return env[node.value] if isinstance(node.value, str) else node.value
        args = [ev() for _ in range(node.arity)]
        return _PY[node.name](*args)

    return float(ev())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       xs=st.lists(st.floats(0, 50, allow_nan=False), min_size=9, max_size=9))
def test_random_trees_round_trip_through_the_sandbox(seed, xs):
    tb = _toolbox()
    with deap_random(random.Random(seed)):
        tree = _random_tree(tb)
    src = tree_source(tree)
    policy = load_code_policy(src, "routing", "gp.py")   # accepted by the sandbox
    want = _interpret(tree, dict(zip(FEATURES, xs)))
    got = compiled(policy).ctypes(*xs)
    if math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
    # the docstring keeps the DEAP form: the file parses back to the same tree
    line = next(ln for ln in src.splitlines() if ln.startswith("DEAP tree: "))
    assert str(parse_rule(line[len("DEAP tree: "):])) == str(tree)


def test_deap_operators_leave_the_global_random_untouched():
    random.seed(123)
    before = random.getstate()
    with deap_random(random.Random(1)):
        _random_tree(_toolbox())
    assert random.getstate() == before


def test_seed_rules_are_valid_code_policies():
    for rule in SEED_RULES:
        load_code_policy(tree_source(parse_rule(rule)), "routing")


def test_checkpoint_rows_keep_ephemeral_constants_mutable():
    """A tree rebuilt from its checkpoint row equals the original node for node, ephemeral
    constants included (the string form alone would fix them), so it mutates the same way."""
    rep, tb = RuleTrees(), _toolbox()
    with deap_random(random.Random(7)):
        trees = [_random_tree(tb) for _ in range(40)]
    with_constants = [t for t in trees if any(isinstance(type(n), gp.MetaEphemeral) for n in t)]
    assert with_constants
    for tree in with_constants:
        back = rep.decode(rep.encode(tree), (1.0,))
        assert [type(n) for n in back] == [type(n) for n in tree] and str(back) == str(tree)
        mutated = []
        for t in (tree, back):
            with deap_random(random.Random(1)):
                mutated.append(str(tb.mut_const(tb.clone(t))[0]))
        assert mutated[0] == mutated[1] != str(tree)


def test_evolve_gp_end_to_end_writes_a_runnable_champion(small_experiment, tmp_path, capsys):
    path, exp = small_experiment(num_requests=100)
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["--experiment", str(path), "--genome", "gp", "--generations", "1",
                     "--workers", "1", "--out", str(out), "--no-progress", "--seed", "4"]) == 0
        outs.append(out)
    a, b = outs
    for name in ("champion.yaml", "champion_score.py", "hall_of_fame.json", "logbook.csv",
                 "report.md", "heldout.json", "checkpoint.pkl"):
        assert (a / name).exists(), name
    # determinism: the same seed gives the same champion and held-out figures
    assert (a / "champion_score.py").read_text() == (b / "champion_score.py").read_text()
    assert (a / "heldout.json").read_text() == (b / "heldout.json").read_text()
    report = (a / "report.md").read_text()
    assert "| llm-d-default |" in report and "def score(" in report
    hof = json.loads((a / "hall_of_fame.json").read_text())
    assert hof[0]["source"] == (a / "champion_score.py").read_text()
    # the bundle runs the rule, and blis run accepts the file directly
    policy = policy_from_bundle(load_policy_bundle(str(a / "champion.yaml")))
    assert policy.routing == "code" and policy.routing_code.source == hof[0]["source"]
    capsys.readouterr()
    assert cli.main(["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--num-instances", "2",
                     "--num-requests", "20", "--rate", "10",
                     "--routing-policy", f"code:{a / 'champion_score.py'}"]) == 0


def test_gp_rejects_multi_objective_experiments(small_experiment, tmp_path, capsys):
    path, _ = small_experiment(
        objectives={"mode": "multi", "primary": "p99_ttft", "weights": {"p99_ttft": 1.0},
                    "multi": [{"key": "p99_ttft", "direction": "min"},
                              {"key": "throughput", "direction": "max"}]})
    assert main(["--experiment", str(path), "--genome", "gp", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    assert "--genome gp needs a single-objective" in capsys.readouterr().err


def test_primitive_set_is_typed_over_the_routing_features():
    ps = primitive_set()
    assert tuple(ps.arguments) == FEATURES
    assert {p.name for p in ps.primitives[bool]} == {"lt", "gt", "and_", "or_", "not_"}


def test_api_evolve_knows_the_gp_genome():
    import blis_evo.api as api

    with pytest.raises(ValueError, match="genome"):
        api.evolve("default", genome="tree")
