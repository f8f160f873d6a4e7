"""P/D deciders: which requests of a disaggregated deployment are split into a prefill and a
decode phase on different pools (kernel: ``kernels/disagg.py``).  A blis-evo extension."""
from simulator.kernels import policy_codes as codes
from simulator.kernels import layout as L

from .declare import Family, Policy

FAMILY = Family(
    key="pd-decider", label="P/D decider", default="always",
    help="which requests a disaggregated deployment splits into prefill and decode",
    flag="pd-decider", bundle=("disaggregation", "decider"), slot=L.P_PD_DECIDER,
    param_flags=False,
    policies=(
        Policy("always", codes.PD_DECIDE_ALWAYS, "every request", reference=False),
        Policy("never", codes.PD_DECIDE_NEVER, "no request (the decode pool serves whole "
               "requests)", reference=False),
        Policy("prefix-threshold", codes.PD_DECIDE_PREFIX_THRESHOLD,
               "requests whose uncached prompt exceeds --pd-prefix-threshold tokens",
               needs=("prefix_index",), reference=False),
    ))
