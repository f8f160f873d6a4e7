"""Search evaluation throughput: serial vs Ray with 1, 2, ... workers (not a test).

Evaluates the same set of distinct random genomes of the default experiment (each genome = one
simulation per train seed) with ``search.parallel.Evaluator`` serially (no Ray) and over a local
Ray runtime with each worker count; prints evaluations per second (median of ``--repeats``
rounds, each round a fresh set of genomes so the evaluation cache never answers), the parallel
efficiency ``rate(n) / (n * rate(serial))`` and the Ray per-task overhead (round trip of an
empty batch task).  Ray start-up and the per-worker kernel load are reported separately and are
not in the rates.

    python benchmarks/bench_search_scaling.py [--workers 1 2] [--genomes 48] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def _genomes(space, n: int, seed: int) -> list:
    """``n`` random genomes with distinct canonical forms (fresh work for the evaluator)."""
    rng = np.random.default_rng(seed)  # the same seed gives the same genomes in every mode
    out, seen = [], set()
    while len(out) < n:
        g = space.random_genome(rng)
        k = space.canonical(g)
        if k not in seen:
            seen.add(k)
            out.append(g)
    return out


def _rate(evaluator, space, n: int, repeats: int, seed0: int) -> tuple[float, list[float]]:
    times = []
    for r in range(repeats):
        batch = _genomes(space, n, seed0 + r)
        t = time.perf_counter()
        evaluator(batch)
        times.append(time.perf_counter() - t)
    return n / statistics.median(times), times


def _task_overhead(evaluator, calls: int = 50) -> float:
    """Median seconds of a Ray round trip for an empty evaluation batch."""
    import ray

    remote = evaluator._ray_remote()
    space_ref, exp_ref = evaluator._refs
    ray.get(remote.remote([], space_ref, exp_ref, evaluator.seeds))
    ts = []  # an empty batch: the cost of a task round trip alone
    for _ in range(calls):
        t = time.perf_counter()
        ray.get(remote.remote([], space_ref, exp_ref, evaluator.seeds))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> int:
    """Measure and print the scaling table (and write it as JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--genomes", type=int, default=48, help="distinct genomes per round")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()

    import simulator
    from blis_evo.experiment import default_experiment
    from search.genome import GeneSpace
    from search.parallel import Evaluator

    exp = default_experiment()
    space = GeneSpace(exp.search_space)
    seeds = exp.seeds.train
    simulator.warmup()
    serial = Evaluator(space, exp, seeds, workers=1)
    serial(_genomes(space, 2, 999))  # workload generation for every seed, outside the timing
    base, base_times = _rate(serial, space, a.genomes, a.repeats, 0)
    rows = [{"mode": "serial (no Ray)", "workers": 1, "evals_per_s": base, "efficiency": 1.0,
             "round_times_s": base_times}]
    print(f"default experiment: {len(seeds)} train seeds x {exp.workload.num_requests} requests per "
          f"evaluation; {a.genomes} distinct genomes per round, median of {a.repeats} rounds")
    print("efficiency = rate / (workers x serial rate); vs ray-1 = rate / (workers x 1-worker Ray rate)")
    print(f"{'mode':<16} {'workers':>7} {'evals/s':>8} {'efficiency':>10} {'vs ray-1':>8} "
          f"{'startup s':>9} {'task overhead ms':>16}")
    print(f"{'serial (no Ray)':<16} {1:>7} {base:>8.2f} {1.0:>10.0%} {'-':>8} {'-':>9} {'-':>16}")
    ray1 = None
    for n in a.workers:
        ev = Evaluator(space, exp, seeds, workers=n, use_ray=True)
        t = time.perf_counter()
        ev(_genomes(space, 2 * n, 500 + n))  # Ray start, object store puts, worker warm-up
        startup = time.perf_counter() - t
        rate, times = _rate(ev, space, a.genomes, a.repeats, 0)  # the serial rounds' genomes
        overhead = _task_overhead(ev)
        ev.close()
        eff = rate / (n * base)
        ray1 = rate if n == 1 else ray1
        vs1 = rate / (n * ray1) if ray1 else float("nan")
        rows.append({"mode": "ray", "workers": n, "evals_per_s": rate, "efficiency": eff,
                     "efficiency_vs_ray1": vs1, "startup_s": startup,
                     "task_overhead_ms": overhead * 1e3, "round_times_s": times})
        print(f"{'ray':<16} {n:>7} {rate:>8.2f} {eff:>10.0%} {vs1:>8.0%} {startup:>9.1f} "
              f"{overhead * 1e3:>16.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
