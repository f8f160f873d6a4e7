"""End to end: a short search on the default experiment writes every output, and the champion
bundle is accepted by `blis run --policy-config`."""
import json

from blis_evo.bundle import load_policy_bundle
from search.evolve import main


def test_evolve_two_generations_writes_outputs(tmp_path):
    out = tmp_path / "out"
    assert main(["--generations", "2", "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    for name in ("champion.yaml", "hall_of_fame.json", "logbook.csv", "convergence.png",
                 "report.md", "checkpoint.pkl"):
        assert (out / name).exists(), name
    load_policy_bundle(str(out / "champion.yaml"))
    hof = json.loads((out / "hall_of_fame.json").read_text())
    assert hof and hof[0]["rank"] == 0
    assert "llm-d-default" in (out / "report.md").read_text()


def test_evolve_bad_experiment_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "e.yaml"
    bad.write_text("name: x\nbogus: 1\n")
    assert main(["--experiment", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evolve: error:")
