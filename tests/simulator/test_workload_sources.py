"""Workload sources: reference CSV traces and GuideLLM-style distributions/presets."""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.workload.csv_trace import load_trace_csv
from simulator.workload.distribution import (
    MAX_TOKEN_ID,
    arrival_step_us,
    generate_distribution,
    num_distribution_requests,
    preset_workload,
    round_half_away,
    validate_distribution_args,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "blis_parity"
DEFAULTS = ROOT / "blis_evo" / "data" / "defaults.yaml"
BIG = 2**63 - 1
HEADER = "arrival_time,request_id,model,prefill_tokens,decode_tokens\n"


def _write(tmp_path, rows, name="trace.csv", header=HEADER):
    p = tmp_path / name
    p.write_text(header + "".join(r + "\n" for r in rows))
    return p


def _toks(w, i):
    seg = w.tokens[w.token_ptr[i]:w.token_ptr[i + 1]]
    return seg[:w.n_in[i]].tolist(), seg[w.n_in[i]:].tolist()


# ---------------------------------------------------------------- CSV traces

@pytest.mark.parametrize("case", sorted(p.name[:-len(".csv.gz")]
                                        for p in FIXTURES.glob("*.csv.gz")))
def test_fixture_token_counts_match_reference(case):
    w = load_trace_csv(FIXTURES / f"{case}.csv.gz", BIG)
    ref = json.loads((FIXTURES / f"{case}.json").read_text())["requests"]
    by_id = {r["requestID"]: r for r in ref}
    assert w.tokens.dtype == np.int32 and w.token_ptr.dtype == np.int64
    assert w.token_ptr[-1] == w.tokens.size
    for i in range(w.num_requests):
        r = by_id.get(f"request_{i}")
        if r is None:
            continue  # request not reported by the reference (e.g. never finished)
        assert (w.n_in[i], w.n_out[i]) == (r["num_prefill_tokens"], r["num_decode_tokens"])
        assert w.arrival_us[i] == int(r["arrived_at"] * 1e6) or \
            abs(w.arrival_us[i] - r["arrived_at"] * 1e6) <= 1


def test_fixture_first_row_and_plain_equals_gz(tmp_path):
    gz = FIXTURES / "single_fcfs.csv.gz"
    w = load_trace_csv(gz, BIG)
    assert w.arrival_us[0] == 646154
    assert w.num_requests == 300
    plain = tmp_path / "single_fcfs.csv"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    w2 = load_trace_csv(plain, BIG)
    for a, b in ((w.arrival_us, w2.arrival_us), (w.n_in, w2.n_in), (w.n_out, w2.n_out),
                 (w.token_ptr, w2.token_ptr), (w.tokens, w2.tokens)):
        np.testing.assert_array_equal(a, b)
    # Token ids exactly as written in the file.
    import csv as _csv
    first = next(r for i, r in enumerate(_csv.reader(plain.open())) if i == 1)
    assert _toks(w, 0) == (json.loads(first[3]), json.loads(first[4]))


def test_arrival_truncation_is_double_multiply_then_trunc(tmp_path):
    vals = ["0.646154", "1.000001", "0.3", "2.675", "0.000001", "7.9999999"]
    p = _write(tmp_path, [f"{v},r,m,[1],[2]" for v in vals])
    w = load_trace_csv(p, BIG)
    assert w.arrival_us.tolist() == [int(float(v) * 1e6) for v in vals]
    assert w.arrival_us[2] == 300000 and w.arrival_us[3] == 2675000


def test_horizon_cut_stops_at_first_late_row_and_keeps_order(tmp_path):
    rows = ["1.0,a,m,[1],[2]", "0.5,b,m,[3],[4]", "3.0,c,m,[5],[6]", "0.1,d,m,[7],[8]",
            "not-a-number,e,m,[x],[y]"]
    p = _write(tmp_path, rows)
    w = load_trace_csv(p, 2_000_000)
    # Row order kept (1.0 then 0.5), reading stops at 3.0 and never looks at later rows.
    assert w.arrival_us.tolist() == [1_000_000, 500_000]
    assert _toks(w, 1) == ([3], [4])
    # arrival == horizon is kept (only arrival > horizon stops), so row 5 is now read and rejected.
    with pytest.raises(InputError, match="row 5 column 1"):
        load_trace_csv(p, 3_000_000)
    w = load_trace_csv(_write(tmp_path, rows[:3], "b.csv"), 3_000_000)
    assert w.num_requests == 3


def test_empty_lists_null_whitespace_and_extra_columns(tmp_path):
    rows = ['0,a,m,[],"[ 5 , 6 ]"', '0,b,m,null," [ ] "', '1,c,m,"[0, 127999]","[\t9\n]"']
    w = load_trace_csv(_write(tmp_path, rows), BIG)
    assert w.n_in.tolist() == [0, 0, 2] and w.n_out.tolist() == [2, 0, 1]
    assert _toks(w, 0) == ([], [5, 6]) and _toks(w, 2) == ([0, 127999], [9])
    hdr = "t,id,model,in,out,extra\n"
    w = load_trace_csv(_write(tmp_path, ["0,a,m,[1],[2],zz"], "x.csv", hdr), BIG)
    assert _toks(w, 0) == ([1], [2])


def test_header_only_and_blank_lines(tmp_path):
    assert load_trace_csv(_write(tmp_path, []), BIG).num_requests == 0
    w = load_trace_csv(_write(tmp_path, ["", "0,a,m,[1],[2]", "", "1,a,m,[3],[4]"], "b.csv"), BIG)
    assert w.num_requests == 2 and w.arrival_us.tolist() == [0, 1_000_000]


@pytest.mark.parametrize("rows, row, needle", [
    (["0,a,m,[1],[2]", "abc,a,m,[1],[2]"], 2, "arrival_time"),
    (["0,a,m,[1],[2]", "nan,a,m,[1],[2]"], 2, "arrival_time"),
    (["-1,a,m,[1],[2]"], 1, "arrival_time"),
    (["0,a,m,[1],[2]", "0,a,m,[1]"], 2, "columns"),
    (["0,a,m,[1,2,],[2]"], 1, "prefill_tokens"),
    (["0,a,m,[1],[2]", "0,a,m,[1],[2.5]"], 2, "decode_tokens"),
    (["0,a,m,[1],[2]", "0,a,m,[1],[2]", "0,a,m,[-3],[2]"], 3, "prefill_tokens"),
    (["0,a,m,[1],[2]", '0,a,m,"[1, ""x""]",[2]'], 2, "prefill_tokens"),
    (["0,a,m,[1],[2]", "0,a,m,[2147483648],[2]"], 2, "prefill_tokens"),
    (["0,a,m,[01],[2]"], 1, "prefill_tokens"),
    (["0,a,m,[1],[2]", "0,a,m,[1],{}"], 2, "decode_tokens"),
    (["0,a,m,[1],[2]", "0,a,m,[1 2],[2]"], 2, "prefill_tokens"),
    (["0,a,m,[1],[2]", "0,a,m,[1],"], 2, "decode_tokens"),
    (["0,a,m,[1],[2]", " 1,a,m,[1],[2]"], 2, "arrival_time"),
])
def test_malformed_rows_raise_input_error_with_row(tmp_path, rows, row, needle):
    p = _write(tmp_path, rows)
    with pytest.raises(InputError) as ei:
        load_trace_csv(p, BIG)
    msg = str(ei.value)
    assert "\n" not in msg
    assert f"trace.csv row {row}" in msg and needle in msg, msg


def test_first_error_in_file_order_wins(tmp_path):
    # Bad tokens on row 1 are reported before the bad arrival on row 2.
    p = _write(tmp_path, ["0,a,m,[x],[2]", "zz,a,m,[1],[2]"])
    with pytest.raises(InputError, match="row 1 column 4"):
        load_trace_csv(p, BIG)


def test_unreadable_file_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="--workload-traces-filepath"):
        load_trace_csv(tmp_path / "missing.csv", BIG)
    with pytest.raises(InputError, match="--workload-traces-filepath"):
        load_trace_csv(tmp_path, BIG)  # a directory
    bad_gz = tmp_path / "t.csv.gz"
    bad_gz.write_bytes(gzip.compress(HEADER.encode() * 50)[:40])
    with pytest.raises(InputError):
        load_trace_csv(bad_gz, BIG)
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="header"):
        load_trace_csv(empty, BIG)


def test_large_trace_loads_every_row(tmp_path):
    """A 20,000-row gzipped trace (2.4M token ids) loads completely and exactly: every row's
    arrival, token counts and token ids, in a packed int32 layout with nothing to spare.

    The load time of such a trace is a benchmark figure (benchmarks/bench_workload_sources.py),
    not a test assertion."""
    rng = np.random.default_rng(1)
    n = 20000
    ins = rng.integers(0, MAX_TOKEN_ID, size=(n, 100))
    outs = rng.integers(0, MAX_TOKEN_ID, size=(n, 20))
    lines = [f'{i * 0.01:.6f},r{i},m,"[{",".join(map(str, a))}]","[{",".join(map(str, b))}]"'
             for i, (a, b) in enumerate(zip(ins, outs))]
    p = tmp_path / "big.csv.gz"
    p.write_bytes(gzip.compress((HEADER + "\n".join(lines) + "\n").encode(), compresslevel=1))
    w = load_trace_csv(p, BIG)
    assert w.num_requests == n
    # sizes: exactly the ids of the file, packed (no slack, no per-row padding)
    assert w.tokens.dtype == np.int32 and w.tokens.size == n * 120
    assert w.token_ptr.tolist() == list(range(0, n * 120 + 1, 120))
    assert (w.n_in == 100).all() and (w.n_out == 20).all()
    # every row's ids, in file order
    np.testing.assert_array_equal(w.tokens.reshape(n, 120), np.hstack([ins, outs]))
    # arrival = int64(float(text) * 1e6) of the "%.6f" text written above
    expect = [int(float(f"{i * 0.01:.6f}") * 1e6) for i in range(n)]
    assert w.arrival_us.tolist() == expect


# ---------------------------------------------------------------- distribution

def _go_arrivals(rate_per_s, num_requests, horizon):
    """Direct transcription of the reference's arrival loop (small cases only)."""
    out, t, n = [], 0, 0
    step = int(1 / (rate_per_s / 1e6))
    while t < horizon and n < num_requests:
        out.append(t)
        t += step
        n += 1
        if t > horizon:
            break
    return out


def _kw(**over):
    kw = dict(rate_per_s=10.0, num_requests=100, horizon_us=BIG, prefix_tokens=0,
              prompt_mean=512, prompt_std=256, prompt_min=2, prompt_max=7000,
              output_mean=512, output_std=256, output_min=2, output_max=7000)
    kw.update(over)
    return kw


@pytest.mark.parametrize("rate, num, horizon", [
    (10.0, 100, BIG), (3.0, 50, 1_000_000), (3.0, 50, 999_999), (3.0, 50, 333_333),
    (3.0, 50, 333_334), (7.0, 1000, 10_000_000), (2e6, 5, 100), (0.001, 3, BIG),
    (1.0, 10, 0), (1.0, 0, BIG), (1.0, 10, 1), (1.0, 10, 5_000_000),
])
def test_arrivals_match_reference_loop(rate, num, horizon):
    expect = _go_arrivals(rate, num, horizon)
    assert num_distribution_requests(rate, num, horizon) == len(expect)
    w = generate_distribution(**_kw(rate_per_s=rate, num_requests=num, horizon_us=horizon),
                              rng=np.random.default_rng(0))
    assert w.arrival_us.dtype == np.int64 and w.arrival_us.tolist() == expect


def test_arrival_step_truncates():
    assert arrival_step_us(3.0) == 333333
    assert arrival_step_us(7.0) == 142857
    assert arrival_step_us(1e6) == 1 and arrival_step_us(3e6) == 0
    assert arrival_step_us(1e-300) is None
    assert num_distribution_requests(1e-300, 5, BIG) == 1


def test_round_half_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999999999999996, 0.49999999999999994, 3.0])
    assert round_half_away(x).tolist() == [1, 2, 3, -1, -3, 2, 0, 3]
    assert [math.copysign(1, v) for v in round_half_away(np.array([0.4]))] == [1]


def test_lengths_bounds_moments_prefix_and_layout():
    w = generate_distribution(**_kw(num_requests=200_000, prefix_tokens=7, prompt_mean=300,
                                    prompt_std=50, prompt_min=10, prompt_max=1000,
                                    output_mean=100, output_std=20, output_min=1,
                                    output_max=400), rng=np.random.default_rng(3))
    assert w.num_requests == 200_000
    plen = w.n_in - 7
    assert plen.min() >= 10 and plen.max() <= 1000
    assert w.n_out.min() >= 1 and w.n_out.max() <= 400
    assert abs(plen.mean() - 300) < 0.5 and abs(plen.std() - 50) < 0.5
    assert abs(w.n_out.mean() - 100) < 0.2 and abs(w.n_out.std() - 20) < 0.2
    assert w.tokens.dtype == np.int32
    assert w.tokens.min() >= 0 and w.tokens.max() < MAX_TOKEN_ID
    assert w.token_ptr[-1] == w.tokens.size
    np.testing.assert_array_equal(np.diff(w.token_ptr), w.n_in + w.n_out)
    prefixes = np.stack([w.tokens[w.token_ptr[i]:w.token_ptr[i] + 7] for i in (0, 1, 99_999,
                                                                             199_999)])
    assert (prefixes == prefixes[0]).all()
    # The prompt after the prefix is not the prefix again.
    assert not np.array_equal(w.tokens[w.token_ptr[0] + 7:w.token_ptr[0] + 14], prefixes[0])


def test_clamping_hits_bounds_and_rounding_is_integral():
    w = generate_distribution(**_kw(num_requests=5000, prompt_mean=20, prompt_std=20,
                                    prompt_min=20, prompt_max=25, output_mean=3, output_std=3,
                                    output_min=3, output_max=6), rng=np.random.default_rng(4))
    assert set(np.unique(w.n_in)) <= set(range(20, 26)) and w.n_in.min() == 20
    assert (w.n_in == 20).mean() > 0.45 and (w.n_in == 25).sum() > 0


def test_min_equals_max_is_constant_and_draws_nothing():
    kw = _kw(num_requests=50, prompt_mean=64, prompt_std=64, prompt_min=64, prompt_max=64,
             output_mean=8, output_std=8, output_min=8, output_max=8)
    w = generate_distribution(**kw, rng=np.random.default_rng(5))
    assert (w.n_in == 64).all() and (w.n_out == 8).all()
    # No length draws: the token stream equals a plain draw of all ids from the same seed.
    expect = np.random.default_rng(5).integers(0, MAX_TOKEN_ID, size=50 * 72, dtype=np.int32)
    np.testing.assert_array_equal(w.tokens, expect)


def test_same_seed_same_workload_different_seed_differs():
    a = generate_distribution(**_kw(prefix_tokens=3), rng=np.random.default_rng(11))
    b = generate_distribution(**_kw(prefix_tokens=3), rng=np.random.default_rng(11))
    c = generate_distribution(**_kw(prefix_tokens=3), rng=np.random.default_rng(12))
    for x, y in ((a.n_in, b.n_in), (a.n_out, b.n_out), (a.tokens, b.tokens)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.n_in, c.n_in)


def test_distribution_100k_requests():
    """100,000 requests with a 32-token shared prefix: the reference's arrival grid, lengths
    inside their bounds, and a token table of exactly sum(n_in + n_out) ids (no slack).

    How long the generation takes is a benchmark figure (benchmarks/bench_workload_sources.py),
    not a test assertion."""
    n = 100_000
    w = generate_distribution(**_kw(num_requests=n, prompt_mean=256, prompt_std=100,
                                    output_mean=256, output_std=100, prefix_tokens=32),
                              rng=np.random.default_rng(0))
    assert w.num_requests == n
    # arrivals: the reference's loop (transcribed in _go_arrivals), rate 10/s, no horizon
    assert w.arrival_us.tolist() == _go_arrivals(10.0, n, BIG)
    plen = w.n_in - 32
    assert plen.min() >= 2 and plen.max() <= 7000
    assert w.n_out.min() >= 2 and w.n_out.max() <= 7000
    assert w.token_ptr.size == n + 1 and w.token_ptr[0] == 0
    np.testing.assert_array_equal(np.diff(w.token_ptr), w.n_in + w.n_out)
    assert w.tokens.size == int(np.sum(w.n_in + w.n_out)) == w.token_ptr[-1]
    prefix = w.tokens[:32]
    for i in (1, n // 2, n - 1):
        np.testing.assert_array_equal(w.tokens[w.token_ptr[i]:w.token_ptr[i] + 32], prefix)


def test_zero_requests():
    w = generate_distribution(**_kw(num_requests=0, prefix_tokens=5), rng=np.random.default_rng(0))
    assert w.num_requests == 0 and w.tokens.size == 0 and w.token_ptr.tolist() == [0]


# ---------------------------------------------------------------- presets / validation

def test_presets_load():
    expect = {
        "chatbot": (0, 256, 100, 2, 800, 256, 100, 1, 1024),
        "contentgen": (0, 1024, 150, 10, 2048, 1024, 200, 10, 2048),
        "summarization": (0, 4096, 500, 100, 8192, 512, 150, 10, 2048),
        "multidoc": (0, 10240, 1200, 500, 20480, 1536, 300, 50, 4096),
    }
    keys = ("prefix_tokens", "prompt_mean", "prompt_std", "prompt_min", "prompt_max",
            "output_mean", "output_std", "output_min", "output_max")
    for name, vals in expect.items():
        p = preset_workload(name, DEFAULTS)
        assert tuple(p[k] for k in keys) == vals
        validate_distribution_args(rate_per_s=1.0, num_requests=10, **p)
        w = generate_distribution(rate_per_s=1.0, num_requests=10, horizon_us=BIG,
                                  rng=np.random.default_rng(0), **p)
        assert w.num_requests == 10


def test_unknown_preset_and_bad_defaults(tmp_path):
    with pytest.raises(InputError, match="chatbot.*contentgen.*multidoc.*summarization"):
        preset_workload("nope", DEFAULTS)
    with pytest.raises(InputError, match="--defaults-filepath"):
        preset_workload("chatbot", tmp_path / "missing.yaml")
    bad = tmp_path / "d.yaml"
    bad.write_text("workloads:\n  chatbot:\n    prompt_tokens: 1.5\n")
    with pytest.raises(InputError, match="prompt_tokens"):
        preset_workload("chatbot", bad)


@pytest.mark.parametrize("over, needle", [
    (dict(rate_per_s=0.0), "--rate"),
    (dict(rate_per_s=-1.0), "--rate"),
    (dict(rate_per_s=float("nan")), "--rate"),
    (dict(rate_per_s=float("inf")), "--rate"),
    (dict(num_requests=-1), "--num-requests"),
    (dict(prefix_tokens=-1), "--prefix-tokens"),
    (dict(prompt_mean=1), "--prompt-tokens must be within"),
    (dict(prompt_mean=8000), "--prompt-tokens must be within"),
    (dict(prompt_std=9000), "--prompt-tokens-stdev must be within [--prompt-tokens-min, "
                            "--prompt-tokens-max] = [2, 7000], got 9000"),
    (dict(prompt_std=0), "--prompt-tokens-stdev"),
    (dict(output_mean=7001), "--output-tokens must be within"),
    (dict(output_std=1), "--output-tokens-stdev"),
    (dict(output_min=-5, output_std=0, output_mean=0), "--output-tokens-min must be >= 0"),
    (dict(prompt_min=10, prompt_max=5), "--prompt-tokens must be within"),
])
def test_validation_rejects(over, needle):
    kw = _kw(**over)
    kw.pop("horizon_us")
    with pytest.raises(InputError) as ei:
        validate_distribution_args(**kw)
    assert needle in str(ei.value)


def test_validation_accepts_defaults_and_skips_ranges_for_presets():
    kw = _kw()
    kw.pop("horizon_us")
    validate_distribution_args(**kw)
    kw["prompt_std"] = 0
    validate_distribution_args(**kw, check_ranges=False)
