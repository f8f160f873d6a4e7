"""Routing score rule found by `python -m search.evolve --genome gp --generations 15` on the
default experiment (seed 0): prefix affinity weighted by the instance's running batch, minus
KV pressure and a little queue depth.  Held-out p99 TTFT 1.69 s vs 3.59 s for the llm-d default
profile (seeds 101-105).

DEAP tree: sub(sub(mul(batch_size, prefix_match), mul(kv_utilization, 2.0)), mul(0.1, queue_depth))
"""


def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks, prefix_match, cache_hit_rate):
    return (((batch_size * prefix_match) - (kv_utilization * 2.0)) - (0.1 * queue_depth))
