"""The jobs file of ``python -m search.batch``: its strict parser and the runs it expands to.

See :mod:`search.batch` for the format and the rerun rules.  Everything is validated, and every
experiment loaded, before anything runs; errors are one-line InputErrors naming the file and key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from simulator.errors import InputError

from .experiment import experiment_digest

TOP_KEYS = ("out", "workers", "ray_address", "generations", "jobs", "grid")
JOB_KEYS = ("experiment", "seeds", "name", "generations")
GRID_KEYS = ("experiments", "seeds", "generations")
MAX_WORKERS = 1024
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
    from .experiment import _P

    src = os.fspath(path)
    doc = _read_jobs_yaml(src)
    p = _P(src, os.path.dirname(os.path.abspath(src)))
    p.mapping(doc, "", TOP_KEYS, ("out",))
    out = Path(p.path(doc["out"], "out"))
    workers = p.integer(_get(doc, "workers", 1), "workers", 1, MAX_WORKERS)
    ray_address = _ray_address(p, doc.get("ray_address"), workers)
    default_gens = _optional_generations(p, doc.get("generations"), "generations")
    entries = (_job_entries(p, doc.get("jobs"), default_gens)
               + _grid_entries(p, doc.get("grid"), default_gens))
    if not entries:
        p.fail("", "needs at least one experiment under jobs or grid.experiments")
    _check_unique_names(p, entries)
    runs = tuple(Run(name=e.name, seed=s, generations=e.generations, experiment=e.experiment,
                     experiment_arg=e.experiment_arg, digest=experiment_digest(e.experiment),
                     folder=out / e.name / f"seed-{s}")
                 for e in entries for s in e.seeds)
    _check_writable(src, out, runs)
    return Batch(source=src, out=out, workers=workers, ray_address=ray_address, runs=runs)


def _read_jobs_yaml(src: str):
    """The jobs file parsed by the strict loader (duplicate keys rejected)."""
    from simulator.schema import read_yaml

    return read_yaml(src, "jobs file")


def _get(node: dict, key: str, default):
    """``node[key]`` unless absent or null."""
    value = node.get(key)
    return default if value is None else value


def _ray_address(p, value, workers: int) -> str | None:
    """The validated ``ray_address`` (a non-empty string, only meaningful with workers > 1)."""
    if value is None:
        return None
    address = p.string(value, "ray_address")
    if workers == 1:
        p.fail("ray_address", "needs workers > 1 (with workers: 1 the search never uses Ray)")
    return address


def _optional_generations(p, value, key: str) -> int | None:
    """A ``generations`` override (integer >= 1) or None."""
    return None if value is None else p.integer(value, key, 1)


def _seeds(p, value, key: str, exp) -> tuple[int, ...]:
    """A ``seeds`` list (distinct integers >= 0), default ``[search.seed]`` of ``exp``."""
    if value is None:
        return (exp.search.seed,)
    return p.seed_list(value, key)


def _load_entry_experiment(p, value, key: str):
    """The experiment named at ``key``: ``default`` (embedded) or a path relative to the jobs
    file; errors are prefixed with the jobs file and ``key``."""
    from .replay import experiment_from_arg

    text = p.string(value, key)
    target = text if text == "default" else p.path(text, key)
    return text, experiment_from_arg(target, flag=f"{p.src}: {key}")


def _job_entries(p, jobs, default_gens: int | None) -> list[_Entry]:
    """The entries of the ``jobs`` list."""
    if jobs is None:
        return []
    if not isinstance(jobs, list):
        p.fail("jobs", "must be a list of {experiment, seeds, name, generations} mappings")
    entries = []
    for i, job in enumerate(jobs):
        key = f"jobs[{i}]"
        p.mapping(job, key, JOB_KEYS, ("experiment",))
        arg, exp = _load_entry_experiment(p, job["experiment"], f"{key}.experiment")
        name = p.string(job["name"], f"{key}.name") if job.get("name") is not None else exp.name
        _check_name(p, name, f"{key}.name")
        gens = _optional_generations(p, job.get("generations"), f"{key}.generations")
        entries.append(_Entry(key, name, exp, arg, _seeds(p, job.get("seeds"), f"{key}.seeds", exp),
                              _first(gens, default_gens, exp.search.generations)))
    return entries


def _grid_entries(p, grid, default_gens: int | None) -> list[_Entry]:
    """The entries of the ``grid`` (every experiment with the grid's seeds)."""
    if grid is None:
        return []
    p.mapping(grid, "grid", GRID_KEYS, ("experiments",))
    experiments = grid["experiments"]
    if not isinstance(experiments, list) or not experiments:
        p.fail("grid.experiments", "must be a non-empty list of experiment files (or default)")
    gens = _optional_generations(p, grid.get("generations"), "grid.generations")
    entries = []
    for j, value in enumerate(experiments):
        key = f"grid.experiments[{j}]"
        arg, exp = _load_entry_experiment(p, value, key)
        _check_name(p, exp.name, key, label="(experiment name) ",
                    hint="; list it under jobs with a name instead")
        seeds = _seeds(p, grid.get("seeds"), "grid.seeds", exp)
        entries.append(_Entry(key, exp.name, exp, arg, seeds,
                              _first(gens, default_gens, exp.search.generations)))
    return entries


def _first(*values):
    """The first value that is not None."""
    return next(v for v in values if v is not None)


def _check_name(p, name: str, key: str, label: str = "", hint: str = "") -> None:
    """A run name becomes a folder name: letters, digits, ``.``, ``_``, ``-``, not leading ``.``."""
    if not NAME_PATTERN.fullmatch(name):
        p.fail(key, f"{label}{name!r} is not usable as a folder name (letters, digits, '.', '_', "
                    f"'-'; not starting with '.' or '-'){hint}")


def _check_unique_names(p, entries: list[_Entry]) -> None:
    """Every entry needs its own name (its runs go to ``<out>/<name>/``)."""
    first: dict[str, str] = {}
    for e in entries:
        if e.name in first:
            p.fail(e.key, f"name {e.name!r} is already used by {first[e.name]}; names must be "
                          "unique (set name: in jobs, or give the experiments distinct names)")
        first[e.name] = e.key


def _check_writable(src: str, out: Path, runs: Sequence[Run]) -> None:
    """Fail up front when ``out`` or a run folder exists as a file or cannot be created."""
    from blis_evo.commands import check_output_dir

    for path, key in [(out, "out")] + [(r.folder, f"out ({r.name} seed {r.seed})") for r in runs]:
        check_output_dir(str(path), f"{src}: {key}")
