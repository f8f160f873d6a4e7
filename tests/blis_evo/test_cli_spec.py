"""`blis run --workload-spec`: the shipped example specs run end to end on 4 instances."""
import contextlib
import io
import json
from pathlib import Path

import pytest

from blis_evo import cli

EXAMPLES = Path(cli.__file__).resolve().parent / "data" / "examples"
SPECS = ["servegen-language.yaml", "prefix-affinity-demo.yaml", "multiturn-chat-demo.yaml"]
BASE = ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100", "--tp", "1",
        "--vllm-version", "vllm/vllm-openai:v0.8.4", "--num-instances", "4",
        "--routing-policy", "weighted"]


def call_main(argv):
    """``cli.main(argv)`` with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("spec", SPECS)
def test_example_spec_runs_on_four_instances(tmp_path, spec):
    res = tmp_path / "r.json"
    code, out, err = call_main([*BASE, "--workload-spec", str(EXAMPLES / spec),
                                "--results-path", str(res)])
    assert code == 0, err
    doc = json.loads(res.read_text())
    assert doc["completed_requests"] > 0
    assert out.count("=== Simulation Metrics ===") == 5  # 4 instances + cluster
    classes = {r.get("slo_class", "") for r in doc["requests"]}
    assert ("=== Per-SLO Metrics ===" in out) == (len(classes) >= 2)
    assert set(doc["per_slo"]) == {c or "default" for c in classes}
    tenants = {r.get("tenant_id", "") for r in doc["requests"]}
    assert ("fairness" in doc) == (len(tenants) >= 2)


def test_spec_seed_flag_overrides_and_num_requests_flag_bounds(tmp_path):
    spec = str(EXAMPLES / "prefix-affinity-demo.yaml")
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    c = tmp_path / "c.json"
    assert call_main([*BASE, "--workload-spec", spec, "--results-path", str(a)])[0] == 0
    assert call_main([*BASE, "--workload-spec", spec, "--seed", "7", "--results-path", str(b)])[0] == 0
    assert call_main([*BASE, "--workload-spec", spec, "--num-requests", "20",
                      "--results-path", str(c)])[0] == 0
    ra, rb, rc = (json.loads(p.read_text()) for p in (a, b, c))
    assert [r["num_prefill_tokens"] for r in ra["requests"]] != [
        r["num_prefill_tokens"] for r in rb["requests"]]
    assert len(rc["requests"]) == 20


@pytest.mark.parametrize("text, fragment", [
    ("version: '1'\naggregate_rate: 10\nnum_requests: 5\nclients: []\nbogus: 1\n", "bogus"),
    ("version: '1'\naggregate_rate: -1\nnum_requests: 5\nclients: []\n", "aggregate_rate"),
])
def test_bad_spec_is_one_line_exit_2(tmp_path, text, fragment):
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    res = tmp_path / "r.json"
    code, out, err = call_main([*BASE, "--workload-spec", str(p), "--results-path", str(res)])
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("blis: error:") and fragment in lines[0]
    assert out == "" and not res.exists()


def test_missing_spec_file_is_one_line_exit_2(tmp_path):
    code, out, err = call_main([*BASE, "--workload-spec", str(tmp_path / "nope.yaml")])
    assert code == 2 and err.startswith("blis: error:") and "nope.yaml" in err
