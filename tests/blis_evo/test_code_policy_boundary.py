"""Code policies at the boundaries: ``blis run --*-policy code:PATH``, bundle ``code_path`` and
the Python evaluation API (what the OpenEvolve/GEPA adapters call)."""
from __future__ import annotations

import json

import pytest
import yaml

import blis_evo.api as api
from blis_evo import cli
from blis_evo.bundle import load_policy_bundle
from blis_evo.settings import policy_from_bundle
from search.evaluate import evaluate as evaluate_policy
from simulator import PolicyConfig, ScorerSpec
from simulator.errors import InputError

MODEL = ["--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100", "--tp", "1",
         "--vllm-version", "vllm/vllm-openai:v0.8.4"]
RUN = ["run", *MODEL, "--num-instances", "3", "--num-requests", "60", "--rate", "40",
       "--prefix-tokens", "64"]
SCORE = ("def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks, "
         "prefix_match, cache_hit_rate):\n")
QUEUE_DEPTH = SCORE + "    return -(queue_depth + batch_size + pending)\n"


def _write(path, text):
    path.write_text(text)
    return path


def _run(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_code_routing_run_matches_the_queue_depth_scorer(tmp_path, capsys):
    policy = _write(tmp_path / "qd.py", QUEUE_DEPTH)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert _run(RUN + ["--routing-policy", f"code:{policy}", "--results-path", str(a)], capsys)[0] == 0
    assert _run(RUN + ["--routing-policy", "weighted", "--routing-scorers", "queue-depth:1",
                       "--results-path", str(b)], capsys)[0] == 0
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert da["requests"] == db["requests"]
    assert da["anomalies"]["code_policy_nonfinite"] == 0
    assert "code_policy_nonfinite" not in db["anomalies"]


@pytest.mark.parametrize("source, expected", [
    (SCORE + "    import os\n    return 1\n", "bad.py:2: import is not allowed in a code policy"),
    (SCORE + "    while True:\n        pass\n    return 1\n", "bad.py:2: while loop is not allowed"),
    ("def score(x):\n    return x\n", "bad.py:1: function score(x) is not the routing code policy signature"),
])
def test_rejected_code_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, source, expected):
    policy = _write(tmp_path / "bad.py", source)
    out = tmp_path / "r.json"
    code, err = _run(RUN + ["--routing-policy", f"code:{policy}", "--results-path", str(out)], capsys)
    assert code == 2 and not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("flag, value, expected", [
    ("--routing-policy", "code:", "--routing-policy: code:PATH needs the path"),
    ("--admission-policy", "code:/no/such/file.py", "--admission-policy: code policy: cannot read /no/such/file.py"),
    ("--routing-policy", "code", "unknown routing policy 'code'; valid: "),
    ("--scheduler", "code:x.py", "--scheduler: unknown scheduler"),
])
def test_bad_code_policy_flags_exit_2(tmp_path, capsys, flag, value, expected):
    out = tmp_path / "r.json"
    code, err = _run(RUN + [flag, value, "--results-path", str(out)], capsys)
    assert code == 2 and not out.exists() and expected in err and len(err.strip().splitlines()) == 1


def test_wrong_kind_is_rejected(tmp_path, capsys):
    policy = _write(tmp_path / "qd.py", QUEUE_DEPTH)  # a score() given as a priority policy
    code, err = _run(RUN + ["--priority-policy", f"code:{policy}"], capsys)
    assert code == 2 and "is not the priority code policy signature" in err


def test_bundle_code_path_is_relative_to_the_bundle_folder(tmp_path, monkeypatch):
    sub = tmp_path / "policies"
    sub.mkdir()
    _write(sub / "qd.py", QUEUE_DEPTH)
    _write(sub / "adm.py", "def admit(input_tokens, queue_depth, batch_size, pending, "
                           "kv_utilization, num_instances):\n    return input_tokens < 4000\n")
    bundle = _write(sub / "b.yaml", "routing: {policy: code, code_path: qd.py}\n"
                                    "admission: {policy: code, code_path: adm.py}\n")
    monkeypatch.chdir(tmp_path)  # not the bundle's folder
    policy = policy_from_bundle(load_policy_bundle(str(bundle)))
    assert (policy.routing, policy.admission, policy.priority) == ("code", "code", "constant")
    assert policy.routing_code.kind == "routing" and policy.admission_code.kind == "admission"
    assert policy.routing_code.path == str(sub / "qd.py")


@pytest.mark.parametrize("text, expected", [
    ("routing: {policy: code}\n", "routing.code_path: required with policy: code"),
    ("routing: {policy: weighted, code_path: qd.py}\n", "routing.code_path: only used with policy: code"),
    ("scheduler: code\n", "scheduler: unknown scheduler"),
    ("routing: {policy: cod}\n", "code (with code_path)"),
    ("priority: {policy: code, code_path: missing.py}\n",
     "policy-config priority.code_path: code policy: cannot read "),
])
def test_bad_bundle_code_policies_are_one_line_errors(tmp_path, text, expected):
    bundle = _write(tmp_path / "b.yaml", text)
    with pytest.raises(InputError) as err:
        policy_from_bundle(load_policy_bundle(str(bundle)))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_api_evaluates_a_code_policy_bundle_like_the_builtin(small_experiment, tmp_path):
    path, exp = small_experiment(num_requests=120)
    _write(tmp_path / "qd.py", QUEUE_DEPTH)
    bundle = _write(tmp_path / "b.yaml", yaml.safe_dump({"routing": {"policy": "code",
                                                                      "code_path": "qd.py"}}))
    got = api.evaluate(str(bundle), str(path), seeds=[3])
    want = evaluate_policy(PolicyConfig(routing="weighted", scorers=(ScorerSpec("queue-depth", 1.0),)),
                           exp, [3])
    assert got.fitness == want.fitness
    assert got.mean.code_nonfinite == 0.0
    assert got.per_seed[0].measures.p99_ttft_ms == want.per_seed[0].measures.p99_ttft_ms


def test_shipped_code_routing_example_loads():
    from pathlib import Path

    import blis_evo

    example = Path(blis_evo.__file__).parent / "data" / "examples" / "code-routing.yaml"
    policy = policy_from_bundle(load_policy_bundle(str(example)))
    assert policy.routing == "code" and "prefix_match" in policy.routing_code.reads
