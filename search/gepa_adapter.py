"""GEPA adapter: reflective evolution of a policy program with the blis-evo simulator.

GEPA (``gepa.optimize``) evolves named text components of a candidate with an LLM that reads
feedback on how the current text performed.  Here the candidate has one component (default
name ``routing_policy``) holding a routing code policy's source (or a policy-bundle YAML with
``kind="bundle"``), and a data instance is one workload seed of an experiment.  ``evaluate``
simulates the program on each seed of the batch and scores it by the search fitness relative
to the llm-d default profile on that seed (1.0 = as good, higher is better; 0 for a broken
program); ``make_reflective_dataset`` turns each seed's text trace summary
(:mod:`blis_evo.summary`) or error into a ``{"Inputs", "Generated Outputs", "Feedback"}``
record for the reflection LM.

Scores above 1.0 are common, so pass ``perfect_score=math.inf`` (or
``skip_perfect_score=False``) to ``gepa.optimize``: its default treats 1.0 as perfect and
stops reflecting.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from gepa.core.adapter import EvaluationBatch

from blis_evo.experiment import Experiment
from search.program_eval import CODE, KINDS, ProgramResult, describe, evaluate_source

COMPONENT = "routing_policy"


class BlisGEPAAdapter:
    """``GEPAAdapter`` over seeds of ``exp`` for a candidate ``{component: program text}``.

    ``kind``: ``"code"`` (a routing code policy's source) or ``"bundle"`` (policy-bundle YAML).
    Deterministic: the same candidate and seeds give the same scores and feedback.
    """

    propose_new_texts = None  # GEPA's default LLM proposer writes the new program text

    def __init__(self, exp: Experiment, *, component: str = COMPONENT, kind: str = CODE):
        if kind not in KINDS:
            raise ValueError(f"kind: unknown program kind {kind!r}; valid: {', '.join(KINDS)}")
        self.exp = exp
        self.component = component
        self.kind = kind

    def evaluate(self, batch: list[int], candidate: dict[str, str],
                 capture_traces: bool = False) -> EvaluationBatch:
        """Simulate the candidate's program on every seed of ``batch``.

        Outputs are the per-seed metric dicts; trajectories (with ``capture_traces``) carry the
        seed, the result line and the trace summary or error for the reflective dataset."""
        source = candidate[self.component]
        outputs, scores, trajectories = [], [], []
        for seed in batch:
            res = evaluate_source(source, self.kind, self.exp, [int(seed)], summary=capture_traces)
            outputs.append(dict(res.metrics))
            scores.append(float(res.score))
            if capture_traces:
                trajectories.append(self._trajectory(int(seed), res))
        return EvaluationBatch(outputs=outputs, scores=scores,
                               trajectories=trajectories if capture_traces else None)

    def _trajectory(self, seed: int, res: ProgramResult) -> dict:
        return {"seed": seed, "score": res.score, "result": describe(res),
                "feedback": res.summary if res.error is None else
                f"The program failed and scored 0: {res.error}. Fix it so that it compiles "
                "under the sandbox rules and keeps the score(...) signature."}

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: EvaluationBatch,
                                components_to_update: list[str]
                                ) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        """One record per evaluated seed for each component to update (only ours exists)."""
        records = [{"Inputs": {"workload": f"experiment {self.exp.name!r}, workload seed {t['seed']}"},
                    "Generated Outputs": t["result"],
                    "Feedback": t["feedback"]}
                   for t in eval_batch.trajectories or []]
        return {name: records for name in components_to_update}
