"""`blis run --trace-output DIR` and replay through `--workload-spec DIR`: identical results."""
import contextlib
import io
import json
from pathlib import Path

import pytest

from blis_evo import cli

EXAMPLES = Path(cli.__file__).resolve().parent / "data" / "examples"
BASE = ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100", "--tp", "1",
        "--vllm-version", "vllm/vllm-openai:v0.8.4", "--num-instances", "4",
        "--routing-policy", "weighted"]


def call_main(argv):
    """``cli.main(argv)`` with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _round_trip(tmp_path, workload_args, replay_target=lambda d: d):
    d, d2 = tmp_path / "trace", tmp_path / "trace2"
    r1, r2 = tmp_path / "r1.json", tmp_path / "r2.json"
    c1, o1, e1 = call_main([*BASE, *workload_args, "--trace-output", d, "--results-path", r1])
    assert c1 == 0, e1
    assert sorted(p.name for p in d.iterdir()) == ["header.yaml", "tokens.npz", "trace.csv"]
    c2, o2, e2 = call_main([*BASE, "--workload-spec", replay_target(d), "--trace-output", d2,
                            "--results-path", r2])
    assert c2 == 0, e2
    assert r1.read_bytes() == r2.read_bytes()
    assert o1 == o2
    # exporting the replay reproduces the trace itself
    for name in ("header.yaml", "trace.csv", "tokens.npz"):
        assert (d / name).read_bytes() == (d2 / name).read_bytes(), name
    return json.loads(r1.read_text()), d


@pytest.mark.parametrize("spec", ["prefix-affinity-demo.yaml", "multiturn-chat-demo.yaml"])
def test_spec_round_trip_identical_results(tmp_path, spec):
    doc, d = _round_trip(tmp_path, ["--workload-spec", EXAMPLES / spec])
    assert doc["completed_requests"] > 0
    rows = (d / "trace.csv").read_text().splitlines()
    assert len(rows) == len(doc["requests"]) + 1


def test_round_trip_through_the_header_file_with_network_and_slo_targets(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: '1'\nseed: 5\naggregate_rate: 50\nnum_requests: 40\nclients:\n"
        "  - id: a\n    tenant_id: t1\n    slo_class: realtime\n    rate_fraction: 1\n"
        "    arrival: {process: poisson}\n    network: {rtt_ms: 3, bandwidth_mbps: 10}\n"
        "    slo_targets: {ttft_ms: 50, e2e_ms: 2000}\n"
        "    input_distribution: {type: exponential, params: {mean: 100}}\n"
        "    output_distribution: {type: exponential, params: {mean: 20}}\n"
        "  - id: b\n    tenant_id: t2\n    slo_class: batch\n    rate_fraction: 1\n"
        "    arrival: {process: poisson}\n"
        "    input_distribution: {type: exponential, params: {mean: 300}}\n"
        "    output_distribution: {type: exponential, params: {mean: 50}}\n")
    doc, _ = _round_trip(tmp_path, ["--workload-spec", spec], lambda d: d / "header.yaml")
    assert "slo_attainment" in doc
    assert any("client_ttft_ms" in r for r in doc["requests"])


def test_v1_csv_trace_still_works_and_round_trips(tmp_path):
    csv = tmp_path / "v1.csv"
    csv.write_text("arrival_time,request_id,model,prefill_tokens,decode_tokens\n"
                   '0.0,r0,m,"[1,2,3,4]","[5,6]"\n'
                   '0.001,r1,m,"[1,2,3,9,9]","[7]"\n'
                   '0.002,r2,m,"[8,8]","[1,2,3]"\n')
    _round_trip(tmp_path, ["--workload", "traces", "--workload-traces-filepath", csv])


def test_replay_flags_horizon_and_num_requests(tmp_path):
    d = tmp_path / "trace"
    assert call_main([*BASE, "--workload-spec", EXAMPLES / "prefix-affinity-demo.yaml",
                      "--trace-output", d])[0] == 0
    r = tmp_path / "r.json"
    code, _, err = call_main([*BASE, "--workload-spec", d, "--num-requests", "15",
                              "--results-path", r])
    assert code == 0, err
    assert len(json.loads(r.read_text())["requests"]) == 15


def _one_line_error(code, out, err, fragment):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("blis: error: ") and fragment in err
    assert "Traceback" not in err


def test_malformed_trace_is_a_one_line_error(tmp_path):
    d = tmp_path / "trace"
    assert call_main([*BASE, "--workload-spec", EXAMPLES / "prefix-affinity-demo.yaml",
                      "--trace-output", d])[0] == 0
    text = (d / "trace.csv").read_text().splitlines()
    fields = text[3].split(",")
    fields[9] = "lots"
    text[3] = ",".join(fields)
    (d / "trace.csv").write_text("\n".join(text) + "\n")
    r = tmp_path / "r.json"
    code, out, err = call_main([*BASE, "--workload-spec", d, "--results-path", r])
    _one_line_error(code, out, err, "row 4 column 10 (output_tokens)")
    assert not r.exists() and out == ""

    (d / "header.yaml").write_text("trace_version: 3\n")
    code, out, err = call_main([*BASE, "--workload-spec", d / "header.yaml"])
    _one_line_error(code, out, err, "trace_version must be 2")


def test_trace_output_must_be_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, out, err = call_main([*BASE, "--workload-spec", EXAMPLES / "prefix-affinity-demo.yaml",
                                "--trace-output", f])
    _one_line_error(code, out, err, "--trace-output")
    assert out == ""
