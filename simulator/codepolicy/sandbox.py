"""The code-policy sandbox: an allowlist check of the parsed source, before anything runs.

A policy file is one function of a fixed name and signature (``features.KINDS``) built only from
arithmetic, comparisons, boolean logic, ``if``/ternaries, local variables, ``math.<fn>`` calls
from :data:`MATH_FUNCTIONS`, ``min``/``max``/``abs`` and ``for _ in range(CONST)`` loops whose
nested bounds multiply to at most :data:`MAX_LOOP_ITERATIONS`.  The file may also hold a
docstring and ``import math`` (the one module a policy can use; it is provided anyway).
Everything else -- other imports, attribute access, other calls, ``while``, strings, lists,
comprehensions, lambdas, ``global`` -- is rejected by construction, so accepted code can do no
I/O, read no clock, draw no random numbers, recurse, allocate or run unboundedly.
"""
from __future__ import annotations

import ast

from simulator.errors import InputError

from .features import PolicyKind

MATH_FUNCTIONS = frozenset({
    "sqrt", "exp", "expm1", "log", "log1p", "log2", "log10", "pow", "sin", "cos", "tan", "tanh",
    "atan", "atan2", "floor", "ceil", "fabs", "hypot", "copysign", "isnan", "isinf",
    "isfinite", "erf"})
"""``math`` functions a policy may call."""
MATH_CONSTANTS = frozenset({"pi", "e", "tau", "inf"})
"""``math`` constants a policy may read."""
BUILTINS = {"min": (2, 16), "max": (2, 16), "abs": (1, 1)}
"""Built-in functions a policy may call, with their (min, max) positional argument counts."""
MAX_LOOP_ITERATIONS = 1000
"""Largest product of the bounds of nested ``for ... in range(...)`` loops."""

ALLOWED = ("arithmetic, comparisons, and/or/not, if/else, local variables, math.<fn>, "
           f"min/max/abs, for-range loops with constant bounds (<= {MAX_LOOP_ITERATIONS} "
           "iterations), return")
"""The allowlist in words, quoted in every rejection."""

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_ANNOTATIONS = frozenset({"float", "bool", "int"})
_MATH_ARITY = {"atan2": 2, "pow": 2, "hypot": 2, "copysign": 2}

_NAMES = {  # readable names of rejected node types
    ast.Import: "import", ast.ImportFrom: "import", ast.While: "while loop",
    ast.Lambda: "lambda", ast.ListComp: "list comprehension", ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension", ast.GeneratorExp: "generator expression",
    ast.List: "list", ast.Tuple: "tuple", ast.Dict: "dict", ast.Set: "set",
    ast.JoinedStr: "f-string", ast.Subscript: "subscript", ast.Starred: "starred expression",
    ast.NamedExpr: "assignment expression (:=)", ast.Global: "global statement",
    ast.Nonlocal: "nonlocal statement", ast.With: "with statement", ast.Try: "try statement",
    ast.Raise: "raise", ast.Assert: "assert", ast.Delete: "del", ast.ClassDef: "class",
    ast.FunctionDef: "nested function", ast.AsyncFunctionDef: "async function",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.AnnAssign: "annotated assignment", ast.Match: "match statement",
}


class CodePolicyError(InputError):
    """A rejected code policy; the message is ``PATH:LINE: <what> ...`` on one line."""


class _Reject(Exception):
    def __init__(self, node, what: str):
        super().__init__(what)
        self.line = getattr(node, "lineno", 1)
        self.what = what


def _describe(node) -> str:
    if isinstance(node, ast.Constant):
        return f"constant {type(node.value).__name__} {node.value!r}"[:60]
    if isinstance(node, ast.Attribute):
        return f"attribute access .{node.attr}"
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name):
            return f"call to {f.id}()"
        if isinstance(f, ast.Attribute):
            return f"call to .{f.attr}()"
        return "call"
    if isinstance(node, ast.Name):
        return f"name {node.id!r}"
    for cls, name in _NAMES.items():
        if isinstance(node, cls):
            return name
    if isinstance(node, (ast.operator, ast.cmpop, ast.unaryop)):
        return f"operator {type(node).__name__}"
    return type(node).__name__


class _Checker:
    """Walks one function body, tracking the locals assigned on every path so far (a name must
    be definitely assigned before it is read) and the loop-iteration budget."""

    def __init__(self, params: tuple[str, ...]):
        self.params = set(params)
        self.assigned: set[str] = set()
        self.read: set[str] = set()  # features the code reads

    def reject(self, node, what: str | None = None):
        """Reject ``node`` (one line naming the construct and its line)."""
        raise _Reject(node, f"{what or _describe(node)} is not allowed in a code policy")

    def _target(self, node):
        if not isinstance(node, ast.Name):
            self.reject(node, f"assignment to {_describe(node)}")
        self._name(node)
        self.assigned.add(node.id)

    def _name(self, node):
        if node.id.startswith("__"):
            self.reject(node, f"dunder name {node.id!r}")

    # ---- statements

    def body(self, stmts, budget: int):
        """Check a statement list; ``budget`` is the loop iterations still allowed around it."""
        for s in stmts:
            self.stmt(s, budget)

    def stmt(self, node, budget: int):
        """Check one statement against the allowlist, updating the definitely-assigned locals."""
        if isinstance(node, ast.Return):
            if node.value is None:
                self.reject(node, "return without a value")
            self.expr(node.value)
        elif isinstance(node, ast.Assign):
            if len(node.targets) != 1:
                self.reject(node, "chained assignment")
            self.expr(node.value)
            self._target(node.targets[0])
        elif isinstance(node, ast.AugAssign):
            if not isinstance(node.op, _BINOPS):
                self.reject(node.op)
            self.expr(node.value)
            self._target(node.target)
        elif isinstance(node, ast.If):
            self.expr(node.test)
            before = set(self.assigned)
            self.body(node.body, budget)
            after_body, self.assigned = self.assigned, set(before)
            self.body(node.orelse, budget)
            # a name is defined after the if only when every branch that falls through defines it
            if _always_returns(node.body):
                pass
            elif _always_returns(node.orelse):
                self.assigned = after_body
            else:
                self.assigned &= after_body
        elif isinstance(node, ast.For):
            self.loop(node, budget)
        elif isinstance(node, (ast.Pass, ast.Break, ast.Continue)):
            pass
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            pass  # a docstring or bare string statement: no effect
        elif isinstance(node, ast.Expr):
            self.reject(node.value, f"expression statement ({_describe(node.value)})")
        else:
            self.reject(node)

    def loop(self, node: ast.For, budget: int):
        """Check a ``for _ in range(CONST)`` loop and charge its iterations to the budget."""
        it = node.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                and it.func.id == "range" and not it.keywords and 1 <= len(it.args) <= 3):
            self.reject(it, f"for loop over {_describe(it)} (only range(CONST))")
        bounds = [_int_constant(a) for a in it.args]
        for a, v in zip(it.args, bounds):
            if v is None:
                self.reject(a, "loop bound that is not an integer constant")
        if len(bounds) == 3 and bounds[2] == 0:
            self.reject(it, "range() with step 0")
        n = len(range(*bounds))
        if n > budget:
            self.reject(it, f"loop of {n} iterations (nested loops may run at most "
                            f"{MAX_LOOP_ITERATIONS} iterations in total)")
        if node.orelse:
            self.reject(node.orelse[0], "for-else")
        before = set(self.assigned)
        self._target(node.target)
        self.body(node.body, budget // max(n, 1))
        self.assigned = before  # the loop may not run: its assignments are not definite

    # ---- expressions

    def expr(self, node):
        """Check one expression: constants, allowed names, operators, ternaries, calls."""
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float, bool):
                self.reject(node)
        elif isinstance(node, ast.Name):
            self._name(node)
            if node.id in self.params:
                self.read.add(node.id)
            elif node.id not in self.assigned:
                self.reject(node, f"unknown or possibly unassigned name {node.id!r}")
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, _BINOPS):
                self.reject(node.op)
            self.expr(node.left)
            self.expr(node.right)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
                self.reject(node.op)
            self.expr(node.operand)
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                self.expr(v)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if not isinstance(op, _CMPOPS):
                    self.reject(node, f"comparison {type(op).__name__}")
            self.expr(node.left)
            for c in node.comparators:
                self.expr(c)
        elif isinstance(node, ast.IfExp):
            self.expr(node.test)
            self.expr(node.body)
            self.expr(node.orelse)
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.Attribute):
            if not (_is_math(node.value) and node.attr in MATH_CONSTANTS):
                self.reject(node)
        else:
            self.reject(node)

    def call(self, node: ast.Call):
        """Check a call: ``min``/``max``/``abs`` or an allowlisted ``math`` function."""
        if node.keywords:
            self.reject(node, f"keyword argument in {_describe(node)}")
        f = node.func
        n = len(node.args)
        if isinstance(f, ast.Name) and f.id in BUILTINS:
            lo, hi = BUILTINS[f.id]
            if not lo <= n <= hi:
                self.reject(node, f"{f.id}() with {n} arguments")
        elif isinstance(f, ast.Attribute) and _is_math(f.value) and f.attr in MATH_FUNCTIONS:
            if n != _MATH_ARITY.get(f.attr, 1):
                self.reject(node, f"math.{f.attr}() with {n} arguments")
        else:
            if not isinstance(f, (ast.Name, ast.Attribute)):
                self.expr(f)  # name the inner construct, e.g. getattr(...)(...)
            self.reject(node)
        for a in node.args:
            if isinstance(a, ast.Starred):
                self.reject(a)
            self.expr(a)


def _int_constant(node) -> int | None:
    """The value of an integer literal, optionally negated; None for anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def _is_math(node) -> bool:
    return isinstance(node, ast.Name) and node.id == "math"


def _always_returns(stmts) -> bool:
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, ast.Return):
        return True
    if isinstance(last, ast.If):
        return _always_returns(last.body) and _always_returns(last.orelse)
    return False


def _check_signature(fn: ast.FunctionDef, kind: PolicyKind):
    want = tuple(f.name for f in kind.features)
    a = fn.args
    got = tuple(x.arg for x in a.args)
    prefix = kind.required <= len(got) <= len(want) and got == want[:len(got)]
    if (fn.name != kind.function or not prefix or a.posonlyargs or a.vararg or a.kwonlyargs
            or a.kwarg or a.defaults or fn.decorator_list):
        raise _Reject(fn, f"function {fn.name}({', '.join(got)}) is not the {kind.kind} code "
                          f"policy signature (expected: {kind.signature}; the last "
                          f"{len(want) - kind.required} may be left off)")
    for ann in [x.annotation for x in a.args] + [fn.returns]:
        if ann is not None and not (isinstance(ann, ast.Name) and ann.id in _ANNOTATIONS):
            raise _Reject(ann, f"annotation {ast.unparse(ann)!r} is not allowed in a code policy "
                               "(only float, bool, int)")


def check(source: str, kind: PolicyKind) -> tuple[ast.Module, frozenset[str]]:
    """Parse ``source`` and check it against the allowlist; return the module AST and the
    features the function reads.

    Raises ``_Reject`` (line, construct) for the first disallowed construct in source order.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise _Reject(exc, f"syntax error ({exc.msg})") from None
    fns = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            fns.append(node)
        elif isinstance(node, ast.Import) and [(a.name, a.asname) for a in node.names] == [("math", None)]:
            pass
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            pass
        else:
            _Checker(()).reject(node, f"top-level {_describe(node)}")
    if len(fns) != 1:
        where = fns[1] if fns else tree
        raise _Reject(where, f"a code policy defines exactly one function ({kind.signature}), "
                             f"found {len(fns)}")
    fn = fns[0]
    _check_signature(fn, kind)
    checker = _Checker(tuple(f.name for f in kind.features))
    checker.body(fn.body, MAX_LOOP_ITERATIONS)
    if not _always_returns(fn.body):
        raise _Reject(fn, f"{kind.function}() must end with a return on every path")
    return tree, frozenset(checker.read)


def reject_message(path: str, line: int, what: str) -> str:
    """One-line rejection: ``PATH:LINE: <what> (allowed: ...)``."""
    if what.endswith("is not allowed in a code policy"):
        what += f" (allowed: {ALLOWED})"
    return f"{path}:{line}: {what}"
