"""Replica lifecycle choices of the autoscaler: how a replica drains on scale-down and how its
warmup penalty decays (kernels: ``kernels/autoscale.py``, ``kernels/warmup.py``).  blis-evo
extensions."""
from simulator.kernels import autoscale as lc, warmup as wu
from simulator.kernels import layout as L

from .declare import Family, Policy

DRAIN = Family(
    key="drain", label="drain policy", default="wait",
    help="what a replica chosen for scale-down does with the requests it holds",
    flag="drain-policy", bundle=("autoscaler", "drain_policy"), slot=L.P_DRAIN,
    policies=(
        Policy("wait", lc.DRAIN_WAIT, "finish queued and running requests", reference=False),
        Policy("immediate", lc.DRAIN_IMMEDIATE, "queued and running requests go back to the "
               "router (progress reset, KV freed)", reference=False),
        Policy("redirect", lc.DRAIN_REDIRECT, "queued requests go back to the router, "
               "running ones finish", reference=False),
    ))

WARMUP = Family(
    key="warmup-profile", label="warmup profile", default="linear",
    help="how a new replica's step-time penalty decays to 1 over its warmup",
    flag="warmup-profile", bundle=("autoscaler", "warmup_profile"), slot=L.P_WARM_PROFILE,
    policies=(
        Policy("linear", wu.WARM_LINEAR, "linear decay", reference=False),
        Policy("exponential", wu.WARM_EXPONENTIAL, "exponential decay", reference=False),
        Policy("step", wu.WARM_STEP, "full penalty until the warmup ends", reference=False),
    ))
