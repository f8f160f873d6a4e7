# blis-evo routing code policy: the starting point OpenEvolve evolves.
# The router calls score(...) once per instance for every request and sends the request to the
# instance with the highest score (ties: lowest instance index).  Only the sandboxed subset of
# Python is accepted (arithmetic, comparisons, if/else, local variables, math.*, min/max/abs,
# loops over a constant range); see blis_evo docs for the feature units.
# EVOLVE-BLOCK-START
def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks, prefix_match,
          cache_hit_rate):
    load = queue_depth + batch_size + pending
    return 3.0 * prefix_match + 2.0 / (1.0 + load) + 2.0 * (1.0 - kv_utilization)
# EVOLVE-BLOCK-END
