"""Text trace summaries (``blis_evo.summary``, ``blis run --summarize-trace=text``)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import simulator
from blis_evo import cli
from blis_evo import trace_analysis as ta
from blis_evo.flags import parse_run_args
from blis_evo.settings import resolve_run_settings
from blis_evo.summary import approx_tokens, summarize_run, summarize_text
from search.evaluate import BASELINES, build_sim_config, experiment_workload, slo_targets
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

    from search.experiment import load_experiment
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
