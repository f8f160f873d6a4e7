"""Fixed numba signatures of code policies and the built-in stand-ins the base path carries.

A code policy (``simulator.codepolicy``) is compiled to a ``numba.cfunc`` of one of these
signatures; the kernels receive it through a ``KernelState`` field typed
``numba.types.FunctionType(signature)`` and call it indirectly.  The field's type depends only on
the signature, never on the function, so one compiled (and disk-cached) event loop serves every
code policy and the built-in policies alike: runs without a code policy carry the stand-ins
below, which the kernels never call.

Every feature is passed as float64 (counts included), in the order of
``simulator.codepolicy.features.FEATURES``.
"""
from numba import cfunc, types

SCORE_SIG = types.float64(*([types.float64] * 9))
"""score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks, prefix_match,
cache_hit_rate, slo_priority, tenant_share) -> float64."""
ADMIT_SIG = types.boolean(*([types.float64] * 8))
"""admit(input_tokens, queue_depth, batch_size, pending, kv_utilization, num_instances,
slo_priority, tenant_share) -> bool."""
PRIORITY_SIG = types.float64(*([types.float64] * 8))
"""priority(age, input_tokens, preemptions, queue_depth, batch_size, kv_utilization,
slo_priority, tenant_share) -> float64."""


@cfunc(SCORE_SIG, cache=True)
def no_score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks, prefix_match,
             cache_hit_rate, slo_priority, tenant_share):
    """Stand-in score of runs without a routing code policy (never called)."""
    return 0.0


@cfunc(ADMIT_SIG, cache=True)
def no_admit(input_tokens, queue_depth, batch_size, pending, kv_utilization, num_instances,
             slo_priority, tenant_share):
    """Stand-in admission of runs without an admission code policy (never called)."""
    return True


@cfunc(PRIORITY_SIG, cache=True)
def no_priority(age, input_tokens, preemptions, queue_depth, batch_size, kv_utilization,
                slo_priority, tenant_share):
    """Stand-in priority of runs without a priority code policy (never called)."""
    return 0.0
