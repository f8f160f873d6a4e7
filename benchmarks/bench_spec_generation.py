"""Workload-spec generation time vs simulation time (not a test).

Generates 100,000 requests of the servegen-language example spec and simulates them on 4
instances (weighted routing, llama-3.1-8b / H100 defaults); prints the median of 3 runs of each.

    python benchmarks/bench_spec_generation.py [--requests 100000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Time generation and simulation of the same spec workload."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    import simulator
    from simulator.config import PolicyConfig, SimConfig
    from simulator.latency import resolve_latency
    from simulator.workload.generator import generate_from_spec
    from simulator.workload.spec import load_workload_spec

    lat = resolve_latency(model="meta-llama/llama-3.1-8b-instruct", hardware="H100", tp=1)
    spec = load_workload_spec(ROOT / "blis_evo" / "data" / "examples" / "servegen-language.yaml")
    cfg = SimConfig(num_instances=4, latency=lat.config, total_kv_blocks=lat.total_kv_blocks)
    simulator.warmup()
    generate_from_spec(spec, horizon_us=2**63 - 1, max_requests=100, seed=None)
    gen, sim = [], []
    for _ in range(a.repeats):
        t = time.perf_counter()
        wl = generate_from_spec(spec, horizon_us=2**63 - 1, max_requests=a.requests, seed=None)
        t1 = time.perf_counter()
        simulator.run(cfg, PolicyConfig(routing="weighted"), wl)
        gen.append(t1 - t)
        sim.append(time.perf_counter() - t1)
    print(f"{wl.num_requests} requests: generation {statistics.median(gen):.3f} s, "
          f"simulation {statistics.median(sim):.3f} s (median of {a.repeats})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
