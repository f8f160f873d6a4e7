"""Fan-out of fitness evaluations: serially in-process, or over Ray workers in batches.

Evaluation is a pure function of (genome, experiment, seeds), so the results (and therefore the
whole search) are identical whatever the worker count.  Identical genomes, compared by their
canonical form, are evaluated once per run (the cache travels in checkpoints).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

FitnessTuple = tuple


def _evaluate_many(genomes: Sequence[Sequence[float]], space, experiment, seeds) -> list:
    """Decode and evaluate a batch of genomes (runs on a worker); returns Evaluation objects."""
    from .evaluate import evaluate
    from .genome import decode_sim_params

    return [evaluate(space.decode(g), experiment, seeds, decode_sim_params(space, g))
            for g in genomes]


class Evaluator:
    """Callable ``evaluate_batch(genomes) -> list of Evaluation`` with a canonical-genome cache.

    ``workers == 1`` evaluates in this process without Ray.  Otherwise a local Ray runtime is
    started (or ``ray_address`` joined) and the batch is split into about ``4 * workers`` chunks
    so per-task overhead stays small next to the simulations.
    """

    def __init__(self, space, experiment, seeds, *, workers: int = 1, ray_address: str | None = None,
                 cache: dict | None = None):
        self.space = space
        self.experiment = experiment
        self.seeds = tuple(seeds)
        self.workers = max(1, int(workers))
        self.ray_address = ray_address
        self.cache: dict = cache if cache is not None else {}
        self._remote: Callable | None = None

    def _ray_remote(self):
        if self._remote is None:
            import ray

            if not ray.is_initialized():
                if self.ray_address:
                    ray.init(address=self.ray_address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)

            @ray.remote
            def batch(genomes, space, experiment, seeds):
                import simulator

                simulator.warmup()
                return _evaluate_many(genomes, space, experiment, seeds)

            self._remote = batch
        return self._remote

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
            if self.workers == 1:
                results = _evaluate_many(pending, self.space, self.experiment, self.seeds)
            else:
                import ray

                remote = self._ray_remote()
                size = max(1, math.ceil(len(pending) / (4 * self.workers)))
                exp_ref = ray.put(self.experiment)
                space_ref = ray.put(self.space)
                futures = [remote.remote(pending[i:i + size], space_ref, exp_ref, self.seeds)
                           for i in range(0, len(pending), size)]
                results = [ev for chunk in ray.get(futures) for ev in chunk]
            for k, ev in zip(pending_keys, results):
                self.cache[k] = ev
        return [self.cache[k] for k in keys]

    def close(self) -> None:
        """Shut down the Ray runtime this evaluator started (no-op when serial)."""
        if self._remote is not None and not self.ray_address:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        self._remote = None
