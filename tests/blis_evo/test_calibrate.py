"""`blis calibrate`: observed traces built from the closed-form serial timeline
(:func:`blis_evo.stepmodel.serial_timeline`) with known coefficients, written with the project's
observed-trace writer; expected numbers come from the closed form, never from the code under
test."""
from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from blis_evo import calibrate, cli
from blis_evo.stepmodel import StepModel, serial_timeline
from simulator.latency import resolve_latency
from simulator.workload.tracev2 import ObservedRecords, write_observed_trace
from simulator.workload.types import workload_from_lists

TRUE = StepModel((1500.0, 2.0, 300.0), (6000.0, 8.0, 400.0))
"""Coefficients in the ms range (µs): α0 1.5 ms, α2 0.3 ms, β0 6 ms, β1 8 µs/token."""


# ---------------------------------------------------------------------------------------------
# Synthetic observed traces
# ---------------------------------------------------------------------------------------------

def bursty_requests(seed: int, bursts: int = 40, max_burst: int = 5, gap_us: int = 3_000_000):
    """Send times (bursts of 1..max_burst requests a few hundred µs apart, ``gap_us`` between
    bursts), prompt lengths 20..1499 and output lengths 3..59, sorted by send time."""
    rng = np.random.default_rng(seed)
    send = []
    for b in range(bursts):
        k = int(rng.integers(1, max_burst + 1))
        send += [b * gap_us + j * int(rng.integers(50, 400)) for j in range(k)]
    send = np.sort(np.array(send, dtype=np.int64))
    n = send.size
    return send, rng.integers(20, 1500, n), rng.integers(3, 60, n)


def assert_simulator_equals_closed_form(model: StepModel, send, n_in, n_out) -> None:
    """Guard the test's premise: distinct queue-join times, and no request joins the queue
    during its predecessor's last step (the simulator starts it at once there, the closed form
    waits for the step's end), so the simulator must reproduce ``serial_timeline`` exactly."""
    queued = np.asarray(send) + model.alpha[0] + model.alpha[1] * np.asarray(n_in)
    assert np.unique(queued).size == queued.size
    tl = serial_timeline(model, send, n_in, n_out)
    order = np.argsort(queued)
    last_step = np.where(np.asarray(n_out) >= 2, model.decode_step(),
                         [model.prefill_step(k) for k in n_in])
    for p, k in zip(order[:-1], order[1:]):
        assert not (tl.done[p] - last_step[p] <= queued[k] < tl.done[p])


def observed_times(model: StepModel, send, n_in, n_out, *, noise: float = 0.0, seed: int = 0):
    """First/last chunk times (integer µs) of a serial server following ``model``; with
    ``noise`` the TTFT and the decode duration are each multiplied by lognormal(0, noise)."""
    tl = serial_timeline(model, send, n_in, n_out)
    ttft, decode = tl.first - send, tl.last - tl.first
    if noise:
        rng = np.random.default_rng(seed)
        ttft = ttft * rng.lognormal(0.0, noise, ttft.size)
        decode = decode * rng.lognormal(0.0, noise, decode.size)
    first = np.rint(send + ttft).astype(np.int64)
    return first, np.rint(first + decode).astype(np.int64)


def write_trace(directory: Path, send, first, last, n_in, n_out, *, status=None, chunks=None,
                server=None, warm_up: int = 0) -> Path:
    """An observed trace v2 (``mode: real``, exact token ids) through ``write_observed_trace``;
    ``num_chunks`` defaults to the output tokens (one token per chunk)."""
    n = len(send)
    rng = np.random.default_rng(123)  # random ids: no shared prefix blocks
    wl = workload_from_lists(list(send), [rng.integers(1, 2**31 - 1, size=k) for k in n_in],
                             [rng.integers(1, 2**31 - 1, size=k) for k in n_out])
    unknown = np.full(n, -1, dtype=np.int64)
    rec = ObservedRecords(np.asarray(send, np.int64), np.asarray(first, np.int64),
                          np.asarray(last, np.int64),
                          np.asarray(n_out if chunks is None else chunks, np.int64),
                          tuple(status or ["ok"] * n), ("",) * n, np.ones(n, np.int64),
                          np.asarray(send, np.int64), unknown, unknown)
    header = {"mode": "real", "warm_up_requests": warm_up,
              "server": server or {"type": "mock", "max_num_seqs": 1}}
    write_observed_trace(directory, wl, rec, header=header)
    return directory


def call(argv) -> tuple[int, str, str]:
    """``calibrate.main(argv)`` with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = calibrate.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def calibrate_json(tmp_path: Path, trace: Path, *flags) -> dict:
    """Run ``blis calibrate`` on ``trace``; the results document."""
    out = tmp_path / "calibration.json"
    code, stdout, err = call(["--trace", trace, "--results-path", out, *flags])
    assert code == 0, err
    assert "ttft" in stdout and "e2e" in stdout and "itl" in stdout
    return json.loads(out.read_text())


def coeff_flags(model: StepModel) -> list[str]:
    """``--alpha-coeffs A --beta-coeffs B`` for ``model``."""
    return ["--alpha-coeffs", ",".join(map(str, model.alpha)),
            "--beta-coeffs", ",".join(map(str, model.beta))]


def expected_errors(real_first, real_last, sim_first, sim_last, send, chunks) -> dict:
    """MAPE (%), Pearson r and p50/p90/p99 real/sim (ms) computed here from two timelines."""
    out = {}
    pairs = {"ttft": (real_first - send, sim_first - send),
             "e2e": (real_last - send, sim_last - send),
             "itl": ((real_last - real_first) / (chunks - 1), (sim_last - sim_first) / (chunks - 1))}
    for m, (r, s) in pairs.items():
        out[m] = {"mape": 100 * np.mean(np.abs(s - r) / r),
                  "pearson": np.corrcoef(r, s)[0, 1] if np.ptp(s) > 0 else None,
                  "pct": {p: (np.percentile(r, p) / 1e3, np.percentile(s, p) / 1e3)
                          for p in (50, 90, 99)}}
    return out


# ---------------------------------------------------------------------------------------------
# Comparison with given coefficients
# ---------------------------------------------------------------------------------------------

def test_true_coefficients_reproduce_the_observed_trace(tmp_path):
    send, n_in, n_out = bursty_requests(1)
    assert_simulator_equals_closed_form(TRUE, send, n_in, n_out)
    first, last = observed_times(TRUE, send, n_in, n_out)
    doc = calibrate_json(tmp_path, write_trace(tmp_path / "t", send, first, last, n_in, n_out),
                         *coeff_flags(TRUE))
    assert doc["requests"] == send.size and doc["excluded"] == 0
    assert doc["coefficients"] == {"alpha_coeffs": list(TRUE.alpha),
                                   "beta_coeffs": list(TRUE.beta)}
    for m in ("ttft", "e2e", "itl"):
        assert doc["mape"][m] == pytest.approx(0.0, abs=1e-9)
        for p in ("p50", "p90", "p99"):
            assert doc["percentiles"][m][p]["error_pct"] == pytest.approx(0.0, abs=1e-9)
    assert doc["pearson"]["ttft"] == pytest.approx(1.0)
    assert doc["pearson"]["e2e"] == pytest.approx(1.0)
    assert doc["samples"]["itl"] == send.size  # every request has >= 3 chunks
    assert "fitted" not in doc


def test_wrong_coefficients_give_the_closed_form_errors_of_the_wrong_model(tmp_path):
    send, n_in, n_out = bursty_requests(2)
    first, last = observed_times(TRUE, send, n_in, n_out)
    wrong = StepModel((3000.0, 1.0, 100.0), (9000.0, 12.0, 900.0))
    assert_simulator_equals_closed_form(wrong, send, n_in, n_out)
    tl = serial_timeline(wrong, send, n_in, n_out)
    want = expected_errors(first, last, tl.first, tl.last, send, n_out)
    doc = calibrate_json(tmp_path, write_trace(tmp_path / "t", send, first, last, n_in, n_out),
                         *coeff_flags(wrong))
    for m in ("ttft", "e2e", "itl"):
        assert doc["mape"][m] == pytest.approx(want[m]["mape"], rel=1e-6)
        assert doc["mape"][m] > 20
        for p, (r, s) in want[m]["pct"].items():
            got = doc["percentiles"][m][f"p{p}"]
            assert (got["real_ms"], got["sim_ms"]) == pytest.approx((r, s), rel=1e-9)
            assert got["error_pct"] == pytest.approx(100 * (s - r) / r, rel=1e-6)
    for m in ("ttft", "e2e"):
        assert doc["pearson"][m] == pytest.approx(want[m]["pearson"], rel=1e-6)
    assert doc["pearson"]["itl"] is None  # the simulated ITL is one constant: r undefined


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------

def combination(model: StepModel, name: str) -> float:
    """The true value of a named combination of (α0, α1, α2, β0, β1, β2)."""
    theta = dict(zip(("alpha0", "alpha1", "alpha2", "beta0", "beta1", "beta2"),
                     model.alpha + model.beta))
    return sum(theta[k] for k in name.split("+"))


def test_fit_with_queueing_recovers_all_six_coefficients(tmp_path):
    send, n_in, n_out = bursty_requests(3)
    first, last = observed_times(TRUE, send, n_in, n_out)
    doc = calibrate_json(tmp_path, write_trace(tmp_path / "t", send, first, last, n_in, n_out),
                         "--fit")
    fit = doc["fitted"]
    assert doc["coefficients"] is None and doc["mape"]["ttft"] is None  # nothing given
    assert fit["alpha_coeffs"] == pytest.approx(TRUE.alpha, rel=2e-3)
    assert fit["beta_coeffs"] == pytest.approx(TRUE.beta, rel=2e-3)
    assert fit["conventions"] == [] and fit["clamped_at_zero"] == []
    for name, entry in fit["identifiable"].items():
        assert entry["identified"], name
        assert entry["value"] == pytest.approx(combination(TRUE, name), rel=2e-3)
    assert fit["residuals"]["backlog_gap"]["requests"] > 20
    assert fit["residuals"]["itl"]["max_abs_us"] < 1.0  # integer-µs timestamps only
    for m in ("ttft", "e2e", "itl"):
        assert fit["mape_after_fit"][m] < 0.1


def test_fit_without_queueing_identifies_three_combinations(tmp_path):
    send, n_in, n_out = bursty_requests(4, bursts=30, max_burst=1, gap_us=1_000_000)
    first, last = observed_times(TRUE, send, n_in, n_out)
    doc = calibrate_json(tmp_path, write_trace(tmp_path / "t", send, first, last, n_in, n_out),
                         "--fit")
    fit = doc["fitted"]
    known = {k for k, v in fit["identifiable"].items() if v["identified"]}
    assert known == {"beta0+beta2+alpha2", "alpha0+beta0+alpha2", "alpha1+beta1"}
    for name in known:
        assert fit["identifiable"][name]["value"] == pytest.approx(combination(TRUE, name),
                                                                   rel=1e-3)
    # idle TTFT intercept (7.8 ms) > token gap (6.7 ms): alpha0 = 0 would make beta2 < 0, so
    # the convention is alpha2 = alpha1 = beta2 = 0: beta0 = gap, alpha0 = intercept - gap
    assert fit["conventions"] == ["alpha2 = 0", "alpha1 = 0", "beta2 = 0"]
    gap = combination(TRUE, "beta0+beta2+alpha2")
    assert fit["beta_coeffs"][0] == pytest.approx(gap, rel=1e-3)
    assert fit["alpha_coeffs"][0] == pytest.approx(
        combination(TRUE, "alpha0+beta0+alpha2") - gap, rel=1e-3)
    assert fit["residuals"]["backlog_gap"]["requests"] == 0
    for m in ("ttft", "e2e", "itl"):
        assert fit["mape_after_fit"][m] < 0.1


@pytest.mark.parametrize("model, seed", [
    (TRUE, 5),
    # defaults.yaml-like rows: granite-3.1-8b on H100 (tiny beta2) and on A100 (large alpha2)
    (StepModel((2248.0, 4.37, 2027.0), (8721.0, 4.48, 0.56)), 6),
    (StepModel((5949.0, 5.69, 16738.0), (4600.0, 115.7, 6.18)), 7),
])
def test_fit_with_one_percent_noise_reproduces_the_trace(tmp_path, model, seed):
    send, n_in, n_out = bursty_requests(seed)
    first, last = observed_times(model, send, n_in, n_out, noise=0.01, seed=seed)
    doc = calibrate_json(tmp_path, write_trace(tmp_path / "t", send, first, last, n_in, n_out),
                         "--fit", *coeff_flags(model))
    fit = doc["fitted"]
    for m in ("ttft", "e2e", "itl"):
        assert fit["mape_after_fit"][m] < 5.0, (m, fit["mape_after_fit"])
        assert doc["mape"][m] < 5.0  # the true coefficients against the noisy trace
    for name in ("beta0+beta2+alpha2", "alpha0+beta0+alpha2", "alpha1+beta1"):
        entry = fit["identifiable"][name]
        assert entry["identified"]
        assert entry["value"] == pytest.approx(combination(model, name), rel=0.03)
        assert entry["stderr"] > 0
    assert min(fit["alpha_coeffs"] + fit["beta_coeffs"]) >= 0


def test_batched_server_fits_isolated_requests_only(tmp_path):
    send, n_in, n_out = bursty_requests(8)
    first, last = observed_times(TRUE, send, n_in, n_out)
    trace = write_trace(tmp_path / "t", send, first, last, n_in, n_out,
                        server={"type": "mock", "max_num_seqs": 8})
    doc = calibrate_json(tmp_path, trace, "--fit")
    fit = doc["fitted"]
    assert doc["cluster"]["max_num_running_reqs"] == 8
    assert fit["model"] == "isolated-requests"
    assert "backlog_gap" not in fit["residuals"]
    # an isolated request: sent after every earlier request's last chunk, done before the next send
    prev_last = np.concatenate([[-1], np.maximum.accumulate(last)[:-1]])
    isolated = (send > prev_last) & (last < np.concatenate([send[1:], [np.inf]]))
    assert fit["residuals"]["idle_ttft"]["requests"] == int(isolated.sum())
    assert fit["identifiable"]["beta0+beta2+alpha2"]["value"] == pytest.approx(6700, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# Exclusions, defaults file, convention solver
# ---------------------------------------------------------------------------------------------

def test_excluded_requests_are_counted_and_not_replayed(tmp_path):
    send, n_in, n_out = bursty_requests(9, bursts=20)
    first, last = observed_times(TRUE, send, n_in, n_out)
    # failed requests interleaved (never replayed), one ok row with impossible times
    bad_send = np.array([send[3] + 1, send[10] + 1, send[20] + 1, send[30] + 1])
    status = ["ok"] * send.size + ["error", "timeout", "rejected", "ok"]
    all_send = np.concatenate([send, bad_send])
    order = np.argsort(all_send, kind="stable")
    cat = lambda a, b: np.concatenate([a, b])[order]  # noqa: E731
    trace = write_trace(tmp_path / "t", all_send[order],
                        cat(first, [0, 0, 0, bad_send[3] - 5]), cat(last, [0, 0, 0, bad_send[3]]),
                        cat(n_in, [100] * 4), cat(n_out, [10] * 4),
                        status=[status[i] for i in order], chunks=cat(n_out, [0, 0, 0, 10]),
                        warm_up=2)
    doc = calibrate_json(tmp_path, trace, *coeff_flags(TRUE))
    assert doc["excluded_by_reason"] == {"error": 1, "timeout": 1, "rejected": 1, "cancelled": 0,
                                         "no_status": 0, "invalid_timing": 1, "warm_up": 2,
                                         "replayed_failed": 0}
    assert doc["excluded"] == 6 and doc["requests"] == send.size - 2
    assert doc["trace"]["rows"] == send.size + 4
    for m in ("ttft", "e2e", "itl"):
        assert doc["mape"][m] == pytest.approx(0.0, abs=1e-9)


def test_failed_requests_that_streamed_tokens_are_replayed_not_compared(tmp_path):
    """A stream dropped after k tokens still loaded the server for k tokens: the replay must
    include it (with k output tokens) or every request queued behind it looks too fast."""
    send, n_in, n_out = bursty_requests(11, bursts=25)
    served = n_out.copy()
    dropped = np.arange(2, send.size, 7)              # every 7th request drops mid-stream
    served[dropped] = np.maximum(1, n_out[dropped] // 2)
    first, last = observed_times(TRUE, send, n_in, served)   # the server generated `served`
    status = np.array(["ok"] * send.size, dtype=object)
    status[dropped] = "error"
    trace = write_trace(tmp_path / "t", send, first, last, n_in, n_out,
                        status=list(status), chunks=served)
    doc = calibrate_json(tmp_path, trace, *coeff_flags(TRUE))
    assert doc["excluded_by_reason"]["replayed_failed"] == dropped.size
    assert doc["requests"] == send.size - dropped.size
    for m in ("ttft", "e2e", "itl"):
        assert doc["mape"][m] == pytest.approx(0.0, abs=1e-9)


def test_save_defaults_row_is_used_by_blis_run(tmp_path):
    send, n_in, n_out = bursty_requests(10, bursts=20)
    first, last = observed_times(TRUE, send, n_in, n_out)
    trace = write_trace(tmp_path / "t", send, first, last, n_in, n_out)
    saved = tmp_path / "defaults.yaml"
    other = {"id": "other/model", "GPU": "A100-80", "tensor_parallelism": 2, "vllm_version": "v1",
             "alpha_coeffs": [1, 2, 3], "beta_coeffs": [4, 5, 6], "total_kv_blocks": 99}
    saved.write_text(yaml.safe_dump({"models": [other]}))
    results = tmp_path / "r.json"
    code, _, err = call(["--trace", trace, "--fit", "--model", "Acme/Mock-1B", "--hardware",
                         "H100", "--tp", "1", "--save-defaults", saved, "--results-path", results])
    assert code == 0
    # the model has no row in the shipped defaults.yaml: only the fit is compared
    assert err.startswith("note: no latency coefficients for model 'acme/mock-1b'")
    doc = json.loads(results.read_text())
    assert doc["coefficients"] is None
    rows = yaml.safe_load(saved.read_text())["models"]
    assert rows[0] == other  # an existing file is extended, not replaced
    res = resolve_latency(model="Acme/Mock-1B", hardware="H100", tp=1, defaults_path=saved)
    assert list(res.config.alpha) == doc["fitted"]["alpha_coeffs"]
    assert list(res.config.beta) == doc["fitted"]["beta_coeffs"]
    assert res.total_kv_blocks == doc["cluster"]["total_kv_blocks"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["run", "--model", "acme/mock-1b", "--defaults-filepath", str(saved),
                         "--num-requests", "5", "--results-path", str(tmp_path / "run.json")])
    assert code == 0


def test_one_piece_responses_are_compared_on_completion(tmp_path):
    send, n_in, n_out = bursty_requests(12, bursts=20)
    first, last = observed_times(TRUE, send, n_in, n_out)
    whole = np.arange(send.size) % 3 == 0  # non-streamed: one chunk when the response is done
    first = np.where(whole, last, first)
    chunks = np.where(whole, 1, n_out)
    trace = write_trace(tmp_path / "t", send, first, last, n_in, n_out, chunks=chunks)
    doc = calibrate_json(tmp_path, trace, "--fit", *coeff_flags(TRUE))
    assert doc["samples"] == {"ttft": send.size, "e2e": send.size, "itl": int((~whole).sum())}
    for m in ("ttft", "e2e", "itl"):
        assert doc["mape"][m] == pytest.approx(0.0, abs=1e-9)
        assert doc["fitted"]["mape_after_fit"][m] < 0.1


def test_a_simulated_trace_replays_exactly_with_batching(tmp_path):
    # blis run records its own simulation (256-request batches, 8 instances would need the
    # same routing; one instance here) as a trace: calibrating it with the same coefficients
    # must give zero error, read back through the trace files
    run = ["--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100", "--tp", "1",
           "--vllm-version", "vllm/vllm-openai:v0.8.4"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["run", *run, "--rate", "20", "--num-requests", "80",
                         "--trace-output", str(tmp_path / "t")])
    assert code == 0
    doc = calibrate_json(tmp_path, tmp_path / "t", *run)
    assert doc["trace"]["mode"] == "generated"
    assert doc["cluster"]["max_num_running_reqs"] == 256  # the header's server.max_num_seqs
    assert doc["requests"] == 80
    for m in ("ttft", "e2e"):
        assert doc["mape"][m] == pytest.approx(0.0, abs=1e-9)
    assert doc["samples"]["itl"] == 0  # non-streamed rows: one chunk each


def test_no_queueing_convention_keeps_coefficients_non_negative():
    # g = 10, c0 = 4 (< g), c1 = 2: alpha2 = alpha1 = alpha0 = 0 works (beta2 = 6 >= 0)
    rows = np.array([[0, 0, 1, 1, 0, 1], [1, 0, 1, 1, 0, 0], [0, 1, 0, 0, 1, 0]], dtype=float)
    ident = calibrate.Identified(rows, np.array([10.0, 4.0, 2.0]), np.ones(3))
    theta, zeros, exact = calibrate.solve_with_conventions(ident)
    assert exact and [calibrate.THETA[i] for i in zeros] == ["alpha2", "alpha1", "alpha0"]
    assert theta == pytest.approx([0, 0, 0, 4, 2, 6])
    # c0 = 14 (> g): beta2 would be -4, so beta2 = 0 instead: beta0 = 10, alpha0 = 4
    ident = calibrate.Identified(rows, np.array([10.0, 14.0, 2.0]), np.ones(3))
    theta, zeros, exact = calibrate.solve_with_conventions(ident)
    assert exact and [calibrate.THETA[i] for i in zeros] == ["alpha2", "alpha1", "beta2"]
    assert theta == pytest.approx([4, 0, 0, 10, 2, 0])


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_trace(tmp_path_factory) -> Path:
    send, n_in, n_out = bursty_requests(11, bursts=5)
    first, last = observed_times(TRUE, send, n_in, n_out)
    return write_trace(tmp_path_factory.mktemp("good") / "t", send, first, last, n_in, n_out)


@pytest.fixture(scope="module")
def failed_trace(tmp_path_factory) -> Path:
    send = np.array([0, 1000, 2000])
    zero = np.zeros(3, dtype=np.int64)
    return write_trace(tmp_path_factory.mktemp("failed") / "t", send, zero, zero, [10] * 3,
                       [5] * 3, status=["error", "timeout", "error"], chunks=zero)


@pytest.mark.parametrize("argv, flag", [
    (["--trace", "{tmp}/missing", "--alpha-coeffs", "1,2,3", "--beta-coeffs", "4,5,6"], "--trace"),
    (["--trace", "{failed}", "--alpha-coeffs", "1,2,3", "--beta-coeffs", "4,5,6"], "--trace"),
    (["--trace", "{good}", "--alpha-coeffs", "1,2", "--beta-coeffs", "4,5,6"], "--alpha-coeffs"),
    (["--trace", "{good}", "--alpha-coeffs", "1,2,3", "--beta-coeffs", "4,x,6"], "--beta-coeffs"),
    (["--trace", "{good}", "--alpha-coeffs", "1,2,3"], "--beta-coeffs"),
    (["--trace", "{good}", "--alpha-coeffs", "1,2,3", "--beta-coeffs", "0,0,0"], "--beta-coeffs"),
    (["--trace", "{good}"], "--fit"),
    (["--trace", "{good}", "--model", "no/such-model"], "defaults.yaml"),
    (["--trace", "{good}", "--fit", "--max-num-running-reqs", "0"], "--max-num-running-reqs"),
    (["--trace", "{good}", "--fit", "--num-instances", "x"], "--num-instances"),
    (["--trace", "{good}", "--alpha-coeffs", "1,2,3", "--beta-coeffs", "4,5,6",
      "--save-defaults", "{tmp}/d.yaml"], "--save-defaults"),
    (["--trace", "{good}", "--fit", "--save-defaults", "{tmp}/d.yaml"], "--save-defaults"),
    (["--trace", "{good}", "--fit", "--hardware", "H100", "--model", "m",
      "--save-defaults", "{tmp}/nodir/d.yaml"], "--save-defaults"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, good_trace, failed_trace, argv, flag):
    fmt = dict(tmp=tmp_path, good=good_trace, failed=failed_trace)
    argv = [a.format(**fmt) for a in argv]
    code, out, err = call([*argv, "--results-path", tmp_path / "r.json"])
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("blis: error: ") and flag in err, err
    assert os.listdir(tmp_path) == []


def test_missing_results_parent_is_one_line_and_writes_nothing(tmp_path, good_trace):
    code, out, err = call(["--trace", good_trace, "--fit",
                           "--results-path", tmp_path / "nodir" / "r.json"])
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("blis: error: --results-path"), err
    assert os.listdir(tmp_path) == []


def test_results_are_written_atomically_and_deterministically(tmp_path, good_trace):
    out = tmp_path / "r.json"
    code1, stdout1, _ = call(["--trace", good_trace, "--fit", "--results-path", out])
    first = out.read_bytes()
    code2, stdout2, _ = call(["--trace", good_trace, "--fit", "--results-path", out])
    assert code1 == code2 == 0
    assert out.read_bytes() == first and stdout1 == stdout2
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind
