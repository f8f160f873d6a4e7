"""``python -m search.batch jobs.yaml``: run a list (or a grid) of searches as one rerunnable job.

A jobs file names experiments and search seeds; every (name, seed) pair is one run of
:func:`search.evolve.evolve` into ``<out>/<name>/seed-<seed>``.  The whole file is validated
before anything runs (strict YAML, every experiment loaded; relative paths resolve against the
jobs file's directory)::

    out: results/batch          # root output folder (required)
    workers: 2                  # optional, default 1; > 1 starts Ray once for the whole batch
    ray_address: auto           # optional (needs workers > 1): join a cluster
    generations: 10             # optional default for every run
    jobs:                       # explicit list ...
      - {experiment: experiments/default.yaml, seeds: [0, 1], name: default, generations: 5}
    grid:                       # ... and/or every experiment x every seed
      experiments: [experiments/default.yaml, other.yaml]
      seeds: [0, 1]
      generations: 10           # optional

``experiment: default`` is the embedded default experiment.  ``name`` defaults to the
experiment's ``name``; names must be unique.  ``seeds`` defaults to ``[search.seed]`` of the
experiment; generations to the job's, else the grid's, else the top-level value, else the
experiment's ``search.generations``.

Rerunning.  ``done.json`` in a run folder (written atomically after evolve returns) marks it
complete and records the experiment digest (:func:`experiment_digest`), the seed, the requested
generations and the result figures.  ``started.json`` (written before evolve starts) records
the digest and seed of the run in progress.  For each run (:func:`plan_run`):

* complete with the same digest, seed and generations: skipped, nothing in the folder touched;
* the folder's marker (done.json, else started.json) has another digest or seed (the experiment
  was edited): rerun from scratch, after deleting done.json and evolve's outputs there;
* a checkpoint at a generation <= the requested generations: resumed (``evolve(resume=...)``),
  which is exact, so an interrupted run or a complete run given more generations ends
  byte-identical to an uninterrupted run of that length.  A checkpoint without any marker
  (written by ``python -m search.evolve --out`` into the folder) is adopted; evolve refuses it
  (exit 2) if its search settings differ;
* a checkpoint past the requested generations (fewer generations asked than done): rerun
  from scratch.

Ray.  With ``workers > 1`` the batch starts (or joins) Ray once, before the first run that is
not skipped, and shuts it down at the end if it started it; each run's evaluator finds Ray running and leaves it
alone.  Results do not depend on the worker count.

Outcome.  A progress line on stderr when a run starts and when it ends; at the end a markdown
summary of every run (skipped ones from their done.json) on stdout, also written atomically to
``<out>/summary.md`` and ``<out>/summary.json``.  A run that raises (other than InputError) is
reported as failed with its error (traceback in its folder's ``failure.txt``) and the batch goes
on; the next rerun retries it.  Exit status: 0 all runs complete, 1 some run failed, 2 bad input
(one line ``batch: error: ...``; before any run nothing is created, and an InputError from
evolve mid-batch stops the batch), 130 interrupted (rerun to resume).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from blis_evo.commands import EXIT_INPUT_ERROR as EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK
from blis_evo.flags import InputErrorParser
from simulator.errors import InputError, one_line

from .batch_jobs import Batch, Run, load_batch
from .evolve import evolve
from .checkpoint import load_checkpoint
from .parallel import ensure_ray
from .report import OUTPUT_FILES, atomic_write, improvement, objective_column

EXIT_FAILED = 1
"""Exit status when at least one job failed (the others ran)."""

DONE_FILE = "done.json"
STARTED_FILE = "started.json"
FAILURE_FILE = "failure.txt"
CHECKPOINT_FILE = "checkpoint.pkl"
MARKER_VERSION = 1
EVOLVE_OUTPUTS = OUTPUT_FILES + (CHECKPOINT_FILE,)
"""Files ``search.evolve`` writes into its output folder (deleted before a rerun from scratch)."""

REFERENCE = "llm-d-default"

RAN, RESUMED, SKIPPED, FAILED = "ran", "resumed", "skipped", "failed"


# ---------------------------------------------------------------------------------------------
# Planning a run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to do with a run folder: ``action`` is ``skip``, ``resume`` or ``fresh``; ``note``
    says why (empty for a new run); ``done`` is the done.json record of a skipped run."""

    action: str
    note: str = ""
    done: dict | None = None


def plan_run(run: Run) -> Plan:
    """Decide from the run folder's markers and checkpoint whether ``run`` is complete
    (skip), can continue from its checkpoint (resume) or must start over (fresh); see the
    module docstring.  Reads only."""
    done = _read_marker(run.folder / DONE_FILE)
    if done is not None and _same_run(done, run) and done.get("generations") == run.generations:
        return Plan("skip", "", done)
    marker = done if done is not None else _read_marker(run.folder / STARTED_FILE)
    if marker is not None and not _same_run(marker, run):
        return Plan("fresh", "experiment changed since the last run: rerun from scratch")
    checkpoint = run.folder / CHECKPOINT_FILE
    if not checkpoint.is_file():
        return Plan("fresh", "rerun from scratch" if marker is not None else "")
    gen = _checkpoint_generation(checkpoint)
    if gen is None:
        return Plan("fresh", "checkpoint unreadable: rerun from scratch")
    if gen > run.generations:
        return Plan("fresh", f"checkpoint is at generation {gen}, past the {run.generations} "
                             "requested: rerun from scratch")
    verb = "extended" if done is not None else "resumed"
    return Plan("resume", f"{verb} from generation {gen}")


def _read_marker(path: Path) -> dict | None:
    """A marker's JSON record; None if absent, ``{}`` if unreadable (matches nothing)."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _same_run(marker: dict, run: Run) -> bool:
    """Whether a marker was written for this experiment content and seed."""
    return marker.get("digest") == run.digest and marker.get("seed") == run.seed


def _checkpoint_generation(path: Path) -> int | None:
    """The generation a search checkpoint reached, or None if it cannot be read."""
    try:
        return int(load_checkpoint(str(path))["generation"])
    except (InputError, KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Executing a run
# ---------------------------------------------------------------------------------------------


def execute_run(run: Run, plan: Plan, *, workers: int, ray_address: str | None) -> dict:
    """Carry out ``plan`` for ``run`` and return its summary row.

    Skips return the done.json figures.  Otherwise done.json is removed first (an interrupted
    run never looks complete), a fresh run also deletes evolve's old outputs, started.json is
    written, evolve runs, and done.json is written atomically.  Any exception other than
    InputError (from evolve or from writing the folder) becomes a ``failed`` row with its
    traceback in failure.txt; InputError propagates (bad input).
    """
    if plan.action == "skip":
        return _row(run, SKIPPED, plan.note, plan.done)
    start = time.perf_counter()
    try:
        _prepare_folder(run, fresh=plan.action == "fresh")
        result = evolve(run.experiment, generations=run.generations, workers=workers,
                        out=run.folder, seed=run.seed, ray_address=ray_address, progress=False,
                        resume=run.folder if plan.action == "resume" else None)
        status = RESUMED if plan.action == "resume" else RAN
        record = done_record(run, result, time.perf_counter() - start, status)
        _write_json(run.folder / DONE_FILE, record)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed run must not stop the batch
        return _row(run, FAILED, _record_failure(run, exc), None)
    return _row(run, status, plan.note, record)


def _record_failure(run: Run, exc: Exception) -> str:
    """Write the traceback to ``failure.txt`` in the run folder (best effort) and return the
    one-line error for the summary."""
    line = f"{type(exc).__name__}: {one_line(exc)}"
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        atomic_write(run.folder / FAILURE_FILE, text)
        return f"{line} (traceback in {FAILURE_FILE})"
    except OSError:
        return line


def _prepare_folder(run: Run, *, fresh: bool) -> None:
    """Remove done.json and failure.txt (and evolve's outputs when ``fresh``), then write
    started.json."""
    run.folder.mkdir(parents=True, exist_ok=True)
    names = (DONE_FILE, STARTED_FILE, FAILURE_FILE) + (EVOLVE_OUTPUTS if fresh else ())
    for name in names:
        path = run.folder / name
        if path.is_file():
            path.unlink()
    _write_json(run.folder / STARTED_FILE, {"version": MARKER_VERSION, "name": run.name,
                                            "experiment": run.experiment_arg,
                                            "digest": run.digest, "seed": run.seed})


def done_record(run: Run, result, wall_time_s: float, status: str) -> dict:
    """done.json: the run's identity (digest, seed, generations: what a rerun compares) and
    the figures the batch summary shows."""
    column = objective_column(run.experiment.objectives.primary)
    return {
        "version": MARKER_VERSION,
        "name": run.name,
        "experiment": run.experiment_arg,
        "experiment_name": run.experiment.name,
        "digest": run.digest,
        "seed": run.seed,
        "generations": run.generations,
        "generations_run": int(result.state.generation),
        "stop_reason": result.state.stop_reason,
        "champion_fitness": champion_fitness(result),
        "primary": column,
        "primary_improvement": improvement(result.summaries, column, reference=REFERENCE),
        "throughput_change": improvement(result.summaries, "throughput_rps", reference=REFERENCE),
        "wall_time_s": round(wall_time_s, 3),
        "status": status,
    }


def champion_fitness(result) -> float:
    """The champion's scalar (weighted, penalised) fitness on the train seeds: the fitness of
    its train evaluation (in single-objective mode, its search fitness; under NSGA-II the
    search ranks by the objective vector instead)."""
    return float(result.train_evaluation.fitness)


def _write_json(path: Path, record) -> None:
    """Write ``record`` as indented JSON, atomically."""
    atomic_write(path, json.dumps(record, indent=2) + "\n")


def _row(run: Run, status: str, note: str, record: dict | None) -> dict:
    """A summary row: the run's identity, its status and note, and the done.json figures
    (None for a failed run)."""
    record = record or {}
    return {
        "name": run.name,
        "seed": run.seed,
        "experiment": run.experiment_arg,
        "folder": str(run.folder),
        "generations": record.get("generations_run"),
        "champion_fitness": record.get("champion_fitness"),
        "primary": record.get("primary"),
        "primary_improvement": record.get("primary_improvement"),
        "throughput_change": record.get("throughput_change"),
        "wall_time_s": record.get("wall_time_s"),
        "status": status,
        "note": note,
    }


# ---------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------


def run_batch(batch: Batch, err=None) -> list[dict]:
    """Run every run of ``batch`` in order, printing progress lines on ``err``; returns the
    summary rows.  With workers > 1, Ray is started (or joined) once, before the first run that
    is not skipped, and shut down at the end if this call started it.  Raises InputError if
    evolve rejects its input."""
    err = sys.stderr if err is None else err
    ray_ready = batch.workers == 1
    owns_ray = False
    rows = []
    try:
        total = len(batch.runs)
        for i, run in enumerate(batch.runs, 1):
            plan = plan_run(run)
            label = f"[{i}/{total}] {run.name} seed {run.seed}"
            if plan.action != "skip":
                if not ray_ready:
                    owns_ray, ray_ready = _start_ray(batch, ensure_ray), True
                _say(err, f"{label}: running {_generations(run.generations)}"
                          + (f" ({plan.note})" if plan.note else "") + f" -> {run.folder}")
            try:
                row = execute_run(run, plan, workers=batch.workers, ray_address=batch.ray_address)
            except InputError as exc:
                raise InputError(f"{run.name} seed {run.seed} ({run.folder}): "
                                 f"{one_line(exc)}") from None
            _say(err, f"{label}: {progress_text(row)}")
            rows.append(row)
    finally:
        if owns_ray:
            import ray  # lazy: only a batch that started Ray (workers > 1) loads it

            ray.shutdown()
    return rows


def _start_ray(batch: Batch, ensure_ray) -> bool:
    """Start or join Ray once for the batch; failures are bad input naming the settings."""
    try:
        return bool(ensure_ray(batch.workers, batch.ray_address))
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise InputError(f"{batch.source}: workers/ray_address: cannot start or join Ray: "
                         f"{one_line(exc)}") from None


def _generations(n: int) -> str:
    """``1 generation`` / ``n generations``."""
    return f"{n} generation" + ("" if n == 1 else "s")


def _say(err, line: str) -> None:
    """One progress line, flushed."""
    print(line, file=err, flush=True)


def progress_text(row: dict) -> str:
    """The end-of-run progress text: status, wall time and the headline figures."""
    if row["status"] == FAILED:
        return f"failed: {row['note']}"
    text = f"{row['status']}"
    if row["status"] == SKIPPED:
        text += " (complete)"
    else:
        text += f" in {row['wall_time_s']:.1f} s"
    return (f"{text}; fitness {_num(row['champion_fitness'])}, {row['primary']} "
            f"{_pct(row['primary_improvement'])} vs {REFERENCE}")


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def summary_markdown(rows: list[dict], source: str) -> str:
    """The batch summary: one row per run (status ran / resumed / skipped / failed) and, per
    name, the mean ± stdev over its completed seeds."""
    lines = [f"# Batch summary: {source}", "",
             "Held-out improvement over the llm-d default profile (positive is better); "
             "fitness is the champion's on the train seeds.", "",
             "| name | seed | generations | fitness (train) | primary objective (held-out) | "
             "throughput | wall time | status | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        primary = f"{r['primary']} {_pct(r['primary_improvement'])}" if r["primary"] else "—"
        wall = f"{r['wall_time_s']:.1f} s" if r["wall_time_s"] is not None else "—"
        cells = [r["name"], str(r["seed"]), _num(r["generations"]), _num(r["champion_fitness"]),
                 primary, _pct(r["throughput_change"]), wall, r["status"], r["note"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", _totals(rows), "", *_per_name_table(rows), ""]
    return "\n".join(lines)


def _totals(rows: list[dict]) -> str:
    """One sentence counting the runs by status."""
    counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}"
                       for s in (RAN, RESUMED, SKIPPED, FAILED))
    return f"{len(rows)} runs: {counts}."


def _per_name_table(rows: list[dict]) -> list[str]:
    """Per name: completed seeds and mean ± stdev of fitness, primary and throughput change."""
    lines = ["Per experiment (mean ± stdev over completed seeds):", "",
             "| name | seeds | fitness (train) | primary objective (held-out) | throughput |",
             "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["name"] for r in rows):
        done = [r for r in rows if r["name"] == name and r["status"] != FAILED]
        primary = done[0]["primary"] if done else None
        cells = [name, str(len(done)), _spread([r["champion_fitness"] for r in done], _num),
                 (f"{primary} " + _spread([r["primary_improvement"] for r in done], _pct))
                 if primary else "—",
                 _spread([r["throughput_change"] for r in done], _pct)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _spread(values: list, fmt) -> str:
    """``mean ± stdev`` of the non-None values, formatted with ``fmt``; ``—`` if none."""
    v = [x for x in values if x is not None]
    if not v:
        return "—"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{fmt(statistics.fmean(v))} ± {fmt(sd).lstrip('+')}"


def _num(value) -> str:
    """A number in 4 significant digits, ``—`` for None."""
    return "—" if value is None else f"{value:.4g}"


def _pct(value) -> str:
    """A signed percentage from a fraction, ``—`` for None."""
    return "—" if value is None else f"{round(value * 100, 1) + 0.0:+.1f}%"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def summary_document(rows: list[dict], batch: Batch) -> dict:
    """summary.json: the jobs file, the output root and every run's row."""
    return {"jobs_file": batch.source, "out": str(batch.out), "runs": rows}


def write_summary(batch: Batch, rows: list[dict]) -> str:
    """Write ``<out>/summary.md`` and ``<out>/summary.json`` atomically; returns the markdown."""
    text = summary_markdown(rows, batch.source)
    atomic_write(batch.out / "summary.md", text)
    _write_json(batch.out / "summary.json", summary_document(rows, batch))
    return text


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m search.batch`` (errors raise InputError)."""
    p = InputErrorParser(prog="python -m search.batch", allow_abbrev=False,
                         description="Run a list or grid of policy searches (experiments x search "
                                     "seeds) as one rerunnable job; print a summary table.")
    p.add_argument("jobs", metavar="JOBS.yaml", help="jobs file (see search/batch.py)")
    return p


def main(argv: Sequence[str] | None = None, out=None, err=None) -> int:
    """Run the batch CLI in-process; returns the exit status (0 all complete, 1 a run failed,
    2 bad input with one line ``batch: error: ...`` on stderr, 130 interrupted)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        try:
            args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        except SystemExit as exc:  # --help
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        batch = load_batch(args.jobs)
        rows = run_batch(batch, err)
        out.write(write_summary(batch, rows))
        out.flush()
    except InputError as exc:
        print(f"batch: error: {one_line(exc) or 'invalid input'}", file=err)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("batch: interrupted (rerun the same command to resume)", file=err)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(r["status"] == FAILED for r in rows) else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
