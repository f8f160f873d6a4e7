"""Accepted code policy -> numba ``cfunc`` of its kind's fixed signature, once per distinct
source in a process (keyed by the policy's content digest)."""
from __future__ import annotations

import math

from numba import cfunc

from ..kernels.codefn import ADMIT_SIG, PRIORITY_SIG, SCORE_SIG
from .sandbox import CodePolicyError

SIGNATURES = {"routing": SCORE_SIG, "admission": ADMIT_SIG, "priority": PRIORITY_SIG}
"""numba signature of each code-policy kind (every feature is float64)."""

_COMPILED: dict[str, object] = {}


def compile_policy(policy) -> object:
    """The numba cfunc of an accepted :class:`~simulator.codepolicy.CodePolicy` (memoised by
    ``policy.digest``).  IEEE semantics (``error_model="numpy"``): x/0 gives inf or NaN instead
    of raising, and the kernels count non-finite results.  Raises :class:`CodePolicyError` if
    numba cannot type the function (e.g. a variable used before it is assigned)."""
    fn = _COMPILED.get(policy.digest)
    if fn is not None:
        return fn
    namespace = {"math": math, "__builtins__": {"min": min, "max": max, "abs": abs,
                                                  "range": range, "__import__": _import_math}}
    exec(compile(policy.source, policy.path, "exec"), namespace)  # checked: only defs and imports
    py = namespace[policy.spec.function]
    try:
        fn = cfunc(SIGNATURES[policy.kind], error_model="numpy")(py)
    except Exception as exc:  # numba's typing errors are multi-line; keep the first line
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CodePolicyError(f"{policy.path}: {policy.spec.function}() does not compile: "
                              f"{first}") from None
    _COMPILED[policy.digest] = fn
    return fn


def _import_math(name, *args, **kwargs):
    """The only import an accepted policy performs (``import math``)."""
    if name != "math":
        raise ImportError(name)
    return math
