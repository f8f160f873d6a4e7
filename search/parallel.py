"""Fan-out of fitness evaluations: serially in-process, or over Ray workers in batches.

Evaluation is a pure function of (genome, experiment, seeds), so the results (and therefore the
whole search) are identical whatever the worker count and wherever an evaluation ran.  Identical
genomes, compared by their canonical form, are evaluated once per run (the cache travels in
checkpoints).

Ray: with a cluster to join -- ``ray_address`` (``auto`` or ``HOST:PORT``) or ``RAY_ADDRESS``
(set by ``ray job submit``) -- the evaluator always uses it; otherwise ``workers == 1`` never
touches Ray and ``workers > 1`` starts a local runtime with that many CPUs.  Genomes go out in
batches as tasks that Ray re-runs on another worker if their worker process or node dies
(``max_retries``); a batch holds about :data:`TARGET_TASK_SECONDS` of work once evaluations
have been timed (:func:`batch_size`).  A genome whose simulation raises is not a transient
failure: the task catches it, the genome gets the worst fitness and the failure is reported
with the genome; nothing is retried (except ``MemoryError`` / ``OSError``, which are the
machine's problem and fail the task).  Each worker process loads the numba kernels once, not
once per task; the driver compiles them into the cache first, and a local runtime's workers
inherit its ``NUMBA_CACHE_DIR``.
"""
from __future__ import annotations

import math
import os
import time
import traceback
from typing import Callable, Sequence

import simulator
from simulator.errors import InputError, one_line

from .evaluate import evaluate, failed_evaluation

TASK_MAX_RETRIES = 5
"""Times Ray re-runs a batch whose worker process or node died (system failures only)."""
BATCHES_PER_CPU = 4
"""Before any evaluation has been timed: about this many batches per CPU per call."""
TARGET_TASK_SECONDS = 0.25
"""Once evaluations have been timed, batches hold just enough genomes to take about this long
(a Ray round trip costs a few ms), so heavy evaluations go out one by one and balance well over
the workers, while light ones are grouped to amortise the per-task overhead."""

_worker_warm = False


def _warm_worker() -> None:
    """Once per worker process: load (or compile) the numba kernels."""
    global _worker_warm
    if _worker_warm:
        return
    simulator.warmup()
    _worker_warm = True


def _evaluate_many(genomes: Sequence[Sequence[float]], space, experiment, seeds) -> list:
    """Decode (``space.phenotype``) and evaluate a batch of genomes (runs on a worker); returns
    Evaluation objects.

    A genome whose evaluation raises gets :func:`search.evaluate.failed_evaluation` carrying
    the error, so one bad genome neither kills its batch nor gets retried.
    """
    out = []
    for g in genomes:
        try:
            out.append(evaluate(space.phenotype(g), experiment, seeds))
        except (MemoryError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the genome, penalised
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            out.append(failed_evaluation(experiment, list(g), detail))
    return out


def _batch_task(genomes, space, experiment, seeds):
    """Ray task body: warm this worker once, then evaluate the batch; returns the evaluations
    and the seconds they took (for the driver's batch sizing)."""
    _warm_worker()
    start = time.perf_counter()
    results = _evaluate_many(genomes, space, experiment, seeds)
    return results, time.perf_counter() - start


def ray_address_from_env(ray_address: str | None) -> str | None:
    """The cluster to join: ``ray_address`` if given, else ``RAY_ADDRESS`` (set for drivers
    started by ``ray job submit``), else None (start a local runtime)."""
    return ray_address or os.environ.get("RAY_ADDRESS") or None


def ensure_ray(workers: int, ray_address: str | None = None) -> bool:
    """Connect to Ray unless already connected; returns True if this call started the
    connection (the caller then owns it and shuts it down).

    Joins ``ray_address`` / ``RAY_ADDRESS`` when set, else starts a local runtime with
    ``workers`` CPUs whose workers get this process's ``NUMBA_CACHE_DIR``.  Driver-side logs
    from workers are not forwarded (they would interleave with the progress bar).  Raises
    InputError naming ``--ray-address`` when the cluster cannot be reached.
    """
    import ray  # lazy: Ray loads only for parallel or cluster runs (serial ones never touch it)

    if ray.is_initialized():
        return False
    address = ray_address_from_env(ray_address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            env = {k: os.environ[k] for k in ("NUMBA_CACHE_DIR",) if k in os.environ}
            # address="local": start our own runtime even if another one runs on this machine
            ray.init(address="local", num_cpus=int(workers), include_dashboard=False,
                     log_to_driver=False, runtime_env={"env_vars": env} if env else None)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise InputError(f"--ray-address: cannot start or join Ray at {address or 'a local runtime'}: "
                         f"{one_line(exc)}") from None
    return True


def batch_size(n: int, cpus: int, seconds_per_eval: float | None) -> int:
    """Genomes per Ray task for ``n`` pending genomes on ``cpus`` CPUs: about
    :data:`TARGET_TASK_SECONDS` of work once the evaluation time is known (else
    :data:`BATCHES_PER_CPU` batches per CPU), never so large that a CPU would sit idle."""
    most = max(1, math.ceil(n / cpus))
    if seconds_per_eval is None or seconds_per_eval <= 0:
        return max(1, math.ceil(n / (BATCHES_PER_CPU * cpus)))
    return max(1, min(most, math.ceil(TARGET_TASK_SECONDS / seconds_per_eval)))


class Evaluator:
    """Callable ``evaluate_batch(genomes) -> list of Evaluation`` with a canonical-genome cache.

    ``workers == 1`` without a cluster address evaluates in this process without Ray
    (``use_ray=True`` forces a one-worker Ray runtime, for measurements).  Otherwise see the
    module docstring.  ``on_failure(genome, error)`` is called once per genome whose simulation
    raised.
    """

    def __init__(self, space, experiment, seeds, *, workers: int = 1, ray_address: str | None = None,
                 cache: dict | None = None, on_failure: Callable[[list, str], None] | None = None,
                 use_ray: bool | None = None):
        self.space = space
        self.experiment = experiment
        self.seeds = tuple(seeds)
        self.workers = max(1, int(workers))
        if use_ray is None:
            use_ray = self.workers > 1 or bool(ray_address_from_env(ray_address))
        self.use_ray = bool(use_ray)
        self.ray_address = ray_address
        self.cache: dict = cache if cache is not None else {}
        self.on_failure = on_failure
        self._remote: Callable | None = None
        self._owns_ray = False
        self._refs: tuple | None = None
        self._seconds_per_eval: float | None = None

    def _ray_remote(self):
        if self._remote is None:
            import ray  # lazy: as in ensure_ray

            simulator.warmup()  # compile once here, so workers only load the cached kernels
            self._owns_ray = ensure_ray(self.workers, self.ray_address)
            self._remote = ray.remote(max_retries=TASK_MAX_RETRIES, retry_exceptions=False)(_batch_task)
            self._refs = (ray.put(self.space), ray.put(self.experiment))
        return self._remote

    def _cluster_cpus(self) -> int:
        import ray  # lazy: as in ensure_ray

        try:
            return max(1, int(ray.cluster_resources().get("CPU", self.workers)))
        except Exception:  # noqa: BLE001 - resource query is advisory only
            return self.workers

    def __call__(self, genomes: Sequence[Sequence[float]]) -> list:
        """Evaluate ``genomes`` (in order), reusing cached results for identical genomes."""
        keys = [self.space.canonical(g) for g in genomes]
        todo: dict = {}
        for k, g in zip(keys, genomes):
            if k not in self.cache and k not in todo:
                todo[k] = list(g)
        if todo:
            pending_keys = list(todo)
            pending = [todo[k] for k in pending_keys]
            if not self.use_ray:
                results = _evaluate_many(pending, self.space, self.experiment, self.seeds)
            else:
                results = self._evaluate_on_ray(pending)
            for k, g, ev in zip(pending_keys, pending, results):
                self.cache[k] = ev
                if ev.error is not None and self.on_failure:
                    self.on_failure(g, ev.error)
        return [self.cache[k] for k in keys]

    def _evaluate_on_ray(self, pending: list) -> list:
        import ray  # lazy: as in ensure_ray

        remote = self._ray_remote()
        space_ref, exp_ref = self._refs
        cpus = self._cluster_cpus() if self.ray_address or os.environ.get("RAY_ADDRESS") else self.workers
        size = batch_size(len(pending), cpus, self._seconds_per_eval)
        futures = [remote.remote(pending[i:i + size], space_ref, exp_ref, self.seeds)
                   for i in range(0, len(pending), size)]
        chunks = ray.get(futures)
        self._seconds_per_eval = sum(t for _, t in chunks) / len(pending)
        return [ev for evs, _ in chunks for ev in evs]

    def close(self) -> None:
        """Shut down the Ray runtime if this evaluator started it (no-op when serial)."""
        if self._owns_ray:
            import ray  # lazy: as in ensure_ray

            if ray.is_initialized():
                ray.shutdown()
        self._owns_ray = False
        self._remote = None
        self._refs = None
