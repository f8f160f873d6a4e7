"""blis_evo.output: Go JSON formatting, stdout sections vs the reference fixtures, results file."""
from __future__ import annotations

import glob
import io
import json
import math
import os
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_evo import metrics as BM
from blis_evo import output as OUT
from simulator import metrics as M
from tests.oracles import metrics_oracle as O

FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "fixtures",
                                         "blis_parity", "*.json")))


# --- Go encoding/json numbers and strings ------------------------------------------------------

@pytest.mark.parametrize("x,text", [
    (100.0, "100"), (0.0, "0"), (-0.0, "-0"), (0.1, "0.1"), (-2.5, "-2.5"),
    (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (1e-10, "1e-10"), (2.5e-100, "2.5e-100"),
    (1e-6, "0.000001"), (1.5e-5, "0.000015"), (0.0001, "0.0001"),
    (1e21, "1e+21"), (1.2345e22, "1.2345e+22"), (1e20, "100000000000000000000"),
    (1.234e17, "123400000000000000"), (1e16, "10000000000000000"),
    (123456789.123, "123456789.123"), (4901.065629999999, "4901.065629999999"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
    (9.160471, "9.160471"), (1e15, "1000000000000000"),
])
def test_go_float(x, text):
    assert OUT.go_float(x) == text


def test_go_float_rejects_non_finite():
    for x in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            OUT.go_float(x)
    assert OUT.go_json_dumps({"a": math.inf}, nonfinite_null=True) == '{\n  "a": null\n}'


_GO_NUM = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?|-?[1-9](\.\d+)?e[+-][1-9]\d*")


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_round_trips_and_has_go_shape(x):
    s = OUT.go_float(x)
    assert float(s) == x
    assert _GO_NUM.fullmatch(s), s
    assert ("e" in s) == (x != 0 and (abs(x) < 1e-6 or abs(x) >= 1e21))


def test_go_json_dumps_layout_and_strings():
    obj = {"a": 1, "b": [1.0, {"c": "x<y>&\"\\\n\t\x01\u2028é"}], "e": {}, "f": [], "g": True,
           "h": None}
    assert OUT.go_json_dumps(obj) == (
        '{\n  "a": 1,\n  "b": [\n    1,\n    {\n      "c": "x\\u003cy\\u003e\\u0026\\"\\\\\\n\\t'
        '\\u0001\\u2028é"\n    }\n  ],\n  "e": {},\n  "f": [],\n  "g": true,\n  "h": null\n}')
    assert json.loads(OUT.go_json_dumps(obj)) == {**obj, "b": [1, obj["b"][1]]}


# --- metric blocks ----------------------------------------------------------------------------

def test_format_metrics_block_matches_go_marshal_of_fixture():
    case = json.load(open(FIXTURES[0]))
    fields = list(M.MetricsBlock.__dataclass_fields__)
    block = M.MetricsBlock(**{k: case["cluster"][k] for k in fields if k in case["cluster"]})
    text = OUT.format_metrics_block(block)
    header, body = text.split("\n", 1)
    assert header == "=== Simulation Metrics ==="
    assert "kv_allocation_failures" not in body and '"requests"' not in body
    assert list(json.loads(body)) == [f for f in fields if f != "kv_allocation_failures"]
    assert json.loads(body) == case["cluster"]
    # Go's MarshalIndent: two-space indent, "key": value, integral floats without ".0"
    assert '\n  "vllm_estimated_duration_s": 4.240906,\n' in body
    blk2 = M.MetricsBlock("cluster", 1, 0, 0, 1, 1, 1, 2.0, kv_allocation_failures=2)
    t2 = OUT.format_metrics_block(blk2)
    assert '"vllm_estimated_duration_s": 2,' in t2
    assert t2.endswith('"scheduling_delay_p99_ms": 0,\n  "kv_allocation_failures": 2\n}')


# --- stdout sections vs fixtures -----------------------------------------------------------------

@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_sections_match_fixture(path):
    case = json.load(open(path))
    res = O.result_from_fixture(case)
    got = OUT.report_sections(res, priority_policy="constant",
                              fitness_weights=O.fixture_weights(case),
                              summarize_trace="--summarize-trace" in case["flags"])
    assert got == case["sections"]


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_print_run_report_layout(path):
    case = json.load(open(path))
    res = O.result_from_fixture(case)
    buf = io.StringIO()
    OUT.print_run_report(res, sim_cfg=None, policy=SimpleNamespace(priority="constant"),
                         fitness_weights=O.fixture_weights(case),
                         summarize_trace="--summarize-trace" in case["flags"], out=buf)
    text = buf.getvalue()
    parts = text.split("=== Simulation Metrics ===\n")
    assert parts[0] == ""
    blocks = [json.loads(p[: p.index("\n}") + 2]) for p in parts[1:]]
    expected = (case["instances"] if res.num_instances > 1 else []) + [case["cluster"]]
    assert [b["instance_id"] for b in blocks] == [b["instance_id"] for b in expected]
    for got, exp in zip(blocks, expected):
        assert list(got) == list(exp)
        for k in exp:
            if not k.startswith("itl_"):
                assert got[k] == exp[k], k
    tail = parts[-1][parts[-1].index("\n}") + 3:]
    want = "".join(f"=== {t} ===\n{b}\n" for t, b in case["sections"].items())
    assert tail == want


def test_no_blocks_when_nothing_completed_and_anomaly_section():
    res = O.make_result(n_inst=2, req_instance=[0, -1], arrival_us=[0, 5], ttft_us=[10.0, math.nan],
                        inst={"inst_completed": [0, 0], "inst_still_running": [1, 0],
                              "inst_sim_ended_us": [100, 100]}, rejected=1)
    buf = io.StringIO()
    OUT.print_run_report(res, sim_cfg=None, policy=SimpleNamespace(priority="slo-based"),
                         fitness_weights=None, summarize_trace=True, out=buf)
    assert buf.getvalue() == ("=== Anomaly Counters ===\nPriority Inversions: 0\n"
                              "HOL Blocking Events: 0\nRejected Requests: 1\n")


def test_per_slo_section_format():
    res = O.make_result(n_inst=1, req_instance=[0, 0, 0], arrival_us=[0, 1, 2],
                        ttft_us=[1000.0, 2000.0, 4000.0], e2e_us=[5000.0, 6000.0, math.nan],
                        slo_class=[0, 1, 1], slo_names=("", "interactive"))
    assert OUT.section_per_slo(res) == (
        "  default:\n    TTFT: mean=1000.00 p99=1000.00 (n=1)\n"
        "    E2E:  mean=5000.00 p99=5000.00 (n=1)\n"
        "  interactive:\n    TTFT: mean=3000.00 p99=3980.00 (n=2)\n"
        "    E2E:  mean=6000.00 p99=6000.00 (n=1)")
    one = O.make_result(n_inst=1, req_instance=[0], arrival_us=[0], ttft_us=[1.0],
                        slo_class=[1], slo_names=("", "x"))
    assert OUT.section_per_slo(one) is None


def test_trace_summary_section_without_routings():
    r = O.make_result(n_inst=2, req_instance=[-1], arrival_us=[0], rejected=1, trace_on=True)
    assert OUT.section_trace_summary(M.trace_summary(r)) == (
        "Total Decisions: 1\n  Admitted: 0\n  Rejected: 1\nUnique Targets: 0\n"
        "Mean Regret: 0.000000\nMax Regret: 0.000000")


# --- results file -----------------------------------------------------------------------------

def test_write_results_json(tmp_path):
    res = O.make_result(
        n_inst=2, req_instance=[1, 0, 0, -1], arrival_us=[500, 500, 100, 0],
        ttft_us=[1500.0, 2500.0, math.nan, math.nan], e2e_us=[9000.0, 8000.0, math.nan, math.nan],
        itl_us=[250.0, 125.5, math.nan, math.nan], sched_delay_us=[700, 300, -1, -1],
        n_in=[10, 11, 12, 13], n_out=[4, 5, 6, 7], itl=([250.0, 125.0], [3, 4], [1, 0]),
        inst={"inst_completed": [1, 1], "inst_still_queued": [1, 0], "inst_dropped": [0, 2],
              "inst_sim_ended_us": [1_000_000, 2_000_000], "inst_output_tokens": [5, 4],
              "inst_cache_hit_rate": [0.5, 0.0]},
        slo_class=[1, 0, 0, 0], slo_names=("", "batch"), tenant=[0, 1, 0, 0],
        tenant_names=("", "t1"), rejected=1, route_target=[0, 0, 1], trace_on=True)
    path = tmp_path / "out.json"
    OUT.write_results_json(res, str(path), sim_cfg=None, policy=SimpleNamespace(priority="constant"),
                           fitness_weights={"throughput": 1.0}, summarize_trace=False)
    assert os.listdir(tmp_path) == ["out.json"]
    doc = json.loads(path.read_text())
    assert doc["instance_id"] == "cluster" and doc["completed_requests"] == 2
    assert doc["injected_requests"] == 3 and doc["dropped_unservable"] == 2
    assert doc["rejected_requests"] == 1
    assert doc["kv_cache"] == {"preemption_rate": 0, "cache_hit_rate": 0.25, "kv_thrashing_rate": 0}
    assert doc["fitness"] == {"score": 1 / 101, "components": {"throughput": 1 / 101}}
    assert doc["anomalies"] == {"priority_inversions": 0, "hol_blocking_events": 0,
                                "rejected_requests": 1}
    assert doc["trace_summary"]["target_distribution"] == {"instance_0": 2, "instance_1": 1}
    assert [b["instance_id"] for b in doc["instances"]] == ["instance_0", "instance_1"]
    rows = doc["requests"]
    assert [r["requestID"] for r in rows] == ["request_2", "request_0", "request_1"]
    assert rows[0] == {"arrived_at": 0.0001, "requestID": "request_2", "num_prefill_tokens": 12,
                       "num_decode_tokens": 6, "ttft_ms": 0, "itl_ms": 0, "e2e_ms": 0,
                       "scheduling_delay_ms": 0, "handled_by": "instance_0"}
    assert rows[1] == {"arrived_at": 0.0005, "requestID": "request_0", "num_prefill_tokens": 10,
                       "num_decode_tokens": 4, "ttft_ms": 1.5, "itl_ms": 0.25, "e2e_ms": 9.0,
                       "scheduling_delay_ms": 0.7, "slo_class": "batch", "handled_by": "instance_1"}
    assert rows[2]["tenant_id"] == "t1" and "slo_class" not in rows[2]
    assert rows[2]["itl_ms"] == 0.1255
    # Go number formatting in the file too
    assert '"ttft_ms": 0,' in path.read_text()


def test_evaluate_public_api():
    res = O.make_result(n_inst=1, req_instance=[0], arrival_us=[0], ttft_us=[1000.0],
                        e2e_us=[1000.0], inst={"inst_sim_ended_us": [1_000_000]})
    raw, fr = BM.evaluate(res, "constant", {"mean_e2e": 2.0})
    assert isinstance(raw, BM.RawMetrics) and raw.requests_per_sec == 1.0
    assert fr == BM.FitnessResult(1.0, {"mean_e2e": 0.5})
    assert BM.evaluate(res, "constant", None)[1] == BM.FitnessResult(0.0, {})
