"""Code policies: the sandbox allowlist, compiled behaviour against CPython and against the
equivalent built-in policies, determinism and the NaN/inf count."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import LatencyConfig, PolicyConfig, ScorerSpec, SimConfig, run
from simulator.codepolicy import (KINDS, CodePolicyError, compiled, load_code_policy)
from simulator.workload.types import workload_from_lists

SCORE = "def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks, prefix_match, cache_hit_rate):\n"
SCORE_ALL = SCORE.replace("cache_hit_rate)", "cache_hit_rate, slo_priority, tenant_share)")
ADMIT = "def admit(input_tokens, queue_depth, batch_size, pending, kv_utilization, num_instances):\n"
PRIO = "def priority(age, input_tokens, preemptions, queue_depth, batch_size, kv_utilization):\n"


def body(header: str, *lines: str) -> str:
    return header + "".join(f"    {ln}\n" for ln in lines)


ACCEPTED = [
    ("routing", body(SCORE, "return -(queue_depth + batch_size + pending)")),
    ("routing", "import math\n\n\n" + body(SCORE, '"""doc"""', "x = math.sqrt(queue_depth + 1.0)",
                                          "y = math.log1p(free_kv_blocks) * math.pi",
                                          "return 3 * prefix_match - x + y / 100")),
    ("routing", body(SCORE, "if kv_utilization > 0.9 and not prefix_match >= 0.5:",
                     "    return -1e9", "elif queue_depth == 0:", "    return 1.0",
                     "else:", "    return max(prefix_match, cache_hit_rate, 0.1) - abs(pending)")),
    ("routing", body(SCORE, "acc = 0.0", "for i in range(10):", "    for j in range(2, 50, 2):",
                     "        acc += (i * j) % 7", "        if acc > 100:", "            break",
                     "return acc if queue_depth < 3 else -acc")),
    ("routing", body(SCORE, "s = queue_depth ** 2 // 3", "s -= batch_size", "pass",
                     "return min(s, math.inf) + math.floor(math.exp(-pending))")),
    ("routing", "def score(queue_depth: float, batch_size: float, pending: float, kv_utilization: float, "
                "free_kv_blocks: float, prefix_match: float, cache_hit_rate: float) -> float:\n"
                "    return 1 if queue_depth < batch_size else 0\n"),
    ("admission", body(ADMIT, "return queue_depth / num_instances < 50 or input_tokens < 100")),
    ("admission", body(ADMIT, "return True")),
    ("priority", body(PRIO, "return age - input_tokens / 1000 + 10 * preemptions")),
]


@pytest.mark.parametrize("kind, source", ACCEPTED)
def test_legitimate_policies_are_accepted_and_compile(kind, source):
    p = load_code_policy(source, kind, "ok.py")
    assert p.kind == kind and compiled(p) is not None


# (source, line, construct named in the message)
HOSTILE = [
    ("import os\n" + body(SCORE, "return 1"), 1, "import"),
    ("from math import sqrt\n" + body(SCORE, "return 1"), 1, "import"),
    (body(SCORE, "import math", "return 1"), 2, "import"),
    (body(SCORE, "f = open('/etc/passwd')", "return 1"), 2, "call to open()"),
    (body(SCORE, "return queue_depth.__class__"), 2, "attribute access .__class__"),
    (body(SCORE, "x = ().__class__.__bases__", "return 1"), 2, "attribute access .__bases__"),
    (body(SCORE, "return __builtins__"), 2, "dunder name '__builtins__'"),
    (body(SCORE, "while True:", "    pass", "return 1"), 2, "while loop"),
    (body(SCORE, "return score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks,"
                 " prefix_match, cache_hit_rate)"), 2, "call to score()"),
    (body(SCORE, "x = 0", "for i in range(10 ** 9):", "    x += 1", "return x"), 3, "loop bound"),
    (body(SCORE, "x = 0", "for i in range(100000):", "    x += 1", "return x"), 3,
     "loop of 100000 iterations"),
    (body(SCORE, "x = 0", "for i in range(100):", "    for j in range(100):", "        x += 1",
          "return x"), 4, "loop of 100 iterations"),
    (body(SCORE, "x = 0", "for i in range(int(queue_depth)):", "    x += 1", "return x"), 3,
     "loop bound"),
    (body(SCORE, "return math.os"), 2, "attribute access .os"),
    (body(SCORE, "return math.__dict__"), 2, "attribute access .__dict__"),
    (body(SCORE, "return getattr(math, 'sqrt')(4)"), 2, "call to getattr()"),
    (body(SCORE, "f = lambda x: x", "return 1"), 2, "lambda"),
    (body(SCORE, "exec('import os')", "return 1"), 2, "expression statement"),
    (body(SCORE, "return eval('1')"), 2, "call to eval()"),
    (body(SCORE, "return sum([x for x in range(3)])"), 2, "call to sum()"),
    (body(SCORE, "xs = [x for x in range(3)]", "return 1"), 2, "list comprehension"),
    (body(SCORE, "xs = [1, 2]", "return 1"), 2, "list"),
    (body(SCORE, "s = 'abc'", "return 1"), 2, "constant str"),
    (body(SCORE, "global g", "return 1"), 2, "global statement"),
    (body(SCORE, "return time()"), 2, "call to time()"),
    (body(SCORE, "return random()"), 2, "call to random()"),
    (body(SCORE, "print(1)", "return 1"), 2, "expression statement"),
    (body(SCORE, "return (x := 3)"), 2, "assignment expression"),
    (body(SCORE, "return undefined_name"), 2, "possibly unassigned name 'undefined_name'"),
    (body(SCORE, "return queue_depth in (1, 2)"), 2, "comparison In"),
    (body(SCORE, "try:", "    return 1", "except Exception:", "    return 2"), 2, "try statement"),
    (body(SCORE, "with open('x') as f:", "    return 1"), 2, "with statement"),
    (body(SCORE, "def g():", "    return 1", "return 1"), 2, "nested function"),
    ("x = 1\n" + body(SCORE, "return 1"), 1, "top-level"),
    ("@staticmethod\n" + body(SCORE, "return 1"), 2, "signature"),
    (body("def score(queue_depth):\n", "return 1"), 1, "signature"),
    (body(SCORE.replace("score", "scor"), "return 1"), 1, "signature"),
    (body(SCORE, "if queue_depth > 1:", "    return 1"), 1, "return on every path"),
    (body(SCORE, "return"), 2, "return without a value"),
    (body(SCORE, "return (1"), 2, "syntax error"),
    (body(SCORE, "return 1") + body(SCORE, "return 2"), 3, "exactly one function"),
]


@pytest.mark.parametrize("source, line, construct", HOSTILE)
def test_hostile_policies_are_rejected_with_line_and_construct(source, line, construct):
    with pytest.raises(CodePolicyError) as err:
        load_code_policy(source, "routing", "evil.py")
    msg = str(err.value)
    assert msg.startswith(f"evil.py:{line}: "), msg
    assert construct in msg and "\n" not in msg


def test_rejection_lists_the_allowlist():
    with pytest.raises(CodePolicyError, match=r"is not allowed in a code policy \(allowed: "
                                              r"arithmetic.*min/max/abs.*return\)$"):
        load_code_policy(body(SCORE, "while True:", "    pass", "return 1"), "routing", "p.py")


@pytest.mark.parametrize("lines", [
    ("if queue_depth > 1:", "    y = 1.0", "return y"),
    ("for i in range(3):", "    y = i", "return y"),
    ("for i in range(3):", "    pass", "return i"),
    ("if queue_depth > 1:", "    y = 1.0", "elif pending > 1:", "    return 2.0", "return y"),
])
def test_possibly_unassigned_names_are_rejected(lines):
    with pytest.raises(CodePolicyError, match=r"^p\.py:\d+: unknown or possibly unassigned name"):
        load_code_policy(body(SCORE, *lines), "routing", "p.py")


def test_names_assigned_on_every_path_are_accepted():
    load_code_policy(body(SCORE, "if queue_depth > 1:", "    y = 1.0", "elif pending:",
                          "    return 3.0", "else:", "    y = 2.0", "return y"), "routing")


def test_rejected_code_never_runs(tmp_path):
    marker = tmp_path / "ran"
    src = f"open({str(marker)!r}, 'w')\n" + body(SCORE, "return 1")
    with pytest.raises(CodePolicyError):
        load_code_policy(src, "routing")
    assert not marker.exists()


def test_same_canonical_source_shares_one_compiled_function():
    a = load_code_policy(body(SCORE, "return 1 + queue_depth"), "routing")
    b = load_code_policy(body(SCORE, "return 1+queue_depth  # spacing and comments differ"), "routing")
    c = load_code_policy(body(SCORE, "return 2 + queue_depth"), "routing")
    assert a.digest == b.digest and compiled(a) is compiled(b)
    assert c.digest != a.digest


# ---- compiled code computes what CPython computes (CPython is the independent oracle)

FEATURES = KINDS["routing"].features
_leaf = st.one_of(st.sampled_from([f.name for f in FEATURES]),
                  st.floats(-5, 5, allow_nan=False).map(lambda x: repr(round(x, 3))))


def _expr(children):
    bin_ = st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    fn = st.tuples(st.sampled_from(["min", "max"]), children, children).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})")
    un = st.tuples(st.sampled_from(["abs", "math.tanh", "math.atan"]), children).map(
        lambda t: f"{t[0]}({t[1]})")
    cond = st.tuples(children, children, children).map(
        lambda t: f"({t[0]} if {t[1]} < {t[2]} else -{t[0]})")
    return st.one_of(bin_, fn, un, cond)


@settings(max_examples=25, deadline=None)
@given(expr=st.recursive(_leaf, _expr, max_leaves=12),
       xs=st.lists(st.floats(0, 100, allow_nan=False), min_size=9, max_size=9))
def test_compiled_policy_agrees_with_python(expr, xs):
    src = "import math\n" + body(SCORE_ALL, f"return {expr}")
    p = load_code_policy(src, "routing")
    ns: dict = {}
    exec(src, ns)
    want = float(ns["score"](*xs))
    got = compiled(p).ctypes(*xs)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_ieee_semantics_instead_of_exceptions():
    p = load_code_policy(body(SCORE, "return queue_depth / batch_size"), "routing")
    assert compiled(p).ctypes(1.0, 0.0, 0, 0, 0, 0, 0, 0, 0) == math.inf
    assert math.isnan(compiled(p).ctypes(0.0, 0.0, 0, 0, 0, 0, 0, 0, 0))


# ---- in the engine


def _workload(n=240, seed=5):
    """A loaded 4-instance workload with shared prefixes (so prefix and load signals matter)."""
    rng = np.random.default_rng(seed)
    prefixes = [rng.integers(0, 50, 64).tolist() for _ in range(3)]
    arr, ins, outs, t = [], [], [], 0
    for _ in range(n):
        t += int(rng.integers(0, 4000))
        arr.append(t)
        ins.append(prefixes[int(rng.integers(0, 3))] + rng.integers(0, 50, int(rng.integers(1, 150))).tolist())
        outs.append(rng.integers(0, 50, int(rng.integers(1, 80))).tolist())
    return workload_from_lists(arr, ins, outs)


CFG = SimConfig(num_instances=4, total_kv_blocks=120, block_size=16, max_running_reqs=8,
                latency=LatencyConfig(alpha=(100.0, 1.0, 50.0), beta=(2000.0, 3.0, 8.0)))
PER_REQUEST = ("req_state", "req_instance", "routed_us", "queued_us", "scheduled_us",
               "first_token_us", "done_us", "ttft_us", "e2e_us", "preemptions")


def _same_requests(a, b):
    for name in PER_REQUEST:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def _code(kind, source):
    return load_code_policy(source, kind)


@pytest.mark.parametrize("code, builtin", [
    # argmax of -load = argmin of load, ties to the lowest index = the queue-depth scorer alone
    (body(SCORE, "return -(queue_depth + batch_size + pending)"), (ScorerSpec("queue-depth", 1.0),)),
    # 1 - snapshot utilisation
    (body(SCORE, "return 1.0 - kv_utilization"), (ScorerSpec("kv-utilization", 1.0),)),
])
def test_code_routing_equals_the_equivalent_weighted_scorer(code, builtin):
    wl = _workload()
    got = run(CFG, PolicyConfig(routing="code", routing_code=_code("routing", code)), wl)
    want = run(CFG, PolicyConfig(routing="weighted", scorers=builtin), wl)
    _same_requests(got, want)
    assert len(set(got.req_instance.tolist())) > 1 and got.code_nonfinite == 0


def test_prefix_match_keeps_each_shared_prefix_on_one_instance():
    """The router records its code-policy decisions in its prefix index: once a prefix group's
    first request is placed (least loaded), a dominant prefix_match term keeps the group there."""
    wl = _workload()
    sticky = _code("routing", body(SCORE, "return 1e6 * prefix_match - (queue_depth + batch_size + pending)"))
    res = run(CFG, PolicyConfig(routing="code", routing_code=sticky), wl)
    groups = {}
    for r in range(wl.num_requests):
        key = tuple(wl.tokens[wl.token_ptr[r]:wl.token_ptr[r] + 16])
        groups.setdefault(key, set()).add(int(res.req_instance[r]))
    assert len(groups) == 3 and all(len(v) == 1 for v in groups.values())
    assert len(set().union(*groups.values())) == 3
    # without the prefix term the same groups spread over instances
    load = _code("routing", body(SCORE, "return -(queue_depth + batch_size + pending)"))
    res = run(CFG, PolicyConfig(routing="code", routing_code=load), wl)
    assert len(set(res.req_instance.tolist())) == 4


def test_code_priority_equals_slo_based_and_admission_equals_builtins():
    wl = _workload()
    age = _code("priority", body(PRIO, "return age"))
    for sched in ("priority-fcfs", "reverse-priority"):
        got = run(CFG, PolicyConfig(scheduler=sched, priority="code", priority_code=age), wl)
        want = run(CFG, PolicyConfig(scheduler=sched, priority="slo-based"), wl)
        _same_requests(got, want)
    for src, name in (("return True", "always-admit"), ("return False", "reject-all")):
        got = run(CFG, PolicyConfig(admission="code", admission_code=_code("admission", body(ADMIT, src))), wl)
        want = run(CFG, PolicyConfig(admission=name), wl)
        _same_requests(got, want)
        assert (got.admitted, got.rejected) == (want.admitted, want.rejected)


def test_admission_sees_cluster_totals():
    wl = _workload()
    # admit only short prompts: exactly the requests with input_tokens < 100 are admitted
    short = _code("admission", body(ADMIT, "return input_tokens < 100"))
    res = run(CFG, PolicyConfig(admission="code", admission_code=short), wl)
    assert res.admitted == int(np.sum(wl.n_in < 100)) and res.rejected == int(np.sum(wl.n_in >= 100))
    # a cap on queued work per instance rejects something under this load, and not everything
    cap = _code("admission", body(ADMIT, "return (queue_depth + pending) / num_instances < 2"))
    res = run(CFG, PolicyConfig(admission="code", admission_code=cap), wl)
    assert 0 < res.rejected < wl.num_requests


def test_code_policy_runs_are_deterministic():
    wl = _workload()
    src = body(SCORE, "return 2 * prefix_match - 0.3 * math.sqrt(queue_depth + batch_size) - kv_utilization")
    pol = PolicyConfig(routing="code", routing_code=_code("routing", "import math\n" + src))
    a, b = run(CFG, pol, wl), run(CFG, pol, wl)
    _same_requests(a, b)


def test_nan_scores_are_lowest_and_counted():
    wl = _workload(n=60)
    # NaN everywhere: every candidate counts once per decision; all ties -> instance 0
    nan = _code("routing", body(SCORE, "return 0.0 * (queue_depth - queue_depth) / 0.0"))
    res = run(CFG, PolicyConfig(routing="code", routing_code=nan), wl)
    assert res.code_nonfinite == 60 * CFG.num_instances
    assert set(res.req_instance.tolist()) == {0}
    # NaN only for instance-0-like candidates with an empty queue never wins over a finite score
    some = _code("routing", body(SCORE, "return math.nan if queue_depth + batch_size + pending == 0 else -queue_depth")
                 .replace("math.nan", "(0.0 / 0.0)"))
    res = run(CFG, PolicyConfig(routing="code", routing_code=some), wl)
    assert res.code_nonfinite > 0


def test_nan_priorities_are_counted():
    wl = _workload()
    bad = _code("priority", body(PRIO, "return age / 0.0 - age / 0.0"))
    res = run(CFG, PolicyConfig(scheduler="priority-fcfs", priority="code", priority_code=bad), wl)
    assert res.code_nonfinite > 0


def test_code_name_without_code_policy_is_a_programming_error():
    with pytest.raises(ValueError, match="routing_code"):
        run(CFG, PolicyConfig(routing="code"), _workload(n=4))


_PURE_SCRIPT = r'''
import json, numpy as np
from simulator import run, SimConfig, PolicyConfig, LatencyConfig
from simulator.codepolicy import load_code_policy
from simulator.workload.types import workload_from_lists
rng = np.random.default_rng(7)
arr, ins, outs, t = [], [], [], 0
for i in range(30):
    t += int(rng.integers(0, 20000)); arr.append(t)
    ins.append(rng.integers(0, 4, int(rng.integers(1, 120))).tolist()); outs.append(rng.integers(0, 4, int(rng.integers(0, 30))).tolist())
wl = workload_from_lists(arr, ins, outs)
cfg = SimConfig(num_instances=3, total_kv_blocks=40, block_size=8, max_running_reqs=4, max_scheduled_tokens=96,
                latency=LatencyConfig(alpha=(100.0, 1.0, 50.0), beta=(1000.0, 2.0, 5.0)))
S="def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks, prefix_match, cache_hit_rate):\n    return 2*prefix_match - queue_depth - kv_utilization\n"
P="def priority(age, input_tokens, preemptions, queue_depth, batch_size, kv_utilization):\n    return age - input_tokens/100\n"
A="def admit(input_tokens, queue_depth, batch_size, pending, kv_utilization, num_instances):\n    return input_tokens < 100\n"
pol = PolicyConfig(routing="code", routing_code=load_code_policy(S,"routing"), scheduler="priority-fcfs", priority="code", priority_code=load_code_policy(P,"priority"), admission="code", admission_code=load_code_policy(A,"admission"))
res = run(cfg, pol, wl)
print(json.dumps([res.req_instance.tolist(), [None if x!=x else x for x in res.ttft_us.tolist()], res.rejected, res.code_nonfinite]))
'''


def test_code_policies_run_identically_with_the_jit_disabled():
    """All three code-policy kinds give the compiled result in plain Python (NUMBA_DISABLE_JIT)."""
    root = Path(__file__).resolve().parents[2]
    outs = []
    for disable in ("0", "1"):
        env = {**os.environ, "NUMBA_DISABLE_JIT": disable}
        env.setdefault("NUMBA_CACHE_DIR", str(root / ".numba_cache"))
        proc = subprocess.run([sys.executable, "-c", _PURE_SCRIPT], capture_output=True, text=True,
                              env=env, cwd=root, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout.strip().splitlines()[-1])
    assert outs[0] == outs[1]
    instances, _, rejected, _ = json.loads(outs[0])
    assert rejected > 0 and len(set(instances) - {-1}) == 3
