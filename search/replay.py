"""Champion replay: re-evaluate a policy bundle on fresh seeds against the baselines.

``python -m search.replay --policy champion.yaml [--experiment E] [--seeds 10] [--out FILE]``
(also ``blis replay ...``) loads the bundle (policies and the ``engine`` knobs, see
:mod:`blis_evo.bundle`), evaluates it and the hand-tuned baselines
(:data:`blis_evo.baselines.BASELINES`) on the same seeds of the experiment's cluster and workload
(common random numbers), and prints the search report's comparison table plus a headline on
the experiment's primary objective.

Seeds.  ``--seeds N`` takes the first N integers from :data:`FRESH_SEED_START` (1000) upwards
that are neither train nor held-out seeds of the experiment, so a replay never re-uses a seed
the search selected or reported on; the choice depends only on N and the experiment.
``--seeds 1000,1001,1002`` gives an explicit list (a list needs a comma: ``--seeds 1234,`` is
the one-seed list); listed train/held-out seeds are allowed, with a note on stderr.

The policy may lie outside the experiment's search space: it is simply simulated.  Bad input
(unreadable or invalid bundle/experiment, bad seeds, unwritable ``--out``) gives one line
``replay: error: ...`` (``blis: error: ...`` under ``blis replay``) and exit status 2 with
nothing written.  Output is deterministic.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from simulator.config import PolicyConfig
from simulator.errors import InputError, one_line

from blis_evo.bundle import load_policy_bundle
from blis_evo.commands import EXIT_OK, check_output_file, run_subcommand
from blis_evo.experiment import DEFAULT_EXPERIMENT_NAME, experiment_from_arg
from blis_evo.flags import InputErrorParser
from blis_evo.phenotype import Phenotype
from blis_evo.settings import phenotype_from_bundle

from .evaluate import compare_policies, with_baselines
from .genome import bundle_dict
from .report import (atomic_write, comparison_table, headline as report_headline, improvement,
                     objective_column, policy_summary)


FRESH_SEED_START = 1000
"""``--seeds N`` counts fresh seeds upwards from here (skipping train and held-out seeds)."""
DEFAULT_NUM_SEEDS = 10
POLICY_NAME = "champion"
REFERENCE_NAME = "llm-d-default"


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def load_policy(path: str) -> Phenotype:
    """Load a policy bundle file as the :class:`Phenotype` ``search.evaluate`` runs.

    The policy is exactly what ``blis run --policy-config path`` simulates (unset fields take
    the :class:`PolicyConfig` defaults, weighted routing without scorers gets the default
    scorers); the engine knobs are the ones the bundle's ``engine`` section sets (unset knobs
    keep the experiment's values).  See :func:`blis_evo.settings.phenotype_from_bundle`.
    Raises InputError (one line) on a missing or invalid file.
    """
    return phenotype_from_bundle(load_policy_bundle(os.fspath(path)))


def fresh_seeds(exp, n: int, start: int = FRESH_SEED_START) -> tuple[int, ...]:
    """The first ``n`` seeds ``>= start`` that are neither train nor held-out seeds of ``exp``."""
    used = set(exp.seeds.train) | set(exp.seeds.heldout)
    out: list[int] = []
    s = int(start)
    while len(out) < n:
        if s not in used:
            out.append(s)
        s += 1
    return tuple(out)


def parse_seeds(text: str, exp) -> tuple[int, ...]:
    """``--seeds``: a count N >= 1 (see :func:`fresh_seeds`) or a comma-separated list of
    distinct integers >= 0 (a single trailing comma is allowed: ``"1234,"``).

    Raises InputError naming ``--seeds`` and the accepted forms.
    """
    text = str(text).strip()
    usage = "expected a count >= 1 or a comma-separated list of distinct seeds >= 0 (e.g. 1000,1001)"
    if "," not in text:
        try:
            n = int(text)
        except ValueError:
            raise InputError(f"--seeds: invalid value {text!r}; {usage}") from None
        if n < 1:
            raise InputError(f"--seeds: count must be >= 1, got {n}; {usage}")
        return fresh_seeds(exp, n)
    parts = text.split(",")
    if parts[-1].strip() == "":
        parts = parts[:-1]
    seeds: list[int] = []
    for part in parts:
        p = part.strip()
        if not p.isdigit():
            raise InputError(f"--seeds: invalid seed {p!r} in {text!r}; {usage}")
        seeds.append(int(p))
    if not seeds:
        raise InputError(f"--seeds: empty list {text!r}; {usage}")
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise InputError(f"--seeds: repeated seeds {dup} in {text!r}; {usage}")
    return tuple(seeds)


# ---------------------------------------------------------------------------------------------
# Evaluation and report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayResult:
    """Outcome of :func:`replay`: the evaluations (policy name -> ``Evaluation``, the policy
    first, then the baselines), their summaries, the markdown comparison table, the primary
    objective's summary column (``search.report.objective_column``) and the policy's relative
    improvement on it over the llm-d default (positive = better; None when undefined)."""

    experiment: Any
    phenotype: Phenotype
    seeds: tuple[int, ...]
    evaluations: dict
    summaries: dict
    table: str
    column: str
    improvement: float | None

    @property
    def policy(self) -> PolicyConfig:
        """The replayed phenotype's policy."""
        return self.phenotype.policy


def replay(phenotype: Phenotype | PolicyConfig, exp, seeds: Sequence[int]) -> ReplayResult:
    """Evaluate ``phenotype`` (a policy with its engine knobs) and the baselines on ``exp`` for
    ``seeds`` and build the search report's comparison (``search.report.comparison_table`` with
    the experiment's primary objective)."""
    seeds = tuple(int(s) for s in seeds)
    phenotype = Phenotype.of(phenotype)
    evaluations = compare_policies(with_baselines(phenotype, name=POLICY_NAME), exp, seeds)
    summaries = {name: policy_summary(ev) for name, ev in evaluations.items()}
    primary = exp.objectives.primary
    column = objective_column(primary)
    return ReplayResult(
        experiment=exp, phenotype=phenotype, seeds=seeds,
        evaluations=evaluations, summaries=summaries,
        table=comparison_table(summaries, reference=REFERENCE_NAME, primary=primary),
        column=column,
        improvement=improvement(summaries, column, policy=POLICY_NAME, reference=REFERENCE_NAME))


def headline(result: ReplayResult) -> str:
    """The search report's headline (``search.report.headline``: the policy's change over the
    llm-d default on the primary objective) plus which seeds it is measured on."""
    primary = result.experiment.objectives.primary
    text = report_headline(result.summaries, primary, policy=POLICY_NAME, reference=REFERENCE_NAME)
    return f"{text} Mean over {len(result.seeds)} replay seeds; primary objective `{primary}`."


def report_text(result: ReplayResult, policy_path: str) -> str:
    """The stdout report: what was replayed, on which seeds, the table and the headline."""
    exp = result.experiment
    s = exp.seeds
    return "\n".join([
        f"Replay of {policy_path} on experiment {exp.name!r} "
        f"({exp.workload.num_requests} requests per seed)",
        f"Seeds: {', '.join(map(str, result.seeds))} "
        f"(train seeds {list(s.train)}, held-out seeds {list(s.heldout)})",
        "",
        result.table.rstrip("\n"),
        "",
        headline(result),
        "",
    ])


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def seed_record(result) -> dict[str, float]:
    """One seed's ``search.fitness.SeedResult`` as the flat record of the ``--out`` document:
    ``fitness``, ``score``, ``penalty``, every measure, ``code_nonfinite`` (code policies only),
    ``fit.<component>``, ``rate.<anomaly>`` and ``slo_attainment.<class>``."""
    record = {"fitness": result.fitness, "score": result.score, "penalty": result.penalty,
              **{f.name: getattr(result.measures, f.name) for f in fields(result.measures)}}
    if result.code_nonfinite is not None:
        record["code_nonfinite"] = result.code_nonfinite
    record.update({f"fit.{k}": v for k, v in result.components.items()})
    record.update({f"rate.{f.name}": getattr(result.rates, f.name) for f in fields(result.rates)})
    record.update({f"slo_attainment.{k}": v for k, v in result.attainment.items()})
    return record


def results_document(result: ReplayResult, policy_path: str) -> dict:
    """The ``--out`` JSON document: inputs, the table, the headline and per policy its bundle,
    mean/stdev per column and every seed's metrics (keys sorted)."""
    bundles = {name: bundle_dict(p)
               for name, p in with_baselines(result.phenotype, name=POLICY_NAME).items()}
    policies = {}
    for name, ev in result.evaluations.items():
        summary = {col: {"mean": _finite(v["mean"]), "stdev": _finite(v["stdev"])}
                   for col, v in result.summaries[name].items()}
        per_seed = []
        for seed, r in zip(result.seeds, ev.per_seed):
            m = seed_record(r)
            per_seed.append({"seed": seed, **{k: _finite(float(m[k])) for k in sorted(m)}})
        policies[name] = {"policy": bundles[name], "summary": summary, "per_seed": per_seed}
    exp = result.experiment
    return {
        "experiment": exp.name,
        "policy_file": str(policy_path),
        "seeds": list(result.seeds),
        "primary": {"objective": exp.objectives.primary, "column": result.column,
                    "improvement": _finite(result.improvement), "reference": REFERENCE_NAME},
        "headline": headline(result),
        "table": result.table,
        "policies": policies,
    }


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def build_parser(prog: str = "python -m search.replay") -> argparse.ArgumentParser:
    """The argument parser (errors raise InputError instead of exiting)."""
    p = InputErrorParser(
        prog=prog, allow_abbrev=False,
        description="Re-evaluate a policy bundle (e.g. a search's champion.yaml) and the baselines "
                    "on fresh seeds of an experiment; print the comparison table.")
    p.add_argument("--policy", required=True, metavar="FILE",
                   help="policy bundle YAML (blis run --policy-config schema, optional engine section)")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT_NAME, metavar="E",
                   help="experiment YAML, or 'default' for the embedded default experiment "
                        "(default: default)")
    p.add_argument("--seeds", default=str(DEFAULT_NUM_SEEDS), metavar="N|S1,S2,...",
                   help=f"N fresh seeds (the first N from {FRESH_SEED_START} upwards that are not "
                        "train or held-out seeds) or an explicit comma-separated list "
                        f"(default: {DEFAULT_NUM_SEEDS})")
    p.add_argument("--out", metavar="FILE",
                   help="also write the table, headline and per-seed metrics as JSON (atomically)")
    return p


def _load_policy_arg(path: str) -> Phenotype:
    """:func:`load_policy` with errors naming ``--policy``."""
    try:
        return load_policy(path)
    except InputError as exc:
        msg = one_line(exc)
        if msg.startswith("--policy-config: "):
            msg = msg[len("--policy-config: "):]
        raise InputError(f"--policy: {msg}") from None


def run(args: argparse.Namespace, out=None, err=None) -> int:
    """Execute a parsed replay: validate every input, evaluate, print, write ``--out``."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    phenotype = _load_policy_arg(args.policy)
    exp = experiment_from_arg(args.experiment)
    seeds = parse_seeds(args.seeds, exp)
    if args.out:
        check_output_file(args.out, "--out")
    reused = sorted(set(seeds) & (set(exp.seeds.train) | set(exp.seeds.heldout)))
    if reused:
        print(f"note: seeds {reused} are train/held-out seeds of experiment {exp.name!r}, not fresh",
              file=err)
    result = replay(phenotype, exp, seeds)
    out.write(report_text(result, args.policy))
    out.flush()
    if args.out:
        doc = results_document(result, args.policy)
        atomic_write(Path(args.out), json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str = "replay") -> int:
    """Run the replay CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    0 on success, 2 on bad input (``<prog>: error: <one line>`` on stderr, no traceback, nothing
    written), 130 on Ctrl-C, argparse's status for ``--help``.  ``prog`` is ``"blis"`` under
    ``blis replay``.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser_prog = "blis replay" if prog == "blis" else "python -m search.replay"
    return run_subcommand(prog, lambda: build_parser(parser_prog).parse_args(args_list), run)


if __name__ == "__main__":
    raise SystemExit(main())
