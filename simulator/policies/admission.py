"""Admission policies: which arriving requests enter the cluster (kernel: ``kernels/cluster.py``
``admit``).  Port of BLIS ``sim/admission.go`` @cbb0de7b, plus the SLO-tier policies of
f90a1e3a (``tier-shed``, ``gaie-legacy``; a request's tier priority: :mod:`simulator.slo`)."""
from simulator.kernels import policy_codes as codes
from simulator.kernels import layout as L

from .declare import FLOAT, INT, Family, Param, Policy

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
        Policy("tier-shed", codes.ADMIT_TIER_SHED,
               "while the most loaded instance holds more than the threshold (queued + running "
               "+ routed), admit only SLO tiers at or above the minimum priority (BLIS f90a1e3a)",
               params=(
                   Param("tier_shed_threshold", INT, 0, 0, 1_000_000, "requests",
                         "instance load above which tier-shed sheds", slot=L.P_TS_THRESH,
                         reference=False),
                   Param("tier_shed_min_priority", INT, 3, -100, 100, "SLO priority",
                         "lowest SLO priority admitted while overloaded (3 = standard)",
                         slot=L.P_TS_MINPRIO, reference=False),
               ), reference=False),
        Policy("gaie-legacy", codes.ADMIT_GAIE_LEGACY,
               "Gateway API Inference Extension legacy check: sheddable tiers are rejected "
               "while mean max(queue depth / gaie_qd_threshold, KV utilisation / "
               "gaie_kv_threshold) >= 1; other tiers always enter (BLIS f90a1e3a)",
               params=(
                   Param("gaie_qd_threshold", FLOAT, 5.0, 0.0, float("inf"), "requests",
                         "queue depth at saturation (0 = 5)", slot=L.PF_GAIE_QD,
                         reference=False),
                   Param("gaie_kv_threshold", FLOAT, 0.8, 0.0, 1.0, "fraction",
                         "KV utilisation at saturation (0 = 0.8)", slot=L.PF_GAIE_KV,
                         reference=False),
               ), reference=False),
    ))
