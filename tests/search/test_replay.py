"""Champion replay (search.replay, ``blis replay``): policy loading, seed choice, the report.

Expectations are independent of the code under test: hand-written policies for bundle files,
seeds derived from the experiment's seed lists by hand, and table numbers checked against
``search.evaluate.evaluate`` of each policy on the replayed seeds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from blis_evo import cli
from blis_evo.baselines import BASELINES
from blis_evo.experiment import (default_experiment, default_experiment_text, experiment_from_arg,
                                 load_experiment)
from blis_evo.flags import parse_run_args
from blis_evo.phenotype import Phenotype
from blis_evo.settings import resolve_run_settings
from search import replay
from search.evaluate import evaluate
from search.genome import GeneSpace, bundle_dict
from simulator.config import DEFAULT_SCORERS, PolicyConfig, ScorerSpec
from simulator.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "blis_evo" / "data" / "examples"


def write(directory: Path, text: str, name: str = "bundle.yaml") -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(scope="module")
def exp_path(tmp_path_factory) -> Path:
    doc = yaml.safe_load(default_experiment_text())
    doc["workload"]["num_requests"] = 150
    doc["seeds"] = {"train": [1, 1000], "heldout": [1002, 5]}
    path = tmp_path_factory.mktemp("exp") / "small.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def exp(exp_path):
    return load_experiment(exp_path)


# ------------------------------------------------------------------------- load_policy

HAND_WRITTEN = [
    # (bundle text, expected policy, expected engine knobs)
    ("routing: {policy: weighted}\n",
     PolicyConfig(routing="weighted", scorers=DEFAULT_SCORERS), {}),
    ("scheduler: sjf\nengine: {long_prefill_token_threshold: 300}\n",
     PolicyConfig(scheduler="sjf"), {"long_prefill_token_threshold": 300}),
    ("admission: {policy: token-bucket, token_bucket_capacity: 20}\n"
     "routing:\n"
     "  policy: weighted\n"
     "  scorers: [{name: queue-depth, weight: 2}, {name: load-balance, weight: 0.5}]\n"
     "priority: {policy: inverted-slo}\n"
     "scheduler: reverse-priority\n"
     "engine: {snapshot_refresh_interval: 10, long_prefill_token_threshold: 0}\n",
     PolicyConfig(admission="token-bucket", params=(("token_bucket_capacity", 20.0),), routing="weighted",
                  scorers=(ScorerSpec("queue-depth", 2.0), ScorerSpec("load-balance", 0.5)),
                  priority="inverted-slo", scheduler="reverse-priority"),
     {"snapshot_refresh_interval": 10, "long_prefill_token_threshold": 0}),
    ("routing: {policy: round-robin, scorers: [{name: queue-depth, weight: 1}]}\n",
     PolicyConfig(routing="round-robin"), {}),
]


@pytest.mark.parametrize("text, policy, knobs", HAND_WRITTEN)
def test_load_policy_hand_written(tmp_path, text, policy, knobs):
    assert replay.load_policy(write(tmp_path, text)) == Phenotype.from_knobs(policy, knobs)


def _blis_run_view(path: str):
    """What ``blis run --policy-config path`` simulates: (policy, the two engine knobs)."""
    s = resolve_run_settings(parse_run_args(["--model", "m", "--policy-config", path]))
    return s.policy, (s.sim.snapshot_refresh_interval, s.sim.long_prefill_token_threshold)


BUNDLES = [str(EXAMPLES / name) for name in ("policy-config.yaml", "weighted-routing.yaml",
                                              "epp-estimate-prefix.yaml", "epp-precise-prefix.yaml")]


@pytest.mark.parametrize("path", BUNDLES + ["HAND0", "HAND1", "HAND2", "HAND3"],
                         ids=[Path(p).name for p in BUNDLES] + ["hand0", "hand1", "hand2", "hand3"])
def test_load_policy_agrees_with_blis_run(tmp_path, path):
    if path.startswith("HAND"):
        path = write(tmp_path, HAND_WRITTEN[int(path[4:])][0])
    phenotype = replay.load_policy(path)
    run_policy, (snapshot, long_prefill) = _blis_run_view(path)
    assert phenotype.policy == run_policy
    assert (phenotype.engine.snapshot_refresh_interval or 0) == snapshot
    assert (phenotype.engine.long_prefill_token_threshold or 0) == long_prefill


@pytest.mark.parametrize("seed", range(20))
def test_load_policy_inverts_bundle_dict(tmp_path, seed):
    space = GeneSpace(default_experiment().search_space)
    genome = space.random_genome(np.random.default_rng(seed))
    phenotype = space.phenotype(genome)
    path = tmp_path / "champion.yaml"
    path.write_text(yaml.safe_dump(bundle_dict(phenotype), sort_keys=False))
    assert replay.load_policy(path) == phenotype


# ------------------------------------------------------------------------- seeds


def _stub(train, heldout):
    return SimpleNamespace(seeds=SimpleNamespace(train=tuple(train), heldout=tuple(heldout)))


def test_fresh_seeds_skip_train_and_heldout():
    stub = _stub([1, 1000, 1003], [1001, 7])
    assert replay.fresh_seeds(stub, 4) == (1002, 1004, 1005, 1006)
    assert replay.fresh_seeds(_stub([1], [2]), 3) == (1000, 1001, 1002)


@pytest.mark.parametrize("text, expected", [
    ("3", (1002, 1004, 1005)),  # fresh: the stub uses 1000, 1001, 1003
    (" 1 ", (1002,)),
    ("1000,1001,1002", (1000, 1001, 1002)),
    ("7, 5", (7, 5)),
    ("1234,", (1234,)),
])
def test_parse_seeds(text, expected):
    assert replay.parse_seeds(text, _stub([1000, 1003], [1001])) == expected


@pytest.mark.parametrize("text", ["0", "-2", "x", "1.5", "", "1,,2", "1,-2", "1,a", ",", "3,3"])
def test_parse_seeds_bad(text):
    with pytest.raises(InputError) as err:
        replay.parse_seeds(text, _stub([1], [2]))
    assert str(err.value).startswith("--seeds") and "\n" not in str(err.value)


def test_experiment_arg():
    assert experiment_from_arg("default") == default_experiment()
    assert experiment_from_arg(None) == default_experiment()
    with pytest.raises(InputError, match="^--experiment: "):
        experiment_from_arg("/nonexistent/exp.yaml")


# ------------------------------------------------------------------------- end to end

# outside the default search space (scheduler reverse-priority, priority inverted-slo)
OUTSIDE_SPACE = """\
routing: {policy: least-loaded}
priority: {policy: inverted-slo}
scheduler: reverse-priority
engine: {snapshot_refresh_interval: 2000, long_prefill_token_threshold: 512}
"""


def test_replay_table_matches_search_evaluation(exp, exp_path, tmp_path, capsys):
    bundle = write(tmp_path, OUTSIDE_SPACE)
    out_file = tmp_path / "replay.json"
    code = replay.main(["--policy", bundle, "--experiment", str(exp_path), "--seeds", "2",
                        "--out", str(out_file)])
    stdout, stderr = capsys.readouterr()
    assert code == 0 and stderr == ""
    seeds = [1001, 1003]  # 1000 is a train seed, 1002 a held-out seed of the fixture
    doc = json.loads(out_file.read_text())
    assert doc["seeds"] == seeds
    assert list(doc["policies"]) == ["champion", "round-robin", "least-loaded", "llm-d-default",
                                  "llm-d-gie-flow-control"]
    expected = {
        "champion": Phenotype.from_knobs(
            PolicyConfig(routing="least-loaded", priority="inverted-slo",
                         scheduler="reverse-priority"),
            {"snapshot_refresh_interval": 2000, "long_prefill_token_threshold": 512}),
        **{name: Phenotype(p) for name, p in BASELINES.items()},
    }
    means = {}
    for name, phenotype in expected.items():
        ev = evaluate(phenotype, exp, seeds)
        p99 = [r.ttft.p99 / 1000.0 for r in ev.raw]
        assert [s["p99_ttft_ms"] for s in doc["policies"][name]["per_seed"]] == pytest.approx(p99)
        assert [s["seed"] for s in doc["policies"][name]["per_seed"]] == seeds
        means[name] = float(np.mean(p99))
        summary = doc["policies"][name]["summary"]["p99_ttft_ms"]
        assert summary["mean"] == pytest.approx(means[name])
        assert summary["stdev"] == pytest.approx(float(np.std(p99, ddof=1)))
        row = next(line for line in stdout.splitlines() if line.startswith(f"| {name} |"))
        assert f"{means[name]:.4g}" in row
    # headline on the primary objective (p99_ttft): relative improvement, positive = lower
    improvement = (means["llm-d-default"] - means["champion"]) / means["llm-d-default"]
    assert doc["primary"] == {"objective": "p99_ttft", "column": "p99_ttft_ms",
                              "improvement": pytest.approx(improvement), "reference": "llm-d-default"}
    assert f"{abs(improvement) * 100:.1f}%" in doc["headline"] and "p99_ttft" in doc["headline"]
    assert doc["table"] in stdout and doc["headline"] in stdout
    assert doc["policies"]["champion"]["policy"]["engine"] == {
        "snapshot_refresh_interval": 2000, "long_prefill_token_threshold": 512}
    assert "p99_ttft_ms" in doc["table"].splitlines()[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.yaml", "replay.json"]  # atomic


def test_replay_is_deterministic_and_blis_replay_is_the_same(exp_path, tmp_path, capsys):
    bundle = write(tmp_path, "routing: {policy: weighted, scorers: [{name: prefix-affinity, weight: 1}]}\n")
    args = ["--policy", bundle, "--experiment", str(exp_path), "--seeds", "1004,1001"]
    assert replay.main(args) == 0
    first = capsys.readouterr().out
    assert cli.main(["replay", *args]) == 0
    second = capsys.readouterr().out
    assert first == second
    assert "Seeds: 1004, 1001 " in first


def test_explicit_used_seeds_are_noted(exp_path, tmp_path, capsys):
    bundle = write(tmp_path, "scheduler: sjf\n")
    assert replay.main(["--policy", bundle, "--experiment", str(exp_path), "--seeds", "1,1001"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[1]" in err and "not fresh" in err


BAD = [
    (["--policy", "TMP/missing.yaml"], "--policy"),
    (["--policy", "TMP/bad.yaml"], "engine.long_prefill_token_threshold"),
    (["--policy", "TMP/ok.yaml", "--seeds", "0"], "--seeds"),
    (["--policy", "TMP/ok.yaml", "--seeds", "1,x"], "--seeds"),
    (["--policy", "TMP/ok.yaml", "--seeds", "-3"], "--seeds"),
    (["--policy", "TMP/ok.yaml", "--experiment", "TMP/missing-exp.yaml"], "--experiment"),
    (["--policy", "TMP/ok.yaml", "--experiment", "TMP/bad-exp.yaml"], "--experiment"),
    (["--policy", "TMP/ok.yaml", "--out", "TMP"], "--out"),
    (["--policy", "TMP/ok.yaml", "--out", "TMP/no/such/dir.json"], "--out"),
    (["--experiment", "default"], "--policy"),
    (["--policy", "TMP/ok.yaml", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
@pytest.mark.parametrize("entry", ["replay", "blis"])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle, entry):
    (tmp_path / "ok.yaml").write_text("scheduler: sjf\n")
    (tmp_path / "bad.yaml").write_text("engine: {long_prefill_token_threshold: 1.5}\n")
    (tmp_path / "bad-exp.yaml").write_text("name: x\n")
    argv = [a.replace("TMP", str(tmp_path)) for a in argv]
    before = sorted(os.listdir(tmp_path))
    if entry == "replay":
        code = replay.main(argv)
    else:
        code = cli.main(["replay", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"{entry}: error: ") and needle in err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before


def test_python_dash_m_entry_point(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(REPO_ROOT / ".numba_cache"), "PYTHONPATH": str(REPO_ROOT),
           "PATH": "/usr/bin:/bin"}
    (tmp_path / "ok.yaml").write_text("scheduler: sjf\n")
    proc = subprocess.run([sys.executable, "-m", "search.replay", "--policy", "ok.yaml",
                           "--seeds", "nope"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("replay: error: --seeds") and proc.stderr.count("\n") == 1
    help_proc = subprocess.run([sys.executable, "-m", "search.replay", "--help"], cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=300)
    assert help_proc.returncode == 0 and "--seeds" in help_proc.stdout
