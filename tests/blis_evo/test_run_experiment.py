"""``blis run --experiment E --seed S``: one simulation of a search experiment, checkable
against the search's own evaluation.

The reference numbers come from ``search.evaluate.evaluate`` (the code path the search scores
individuals with) and, per request, from the SimResult of the search's SimConfig and workload;
aggregates are also recomputed here from the per-request rows of the results file.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import simulator
from blis_evo import cli
from blis_evo.baselines import BASELINES
from blis_evo.deployment import build_sim_config, experiment_workload
from blis_evo.experiment import (DEFAULT_EXPERIMENT_PATH, default_experiment_text,
                                 default_experiment, load_experiment)
from blis_evo.flags import experiment_compatible, parse_run_args, run_flags
from blis_evo.settings import resolve_run_settings
from search.evaluate import evaluate
from blis_evo.phenotype import Phenotype
from search.genome import GeneSpace, bundle_dict
from simulator.config import DEFAULT_SCORERS
from simulator.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 7


def small_experiment_doc(num_requests: int = 200, **cluster) -> dict:
    """The default experiment with a small workload and small seed lists."""
    doc = yaml.safe_load(default_experiment_text())
    doc["workload"]["num_requests"] = num_requests
    doc["seeds"] = {"train": [1, 2], "heldout": [3]}
    doc["cluster"].update(cluster)
    return doc


@pytest.fixture(scope="module")
def exp_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exp") / "small.yaml"
    path.write_text(yaml.safe_dump(small_experiment_doc(), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def exp(exp_path):
    return load_experiment(exp_path)


def champion(exp, rng_seed: int, directory: Path):
    """A random genome of the experiment's space: (its phenotype, bundle file path)."""
    space = GeneSpace(exp.search_space)
    genome = space.random_genome(np.random.default_rng(rng_seed))
    phenotype = space.phenotype(genome)
    path = directory / f"champion-{rng_seed}.yaml"
    path.write_text(yaml.safe_dump(bundle_dict(phenotype), sort_keys=False))
    return phenotype, path


def run_main(argv, capsys):
    """``blis <argv>`` in-process: (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_matches_search(doc: dict, phenotype: Phenotype, exp, seed: int) -> None:
    """The results file equals the search's evaluation of ``phenotype`` on ``seed``."""
    raw = evaluate(phenotype, exp, [seed]).raw[0]
    # aggregates as the search computed them (RawMetrics is in µs)
    assert doc["ttft_p99_ms"] == pytest.approx(raw.ttft.p99 / 1000.0, rel=1e-12)
    assert doc["e2e_mean_ms"] == pytest.approx(raw.e2e.mean / 1000.0, rel=1e-12)
    # per request, against the search's SimConfig + workload for the seed
    res = simulator.run(build_sim_config(exp, seed, phenotype), phenotype.policy,
                        experiment_workload(exp, seed))
    rows = {r["requestID"]: r for r in doc["requests"]}
    routed = np.flatnonzero(np.asarray(res.req_instance) >= 0)
    assert len(rows) == routed.size > 0
    for i in routed:
        row = rows[f"request_{int(i)}"]
        ttft, e2e = float(res.ttft_us[i]), float(res.e2e_us[i])
        assert row["ttft_ms"] == pytest.approx(0.0 if np.isnan(ttft) else ttft / 1e3, rel=1e-12)
        assert row["e2e_ms"] == pytest.approx(0.0 if np.isnan(e2e) else e2e / 1e3, rel=1e-12)
        assert row["handled_by"] == f"instance_{int(res.req_instance[i])}"
    # and the aggregates recomputed from the rows (all requests complete: no horizon)
    ttft_rows = np.array([r["ttft_ms"] for r in doc["requests"]])
    e2e_rows = np.array([r["e2e_ms"] for r in doc["requests"]])
    assert (ttft_rows > 0).all() and (e2e_rows > 0).all()
    assert float(np.mean(e2e_rows)) == pytest.approx(raw.e2e.mean / 1000.0, rel=1e-9)
    assert float(np.percentile(ttft_rows, 99)) == pytest.approx(raw.ttft.p99 / 1000.0, rel=1e-9)


# ------------------------------------------------------------------------- numbers = the search's


# rng 3: prefix-affinity routing; rng 4: weighted (2 scorers) + token bucket + sjf + slo-based
@pytest.mark.parametrize("rng_seed", [3, 4])
def test_champion_run_equals_search_evaluation(exp, exp_path, tmp_path, capsys, rng_seed):
    phenotype, bundle = champion(exp, rng_seed, tmp_path)
    assert {k for k, _ in phenotype.knob_items()} == {"snapshot_refresh_interval",
                                                      "long_prefill_token_threshold"}
    # guard: these engine knobs change the outcome, so dropping them would fail the check below
    assert evaluate(phenotype.policy, exp, [SEED]).raw[0].ttft.p99 != \
        evaluate(phenotype, exp, [SEED]).raw[0].ttft.p99
    results = tmp_path / "r.json"
    code, out, err = run_main(["run", "--experiment", str(exp_path), "--seed", str(SEED),
                               "--policy-config", str(bundle), "--results-path", str(results),
                               "--fitness-weights", "p99_ttft:0.7,mean_e2e:0.3"], capsys)
    assert code == 0, err
    assert "=== Simulation Metrics ===" in out and '"instance_id": "cluster"' in out
    assert "=== Fitness Evaluation ===" in out
    doc = json.loads(results.read_text())
    assert "fitness" in doc and set(doc["fitness"]["components"]) == {"p99_ttft", "mean_e2e"}
    assert "slo_attainment" in doc  # the experiment's spec declares SLO targets
    assert_matches_search(doc, phenotype, exp, SEED)


def test_fresh_process_gives_the_same_numbers(exp, exp_path, tmp_path):
    """The check a user runs: ``python -m blis_evo run ...`` in a new process."""
    phenotype, bundle = champion(exp, 5, tmp_path)
    results = tmp_path / "r.json"
    env = {"NUMBA_CACHE_DIR": str(REPO_ROOT / ".numba_cache"), "PYTHONPATH": str(REPO_ROOT),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "blis_evo", "run", "--experiment", str(exp_path),
                           "--seed", str(SEED), "--policy-config", str(bundle),
                           "--results-path", str(results)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert_matches_search(json.loads(results.read_text()), phenotype, exp, SEED)


def test_default_policy_is_the_llm_d_profile(exp, exp_path, tmp_path, capsys):
    results = tmp_path / "r.json"
    code, _, err = run_main(["run", "--experiment", str(exp_path), "--seed", "2",
                             "--results-path", str(results)], capsys)
    assert code == 0, err
    assert_matches_search(json.loads(results.read_text()), Phenotype(BASELINES["llm-d-default"]),
                          exp, 2)


def test_policy_flags_override_bundle_and_engine_flags_override_bundle(exp, exp_path, tmp_path,
                                                                       capsys):
    phenotype, bundle = champion(exp, 3, tmp_path)
    results = tmp_path / "r.json"
    code, _, err = run_main(["run", "--experiment", str(exp_path), "--seed", str(SEED),
                             "--policy-config", str(bundle), "--routing-policy", "least-loaded",
                             "--scheduler", "sjf", "--long-prefill-token-threshold", "96",
                             "--results-path", str(results)], capsys)
    assert code == 0, err
    # non-weighted routing runs with the default scorers (unused), as blis run always does
    expected_policy = dataclasses.replace(phenotype.policy, routing="least-loaded",
                                          scheduler="sjf", scorers=DEFAULT_SCORERS)
    expected_engine = dataclasses.replace(phenotype.engine, long_prefill_token_threshold=96)
    assert_matches_search(json.loads(results.read_text()),
                          Phenotype(expected_policy, expected_engine, phenotype.layout), exp, SEED)


def test_seed_selects_the_experiment_seed(exp, exp_path, tmp_path, capsys):
    docs = []
    for seed in (1, 2):
        results = tmp_path / f"r{seed}.json"
        assert run_main(["run", "--experiment", str(exp_path), "--seed", str(seed),
                         "--results-path", str(results)], capsys)[0] == 0
        docs.append(json.loads(results.read_text()))
    arrivals = [[r["arrived_at"] for r in d["requests"]] for d in docs]
    assert arrivals[0] != arrivals[1]


# ------------------------------------------------------------------------- settings resolution


def settings_for(*argv: str):
    return resolve_run_settings(parse_run_args(list(argv)))


def test_engine_knob_precedence_flag_over_bundle_over_experiment(tmp_path):
    doc = small_experiment_doc(long_prefill_token_threshold=128)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    bundle = tmp_path / "b.yaml"
    bundle.write_text("engine: {long_prefill_token_threshold: 256}\n")
    base = ["--experiment", str(path)]
    knob = lambda *a: settings_for(*base, *a).sim.long_prefill_token_threshold  # noqa: E731
    assert knob() == 128
    assert knob("--policy-config", str(bundle)) == 256
    assert knob("--policy-config", str(bundle), "--long-prefill-token-threshold", "64") == 64
    assert knob("--long-prefill-token-threshold", "0") == 0
    assert settings_for(*base).sim.snapshot_refresh_interval == 0
    assert settings_for(*base, "--snapshot-refresh-interval", "900").sim.snapshot_refresh_interval == 900


def test_experiment_sim_config_is_the_search_one(exp, exp_path):
    s = settings_for("--experiment", str(exp_path), "--seed", "13")
    assert s.sim == build_sim_config(exp, 13)
    assert s.policy == BASELINES["llm-d-default"]
    assert s.latency.model == exp.cluster.model


def test_default_experiment_by_name_and_by_path():
    by_name = settings_for("--experiment", "default").experiment
    assert by_name == default_experiment()
    assert settings_for("--experiment", str(DEFAULT_EXPERIMENT_PATH)).experiment == by_name


def test_model_not_required_with_experiment(exp_path):
    settings_for("--experiment", str(exp_path))  # no InputError
    with pytest.raises(InputError, match="--model"):
        settings_for()


def test_compatible_flags_exclude_cluster_and_workload_flags():
    names = {f.name for f in run_flags()}
    assert set(experiment_compatible()) <= names
    # the flags that shape the cluster or workload are not compatible
    for name in ("model", "hardware", "tp", "num-instances", "total-kv-blocks", "workload",
                 "rate", "num-requests", "workload-spec", "workload-traces-filepath", "horizon",
                 "block-size-in-tokens", "max-num-running-reqs", "max-num-scheduled-tokens"):
        assert name not in experiment_compatible()


# ------------------------------------------------------------------------- bad input

CONFLICTS = [
    ["--model", "meta-llama/llama-3.1-8b-instruct"], ["--hardware", "A100"], ["--tp", "2"],
    ["--num-instances", "8"], ["--total-kv-blocks", "500"], ["--workload", "chatbot"],
    ["--rate", "5"], ["--num-requests", "10"], ["--workload-spec", "preset:bursty"],
    ["--workload-traces-filepath", "t.csv"], ["--block-size-in-tokens", "32"],
    ["--max-num-running-reqs", "8"], ["--max-num-scheduled-tokens", "512"], ["--horizon", "100"],
    ["--alpha-coeffs", "1,2,3"], ["--kv-cpu-blocks", "10"], ["--routing-latency", "5"],
    ["--legacy-blis-quirks"], ["--trace-output", "tr"], ["--prompt-tokens", "100"],
]


@pytest.mark.parametrize("extra", CONFLICTS, ids=[c[0] for c in CONFLICTS])
def test_cluster_and_workload_flags_conflict(exp_path, tmp_path, capsys, extra):
    results = tmp_path / "r.json"
    code, out, err = run_main(["run", "--experiment", str(exp_path), *extra,
                               "--results-path", str(results)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"blis: error: {extra[0]} cannot be combined "
                                                   "with --experiment")
    assert "--policy-config" in err and "Traceback" not in err
    assert not results.exists()


BAD = [
    (["--experiment", "TMP/missing.yaml"], "--experiment"),
    (["--experiment", "TMP/bad.yaml"], "--experiment"),
    (["--experiment", "EXP", "--policy-config", "TMP/badbundle.yaml"], "engine.snapshot_refresh_interval"),
    (["--experiment", "EXP", "--scheduler", "lifo"], "--scheduler"),
    (["--experiment", "EXP", "--long-prefill-token-threshold", "-1"], "--long-prefill-token-threshold"),
    (["--experiment", "EXP", "--results-path", "TMP/nodir/r.json"], "--results-path"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[n for _, n in BAD])
def test_bad_experiment_input_is_one_line(exp_path, tmp_path, capsys, argv, needle):
    (tmp_path / "bad.yaml").write_text("name: x\ncluster: {model: m}\nbogus: 1\n")
    (tmp_path / "badbundle.yaml").write_text("engine: {snapshot_refresh_interval: -5}\n")
    argv = [a.replace("TMP", str(tmp_path)).replace("EXP", str(exp_path)) for a in argv]
    code, out, err = run_main(["run", *argv], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("blis: error: ") and needle in err
    assert "Traceback" not in err
