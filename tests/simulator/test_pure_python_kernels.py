"""The kernels stay debuggable: with NUMBA_DISABLE_JIT=1 they run as plain Python and must give
exactly the compiled result (same events, same tie-breaks, same floats)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import dataclasses, json, sys
import numpy as np
from simulator import run, SimConfig, PolicyConfig, LatencyConfig, ScorerSpec
from simulator.workload.types import workload_from_lists

rng = np.random.default_rng(7)
arr, ins, outs = [], [], []
t = 0
for i in range(30):
    t += int(rng.integers(0, 20000))
    arr.append(t)
    ins.append(rng.integers(0, 4, int(rng.integers(1, 120))).tolist())
    outs.append(rng.integers(0, 4, int(rng.integers(0, 30))).tolist())
wl = workload_from_lists(arr, ins, outs)
cfg = SimConfig(num_instances=3, total_kv_blocks=40, block_size=8, max_running_reqs=4,
                max_scheduled_tokens=96, long_prefill_token_threshold=32, kv_cpu_blocks=10,
                kv_offload_threshold=0.5, trace_decisions=True, counterfactual_k=2,
                latency=LatencyConfig(alpha=(100.0, 1.0, 50.0), beta=(1000.0, 2.0, 5.0)))
pol = PolicyConfig(routing="weighted", scheduler="priority-fcfs", priority="slo-based",
                   scorers=(ScorerSpec("prefix-affinity", 2.0), ScorerSpec("queue-depth", 1.0),
                            ScorerSpec("load-balance", 1.0)))
from simulator.config import DisaggConfig
pd_cfg = dataclasses.replace(cfg, num_instances=4, disaggregation=DisaggConfig(
    prefill_replicas=2, decode_replicas=2, decider="prefix-threshold", prefix_threshold=24,
    granularity="block", pipelining=True, bandwidth_gbps=0.5, base_latency_us=300,
    decode_scorers=(ScorerSpec("queue-depth", 1.0),)))
out = {}
for key, c in (("monolithic", cfg), ("disaggregated", pd_cfg)):
    res = run(c, pol, wl)
    for name in ("req_state", "req_instance", "ttft_us", "e2e_us", "sched_delay_us",
                 "preemptions", "inst_completed", "inst_preemptions", "inst_cache_hit_rate",
                 "itl_values_us", "itl_counts", "route_target", "route_regret"):
        v = getattr(res, name)
        out[key + "." + name] = [None if (isinstance(x, float) and x != x) else x
                                 for x in v.tolist()]
print(json.dumps(out))
"""


def _run(disable_jit: bool) -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    if disable_jit:
        env["NUMBA_DISABLE_JIT"] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pure_python_kernels_match_compiled_kernels():
    compiled = _run(False)
    interpreted = _run(True)
    assert interpreted == compiled
    assert sum(compiled["monolithic.inst_completed"]) > 0
    assert sum(compiled["disaggregated.inst_completed"]) > 0
