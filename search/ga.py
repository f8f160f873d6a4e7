"""Evolutionary loop: (mu+lambda) GA with elitism and NSGA-II, with exact checkpoint/resume.

Our own small loop over DEAP building blocks (``HallOfFame``, ``ParetoFront``, ``Logbook``,
``selNSGA2``), as DEAP recommends.  All randomness comes from one ``numpy.random.Generator``
(PCG64) seeded by ``seed``; DEAP's selection operators that use the global ``random`` module
(``selTournament``, ``selTournamentDCD``) are replaced by small numpy versions here, so the
numpy bit-generator state is the only RNG state and a checkpoint holds all of it.

A checkpoint is written atomically (``simulator.fileio.atomic_write``) after every
generation, including generation 0 (the evaluated initial population).  It is plain data
(genes + fitness values, the logbook, the RNG state, the early-stopping counters), so it does not
depend on the per-run fitness weights of ``FitnessMulti``.  Resuming from it and running to the
same generation gives a logbook and champion identical (pickle-byte-for-byte) to an
uninterrupted run, provided ``evaluate_batch`` is deterministic.
"""
from __future__ import annotations

import copy
import json
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from deap import tools

from simulator.errors import InputError, one_line
from simulator.fileio import atomic_write

from .genome import FitnessMulti, GeneSpace, Individual, IndividualMulti

CHECKPOINT_VERSION = 2
EvaluateBatch = Callable[[list[list]], Sequence[Sequence[float]]]


@dataclass
class SearchState:
    """Everything a search carries between generations (and what a checkpoint restores).

    ``population`` holds DEAP individuals with valid fitness; ``halloffame`` the best ever
    (``champion`` is its first entry); ``pareto`` the non-dominated set (NSGA-II only, else None);
    ``logbook`` one record per generation (``gen``, ``nevals``, ``<obj>_min/avg/max`` per
    objective, ``best`` = champion's fitness values, ``stall``); ``stall`` the generations since
    the last improvement; ``stop_reason`` None, ``"patience"`` or ``"target"``.
    """

    population: list
    generation: int
    halloffame: tools.HallOfFame
    pareto: tools.ParetoFront | None
    logbook: tools.Logbook
    rng: np.random.Generator
    settings: dict
    stall: int = 0
    stop_reason: str | None = None
    nevals_total: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def champion(self):
        """The best individual found (hall-of-fame first entry)."""
        return self.halloffame[0]


# ---------------------------------------------------------------------------------------------
# small pure helpers
# ---------------------------------------------------------------------------------------------


def sel_tournament(pool: Sequence, k: int, tournsize: int, rng: np.random.Generator) -> list:
    """``k`` tournament winners (references, not copies) from ``pool``; ties go to the first drawn."""
    out = []
    for _ in range(k):
        idx = rng.integers(len(pool), size=tournsize)
        out.append(max((pool[int(j)] for j in idx), key=lambda ind: ind.fitness.wvalues))
    return out


def sel_crowded_tournament(pool: Sequence, k: int, rng: np.random.Generator) -> list:
    """``k`` binary-tournament winners by dominance, then crowding distance (NSGA-II mating)."""
    out = []
    for _ in range(k):
        a, b = (pool[int(j)] for j in rng.integers(len(pool), size=2))
        if a.fitness.dominates(b.fitness):
            out.append(a)
        elif b.fitness.dominates(a.fitness):
            out.append(b)
        elif a.fitness.crowding_dist != b.fitness.crowding_dist:
            out.append(a if a.fitness.crowding_dist > b.fitness.crowding_dist else b)
        else:
            out.append(a if rng.random() < 0.5 else b)
    return out


def sel_distinct_best(pool: Sequence, k: int, key: Callable[[list], Any]) -> list:
    """(mu+lambda) survivors: the ``k`` best of ``pool`` (stable order), copied, taking each
    distinct ``key`` (phenotype) once before any duplicate.

    Truncation keeps the best ever (elitism); skipping duplicates keeps the population from
    collapsing onto copies of one genome, which tournament survivor selection does within a
    few generations.
    """
    ranked = sorted(pool, key=lambda ind: ind.fitness.wvalues, reverse=True)
    seen: set = set()
    first, rest = [], []
    for ind in ranked:
        kk = key(list(ind))
        (rest if kk in seen else first).append(ind)
        seen.add(kk)
    return [copy.deepcopy(ind) for ind in (first + rest)[:k]]


def vary(parents_of: Callable[[int], list], n: int, space: GeneSpace, rng: np.random.Generator,
         *, cxpb: float, mutpb: float, indpb: float, eta_cx: float, eta_mut: float) -> list:
    """``n`` offspring, each by crossover (prob ``cxpb``), mutation (``mutpb``) or reproduction.

    ``parents_of(m)`` returns ``m`` selected parents.  Varied offspring lose their fitness.
    """
    offspring = []
    for _ in range(n):
        op = rng.random()
        if op < cxpb:
            a, b = (copy.deepcopy(p) for p in parents_of(2))
            child = space.crossover(a, b, rng, eta_cx)[0]
            del child.fitness.values
        elif op < cxpb + mutpb:
            child = space.mutate(copy.deepcopy(parents_of(1)[0]), rng, indpb, eta_mut)[0]
            del child.fitness.values
        else:
            child = copy.deepcopy(parents_of(1)[0])
        offspring.append(child)
    return offspring


def _evaluate(individuals: list, evaluate_batch: EvaluateBatch, n_objectives: int) -> int:
    """Evaluate the individuals without a valid fitness; returns how many were evaluated."""
    todo = [ind for ind in individuals if not ind.fitness.valid]
    if not todo:
        return 0
    results = list(evaluate_batch([list(ind) for ind in todo]))
    if len(results) != len(todo):
        raise ValueError(f"evaluate_batch returned {len(results)} results for {len(todo)} genomes")
    for ind, fit in zip(todo, results):
        fit = tuple(float(v) for v in fit)
        if len(fit) != n_objectives or not all(math.isfinite(v) for v in fit):
            raise ValueError(f"evaluate_batch returned {fit!r}; expected {n_objectives} finite numbers")
        ind.fitness.values = fit
    return len(todo)


def _record(state: SearchState, nevals: int, names: Sequence[str]) -> None:
    rec: dict[str, Any] = {"gen": state.generation, "nevals": nevals}
    for i, name in enumerate(names):
        vals = np.array([ind.fitness.values[i] for ind in state.population], dtype=np.float64)
        rec[f"{name}_min"], rec[f"{name}_avg"], rec[f"{name}_max"] = (
            float(vals.min()), float(vals.mean()), float(vals.max()))
    rec["best"] = tuple(state.champion.fitness.values)
    rec["stall"] = state.stall
    state.logbook.record(**rec)


def logbook_bytes(logbook: tools.Logbook) -> bytes:
    """Canonical bytes of a logbook (JSON, one record per line, exact float reprs).

    Use this (not ``pickle.dumps``, whose memo layout depends on object identity) to compare
    logbooks: a resumed run's ``logbook_bytes`` equals the uninterrupted run's.
    """
    lines = [json.dumps({"header": list(logbook.header or ())})]
    lines += [json.dumps(rec, sort_keys=False) for rec in logbook]
    return ("\n".join(lines) + "\n").encode()


def _reached(values: Sequence[float], target: Sequence[float], weights: Sequence[float]) -> bool:
    return all((v >= t) if w > 0 else (v <= t) for v, t, w in zip(values, target, weights))


def _update_archives(state: SearchState, target) -> None:
    """Update hall of fame / Pareto front, the stall counter and the stop reason."""
    s = state.settings
    if state.pareto is None:
        before = state.halloffame[0].fitness.wvalues if len(state.halloffame) else None
        state.halloffame.update(state.population)
        improved = before is None or state.halloffame[0].fitness.wvalues > before
        candidates = [state.halloffame[0]]
    else:
        before = {ind.fitness.values for ind in state.pareto}
        state.halloffame.update(state.population)
        state.pareto.update(state.population)
        improved = any(ind.fitness.values not in before for ind in state.pareto)
        candidates = list(state.pareto)
    state.stall = 0 if improved else state.stall + 1
    if target is not None and any(_reached(c.fitness.values, target, s["weights"]) for c in candidates):
        state.stop_reason = "target"
    elif s["patience"] is not None and state.stall >= s["patience"]:
        state.stop_reason = "patience"


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------


def _plain(individuals, encode=list) -> list:
    """Checkpoint rows ``(encode(individual), fitness values)``."""
    return [(encode(ind), tuple(ind.fitness.values)) for ind in individuals]


def _individuals(make, rows) -> list:
    """Individuals rebuilt from checkpoint rows: ``make(encoded)`` with the saved fitness."""
    out = []
    for genes, values in rows:
        ind = make(genes)
        ind.fitness.values = values
        out.append(ind)
    return out


def restore_archive(archive, make, rows):
    """Fill a HallOfFame / ParetoFront from checkpoint rows in their saved order (``update``
    would reorder entries of equal fitness and could change the champion on resume)."""
    archive.items = _individuals(make, rows)
    archive.keys = [ind.fitness for ind in reversed(archive.items)]
    return archive


def check_resume_settings(old: dict, settings: dict) -> None:
    """InputError naming the first search setting that differs from the checkpoint's."""
    for key, value in settings.items():
        if old.get(key) != value:
            if key == "fingerprint":
                raise InputError("--resume: the experiment differs from the one the checkpoint was "
                                 "made with (its cached evaluations would be wrong); start a new --out")
            raise InputError(f"--resume: setting {key} is {value!r} but the checkpoint has {old.get(key)!r}")


def save_checkpoint(state: SearchState, path: str) -> None:
    """Write ``state`` atomically to ``path`` (a pickle of plain data)."""
    payload = {
        "version": CHECKPOINT_VERSION,
        "settings": state.settings,
        "generation": state.generation,
        "population": _plain(state.population),
        "halloffame": _plain(state.halloffame),
        "pareto": None if state.pareto is None else _plain(state.pareto),
        "logbook": state.logbook,
        "rng_state": state.rng.bit_generator.state,
        "stall": state.stall,
        "stop_reason": state.stop_reason,
        "nevals_total": state.nevals_total,
        "extra": state.extra,
    }
    atomic_write(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (raises InputError if unreadable)."""
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unreadable or foreign file is bad input
        raise InputError(f"--resume: cannot read checkpoint {path}: "
                         f"{type(exc).__name__}: {one_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"--resume: {path} is not a version-{CHECKPOINT_VERSION} search checkpoint")
    return payload


def _individual_class(weights: tuple[float, ...]):
    if weights == (1.0,):
        return Individual
    # per-run weights (class attribute; one search per process at a time).  DEAP >= 1.4 pickles
    # creator classes by value (meta_create + reduce_args), so keep reduce_args in step too.
    FitnessMulti.weights = weights
    FitnessMulti.reduce_args = (FitnessMulti.reduce_args[0], FitnessMulti.reduce_args[1],
                                {**FitnessMulti.reduce_args[2], "weights": weights})
    return IndividualMulti


def _restore(payload: dict, settings: dict) -> SearchState:
    check_resume_settings(payload["settings"], settings)
    cls = _individual_class(settings["weights"])
    hof = restore_archive(tools.HallOfFame(settings["hof_size"]), cls, payload["halloffame"])
    pareto = None
    if payload["pareto"] is not None:
        pareto = restore_archive(tools.ParetoFront(), cls, payload["pareto"])
    rng = np.random.default_rng()
    rng.bit_generator.state = payload["rng_state"]
    return SearchState(population=_individuals(cls, payload["population"]),
                       generation=payload["generation"], halloffame=hof, pareto=pareto,
                       logbook=payload["logbook"], rng=rng, settings=settings,
                       stall=payload["stall"], stop_reason=payload["stop_reason"],
                       nevals_total=payload["nevals_total"], extra=payload.get("extra", {}))


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------


def run_search(space: GeneSpace, evaluate_batch: EvaluateBatch, *, algorithm: str = "ga",
               population: int = 32, generations: int = 50, cxpb: float = 0.5,
               mutpb: float = 0.4, tournament: int = 3, seed: int = 0, n_objectives: int = 1,
               weights: Sequence[float] | None = None, indpb: float | None = None,
               eta_cx: float = 15.0, eta_mut: float = 20.0, hof_size: int = 10,
               objective_names: Sequence[str] | None = None, seed_genomes: Sequence[Sequence] = (),
               patience: int | None = None, target: float | Sequence[float] | None = None,
               checkpoint_path: str | None = None, resume_from: str | None = None,
               on_generation: Callable[[SearchState], None] | None = None,
               extra_state: dict | None = None, fingerprint: str = "") -> SearchState:
    """Run (or resume) an evolutionary search over ``space``; returns the final :class:`SearchState`.

    Parameters
    ----------
    evaluate_batch : callable
        ``evaluate_batch(list_of_genomes) -> list_of_fitness_tuples`` (``n_objectives`` finite
        floats each, same order).  The caller handles parallelism and caching; it must be
        deterministic for resume to reproduce an uninterrupted run.
    algorithm : ``"ga"`` or ``"nsga2"``
        ``"ga"``: (mu+lambda), lambda = mu; parents by tournament (size ``tournament``); each
        child by crossover (``cxpb``), mutation (``mutpb``) or copy; survivors = the best
        ``population`` distinct phenotypes of parents+offspring (:func:`sel_distinct_best`).
        Needs ``n_objectives == 1``.
        ``"nsga2"``: parents by crowded binary tournament, survivors by ``deap.tools.selNSGA2``;
        a ``ParetoFront`` is kept.
    population, generations : int
        mu, and the last generation number (generation 0 is the evaluated initial population).
    weights : sequence of float, optional
        DEAP fitness weights (default all +1: every objective maximised).
    indpb, eta_cx, eta_mut : float
        Per-gene mutation probability (default ``1/len(space)``), SBX and polynomial indices.
    seed_genomes : sequence of genomes
        Put first into the initial population (e.g. baselines); the rest is random.
    patience : int, optional
        Stop after this many generations without improvement (GA: better champion; NSGA-II: a
        new point on the Pareto front).
    target : float or sequence, optional
        Stop once the champion (GA) or some Pareto member (NSGA-II) reaches it on every
        objective (``>=`` for maximised, ``<=`` for minimised objectives).
    checkpoint_path : str, optional
        Checkpoint written atomically after every generation.
    resume_from : str, optional
        Continue from this checkpoint; all settings except ``generations``, ``checkpoint_path``
        and ``on_generation`` must equal the checkpoint's (InputError otherwise).  A checkpoint
        that had stopped early stays stopped.
    on_generation : callable, optional
        Called with the state after each generation's checkpoint (progress bars).
    fingerprint : str, optional
        Identity of what ``evaluate_batch`` scores (``evolve`` passes the experiment digest);
        a checkpoint only resumes under the same fingerprint, since its cached evaluations and
        fitness values belong to it.
    extra_state : dict, optional
        Caller-owned picklable state saved in every checkpoint (``evolve`` passes its
        evaluation cache).  On resume it is updated in place with the checkpoint's copy before
        any evaluation, so the caller sees what the interrupted run had.
    """
    if algorithm not in ("ga", "nsga2"):
        raise InputError(f"algorithm: must be ga or nsga2, got {algorithm!r}")
    if algorithm == "ga" and n_objectives != 1:
        raise InputError(f"algorithm: ga needs a single objective, got n_objectives={n_objectives}")
    weights = tuple(float(w) for w in (weights or (1.0,) * n_objectives))
    if len(weights) != n_objectives or any(w == 0 or not math.isfinite(w) for w in weights):
        raise InputError(f"weights: expected {n_objectives} non-zero numbers, got {weights!r}")
    if not (0 <= cxpb <= 1 and 0 <= mutpb <= 1 and cxpb + mutpb <= 1):
        raise InputError(f"cxpb/mutpb: need 0 <= cxpb, mutpb and cxpb + mutpb <= 1, got {cxpb}, {mutpb}")
    if population < 2 or tournament < 1:
        raise InputError("population/tournament: need population >= 2 and tournament >= 1")
    if target is not None:
        target = tuple(float(t) for t in (target if isinstance(target, (list, tuple)) else (target,)))
        if len(target) != n_objectives:
            raise InputError(f"target: expected {n_objectives} values, got {target!r}")
    names = tuple(objective_names or (("fitness",) if n_objectives == 1 else
                                      tuple(f"f{i}" for i in range(n_objectives))))
    settings = {"algorithm": algorithm, "population": population, "cxpb": cxpb, "mutpb": mutpb,
                "tournament": tournament, "seed": seed, "n_objectives": n_objectives,
                "weights": weights, "indpb": indpb if indpb is not None else 1.0 / len(space),
                "eta_cx": eta_cx, "eta_mut": eta_mut, "hof_size": hof_size,
                "objective_names": names, "patience": patience, "target": target,
                "genes": tuple(g.name for g in space.genes),
                "seed_genomes": tuple(tuple(g) for g in seed_genomes), "fingerprint": fingerprint}
    cls = _individual_class(weights)

    def finish_generation(state: SearchState, nevals: int) -> None:
        state.nevals_total += nevals
        _update_archives(state, target)
        _record(state, nevals, names)
        if checkpoint_path:
            save_checkpoint(state, checkpoint_path)
        if on_generation:
            on_generation(state)

    extra = extra_state if extra_state is not None else {}
    if resume_from:
        state = _restore(load_checkpoint(resume_from), settings)
        extra.update(state.extra)
        state.extra = extra
    else:
        rng = np.random.default_rng(seed)
        genomes = [list(g) for g in seed_genomes][:population]
        genomes += [space.random_genome(rng) for _ in range(population - len(genomes))]
        state = SearchState(population=[cls(g) for g in genomes], generation=0,
                            halloffame=tools.HallOfFame(hof_size),
                            pareto=tools.ParetoFront() if algorithm == "nsga2" else None,
                            logbook=tools.Logbook(), rng=rng, settings=settings, extra=extra)
        state.logbook.header = ("gen", "nevals", *(f"{n}_{s}" for n in names for s in ("min", "avg", "max")),
                                "best", "stall")
        finish_generation(state, _evaluate(state.population, evaluate_batch, n_objectives))

    rng, s = state.rng, settings
    var = dict(cxpb=cxpb, mutpb=mutpb, indpb=s["indpb"], eta_cx=eta_cx, eta_mut=eta_mut)
    while state.generation < generations and state.stop_reason is None:
        pop = state.population
        if algorithm == "ga":
            offspring = vary(lambda m: sel_tournament(pop, m, tournament, rng), population, space, rng, **var)
        else:
            pop = tools.selNSGA2(pop, len(pop))  # (re)assigns crowding distances, deterministic
            offspring = vary(lambda m: sel_crowded_tournament(pop, m, rng), population, space, rng, **var)
        nevals = _evaluate(offspring, evaluate_batch, n_objectives)
        pool = pop + offspring
        if algorithm == "ga":
            state.population = sel_distinct_best(pool, population, space.canonical)
        else:
            state.population = [copy.deepcopy(ind) for ind in tools.selNSGA2(pool, population)]
        state.generation += 1
        finish_generation(state, nevals)
    return state
