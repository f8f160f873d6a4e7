"""Score policy *programs* -- text an LLM writes -- on an experiment, for LLM-driven evolution.

Shared by the OpenEvolve evaluator (``experiments/openevolve/evaluator.py``) and the GEPA
adapter (:mod:`search.gepa_adapter`).  A program is either a routing code policy (a ``.py``
file defining ``score(...)``, run as the bundle ``routing: {policy: code, code_path: PATH}``)
or a whole policy bundle (``.yaml``, what ``blis run --policy-config`` takes).  It is scored by
:func:`search.evaluate.evaluate` on the given seeds (the experiment's train seeds by default),
and one seed is re-run with decisions traced to produce the text trace summary
(:mod:`blis_evo.summary`) the LLM reflects on.

A broken program (syntax error, rejected by the sandbox, invalid bundle, failing simulation)
never raises: it gets score 0 and an error message.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

import simulator
from simulator.errors import one_line
from blis_evo.api import resolve_policy
from blis_evo.summary import summarize_run
from blis_evo.baselines import BASELINES
from blis_evo.deployment import build_sim_config, experiment_workload, slo_targets
from blis_evo.experiment import SLO_ATTAINMENT, Experiment
from search.evaluate import Evaluation, evaluate

CODE = "code"
BUNDLE = "bundle"
KINDS = (CODE, BUNDLE)
REFERENCE_POLICY = "llm-d-default"
"""The baseline ``combined_score`` is relative to (1.0 = as good as the llm-d default profile)."""
SUMMARY_COUNTERFACTUAL_K = 2
ANOMALIES = ("priority_inversions", "hol_blocking_events", "rejected_requests",
             "dropped_requests", "slo_violations")


@dataclass(frozen=True)
class ProgramResult:
    """Outcome of scoring one program.

    ``score``: the search fitness relative to :data:`REFERENCE_POLICY` on the same seeds
    (higher is better; 0 on error).  ``metrics``: flat ``{name: float}`` -- ``combined_score``
    (= score), ``fitness``, the objectives ``p99_ttft_ms``, ``mean_e2e_ms``,
    ``throughput_rps``, ``slo_attainment`` (overall fraction; 1 without targets), anomaly counts
    ``anomaly.<kind>`` (mean per seed; ``anomaly.code_nonfinite`` = NaN/inf returned by a code
    policy), and ``error`` (1.0) only on failure.  ``summary``: the
    text trace summary of the first seed ("" on error).  ``error``: None or a one-line reason.
    """

    score: float
    metrics: dict
    summary: str
    error: str | None = None
    evaluation: Evaluation | None = None


def kind_of(path: str | Path) -> str:
    """Program kind from the file name: ``.py`` is a code policy, ``.yaml``/``.yml`` a bundle."""
    suffix = Path(path).suffix.lower()
    if suffix == ".py":
        return CODE
    if suffix in (".yaml", ".yml"):
        return BUNDLE
    raise ValueError(f"program {str(path)!r}: expected a .py code policy or a .yaml policy bundle")


def program_bundle(path: str | Path, kind: str) -> dict:
    """The policy-bundle mapping a program file stands for (code: a routing code policy)."""
    if kind == CODE:
        return {"routing": {"policy": "code", "code_path": str(Path(path).resolve())}}
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError("a policy bundle must be a YAML mapping")
    return doc


@functools.lru_cache(maxsize=32)
def reference_fitness(exp: Experiment, seeds: tuple[int, ...]) -> float:
    """Fitness of :data:`REFERENCE_POLICY` on ``seeds`` (memoised per process)."""
    return evaluate(BASELINES[REFERENCE_POLICY], exp, seeds).fitness


def _metrics(ev: Evaluation, score: float, exp: Experiment) -> dict:
    mean = ev.mean
    n = exp.workload.num_requests
    out = {"combined_score": score, "fitness": ev.fitness,
           "p99_ttft_ms": mean.measures.p99_ttft_ms, "mean_e2e_ms": mean.measures.mean_e2e_ms,
           "throughput_rps": mean.measures.throughput_rps,
           "slo_attainment": mean.objective(SLO_ATTAINMENT)}
    for k in ANOMALIES:
        out[f"anomaly.{k}"] = getattr(mean.rates, k) * n
    if mean.code_nonfinite is not None:
        out["anomaly.code_nonfinite"] = mean.code_nonfinite
    return {k: float(v) for k, v in out.items()}


def evaluate_program(path: str | Path, exp: Experiment, seeds: Iterable[int] | None = None, *,
                     kind: str | None = None, summary: bool = True) -> ProgramResult:
    """Score the program at ``path`` on ``exp`` (``seeds`` default: the train seeds); see
    :class:`ProgramResult`.  Deterministic; never raises for a bad program."""
    seeds = tuple(int(s) for s in (exp.seeds.train if seeds is None else seeds))
    try:
        phenotype = resolve_policy(program_bundle(path, kind or kind_of(path)))
        ev = evaluate(phenotype, exp, seeds)
        if not math.isfinite(ev.fitness):
            raise ValueError(f"non-finite fitness {ev.fitness}")
        ref = reference_fitness(exp, seeds)
        score = ev.fitness / ref if ref > 0 else ev.fitness
        text = ""
        if summary:
            cfg = dataclasses.replace(build_sim_config(exp, seeds[0], phenotype),
                                      trace_decisions=True,
                                      counterfactual_k=SUMMARY_COUNTERFACTUAL_K)
            wl = experiment_workload(exp, seeds[0])
            text = summarize_run(simulator.run(cfg, phenotype.policy, wl), wl, slo_targets(exp),
                                 sim_cfg=cfg, policy=phenotype.policy)
    except Exception as exc:  # noqa: BLE001 -- any failure of an untrusted program scores 0
        return ProgramResult(score=0.0, metrics={"combined_score": 0.0, "error": 1.0},
                             summary="", error=one_line(f"{type(exc).__name__}: {exc}"))
    return ProgramResult(score=score, metrics=_metrics(ev, score, exp), summary=text,
                         evaluation=ev)


def evaluate_source(source: str, kind: str, exp: Experiment, seeds: Iterable[int] | None = None,
                    *, summary: bool = True) -> ProgramResult:
    """:func:`evaluate_program` for program text (written to a temporary file first)."""
    if kind not in KINDS:
        raise ValueError(f"kind: unknown program kind {kind!r}; valid: {', '.join(KINDS)}")
    with tempfile.TemporaryDirectory(prefix="blis-program-") as tmp:
        path = Path(tmp) / ("policy.py" if kind == CODE else "policy.yaml")
        path.write_text(source, encoding="utf-8")
        return evaluate_program(path, exp, seeds, kind=kind, summary=summary)


def describe(result: ProgramResult) -> str:
    """A short line of the headline metrics (or the error) for prompts and logs."""
    if result.error is not None:
        return f"ERROR: {result.error}"
    m = result.metrics
    return (f"combined_score {m['combined_score']:.4f} (1.0 = {REFERENCE_POLICY}); p99 TTFT "
            f"{m['p99_ttft_ms']:,.0f} ms; mean E2E {m['mean_e2e_ms']:,.0f} ms; throughput "
            f"{m['throughput_rps']:.2f} req/s; SLO attainment {100 * m['slo_attainment']:.1f}%")
