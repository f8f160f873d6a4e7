"""Experiment YAML loading (strict errors, embedded default) and policy evaluation."""
from __future__ import annotations

import math

import pytest
import yaml

from blis_evo.baselines import BASELINES, PATHOLOGICAL
from blis_evo.deployment import experiment_workload
from blis_evo.experiment import (DEFAULT_EXPERIMENT_PATH, default_experiment_text,
                                 default_experiment, load_experiment)
from blis_evo.scorers import parse_scorers
from search.evaluate import evaluate
from simulator.config import PolicyConfig
from simulator.errors import InputError


def _doc():
    return yaml.safe_load(default_experiment_text())


def _write(tmp_path, doc):
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_default_loads():
    exp = default_experiment()
    assert exp.name == "default"
    assert exp.cluster.num_instances == 4 and exp.cluster.tp == 1
    assert exp.cluster.hardware == "H100"
    assert exp.workload.kind == "spec" and exp.workload.spec is not None
    assert len(exp.seeds.train) == 3 and len(exp.seeds.heldout) == 5
    assert exp.objectives.primary == "p99_ttft"
    assert isinstance(exp.search_space, dict) and "routing" in exp.search_space
    {exp: 1}  # hashable: keys workload caches


def test_documented_default_file_is_the_shipped_one():
    from blis_evo.experiment import DEFAULT_EXPERIMENT_FILE

    assert DEFAULT_EXPERIMENT_PATH.resolve() == DEFAULT_EXPERIMENT_FILE
    assert load_experiment(DEFAULT_EXPERIMENT_PATH) == default_experiment()


def test_kv_blocks_default_from_defaults_yaml(tmp_path):
    doc = _doc()
    del doc["cluster"]["total_kv_blocks"]
    assert load_experiment(_write(tmp_path, doc)).cluster.total_kv_blocks == 29205


def test_trained_physics_cluster(tmp_path):
    from simulator.latency import resolve_latency
    doc = _doc()
    del doc["cluster"]["total_kv_blocks"]
    del doc["cluster"]["vllm_version"]
    doc["cluster"].update(model="mistralai/mixtral-8x7b-v0.1", tp=2, dp=2,
                          latency_model="trained-physics")
    c = load_experiment(_write(tmp_path, doc)).cluster
    ref = resolve_latency(model="mistralai/mixtral-8x7b-v0.1", hardware="H100", tp=2, dp=2,
                          latency_model="trained-physics")
    assert c.latency == ref.config and c.latency.kind == "trained-physics"
    assert c.total_kv_blocks == ref.total_kv_blocks > 0  # sized from GPU memory
    doc["cluster"]["total_kv_blocks"] = 5000
    assert load_experiment(_write(tmp_path, doc)).cluster.total_kv_blocks == 5000


def test_default_experiment_digest_ignores_the_latency_model_key(tmp_path):
    from blis_evo.experiment import experiment_digest
    doc = _doc()
    doc["cluster"]["latency_model"] = "auto"
    same = load_experiment(_write(tmp_path, doc))
    assert experiment_digest(same) == experiment_digest(default_experiment())


@pytest.mark.parametrize("key, value, needle", [
    ("latency_model", "roofline", "auto, trained-physics"),
    ("dp", 2, "--dp > 1"),
    ("gpu_memory_utilization", 0, "gpu_memory_utilization"),
    ("moe_comm_backend", "nccl", "pplx"),
])
def test_bad_latency_keys(tmp_path, key, value, needle):
    doc = _doc()
    doc["cluster"][key] = value
    with pytest.raises(InputError) as exc:
        load_experiment(_write(tmp_path, doc))
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def _set(doc, path, value):
    *head, last = path
    node = doc
    for k in head:
        node = node[k]
    if value is _DEL:
        del node[last]
    else:
        node[last] = value


_DEL = object()

BAD = [
    (("bogus",), 1, "bogus is not a known key"),
    (("cluster", "num_instances"), 0, "cluster.num_instances must be >= 1"),
    (("cluster", "tp"), "one", "cluster.tp must be an integer"),
    (("cluster", "colour"), "red", "cluster.colour is not a known key"),
    (("cluster", "hardware"), "TPU9", "cluster has no usable latency model"),
    (("workload", "preset"), "bursty", "workload must give exactly one of spec, preset, trace"),
    (("workload", "num_requests"), _DEL, "workload.num_requests is required"),
    (("workload", "rate"), -3, "workload.rate must be > 0"),
    (("workload", "trace"), None, None),  # placeholder replaced below
    (("seeds", "train"), [], "seeds.train must be a non-empty list"),
    (("seeds", "heldout"), [1, 200], "seeds.heldout must not share seeds"),
    (("search_space",), [1, 2], "search_space must be a mapping"),
    (("objectives", "mode"), "both", "objectives.mode must be one of single, multi"),
    (("objectives", "weights"), {"p42_ttft": 1}, "objectives.weights.p42_ttft is not a known metric"),
    (("penalties", "rejected_requests"), -1, "penalties.rejected_requests must be >= 0"),
    (("penalties", "typo"), 1, "penalties.typo is not a known key"),
    (("search", "algorithm"), "pso", "search.algorithm must be one of ga, nsga2"),
    (("search", "cxpb"), 1.5, "search.cxpb must be <= 1"),
    (("search", "population"), 1, "search.population must be >= 2"),
    (("search", "workers"), "many", "search.workers must be an integer"),
]
BAD = [b for b in BAD if b[2] is not None]


@pytest.mark.parametrize("path,value,expected", BAD, ids=[".".join(b[0]) for b in BAD])
def test_bad_yaml_one_line_error(tmp_path, path, value, expected):
    doc = _doc()
    _set(doc, path, value)
    p = _write(tmp_path, doc)
    with pytest.raises(InputError) as ei:
        load_experiment(p)
    msg = str(ei.value)
    assert "\n" not in msg
    assert expected in msg, msg
    assert msg.startswith(str(p))


def test_bad_inline_spec_names_key(tmp_path):
    doc = _doc()
    doc["workload"]["spec"]["clients"][0]["arrival"]["cv"] = -1
    with pytest.raises(InputError, match=r"clients\[0\]\.arrival\.cv"):
        load_experiment(_write(tmp_path, doc))


def test_missing_spec_file_and_relative_path(tmp_path):
    doc = _doc()
    spec = doc["workload"]["spec"]
    (tmp_path / "wl.yaml").write_text(yaml.safe_dump(spec))
    doc["workload"]["spec"] = "wl.yaml"
    exp = load_experiment(_write(tmp_path, doc))
    assert exp.workload.spec == default_experiment().workload.spec
    doc["workload"]["spec"] = "nope.yaml"
    with pytest.raises(InputError, match="workload.spec"):
        load_experiment(_write(tmp_path, doc))


def test_nsga2_needs_multi(tmp_path):
    doc = _doc()
    doc["search"]["algorithm"] = "nsga2"
    with pytest.raises(InputError, match="search.algorithm"):
        load_experiment(_write(tmp_path, doc))
    doc["objectives"] = {"mode": "multi", "weights": {"p99_ttft": 1},
                         "multi": [{"key": "p99_ttft", "direction": "min"},
                                   {"key": "throughput", "direction": "max"}]}
    exp = load_experiment(_write(tmp_path, doc))
    ev = evaluate(BASELINES["round-robin"], exp, exp.seeds.train[:1])
    assert len(ev.objectives) == 2 and ev.objectives[0] < 0 < ev.objectives[1]


def test_workload_memoised_common_random_numbers():
    exp = default_experiment()
    a = experiment_workload(exp, 1)
    assert experiment_workload(exp, 1) is a
    assert a.num_requests == exp.workload.num_requests
    assert experiment_workload(exp, 2).arrival_us.tolist() != a.arrival_us.tolist()


def test_evaluate_deterministic():
    exp = default_experiment()
    a = evaluate(BASELINES["llm-d-default"], exp, exp.seeds.train)
    b = evaluate(BASELINES["llm-d-default"], exp, exp.seeds.train)
    assert a == b
    assert len(a.raw) == len(exp.seeds.train)
    assert a.objectives == (a.fitness,)


def test_pathological_ranks_below_round_robin():
    exp = default_experiment()
    rr = evaluate(BASELINES["round-robin"], exp, exp.seeds.train)
    bad = evaluate(PATHOLOGICAL, exp, exp.seeds.train)
    assert bad.fitness < rr.fitness
    assert bad.penalty > rr.penalty
    assert bad.mean.rates.priority_inversions > 0
    assert bad.mean.measures.p99_ttft_ms > rr.mean.measures.p99_ttft_ms


def test_penalties_stop_a_request_shedding_policy_from_winning():
    """A token bucket that rejects most traffic has a far better raw latency score than any
    work-conserving policy; only the rejection penalty ranks it below round-robin."""
    exp = default_experiment()
    shed = PolicyConfig(routing="weighted", scorers=parse_scorers("prefix-affinity:5,queue-depth:1"),
                        admission="token-bucket", params=(("token_bucket_capacity", 5000),
                        ("token_bucket_refill_rate", 20000)))
    seeds = exp.seeds.train[:1]
    rr = evaluate(BASELINES["round-robin"], exp, seeds)
    llmd = evaluate(BASELINES["llm-d-default"], exp, seeds)
    ev = evaluate(shed, exp, seeds)
    assert ev.mean.rates.rejected_requests > 0.5
    assert ev.mean.score > llmd.mean.score > rr.mean.score
    assert ev.fitness < rr.fitness
    assert math.isclose(ev.fitness, ev.mean.score * math.exp(-ev.penalty), rel_tol=1e-12)


@pytest.mark.parametrize("path", sorted(p for p in DEFAULT_EXPERIMENT_PATH.parent.glob("*.yaml")
                                        if not p.name.startswith("jobs-")),  # batch jobs files
                         ids=lambda p: p.name)
def test_shipped_experiments_load(path):
    exp = load_experiment(path)
    assert exp.seeds.train and exp.seeds.heldout
    assert not set(exp.seeds.train) & set(exp.seeds.heldout)
