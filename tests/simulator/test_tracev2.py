"""Trace v2 (simulator.workload.tracev2): write, strict read, token sidecar, reference replay."""
import os
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.workload.generator import generate_spec_requests
from simulator.workload.spec import parse_workload_spec
from simulator.workload.tracev2 import (COLUMNS, REPLAY_PREFIX_LENGTH, clients_from_spec,
                                        head_trace, is_trace_v2, load_trace_v2, read_trace_v2,
                                        write_trace_v2)
from simulator.workload.types import workload_from_lists


def _deg(v):
    return {"type": "gaussian", "params": {"mean": v, "std_dev": 0, "min": v, "max": v}}


def _spec():
    """Three clients: prefix group + network + SLO targets, multi-turn sessions, multimodal."""
    doc = {"version": "1", "seed": 3, "aggregate_rate": 200.0, "num_requests": 60, "clients": [
        {"id": "chat", "tenant_id": "A", "slo_class": "interactive", "rate_fraction": 1.0,
         "arrival": {"process": "poisson"}, "streaming": True, "prefix_group": "sys",
         "prefix_length": 40,
         "network": {"rtt_ms": 5.0, "bandwidth_mbps": 100},
         "slo_targets": {"ttft_ms": 200, "e2e_ms": 5000},
         "input_distribution": _deg(20), "output_distribution": _deg(10)},
        {"id": "mt", "tenant_id": "B", "slo_class": "batch", "rate_fraction": 1.0,
         "arrival": {"process": "poisson"},
         "input_distribution": _deg(12), "output_distribution": _deg(6),
         "reasoning": {"reason_ratio_distribution": _deg(30),
                       "multi_turn": {"max_rounds": 3, "think_time_us": 1000,
                                      "context_growth": "accumulate"}}},
        {"id": "mm", "tenant_id": "A", "slo_class": "batch", "rate_fraction": 1.0,
         "arrival": {"process": "poisson"},
         "multimodal": {"text_distribution": _deg(10), "image_distribution": _deg(100),
                        "image_count_distribution": _deg(2)},
         "output_distribution": _deg(5)},
    ]}
    return parse_workload_spec(doc)


def _written(tmp_path):
    spec = _spec()
    reqs = generate_spec_requests(spec, horizon_us=None, max_requests=None)
    d = tmp_path / "trace"
    paths = write_trace_v2(d, reqs.workload, header={"mode": "generated", "workload_spec": "x"},
                           details=reqs, clients=clients_from_spec(spec), horizon=10**9,
                           slo_targets={"interactive": {"ttft_ms": 200.0, "e2e_ms": 5000.0}})
    return spec, reqs, d, paths


def _same_workload(a, b):
    for f in ("arrival_us", "n_in", "n_out", "token_ptr", "tokens", "slo_class", "tenant"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.slo_names == b.slo_names and a.tenant_names == b.tenant_names


def test_round_trip_is_exact(tmp_path):
    spec, reqs, d, paths = _written(tmp_path)
    assert sorted(os.listdir(d)) == ["header.yaml", "tokens.npz", "trace.csv"]
    tr = read_trace_v2(d)
    assert tr.exact_tokens and tr.horizon == 10**9
    assert tr.slo_targets == {"interactive": {"ttft_ms": 200.0, "e2e_ms": 5000.0}}
    _same_workload(reqs.workload, tr.workload)
    r = tr.requests
    assert r.client_ids == reqs.client_ids
    for f in ("client", "session", "round_index", "reason_ratio", "prefix_length", "text_tokens",
              "image_tokens", "audio_tokens", "video_tokens"):
        np.testing.assert_array_equal(getattr(r, f), getattr(reqs, f), err_msg=f)
    np.testing.assert_array_equal(r.network.rtt_ms, reqs.network.rtt_ms)
    np.testing.assert_array_equal(r.network.bandwidth_mbps, reqs.network.bandwidth_mbps)
    assert (r.session >= 0).any() and (r.image_tokens == 200).any()
    # the header file works as well as the directory
    _same_workload(load_trace_v2(paths.header), reqs.workload)


def test_csv_has_the_reference_columns_and_writing_is_deterministic(tmp_path):
    _, reqs, d, _ = _written(tmp_path)
    lines = (d / "trace.csv").read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS) and len(COLUMNS) == 22
    assert len(lines) == reqs.workload.num_requests + 1
    first = {p: (d / p).read_bytes() for p in os.listdir(d)}
    write_trace_v2(d, reqs.workload, header={"mode": "generated", "workload_spec": "x"},
                   details=reqs, clients=clients_from_spec(_spec()), horizon=10**9,
                   slo_targets={"interactive": {"ttft_ms": 200.0, "e2e_ms": 5000.0}})
    assert {p: (d / p).read_bytes() for p in os.listdir(d)} == first
    assert "created_at" not in (d / "header.yaml").read_text()


def test_plain_workload_without_codes_round_trips(tmp_path):
    wl = workload_from_lists([0, 5, 5, 9], [[1, 2], [3], [4, 5, 6], [7]], [[8], [9, 10], [], [1]])
    write_trace_v2(tmp_path, wl, header={})
    back = load_trace_v2(tmp_path)
    assert back.slo_class is None and back.tenant is None
    for f in ("arrival_us", "n_in", "n_out", "token_ptr", "tokens"):
        np.testing.assert_array_equal(getattr(back, f), getattr(wl, f))


REF_CSV = (",".join(COLUMNS) + "\n"
           "0,c1,t1,batch,,0,g,true,10,4,10,0,0,0,0.5,100,100,0,0,0,ok,\n"
           "1,c2,t2,,,0,,false,3,2,3,0,0,0,0,200,200,0,0,0,ok,\n"
           "2,c1,t1,batch,,0,g,true,7,1,7,0,0,0,0,300,300,0,0,0,error, boom \n")


def _ref_trace(tmp_path, csv_text=REF_CSV, header="trace_version: 2\ntime_unit: microseconds\n"
               "mode: real\nwarm_up_requests: 0\n"):
    (tmp_path / "header.yaml").write_text(header)
    (tmp_path / "trace.csv").write_text(csv_text)
    return tmp_path


def test_reference_trace_replays_with_synthetic_ids(tmp_path):
    d = _ref_trace(tmp_path)
    assert is_trace_v2(d) and is_trace_v2(d / "header.yaml")
    tr = read_trace_v2(d, seed=11)
    wl = tr.workload
    assert not tr.exact_tokens
    P = REPLAY_PREFIX_LENGTH
    np.testing.assert_array_equal(wl.n_in, [10 + P, 3, 7 + P])  # prefix prepended, as replay.go
    np.testing.assert_array_equal(wl.n_out, [4, 2, 1])
    np.testing.assert_array_equal(wl.arrival_us, [100, 200, 300])
    t0 = wl.tokens[wl.token_ptr[0]:wl.token_ptr[0] + P]
    t2 = wl.tokens[wl.token_ptr[2]:wl.token_ptr[2] + P]
    np.testing.assert_array_equal(t0, t2)
    assert wl.slo_names == ("batch", "") and wl.tenant_names == ("t1", "t2")
    np.testing.assert_array_equal(wl.slo_class, [0, 1, 0])
    assert tr.requests.client_ids == ("c1", "c2")
    assert np.isnan(tr.requests.network.rtt_ms).all()
    # deterministic in the seed
    _same_workload(load_trace_v2(d, seed=11), wl)
    assert not np.array_equal(load_trace_v2(d, seed=12).tokens, wl.tokens)


def test_head_trace(tmp_path):
    _, reqs, d, _ = _written(tmp_path)
    tr = head_trace(read_trace_v2(d), 7)
    assert tr.workload.num_requests == 7 and tr.requests.client.shape == (7,)
    np.testing.assert_array_equal(tr.workload.tokens,
                                  reqs.workload.tokens[:reqs.workload.token_ptr[7]])


def test_detection_rejects_specs_and_missing_paths(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: '1'\nclients: []\n")
    assert not is_trace_v2(spec)
    assert not is_trace_v2(tmp_path / "nope")
    assert not is_trace_v2(tmp_path)  # a directory without header.yaml
    assert not is_trace_v2("preset:bursty")


BAD_ROWS = [
    ("0,c1,t1,batch,,0,g,true,x,4,10,0,0,0,0,100,100,0,0,0,ok,\n", "row 2 column 9 (input_tokens)"),
    ("0,c1,t1,batch,,0,g,true,-1,4,10,0,0,0,0,100,100,0,0,0,ok,\n", "column 9 (input_tokens)"),
    ("0,c1,t1,batch,,0,g,yes,1,4,10,0,0,0,0,100,100,0,0,0,ok,\n", "column 8 (streaming)"),
    ("0,c1,t1,batch,,0,g,true,1,4,10,0,0,0,2.5,100,100,0,0,0,ok,\n", "column 15 (reason_ratio)"),
    ("0,c1,t1,batch,,0,g,true,1,4,10,0,0,0,0,1.5,100,0,0,0,ok,\n", "column 16 (arrival_time_us)"),
    ("0,c1,t1,batch,,0,g,true,1,4,10,0,0,0,0,100,100,0,0,0,fine,\n", "column 21 (status)"),
    ("0,c1,t1,batch,,0,g,true,1,4\n", "row 2: has 10 columns"),
]


@pytest.mark.parametrize("row, fragment", BAD_ROWS)
def test_malformed_rows_name_file_row_and_column(tmp_path, row, fragment):
    d = _ref_trace(tmp_path, ",".join(COLUMNS) + "\n" + row)
    with pytest.raises(InputError) as ei:
        load_trace_v2(d)
    msg = str(ei.value)
    assert fragment in msg and "trace.csv" in msg and "\n" not in msg


@pytest.mark.parametrize("header, fragment", [
    ("trace_version: 1\n", "trace_version must be 2"),
    ("trace_version: 2\ntime_unit: seconds\n", "time_unit"),
    ("trace_version: 2\nbogus: 1\n", "bogus"),
    ("trace_version: 2\nserver: {max_num_seqs: many}\n", "server.max_num_seqs"),
    ("trace_version: 2\nmode: dreamed\n", "mode"),
    ("trace_version: [2\n", "invalid YAML"),
    ("- 2\n", "mapping"),
    ("trace_version: 2\nblis_evo: {slo_names: [a, a]}\n", "slo_names"),
])
def test_malformed_headers(tmp_path, header, fragment):
    d = _ref_trace(tmp_path, header=header)
    with pytest.raises(InputError) as ei:
        load_trace_v2(d / "header.yaml")
    assert fragment in str(ei.value) and "header.yaml" in str(ei.value)


def test_bad_csv_header_row_and_missing_data(tmp_path):
    d = _ref_trace(tmp_path, "request_id,foo\n")
    with pytest.raises(InputError, match="row 1: CSV header"):
        load_trace_v2(d)
    os.unlink(d / "trace.csv")
    with pytest.raises(InputError, match="data file"):
        load_trace_v2(d)


def test_sidecar_must_match_the_rows(tmp_path):
    _, reqs, d, _ = _written(tmp_path)
    wl = reqs.workload
    np.savez_compressed(d / "tokens.npz", token_ptr=wl.token_ptr[:-1], tokens=wl.tokens)
    with pytest.raises(InputError, match="tokens.npz: token_ptr has"):
        load_trace_v2(d)
    ptr = wl.token_ptr.copy()
    ptr[3:] += 1
    np.savez_compressed(d / "tokens.npz", token_ptr=ptr,
                        tokens=np.zeros(int(ptr[-1]), dtype=np.int32))
    with pytest.raises(InputError, match="first mismatch at data row 4"):
        load_trace_v2(d)
    Path(d / "tokens.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="unreadable token sidecar"):
        load_trace_v2(d)


def test_result_columns(tmp_path):
    """With a simulation result: send = arrival, first/last chunk from TTFT/E2E, statuses."""
    from types import SimpleNamespace

    from simulator.kernels.request_states import REQ_COMPLETED, REQ_QUEUED, REQ_REJECTED

    wl = workload_from_lists([10, 20, 30], [[1], [2], [3]], [[4, 5], [6], [7]])
    res = SimpleNamespace(ttft_us=np.array([100.4, np.nan, np.nan]),
                          e2e_us=np.array([250.6, np.nan, np.nan]),
                          req_state=np.array([REQ_COMPLETED, REQ_REJECTED, REQ_QUEUED]))
    write_trace_v2(tmp_path, wl, res, header={})
    rows = [r.split(",") for r in (tmp_path / "trace.csv").read_text().splitlines()[1:]]
    col = {c: i for i, c in enumerate(COLUMNS)}
    assert [r[col["send_time_us"]] for r in rows] == ["10", "20", "30"]
    assert rows[0][col["first_chunk_time_us"]] == "110"
    assert rows[0][col["last_chunk_time_us"]] == "261"
    assert [r[col["num_chunks"]] for r in rows] == ["1", "0", "0"]
    assert [r[col["status"]] for r in rows] == ["ok", "error", "timeout"]
