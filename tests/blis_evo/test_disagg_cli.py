"""``blis run`` with a disaggregated deployment: flags and bundle section, results JSON, and
one-line exit-2 errors for bad P/D configuration."""
from __future__ import annotations

import json

import pytest

from tests.blis_evo.test_cli import BASE, MODEL, run_blis

PD = ["--architecture", "disaggregated", "--prefill-replicas", "1", "--decode-replicas", "2"]

BAD = {
    "architecture": (["--architecture", "split"], "--architecture: unknown value 'split'"),
    "decider": ([*PD, "--pd-decider", "sometimes"], "--pd-decider: unknown value"),
    "replicas": ([*PD[:2], "--prefill-replicas", "0"], "--prefill-replicas: must be an integer >= 1"),
    "bandwidth": ([*PD, "--pd-transfer-bandwidth", "0"], "--pd-transfer-bandwidth: must be a finite"),
    "pipelining": ([*PD, "--pd-transfer-pipelining"], "needs --pd-transfer-granularity block"),
    "num-instances": ([*PD, "--num-instances", "5"], "--num-instances 5 != --prefill-replicas 1"),
    "decode-scorers": ([*PD, "--pd-decode-scorers", "nope:1"], "--pd-decode-scorers: unknown scorer"),
    "yaml-key": (["--policy-config", "TMP/p.yaml"], "disaggregation.transfer.bandwith_gbps"),
}
BAD_YAML = "disaggregation:\n  architecture: disaggregated\n  transfer: {bandwith_gbps: 3}\n"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_pd_config_exits_2_with_one_line(case, tmp_path):
    (tmp_path / "p.yaml").write_text(BAD_YAML)
    args, fragment = BAD[case]
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    res = tmp_path / "r.json"
    proc = run_blis(["run", *BASE, *args, "--results-path", str(res)], cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blis: error: "), proc.stderr
    assert fragment in lines[0], lines[0]
    assert not res.exists()


def test_bundle_section_and_flags_give_the_same_run(tmp_path):
    """The bundle section and the equivalent flags configure the same deployment; the results
    file reports pools, transfers and the pd_backpressure anomaly."""
    (tmp_path / "p.yaml").write_text(
        "disaggregation:\n  architecture: disaggregated\n  prefill_replicas: 1\n"
        "  decode_replicas: 2\n  transfer: {bandwidth_gbps: 10, granularity: block, pipelining: true}\n")
    common = ["run", *MODEL, "--num-requests", "30", "--rate", "20", "--seed", "3"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    pa = run_blis([*common, "--policy-config", str(tmp_path / "p.yaml"), "--results-path", str(a)],
                  cwd=tmp_path)
    pb = run_blis([*common, *PD, "--pd-transfer-bandwidth", "10", "--pd-transfer-granularity",
                   "block", "--pd-transfer-pipelining", "--results-path", str(b)], cwd=tmp_path)
    assert pa.returncode == 0 and pb.returncode == 0, pa.stderr + pb.stderr
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert da == db
    pd = da["disaggregation"]
    assert pd["pools"]["prefill"]["instances"] == 1 and pd["pools"]["decode"]["instances"] == 2
    assert pd["transfers"] == pd["disaggregated_requests"] > 0
    assert pd["transfer_bytes"] > 0 and 0 < pd["pools"]["prefill"]["busy_fraction"] <= 1
    assert da["anomalies"]["pd_backpressure"] == 0
    assert len(da["instances"]) == 3


def test_pd_flags_on_a_monolithic_run_warn(tmp_path):
    """P/D flags without --architecture disaggregated change nothing, and the user is told."""
    from tests.blis_evo.test_cli import call_main

    res = tmp_path / "r.json"
    code, _, err = call_main(["run", *BASE, "--prefill-replicas", "2", "--results-path", str(res)])
    assert code == 0, err
    assert "P/D flags (--prefill-replicas, --decode-replicas, --pd-*) have no effect" in err
    assert "disaggregation" not in json.loads(res.read_text())
