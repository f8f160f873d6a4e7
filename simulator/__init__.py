"""blis-evo simulation engine: a numba port of the BLIS cluster simulator (cbb0de7b).

The only entry points: ``run(cfg, policy, workload) -> SimResult`` and ``warmup()``.
"""
from .config import LatencyConfig, PolicyConfig, ScorerSpec, SimConfig
from .engine import run, warmup
from .result import SimResult
from .workload.types import Workload

__all__ = ["run", "warmup", "SimConfig", "PolicyConfig", "LatencyConfig", "ScorerSpec",
           "SimResult", "Workload"]
