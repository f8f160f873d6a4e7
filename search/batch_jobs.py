"""The jobs file of ``python -m search.batch``: its schema (:data:`JOBS_FILE`, declared with
:mod:`simulator.schema`) and the runs it expands to.

See :mod:`search.batch` for the format and the rerun rules.  Everything is validated, and every
experiment loaded, before anything runs; errors are one-line InputErrors naming the file and key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from blis_evo.commands import check_output_dir
from blis_evo.experiment import experiment_digest, experiment_from_arg
from simulator.schema import At, Int, ListOf, Mapping, Str, read_yaml

MAX_WORKERS = 1024
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_SEEDS = ListOf(Int(ge=0), min_items=1, unique="seed",
                help="search seeds (default: [search.seed] of the experiment)")
_GENERATIONS = Int(ge=1, help="generations (overrides the experiment's search.generations)")
_EXPERIMENT = Str(nonempty=True, help="an experiment file (relative to the jobs file) or default "
                                      "(the embedded default experiment)")
JOBS_FILE = Mapping({
    "out": Str(nonempty=True, required=True,
               help="root output folder; run <name> seed <s> goes to <out>/<name>/seed-<s>"),
    "workers": Int(ge=1, le=MAX_WORKERS, default=1,
                   help="evaluation workers; > 1 starts Ray once for the whole batch"),
    "ray_address": Str(nonempty=True, help="join this Ray cluster (needs workers > 1)"),
    "generations": Int(ge=1, help="default generations of every run"),
    "jobs": ListOf(Mapping({"experiment": Str(nonempty=True, required=True, help=_EXPERIMENT.help),
                            "seeds": _SEEDS,
                            "name": Str(nonempty=True, help="run name (default: the experiment's "
                                                            "name); a folder name, unique"),
                            "generations": _GENERATIONS}),
                   what="a list of {experiment, seeds, name, generations} mappings",
                   help="explicit runs"),
    "grid": Mapping({"experiments": ListOf(_EXPERIMENT, min_items=1, required=True,
                                           what="a non-empty list of experiment files (or default)"),
                     "seeds": _SEEDS, "generations": _GENERATIONS},
                    help="every experiment x every seed"),
}, help="the jobs file of python -m search.batch")
"""The jobs-file schema (:mod:`simulator.schema` declaration)."""


# ---------------------------------------------------------------------------------------------
# The jobs file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One search of the batch: experiment ``name`` with search seed ``seed`` for
    ``generations`` generations into ``folder``; ``digest`` identifies the experiment."""

    name: str
    seed: int
    generations: int
    experiment: Any
    experiment_arg: str
    digest: str
    folder: Path


@dataclass(frozen=True)
class Batch:
    """A validated jobs file: where it came from, the output root, the Ray settings and the
    runs in execution order (jobs in order, then grid experiments x seeds)."""

    source: str
    out: Path
    workers: int
    ray_address: str | None
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class _Entry:
    """One experiment entry of the jobs file before expansion over its seeds."""

    key: str
    name: str
    experiment: Any
    experiment_arg: str
    seeds: tuple[int, ...]
    generations: int


def load_batch(path: str | os.PathLike) -> Batch:
    """Read and strictly validate a jobs file (see the module docstring) and load every
    experiment it names, so that a mistake anywhere stops the batch before anything runs.

    Raises InputError with one line naming the file and the key (e.g.
    ``jobs.yaml: jobs[1].experiment: cannot read experiment ...``).  Creates nothing.
    """
    src = os.fspath(path)
    at = At(src, context=os.path.dirname(os.path.abspath(src)))
    doc = JOBS_FILE.parse(read_yaml(src, "jobs file"), at)
    out = Path(_resolve(doc["out"], at))
    if doc.get("ray_address") is not None and doc["workers"] == 1:
        (at / "ray_address").fail("needs workers > 1 (with workers: 1 the search never uses Ray)")
    default_gens = doc.get("generations")
    entries = (_job_entries(at, doc.get("jobs", []), default_gens)
               + _grid_entries(at, doc.get("grid"), default_gens))
    if not entries:
        at.fail("needs at least one experiment under jobs or grid.experiments")
    _check_unique_names(at, entries)
    runs = tuple(Run(name=e.name, seed=s, generations=e.generations, experiment=e.experiment,
                     experiment_arg=e.experiment_arg, digest=experiment_digest(e.experiment),
                     folder=out / e.name / f"seed-{s}")
                 for e in entries for s in e.seeds)
    _check_writable(src, out, runs)
    return Batch(source=src, out=out, workers=doc["workers"], ray_address=doc.get("ray_address"),
                 runs=runs)


def _resolve(path: str, at: At) -> str:
    """``path`` resolved against the jobs file's directory (``at.context``) unless absolute."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(at.context, path))


def _load_entry_experiment(text: str, at: At):
    """The experiment named at ``at``: ``default`` (embedded) or a path relative to the jobs
    file; errors are prefixed with the jobs file and the key path."""
    target = text if text == "default" else _resolve(text, at)
    return text, experiment_from_arg(target, flag=f"{at.source}: {at.path}")


def _job_entries(at: At, jobs: list[dict], default_gens: int | None) -> list[_Entry]:
    """The entries of the ``jobs`` list."""
    entries = []
    for i, job in enumerate(jobs):
        key = at / "jobs" / i
        arg, exp = _load_entry_experiment(job["experiment"], key / "experiment")
        name = job.get("name", exp.name)
        _check_name(name, key / "name")
        entries.append(_Entry(key.path, name, exp, arg, tuple(job.get("seeds", [exp.search.seed])),
                              _first(job.get("generations"), default_gens, exp.search.generations)))
    return entries


def _grid_entries(at: At, grid: dict | None, default_gens: int | None) -> list[_Entry]:
    """The entries of the ``grid`` (every experiment with the grid's seeds)."""
    if grid is None:
        return []
    entries = []
    for j, value in enumerate(grid["experiments"]):
        key = at / "grid" / "experiments" / j
        arg, exp = _load_entry_experiment(value, key)
        _check_name(exp.name, key, label="(experiment name) ",
                    hint="; list it under jobs with a name instead")
        entries.append(_Entry(key.path, exp.name, exp, arg,
                              tuple(grid.get("seeds", [exp.search.seed])),
                              _first(grid.get("generations"), default_gens,
                                     exp.search.generations)))
    return entries


def _first(*values):
    """The first value that is not None."""
    return next(v for v in values if v is not None)


def _check_name(name: str, at: At, label: str = "", hint: str = "") -> None:
    """A run name becomes a folder name: letters, digits, ``.``, ``_``, ``-``, not leading ``.``."""
    if not NAME_PATTERN.fullmatch(name):
        at.fail(f"{label}{name!r} is not usable as a folder name (letters, digits, '.', '_', "
                f"'-'; not starting with '.' or '-'){hint}")


def _check_unique_names(at: At, entries: list[_Entry]) -> None:
    """Every entry needs its own name (its runs go to ``<out>/<name>/``)."""
    first: dict[str, str] = {}
    for e in entries:
        if e.name in first:
            At(at.source, e.key).fail(
                f"name {e.name!r} is already used by {first[e.name]}; names must be unique (set "
                "name: in jobs, or give the experiments distinct names)")
        first[e.name] = e.key


def _check_writable(src: str, out: Path, runs: Sequence[Run]) -> None:
    """Fail up front when ``out`` or a run folder exists as a file or cannot be created."""
    for path, key in [(out, "out")] + [(r.folder, f"out ({r.name} seed {r.seed})") for r in runs]:
        check_output_dir(str(path), f"{src}: {key}")
