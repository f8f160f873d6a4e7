"""Client network model (reference ``sim/workload/network.go``) and its results-JSON fields;
``--workload-spec preset:NAME`` end to end."""
from __future__ import annotations

import contextlib
import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from blis_evo import cli
from blis_evo.output import request_rows
from simulator.workload.generator import generate_spec_requests
from simulator.workload.spec import (NetworkSpec, client_e2e_us, client_ttft_us,
                                     parse_workload_spec, upload_delay_us)

BASE = ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100", "--tp", "1",
        "--vllm-version", "vllm/vllm-openai:v0.8.4", "--num-instances", "2"]


def call_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


# -- the formulas (the reference's network_test.go cases) ------------------------------------

def test_rtt_only():
    assert client_ttft_us(500.0, NetworkSpec(rtt_ms=10.0), 100) == 10500.0


def test_upload_delay():
    # 1000 tokens x 4 bytes x 8 bits = 32,000 bits at 100 Mbit/s = 320 µs
    assert upload_delay_us(100.0, 1000) == pytest.approx(320.0)
    assert client_ttft_us(500.0, NetworkSpec(0.0, 100.0), 1000) == pytest.approx(820.0)


def test_no_network_is_unchanged():
    assert client_ttft_us(500.0, None, 100) == 500.0
    assert client_e2e_us(1000.0, None, 500, 200) == 1000.0


def test_e2e_adds_rtt_upload_download():
    # 5 ms RTT = 5000 µs; upload 500*32/100 = 160 µs; download 200*32/100 = 64 µs
    assert client_e2e_us(1000.0, NetworkSpec(5.0, 100.0), 500, 200) == pytest.approx(6224.0)


def test_zero_bandwidth_means_unlimited():
    assert client_e2e_us(1000.0, NetworkSpec(2.0, 0.0), 500, 200) == 3000.0
    np.testing.assert_array_equal(upload_delay_us(np.array([0.0, -1.0, 8.0]), 100),
                                  [0.0, 0.0, 400.0])


# -- per-request network arrays from the generator -------------------------------------------

def _doc(net):
    base = {"arrival": {"process": "poisson"},
            "input_distribution": {"type": "exponential", "params": {"mean": 100}},
            "output_distribution": {"type": "exponential", "params": {"mean": 50}}}
    a = {"id": "far", "tenant_id": "t-far", "slo_class": "interactive", "rate_fraction": 0.5,
         **base}
    if net:
        a["network"] = {"rtt_ms": 20, "bandwidth_mbps": 8}
    b = {"id": "near", "tenant_id": "t-near", "slo_class": "batch", "rate_fraction": 0.5, **base}
    return {"version": "1", "seed": 3, "aggregate_rate": 20.0, "num_requests": 60,
            "clients": [a, b]}


def test_generator_exposes_network_per_request():
    gen = generate_spec_requests(parse_workload_spec(_doc(True)), horizon_us=None,
                                 max_requests=None)
    net = gen.network
    far = gen.client == 0
    assert far.any() and (~far).any()
    np.testing.assert_array_equal(net.rtt_ms[far], 20.0)
    np.testing.assert_array_equal(net.bandwidth_mbps[far], 8.0)
    assert np.all(np.isnan(net.rtt_ms[~far])) and np.all(net.bandwidth_mbps[~far] == 0)
    np.testing.assert_array_equal(net.mask, far)
    assert net.any
    wl = gen.workload
    got = net.client_ttft_us(np.full(wl.num_requests, 1000.0), wl.n_in)
    np.testing.assert_allclose(got[far], 1000.0 + 20_000.0 + wl.n_in[far] * 4.0)
    assert np.all(np.isnan(got[~far]))
    got = net.client_e2e_us(np.zeros(wl.num_requests), wl.n_in, wl.n_out)
    np.testing.assert_allclose(got[far], 20_000.0 + (wl.n_in[far] + wl.n_out[far]) * 4.0)
    plain = generate_spec_requests(parse_workload_spec(_doc(False)), horizon_us=None,
                                   max_requests=None)
    assert not plain.network.any


# -- request rows -----------------------------------------------------------------------------

def _fake_result():
    nan = math.nan
    return SimpleNamespace(
        req_instance=np.array([0, 1, 0, -1]),
        arrival_us=np.array([0, 1_000_000, 2_000_000, 3_000_000]),
        ttft_us=np.array([2000.0, 3000.0, nan, nan]),
        itl_us=np.array([10.0, 20.0, nan, nan]),
        e2e_us=np.array([10_000.0, 20_000.0, nan, nan]),
        sched_delay_us=np.array([100, 200, -1, -1]),
        n_in=np.array([1000, 250, 80, 10]),
        n_out=np.array([500, 125, 40, 5]),
        slo_class=None, tenant=None, slo_names=("",), tenant_names=("",))


def test_request_rows_client_latencies_hand_computed():
    res = _fake_result()
    net = SimpleNamespace(rtt_ms=np.array([10.0, math.nan, 4.0, 1.0]),
                          bandwidth_mbps=np.array([100.0, 0.0, 0.0, 50.0]))
    rows = request_rows(res, net)
    assert [r["requestID"] for r in rows] == ["request_0", "request_1", "request_2"]
    r0, r1, r2 = rows
    # request 0: TTFT 2 ms + 10 ms RTT + 1000*32/100 µs (0.32 ms) upload
    assert r0["client_ttft_ms"] == pytest.approx(12.32)
    # E2E 10 ms + 10 ms + 0.32 ms upload + 500*32/100 µs (0.16 ms) download
    assert r0["client_e2e_ms"] == pytest.approx(20.48)
    assert list(r0)[-2:] == ["client_ttft_ms", "client_e2e_ms"]
    assert "client_ttft_ms" not in r1 and "client_e2e_ms" not in r1
    # request 2 was routed but has no TTFT/E2E: 0 like ttft_ms / e2e_ms
    assert (r2["ttft_ms"], r2["client_ttft_ms"], r2["client_e2e_ms"]) == (0.0, 0.0, 0.0)


def test_request_rows_without_network_unchanged():
    res = _fake_result()
    plain = request_rows(res)
    assert request_rows(res, None) == plain
    none = SimpleNamespace(rtt_ms=np.full(4, math.nan), bandwidth_mbps=np.zeros(4))
    assert request_rows(res, none) == plain
    assert all("client_ttft_ms" not in r for r in plain)


def test_request_rows_rejects_misaligned_arrays():
    net = SimpleNamespace(rtt_ms=np.zeros(3), bandwidth_mbps=np.zeros(3))
    with pytest.raises(ValueError):
        request_rows(_fake_result(), net)


# -- CLI --------------------------------------------------------------------------------------

def test_cli_results_carry_client_latencies(tmp_path):
    import yaml

    spec = tmp_path / "net.yaml"
    spec.write_text(yaml.safe_dump(_doc(True)))
    res = tmp_path / "r.json"
    code, out, err = call_main([*BASE, "--workload-spec", str(spec), "--results-path", str(res)])
    assert code == 0, err
    rows = json.loads(res.read_text())["requests"]
    far = [r for r in rows if r.get("tenant_id") == "t-far"]
    near = [r for r in rows if r.get("tenant_id") == "t-near"]
    assert far and near
    for r in near:
        assert "client_ttft_ms" not in r and "client_e2e_ms" not in r
    for r in far:
        if r["ttft_ms"] > 0:
            up = r["num_prefill_tokens"] * 32 / 8 / 1000  # ms at 8 Mbit/s
            assert r["client_ttft_ms"] == pytest.approx(r["ttft_ms"] + 20 + up)
        if r["e2e_ms"] > 0:
            down = r["num_decode_tokens"] * 32 / 8 / 1000
            assert r["client_e2e_ms"] == pytest.approx(r["e2e_ms"] + 20 + up + down)
    # no network block anywhere: no client fields
    spec.write_text(yaml.safe_dump(_doc(False)))
    assert call_main([*BASE, "--workload-spec", str(spec), "--results-path", str(res)])[0] == 0
    assert all("client_ttft_ms" not in r for r in json.loads(res.read_text())["requests"])


def test_cli_preset_runs_and_rate_flag_sets_rate(tmp_path):
    res = tmp_path / "p.json"
    code, out, err = call_main([*BASE, "--workload-spec", "preset:mixed-slo", "--rate", "50",
                                "--num-requests", "120", "--results-path", str(res)])
    assert code == 0, err
    doc = json.loads(res.read_text())
    assert len(doc["requests"]) == 120
    assert "=== Per-SLO Metrics ===" in out
    assert set(doc["per_slo"]) == {"realtime", "interactive", "batch"}
    # 120 arrivals at 50 req/s end near 2.4 s (at the default 1 req/s they would take ~120 s)
    assert max(r["arrived_at"] for r in doc["requests"]) < 10


def test_cli_unknown_preset_is_one_line_error():
    code, out, err = call_main([*BASE, "--workload-spec", "preset:nope"])
    assert code == 2
    assert err.startswith("blis: error:") and "mixed-slo" in err and err.count("\n") == 1
