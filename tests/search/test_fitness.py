"""search.fitness: the typed per-seed and per-evaluation results and the one penalised fitness."""
from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest

from blis_evo.experiment import Objective, Objectives, Penalties
from search.fitness import (AnomalyRates, Measures, combine, failed, mean_result, penalise,
                            seed_result)

SINGLE = Objectives(mode="single", primary="p99_ttft", weights=(("p99_ttft", 1.0),), multi=())
MULTI = Objectives(mode="multi", primary="p99_ttft", weights=(("p99_ttft", 1.0),),
                   multi=(Objective("p99_ttft", "min"), Objective("throughput", "max"),
                          Objective("slo_attainment.batch", "max")))
PENALTIES = Penalties(priority_inversions=2.0, rejected_requests=10.0)


def measures(p99: float, rps: float) -> Measures:
    base = {f.name: 0.0 for f in fields(Measures)}
    return Measures(**{**base, "p99_ttft_ms": p99, "throughput_rps": rps})


def result(score, p99, rps, rejected=0.0, attainment=None, code=None):
    return seed_result(score=score, components={"p99_ttft": score}, penalties=PENALTIES,
                       rates=AnomalyRates(priority_inversions=0.01, rejected_requests=rejected),
                       measures=measures(p99, rps), attainment=attainment or {},
                       code_nonfinite=code)


def test_seed_result_penalty_is_the_weighted_rates_and_fitness_the_penalised_score():
    r = result(0.5, 100.0, 10.0, rejected=0.02)
    assert r.penalty == pytest.approx(2.0 * 0.01 + 10.0 * 0.02)
    assert r.fitness == pytest.approx(0.5 * math.exp(-r.penalty))
    assert result(0.5, 100.0, 10.0).fitness > r.fitness        # more rejections, lower fitness


def test_penalise_never_flips_the_sign_or_ranks_a_value_up():
    assert penalise(2.0, 0.5) == pytest.approx(2.0 * math.exp(-0.5))
    assert penalise(-2.0, 0.5) == pytest.approx(-2.0 * math.exp(0.5))    # a negated latency
    assert penalise(-2.0, 0.5) < -2.0 and 0 < penalise(2.0, 0.5) < 2.0


def test_mean_fitness_is_the_mean_of_penalised_fitnesses_not_the_penalised_mean():
    a, b = result(1.0, 100.0, 10.0, rejected=0.0), result(0.2, 300.0, 20.0, rejected=0.1)
    m = mean_result([a, b])
    assert m.fitness == pytest.approx((a.fitness + b.fitness) / 2)
    assert m.fitness != pytest.approx(penalise(m.score, m.penalty))
    assert m.measures.p99_ttft_ms == 200.0 and m.rates.rejected_requests == pytest.approx(0.05)
    assert m.code_nonfinite is None
    assert mean_result([result(1, 1, 1, code=2.0), result(1, 1, 1, code=4.0)]).code_nonfinite == 3.0


def test_combine_single_mode_ranks_by_the_mean_fitness():
    a, b = result(1.0, 100.0, 10.0), result(0.5, 300.0, 20.0)
    ev = combine([a, b], ["raw-a", "raw-b"], SINGLE)
    assert ev.objectives == (ev.fitness,) and ev.fitness == pytest.approx((a.fitness + b.fitness) / 2)
    assert ev.per_seed == (a, b) and ev.raw == ("raw-a", "raw-b") and ev.error is None


def test_combine_multi_mode_orients_averages_and_penalises_each_objective():
    a = result(1.0, 100.0, 10.0, attainment={"batch": 0.5, "overall": 0.7})
    b = result(1.0, 300.0, 20.0, attainment={"overall": 0.9})       # no "batch" requests: 1.0
    ev = combine([a, b], [], MULTI)
    f = math.exp(-ev.penalty)
    assert ev.objectives == pytest.approx((-200.0 / f, 15.0 * f, 0.75 * f))
    assert ev.mean.objective("slo_attainment") == pytest.approx(0.8)


def test_objective_reads_each_key_in_its_own_unit():
    r = replace(result(1.0, 123.0, 7.0), attainment={"overall": 0.25})
    assert r.objective("p99_ttft") == 123.0 and r.objective("throughput") == 7.0
    assert r.objective("slo_attainment") == 0.25 and r.objective("slo_attainment.x") == 1.0
    assert r.objective("replica_seconds") == 0.0
    with pytest.raises(AttributeError):
        r.objective("bogus")


def test_failed_evaluation_is_worst_on_every_objective():
    assert failed(SINGLE, "boom").objectives == (0.0,)
    ev = failed(MULTI, "boom")
    assert ev.objectives[0] <= -1e12 and ev.objectives[1:] == (0.0, 0.0)
    assert ev.error == "boom" and ev.per_seed == () and ev.mean is None
