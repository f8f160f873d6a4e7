"""Weighted-routing scorers: each gives every candidate instance a score in [0, 1]; the
``weighted`` router picks the best weighted sum (kernel: ``kernels/cluster.py``
``score_dimension``).  Port of BLIS ``sim/routing_scorers.go`` @cbb0de7b."""
from simulator.kernels import policy_codes as codes

from .declare import Family, Policy

FAMILY = Family(
    key="scorer", label="scorer", default="queue-depth",
    help="a weighted-routing signal (--routing-scorers name:weight,...)",
    bundle=("routing", "scorers"), gene="scorers",
    choose="`--routing-scorers name:weight,...`",
    policies=(
        Policy("prefix-affinity", codes.SCORER_PREFIX_AFFINITY,
               "share of the prompt's 16-token blocks the router's prefix index has seen on the "
               "instance", needs=("prefix_index",)),
        Policy("queue-depth", codes.SCORER_QUEUE_DEPTH,
               "fewer queued + running + pending requests score higher (min-max normalised)"),
        Policy("kv-utilization", codes.SCORER_KV_UTILIZATION, "1 - KV-cache utilisation"),
        Policy("load-balance", codes.SCORER_LOAD_BALANCE, "1 / (1 + load)"),
    ))
