"""Evolve a routing code policy with GEPA's reflective optimiser and the blis-evo simulator.

::

    export OPENAI_API_KEY=...  NUMBA_CACHE_DIR=$PWD/.numba_cache
    python experiments/gepa/run_gepa.py --experiment default \\
        --api-base http://localhost:8000/v1 --model your-model-name --max-metric-calls 60

The seed program is ``experiments/openevolve/initial_program.py`` unless ``--seed-program`` is
given (a ``.py`` code policy, or a ``.yaml`` policy bundle to evolve whole bundles).  Each data
instance is one train seed of the experiment; the reflection LM (any OpenAI-compatible chat
endpoint) reads the text trace summary of each seed (see ``search.gepa_adapter``).  The best
program is written to ``--out`` and re-scored on the held-out seeds.
"""
from __future__ import annotations

import argparse
import os
import math
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SEED_PROGRAM = REPO_ROOT / "experiments" / "openevolve" / "initial_program.py"


def openai_lm(model: str, api_base: str, api_key: str | None, temperature: float):
    """A GEPA ``LanguageModel`` (prompt -> text) over an OpenAI-compatible chat endpoint."""
    from openai import OpenAI

    client = OpenAI(base_url=api_base, api_key=api_key or "none")

    def call(prompt) -> str:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        reply = client.chat.completions.create(model=model, messages=messages,
                                               temperature=temperature)
        return reply.choices[0].message.content or ""

    return call


def main(argv=None) -> int:
    """Parse arguments, run ``gepa.optimize`` and write/score the best program."""
    import gepa

    from blis_evo.experiment import experiment_from_arg
    from search.gepa_adapter import COMPONENT, BlisGEPAAdapter
    from search.program_eval import describe, evaluate_program, kind_of

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="default", help="experiment YAML or 'default'")
    p.add_argument("--seed-program", default=str(DEFAULT_SEED_PROGRAM))
    p.add_argument("--api-base", default=os.environ.get("OPENAI_API_BASE", "http://localhost:8000/v1"))
    p.add_argument("--model", required=True, help="reflection model name at the endpoint")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-metric-calls", type=int, default=60,
                   help="budget: simulated (program, seed) evaluations")
    p.add_argument("--run-dir", default=None, help="GEPA state folder (resumable)")
    p.add_argument("--out", default="results/gepa/best_policy")
    args = p.parse_args(argv)

    exp = experiment_from_arg(args.experiment)
    kind = kind_of(args.seed_program)
    seed_text = Path(args.seed_program).read_text(encoding="utf-8")
    result = gepa.optimize(
        seed_candidate={COMPONENT: seed_text}, trainset=list(exp.seeds.train),
        adapter=BlisGEPAAdapter(exp, kind=kind),
        reflection_lm=openai_lm(args.model, args.api_base, os.environ.get("OPENAI_API_KEY"),
                                args.temperature),
        max_metric_calls=args.max_metric_calls, perfect_score=math.inf,
        run_dir=args.run_dir, seed=0)
    best = result.best_candidate[COMPONENT]
    out = Path(args.out).with_suffix(Path(args.seed_program).suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(best, encoding="utf-8")
    held = evaluate_program(out, exp, exp.seeds.heldout, kind=kind, summary=False)
    print(f"best program: {out}")
    print(f"held-out seeds {list(exp.seeds.heldout)}: {describe(held)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
