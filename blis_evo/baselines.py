"""The reference policies: the hand-tuned baselines a searched policy must beat, and a
deliberately bad policy the tests rank below them."""
from __future__ import annotations

from simulator.config import DEFAULT_SCORERS, PolicyConfig

BASELINES: dict[str, PolicyConfig] = {
    "round-robin": PolicyConfig(routing="round-robin"),
    "least-loaded": PolicyConfig(routing="least-loaded"),
    "llm-d-default": PolicyConfig(routing="weighted", scorers=DEFAULT_SCORERS),
}
"""Hand-tuned reference policies the search must beat (llm-d default = weighted 3:2:2)."""

PATHOLOGICAL = PolicyConfig(routing="always-busiest", scheduler="reverse-priority",
                            priority="slo-based")
"""A deliberately bad policy: everything to the busiest instance, youngest request first
(reverse-priority under the age-based slo-based priority; note that reverse-priority with
inverted-slo would cancel out into oldest-first).  Tests: it must rank below round-robin."""
