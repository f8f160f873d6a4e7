"""Workload specs: strict YAML parsing, arrival processes, length distributions, the generator.

Statistical tests are seeded and use tolerances derived from the distributions themselves: a
mean is checked to within 5 standard errors (sd / sqrt(n)), a variance to within 5 standard
errors of the sample variance (sqrt((mu4 - sigma^4) / n)), a probability to within 5 binomial
standard errors, plus at most 1 for the integer rounding / the >= 1 floor where that applies.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.errors import InputError
from simulator.workload.arrivals import (
    make_arrival_sampler,
    weibull_cv,
    weibull_shape_from_cv,
)
from simulator.workload.generator import generate_from_spec, generate_spec_requests
from simulator.workload.lengths import LengthSampler
from simulator.workload.spec import DistSpec, load_workload_spec, parse_workload_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "blis_evo" / "data" / "examples"
Z = 5.0  # standard errors allowed


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def _spec(doc: dict, **kw):
    return parse_workload_spec(doc, **kw)


def _client(**over):
    c = {"id": "c", "rate_fraction": 1.0, "arrival": {"process": "poisson"},
         "input_distribution": {"type": "exponential", "params": {"mean": 100}},
         "output_distribution": {"type": "exponential", "params": {"mean": 50}}}
    c.update(over)
    return c


def _doc(*clients, **top):
    d = {"version": "1", "seed": 7, "aggregate_rate": 100.0, "clients": list(clients)}
    d.update(top)
    return d


def _check_mean_var(x, mean, var, mu4, slack=0.0):
    """Sample mean and variance within Z standard errors of the true ones."""
    n = x.shape[0]
    se_mean = math.sqrt(var / n)
    assert abs(x.mean() - mean) <= Z * se_mean + slack, (x.mean(), mean, se_mean)
    se_var = math.sqrt((mu4 - var * var) / n)
    assert abs(x.var() - var) <= Z * se_var + 2 * slack * mean, (x.var(), var, se_var)


def _central_from_raw(m1, m2, m3, m4):
    var = m2 - m1 ** 2
    mu4 = m4 - 4 * m1 * m3 + 6 * m1 ** 2 * m2 - 3 * m1 ** 4
    return var, mu4


# ----------------------------------------------------------------------------------------------
# arrival processes
# ----------------------------------------------------------------------------------------------

N_ARR = 200_000
RATE_PER_US = 1e-4  # mean gap 10 ms: truncation to whole µs shifts the mean by < 1 µs


def test_poisson_gaps_rate_and_cv():
    s = make_arrival_sampler("poisson", None, RATE_PER_US)
    x = s.sample(np.random.default_rng(1), N_ARR).astype(np.float64)
    m = 1 / RATE_PER_US
    # exponential: var = m^2, mu4 = 9 m^4; truncation lowers the mean by < 1 µs
    _check_mean_var(x, m - 0.5, m * m, 9 * m ** 4, slack=0.5)
    assert x.min() >= 1
    cv = x.std() / x.mean()
    assert abs(cv - 1.0) < Z * math.sqrt(8 / N_ARR) / 2 + Z * math.sqrt(1 / N_ARR)


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0, 3.5])
def test_gamma_gaps_rate_and_cv(cv):
    s = make_arrival_sampler("gamma", cv, RATE_PER_US)
    assert s.kind == "gamma"
    k = 1 / cv ** 2
    theta = cv ** 2 / RATE_PER_US
    assert s.shape == pytest.approx(k) and s.scale == pytest.approx(theta)
    x = s.sample(np.random.default_rng(2), N_ARR).astype(np.float64)
    m = k * theta
    var = k * theta ** 2
    mu4 = (3 * k * k + 6 * k) * theta ** 4  # gamma: excess kurtosis 6/k
    # truncation (and the 1 µs floor) moves every sample by less than 1 µs
    _check_mean_var(x, m, var, mu4, slack=1.0)
    assert x.min() >= 1


def test_gamma_falls_back_to_poisson_above_cv_10():
    assert make_arrival_sampler("gamma", 11.0, 1e-3).kind == "poisson"
    assert make_arrival_sampler("gamma", 10.0, 1e-3).kind == "gamma"


@pytest.mark.parametrize("cv", [0.02, 0.3, 1.0, 2.5, 10.4])
def test_weibull_shape_bisection(cv):
    k = weibull_shape_from_cv(cv)
    assert 0.1 <= k <= 100
    assert abs(weibull_cv(k) - cv) < 1e-3


def test_weibull_shape_saturates_like_the_reference():
    # cv(k=100) ~ 0.0127: smaller targets (valid down to 0.01) end at the upper bound
    assert weibull_shape_from_cv(0.01) == pytest.approx(100.0, abs=1e-6)


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0])
def test_weibull_gaps_rate_and_cv(cv):
    s = make_arrival_sampler("weibull", cv, RATE_PER_US)
    k, lam = s.shape, s.scale
    raw = [lam ** j * math.gamma(1 + j / k) for j in range(1, 5)]
    assert raw[0] == pytest.approx(1 / RATE_PER_US)
    var, mu4 = _central_from_raw(*raw)
    assert math.sqrt(var) / raw[0] == pytest.approx(cv, abs=1e-3)
    x = s.sample(np.random.default_rng(3), N_ARR).astype(np.float64)
    _check_mean_var(x, raw[0], var, mu4, slack=1.0)
    assert x.min() >= 1


def test_iat_at_least_one_microsecond():
    s = make_arrival_sampler("gamma", 3.0, 10.0)  # mean gap 0.1 µs
    assert s.sample(np.random.default_rng(0), 50_000).min() == 1


@pytest.mark.parametrize("process,cv", [("poisson", None), ("gamma", 2.0), ("weibull", 0.5)])
def test_generated_stream_rate_and_cv(process, cv):
    """End to end: a single client's arrivals reproduce its rate and cv."""
    arrival = {"process": process}
    if cv is not None:
        arrival["cv"] = cv
    rate_s = 200.0
    horizon = 200_000_000  # 200 s -> 40,000 arrivals expected
    sp = _spec(_doc(_client(arrival=arrival), aggregate_rate=rate_s))
    wl = generate_from_spec(sp, horizon_us=horizon, max_requests=0)
    n = wl.num_requests
    lam = rate_s * horizon / 1e6
    c = 1.0 if cv is None else cv
    # count of a renewal process: var ~ lam * cv^2
    assert abs(n - lam) <= Z * math.sqrt(lam) * c + 1
    gaps = np.diff(np.concatenate(([0], wl.arrival_us))).astype(np.float64)
    m = 1e6 / rate_s
    assert abs(gaps.mean() - m) <= Z * c * m / math.sqrt(n) + 1
    assert abs(gaps.std() / gaps.mean() - c) <= 0.05 * c
    assert wl.arrival_us.max() < horizon and gaps.min() >= 1


# ----------------------------------------------------------------------------------------------
# length distributions
# ----------------------------------------------------------------------------------------------

N_LEN = 100_000


def _dist(typ, **params):
    return DistSpec(typ, tuple((str(k), float(v)) for k, v in params.items()))


def test_gaussian_mean_and_bounds():
    s = LengthSampler(_dist("gaussian", mean=500, std_dev=40, min=0, max=2000))
    x = s.sample(np.random.default_rng(4), N_LEN)
    assert abs(x.mean() - 500) <= Z * 40 / math.sqrt(N_LEN) + 0.01
    assert abs(x.std() - 40) <= 1.0


def test_gaussian_clamps_and_rounds():
    s = LengthSampler(_dist("gaussian", mean=100, std_dev=50, min=80, max=130))
    x = s.sample(np.random.default_rng(5), N_LEN)
    assert x.dtype == np.int64 and x.min() == 80 and x.max() == 130
    # P(clamped to min) = P(N < 80.5) = Phi(-0.39)
    p = 0.5 * math.erfc(19.5 / 50 / math.sqrt(2))
    assert abs((x == 80).mean() - p) <= Z * math.sqrt(p * (1 - p) / N_LEN)


def test_gaussian_degenerate_returns_min_without_drawing():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    assert LengthSampler(_dist("gaussian", mean=9, std_dev=3, min=7, max=7)).sample(rng, 5) \
        .tolist() == [7] * 5
    assert rng.bit_generator.state == before
    assert LengthSampler(_dist("gaussian", mean=0, std_dev=0, min=0, max=0)).sample(rng, 2) \
        .tolist() == [0, 0]


def test_gaussian_results_at_least_one():
    x = LengthSampler(_dist("gaussian", mean=0, std_dev=5, min=0, max=10)).sample(
        np.random.default_rng(1), 10_000)
    assert x.min() == 1


def test_exponential_mean():
    s = LengthSampler(_dist("exponential", mean=256))
    x = s.sample(np.random.default_rng(6), N_LEN)
    assert x.min() >= 1
    assert abs(x.mean() - 256) <= Z * 256 / math.sqrt(N_LEN) + 1


def test_pareto_lognormal_mixture_cdf_and_mean():
    a, xm, mu, sig, w = 3.0, 50.0, 5.0, 0.8, 0.3
    s = LengthSampler(_dist("pareto_lognormal", alpha=a, xm=xm, mu=mu, sigma=sig, mix_weight=w))
    x = s.sample(np.random.default_rng(7), N_LEN)
    assert x.min() >= 1
    for k in (20, 50, 100, 150, 400, 1000):
        t = k + 0.5  # round(X) <= k  <=>  X < k + 0.5
        par = 1 - (xm / t) ** a if t >= xm else 0.0
        logn = 0.5 * math.erfc(-(math.log(t) - mu) / (sig * math.sqrt(2)))
        p = w * par + (1 - w) * logn
        assert abs((x <= k).mean() - p) <= Z * math.sqrt(p * (1 - p) / N_LEN) + 1e-9, k
    m_par = a * xm / (a - 1)
    v_par = xm ** 2 * a / ((a - 1) ** 2 * (a - 2))
    m_ln = math.exp(mu + sig ** 2 / 2)
    v_ln = (math.exp(sig ** 2) - 1) * math.exp(2 * mu + sig ** 2)
    m = w * m_par + (1 - w) * m_ln
    var = w * (v_par + m_par ** 2) + (1 - w) * (v_ln + m_ln ** 2) - m * m
    assert abs(x.mean() - m) <= Z * math.sqrt(var / N_LEN) + 0.5


def test_empirical_frequencies():
    pdf = {10: 2.0, 20: 0.0, 30: 1.0, 40: 1.0}  # unnormalised; 20 never drawn
    s = LengthSampler(DistSpec("empirical", tuple((str(k), v) for k, v in pdf.items())))
    x = s.sample(np.random.default_rng(8), N_LEN)
    assert set(np.unique(x).tolist()) == {10, 30, 40}
    for v, p in ((10, 0.5), (30, 0.25), (40, 0.25)):
        assert abs((x == v).mean() - p) <= Z * math.sqrt(p * (1 - p) / N_LEN)
    assert s.mean_value() == pytest.approx(22.5)


# ----------------------------------------------------------------------------------------------
# generator
# ----------------------------------------------------------------------------------------------

def test_client_rate_fractions_within_3_percent():
    cl = [_client(id=f"c{i}", rate_fraction=f, tenant_id=f"t{i}")
          for i, f in enumerate((5.0, 3.0, 2.0))]
    cl[1]["arrival"] = {"process": "gamma", "cv": 2.0}
    cl[2]["arrival"] = {"process": "weibull", "cv": 0.7}
    sp = _spec(_doc(*cl, aggregate_rate=1000.0))
    wl = generate_from_spec(sp, horizon_us=200_000_000, max_requests=0)
    share = np.bincount(wl.tenant, minlength=3) / wl.num_requests
    assert wl.tenant_names == ("t0", "t1", "t2")
    for got, want in zip(share, (0.5, 0.3, 0.2)):
        assert abs(got - want) <= 0.03 * want, share
    assert np.all(np.diff(wl.arrival_us) >= 0)


def test_truncation_keeps_earliest_and_proportions():
    cl = [_client(id="a", rate_fraction=0.7, slo_class="batch"),
          _client(id="b", rate_fraction=0.3, slo_class="realtime")]
    sp = _spec(_doc(*cl, aggregate_rate=500.0, num_requests=30_000))
    full = generate_from_spec(sp, horizon_us=None, max_requests=60_000)
    wl = generate_from_spec(sp, horizon_us=None, max_requests=None)
    assert wl.num_requests == 30_000
    assert wl.slo_names == ("batch", "realtime")
    share = np.bincount(wl.slo_class) / wl.num_requests
    assert abs(share[0] - 0.7) <= 0.03 * 0.7
    np.testing.assert_array_equal(wl.arrival_us, full.arrival_us[:30_000])


def test_lifecycle_windows_respected():
    wins = [{"start_us": 1_000_000, "end_us": 3_000_000},
            {"start_us": 5_000_000, "end_us": 6_000_000}]
    sp = _spec(_doc(_client(lifecycle={"windows": wins}), aggregate_rate=5000.0))
    wl = generate_from_spec(sp, horizon_us=10_000_000, max_requests=0)
    t = wl.arrival_us
    inside = ((t >= 1_000_000) & (t < 3_000_000)) | ((t >= 5_000_000) & (t < 6_000_000))
    assert inside.all()
    for lo, hi in ((1_000_000, 3_000_000), (5_000_000, 6_000_000)):
        lam = 5000.0 * (hi - lo) / 1e6
        assert abs(((t >= lo) & (t < hi)).sum() - lam) <= Z * math.sqrt(lam)


def test_lifecycle_bounds_generation_without_horizon():
    sp = _spec(_doc(_client(lifecycle={"windows": [{"start_us": 0, "end_us": 1_000_000}]})))
    wl = generate_from_spec(sp, horizon_us=None, max_requests=0)
    assert 0 < wl.num_requests and wl.arrival_us.max() < 1_000_000


def _multiturn_spec(growth="accumulate", rounds=4, think=250_000, **top):
    c = _client(id="chat", slo_class="interactive",
                input_distribution={"type": "gaussian",
                                    "params": {"mean": 60, "std_dev": 20, "min": 5, "max": 200}},
                output_distribution={"type": "exponential", "params": {"mean": 40}},
                reasoning={"reason_ratio_distribution": {"type": "gaussian", "params": {
                    "mean": 50, "std_dev": 30, "min": 0, "max": 150}},
                    "multi_turn": {"max_rounds": rounds, "think_time_us": think,
                                   "context_growth": growth}})
    return _spec(_doc(c, aggregate_rate=50.0, **top))


def test_multiturn_round_order_and_context_growth():
    rounds, think = 4, 250_000
    sp = _multiturn_spec(rounds=rounds, think=think)
    r = generate_spec_requests(sp, horizon_us=10**9, max_requests=0)
    wl = r.workload
    assert wl.num_requests > 20_000
    assert (r.reason_ratio >= 0).all() and (r.reason_ratio <= 1).all()
    sessions = np.unique(r.session)
    assert sessions.min() >= 0
    checked = 0
    for s in sessions[:300]:
        idx = np.flatnonzero(r.session == s)
        assert r.round_index[idx].tolist() == list(range(idx.shape[0]))  # arrival order
        for a, b in zip(idx[:-1], idx[1:]):
            assert wl.arrival_us[b] - wl.arrival_us[a] == think + wl.n_out[a]
            prev = wl.tokens[wl.token_ptr[a]:wl.token_ptr[a + 1]]
            cur = wl.tokens[wl.token_ptr[b]:wl.token_ptr[b + 1]]
            # the next input starts with the whole previous input and output
            assert wl.n_in[b] > wl.n_in[a] + wl.n_out[a]
            np.testing.assert_array_equal(cur[:prev.shape[0]], prev)
            checked += 1
    assert checked > 500
    # session starts are a Poisson process at the client rate
    first = wl.arrival_us[r.round_index == 0]
    lam = 50.0 * 1e3
    assert abs(first.shape[0] - lam) <= Z * math.sqrt(lam)


def test_multiturn_without_accumulation_has_fresh_inputs():
    sp = _multiturn_spec(growth="none")
    r = generate_spec_requests(sp, horizon_us=100_000_000, max_requests=0)
    wl = r.workload
    assert wl.n_in.max() <= 200
    assert abs(wl.n_in.mean() - 60) <= Z * 20 / math.sqrt(wl.num_requests) + 0.5


def test_multiturn_rounds_respect_horizon_and_cap():
    sp = _multiturn_spec()
    wl = generate_from_spec(sp, horizon_us=5_000_000, max_requests=0)
    assert wl.arrival_us.max() < 5_000_000
    wl = generate_from_spec(sp, horizon_us=None, max_requests=1000)
    assert wl.num_requests == 1000


def test_prefix_groups_share_prefix_of_first_member_length():
    a = _client(id="a", prefix_group="g", prefix_length=32)
    b = _client(id="b", prefix_group="g", prefix_length=999)  # ignored: a comes first
    c = _client(id="c", prefix_group="h")                       # default 50
    d = _client(id="d")
    sp = _spec(_doc(a, b, c, d, aggregate_rate=400.0))
    r = generate_spec_requests(sp, horizon_us=20_000_000, max_requests=0)
    wl = r.workload
    heads = {}
    for i in range(wl.num_requests):
        cid = r.client_ids[r.client[i]]
        p = int(r.prefix_length[i])
        assert p == {"a": 32, "b": 32, "c": 50, "d": 0}[cid]
        seg = wl.tokens[wl.token_ptr[i]:wl.token_ptr[i] + p]
        heads.setdefault(sp.clients[r.client[i]].prefix_group, set()).add(seg.tobytes())
        assert wl.n_in[i] >= p + 1
    assert len(heads["g"]) == 1 and len(heads["h"]) == 1


def test_multimodal_token_sums():
    deg = lambda v: {"type": "gaussian", "params": {"mean": v, "std_dev": 0, "min": v, "max": v}}
    mm = {"text_distribution": deg(10), "image_distribution": deg(100),
          "image_count_distribution": deg(2), "audio_distribution": deg(7),
          "audio_count_distribution": {"type": "empirical", "params": {1: 0.5, 3: 0.5}}}
    c = _client(multimodal=mm)
    del c["input_distribution"]
    sp = _spec(_doc(c, category="multimodal"))
    r = generate_spec_requests(sp, horizon_us=100_000_000, max_requests=0)
    assert (r.text_tokens == 10).all() and (r.image_tokens == 200).all()
    assert set(np.unique(r.audio_tokens).tolist()) == {7, 21}
    assert (r.video_tokens == 0).all()
    np.testing.assert_array_equal(r.workload.n_in, 10 + 200 + r.audio_tokens)


def test_token_ids_and_csr_layout():
    sp = load_workload_spec(EXAMPLES / "servegen-language.yaml")
    wl = generate_from_spec(sp, horizon_us=None, max_requests=None)
    assert wl.num_requests == 500
    assert wl.tokens.dtype == np.int32 and wl.token_ptr[-1] == wl.tokens.shape[0]
    np.testing.assert_array_equal(np.diff(wl.token_ptr), wl.n_in + wl.n_out)
    assert wl.tokens.min() >= 0 and wl.tokens.max() < 128000
    assert (wl.n_in >= 1).all() and (wl.n_out >= 1).all()
    assert wl.slo_names == ("batch", "realtime") and wl.tenant_names == ("tenant-A", "tenant-B")


def test_deterministic_and_seed_override():
    sp = load_workload_spec(EXAMPLES / "servegen-language.yaml")
    a = generate_from_spec(sp, horizon_us=None, max_requests=2000)
    b = generate_from_spec(sp, horizon_us=None, max_requests=2000)
    c = generate_from_spec(sp, horizon_us=None, max_requests=2000, seed=43)
    d = generate_from_spec(sp, horizon_us=None, max_requests=2000, seed=42)
    for x in (b, d):
        np.testing.assert_array_equal(a.arrival_us, x.arrival_us)
        np.testing.assert_array_equal(a.tokens, x.tokens)
    assert not np.array_equal(a.arrival_us, c.arrival_us)


def _digest_script(path):
    return ("import hashlib,sys; from simulator.workload.spec import load_workload_spec; "
            "from simulator.workload.generator import generate_from_spec; "
            f"w=generate_from_spec(load_workload_spec({str(path)!r}), horizon_us=None, "
            "max_requests=None); h=hashlib.sha256()\n"
            "for a in (w.arrival_us,w.n_in,w.n_out,w.token_ptr,w.tokens,w.slo_class,w.tenant): "
            "h.update(a.tobytes())\n"
            "print(h.hexdigest())")


def test_identical_across_processes():
    path = EXAMPLES / "multiturn-chat-demo.yaml"
    outs = {subprocess.run([sys.executable, "-c", _digest_script(path)], capture_output=True,
                           text=True, cwd=ROOT, check=True,
                           env={"PYTHONHASHSEED": str(k), "PATH": "/usr/bin:/bin",
                                "NUMBA_CACHE_DIR": str(ROOT / ".numba_cache")}).stdout
            for k in (1, 2)}
    assert len(outs) == 1


def _per_client(r, cid):
    m = np.asarray([r.client_ids[k] == cid for k in r.client])
    wl = r.workload
    toks = [wl.tokens[wl.token_ptr[i]:wl.token_ptr[i + 1]].tobytes() for i in np.flatnonzero(m)]
    return wl.arrival_us[m], wl.n_in[m], wl.n_out[m], toks


def test_changing_one_client_leaves_others_unchanged():
    a = _client(id="a", arrival={"process": "gamma", "cv": 2.0}, prefix_group="g")
    b = _client(id="b", rate_fraction=1.0)
    b2 = _client(id="b", rate_fraction=1.0, output_distribution={"type": "exponential",
                                                                   "params": {"mean": 999}})
    c = _client(id="c", rate_fraction=0.5)
    base = generate_spec_requests(_spec(_doc(a, b)), horizon_us=20_000_000, max_requests=0)
    # same total fractions so client a's rate is unchanged
    edit = generate_spec_requests(_spec(_doc(a, b2)), horizon_us=20_000_000, max_requests=0)
    for x, y in zip(_per_client(base, "a"), _per_client(edit, "a")):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
    assert not np.array_equal(_per_client(base, "b")[2], _per_client(edit, "b")[2])
    # adding a client (with a's rate kept by scaling aggregate_rate) leaves a's stream intact
    added = generate_spec_requests(_spec(_doc(a, b, c, aggregate_rate=125.0)),
                                   horizon_us=20_000_000, max_requests=0)
    for x, y in zip(_per_client(base, "a"), _per_client(added, "a")):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y


def test_unbounded_generation_is_rejected():
    sp = _spec(_doc(_client()))
    with pytest.raises(InputError, match="time bound"):
        generate_from_spec(sp, horizon_us=None, max_requests=0)
    assert generate_from_spec(sp, horizon_us=0, max_requests=10).num_requests == 0


def test_100k_requests_generate_correctly():
    """100,000 requests of the servegen-language example: a complete, packed request table
    (sorted arrivals, CSR token layout), each client's lengths within its spec, the batch
    client's shared 50-token prefix, and a 70/30 client mix.

    The mix bound: a renewal process with gap CV c has count sd ~ c·sqrt(mean), so the batch
    client (gamma, cv 3.5) and the chat client (Poisson, cv 1) give a batch count within
    Z·sqrt(3.5²·0.7n + 0.3n) of 0.7n.  How long generation takes is a benchmark figure
    (benchmarks/bench_spec_generation.py), not a test assertion.
    """
    n = 100_000
    sp = load_workload_spec(EXAMPLES / "servegen-language.yaml")
    wl = generate_from_spec(sp, horizon_us=None, max_requests=n)
    assert wl.num_requests == n
    assert wl.arrival_us.dtype == np.int64 and (np.diff(wl.arrival_us) >= 0).all()
    assert wl.token_ptr.size == n + 1 and wl.token_ptr[0] == 0
    np.testing.assert_array_equal(np.diff(wl.token_ptr), wl.n_in + wl.n_out)
    assert wl.tokens.size == wl.token_ptr[-1]
    assert wl.n_out.min() >= 1
    names = list(wl.slo_names)
    batch = np.asarray(wl.slo_class) == names.index("batch")
    chat = np.asarray(wl.slo_class) == names.index("realtime")
    assert (batch | chat).all()
    assert abs(int(batch.sum()) - 0.7 * n) <= Z * math.sqrt(3.5 ** 2 * 0.7 * n + 0.3 * n)
    # realtime-chat: gaussian input clamped to [10, 2048], no prefix group
    assert wl.n_in[chat].min() >= 10 and wl.n_in[chat].max() <= 2048
    # high-volume-batch: prefix group without prefix_length -> one shared 50-token prefix
    idx = np.flatnonzero(batch)
    assert wl.n_in[idx].min() > 50
    first = wl.tokens[wl.token_ptr[idx[0]]:wl.token_ptr[idx[0]] + 50]
    for i in idx[[1, idx.size // 2, -1]]:
        np.testing.assert_array_equal(wl.tokens[wl.token_ptr[i]:wl.token_ptr[i] + 50], first)


# ----------------------------------------------------------------------------------------------
# examples and strict parsing
# ----------------------------------------------------------------------------------------------

SPEC_EXAMPLES = ("servegen-language.yaml", "prefix-affinity-demo.yaml", "multiturn-chat-demo.yaml")


def test_example_classification():
    """The three workload specs are exactly the examples with ``aggregate_rate`` + clients."""
    found = set()
    for p in EXAMPLES.glob("*.yaml"):
        doc = yaml.safe_load(p.read_text())
        if isinstance(doc, dict) and "aggregate_rate" in doc:
            found.add(p.name)
    assert found == set(SPEC_EXAMPLES)


@pytest.mark.parametrize("name", SPEC_EXAMPLES)
def test_examples_load_and_generate(name):
    sp = load_workload_spec(EXAMPLES / name)
    wl = generate_from_spec(sp, horizon_us=None, max_requests=None)
    assert wl.num_requests == sp.num_requests
    assert np.all(np.diff(wl.arrival_us) >= 0)


def test_example_values():
    sp = load_workload_spec(EXAMPLES / "servegen-language.yaml")
    assert sp.seed == 42 and sp.aggregate_rate == 100.0 and len(sp.clients) == 2
    c0 = sp.clients[0]
    assert c0.arrival.process == "gamma" and c0.arrival.cv == 3.5
    assert c0.input_distribution.param("mix_weight") == 0.3 and c0.network.rtt_ms == 2.0
    mt = load_workload_spec(EXAMPLES / "multiturn-chat-demo.yaml").clients[0].reasoning.multi_turn
    assert (mt.max_rounds, mt.think_time_us, mt.context_growth) == (5, 500000, "accumulate")


def _load_text(tmp_path, text):
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return load_workload_spec(p)


def _load_doc(tmp_path, doc):
    return _load_text(tmp_path, yaml.safe_dump(doc))


def _err(tmp_path, doc) -> str:
    with pytest.raises(InputError) as e:
        if isinstance(doc, str):
            _load_text(tmp_path, doc)
        else:
            _load_doc(tmp_path, doc)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "spec.yaml"))
    return msg


def test_error_weibull_cv_range(tmp_path):
    cl = [_client(), _client(), _client(arrival={"process": "weibull", "cv": 20})]
    assert _err(tmp_path, _doc(*cl)).endswith(
        "spec.yaml: clients[2].arrival.cv must be in [0.01, 10.4], got 20")


@pytest.mark.parametrize("mutate,expect", [
    (lambda d: d.update(seeds=3), "seeds is not a known key"),
    (lambda d: d["clients"][0].update(rate_fractoin=1), "clients[0].rate_fractoin is not a known"),
    (lambda d: d["clients"][0].update(rate_fraction="abc"),
     "clients[0].rate_fraction must be a number, got 'abc'"),
    (lambda d: d["clients"][0].update(rate_fraction=0), "clients[0].rate_fraction must be > 0"),
    (lambda d: d.update(aggregate_rate=-1), "aggregate_rate must be > 0, got -1"),
    (lambda d: d.pop("aggregate_rate"), "aggregate_rate is required"),
    (lambda d: d.update(category="video"), "category must be one of"),
    (lambda d: d["clients"][0].update(slo_class="gold"), "clients[0].slo_class must be one of"),
    (lambda d: d["clients"][0]["arrival"].update(process="uniform"),
     "clients[0].arrival.process must be one of poisson, gamma, weibull"),
    (lambda d: d["clients"][0]["arrival"].update(cv=-2), "clients[0].arrival.cv must be > 0"),
    (lambda d: d["clients"][0].update(input_distribution={"type": "gaussian", "params": {
        "mean": 5, "std_dev": 1, "min": 10, "max": 3}}),
     "clients[0].input_distribution.params.max must be >= min"),
    (lambda d: d["clients"][0].update(input_distribution={"type": "exponential",
                                                          "params": {"mena": 5}}),
     "clients[0].input_distribution.params.mena is not a known key"),
    (lambda d: d["clients"][0].update(output_distribution={"type": "pareto_lognormal", "params": {
        "alpha": 1, "xm": 1, "mu": 1, "sigma": 1, "mix_weight": 1.5}}),
     "clients[0].output_distribution.params.mix_weight must be in [0, 1]"),
    (lambda d: d["clients"][0].update(input_distribution={"type": "empirical",
                                                          "params": {"ten": 1}}),
     "clients[0].input_distribution.params.ten is not an integer"),
    (lambda d: d["clients"][0].update(input_distribution={"type": "empirical", "file": "x.csv"}),
     "clients[0].input_distribution.file is not supported"),
    (lambda d: d["clients"][0].update(lifecycle={"windows": [{"start_us": 5, "end_us": 5}]}),
     "clients[0].lifecycle.windows[0].end_us must be > start_us"),
    (lambda d: d["clients"][0].update(streaming="yes"), "clients[0].streaming must be true or"),
    (lambda d: d["clients"][0].update(prefix_length=-1), "clients[0].prefix_length must be >= 0"),
    (lambda d: d["clients"][0].update(reasoning={"multi_turn": {"max_rounds": 0}}),
     "clients[0].reasoning.multi_turn.max_rounds must be >= 1"),
    (lambda d: d["clients"][0].update(reasoning={"multi_turn": {"max_rounds": 2,
                                                                "context_growth": "grow"}}),
     "clients[0].reasoning.multi_turn.context_growth must be one of"),
    (lambda d: d["clients"][0].update(multimodal={"image_distribution": {
        "type": "exponential", "params": {"mean": 5}}}),
     "clients[0].multimodal.image_count_distribution is required"),
    (lambda d: d.update(horizon=1.5), "horizon must be an integer, got 1.5"),
    (lambda d: d.update(clients=[]), "clients must list at least one client"),
    (lambda d: d["clients"][0].pop("output_distribution"),
     "clients[0].output_distribution is required"),
])
def test_strict_parsing_errors(tmp_path, mutate, expect):
    d = _doc(_client())
    mutate(d)
    assert expect in _err(tmp_path, d)


V2_CLASSES = ("critical", "standard", "sheddable", "batch", "background")


def test_version_2_spec_takes_every_v2_slo_class(tmp_path):
    sp = _load_doc(tmp_path, _doc(*(_client(id=n, slo_class=n) for n in V2_CLASSES), version="2"))
    assert sp.version == "2" and [c.slo_class for c in sp.clients] == list(V2_CLASSES)


@pytest.mark.parametrize("version", ["1", "", 1])
def test_version_1_spec_takes_v1_and_v2_names_as_written(tmp_path, version):
    names = ("critical", "standard", "realtime", "interactive")
    sp = _load_doc(tmp_path, _doc(*(_client(id=n, slo_class=n) for n in names), version=version))
    assert [c.slo_class for c in sp.clients] == list(names)   # not renamed to critical/standard
    wl = generate_from_spec(sp, horizon_us=None, max_requests=200)
    assert set(wl.slo_names) == set(names)


def test_version_2_spec_rejects_v1_slo_class(tmp_path):
    d = _doc(_client(id="bulk", slo_class="batch"), _client(id="rt", slo_class="realtime"),
             version="2")
    msg = _err(tmp_path, d)
    assert "clients[1].slo_class (client 'rt')" in msg and "got 'realtime'" in msg
    assert "critical, standard, sheddable, batch, background" in msg
    assert "version-1 names" in msg and 'version: "1"' in msg


@pytest.mark.parametrize("version", ["3", "v2", 2.5])
def test_unknown_spec_version_is_an_error(tmp_path, version):
    msg = _err(tmp_path, _doc(_client(), version=version))
    assert 'spec.yaml: version must be "1" or "2" (or empty), got' in msg


def test_error_duplicate_key_and_bad_yaml(tmp_path):
    assert "spec.yaml: duplicate key 'aggregate_rate' at line 2" in _err(
        tmp_path, "aggregate_rate: 1\naggregate_rate: 2\nclients: []\n")
    assert "spec.yaml: invalid YAML at line 2" in _err(tmp_path, "clients: [\n")
    assert "must be a mapping" in _err(tmp_path, "- 1\n- 2\n")
    with pytest.raises(InputError, match="cannot read workload spec"):
        load_workload_spec(tmp_path / "missing.yaml")


def test_optional_fields_and_slo_targets(tmp_path):
    c = _client(slo_targets={"ttft_ms": 200, "e2e_ms": 5000}, streaming=True,
                network={"rtt_ms": 10}, prefix_group="sys")
    sp = _load_doc(tmp_path, _doc(c, horizon=10**6, num_requests=0))
    cl = sp.clients[0]
    assert cl.slo_targets.ttft_ms == 200 and cl.slo_targets.tpot_ms is None
    assert cl.network.bandwidth_mbps == 0 and cl.streaming is True
    assert sp.horizon == 10**6 and sp.num_requests == 0
    hash(sp)  # frozen + hashable: usable as a cache key


# ----------------------------------------------------------------------------------------------
# ServeGen native data
# ----------------------------------------------------------------------------------------------

def test_servegen_missing_data_is_a_clear_error(tmp_path):
    d = {"aggregate_rate": 10.0, "servegen_data": {"path": str(tmp_path / "nowhere")}}
    assert "servegen_data.path" in _err(tmp_path, d) and "is not a directory" in _err(tmp_path, d)
    (tmp_path / "empty").mkdir()
    d["servegen_data"]["path"] = "empty"  # relative: resolved against the spec's directory
    assert "no chunk-*-trace.csv files" in _err(tmp_path, d)


def test_servegen_data_loads(tmp_path):
    data = tmp_path / "sg"
    data.mkdir()
    (data / "chunk-0-trace.csv").write_text("0,5.0,2.0,Gamma,1,2\n600,9.0,1.5,Gamma,1,2\n"
                                            "1200,20.0,0.5,Weibull,1,2\n")
    (data / "chunk-0-dataset.json").write_text(json.dumps({
        "600": {"input_tokens": "{100: 0.5, 200: 0.5}", "output_tokens": "{10: 1.0}"},
        "0": {"input_tokens": "{50: 1.0,}", "output_tokens": "{5.0: 2e-1}"}}))
    (data / "chunk-1-trace.csv").write_text("0,3.0,1.0,,\nbad,row\n")
    (data / "chunk-1-dataset.json").write_text(json.dumps({
        "0": {"input_tokens": "{7: 1}", "output_tokens": "{3: 1}"}}))
    (data / "chunk-2-trace.csv").write_text("0,0.0,1.0,Gamma\n")  # inactive -> skipped
    doc = {"seed": 1, "aggregate_rate": 50.0,
           "servegen_data": {"path": str(data), "span_start": 0, "span_end": 1000}}
    sp = _load_doc(tmp_path, doc)
    assert [c.id for c in sp.clients] == ["servegen-chunk-0", "servegen-chunk-1"]
    c0, c1 = sp.clients
    assert (c0.arrival.process, c0.arrival.cv, c0.rate_fraction) == ("gamma", 1.5, 9.0)
    assert c0.tenant_id == "chunk-0" and c1.arrival.process == "poisson"
    assert c0.input_distribution.pdf() == {50: 1.0}  # first window in string-sorted key order
    wl = generate_from_spec(sp, horizon_us=100_000_000, max_requests=0)
    assert set(np.unique(wl.n_in).tolist()) <= {50, 7} and wl.num_requests > 1000
