"""Per-SLO-class / per-tenant distributions, Jain fairness, SLO attainment (issue 4 item 6).

Oracles are plain Python written from the definitions (reference ``sim/cluster/metrics.go``
``ComputePerSLODistributions`` / ``SLOAttainment`` / ``JainFairnessIndex``, extended as
documented in ``simulator.metrics``); SimResults are built by hand.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import blis_evo.metrics as BM
from blis_evo import output as OUT
from simulator import metrics as M
from simulator.errors import InputError
from simulator.kernels.request_states import (REQ_COMPLETED, REQ_DROPPED, REQ_IN_PIPELINE,
                                              REQ_NOT_ARRIVED, REQ_QUEUED, REQ_REJECTED,
                                              REQ_RUNNING)
from tests.oracles import metrics_oracle as O

NAN = math.nan


# --- builder -----------------------------------------------------------------------------------

def build(rows, *, n_inst=2, sim_end_us=2_000_000, slo_names=("",), tenant_names=("",),
          classes=True, tenants=True):
    """SimResult from request rows ``(state, inst, ttft_us, e2e_us, n_out, slo, tenant)``.

    ``inst`` is -1 for requests never routed.  ``sim_end_us`` goes to instance 0.
    """
    st_ = [r[0] for r in rows]
    res = O.make_result(
        n_inst=n_inst, req_instance=[r[1] for r in rows], arrival_us=list(range(len(rows))),
        ttft_us=[r[2] for r in rows], e2e_us=[r[3] for r in rows], n_out=[r[4] for r in rows],
        slo_class=[r[5] for r in rows] if classes else None, slo_names=slo_names,
        tenant=[r[6] for r in rows] if tenants else None, tenant_names=tenant_names,
        inst={"inst_sim_ended_us": [sim_end_us] + [0] * (n_inst - 1)})
    return dataclasses.replace(res, req_state=np.asarray(st_, dtype=np.int8))


C, Q, RUN, REJ, DROP, PIPE, NA = (REQ_COMPLETED, REQ_QUEUED, REQ_RUNNING,
                                 REQ_REJECTED, REQ_DROPPED, REQ_IN_PIPELINE, REQ_NOT_ARRIVED)


# --- plain-Python oracles ----------------------------------------------------------------------

def label(names, code):
    return names[code] or "default"


def oracle_grouped(rows, names, col):
    """{label: (ttft dist tuple, e2e dist tuple)} over routed requests (O.distribution)."""
    ttft, e2e = {}, {}
    for r in rows:
        if r[1] < 0:
            continue
        lab = label(names, r[col])
        if not math.isnan(r[2]):
            ttft.setdefault(lab, []).append(r[2])
        if not math.isnan(r[3]):
            e2e.setdefault(lab, []).append(r[3])
    return {lab: (O.distribution(ttft.get(lab, [])), O.distribution(e2e.get(lab, [])))
            for lab in sorted(set(ttft) | set(e2e))}


def dist_tuple(d):
    return (d.mean, d.p50, d.p95, d.p99, d.min, d.max, d.count)


def oracle_attainment(rows, names, targets):
    per, total_met, total = {}, 0, 0
    for r in rows:
        state, _inst, ttft, e2e, n_out, slo, _t = r
        if state == NA:
            continue
        lab = label(names, slo)
        tg = targets.get(lab)
        if tg is None and lab == "default":
            tg = targets.get("")
        tg = {k: v for k, v in (tg or {}).items() if v is not None}
        if not tg:
            met = True
        elif math.isnan(e2e):
            met = False                      # not completed: violation
        else:
            met = True
            if "ttft_ms" in tg and not (ttft / 1000 <= tg["ttft_ms"]):
                met = False
            if "e2e_ms" in tg and not (e2e / 1000 <= tg["e2e_ms"]):
                met = False
            if "tpot_ms" in tg and n_out > 1:
                tpot_ms = (e2e - ttft) / (n_out - 1) / 1000
                if not (tpot_ms <= tg["tpot_ms"]):
                    met = False
        m, n = per.get(lab, (0, 0))
        per[lab] = (m + met, n + 1)
        total_met += met
        total += 1
    out = {lab: per[lab][0] / per[lab][1] for lab in sorted(per)}
    out["overall"] = total_met / total if total else 0.0
    return out


def oracle_tenant_throughput(rows, names, sim_end_us):
    tok = {}
    for r in rows:
        if r[0] == NA:
            continue
        lab = label(names, r[6])
        tok.setdefault(lab, 0)
        if not math.isnan(r[3]):
            tok[lab] += r[4]
    dur = sim_end_us / 1e6
    return {lab: (tok[lab] / dur if sim_end_us > 0 else 0.0) for lab in sorted(tok)}


def oracle_jain(xs):
    n = len(xs)
    if n == 0:
        return 0.0
    s = sum(xs)
    s2 = sum(x * x for x in xs)
    return 0.0 if s2 == 0 else s * s / (n * s2)


# --- a fixed two-class, three-tenant run --------------------------------------------------------

SLO = ("", "realtime", "batch")
TEN = ("", "alice", "bob")
ROWS = [
    # state, inst, ttft_us, e2e_us, n_out, slo, tenant
    (C, 0, 1000.0, 5000.0, 5, 1, 1),      # realtime: ttft 1ms, e2e 5ms, tpot 1ms
    (C, 1, 3000.0, 9000.0, 4, 1, 2),      # realtime: ttft 3ms, e2e 9ms, tpot 2ms
    (C, 0, 2000.0, 2000.0, 1, 1, 1),      # realtime: single token, tpot undefined
    (RUN, 1, 4000.0, NAN, 10, 1, 2),      # realtime: still running -> violation
    (REJ, -1, NAN, NAN, 7, 1, 1),         # realtime: rejected -> violation
    (NA, -1, NAN, NAN, 7, 1, 1),          # never arrived: not counted at all
    (C, 0, 8000.0, 40000.0, 20, 2, 2),    # batch
    (C, 1, 6000.0, 30000.0, 10, 2, 0),    # batch, default tenant
    (Q, 1, NAN, NAN, 3, 0, 0),            # default class, queued
]


def fixed():
    return build(ROWS, slo_names=SLO, tenant_names=TEN)


def test_per_slo_and_per_tenant_distributions_match_oracle():
    res = fixed()
    for fn, names, col in ((M.per_slo_distributions, SLO, 5),
                           (M.per_tenant_distributions, TEN, 6)):
        got = fn(res)
        want = oracle_grouped(ROWS, names, col)
        assert list(got) == list(want)
        for lab in want:
            assert dist_tuple(got[lab][0]) == want[lab][0]
            assert dist_tuple(got[lab][1]) == want[lab][1]
    # the queued default-class request has neither TTFT nor E2E: no "default" class
    assert list(M.per_slo_distributions(res)) == ["batch", "realtime"]
    assert list(M.per_tenant_distributions(res)) == ["alice", "bob", "default"]
    rt_ttft, rt_e2e = M.per_slo_distributions(res)["realtime"]
    assert rt_ttft.count == 4 and rt_e2e.count == 3          # running request has a TTFT
    assert rt_ttft.mean == 2500.0 and rt_e2e.max == 9000.0


def test_no_class_arrays_is_one_default_group():
    res = build(ROWS, classes=False, tenants=False)
    assert list(M.per_slo_distributions(res)) == ["default"]
    assert list(M.per_tenant_distributions(res)) == ["default"]
    assert M.tenant_throughput(res) == {"default": (5 + 4 + 1 + 20 + 10) / 2.0}


def test_tenant_throughput_is_completed_output_tokens_per_second():
    res = fixed()
    got = M.tenant_throughput(res)
    assert got == oracle_tenant_throughput(ROWS, TEN, 2_000_000)
    assert got == {"alice": (5 + 1) / 2.0, "bob": (4 + 20) / 2.0, "default": 10 / 2.0}
    zero = build(ROWS, slo_names=SLO, tenant_names=TEN, sim_end_us=0)
    assert set(M.tenant_throughput(zero).values()) == {0.0}
    # a tenant whose only request was rejected still counts, with throughput 0
    starved = build([(C, 0, 1.0, 2.0, 3, 0, 0), (REJ, -1, NAN, NAN, 3, 0, 1)],
                    tenant_names=("a", "b"), sim_end_us=1_000_000)
    assert M.tenant_throughput(starved) == {"a": 3.0, "b": 0.0}


# --- Jain ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_jain_equal_is_one_and_one_hot_is_one_over_n(n):
    assert M.jain_fairness_index({f"t{i}": 42.5 for i in range(n)}) == pytest.approx(1.0)
    one_hot = {f"t{i}": (9.0 if i == n // 2 else 0.0) for i in range(n)}
    assert M.jain_fairness_index(one_hot) == pytest.approx(1.0 / n)


def test_jain_edge_cases_and_known_value():
    assert M.jain_fairness_index({}) == 0.0
    assert M.jain_fairness_index({"a": 0.0, "b": 0.0}) == 0.0
    assert M.jain_fairness_index({"a": 1.0, "b": 2.0, "c": 3.0}) == pytest.approx(36 / 42)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.one_of(st.just(0.0), st.floats(1e-3, 1e6)),
                       max_size=8))
def test_jain_matches_oracle_and_bounds(tp):
    got = M.jain_fairness_index(tp)
    want = oracle_jain([tp[k] for k in sorted(tp)])
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    if any(v > 0 for v in tp.values()):
        assert 1.0 / len(tp) - 1e-12 <= got <= 1.0 + 1e-12


# --- SLO attainment -----------------------------------------------------------------------------

def test_attainment_fixed_run():
    res = fixed()
    targets = {"realtime": {"ttft_ms": 2.5, "tpot_ms": 1.5}, "batch": {"e2e_ms": 35}}
    got = M.slo_attainment(res, targets)
    assert got == oracle_attainment(ROWS, SLO, targets)
    # realtime: #0 met, #1 tpot 2ms fails, #2 met (tpot undefined), running + rejected fail;
    # batch: 40ms fails, 30ms met; default (queued, no targets): met.  8 arrived in all.
    assert got == {"batch": 0.5, "default": 1.0, "realtime": 0.4, "overall": 4 / 8}
    assert list(got) == ["batch", "default", "realtime", "overall"]


def test_attainment_without_targets_everything_met():
    res = fixed()
    assert M.slo_attainment(res, {}) == {"batch": 1.0, "default": 1.0, "realtime": 1.0,
                                         "overall": 1.0}
    # a class with an empty / all-None target mapping counts as met too
    got = M.slo_attainment(res, {"realtime": {}, "batch": {"e2e_ms": None}})
    assert got["overall"] == 1.0


def test_attainment_boundaries_are_inclusive():
    rows = [(C, 0, 2000.0, 10000.0, 5, 0, 0)]       # ttft 2ms, e2e 10ms, tpot 2ms
    res = build(rows)
    assert M.slo_attainment(res, {"": {"ttft_ms": 2, "e2e_ms": 10, "tpot_ms": 2}})["overall"] == 1
    assert M.slo_attainment(res, {"": {"ttft_ms": 1.999}})["overall"] == 0
    assert M.slo_attainment(res, {"": {"e2e_ms": 9.999}})["overall"] == 0
    assert M.slo_attainment(res, {"": {"tpot_ms": 1.999}})["overall"] == 0


def test_attainment_default_class_key_aliases():
    rows = [(C, 0, 1000.0, 50000.0, 2, 0, 0), (C, 0, 1000.0, 1000.0, 2, 1, 0)]
    res = build(rows, slo_names=("", "x"))
    for key in ("", "default"):
        assert M.slo_attainment(res, {key: {"e2e_ms": 10}}) == {"default": 0.0, "x": 1.0,
                                                                  "overall": 0.5}


def test_attainment_incomplete_states_are_violations_not_arrived_excluded():
    rows = [(s, (0 if s in (C, RUN, Q) else -1), 1.0, (5.0 if s == C else NAN), 3, 0, 0)
            for s in (C, RUN, Q, REJ, DROP, PIPE, NA)]
    res = build(rows)
    got = M.slo_attainment(res, {"": {"e2e_ms": 1000}})
    assert got == {"default": 1 / 6, "overall": 1 / 6}
    assert M.slo_attainment(res, {"other": {"e2e_ms": 0}}) == {"default": 1.0, "overall": 1.0}


def test_attainment_completed_without_ttft_fails_a_ttft_target():
    res = build([(C, 0, NAN, 3000.0, 4, 0, 0)])
    assert M.slo_attainment(res, {"": {"ttft_ms": 100}})["overall"] == 0.0
    assert M.slo_attainment(res, {"": {"e2e_ms": 100}})["overall"] == 1.0


def test_attainment_empty_run_is_zero():
    res = build([(NA, -1, NAN, NAN, 1, 0, 0)])
    assert M.slo_attainment(res, {"": {"e2e_ms": 1}}) == {"overall": 0.0}
    empty = build([])
    assert M.slo_attainment(empty, {}) == {"overall": 0.0}


@pytest.mark.parametrize("targets", [
    {"rt": {"p99_ms": 1}}, {"rt": {"e2e_ms": -1}}, {"rt": {"e2e_ms": math.inf}},
    {"rt": {"e2e_ms": math.nan}}, {"rt": {"e2e_ms": "5"}}, {"rt": {"e2e_ms": True}},
    {"rt": 5},
])
def test_attainment_rejects_malformed_targets(targets):
    with pytest.raises(InputError):
        M.slo_attainment(fixed(), targets)


row_st = st.tuples(
    st.sampled_from([C, C, C, RUN, Q, REJ, DROP, PIPE, NA]),
    st.integers(0, 1),
    st.one_of(st.just(NAN), st.integers(0, 20_000).map(float)),
    st.integers(0, 60_000).map(float),
    st.integers(0, 6),
    st.integers(0, 2),
    st.integers(0, 2),
)
target_st = st.fixed_dictionaries({}, optional={
    "ttft_ms": st.integers(0, 20).map(float), "tpot_ms": st.floats(0, 20),
    "e2e_ms": st.integers(0, 60).map(float)})


@settings(max_examples=150, deadline=None)
@given(raw=st.lists(row_st, max_size=25),
       targets=st.dictionaries(st.sampled_from(["", "default", "a", "b", "zz"]), target_st,
                               max_size=3))
def test_random_runs_match_oracles(raw, targets):
    rows = []
    for state, inst, ttft, e2e, n_out, slo, ten in raw:
        routed = state in (C, RUN, Q)
        if state != C:
            e2e = NAN
        elif math.isnan(ttft):
            ttft = e2e / 2
        if state in (Q, REJ, DROP, PIPE, NA):
            ttft = NAN
        rows.append((state, inst if routed else -1, ttft, e2e, n_out, slo, ten))
    if "" in targets and "default" in targets:
        del targets[""]
    res = build(rows, slo_names=("", "a", "b"), tenant_names=("x", "", "y"))
    assert M.slo_attainment(res, targets) == pytest.approx(
        oracle_attainment(rows, ("", "a", "b"), targets))
    assert list(M.slo_attainment(res, targets)) == list(
        oracle_attainment(rows, ("", "a", "b"), targets))
    assert M.tenant_throughput(res) == oracle_tenant_throughput(rows, ("x", "", "y"), 2_000_000)
    for fn, names, col in ((M.per_slo_distributions, ("", "a", "b"), 5),
                           (M.per_tenant_distributions, ("x", "", "y"), 6)):
        got = fn(res)
        want = oracle_grouped(rows, names, col)
        assert list(got) == list(want)
        for lab in want:
            assert dist_tuple(got[lab][0]) == pytest.approx(want[lab][0])
            assert dist_tuple(got[lab][1]) == pytest.approx(want[lab][1])


# --- stdout section ----------------------------------------------------------------------------

def test_per_slo_section_reference_format():
    """cmd/root.go printPerSLOMetrics: sorted classes, %.2f ticks, two spaces after E2E:."""
    res = fixed()
    assert OUT.section_per_slo(res) == (
        "  batch:\n"
        "    TTFT: mean=7000.00 p99=7980.00 (n=2)\n"
        "    E2E:  mean=35000.00 p99=39900.00 (n=2)\n"
        "  realtime:\n"
        "    TTFT: mean=2500.00 p99=3970.00 (n=4)\n"
        "    E2E:  mean=5333.33 p99=8920.00 (n=3)")
    sections = OUT.report_sections(res, priority_policy="constant", fitness_weights=None,
                                   summarize_trace=False)
    assert "Per-SLO Metrics" in sections
    buf = io.StringIO()
    OUT.print_run_report(res, sim_cfg=None, policy=SimpleNamespace(priority="constant"),
                         fitness_weights=None, summarize_trace=False, out=buf)
    assert "=== Per-SLO Metrics ===\n  batch:\n" in buf.getvalue()
    one = build(ROWS, classes=False, tenant_names=TEN)
    assert OUT.section_per_slo(one) is None


# --- results JSON ------------------------------------------------------------------------------

def _doc(res, **kw):
    return OUT.results_document(res, priority_policy="constant", fitness_weights=None, **kw)


def test_results_document_per_slo_per_tenant_in_ms():
    res = fixed()
    doc = _doc(res)
    assert list(doc["per_slo"]) == ["batch", "realtime"]
    assert list(doc["per_tenant"]) == ["alice", "bob", "default"]
    rt = doc["per_slo"]["realtime"]
    assert rt["ttft"] == pytest.approx({"mean_ms": 2.5, "p50_ms": 2.5, "p95_ms": 3.85,
                                        "p99_ms": 3.97, "min_ms": 1.0, "max_ms": 4.0,
                                        "count": 4}, rel=1e-12)
    assert type(rt["ttft"]["count"]) is int
    assert rt["e2e"]["count"] == 3 and rt["e2e"]["max_ms"] == 9.0
    for lab, (t, e) in M.per_tenant_distributions(res).items():
        assert doc["per_tenant"][lab]["e2e"]["p99_ms"] == e.p99 / 1000
        assert doc["per_tenant"][lab]["ttft"]["count"] == t.count
    assert "slo_attainment" not in doc
    # placed after anomalies, before instances/requests
    keys = list(doc)
    assert keys.index("anomalies") < keys.index("per_slo") < keys.index("per_tenant") \
        < keys.index("fairness") < keys.index("instances")


def test_results_document_fairness_only_with_two_tenants():
    res = fixed()
    fair = _doc(res)["fairness"]
    assert fair["tenant_throughput"] == {"alice": 3.0, "bob": 12.0, "default": 5.0}
    assert fair["jain_index"] == pytest.approx(oracle_jain([3.0, 12.0, 5.0]))
    assert "fairness" not in _doc(build(ROWS, slo_names=SLO, tenants=False))
    one_tenant = build([(C, 0, 1.0, 2.0, 3, 0, 1)], tenant_names=("", "solo"))
    assert "fairness" not in _doc(one_tenant)


def test_results_json_with_slo_targets(tmp_path):
    res = fixed()
    targets = {"realtime": {"ttft_ms": 2.5, "tpot_ms": 1.5}, "batch": {"e2e_ms": 35}}
    path = tmp_path / "r.json"
    pol = SimpleNamespace(priority="constant")
    OUT.write_results_json(res, str(path), sim_cfg=None, policy=pol,
                           fitness_weights=None, summarize_trace=False, slo_targets=targets)
    doc = json.loads(path.read_text())
    assert doc["slo_attainment"] == {"batch": 0.5, "default": 1.0, "realtime": 0.4,
                                     "overall": 0.5}
    assert doc["per_slo"]["batch"]["e2e"]["mean_ms"] == 35
    assert doc["fairness"]["tenant_throughput"]["bob"] == 12
    # existing call signature (no slo_targets) still works and omits the section
    OUT.write_results_json(res, str(path), sim_cfg=None, policy=pol,
                           fitness_weights=None, summarize_trace=False)
    assert "slo_attainment" not in json.loads(path.read_text())
    assert "slo_attainment" not in _doc(res, slo_targets={})


def test_public_api_reexports():
    for name in ("slo_attainment", "jain_fairness_index", "tenant_throughput",
                 "per_slo_distributions", "per_tenant_distributions"):
        assert getattr(BM, name) is getattr(M, name)
        assert name in BM.__all__
