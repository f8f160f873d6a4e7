"""The declaration types of a policy family: :class:`Param`, :class:`Policy`, :class:`Family`.

A policy is declared once, as data: its name, the integer code its kernel branch answers to,
its numeric parameters (type, default, bounds, unit, help, the kernel parameter row it is written
to) and the per-request state rows it needs.  Everything else reads the declarations: the
engine's parameter encoding, the ``blis run`` flags and their validation and ``--help``, the
policy-bundle schema and its reader/writer, the search-space genes and their bounds, and the
README's policy table.  ``docs/EXTENDING.md`` walks through adding one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

INT = "int"
FLOAT = "float"
BOOL = "bool"  # an on/off switch: 0 or 1 in the kernel vectors, true/false in flags and bundles


def show_number(value: float) -> str:
    """A number the way error messages and help show it (``10000``, ``0.5``, ``+Inf``, ``NaN``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class Param:
    """One numeric parameter of a policy.

    ``name`` is the snake_case key used in the policy bundle (inside the family's section), in a
    search space (as a gene) and in :meth:`simulator.config.PolicyConfig.param`; ``flag`` the
    ``blis run`` flag (default: ``name`` in kebab case).  ``kind`` is ``"int"``, ``"float"`` or ``"bool"`` (a switch);
    values must be finite and lie in ``[low, high]`` (``high`` may be ``inf``: no upper bound).
    ``slot`` is the row of the kernel's float parameter vector (``kernels/layout.py`` ``PF_*``)
    the engine writes the value to; None for a parameter the Python side consumes.
    ``reference`` is False for parameters the reference (BLIS) does not have.
    """

    name: str
    kind: str
    default: float
    low: float
    high: float
    unit: str
    help: str
    slot: int | None = None
    flag: str = ""
    reference: bool = True

    def __post_init__(self):
        if self.kind not in (INT, FLOAT, BOOL):
            raise ValueError(f"Param {self.name}: kind must be 'int', 'float' or 'bool', "
                             f"got {self.kind!r}")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"Param {self.name}: default {self.default} outside [{self.low}, {self.high}]")
        if not self.flag:
            object.__setattr__(self, "flag", self.name.replace("_", "-"))

    def bounds_text(self) -> str:
        """The allowed values in words, e.g. ``a finite value >= 0`` or ``an integer in [1, 64]``."""
        if self.kind == BOOL:
            return "true or false"
        what = "an integer" if self.kind == INT else "a finite value"
        if math.isinf(self.high):
            return f"{what} >= {show_number(self.low)}"
        return f"{what} in [{show_number(self.low)}, {show_number(self.high)}]"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (a phrase for a one-line error), or None when it is."""
        if self.kind == BOOL:
            return None if value in (0, 1) else f"must be true or false, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be {self.bounds_text()}, got {value!r}"
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return f"must be {self.bounds_text()}, got {show_number(value)}"
        if self.kind == INT and float(value) != int(value):
            return f"must be {self.bounds_text()}, got {show_number(value)}"
        return None


@dataclass(frozen=True)
class Policy:
    """One policy of a family.

    ``code`` is the integer the kernel dispatcher branches on (defined next to the kernels).
    ``needs`` names per-run state the engine must prepare for it (see
    :data:`simulator.policies.registry.NEEDS`).  ``impl`` is the Python implementation for
    families whose policies run in Python (the autoscaler); None for kernel policies.
    """

    name: str
    code: int
    help: str
    params: tuple[Param, ...] = ()
    needs: tuple[str, ...] = ()
    reference: bool = True
    impl: Any = None

    def param(self, name: str) -> Param:
        """The declared parameter ``name`` (KeyError if the policy has none of that name)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class Family:
    """A policy family: the policies one decision point can use.

    ``key`` names the family everywhere (``admission``, ``routing``, ``scorer``, ...); ``label``
    is how messages call one of its members (``admission policy``).  ``flag`` is the ``blis run``
    flag choosing the policy (None: chosen elsewhere, e.g. scorers by ``--routing-scorers``).
    ``bundle`` is the key path of the choice in the policy bundle, e.g. ``("admission",
    "policy")`` or ``("scheduler",)``; ``gene`` the search-space key of the choice.  ``slot`` is
    the row of the kernel's int parameter vector (``P_*``) the engine writes the chosen code to.
    ``code_policy`` is the kernel code of a user code policy (``code:PATH``) when the family
    accepts one.  ``default`` is the policy used when none is chosen (also what ``""`` means).
    ``param_flags``: parameter names are unique in the family and each is a ``blis run`` flag
    and a key of the family's bundle section (kernel families); False where parameters are
    per policy (the autoscaler's ``params`` mapping).  ``choose`` says how a policy is chosen
    where that is not ``--<flag>`` (docs only).  ``switch`` = (off, on) makes the flag a plain
    on/off switch (``--flag`` chooses ``on``, absent ``off``; the reference's ``--flow-control``).
    """

    key: str
    label: str
    help: str
    default: str
    policies: tuple[Policy, ...]
    flag: str | None = None
    bundle: tuple[str, ...] = ()
    gene: str | None = None
    slot: int | None = None
    code_policy: int | None = None
    param_flags: bool = True
    choose: str = ""
    switch: tuple[str, str] | None = None
    _index: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError(f"family {self.key}: duplicate policy names {names}")
        codes = [p.code for p in self.policies]
        if len(set(codes)) != len(codes) or self.code_policy in codes:
            raise ValueError(f"family {self.key}: duplicate kernel codes {codes}")
        if self.default not in names:
            raise ValueError(f"family {self.key}: default {self.default!r} is not declared")
        if self.param_flags:
            pnames = [p.name for p in self.params()]
            if len(set(pnames)) != len(pnames):
                raise ValueError(f"family {self.key}: duplicate parameter names {pnames}")
        object.__setattr__(self, "_index", {p.name: p for p in self.policies})

    def names(self) -> list[str]:
        """The declared policy names, sorted (the valid values in help and errors)."""
        return sorted(self._index)

    def get(self, name: str) -> Policy:
        """The policy ``name`` (``""``: the default).  KeyError when it is not declared."""
        return self._index[name or self.default]

    def has(self, name: str) -> bool:
        """True when ``name`` is declared (``""`` counts: it means the default)."""
        return name == "" or name in self._index

    def params(self) -> tuple[Param, ...]:
        """Every parameter of the family's policies, in declaration order."""
        out: list[Param] = []
        for pol in self.policies:
            out.extend(pol.params)
        return tuple(out)

    def owner(self, param_name: str) -> Policy:
        """The policy that declares ``param_name`` (KeyError if none does)."""
        for pol in self.policies:
            for p in pol.params:
                if p.name == param_name:
                    return pol
        raise KeyError(param_name)

    def with_policy(self, policy: Policy) -> "Family":
        """A copy of the family with ``policy`` added (for registering an extension)."""
        return Family(self.key, self.label, self.help, self.default, self.policies + (policy,),
                      self.flag, self.bundle, self.gene, self.slot, self.code_policy,
                      self.param_flags, self.choose, self.switch)
