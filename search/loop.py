"""The one generation loop of every search (GA, NSGA-II, GP), with exact checkpoint/resume.

Our own small loop over DEAP building blocks (``HallOfFame``, ``ParetoFront``, ``Logbook``), as
DEAP recommends.  Each generation: the strategy (:mod:`search.selection`, one per algorithm)
forms the mating pool, the representation breeds ``population`` offspring from parents the
strategy selects, the offspring without a fitness are evaluated (one ``evaluate_batch`` call),
and the strategy picks the survivors among parents and offspring.  Then the hall of fame /
Pareto front, the stall counter, the early stop, the logbook record and the checkpoint
(:mod:`search.checkpoint`) are updated, the same way for every algorithm.  All randomness comes
from one generator the representation makes from ``seed``; a checkpoint holds its state, so a
resumed run ends byte-identical to an uninterrupted one, provided ``evaluate_batch`` is
deterministic.

Plugging in a new representation: implement :class:`search.representation.Representation` --
an RNG (``new_rng``/``rng_state``/``restore_rng``), ``initial`` and ``breed`` drawing only from
it, ``key`` (canonical phenotype), ``genome`` (what ``evaluate_batch`` gets), ``encode``/
``decode`` (checkpoint rows), ``settings`` (what a resume must match) and ``algorithms`` (the
selection strategies whose RNG it shares; add a strategy to
:data:`search.selection.STRATEGIES` if none fits) -- then pass it to :func:`run`.  For
``python -m search.evolve`` also implement the evolve group (``phenotypes``, ``policy``,
``describe``, ``champion``) and add it to ``search.evolve.GENOMES``.  Nothing in this loop, the
checkpoint or the evaluation path changes.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

import numpy as np
from deap import tools

from simulator.errors import InputError

from .checkpoint import SearchState, load_checkpoint, restore, save_checkpoint
from .selection import STRATEGIES

EvaluateBatch = Callable[[list], Sequence[Sequence[float]]]


def evaluate_invalid(individuals: list, rep, evaluate_batch: EvaluateBatch, n_objectives: int) -> int:
    """Evaluate the individuals without a valid fitness (one ``evaluate_batch`` call on their
    ``rep.genome``); returns how many were evaluated."""
    todo = [ind for ind in individuals if not ind.fitness.valid]
    if not todo:
        return 0
    results = list(evaluate_batch([rep.genome(ind) for ind in todo]))
    if len(results) != len(todo):
        raise ValueError(f"evaluate_batch returned {len(results)} results for {len(todo)} genomes")
    for ind, fit in zip(todo, results):
        fit = tuple(float(v) for v in fit)
        if len(fit) != n_objectives or not all(math.isfinite(v) for v in fit):
            raise ValueError(f"evaluate_batch returned {fit!r}; expected {n_objectives} finite numbers")
        ind.fitness.values = fit
    return len(todo)


def _record(state: SearchState, nevals: int, names: Sequence[str]) -> None:
    """Append the generation's logbook record."""
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


def _plain(seed):
    """A seed in a form that compares equal across runs (lists become tuples)."""
    return tuple(seed) if isinstance(seed, list) else seed


def run(rep, evaluate_batch: EvaluateBatch, *, algorithm: str, population: int = 24,
        generations: int = 10, tournament: int = 3, seed: int = 0,
        weights: Sequence[float] = (1.0,), hof_size: int = 10,
        objective_names: Sequence[str] | None = None, seeds: Sequence = (),
        patience: int | None = None, target: float | Sequence[float] | None = None,
        checkpoint_path: str | None = None, resume_from: str | None = None,
        on_generation: Callable[[SearchState], None] | None = None,
        extra_state: dict | None = None, fingerprint: str = "") -> SearchState:
    """Run (or resume) a search of ``rep`` individuals; returns the final :class:`SearchState`.

    Parameters
    ----------
    rep : Representation
        The kind of individual (:mod:`search.representation`), with its variation settings.
    evaluate_batch : callable
        ``evaluate_batch(list of rep.genome(ind)) -> list of fitness tuples`` (``len(weights)``
        finite floats each, same order).  The caller handles parallelism and caching; it must
        be deterministic for resume to reproduce an uninterrupted run.
    algorithm : str
        The selection strategy (:data:`search.selection.STRATEGIES`), one of
        ``rep.algorithms``: ``ga`` (tournament of size ``tournament``, distinct-best
        survivors; one objective), ``nsga2`` (crowded tournament, ``selNSGA2``, a Pareto front)
        or ``gp`` (double tournament, distinct-best survivors; one objective).
    population, generations : int
        mu (= lambda), and the last generation number (generation 0 is the evaluated initial
        population).
    weights : sequence of float
        DEAP fitness weights, one per objective (+1 maximise, -1 minimise).
    objective_names : sequence of str, optional
        Logbook column prefixes (default ``fitness`` for one objective, else ``f0, f1, ...``).
    seeds : sequence
        Individuals in the representation's seed form (gene lists, rule strings), put first
        into the initial population.
    patience : int, optional
        Stop after this many generations without improvement (a better champion; with a
        Pareto front, a new point on it).
    target : float or sequence, optional
        Stop once the champion (or some Pareto member) reaches it on every objective (``>=``
        for maximised, ``<=`` for minimised objectives).
    checkpoint_path : str, optional
        Checkpoint written atomically after every generation.
    resume_from : str, optional
        Continue from this checkpoint; every setting except ``generations``,
        ``checkpoint_path`` and ``on_generation`` must equal the checkpoint's (InputError
        otherwise).  A checkpoint that had stopped early stays stopped.
    on_generation : callable, optional
        Called with the state after each generation's checkpoint (progress bars).
    extra_state : dict, optional
        Caller-owned picklable state saved in every checkpoint (``evolve`` passes its
        evaluation cache).  On resume it is updated in place with the checkpoint's copy before
        any evaluation.
    fingerprint : str, optional
        Identity of what ``evaluate_batch`` scores (``evolve`` passes the experiment digest); a
        checkpoint only resumes under the same fingerprint.
    """
    if algorithm not in rep.algorithms:
        raise InputError(f"algorithm: must be {' or '.join(rep.algorithms)}, got {algorithm!r}")
    strategy = STRATEGIES[algorithm](tournament)
    weights = tuple(float(w) for w in weights)
    if not weights or any(w == 0 or not math.isfinite(w) for w in weights):
        raise InputError(f"weights: expected non-zero numbers, got {weights!r}")
    n_obj = len(weights)
    if strategy.single_objective and n_obj != 1:
        raise InputError(f"algorithm: {algorithm} needs a single objective, got n_objectives={n_obj}")
    if population < 2 or tournament < 1:
        raise InputError("population/tournament: need population >= 2 and tournament >= 1")
    if target is not None:
        target = tuple(float(t) for t in (target if isinstance(target, (list, tuple)) else (target,)))
        if len(target) != n_obj:
            raise InputError(f"target: expected {n_obj} values, got {target!r}")
    names = tuple(objective_names or (("fitness",) if n_obj == 1 else
                                      tuple(f"f{i}" for i in range(n_obj))))
    settings = {"representation": rep.name, "algorithm": algorithm, "population": population,
                "seed": seed, "weights": weights, "hof_size": hof_size, "objective_names": names,
                "patience": patience, "target": target, "seeds": tuple(_plain(s) for s in seeds),
                "fingerprint": fingerprint, **strategy.settings(), **rep.settings()}

    def finish_generation(state: SearchState, nevals: int) -> None:
        state.nevals_total += nevals
        _update_archives(state, target)
        _record(state, nevals, names)
        if checkpoint_path:
            save_checkpoint(state, rep, checkpoint_path)
        if on_generation:
            on_generation(state)

    extra = extra_state if extra_state is not None else {}
    if resume_from:
        state = restore(load_checkpoint(resume_from), settings, rep)
        extra.update(state.extra)
        state.extra = extra
    else:
        rng = rep.new_rng(seed)
        state = SearchState(population=rep.initial(seeds, population, rng, weights), generation=0,
                            halloffame=tools.HallOfFame(hof_size),
                            pareto=tools.ParetoFront() if strategy.pareto else None,
                            logbook=tools.Logbook(), rng=rng, settings=settings, extra=extra)
        state.logbook.header = ("gen", "nevals", *(f"{n}_{s}" for n in names for s in ("min", "avg", "max")),
                                "best", "stall")
        finish_generation(state, evaluate_invalid(state.population, rep, evaluate_batch, n_obj))

    rng = state.rng
    while state.generation < generations and state.stop_reason is None:
        pool = strategy.mating_pool(state.population)
        offspring = rep.breed(lambda k: strategy.parents(pool, k, rng), population, rng)
        nevals = evaluate_invalid(offspring, rep, evaluate_batch, n_obj)
        state.population = strategy.survivors(pool + offspring, population, rep.key)
        state.generation += 1
        finish_generation(state, nevals)
    return state
