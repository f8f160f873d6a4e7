"""``blis run`` with the SLO-tier and flow-control flags: a run with them reports the gateway
and per-class outcomes; bad values are one line naming the flag and the allowed values, exit 2,
nothing written."""
from __future__ import annotations

import json

import pytest

from blis_evo.cli import main

RUN = ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--num-requests", "40",
       "--rate", "40"]


@pytest.mark.parametrize("extra, needle", [
    (["--max-gateway-queue-depth", "-1"], "--max-gateway-queue-depth must be an integer in [0,"),
    (["--per-band-capacity", "-3"], "--per-band-capacity must be an integer in [0,"),
    (["--request-ttl", "-5"], "--request-ttl must be an integer in [0,"),
    (["--saturation-detector", "busy"], "valid: concurrency, never, utilization"),
    (["--dispatch-order", "lifo"], "valid: fifo, priority, slo-deadline"),
    (["--fairness-policy", "drr"], "valid: global-strict, round-robin"),
    (["--slo-targets", "critical"], "--slo-targets: invalid entry 'critical' (expected CLASS=µs"),
    (["--slo-targets", "critical=-3"], "value for 'critical' must be a positive integer (µs)"),
    (["--slo-targets", "critical=5,critical=6"], "class 'critical' given twice"),
    (["--usage-limit-threshold", "0"], "--usage-limit-threshold must be a finite value in"),
    (["--preemption-policy", "random"], "valid: fcfs, priority"),
    (["--tier-shed-min-priority", "101"], "--tier-shed-min-priority must be an integer in [-100, 100]"),
])
def test_bad_values_exit_2_one_line_nothing_written(tmp_path, capsys, extra, needle):
    out = tmp_path / "r.json"
    code = main(RUN + ["--flow-control", "--results-path", str(out)] + extra)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err


def test_run_reports_gateway_and_outcomes(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(RUN + ["--flow-control", "--saturation-detector", "concurrency",
                       "--max-concurrency", "2", "--dispatch-order", "priority",
                       "--results-path", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["gateway"]["peak_depth"] > 0 and doc["gateway"]["queue_wait"]["count"] == 40
    overall = doc["outcomes"]["overall"]
    assert overall["injected"] == 40 and overall["completed"] == 40
