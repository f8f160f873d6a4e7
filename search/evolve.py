"""``python -m search.evolve``: evolve a cluster control policy for an experiment.

Runs the GA (or NSGA-II) over the experiment's search space on its train seeds, checkpointing
every generation, then compares the champion with the baselines on the held-out seeds and writes
the outputs (champion.yaml, hall_of_fame.json, logbook.csv, pareto.json, plots, report.md).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from blis_evo.baselines import BASELINES
from blis_evo.commands import check_output_dir
from blis_evo.deployment import deployed_policy
from blis_evo.experiment import default_experiment, experiment_digest, load_experiment
from blis_evo.flags import InputErrorParser
from simulator.errors import InputError

from .evaluate import compare_policies, with_baselines
from .ga import run_search
from .genome import bundle_dict, decode_sim_params, experiment_space
from .gp import RuleSpace, champion_files, rule_policy, run_gp, tree_source
from .parallel import Evaluator
from .report import policy_summary, write_outputs

EXIT_OK = 0
EXIT_INPUT = 2
DEFAULT_OUT = "results/search"


@dataclass
class SearchResult:
    """What ``evolve`` returns: the champion policy, its bundle, the final search state and the
    held-out comparison (policy name -> summary)."""

    champion: object
    champion_bundle: dict
    state: object
    summaries: dict
    out: Path | None


def evolve(experiment, *, generations: int | None = None, workers: int | None = None,
           out: str | Path | None = None, resume: str | Path | None = None,
           ray_address: str | None = None, seed: int | None = None, progress: bool = False) -> SearchResult:
    """Run the search for ``experiment`` (an Experiment) and write its outputs to ``out``."""
    s = experiment.search
    generations = s.generations if generations is None else generations
    workers = s.workers if workers is None else workers
    seed = s.seed if seed is None else seed
    out_dir = Path(out or resume or DEFAULT_OUT)
    space = experiment_space(experiment)
    multi = experiment.objectives.mode == "multi"
    n_obj = len(experiment.objectives.multi) if multi else 1
    bar = _progress(generations) if progress else None

    def on_failure(genome, error):
        _warn(f"evaluation failed, genome penalised with the worst fitness: {error}", bar)

    evaluator = Evaluator(space, experiment, experiment.seeds.train, workers=workers,
                          ray_address=ray_address, on_failure=on_failure)

    def evaluate_batch(genomes):
        evs = evaluator(genomes)
        return [tuple(ev.objectives) if multi else (float(ev.fitness),) for ev in evs]

    # the baselines as the experiment deploys them (with its autoscaler) seed the population
    baselines = [deployed_policy(p, experiment) for p in BASELINES.values()]
    start = time.perf_counter()
    state = _run_closing(evaluator, bar, lambda: run_search(
        space, evaluate_batch, algorithm=s.algorithm, population=s.population,
        generations=generations, cxpb=s.cxpb, mutpb=s.mutpb, tournament=s.tournament,
        seed=seed, n_objectives=n_obj, patience=s.patience or None, target=s.target,
        seed_genomes=[space.encode(p) for p in baselines if _encodable(space, p)],
        **_loop_io(out_dir, resume, bar, evaluator, experiment_digest(experiment))))
    best = state.champion
    champion = space.decode(best)
    heldout = experiment.seeds.heldout
    champion_sim = decode_sim_params(space, best)
    evaluations = compare_policies(with_baselines(champion, champion_sim), experiment, heldout)
    summaries = {name: policy_summary(ev) for name, ev in evaluations.items()}

    def bundle_of(ind):
        return bundle_dict(space.decode(ind), decode_sim_params(space, ind))

    hof = [{"rank": k, "fitness": list(ind.fitness.values), "policy": bundle_of(ind)}
           for k, ind in enumerate(state.halloffame)]
    pareto = None
    if multi and state.pareto is not None:
        pareto = [{"objectives": list(ind.fitness.values), "policy": bundle_of(ind)}
                  for ind in state.pareto]
    bundle = bundle_dict(champion, champion_sim)
    names = [o.key for o in experiment.objectives.multi] if multi else ["fitness"]
    write_outputs(out_dir, champion_bundle=bundle, hall_of_fame=hof, logbook=state.logbook,
                  summaries=summaries, experiment_name=experiment.name, heldout_seeds=heldout,
                  pareto=pareto, pareto_labels=names,
                  pareto_directions=[o.direction for o in experiment.objectives.multi] if multi else None,
                  primary=experiment.objectives.primary,
                  wall_time_s=time.perf_counter() - start, generations=state.generation,
                  stop_reason=state.stop_reason, evaluations=len(evaluator.cache),
                  failures=_failures(evaluator.cache))
    return SearchResult(champion, bundle, state, summaries, out_dir)


def _loop_io(out_dir: Path, resume, bar, evaluator, fingerprint: str) -> dict:
    """The checkpoint, resume, progress and cache arguments both search loops take."""
    def on_generation(st):
        if bar:
            bar.update(st.generation, st.champion.fitness.values[0])

    return {"checkpoint_path": str(out_dir / "checkpoint.pkl"),
            "resume_from": str(Path(resume) / "checkpoint.pkl") if resume else None,
            "on_generation": on_generation, "extra_state": evaluator.cache,
            "fingerprint": fingerprint}


def _run_closing(evaluator, bar, loop):
    """``loop()``, then shut down the evaluator (Ray) and the progress bar whatever happens."""
    try:
        return loop()
    finally:
        evaluator.close()
        if bar:
            bar.close()


def evolve_gp(experiment, *, generations: int | None = None, workers: int | None = None,
              out: str | Path | None = None, resume: str | Path | None = None,
              ray_address: str | None = None, seed: int | None = None,
              progress: bool = False) -> SearchResult:
    """Like :func:`evolve` with the genetic-programming genome (:mod:`search.gp`): evolve the
    routing ``score()`` rule on the train seeds (the experiment's population, generations,
    cxpb, mutpb, tournament and seed; its search space is not used), then compare the
    champion with the baselines on the held-out seeds.  Writes champion_score.py (the rule as
    a code policy), champion.yaml (a bundle running it), hall_of_fame.json, logbook.csv,
    heldout.json, report.md and the checkpoint into ``out``."""
    s = experiment.search
    generations = s.generations if generations is None else generations
    workers = s.workers if workers is None else workers
    seed = s.seed if seed is None else seed
    out_dir = Path(out or resume or DEFAULT_OUT)
    bar = _progress(generations) if progress else None

    def on_failure(genome, error):
        _warn(f"evaluation failed, rule penalised with the worst fitness: {error}", bar)

    evaluator = Evaluator(RuleSpace(), experiment, experiment.seeds.train, workers=workers,
                          ray_address=ray_address, on_failure=on_failure)

    start = time.perf_counter()
    state = _run_closing(evaluator, bar, lambda: run_gp(
        lambda genomes: [(float(ev.fitness),) for ev in evaluator(genomes)],
        population=s.population, generations=generations, cxpb=s.cxpb, mutpb=s.mutpb,
        tournament=s.tournament, seed=seed,
        **_loop_io(out_dir, resume, bar, evaluator, experiment_digest(experiment))))
    best = state.champion
    source = tree_source(best)
    champion = rule_policy(source)
    evaluations = compare_policies(with_baselines(champion), experiment, experiment.seeds.heldout)
    summaries = {name: policy_summary(ev) for name, ev in evaluations.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = champion_files(best, out_dir)
    hof = [{"rank": k, "fitness": list(ind.fitness.values), "rule": str(ind),
            "source": tree_source(ind)} for k, ind in enumerate(state.halloffame)]
    write_outputs(out_dir, champion_bundle=bundle, hall_of_fame=hof, logbook=state.logbook,
                  summaries=summaries, experiment_name=experiment.name,
                  heldout_seeds=experiment.seeds.heldout, primary=experiment.objectives.primary,
                  wall_time_s=time.perf_counter() - start, generations=state.generation,
                  evaluations=len(evaluator.cache), failures=_failures(evaluator.cache),
                  champion_source=source)
    return SearchResult(champion, bundle, state, summaries, out_dir)


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
    p.add_argument("--genome", choices=("params", "gp"), default="params",
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
        if args.genome == "gp" and exp.objectives.mode == "multi":
            raise InputError("--genome gp needs a single-objective experiment (objectives.mode: single)")
        run = evolve_gp if args.genome == "gp" else evolve
        res = run(exp, generations=args.generations, workers=args.workers, out=args.out,
                     resume=args.resume, ray_address=args.ray_address, seed=args.seed,
                     progress=not args.no_progress)
    except InputError as e:
        print(f"evolve: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_INPUT
    print(f"champion written to {res.out / 'champion.yaml'}; report: {res.out / 'report.md'}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
