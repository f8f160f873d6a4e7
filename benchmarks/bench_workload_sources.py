"""Workload-source load and generation times (not a test).

Times the two workload sources whose speed the tests used to assert:

* loading a 20,000-row gzipped reference CSV trace (100 input + 20 output token ids per row),
  the trace of ``tests/simulator/test_workload_sources.py::test_large_trace_loads_every_row``;
* generating 100,000 requests of a GuideLLM-style distribution (prompt/output 256 +- 100,
  32-token shared prefix), the workload of ``test_distribution_100k_requests``.

Prints the median of ``--repeats`` runs of each (after one warm-up call, so numba compilation
is not counted).  Workload-spec generation is timed by ``bench_spec_generation.py``.

    python benchmarks/bench_workload_sources.py [--rows 20000] [--requests 100000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

HEADER = "arrival_time,request_id,model,prefill_tokens,decode_tokens\n"


def write_trace(path: Path, rows: int) -> None:
    """A gzipped trace of ``rows`` requests, 100 input and 20 output ids each, 10 ms apart."""
    from simulator.workload.distribution import MAX_TOKEN_ID

    rng = np.random.default_rng(1)
    ins = rng.integers(0, MAX_TOKEN_ID, size=(rows, 100))
    outs = rng.integers(0, MAX_TOKEN_ID, size=(rows, 20))
    lines = [f'{i * 0.01:.6f},r{i},m,"[{",".join(map(str, a))}]","[{",".join(map(str, b))}]"'
             for i, (a, b) in enumerate(zip(ins, outs))]
    path.write_bytes(gzip.compress((HEADER + "\n".join(lines) + "\n").encode(), compresslevel=1))


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    """Time the trace load and the distribution generation."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    from simulator.workload.csv_trace import load_trace_csv
    from simulator.workload.distribution import generate_distribution

    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "big.csv.gz"
        write_trace(trace, a.rows)
        load = median_seconds(lambda: load_trace_csv(trace, 2**63 - 1), a.repeats)

    def gen():
        return generate_distribution(
            rate_per_s=10.0, num_requests=a.requests, horizon_us=2**63 - 1, prefix_tokens=32,
            prompt_mean=256, prompt_std=100, prompt_min=2, prompt_max=7000,
            output_mean=256, output_std=100, output_min=2, output_max=7000,
            rng=np.random.default_rng(0))

    dist = median_seconds(gen, a.repeats)
    print(f"trace CSV load, {a.rows} rows: {load:.3f} s; distribution, {a.requests} requests: "
          f"{dist:.3f} s (median of {a.repeats})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
