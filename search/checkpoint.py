"""The search state and its checkpoint: save after every generation, load, resume.

A checkpoint is plain data written atomically (``simulator.fileio.atomic_write``): the settings,
the generation, the population, hall of fame and Pareto front as ``(encoded individual,
fitness values)`` rows in their order, the logbook, the RNG state, the early-stopping counters
and the caller's ``extra`` state (``evolve``'s evaluation cache).  It holds no DEAP classes, so
it does not depend on the per-run fitness weights.  Rows are encoded and decoded by the run's
representation (:mod:`search.representation`), so one implementation serves every algorithm.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field

from deap import tools

from simulator.errors import InputError, one_line
from simulator.fileio import atomic_write

CHECKPOINT_VERSION = 3


@dataclass
class SearchState:
    """Everything a search carries between generations (and what a checkpoint restores).

    ``population`` holds DEAP individuals with valid fitness; ``halloffame`` the best ever
    (``champion`` is its first entry); ``pareto`` the non-dominated set (NSGA-II only, else None);
    ``logbook`` one record per generation (``gen``, ``nevals``, ``<obj>_min/avg/max`` per
    objective, ``best`` = champion's fitness values, ``stall``); ``rng`` the run's only random
    generator; ``stall`` the generations since the last improvement; ``stop_reason`` None,
    ``"patience"`` or ``"target"``; ``extra`` the caller's state saved with it.
    """

    population: list
    generation: int
    halloffame: tools.HallOfFame
    pareto: tools.ParetoFront | None
    logbook: tools.Logbook
    rng: object
    settings: dict
    stall: int = 0
    stop_reason: str | None = None
    nevals_total: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def champion(self):
        """The best individual found (hall-of-fame first entry)."""
        return self.halloffame[0]


def _rows(individuals, rep) -> list:
    """Checkpoint rows ``(rep.encode(individual), fitness values)``."""
    return [(rep.encode(ind), tuple(ind.fitness.values)) for ind in individuals]


def _individuals(rows, rep, weights) -> list:
    """Individuals rebuilt from checkpoint rows, with their saved fitness."""
    out = []
    for row, values in rows:
        ind = rep.decode(row, weights)
        ind.fitness.values = values
        out.append(ind)
    return out


def restore_archive(archive, individuals: list):
    """Fill a HallOfFame / ParetoFront with ``individuals`` in their saved order (``update``
    would reorder entries of equal fitness and could change the champion on resume)."""
    archive.items = list(individuals)
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


def save_checkpoint(state: SearchState, rep, path: str) -> None:
    """Write ``state`` atomically to ``path`` (a pickle of plain data; ``rep`` encodes the
    individuals and the RNG state)."""
    payload = {
        "version": CHECKPOINT_VERSION,
        "settings": state.settings,
        "generation": state.generation,
        "population": _rows(state.population, rep),
        "halloffame": _rows(state.halloffame, rep),
        "pareto": None if state.pareto is None else _rows(state.pareto, rep),
        "logbook": state.logbook,
        "rng_state": rep.rng_state(state.rng),
        "stall": state.stall,
        "stop_reason": state.stop_reason,
        "nevals_total": state.nevals_total,
        "extra": state.extra,
    }
    atomic_write(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (raises InputError if unreadable
    or written by another version)."""
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unreadable or foreign file is bad input
        raise InputError(f"--resume: cannot read checkpoint {path}: "
                         f"{type(exc).__name__}: {one_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"--resume: {path} is not a version-{CHECKPOINT_VERSION} search checkpoint")
    return payload


def restore(payload: dict, settings: dict, rep) -> SearchState:
    """The :class:`SearchState` of a loaded checkpoint, after checking that ``settings`` equal
    the checkpoint's (InputError naming the first difference)."""
    check_resume_settings(payload["settings"], settings)
    weights = settings["weights"]
    hof = restore_archive(tools.HallOfFame(settings["hof_size"]),
                          _individuals(payload["halloffame"], rep, weights))
    pareto = None
    if payload["pareto"] is not None:
        pareto = restore_archive(tools.ParetoFront(), _individuals(payload["pareto"], rep, weights))
    return SearchState(population=_individuals(payload["population"], rep, weights),
                       generation=payload["generation"], halloffame=hof, pareto=pareto,
                       logbook=payload["logbook"], rng=rep.restore_rng(payload["rng_state"]),
                       settings=settings, stall=payload["stall"],
                       stop_reason=payload["stop_reason"], nevals_total=payload["nevals_total"],
                       extra=payload["extra"])
