"""Scenario presets (reference ``sim/workload/scenarios.go``): exact specs and generated mix."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.workload.generator import generate_spec_requests
from simulator.workload.scenarios import (DEFAULT_NUM_REQUESTS, DEFAULT_RATE, DEFAULT_SEED,
                                          SCENARIO_NAMES, scenario_document)
from simulator.workload.spec import ArrivalSpec, DistSpec, load_workload_spec, scenario_spec

N = 40_000

# (client id, tenant, slo class, rate fraction, streaming, prefix group, arrival, input, output)
EXP = lambda m: DistSpec("exponential", (("mean", float(m)),))  # noqa: E731
GAUSS = lambda m, s, lo, hi: DistSpec("gaussian", (("mean", float(m)), ("std_dev", float(s)),  # noqa: E731
                                                   ("min", float(lo)), ("max", float(hi))))
POISSON = ArrivalSpec("poisson")
EXPECTED = {
    "bursty": [
        ("bursty-client", "tenant-A", "batch", 1.0, False, "", ArrivalSpec("gamma", 3.5),
         EXP(512), EXP(256)),
    ],
    "unfair-tenants": [
        ("low-priority-bulk", "tenant-bulk", "batch", 0.9, False, "", POISSON,
         EXP(1024), EXP(512)),
        ("high-priority-realtime", "tenant-realtime", "realtime", 0.1, True, "", POISSON,
         GAUSS(128, 50, 10, 2048), EXP(64)),
    ],
    "prefix-heavy": [
        ("shared-prefix", "tenant-A", "batch", 0.8, False, "system-prompt", POISSON,
         EXP(256), EXP(128)),
        ("unique-prefix", "tenant-B", "interactive", 0.2, False, "", POISSON,
         EXP(512), EXP(256)),
    ],
    "mixed-slo": [
        ("realtime", "tenant-rt", "realtime", 0.33, True, "", POISSON,
         GAUSS(64, 20, 10, 256), EXP(32)),
        ("interactive", "tenant-int", "interactive", 0.34, False, "", POISSON,
         GAUSS(256, 100, 32, 2048), EXP(128)),
        ("batch", "tenant-batch", "batch", 0.33, False, "", POISSON,
         EXP(1024), EXP(512)),
    ],
}


def test_names():
    assert SCENARIO_NAMES == ("bursty", "unfair-tenants", "prefix-heavy", "mixed-slo")


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_preset_matches_reference_spec(name):
    sp = load_workload_spec(f"preset:{name}")
    assert sp == scenario_spec(name)
    assert (sp.version, sp.category, sp.seed, sp.aggregate_rate, sp.num_requests, sp.horizon) == \
        ("1", "language", DEFAULT_SEED, DEFAULT_RATE, DEFAULT_NUM_REQUESTS, 0)
    assert sp.servegen_data is None
    got = [(c.id, c.tenant_id, c.slo_class, c.rate_fraction, c.streaming, c.prefix_group,
            c.arrival, c.input_distribution, c.output_distribution) for c in sp.clients]
    assert got == EXPECTED[name]
    for c in sp.clients:
        assert c.prefix_length == 0 and c.network is None and c.lifecycle is None
        assert c.multimodal is None and c.reasoning is None and c.slo_targets is None


def test_seed_rate_and_count_arguments():
    sp = scenario_spec("mixed-slo", seed=7, rate=250.0, num_requests=0)
    assert (sp.seed, sp.aggregate_rate, sp.num_requests) == (7, 250.0, 0)
    doc = scenario_document("bursty")
    doc["clients"][0]["id"] = "changed"  # a fresh document each call
    assert scenario_spec("bursty").clients[0].id == "bursty-client"


def test_unknown_preset_lists_valid_names():
    with pytest.raises(InputError) as ei:
        load_workload_spec("preset:nope")
    msg = str(ei.value)
    assert "'nope'" in msg and "\n" not in msg
    for n in SCENARIO_NAMES:
        assert n in msg


def test_bad_rate_is_an_input_error():
    with pytest.raises(InputError, match="aggregate_rate"):
        scenario_spec("bursty", rate=0.0)


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_preset_generates_documented_mix(name):
    sp = scenario_spec(name)
    gen = generate_spec_requests(sp, horizon_us=None, max_requests=N)
    wl = gen.workload
    assert wl.num_requests == N
    assert np.all(np.diff(wl.arrival_us) >= 0)
    # the aggregate rate: N arrivals at 1 req/s take about N seconds (sd cv * sqrt(N) s)
    cv = sp.clients[0].arrival.cv or 1.0
    assert abs(wl.arrival_us[-1] / 1e6 - N) <= 4 * cv * math.sqrt(N)
    exp = EXPECTED[name]
    total = sum(e[3] for e in exp)
    share = np.bincount(gen.client, minlength=len(exp)) / N
    for (cid, tenant, slo, frac, *_), got in zip(exp, share):
        want = frac / total
        assert abs(got - want) <= 0.03 * want, (cid, got, want)
    # every class and tenant is present, named as in the reference
    assert set(wl.slo_names) == {e[2] for e in exp}
    assert set(wl.tenant_names) == {e[1] for e in exp}
    for i, (cid, tenant, slo, *_rest) in enumerate(exp):
        sel = gen.client == i
        assert np.all(np.asarray(wl.slo_names)[wl.slo_class[sel]] == slo)
        assert np.all(np.asarray(wl.tenant_names)[wl.tenant[sel]] == tenant)
    assert gen.network is not None and not gen.network.any


def test_bursty_gamma_arrivals():
    gen = generate_spec_requests(scenario_spec("bursty", rate=100.0), horizon_us=None,
                                 max_requests=N)
    gaps = np.diff(gen.workload.arrival_us).astype(np.float64)
    # mean gap 10,000 µs; gamma with cv 3.5 (shape 1/12.25): sd of the mean is cv/sqrt(N)
    assert abs(gaps.mean() - 1e4) <= 4 * 3.5 / math.sqrt(N) * 1e4
    # a Poisson stream would have cv 1; allow the sampling spread of a heavy-skew cv estimate
    assert 3.0 <= gaps.std() / gaps.mean() <= 4.0


def test_prefix_heavy_shares_one_prefix():
    gen = generate_spec_requests(scenario_spec("prefix-heavy"), horizon_us=None,
                                 max_requests=2_000)
    wl = gen.workload
    shared = np.flatnonzero(gen.client == 0)
    unique = np.flatnonzero(gen.client == 1)
    assert np.all(gen.prefix_length[shared] == 50) and np.all(gen.prefix_length[unique] == 0)
    first = wl.tokens[wl.token_ptr[shared[0]]:wl.token_ptr[shared[0]] + 50]
    for r in shared[:200]:
        np.testing.assert_array_equal(wl.tokens[wl.token_ptr[r]:wl.token_ptr[r] + 50], first)
    assert np.all(wl.n_in[shared] >= 51)


def test_mixed_slo_length_bounds():
    gen = generate_spec_requests(scenario_spec("mixed-slo"), horizon_us=None, max_requests=N)
    wl = gen.workload
    rt = gen.client == 0
    inter = gen.client == 1
    assert wl.n_in[rt].min() >= 10 and wl.n_in[rt].max() <= 256
    assert wl.n_in[inter].min() >= 32 and wl.n_in[inter].max() <= 2048
    # Gaussian 64 ± 20 barely clipped at 10 / 256: mean within 4 standard errors
    assert abs(wl.n_in[rt].mean() - 64) <= 4 * 20 / math.sqrt(rt.sum()) + 0.5
