"""Text trace summaries (``blis_evo.summary``, ``blis run --summarize-trace=text``)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import simulator
from blis_evo import cli
from blis_evo.baselines import BASELINES
from blis_evo.deployment import build_sim_config, experiment_workload, slo_targets
from blis_evo import trace_analysis as ta
from blis_evo.flags import parse_run_args
from blis_evo.settings import resolve_run_settings
from blis_evo.summary import approx_tokens, summarize_run, summarize_text
from simulator import LatencyConfig, PolicyConfig, SimConfig
from simulator.workload.types import workload_from_lists

SECTIONS = ("# Trace summary", "## Outcome", "## Key Issues", "## Counterfactual Analysis",
            "## Worst Decisions", "## Suggested Focus")
LAT = LatencyConfig(alpha=(100.0, 1.0, 100.0), beta=(1000.0, 2.0, 1.0))


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    """The default experiment with 300 requests, seed 1, decisions traced with counterfactuals:
    (experiment, workload, sim config)."""
    import yaml

    from blis_evo.experiment import load_experiment
    from tests.conftest import small_experiment_dict

    path = tmp_path_factory.mktemp("exp") / "small.yaml"
    path.write_text(yaml.safe_dump(small_experiment_dict(num_requests=300), sort_keys=False))
    exp = load_experiment(path)
    cfg = dataclasses.replace(build_sim_config(exp, 1), trace_decisions=True, counterfactual_k=2)
    return exp, experiment_workload(exp, 1), cfg


@pytest.mark.parametrize("policy", ["round-robin", "llm-d-default"])
def test_realistic_report_is_deterministic_complete_and_sized(realistic, policy):
    exp, wl, cfg = realistic
    pol = BASELINES[policy]
    texts = [summarize_run(simulator.run(cfg, pol, wl), wl, slo_targets(exp), sim_cfg=cfg,
                           policy=pol) for _ in range(2)]
    assert texts[0] == texts[1]
    text = texts[0]
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert 500 <= approx_tokens(text) <= 1500
    assert "interactive" in text and "vs target 1,000 ms" in text  # the class's TTFT target
    assert "## Worst Decisions (3 examples)" in text


def test_decision_order_matches_the_kernels_routing_trace(realistic):
    """The reconstructed order assigns each recorded routing target to its request."""
    exp, wl, cfg = realistic
    res = simulator.run(cfg, BASELINES["llm-d-default"], wl)
    order = ta.decision_order(res)
    assert np.array_equal(np.asarray(res.route_target), np.asarray(res.req_instance)[order])
    assert ta.decision_regret(res, order, cfg.counterfactual_k) is not None
    assert ta.decision_regret(res, order, 0) is None


def _prefix_scenario():
    """Two instances, round-robin, requests A A B B A B one second apart: each prompt is its
    group's 64-token prefix (4 router blocks) plus 10 unique tokens."""
    groups = "AABBAB"
    prefix = {"A": list(range(1, 65)), "B": list(range(1001, 1065))}
    inputs = [prefix[g] + [5000 + 10 * k + j for j in range(10)] for k, g in enumerate(groups)]
    wl = workload_from_lists([k * 1_000_000 for k in range(len(groups))], inputs,
                             [[7, 8]] * len(groups))
    cfg = SimConfig(num_instances=2, total_kv_blocks=200, latency=LAT, trace_decisions=True,
                    counterfactual_k=1)
    return wl, cfg


def test_routing_away_from_cached_prefix_is_counted():
    """Round-robin sends A#1 to i0, A#2 to i1 (i0 held A: away), B#1 to i0 (nobody held B),
    B#2 to i1 (i0 held B: away), then A and B where both hold them: 2 decisions routed away,
    each to an instance holding none of the 4 prefix blocks -> 2 x 4 x 16 = 128 tokens."""
    wl, cfg = _prefix_scenario()
    pol = PolicyConfig(routing="round-robin")
    res = simulator.run(cfg, pol, wl)
    order = ta.decision_order(res)
    assert order.tolist() == [0, 1, 2, 3, 4, 5]
    audit = ta.prefix_audit(res, wl, order)
    assert audit.routed_away.tolist() == [False, True, False, True, False, False]
    assert audit.held.tolist() == [[0, 0], [4, 0], [0, 0], [4, 0], [4, 4], [4, 4]]
    text = summarize_run(res, wl, None, sim_cfg=cfg, policy=pol)
    assert "ROUTING: 2 of 6 decisions (33.3%) routed a request away" in text
    assert "2 of them went to an instance holding none of it" in text
    assert "128 prompt tokens re-prefilled" in text
    assert "held 4 more prefix blocks (64 tokens)" in text


def test_no_issue_when_prefix_affinity_keeps_groups_together():
    wl, cfg = _prefix_scenario()
    pol = PolicyConfig(routing="weighted", scorers=BASELINES["llm-d-default"].scorers)
    res = simulator.run(cfg, pol, wl)
    audit = ta.prefix_audit(res, wl, ta.decision_order(res))
    assert not audit.routed_away.any()
    assert "ROUTING:" not in summarize_run(res, wl, None, sim_cfg=cfg, policy=pol)


def test_regret_reported_only_when_recorded():
    wl, cfg = _prefix_scenario()
    pol = PolicyConfig(routing="round-robin")
    res = simulator.run(dataclasses.replace(cfg, counterfactual_k=0), pol, wl)
    assert "Routing regret: not recorded" in summarize_text(res, wl, counterfactual_k=0)
    res = simulator.run(cfg, pol, wl)
    assert "had positive regret" in summarize_text(res, wl, counterfactual_k=1)


def test_workload_mismatch_is_an_error():
    wl, cfg = _prefix_scenario()
    res = simulator.run(cfg, PolicyConfig(), wl)
    short = workload_from_lists([0], [[1] * 20], [[2]])
    with pytest.raises(ValueError, match="workload has 1 requests, result has 6"):
        summarize_text(res, short)


# ---- CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, short, report", [("true", True, False), ("text", False, True),
                                                  ("false", False, False)])
def test_summarize_trace_modes(value, short, report):
    s = resolve_run_settings(parse_run_args(["--model", "m", f"--summarize-trace={value}"]))
    assert (s.summarize_trace, s.trace_report) == (short, report)


def test_summarize_trace_bad_value_is_one_line_exit_2(capsys):
    assert cli.main(["run", "--model", "m", "--summarize-trace=markdown"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'markdown'" in err and "valid: true, false, text" in err


def test_cli_prints_the_report(capsys, realistic, tmp_path):
    import yaml

    from tests.conftest import small_experiment_dict

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(small_experiment_dict(num_requests=100), sort_keys=False))
    assert cli.main(["run", "--experiment", str(path), "--seed", "1", "--trace-level",
                     "decisions", "--counterfactual-k", "2", "--summarize-trace=text"]) == 0
    out = capsys.readouterr().out
    report = out[out.index("=== Trace Report ===\n") + len("=== Trace Report ===\n"):]
    assert report.startswith("# Trace summary") and "## Suggested Focus" in report
    assert "=== Trace Summary ===" not in out  # text replaces the short summary


# ---- P/D, autoscaling, admission ------------------------------------------------------------

from simulator.autoscale.config import AutoscalerConfig, DelaySpec  # noqa: E402
from simulator.config import DisaggConfig  # noqa: E402
from simulator.kernels.disagg import POOL_DECODE, POOL_PREFILL  # noqa: E402
from simulator.kernels.request_states import REQ_REJECTED  # noqa: E402

STEP_LAT = LatencyConfig(alpha=(0.0, 0.0, 0.0), beta=(1000.0, 0.0, 0.0))  # every step 1 ms


def _groups_workload(arrivals, groups, n_in=64, n_out=8):
    """Each prompt is its group's ``n_in``-token prefix: requests of one group share all blocks."""
    inputs = [[1000 * (g + 1) + j for j in range(n_in)] for g in groups]
    return workload_from_lists(list(arrivals), inputs, [[7] * n_out] * len(groups))


def _pd_run(routing, gap_us):
    wl = _groups_workload([k * gap_us for k in range(40)], [k % 5 for k in range(40)])
    cfg = SimConfig(num_instances=4, total_kv_blocks=400, latency=LAT, trace_decisions=True,
                    counterfactual_k=1,
                    disaggregation=DisaggConfig(prefill_replicas=2, decode_replicas=2,
                                                decider="always"))
    pol = PolicyConfig(routing=routing)
    return simulator.run(cfg, pol, wl), wl, cfg, pol


def _pool_counts(res, per_request, pool):
    """Requests each instance of ``pool`` received, from the P/D per-request picks."""
    inst = np.flatnonzero(res.pd.inst_pool == pool)
    picks = per_request[per_request >= 0]
    return {int(i): int(np.sum(picks == i)) for i in inst}


def test_pd_imbalance_is_per_pool_and_regret_per_prefill_pick():
    """always-busiest with requests far apart (loads tie at 0, ties to the lowest index) sends
    every request to the same prefill and the same decode instance: a real imbalance inside
    each pool -- reported per pool, never prefill against decode."""
    res, wl, cfg, pol = _pd_run("always-busiest", 100_000)
    text = summarize_run(res, wl, None, sim_cfg=cfg, policy=pol)
    pf = _pool_counts(res, res.pd.req_prefill_instance, POOL_PREFILL)
    dc = _pool_counts(res, res.pd.req_decode_instance, POOL_DECODE)
    for name, counts in (("prefill", pf), ("decode", dc)):
        busy = max(counts, key=lambda i: (counts[i], -i))
        idle = min(counts, key=lambda i: (counts[i], i))
        assert counts[busy] == 40 and counts[idle] == 0
        assert (f"LOAD IMBALANCE in the {name} pool: instance {busy} got 40 requests, "
                f"instance {idle} only 0") in text
    assert "Cluster of 4 instances in P/D pools (2 prefill, 2 decode" in text
    assert "prefix stickiness" not in text   # no prefix was ever held where it was routed
    # the trace records the prefill pick; regret is reported for it, not silently dropped
    order = ta.decision_order(res)
    assert np.array_equal(res.route_target, res.pd.req_prefill_instance[order])
    assert "Routing regret of the first pick, i.e. the prefill instance" in text
    assert f"of {order.size} decisions" in text
    assert f"-> prefill instance {res.pd.req_prefill_instance[0]}, decode instance " \
           f"{res.pd.req_decode_instance[0]}" in text


def test_pd_balanced_pools_report_no_imbalance():
    res, wl, cfg, pol = _pd_run("least-loaded", 50)   # overlapping requests: load spreads
    text = summarize_run(res, wl, None, sim_cfg=cfg, policy=pol)
    pf = _pool_counts(res, res.pd.req_prefill_instance, POOL_PREFILL)
    dc = _pool_counts(res, res.pd.req_decode_instance, POOL_DECODE)
    for counts in (pf, dc):
        assert max(counts.values()) <= 1.5 * min(counts.values())
    assert "LOAD IMBALANCE" not in text
    notes = [f"i{i} (prefill): {c} prefills" for i, c in pf.items()]
    notes += [f"i{i} (decode): {c} decodes" for i, c in dc.items()]
    assert all(n in text for n in notes), notes


SCALE_ASC = AutoscalerConfig(
    policy="threshold", params=(("up_load", 3.0), ("down_load", 1.0), ("cooldown_s", 0.5)),
    min_replicas=1, max_replicas=4, interval_s=0.25, provisioning_delay_s=DelaySpec("fixed", 0.5),
    model_load_time_s=DelaySpec("fixed", 0.2))


def test_autoscaled_run_compares_only_started_instances_per_routable_second():
    """10/s, 100/s in [1, 3) s, 10/s until 6 s: the pool grows to 2 of 4 slots and shrinks back;
    slots 2 and 3 never start and must not show up as idle instances."""
    ts, t = [], 0.0
    while t < 6.0:
        ts.append(int(t * 1e6))
        t += 1.0 / (100 if 1.0 <= t < 3.0 else 10)
    wl = _groups_workload(ts, [k % 5 for k in range(len(ts))], n_out=32)
    cfg = SimConfig(num_instances=1, total_kv_blocks=4000, latency=STEP_LAT)
    pol = PolicyConfig(routing="least-loaded", autoscaler=SCALE_ASC)
    res = simulator.run(cfg, pol, wl)
    out = res.autoscale
    assert set(out.spans[:, 0].tolist()) == {0, 1}      # the scenario: slots 2, 3 never start
    up, down = out.events
    assert (up.action, up.instances, down.action, down.instances) == ("up", (1,), "down", (1,))
    # routable time from the configuration: i0 for the whole run, i1 from its start plus
    # provisioning 0.5 s + load 0.2 s until the scale-down
    secs = {0: out.end_us / 1e6, 1: down.time_s - (up.time_s + 0.7)}
    got = {i: int(np.sum(res.req_instance == i)) for i in (0, 1)}
    assert got[1] > 0 and got[0] + got[1] == wl.num_requests
    rates = {i: got[i] / secs[i] for i in (0, 1)}
    text = summarize_run(res, wl, None, sim_cfg=cfg, policy=pol)
    assert "i2: never routable; i3: never routable" in text
    assert f"i1: {got[1]} routed in {secs[1]:.1f} routable s" in text
    assert "Autoscaled cluster of 4 instance slots (1-4 replicas" in text
    assert (max(rates.values()) / min(rates.values()) > 1.5) == ("LOAD IMBALANCE" in text)
    # every request was routed inside a reconstructed routable window of its instance
    win = ta.routable_windows(res)
    for r in range(wl.num_requests):
        i, tr = int(res.req_instance[r]), int(res.routed_us[r])
        assert any(a <= tr <= b for a, b in win[i]), (r, i, tr, win[i])


def test_prefix_audit_forgets_a_stopped_instances_caches():
    """Oscillating pool (slot 2 starts and stops every other tick): an instance knows a group's
    prefix only if it served that group since its last stop (oracle from spans and groups)."""
    asc = AutoscalerConfig(policy="oscillator", min_replicas=1, max_replicas=3,
                           initial_replicas=2, interval_s=0.25)
    ts = [k * 10_000 for k in range(150)]
    groups = [k % 3 for k in range(150)]
    wl = _groups_workload(ts, groups, n_out=4)
    cfg = SimConfig(num_instances=2, total_kv_blocks=4000, latency=STEP_LAT)
    res = simulator.run(cfg, PolicyConfig(routing="round-robin", autoscaler=asc), wl)
    spans = res.autoscale.spans
    stopped = spans[spans[:, 2] < res.autoscale.end_us]
    assert stopped.size
    order = ta.decision_order(res)
    audit = ta.prefix_audit(res, wl, order)
    forgotten = 0
    for d, r in enumerate(order.tolist()):
        t = res.routed_us[r]
        for i in range(3):
            last_stop = max([b for j, _, b in stopped.tolist() if j == i and b <= t], default=-1)
            served = [q for q in order[:d].tolist() if res.req_instance[q] == i
                      and groups[q] == groups[r]]
            expect = any(res.routed_us[q] >= last_stop for q in served)
            assert (audit.held[d, i] == 4) == expect and audit.held[d, i] in (0, 4), (d, i)
            forgotten += bool(served) and not expect
    assert forgotten > 0   # the scenario exercises forgetting


def test_reject_all_is_an_admission_issue():
    wl = _groups_workload([k * 1_000 for k in range(20)], [0] * 20, n_in=20, n_out=4)
    wl = dataclasses.replace(wl, slo_class=np.array([0, 1] * 10, dtype=np.int32),
                             slo_names=("interactive", "batch"))
    cfg = SimConfig(num_instances=1, total_kv_blocks=400, latency=LAT)
    pol = PolicyConfig(admission="reject-all")
    res = simulator.run(cfg, pol, wl)
    rejected = int(np.sum(res.req_state == REQ_REJECTED))
    assert rejected == 20
    text = summarize_run(res, wl, {"interactive": {"ttft_ms": 100}}, sim_cfg=cfg, policy=pol)
    assert "1. ADMISSION: 20 of 20 arrived requests (100.0%) rejected -- nothing was served" in text
    assert "rejected by class: batch 10/10, interactive 10/10" in text
    assert "- TTFT: n/a" in text and "- E2E: n/a" in text and "mean 0 ms" not in text
    assert "Cluster of 1 instance;" in text and "0 routing decisions" in text
    assert "Admission rejects every request" in text
    assert "No admission" not in text
