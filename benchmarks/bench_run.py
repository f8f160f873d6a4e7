"""Speed and memory harness for the simulator (not a test).

Cases (distribution workload, llama-3.1-8b on H100/tp1 with defaults.yaml coefficients,
512±256 input / 256±128 output tokens, 15 req/s per instance):

    1k-1     1,000 requests, 1 instance, round-robin
    10k-4    10,000 requests, 4 instances, weighted (default scorers)
    100k-16  100,000 requests, 16 instances, weighted (default scorers)
    10k-4-qd    10,000 requests, 4 instances, weighted queue-depth:1 only      (not run by default)
    10k-4-code  the same routed by a code policy, -(queue_depth + batch_size + pending), or the
                ``--code-policy FILE`` score(): identical decisions, so the two time the cost
                of calling compiled user code against the built-in scorer    (not run by default)
    10k-4-gw    10k-4 behind the gateway queue of the "llm-d + GIE flow control" baseline
                (utilization detector, priority order): the cost of flow control (not by default)

Each case runs in its own process (so peak RSS is per case): the JIT cache is loaded first with
``simulator.warmup()``, then workload generation + simulation is timed ``--repeats`` times and the
median reported, as ``blis run --log info`` times it.  ``--cold`` also measures the whole
``blis run`` command with a warm cache and the JIT compile time with an empty cache.

    python benchmarks/bench_run.py [--cases 1k-1,10k-4] [--repeats 5] [--cold] [--json out.json]
    python benchmarks/bench_run.py --cases 10k-4-qd,10k-4-code [--code-policy FILE]
    python benchmarks/bench_run.py --cases 10k-4 --latency-model trained-physics

``--latency-model trained-physics`` times the same cases with the trained-physics step time
(same model, GPU, TP and KV block count as the blackbox cases).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "1k-1": (1_000, 1, "round-robin"),
    "10k-4": (10_000, 4, "weighted"),
    "100k-16": (100_000, 16, "weighted"),
    "10k-4-qd": (10_000, 4, "queue-depth"),
    "10k-4-code": (10_000, 4, "code"),
    "10k-4-gw": (10_000, 4, "gateway"),
}
DEFAULT_CASES = ("1k-1", "10k-4", "100k-16")
QUEUE_DEPTH_CODE = ("def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks,"
                    " prefix_match, cache_hit_rate):\n    return -(queue_depth + batch_size + pending)\n")
MODEL = "meta-llama/llama-3.1-8b-instruct"


def _policy(routing: str, code_path: str):
    """The PolicyConfig of a case's routing column."""
    from simulator.codepolicy import load_code_policy, load_code_policy_file
    from simulator.config import PolicyConfig, ScorerSpec

    if routing == "queue-depth":
        return PolicyConfig(routing="weighted", scorers=(ScorerSpec("queue-depth", 1.0),))
    if routing == "gateway":
        from blis_evo.baselines import BASELINES
        return BASELINES["llm-d-gie-flow-control"]
    if routing == "code":
        code = (load_code_policy_file(code_path, "routing") if code_path
                else load_code_policy(QUEUE_DEPTH_CODE, "routing"))
        return PolicyConfig(routing="code", routing_code=code)
    return PolicyConfig(routing=routing)


def _one_case(name: str, repeats: int, code_path: str = "", latency_model: str = "blackbox") -> dict:
    """Time one case in this process; returns the figures as a dict."""
    import dataclasses

    import numpy as np

    import simulator
    from simulator.config import SimConfig
    from simulator.latency import resolve_latency
    from simulator.workload.distribution import generate_distribution

    n, inst, routing = CASES[name]
    lat = resolve_latency(model=MODEL, hardware="H100", tp=1)
    kv_blocks = lat.total_kv_blocks or 1_000_000
    if latency_model != "blackbox":
        lat = resolve_latency(model=MODEL, hardware="H100", tp=1, latency_model=latency_model)
    cfg = SimConfig(num_instances=inst, latency=lat.config, total_kv_blocks=kv_blocks)
    t0 = time.perf_counter()
    simulator.warmup()
    policy = _policy(routing, code_path)  # compiles a code policy outside the timed region
    jit_load = time.perf_counter() - t0
    times = []
    completed = 0
    for k in range(repeats):
        t = time.perf_counter()
        wl = generate_distribution(
            rate_per_s=15.0 * inst, num_requests=n, horizon_us=2**63 - 1, prefix_tokens=0,
            prompt_mean=512, prompt_std=256, prompt_min=2, prompt_max=7000,
            output_mean=256, output_std=128, output_min=2, output_max=7000,
            rng=np.random.default_rng(np.random.SeedSequence(42).spawn(1)[0]))
        res = simulator.run(dataclasses.replace(cfg), policy, wl)
        times.append(time.perf_counter() - t)
        completed = int(res.inst_completed.sum())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"case": name, "latency_model": latency_model, "requests": n, "instances": inst,
            "routing": routing,
            "median_s": statistics.median(times), "min_s": min(times), "runs": times,
            "completed": completed, "peak_rss_mb": peak_mb, "jit_load_s": jit_load}


def _run_child(name: str, repeats: int, env: dict, code_path: str = "",
               latency_model: str = "blackbox") -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, "--repeats", str(repeats),
                          "--code-policy", code_path, "--latency-model", latency_model],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _blis_cmd(n: int) -> list[str]:
    return [sys.executable, "-m", "blis_evo", "run", "--model", MODEL, "--hardware", "H100",
            "--tp", "1", "--num-requests", str(n), "--rate", "15", "--prompt-tokens", "512",
            "--prompt-tokens-stdev", "256", "--output-tokens", "256", "--output-tokens-stdev", "128"]


def _cold_figures(env: dict) -> dict:
    """Whole-command time with a warm cache, and compile time with an empty cache."""
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(_blis_cmd(1000), capture_output=True, env=env, cwd=ROOT, check=True)
        runs.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as empty:
        env2 = dict(env, NUMBA_CACHE_DIR=empty)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import simulator; simulator.warmup()"],
                       env=env2, cwd=ROOT, check=True)
        compile_s = time.perf_counter() - t
    return {"blis_run_1k_warm_cache_s": statistics.median(runs), "jit_compile_empty_cache_s": compile_s}


def main() -> int:
    """Run the selected cases and print a table (and optionally JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"any of {', '.join(CASES)}")
    ap.add_argument("--code-policy", default="", help="score() file for the 10k-4-code case")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latency-model", default="blackbox", choices=("blackbox", "trained-physics"),
                    help="step-time model of the cases (default blackbox)")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_one_case(a.child, a.repeats, a.code_policy, a.latency_model)))
        return 0
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    results = {"cases": [], "machine": {"cpus": os.cpu_count()}}
    print(f"{'case':<10} {'median s':>9} {'min s':>8} {'peak RSS MB':>12} {'completed':>10}")
    for name in a.cases.split(","):
        r = _run_child(name, a.repeats, env, a.code_policy, a.latency_model)
        results["cases"].append(r)
        print(f"{name:<10} {r['median_s']:9.3f} {r['min_s']:8.3f} {r['peak_rss_mb']:12.0f} {r['completed']:10d}")
    if a.cold:
        results["cold"] = _cold_figures(env)
        for k, v in results["cold"].items():
            print(f"{k}: {v:.2f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
