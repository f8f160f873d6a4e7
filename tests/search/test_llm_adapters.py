"""LLM-driven evolution adapters: program scoring (search.program_eval), the OpenEvolve
evaluator called the way OpenEvolve calls it, and GEPA's optimize loop end to end with a
scripted, deterministic stand-in for the reflection LM (no network)."""
from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
import yaml

from search.program_eval import BUNDLE, CODE, evaluate_program, evaluate_source, kind_of

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENEVOLVE_DIR = REPO_ROOT / "experiments" / "openevolve"

ROUND_ROBIN = "routing:\n  policy: round-robin\n"
LLMD = yaml.safe_dump({"routing": {"policy": "weighted", "scorers": [
    {"name": "prefix-affinity", "weight": 3}, {"name": "queue-depth", "weight": 2},
    {"name": "kv-utilization", "weight": 2}]}}, sort_keys=False)
BROKEN_CODE = "def score(queue_depth:\n    return 1.0\n"


@pytest.fixture
def exp(small_experiment):
    return small_experiment(num_requests=120)[1]


# ---- search.program_eval ------------------------------------------------------------------


def test_reference_policy_scores_exactly_one_and_round_robin_less(exp):
    """combined_score is the fitness relative to the llm-d default on the same seeds, so the
    llm-d bundle itself scores 1; round-robin (prefix-blind) scores below it on this
    prefix-heavy workload."""
    llmd = evaluate_source(LLMD, BUNDLE, exp)
    rr = evaluate_source(ROUND_ROBIN, BUNDLE, exp)
    assert llmd.error is None and llmd.score == 1.0
    assert 0.0 < rr.score < 1.0
    for key in ("combined_score", "fitness", "p99_ttft_ms", "mean_e2e_ms", "throughput_rps",
                "slo_attainment", "anomaly.slo_violations", "anomaly.rejected_requests"):
        assert math.isfinite(rr.metrics[key]), key
    assert "error" not in rr.metrics
    assert rr.summary.startswith("# Trace summary") and "## Worst Decisions" in rr.summary
    assert evaluate_source(ROUND_ROBIN, BUNDLE, exp) == rr  # deterministic


@pytest.mark.parametrize("source, kind, needle", [
    ("routing:\n  policy: nope\n", BUNDLE, "nope"),
    ("- just\n- a list\n", BUNDLE, "mapping"),
    (BROKEN_CODE, CODE, "policy.py:1: syntax error"),
    ("import os\n" + (OPENEVOLVE_DIR / "initial_program.py").read_text(), CODE,
     "policy.py:1: top-level import is not allowed"),
])
def test_broken_program_scores_zero_without_raising(exp, source, kind, needle):
    res = evaluate_source(source, kind, exp)
    assert res.score == 0.0 and res.metrics == {"combined_score": 0.0, "error": 1.0}
    assert res.error and "\n" not in res.error and needle in res.error
    assert res.summary == ""


def test_program_kind_from_file_name():
    assert kind_of("a/p.py") == CODE and kind_of("p.YAML") == BUNDLE
    with pytest.raises(ValueError, match="expected a .py code policy or a .yaml policy bundle"):
        kind_of("p.txt")


# ---- OpenEvolve ---------------------------------------------------------------------------


def _openevolve_evaluator():
    """OpenEvolve's own Evaluator over our evaluator.py (it imports the file itself)."""
    from openevolve.config import EvaluatorConfig
    from openevolve.evaluator import Evaluator

    cfg = EvaluatorConfig(cascade_evaluation=False, max_retries=0, timeout=600)
    return Evaluator(cfg, str(OPENEVOLVE_DIR / "evaluator.py"))


@pytest.fixture
def openevolve_env(small_experiment, monkeypatch):
    path, _ = small_experiment(num_requests=120)
    monkeypatch.setenv("BLIS_EXPERIMENT", str(path))
    monkeypatch.setenv("ENABLE_ARTIFACTS", "true")


def test_openevolve_broken_program_scores_zero_with_error_artifact(openevolve_env):
    ev = _openevolve_evaluator()
    metrics = asyncio.run(ev.evaluate_program(BROKEN_CODE, program_id="broken"))
    assert metrics == {"combined_score": 0.0, "error": 1.0}
    artifacts = ev.get_pending_artifacts("broken")
    assert set(artifacts) == {"error"} and artifacts["error"]


def test_openevolve_scores_the_initial_program_with_a_trace_summary(openevolve_env):
    ev = _openevolve_evaluator()
    code = (OPENEVOLVE_DIR / "initial_program.py").read_text()
    metrics = asyncio.run(ev.evaluate_program(code, program_id="initial"))
    assert "error" not in metrics and metrics["combined_score"] > 0
    assert {"p99_ttft_ms", "mean_e2e_ms", "throughput_rps", "slo_attainment"} <= set(metrics)
    artifacts = ev.get_pending_artifacts("initial")
    assert artifacts["trace_summary"].startswith("# Trace summary")


def test_openevolve_config_loads(monkeypatch):
    from openevolve.config import load_config

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    cfg = load_config(str(OPENEVOLVE_DIR / "config.yaml"))
    assert not cfg.evaluator.cascade_evaluation and cfg.prompt.include_artifacts
    assert cfg.llm.models and cfg.llm.models[0].api_key == "test-key"
    text = (OPENEVOLVE_DIR / "initial_program.py").read_text()
    assert text.index("# EVOLVE-BLOCK-START") < text.index("def score(") < text.index("# EVOLVE-BLOCK-END")


# ---- GEPA ---------------------------------------------------------------------------------


class ScriptedLM:
    """Deterministic stand-in for the reflection LM: records prompts, answers with a fixed
    program in the ``` block format GEPA's default proposer extracts."""

    def __init__(self, program: str):
        self.program = program
        self.prompts: list[str] = []

    def __call__(self, prompt) -> str:
        self.prompts.append(prompt if isinstance(prompt, str) else str(prompt))
        return "Routing ignores cached prefixes; weight prefix affinity.\n```\n" + self.program + "```\n"


def _optimize(exp, seed_text: str, better_text: str, kind: str):
    import gepa

    from search.gepa_adapter import COMPONENT, BlisGEPAAdapter

    lm = ScriptedLM(better_text)
    result = gepa.optimize(seed_candidate={COMPONENT: seed_text}, trainset=list(exp.seeds.train),
                           adapter=BlisGEPAAdapter(exp, kind=kind), reflection_lm=lm,
                           max_metric_calls=12, reflection_minibatch_size=2,
                           perfect_score=math.inf, seed=0, display_progress_bar=False)
    return result, lm


def test_gepa_optimize_adopts_the_better_program(exp):
    from search.gepa_adapter import COMPONENT

    result, lm = _optimize(exp, ROUND_ROBIN, LLMD, BUNDLE)
    assert result.best_candidate[COMPONENT].strip() == LLMD.strip()
    assert result.val_aggregate_scores[result.best_idx] == pytest.approx(1.0)
    assert max(result.val_aggregate_scores) > result.val_aggregate_scores[0]
    # The reflection LM saw our trace summary as feedback.
    assert lm.prompts and "## Key Issues" in lm.prompts[0] and "## Worst Decisions" in lm.prompts[0]


def test_gepa_keeps_the_seed_when_the_proposal_is_broken(exp):
    from search.gepa_adapter import COMPONENT

    result, _ = _optimize(exp, ROUND_ROBIN, "routing:\n  policy: nope\n", BUNDLE)
    assert result.best_candidate[COMPONENT] == ROUND_ROBIN


def test_gepa_evolves_a_code_policy(exp):
    from search.gepa_adapter import COMPONENT

    seed = "def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks,\n" \
           "          prefix_match, cache_hit_rate):\n    return 0.0\n"
    better = (OPENEVOLVE_DIR / "initial_program.py").read_text()
    result, _ = _optimize(exp, seed, better, CODE)
    assert result.best_candidate[COMPONENT].strip() == better.strip()
    assert max(result.val_aggregate_scores) > result.val_aggregate_scores[0]
