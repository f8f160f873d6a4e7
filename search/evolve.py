"""``python -m search.evolve``: evolve a cluster control policy for an experiment.

Runs the search loop (:mod:`search.loop`) on the experiment's train seeds with one of the
representations in :data:`GENOMES` -- ``params``: the GA (or NSGA-II) over the experiment's
search space; ``gp``: genetic programming of the routing ``score()`` rule -- checkpointing every
generation, then compares the champion with the baselines on the held-out seeds and writes the
outputs (champion.yaml, hall_of_fame.json, logbook.csv, pareto.json, plots, report.md; with
``gp`` also champion_score.py).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from blis_evo.baselines import BASELINES
from blis_evo.commands import EXIT_INPUT_ERROR as EXIT_INPUT, EXIT_OK, check_output_dir
from blis_evo.deployment import deployed_policy
from blis_evo.experiment import default_experiment, experiment_digest, load_experiment
from blis_evo.flags import InputErrorParser
from simulator.errors import InputError

from .evaluate import compare_policies, with_baselines
from .genome import experiment_space
from .gp import SEED_RULES, RuleTrees
from .loop import run
from .parallel import Evaluator
from .report import policy_summary, write_outputs
from .vector import VectorGenome

DEFAULT_OUT = "results/search"
GENOMES = ("params", "gp")
"""Representations ``evolve`` knows (``--genome``)."""


@dataclass
class SearchResult:
    """What ``evolve`` returns: the champion policy, its bundle, the final search state, the
    held-out comparison (policy name -> summary), the output folder, the champion's
    evaluation on the train seeds (what the search ranked it by) and the champion's whole
    :class:`~blis_evo.phenotype.Phenotype` (``champion`` is its policy)."""

    champion: object
    champion_bundle: dict
    state: object
    summaries: dict
    out: Path | None
    train_evaluation: object = None
    phenotype: object = None


def _representation(genome: str, experiment):
    """The representation, algorithm and initial seeds of a ``--genome`` choice: ``params``
    seeds the baselines as the experiment deploys them (with its autoscaler) when the search
    space can encode them; ``gp`` seeds :data:`search.gp.SEED_RULES`."""
    s = experiment.search
    if genome == "gp":
        if experiment.objectives.mode == "multi":
            raise InputError("--genome gp needs a single-objective experiment (objectives.mode: single)")
        return RuleTrees(cxpb=s.cxpb, mutpb=s.mutpb), "gp", list(SEED_RULES)
    space = experiment_space(experiment)
    baselines = [deployed_policy(p, experiment) for p in BASELINES.values()]
    seeds = [space.encode(p) for p in baselines if _encodable(space, p)]
    return VectorGenome(space, cxpb=s.cxpb, mutpb=s.mutpb), s.algorithm, seeds


def evolve(experiment, *, genome: str = "params", generations: int | None = None,
           workers: int | None = None, out: str | Path | None = None,
           resume: str | Path | None = None, ray_address: str | None = None,
           seed: int | None = None, progress: bool = False) -> SearchResult:
    """Run the search for ``experiment`` (an Experiment) with the ``genome`` representation
    (:data:`GENOMES`) and write its outputs to ``out``.

    The experiment's search settings (population, generations, cxpb, mutpb, tournament,
    patience, target, seed; ``algorithm`` for ``params``) apply to every representation; the
    arguments override generations, workers and seed.  ``gp`` needs a single-objective
    experiment and ignores the search space.  InputError on bad input.
    """
    if genome not in GENOMES:
        raise InputError(f"genome: expected one of {', '.join(GENOMES)}, got {genome!r}")
    s = experiment.search
    generations = s.generations if generations is None else generations
    workers = s.workers if workers is None else workers
    seed = s.seed if seed is None else seed
    out_dir = Path(out or resume or DEFAULT_OUT)
    rep, algorithm, seeds = _representation(genome, experiment)
    multi = experiment.objectives.mode == "multi"
    n_obj = len(experiment.objectives.multi) if multi else 1
    bar = _progress(generations) if progress else None
    noun = "rule" if genome == "gp" else "genome"

    def on_failure(_genome, error):
        _warn(f"evaluation failed, {noun} penalised with the worst fitness: {error}", bar)

    def on_generation(st):
        if bar:
            bar.update(st.generation, st.champion.fitness.values[0])

    evaluator = Evaluator(rep.phenotypes, experiment, experiment.seeds.train, workers=workers,
                          ray_address=ray_address, on_failure=on_failure)
    start = time.perf_counter()
    try:
        state = run(rep, lambda genomes: [ev.objectives for ev in evaluator(genomes)],
                    algorithm=algorithm, population=s.population, generations=generations,
                    tournament=s.tournament, seed=seed, weights=(1.0,) * n_obj, seeds=seeds,
                    patience=s.patience or None, target=s.target,
                    checkpoint_path=str(out_dir / "checkpoint.pkl"),
                    resume_from=str(Path(resume) / "checkpoint.pkl") if resume else None,
                    on_generation=on_generation, extra_state=evaluator.cache,
                    fingerprint=experiment_digest(experiment))
    finally:
        evaluator.close()
        if bar:
            bar.close()
    best = state.champion
    champion = rep.phenotype(best)
    heldout = experiment.seeds.heldout
    evaluations = compare_policies(with_baselines(champion), experiment, heldout)
    summaries = {name: policy_summary(ev) for name, ev in evaluations.items()}
    bundle, source = rep.champion(best, out_dir)
    hof = [{"rank": k, "fitness": list(ind.fitness.values), **rep.describe(ind)}
           for k, ind in enumerate(state.halloffame)]
    pareto = None
    if multi and state.pareto is not None:
        pareto = [{"objectives": list(ind.fitness.values), **rep.describe(ind)}
                  for ind in state.pareto]
    names = [o.key for o in experiment.objectives.multi] if multi else ["fitness"]
    write_outputs(out_dir, champion_bundle=bundle, hall_of_fame=hof, logbook=state.logbook,
                  summaries=summaries, experiment_name=experiment.name, heldout_seeds=heldout,
                  pareto=pareto, pareto_labels=names,
                  pareto_directions=[o.direction for o in experiment.objectives.multi] if multi else None,
                  primary=experiment.objectives.primary,
                  wall_time_s=time.perf_counter() - start, generations=state.generation,
                  stop_reason=state.stop_reason, evaluations=len(evaluator.cache),
                  failures=_failures(evaluator.cache), champion_source=source)
    train = evaluator.cache.get(rep.phenotypes.canonical(rep.genome(best)))
    return SearchResult(champion.policy, bundle, state, summaries, out_dir, train, champion)


def _check_out_dir(path: str, flag: str) -> None:
    """Fail before simulating if the output folder can obviously not be written."""
    check_output_dir(path, flag)
    if flag == "--resume" and not (Path(path) / "checkpoint.pkl").is_file():
        raise InputError(f"--resume: {path!r} holds no checkpoint.pkl to resume from")


def _failures(cache: dict) -> list[dict]:
    """Every failed evaluation in the cache (first-evaluated order): the policy's canonical
    form and the error, which names the genome."""
    return [{"policy": repr(k), "error": ev.error} for k, ev in cache.items() if ev.error is not None]


def _warn(message: str, bar=None) -> None:
    """One warning line on stderr (above the progress bar when there is one)."""
    line = f"evolve: warning: {message}"
    if bar is not None:
        bar.bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def _encodable(space, policy) -> bool:
    try:
        space.encode(policy)
        return True
    except InputError:
        return False


class _progress:
    """Terminal progress bar: generation, best fitness, ETA (tqdm on stderr)."""

    def __init__(self, total: int):
        from tqdm import tqdm  # lazy: only a search with a progress bar loads tqdm

        self.bar = tqdm(total=total, unit="gen", file=sys.stderr, dynamic_ncols=True)

    def update(self, gen: int, best) -> None:
        self.bar.n = gen
        self.bar.set_postfix_str(f"best={best:.4g}" if isinstance(best, float) else f"best={best}",
                                 refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m search.evolve``."""
    p = InputErrorParser(prog="python -m search.evolve", description=__doc__, allow_abbrev=False)
    p.add_argument("--experiment", help="experiment YAML (default: the embedded default experiment)")
    p.add_argument("--generations", type=int)
    p.add_argument("--workers", type=int, help="parallel evaluations (1 = serial, no Ray)")
    p.add_argument("--ray-address", help="join a Ray cluster (auto or HOST:PORT)")
    p.add_argument("--out", help="output directory (default results/search)")
    p.add_argument("--resume", help="continue the search whose outputs are in this directory")
    p.add_argument("--seed", type=int, help="search seed (default: the experiment's)")
    p.add_argument("--genome", choices=GENOMES, default="params",
                   help="params: the policy parameter vector of the experiment's search space "
                        "(default); gp: genetic programming of the routing score() rule, "
                        "written out as a code policy")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    """Entry point; bad input gives one line ``evolve: error: ...`` and exit status 2."""
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help
            return int(e.code or 0)
        exp = load_experiment(args.experiment) if args.experiment else default_experiment()
        if args.generations is not None and args.generations < 1:
            raise InputError(f"--generations must be >= 1, got {args.generations}")
        if args.workers is not None and args.workers < 1:
            raise InputError(f"--workers must be >= 1, got {args.workers}")
        if args.seed is not None and args.seed < 0:
            raise InputError(f"--seed must be >= 0, got {args.seed}")
        if args.resume and args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
            raise InputError("--out and --resume name different folders; a resumed search "
                             "writes into the folder it resumes")
        _check_out_dir(args.resume or args.out or DEFAULT_OUT, "--resume" if args.resume else "--out")
        res = evolve(exp, genome=args.genome, generations=args.generations,
                     workers=args.workers, out=args.out, resume=args.resume,
                     ray_address=args.ray_address, seed=args.seed, progress=not args.no_progress)
    except InputError as e:
        print(f"evolve: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_INPUT
    print(f"champion written to {res.out / 'champion.yaml'}; report: {res.out / 'report.md'}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
