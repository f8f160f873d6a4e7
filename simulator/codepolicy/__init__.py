"""Code policies: routing, admission and priority rules written as small restricted Python
functions, checked by an allowlist sandbox and compiled with numba into the event loop.

One file defines one function (see :mod:`.features` for the names and units)::

    # routing: the request goes to the instance with the highest score
    def score(queue_depth, batch_size, pending, kv_utilization, free_kv_blocks,
              prefix_match, cache_hit_rate):
        return 3 * prefix_match - (queue_depth + batch_size + pending) / 10

    def admit(input_tokens, queue_depth, batch_size, pending, kv_utilization, num_instances):
        return queue_depth / num_instances < 50

    def priority(age, input_tokens, preemptions, queue_depth, batch_size, kv_utilization):
        return age - input_tokens / 1000

Use: ``blis run --routing-policy code:PATH`` (also ``--admission-policy``,
``--priority-policy``) or a policy bundle's ``routing: {policy: code, code_path: PATH}``.
The kernels receive the compiled function as a first-class function of a fixed signature, so
there is one compiled event loop for every policy.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field

from simulator.fileio import read_text

from .compile import compile_policy
from .features import ADMISSION, KINDS, PRIORITY, ROUTING, Feature, PolicyKind, feature_table
from .sandbox import ALLOWED, MAX_LOOP_ITERATIONS, CodePolicyError, _Reject, check, reject_message

__all__ = ["CodePolicy", "CodePolicyError", "load_code_policy", "load_code_policy_file",
           "KINDS", "ROUTING", "ADMISSION", "PRIORITY", "Feature", "PolicyKind", "ALLOWED",
           "MAX_LOOP_ITERATIONS", "feature_table", "compiled", "uses_code_policy"]


@dataclass(frozen=True)
class CodePolicy:
    """An accepted code policy: its kind, source text, display path, content digest and the
    features it reads (the engine skips computing a feature no code reads, e.g. prefix_match).

    Plain data (picklable, hashable): the compiled function is looked up by ``digest`` in the
    process that runs it (:func:`compiled`), so a policy travels to Ray workers as text.
    """

    kind: str
    source: str = field(repr=False)
    path: str
    digest: str
    reads: frozenset = frozenset()

    @property
    def spec(self) -> PolicyKind:
        """The kind's definition (function name, features)."""
        return KINDS[self.kind]


def load_code_policy(source: str, kind: str, path: str = "<code policy>") -> CodePolicy:
    """Check ``source`` against the sandbox allowlist, compile it, and return the policy.

    ``kind`` is "routing" (``def score(...) -> float``), "admission" (``def admit(...) ->
    bool``) or "priority" (``def priority(...) -> float``); the features each receives are in
    :data:`KINDS`.  ``path`` only names the source in messages.  Nothing in ``source`` runs
    before it is accepted.  Raises :class:`CodePolicyError` (an InputError) with one line
    ``PATH:LINE: <construct> is not allowed in a code policy (allowed: ...)`` for the first
    disallowed construct, ``PATH:LINE: function ... (expected: def score(...))`` for a wrong
    name or signature, or ``PATH: score() does not compile: ...`` when numba cannot type it.
    Compilation is memoised per distinct source (sha256 of kind and canonical AST).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        tree, reads = check(source, KINDS[kind])
    except _Reject as r:
        raise CodePolicyError(reject_message(path, r.line, r.what)) from None
    digest = hashlib.sha256(f"{kind}\n{ast.dump(tree)}".encode()).hexdigest()
    policy = CodePolicy(kind=kind, source=source, path=path, digest=digest, reads=reads)
    compiled(policy)
    return policy


def load_code_policy_file(path: str, kind: str, flag: str = "") -> CodePolicy:
    """Read ``path`` (UTF-8) and :func:`load_code_policy` it; an unreadable file raises
    InputError ``"<flag>: code policy: cannot read <path>: ..."``."""
    label = f"{flag}: code policy" if flag else "code policy"
    return load_code_policy(read_text(path, label), kind, path)


def uses_code_policy(policy) -> bool:
    """True if any family of the PolicyConfig ``policy`` runs a code policy."""
    return any(getattr(policy, f"{k}_code", None) is not None for k in KINDS)


def compiled(policy: CodePolicy):
    """The numba cfunc of ``policy`` (compiled on first use in this process)."""
    return compile_policy(policy)
