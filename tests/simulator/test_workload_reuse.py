"""A generated workload can be reused across many policy evaluations: the engine never writes
to it, and the same workload gives the same result every time."""
import numpy as np

from simulator import LatencyConfig, PolicyConfig, SimConfig, run
from simulator.workload.generator import generate_from_spec
from simulator.workload.spec import load_workload_spec

LAT = LatencyConfig(alpha=(232.46, 1.75, 3357.44), beta=(5752.7, 17.25, 6.0))


def test_workload_is_read_only_and_reusable_across_policies():
    wl = generate_from_spec(load_workload_spec("preset:mixed-slo"), horizon_us=None,
                            max_requests=300, seed=3)
    before = {k: np.copy(getattr(wl, k)) for k in ("arrival_us", "n_in", "n_out", "token_ptr", "tokens")}
    cfg = SimConfig(num_instances=3, total_kv_blocks=4000, latency=LAT)
    first = run(cfg, PolicyConfig(routing="weighted"), wl)
    for routing in ("least-loaded", "round-robin", "prefix-affinity"):
        run(cfg, PolicyConfig(routing=routing), wl)
    again = run(cfg, PolicyConfig(routing="weighted"), wl)
    for k, v in before.items():
        assert np.array_equal(getattr(wl, k), v), k
    assert np.array_equal(first.req_instance, again.req_instance)
    assert np.array_equal(first.e2e_us, again.e2e_us, equal_nan=True)
