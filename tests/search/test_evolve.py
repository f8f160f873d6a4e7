"""End to end: a short search writes every output, the report compares the champion with the
baselines on the held-out seeds, and the champion bundle is accepted by `blis run`."""
import json
import re

import pytest
import yaml

from blis_evo.bundle import load_policy_bundle
from search.evolve import main


def test_evolve_two_generations_writes_outputs(small_experiment, tmp_path):
    path, exp = small_experiment()
    out = tmp_path / "out"
    assert main(["--experiment", str(path), "--generations", "2", "--workers", "1",
                 "--out", str(out), "--no-progress"]) == 0
    for name in ("champion.yaml", "hall_of_fame.json", "logbook.csv", "convergence.png",
                 "report.md", "heldout.json", "checkpoint.pkl"):
        assert (out / name).exists(), name
    load_policy_bundle(str(out / "champion.yaml"))
    hof = json.loads((out / "hall_of_fame.json").read_text())
    assert hof and hof[0]["rank"] == 0
    assert hof[0]["policy"] == yaml.safe_load((out / "champion.yaml").read_text())
    report = (out / "report.md").read_text()
    for name in ("champion", "round-robin", "least-loaded", "llm-d-default"):
        assert f"| {name} |" in report
    heldout = json.loads((out / "heldout.json").read_text())
    # mean ± stdev over the held-out seeds, one value per seed
    p99 = heldout["champion"]["p99_ttft_ms"]
    assert len(p99["values"]) == len(exp.seeds.heldout)
    assert abs(p99["mean"] - sum(p99["values"]) / len(p99["values"])) < 1e-9
    assert re.search(r"The champion (improves|worsens) p99_ttft_ms by \d+\.\d% over llm-d-default", report)


def test_evolve_nsga2_writes_pareto_outputs(small_experiment, tmp_path):
    path, exp = small_experiment(
        objectives={"mode": "multi", "primary": "p99_ttft", "weights": {"p99_ttft": 1.0},
                    "multi": [{"key": "p99_ttft", "direction": "min"},
                              {"key": "throughput", "direction": "max"}]},
        search={"algorithm": "nsga2", "population": 8, "generations": 2, "cxpb": 0.6,
                "mutpb": 0.3, "tournament": 2, "patience": 0, "seed": 0, "workers": 1})
    out = tmp_path / "out"
    assert main(["--experiment", str(path), "--out", str(out), "--no-progress"]) == 0
    front = json.loads((out / "pareto.json").read_text())
    assert front and all(len(p["objectives"]) == 2 for p in front)
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for a in front:   # nobody on the front dominates another member
        assert not any(b["objectives"][0] >= a["objectives"][0] and b["objectives"][1] >= a["objectives"][1]
                       and b["objectives"] != a["objectives"] for b in front)
    for p in front:   # metrics: the objectives in their own sign (p99 minimised, so stored negated)
        assert p["metrics"] == {"p99_ttft": -p["objectives"][0], "throughput": p["objectives"][1]}
        assert p["metrics"]["p99_ttft"] > 0
    report = (out / "report.md").read_text()
    distinct = {tuple(p["objectives"]) for p in front}
    assert f"Pareto front: {len(distinct)} distinct trade-off points ({len(front)} policies" in report
    rows = [ln for ln in report.splitlines() if re.match(r"\| \d+ \| ", ln)]
    assert len(rows) == len(distinct)
    first = [float(r.split("|")[2]) for r in rows]
    assert first == sorted(first)   # best (lowest) p99 first


def test_evolve_bad_experiment_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "e.yaml"
    bad.write_text("name: x\nbogus: 1\n")
    assert main(["--experiment", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evolve: error:")


def test_evolve_bad_cli_value_is_one_line_exit_2(capsys):
    assert main(["--generations", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["evolve: error: --generations must be >= 1, got 0"]


MULTI = {"objectives": {"mode": "multi", "primary": "p99_ttft", "weights": {"p99_ttft": 1.0},
                        "multi": [{"key": "p99_ttft", "direction": "min"},
                                  {"key": "throughput", "direction": "max"}]},
         "search": {"algorithm": "nsga2", "population": 8, "generations": 3, "cxpb": 0.6,
                    "mutpb": 0.3, "tournament": 2, "patience": 0, "seed": 0, "workers": 1}}


@pytest.mark.parametrize("genome, sections", [("params", {}), ("params", MULTI), ("gp", {})],
                         ids=["ga", "nsga2", "gp"])
def test_evolve_resume_restores_evaluation_cache_and_matches_uninterrupted(
        genome, sections, small_experiment, tmp_path):
    from search.evolve import evolve
    from search.checkpoint import load_checkpoint
    from search.loop import logbook_bytes

    _, exp = small_experiment(num_requests=100, **sections)
    full = evolve(exp, genome=genome, generations=3, out=tmp_path / "full")
    evolve(exp, genome=genome, generations=2, out=tmp_path / "part")
    cached = load_checkpoint(str(tmp_path / "part" / "checkpoint.pkl"))["extra"]
    assert cached and all(len(ev.per_seed) == len(exp.seeds.train) for ev in cached.values())
    resumed = evolve(exp, genome=genome, generations=3, resume=tmp_path / "part")
    assert logbook_bytes(resumed.state.logbook) == logbook_bytes(full.state.logbook)
    assert str(resumed.state.champion) == str(full.state.champion)
    assert resumed.train_evaluation == full.train_evaluation
    for name in ("champion.yaml", "hall_of_fame.json", "logbook.csv", "heldout.json",
                 "pareto.json", "champion_score.py"):
        if (tmp_path / "full" / name).exists():
            assert (tmp_path / "part" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    final = load_checkpoint(str(tmp_path / "part" / "checkpoint.pkl"))["extra"]
    assert set(cached) <= set(final)


def test_failing_genome_is_penalised_reported_and_not_retried(small_experiment, tmp_path,
                                                              monkeypatch, capsys):
    """A simulation that raises for one policy family: those genomes get the worst fitness,
    one warning per distinct policy names the genome, failures.json lists them, and each is
    simulated exactly once (no retry)."""
    import search.parallel as parallel
    from search.evolve import evolve

    real = parallel.evaluate
    calls = []

    def flaky(phenotype, exp, seeds):
        policy = phenotype.policy
        if tuple(seeds) == exp.seeds.train:            # the search, not the held-out report
            calls.append(policy)
            if policy.routing == "least-loaded":
                raise RuntimeError("simulated engine failure")
        return real(phenotype, exp, seeds)

    _, exp = small_experiment(num_requests=100)
    monkeypatch.setattr(parallel, "evaluate", flaky)   # where the evaluator calls it
    res = evolve(exp, generations=2, out=tmp_path / "out")
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert failures, "the least-loaded baseline is in the initial population"
    assert all("simulated engine failure" in f["error"] and "genome [" in f["error"] for f in failures)
    assert all("least-loaded" in f["policy"] for f in failures)
    failed_calls = [p for p in calls if p.routing == "least-loaded"]
    assert len(failed_calls) == len(failures)          # each failing policy simulated once
    assert res.champion.routing != "least-loaded"
    err = capsys.readouterr().err
    assert err.count("evolve: warning: evaluation failed") == len(failures)
    assert "failed evaluations" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("argv, expected", [
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--workers", "x"], "--workers"),
    (["--resume", "{tmp}/nothing-here"], "holds no checkpoint.pkl"),
    (["--out", "{tmp}/a-file"], "exists and is not a directory"),
    (["--out", "{tmp}/o1", "--resume", "{tmp}/o2"], "name different folders"),
])
def test_evolve_bad_arguments_one_line_exit_2_nothing_written(argv, expected, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evolve: error:") and expected in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_resume_refuses_an_edited_experiment(small_experiment, tmp_path, capsys):
    path, exp = small_experiment(num_requests=100)
    assert main(["--experiment", str(path), "--generations", "1", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    doc = yaml.safe_load(path.read_text())
    doc["workload"]["num_requests"] = 120                    # same search settings, new workload
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    capsys.readouterr()
    assert main(["--experiment", str(path), "--generations", "2", "--resume", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "experiment differs" in err[0]


def test_a_cluster_address_means_ray_even_with_one_worker(monkeypatch):
    from search.parallel import Evaluator

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not Evaluator(None, None, [1], workers=1).use_ray
    assert Evaluator(None, None, [1], workers=1, ray_address="auto").use_ray
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")    # as set by `ray job submit`
    assert Evaluator(None, None, [1], workers=1).use_ray
