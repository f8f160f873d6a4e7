"""Autoscaling: policies (policies.py), configuration (config.py) and the run controller
(controller.py); the instance lifecycle itself lives in simulator/kernels/autoscale.py."""
from .config import AutoscalerConfig, DelaySpec, parse_autoscaler
from .policies import POLICIES, AutoscaleContext, ScaleDecision

__all__ = ["AutoscalerConfig", "DelaySpec", "parse_autoscaler", "POLICIES", "AutoscaleContext",
           "ScaleDecision"]
