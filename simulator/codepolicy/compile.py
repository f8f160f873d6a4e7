"""Accepted code policy -> numba ``cfunc`` of its kind's fixed signature, once per distinct
source in a process (keyed by the policy's content digest)."""
from __future__ import annotations

import ast
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
    # the only names accepted code can reach (float/bool/int: allowed annotations)
    namespace = {"math": math, "__builtins__": {
        "min": min, "max": max, "abs": abs, "range": range, "float": float, "bool": bool,
        "int": int, "__import__": _import_math}}
    exec(compile(_full_signature(policy), policy.path, "exec"), namespace)  # checked: only defs and imports
    py = namespace[policy.spec.function]
    try:
        fn = cfunc(SIGNATURES[policy.kind], error_model="numpy")(py)
    except Exception as exc:  # numba's typing errors are multi-line; keep the first line
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CodePolicyError(f"{policy.path}: {policy.spec.function}() does not compile: "
                              f"{first}") from None
    _COMPILED[policy.digest] = fn
    return fn


def _full_signature(policy) -> ast.Module:
    """The policy's module with its function taking every feature: a function written before
    the optional trailing features existed (or that does not want them) gets them appended as
    unused parameters, so every policy of a kind compiles to the kind's one signature."""
    tree = ast.parse(policy.source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == policy.spec.function:
            have = len(node.args.args)
            node.args.args += [ast.arg(arg=f.name) for f in policy.spec.features[have:]]
    return ast.fix_missing_locations(tree)


def _import_math(name, *args, **kwargs):
    """The only import an accepted policy performs (``import math``)."""
    if name != "math":
        raise ImportError(name)
    return math
