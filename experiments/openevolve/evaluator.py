"""OpenEvolve evaluator for blis-evo routing code policies.

OpenEvolve imports this file and calls ``evaluate(program_path)`` on every candidate program
(a routing code policy, see ``initial_program.py``).  The program is simulated on the train
seeds of the experiment named by the ``BLIS_EXPERIMENT`` environment variable (a YAML path, or
``default`` for the embedded default experiment) with ``search.evaluate`` -- the same fitness
the GA search uses -- and returned as an OpenEvolve ``EvaluationResult``:

* metrics: ``combined_score`` (search fitness relative to the llm-d default profile on the same
  seeds: 1.0 = as good, higher is better), ``fitness``, the objectives ``p99_ttft_ms``,
  ``mean_e2e_ms``, ``throughput_rps``, ``slo_attainment``, and anomaly counts
  ``anomaly.<kind>``;
* artifacts: ``trace_summary``, the markdown trace summary of the first train seed (outcome vs
  SLO targets, key issues, regret, worst decisions, suggested focus) that OpenEvolve puts into
  the next prompt.

A program that does not parse, is rejected by the sandbox or fails to simulate scores
``combined_score`` 0 with an ``error`` metric and the reason as the ``error`` artifact; this
function never raises for a bad program.
"""
from __future__ import annotations

import functools
import os

from openevolve.evaluation_result import EvaluationResult

from blis_evo.experiment import experiment_from_arg
from search.program_eval import CODE, evaluate_program


@functools.lru_cache(maxsize=4)
def _experiment(name: str):
    return experiment_from_arg(name)


def evaluate(program_path):
    """Score the routing code policy at ``program_path`` (see the module docstring)."""
    exp = _experiment(os.environ.get("BLIS_EXPERIMENT", "default"))
    result = evaluate_program(program_path, exp, kind=CODE)
    if result.error is not None:
        return EvaluationResult(metrics=result.metrics, artifacts={"error": result.error})
    return EvaluationResult(metrics=result.metrics, artifacts={"trace_summary": result.summary})
