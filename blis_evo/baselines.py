"""The reference policies: the hand-tuned baselines a searched policy must beat, and a
deliberately bad policy the tests rank below them."""
from __future__ import annotations

from simulator.config import DEFAULT_SCORERS, PolicyConfig

BASELINES: dict[str, PolicyConfig] = {
    "round-robin": PolicyConfig(routing="round-robin"),
    "least-loaded": PolicyConfig(routing="least-loaded"),
    "llm-d-default": PolicyConfig(routing="weighted", scorers=DEFAULT_SCORERS),
    "llm-d-gie-flow-control": PolicyConfig(
        routing="weighted", scorers=DEFAULT_SCORERS, flow_control="gateway",
        saturation_detector="utilization", dispatch_order="priority"),
}
"""Hand-tuned reference policies the search must beat: llm-d default = weighted 3:2:2; llm-d +
GIE flow control = the same router behind the gateway queue with the reference's flow-control
threshold defaults (utilization detector: queue depth 5, KV utilisation 0.8) and priority
bands served most urgent first (BLIS f90a1e3a; its default detector, ``never``, would pass
every request through, so the GIE's utilization check is the meaningful baseline)."""

PATHOLOGICAL = PolicyConfig(routing="always-busiest", scheduler="reverse-priority",
                            priority="slo-based")
"""A deliberately bad policy: everything to the busiest instance, youngest request first
(reverse-priority under the age-based slo-based priority; note that reverse-priority with
inverted-slo would cancel out into oldest-first).  Tests: it must rank below round-robin."""
