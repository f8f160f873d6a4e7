"""Admission policies: which arriving requests enter the cluster (kernel: ``kernels/cluster.py``
``admit``).  Port of BLIS ``sim/admission.go`` @cbb0de7b."""
from simulator.kernels import policy_codes as codes
from simulator.kernels import layout as L

from .declare import FLOAT, Family, Param, Policy

FAMILY = Family(
    key="admission", label="admission policy", default="always-admit",
    help="which arriving requests the cluster admits",
    flag="admission-policy", bundle=("admission", "policy"), gene="admission",
    slot=L.P_ADMISSION, code_policy=codes.ADMIT_CODE,
    policies=(
        Policy("always-admit", codes.ADMIT_ALWAYS, "admit every request"),
        Policy("token-bucket", codes.ADMIT_TOKEN_BUCKET,
               "admit while the bucket holds the request's input tokens; the bucket refills "
               "at a constant rate up to its capacity",
               params=(
                   Param("token_bucket_capacity", FLOAT, 10000.0, 0.0, float("inf"), "tokens",
                         "token-bucket capacity", slot=L.PF_TB_CAP),
                   Param("token_bucket_refill_rate", FLOAT, 1000.0, 0.0, float("inf"),
                         "tokens/s", "token-bucket refill rate", slot=L.PF_TB_RATE),
               )),
        Policy("reject-all", codes.ADMIT_REJECT_ALL, "reject every request (pathological)"),
    ))
