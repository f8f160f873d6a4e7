"""``python -m search.batch``: a jobs file of experiments x search seeds run as one rerunnable job.

Expectations come from outside the batch code: the run folders are compared with straight
``search.evolve.evolve`` runs of the same experiment and seed, the summary figures with the
folder's own hall_of_fame.json / heldout.json, and "nothing changed" with file bytes and mtimes.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
from pathlib import Path

import pytest
import yaml

from search import batch
from search.evolve import evolve
from blis_evo.experiment import default_experiment, experiment_digest, load_experiment
from tests.conftest import small_experiment_dict

RUN_FILES = ("champion.yaml", "report.md", "done.json")


# ------------------------------------------------------------------------------------ helpers


def experiment_doc(name: str, num_requests: int = 100, **search) -> dict:
    """A tiny experiment: 100 requests, 2 train / 2 held-out seeds, population 6."""
    doc = small_experiment_dict(num_requests=num_requests)
    doc["name"] = name
    doc["search"].update({"population": 6, **search})
    return doc


def write_experiment(directory: Path, name: str, num_requests: int = 100, **search) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(experiment_doc(name, num_requests, **search), sort_keys=False))
    return path


def write_jobs(directory: Path, text: str) -> Path:
    path = directory / "jobs.yaml"
    path.write_text(text)
    return path


def run_main(jobs: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = batch.main([str(jobs)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def run_table(text: str) -> list[dict]:
    """The per-run table of a printed summary as dicts keyed by the header cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| name | seed |"))
    def cells(line: str) -> list[str]:      # split on unescaped pipes
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    header = cells(lines[start])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        row = cells(line)
        assert len(row) == len(header), line
        rows.append(dict(zip(header, row)))
    return rows


def snapshot(folder: Path) -> dict:
    """Every file under ``folder``: its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


PROBE = ("probe planted by the test",)


def plant_probe(folder: Path) -> None:
    """Add an entry to the evaluation cache in the folder's checkpoint: only a run that resumes
    from this checkpoint carries it into its own final checkpoint."""
    from search.checkpoint import load_checkpoint

    path = folder / "checkpoint.pkl"
    payload = load_checkpoint(str(path))
    payload["extra"][PROBE] = next(iter(payload["extra"].values()))
    path.write_bytes(pickle.dumps(payload))


def has_probe(folder: Path) -> bool:
    from search.checkpoint import load_checkpoint

    return PROBE in load_checkpoint(str(folder / "checkpoint.pkl"))["extra"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Uninterrupted ``evolve`` runs of experiment ``a`` (seed 0) for 1 and 2 generations."""
    base = tmp_path_factory.mktemp("straight")
    exp = load_experiment(write_experiment(base, "a"))
    out = {}
    for gens in (1, 2):
        evolve(exp, generations=gens, out=base / f"g{gens}", seed=0)
        out[gens] = base / f"g{gens}"
    return out


# ------------------------------------------------------------------------------------ acceptance


def test_grid_runs_every_pair_and_a_rerun_is_a_noop(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    write_experiment(cfg, "a", 100)
    write_experiment(cfg, "b", 80)
    jobs = write_jobs(cfg, "out: ../results\ngenerations: 1\n"
                           "grid:\n  experiments: [a.yaml, b.yaml]\n  seeds: [0, 1]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)          # relative paths resolve against the jobs file

    code, out, err = run_main(jobs)

    assert code == 0, err
    results = tmp_path / "results"
    pairs = [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    for name, seed in pairs:
        folder = results / name / f"seed-{seed}"
        for f in RUN_FILES:
            assert (folder / f).is_file(), folder / f
        done = json.loads((folder / "done.json").read_text())
        assert (done["name"], done["seed"], done["generations"]) == (name, seed, 1)
        # figures match the folder's own outputs
        hof = json.loads((folder / "hall_of_fame.json").read_text())
        assert done["champion_fitness"] == pytest.approx(hof[0]["fitness"][0])
        held = json.loads((folder / "heldout.json").read_text())
        champ, ref = held["champion"]["p99_ttft_ms"]["mean"], held["llm-d-default"]["p99_ttft_ms"]["mean"]
        assert done["primary_improvement"] == pytest.approx((ref - champ) / ref)
        # only evolve's outputs and the two markers
        assert set(os.listdir(folder)) <= set(batch.EVOLVE_OUTPUTS) | {"done.json", "started.json"}
    assert not (elsewhere / "results").exists()
    rows = run_table(out)
    assert [(r["name"], int(r["seed"])) for r in rows] == pairs
    assert [r["status"] for r in rows] == ["ran"] * 4
    assert (results / "summary.md").read_text() == out
    doc = json.loads((results / "summary.json").read_text())
    assert [(r["name"], r["seed"], r["status"]) for r in doc["runs"]] == [p + ("ran",) for p in pairs]
    assert len([line for line in err.splitlines() if " ran in " in line]) == 4

    before = {p: snapshot(results / p[0] / f"seed-{p[1]}") for p in pairs}
    code2, out2, _ = run_main(jobs)

    assert code2 == 0
    assert {p: snapshot(results / p[0] / f"seed-{p[1]}") for p in pairs} == before
    rows2 = run_table(out2)
    assert [r["status"] for r in rows2] == ["skipped"] * 4
    figures = ("fitness (train)", "primary objective (held-out)", "throughput", "wall time")
    assert [[r[k] for k in figures] for r in rows2] == [[r[k] for k in figures] for r in rows]
    assert (results / "summary.md").read_text() == out2


# ------------------------------------------------------------------------------------ rerunning


def test_interrupted_run_resumes_and_matches_an_uninterrupted_run(tmp_path, straight):
    path = write_experiment(tmp_path, "a")
    folder = tmp_path / "res" / "a" / "seed-0"
    evolve(load_experiment(path), generations=1, out=folder, seed=0)   # "interrupted": no done.json
    plant_probe(folder)
    jobs = write_jobs(tmp_path, "out: res\njobs:\n  - {experiment: a.yaml, seeds: [0], generations: 2}\n")

    code, out, _ = run_main(jobs)

    assert code == 0
    [row] = run_table(out)
    assert (row["status"], row["note"]) == ("resumed", "resumed from generation 1")
    for f in ("champion.yaml", "logbook.csv", "hall_of_fame.json"):
        assert (folder / f).read_bytes() == (straight[2] / f).read_bytes(), f
    assert json.loads((folder / "done.json").read_text())["generations"] == 2
    assert has_probe(folder)                  # it continued from the checkpoint


def test_more_generations_extend_a_complete_run_and_fewer_rerun(tmp_path, straight):
    write_experiment(tmp_path, "a")
    folder = tmp_path / "res" / "a" / "seed-0"
    jobs_text = "out: res\ngenerations: {g}\njobs:\n  - {{experiment: a.yaml, seeds: [0]}}\n"
    assert run_main(write_jobs(tmp_path, jobs_text.format(g=1)))[0] == 0
    plant_probe(folder)

    code, out, _ = run_main(write_jobs(tmp_path, jobs_text.format(g=2)))
    assert code == 0
    [row] = run_table(out)
    assert (row["status"], row["note"], row["generations"]) == ("resumed", "extended from generation 1", "2")
    assert (folder / "champion.yaml").read_bytes() == (straight[2] / "champion.yaml").read_bytes()
    assert has_probe(folder)

    code, out, _ = run_main(write_jobs(tmp_path, jobs_text.format(g=1)))
    assert code == 0
    [row] = run_table(out)
    assert row["status"] == "ran" and "past the 1 requested" in row["note"]
    assert (folder / "logbook.csv").read_bytes() == (straight[1] / "logbook.csv").read_bytes()
    assert not has_probe(folder)


def test_edited_experiment_reruns_from_scratch(tmp_path):
    path = write_experiment(tmp_path, "a")
    jobs = write_jobs(tmp_path, "out: res\ngenerations: 1\njobs: [{experiment: a.yaml, seeds: [0]}]\n")
    folder = tmp_path / "res" / "a" / "seed-0"
    assert run_main(jobs)[0] == 0
    digest = json.loads((folder / "done.json").read_text())["digest"]

    path.write_text("# a comment does not change the experiment\n" + path.read_text())
    code, out, _ = run_main(jobs)
    assert code == 0 and run_table(out)[0]["status"] == "skipped"

    write_experiment(tmp_path, "a", num_requests=90)
    code, out, _ = run_main(jobs)

    assert code == 0
    [row] = run_table(out)
    assert row["status"] == "ran" and "experiment changed" in row["note"]
    assert json.loads((folder / "done.json").read_text())["digest"] != digest
    fresh = tmp_path / "fresh"
    evolve(load_experiment(path), generations=1, out=fresh, seed=0)
    for f in ("heldout.json", "champion.yaml", "logbook.csv"):
        assert (folder / f).read_bytes() == (fresh / f).read_bytes(), f


def test_rerun_from_scratch_leaves_no_stale_outputs(tmp_path):
    nsga2 = experiment_doc("a", algorithm="nsga2", tournament=2)
    nsga2["objectives"] = {"mode": "multi", "primary": "p99_ttft", "weights": {"p99_ttft": 1.0},
                           "multi": [{"key": "p99_ttft", "direction": "min"},
                                     {"key": "throughput", "direction": "max"}]}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(nsga2, sort_keys=False))
    jobs = write_jobs(tmp_path, "out: res\ngenerations: 1\njobs: [{experiment: a.yaml, seeds: [0]}]\n")
    folder = tmp_path / "res" / "a" / "seed-0"
    assert run_main(jobs)[0] == 0
    assert (folder / "pareto.json").is_file() and (folder / "pareto.png").is_file()

    write_experiment(tmp_path, "a")                   # now a single-objective GA
    code, out, _ = run_main(jobs)

    assert code == 0 and run_table(out)[0]["status"] == "ran"
    assert not (folder / "pareto.json").exists() and not (folder / "pareto.png").exists()
    assert (folder / "champion.yaml").is_file()


def test_interrupted_run_of_an_edited_experiment_is_not_resumed(tmp_path):
    path = write_experiment(tmp_path, "a")
    jobs = write_jobs(tmp_path, "out: res\ngenerations: 1\njobs: [{experiment: a.yaml, seeds: [0]}]\n")
    folder = tmp_path / "res" / "a" / "seed-0"
    assert run_main(jobs)[0] == 0
    (folder / "done.json").unlink()          # interrupted after its checkpoint: started.json remains
    write_experiment(tmp_path, "a", num_requests=90)

    code, out, _ = run_main(jobs)

    assert code == 0
    [row] = run_table(out)
    assert row["status"] == "ran" and "experiment changed" in row["note"]
    fresh = tmp_path / "fresh"
    evolve(load_experiment(path), generations=1, out=fresh, seed=0)
    assert (folder / "heldout.json").read_bytes() == (fresh / "heldout.json").read_bytes()


def test_failed_run_is_reported_and_the_batch_continues(tmp_path, monkeypatch):
    write_experiment(tmp_path, "a")
    jobs = write_jobs(tmp_path, "out: res\ngenerations: 1\ngrid: {experiments: [a.yaml], seeds: [1, 0]}\n")
    real = batch.evolve

    def failing_for_seed_1(exp, **kw):
        if kw["seed"] == 1:
            raise RuntimeError("simulated crash | in seed 1")
        return real(exp, **kw)

    monkeypatch.setattr(batch, "evolve", failing_for_seed_1)
    code, out, err = run_main(jobs)

    assert code == 1
    rows = run_table(out)
    assert [(r["seed"], r["status"]) for r in rows] == [("1", "failed"), ("0", "ran")]
    assert rows[0]["note"].startswith(r"RuntimeError: simulated crash \| in seed 1")
    assert not (tmp_path / "res" / "a" / "seed-1" / "done.json").exists()
    trace = (tmp_path / "res" / "a" / "seed-1" / "failure.txt").read_text()
    assert "failing_for_seed_1" in trace and "RuntimeError: simulated crash" in trace
    assert (tmp_path / "res" / "a" / "seed-0" / "done.json").is_file()
    runs = json.loads((tmp_path / "res" / "summary.json").read_text())["runs"]
    assert runs[0]["status"] == "failed" and runs[0]["champion_fitness"] is None
    assert "failed: RuntimeError: simulated crash" in err

    monkeypatch.setattr(batch, "evolve", real)
    code, out, _ = run_main(jobs)
    assert code == 0
    assert [r["status"] for r in run_table(out)] == ["ran", "skipped"]
    assert not (tmp_path / "res" / "a" / "seed-1" / "failure.txt").exists()


# ------------------------------------------------------------------------------------ bad input


BAD_JOBS = [
    ("unknown top-level key", "out: res\nbogus: 1\njobs: [{experiment: a.yaml}]\n",
     "jobs.yaml: bogus is not a known key (valid: out, workers, ray_address, generations, jobs, grid)"),
    ("unknown job key", "out: res\njobs: [{experiment: a.yaml, seed: 1}]\n",
     "jobs.yaml: jobs[0].seed is not a known key (valid: experiment, seeds, name, generations)"),
    ("missing experiment file", "out: res\njobs: [{experiment: a.yaml}, {experiment: nope.yaml}]\n",
     "jobs.yaml: jobs[1].experiment: cannot read experiment"),
    ("invalid experiment", "out: res\ngrid: {experiments: [bad.yaml]}\n",
     "jobs.yaml: grid.experiments[0]: "),  # then the experiment loader's message
    ("duplicate names", "out: res\njobs: [{experiment: a.yaml}]\ngrid: {experiments: [b.yaml, a.yaml]}\n",
     "jobs.yaml: grid.experiments[1] name 'a' is already used by jobs[0]"),
    ("duplicate explicit names",
     "out: res\njobs: [{experiment: a.yaml, name: x}, {experiment: b.yaml, name: x}]\n",
     "jobs.yaml: jobs[1] name 'x' is already used by jobs[0]"),
    ("seeds not ints", "out: res\njobs: [{experiment: a.yaml, seeds: [0, one]}]\n",
     "jobs.yaml: jobs[0].seeds[1] must be an integer, got 'one'"),
    ("seeds not a list", "out: res\ngrid: {experiments: [a.yaml], seeds: 3}\n",
     "jobs.yaml: grid.seeds must be a non-empty list of integers"),
    ("repeated seed", "out: res\njobs: [{experiment: a.yaml, seeds: [2, 2]}]\n",
     "jobs.yaml: jobs[0].seeds must not repeat a seed"),
    ("workers < 1", "out: res\nworkers: 0\njobs: [{experiment: a.yaml}]\n",
     "jobs.yaml: workers must be in [1, 1024], got 0"),
    ("generations < 1", "out: res\njobs: [{experiment: a.yaml, generations: 0}]\n",
     "jobs.yaml: jobs[0].generations must be >= 1, got 0"),
    ("ray_address without workers", "out: res\nray_address: auto\njobs: [{experiment: a.yaml}]\n",
     "jobs.yaml: ray_address needs workers > 1"),
    ("missing out", "jobs: [{experiment: a.yaml}]\n", "jobs.yaml: out is required"),
    ("no experiments", "out: res\njobs: []\n", "jobs.yaml: needs at least one experiment"),
    ("name not a folder name", "out: res\njobs: [{experiment: a.yaml, name: ../up}]\n",
     "jobs.yaml: jobs[0].name '../up' is not usable as a folder name"),
    ("duplicate YAML key", "out: res\nout: other\njobs: [{experiment: a.yaml}]\n",
     "jobs.yaml: duplicate key 'out' at line 2"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in BAD_JOBS], ids=[c[0] for c in BAD_JOBS])
def test_bad_jobs_file_is_one_line_exit_2_and_creates_nothing(tmp_path, monkeypatch, text, expected):
    write_experiment(tmp_path, "a")
    write_experiment(tmp_path, "b")
    bad = experiment_doc("bad")
    bad["search"]["population"] = 1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    monkeypatch.chdir(tmp_path)
    write_jobs(tmp_path, text)
    before = sorted(os.listdir(tmp_path))

    code, out, err = run_main(Path("jobs.yaml"))

    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("batch: error: "), err
    assert expected in lines[0]
    assert sorted(os.listdir(tmp_path)) == before


def test_missing_jobs_file_and_out_being_a_file(tmp_path):
    code, _, err = run_main(tmp_path / "none.yaml")
    assert code == 2 and err.startswith("batch: error: cannot read jobs file") and err.count("\n") == 1
    write_experiment(tmp_path, "a")
    (tmp_path / "res").write_text("not a folder")
    code, _, err = run_main(write_jobs(tmp_path, "out: res\njobs: [{experiment: a.yaml}]\n"))
    assert code == 2 and "jobs.yaml: out: " in err and "exists and is not a directory" in err
    assert (tmp_path / "res").read_text() == "not a folder"


# ------------------------------------------------------------------------------------ expansion


def test_defaults_precedence_and_order(tmp_path):
    write_experiment(tmp_path, "a", seed=5, generations=4)
    write_experiment(tmp_path, "b", seed=3, generations=6)
    jobs = write_jobs(tmp_path, "out: out\ngenerations: 7\n"
                                "jobs:\n"
                                "  - {experiment: default}\n"
                                "  - {experiment: a.yaml, name: a-long, generations: 2, seeds: [9, 8]}\n"
                                "grid: {experiments: [b.yaml, a.yaml], generations: 3}\n")

    plan = batch.load_batch(jobs)

    got = [(r.name, r.seed, r.generations, r.folder) for r in plan.runs]
    out = tmp_path / "out"
    assert got == [("default", default_experiment().search.seed, 7, out / "default" / "seed-0"),
                   ("a-long", 9, 2, out / "a-long" / "seed-9"),
                   ("a-long", 8, 2, out / "a-long" / "seed-8"),
                   ("b", 3, 3, out / "b" / "seed-3"),
                   ("a", 5, 3, out / "a" / "seed-5")]
    assert plan.workers == 1 and plan.ray_address is None
    assert not out.exists()

    no_top = batch.load_batch(write_jobs(tmp_path, "out: out\njobs: [{experiment: b.yaml}]\n"))
    assert [(r.seed, r.generations) for r in no_top.runs] == [(3, 6)]


def test_digest_follows_content_not_location_or_overridden_settings(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = load_experiment(write_experiment(tmp_path / "x", "a"))
    same = load_experiment(write_experiment(tmp_path / "y", "a"))
    other_seed = load_experiment(write_experiment(tmp_path / "y", "a", seed=4, generations=9, workers=2))
    edited = load_experiment(write_experiment(tmp_path / "y", "a", population=7))
    fewer = load_experiment(write_experiment(tmp_path / "y", "a", num_requests=99))

    assert experiment_digest(a) == experiment_digest(same) == experiment_digest(other_seed)
    assert len({experiment_digest(e) for e in (a, edited, fewer)}) == 3
    assert experiment_digest(default_experiment()) == experiment_digest(
        load_experiment(Path(batch.__file__).resolve().parents[1] / "experiments" / "default.yaml"))


def test_digest_of_a_trace_workload_follows_the_trace_content(tmp_path):
    def trace_experiment(directory: Path, rows: str):
        directory.mkdir()
        (directory / "t.csv").write_text(rows)
        doc = experiment_doc("t")
        doc["workload"] = {"trace": "t.csv", "num_requests": 10}
        (directory / "t.yaml").write_text(yaml.safe_dump(doc))
        return experiment_digest(load_experiment(directory / "t.yaml"))

    one = trace_experiment(tmp_path / "one", "id,arrival\n1,0\n")
    moved = trace_experiment(tmp_path / "two", "id,arrival\n1,0\n")
    edited = trace_experiment(tmp_path / "three", "id,arrival\n1,5\n")

    assert one == moved != edited


# ------------------------------------------------------------------------------------ Ray


def test_workers_start_ray_once_for_the_batch(tmp_path, monkeypatch, straight):
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    write_experiment(tmp_path, "a")
    jobs = write_jobs(tmp_path, "out: res\nworkers: 2\ngenerations: 1\n"
                                "grid: {experiments: [a.yaml], seeds: [0, 1]}\n")
    inits = []
    real_init = ray.init

    def counting_init(*args, **kwargs):
        inits.append(kwargs)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", counting_init)
    code, out, err = run_main(jobs)

    assert code == 0, err
    assert len(inits) == 1
    assert not ray.is_initialized()            # the batch shut down the runtime it started
    assert [r["status"] for r in run_table(out)] == ["ran", "ran"]
    champion = (tmp_path / "res" / "a" / "seed-0" / "champion.yaml").read_bytes()
    assert champion == (straight[1] / "champion.yaml").read_bytes()   # same as serial

    code, out, _ = run_main(jobs)                 # nothing to run: Ray is not started at all
    assert code == 0 and [r["status"] for r in run_table(out)] == ["skipped", "skipped"]
    assert len(inits) == 1 and not ray.is_initialized()


def test_shipped_example_jobs_file_is_valid():
    example = Path(batch.__file__).resolve().parents[1] / "experiments" / "jobs-example.yaml"

    plan = batch.load_batch(example)

    assert [(r.name, r.seed, r.generations) for r in plan.runs] == [
        ("default", 0, 20), ("default", 1, 20), ("nsga2-ttft-vs-e2e", 0, 20), ("nsga2-ttft-vs-e2e", 1, 20)]
    assert plan.workers == 2
    assert plan.out == example.parents[1] / "results" / "batch"
