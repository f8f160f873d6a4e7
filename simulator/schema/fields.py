"""Declarative field types: what a YAML value may be, how it is checked, and its JSON Schema.

A schema is a tree of :class:`Field` objects.  Each field type parses one value (``parse``),
describes itself for error messages (``describe``) and renders itself as JSON Schema
(``json``); the root is usually a :class:`Mapping` of named fields.  Every field takes the same
keyword arguments: ``required``, ``default``, ``help``, ``unit``, ``what`` (how messages call
the value), ``then`` (a function ``(value, at) -> value`` run after the checks: cross-field
rules and building the result object) and ``ref`` (a name under which the JSON Schema shares the
field's definition in ``$defs``).

Conventions shared by every parser built from these types:

* a key whose value is null counts as absent (a required one is then missing);
* unknown keys are rejected, naming the allowed keys;
* errors are one :class:`~simulator.errors.InputError` line,
  ``"<source>: <key path> <problem>"``, e.g. ``spec.yaml: clients[2].arrival.cv must be > 0,
  got -1`` or ``jobs.yaml: bogus is not a known key (valid: out, jobs)``;
* integers accept integral floats (``2.0``) unless declared with ``integral_floats=False``;
  numbers must be finite; booleans are never numbers.

The phrasing above is the standard :class:`Wording`; a format that keeps another convention (the
policy bundle keeps the reference's ``policy-config <path>: <problem>``) parses with an
:class:`At` carrying its own :class:`Wording` subclass, and every field phrases its errors
through it: same checks, same key paths, same one line.

The JSON Schema of a field describes the same documents, except for the checks a field does
in ``then`` hooks or :class:`Custom` code (cross-field rules, files): the JSON Schema accepts
every document the parser accepts and rejects the per-key mistakes (types, bounds, names,
unknown and missing keys).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping as MappingT, NoReturn, Sequence

from simulator.errors import InputError, one_line


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""``default`` of a field that has none (absent keys are then left out of the parsed mapping)."""


def show(value: Any) -> str:
    """A value the way error messages show it: strings quoted, integral floats as integers,
    containers by their kind (``a mapping``, ``a list of 3 items``), null as ``nothing``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}" if value \
            else "an empty list"
    if value is None:
        return "nothing"
    return str(value)


class Wording:
    """How a document's errors are phrased.  This base class is the schema layer's standard,
    ``"<source>: <path> <problem>"`` with problems such as ``must be in [1, 64], got 65`` and
    ``is not a known key (valid: a, b)``; a format whose messages follow another convention
    (e.g. the policy bundle, which keeps the reference's ``"<path>: unknown key"`` wording)
    passes a subclass to :class:`At`, and every field type phrases its errors through it."""

    top = "the document"
    """What a problem with the whole document (the empty key path) calls it."""

    def line(self, source: str, path: str, problem: str) -> str:
        """The whole message for ``problem`` at ``path`` (either may be empty)."""
        where = f"{path} {problem}" if path else problem
        return f"{source}: {where}" if source else where

    def expected(self, field: "Field", got: Any) -> str:
        """``got`` does not have the field's type (or shape)."""
        return f"must be {field.describe()}, got {show(got)}"

    def out_of_range(self, field: "_Bounded", got: float) -> str:
        """A number outside the field's bounds."""
        return f"must be {field.bounds()}, got {show(got)}"

    def unknown_name(self, field: "Choice", got: Any) -> str:
        """A value that is none of a :class:`Choice`'s names."""
        return self.expected(field, got)

    def unknown_key(self, key_what: str, valid: Sequence[str]) -> str:
        """A mapping key that is not declared (``valid``: the declared keys)."""
        return f"is not a known {key_what} (valid: {', '.join(valid) or 'none'})"


STANDARD = Wording()
"""The standard wording (the default of every :class:`At`)."""


class At:
    """Where a value sits: the source (file name, or a caller's prefix) and the key path.

    ``at / "key"`` and ``at / 3`` give the child paths ``a.key`` and ``a[3]``; ``at.fail`` raises
    the one-line InputError ``"<source>: <path> <problem>"`` (as ``wording`` phrases it).
    ``context`` carries what ``then`` hooks need from the caller (e.g. the directory relative
    paths resolve against).
    """

    __slots__ = ("source", "path", "context", "wording")

    def __init__(self, source: str = "", path: str = "", context: Any = None,
                 wording: Wording = STANDARD):
        self.source, self.path, self.context, self.wording = source, path, context, wording

    def __truediv__(self, key: Any) -> "At":
        if isinstance(key, int) and not isinstance(key, bool):
            return At(self.source, f"{self.path}[{key}]", self.context, self.wording)
        return At(self.source, f"{self.path}.{key}" if self.path else str(key), self.context,
                  self.wording)

    def __str__(self) -> str:
        return self.path

    def fail(self, problem: str) -> NoReturn:
        """Raise the InputError for ``problem`` at this path (the path may be empty)."""
        raise InputError(one_line(self.wording.line(self.source, self.path, problem)))

    def expected(self, field: "Field | str", got: Any) -> NoReturn:
        """Raise "<path> must be <what the field describes>, got <value>" (the empty path is
        called :attr:`Wording.top`); ``field`` may also be the description itself."""
        at = self if self.path else At(self.source, self.wording.top, self.context, self.wording)
        if isinstance(field, str):
            field = Field(what=field)
        at.fail(self.wording.expected(field, got))


def _num_text(x: float) -> str:
    return show(float(x))


def range_text(ge=None, gt=None, le=None, lt=None) -> str:
    """Bounds in words: ``>= 1``, ``> 0``, ``<= 64``, ``in [0, 1]``, ``in [0, 1)``; ``""`` if none."""
    lo, hi = (ge if gt is None else gt), (le if lt is None else lt)
    if lo is not None and hi is not None:
        return (f"in {'(' if gt is not None else '['}{_num_text(lo)}, {_num_text(hi)}"
                f"{')' if lt is not None else ']'}")
    if lo is not None:
        return f"{'>' if gt is not None else '>='} {_num_text(lo)}"
    if hi is not None:
        return f"{'<' if lt is not None else '<='} {_num_text(hi)}"
    return ""


def _names(names) -> tuple[str, ...]:
    return tuple(names() if callable(names) else names)


class Field:
    """Base of every field type (see the module docstring for the shared keyword arguments)."""

    plural_noun = "values"

    def __init__(self, *, required: bool = False, default: Any = MISSING, help: str = "",
                 unit: str = "", what: str | None = None,
                 then: Callable[[Any, At], Any] | None = None, ref: str | None = None):
        if required and default is not MISSING:
            raise ValueError("a field is required or has a default, not both")
        self.required, self.default, self.help, self.unit = required, default, help, unit
        self.what, self.then, self.ref = what, then, ref

    # -- parsing ------------------------------------------------------------------------------
    def parse(self, value: Any, at: At) -> Any:
        """Check ``value`` (found at ``at``) and return it converted (after the ``then`` hook)."""
        out = self._parse(value, at)
        return self.then(out, at) if self.then is not None else out

    def _parse(self, value: Any, at: At) -> Any:
        return value

    def fits(self, value: Any) -> bool:
        """Whether ``value`` has the shape (Python type) this field parses; :class:`Either`
        picks its alternative with it."""
        return True

    # -- words ----------------------------------------------------------------------------------
    def describe(self) -> str:
        """What the value must be, for "must be <this>" messages (``what`` overrides it)."""
        return self.what or self._describe()

    def _describe(self) -> str:
        return "a value"

    def hint(self) -> str:
        """The allowed values in full (type and bounds/names), for "is required" messages."""
        return self.what or self._hint()

    def _hint(self) -> str:
        return self.describe()

    def plural(self) -> str:
        """The allowed values in the plural, for lists: ``integers >= 0``."""
        return self.plural_noun

    # -- JSON Schema ----------------------------------------------------------------------------
    def json(self, defs: dict | None = None) -> dict:
        """This field as a JSON Schema (draft 2020-12) object.  A field with ``ref`` goes to
        ``defs`` (the document's ``$defs``) once and is referenced from everywhere else."""
        body = self._json(defs if defs is not None else {})
        text = self.help + (f" (unit: {self.unit})" if self.unit else "")
        if self.ref is not None and defs is not None:
            defs.setdefault(self.ref, body)
            body = {"$ref": f"#/$defs/{self.ref}"}
        if text:
            body = {"description": text, **body}
        if self.default is not MISSING and self.default is not None \
                and isinstance(self.default, (str, int, float, bool)):
            body["default"] = self.default
        return body

    def _json(self, defs: dict) -> dict:
        return {}


class _Bounded(Field):
    """A number with optional inclusive (``ge``/``le``) or exclusive (``gt``/``lt``) bounds."""

    def __init__(self, *, ge=None, gt=None, le=None, lt=None, **kw):
        super().__init__(**kw)
        if ge is not None and gt is not None or le is not None and lt is not None:
            raise ValueError("give ge or gt (le or lt), not both")
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt

    def bounds(self) -> str:
        """The bounds in words (``""`` when unbounded)."""
        return range_text(self.ge, self.gt, self.le, self.lt)

    def _check_bounds(self, v: float, at: At) -> None:
        if (self.ge is not None and v < self.ge or self.gt is not None and v <= self.gt
                or self.le is not None and v > self.le or self.lt is not None and v >= self.lt):
            at.fail(at.wording.out_of_range(self, v))

    def _hint(self) -> str:
        b = self.bounds()
        return f"{self.describe()} {b}" if b else self.describe()

    def plural(self) -> str:
        b = self.bounds()
        return f"{self.plural_noun} {b}" if b else self.plural_noun

    def _bounds_json(self) -> dict:
        out = {}
        for key, value in (("minimum", self.ge), ("exclusiveMinimum", self.gt),
                           ("maximum", self.le), ("exclusiveMaximum", self.lt)):
            if value is not None:
                out[key] = value
        return out


class Int(_Bounded):
    """An integer (an integral float such as ``2.0`` counts), within the bounds and, unless
    ``any_size``, within 64 bits.  ``integral_floats=False`` rejects floats (``2.0`` too), for
    formats that take only integer literals."""

    plural_noun = "integers"

    def __init__(self, *, any_size: bool = False, integral_floats: bool = True, **kw):
        super().__init__(**kw)
        self.any_size, self.integral_floats = any_size, integral_floats

    def fits(self, v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def _parse(self, v, at):
        if self.integral_floats and isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            at.expected(self, v)
        if not self.any_size and not -2**63 <= v < 2**63:
            at.fail(f"must fit in a 64-bit integer, got {v}")
        self._check_bounds(v, at)
        return v

    def _describe(self):
        return "an integer"

    def _json(self, defs):
        return {"type": "integer", **self._bounds_json()}


class Number(_Bounded):
    """A finite number (integer or float), within the bounds; parsed to ``float``."""

    plural_noun = "numbers"

    def fits(self, v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def _parse(self, v, at):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            at.expected(self, v)
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            at.fail(f"must be a finite number, got {show(v)}")
        self._check_bounds(f, at)
        return f

    def _describe(self):
        return "a number"

    def _json(self, defs):
        return {"type": "number", **self._bounds_json()}


class Str(Field):
    """A string; ``allow_int`` also takes an integer as its decimal text (as Go's YAML decoder
    does for string fields); ``nonempty`` rejects blank strings."""

    plural_noun = "strings"

    def __init__(self, *, allow_int: bool = False, nonempty: bool = False, **kw):
        super().__init__(**kw)
        self.allow_int, self.nonempty = allow_int, nonempty

    def fits(self, v):
        return isinstance(v, str) or self.allow_int and isinstance(v, int) and not isinstance(v, bool)

    def _parse(self, v, at):
        if isinstance(v, bool) or not isinstance(v, (str, int) if self.allow_int else str):
            at.expected(self, v)
        v = str(v)
        if self.nonempty and not v.strip():
            at.fail("must not be empty")
        return v

    def _describe(self):
        return "a non-empty string" if self.nonempty else "a string"

    def _json(self, defs):
        out: dict = {"type": ["string", "integer"] if self.allow_int else "string"}
        if self.nonempty:
            out["minLength"] = 1
        return out


class Bool(Field):
    """``true`` or ``false`` (YAML's yes/no/on/off spellings included; never 0/1)."""

    plural_noun = "booleans"

    def fits(self, v):
        return isinstance(v, bool)

    def _parse(self, v, at):
        if not isinstance(v, bool):
            at.expected(self, v)
        return v

    def _describe(self):
        return "true or false"

    def _json(self, defs):
        return {"type": "boolean"}


class Choice(Field):
    """One of a set of names.  ``names`` is a sequence or a function returning one (called at
    parse and export time, so names registered later count).  An empty name may be allowed
    but is not listed in messages.  ``label`` is how messages may call one of the names (e.g.
    ``"routing policy"``; see :meth:`Wording.unknown_name`); ``notes`` adds a remark to a
    name where messages list the names (e.g. ``{"code": "with code_path"}``)."""

    plural_noun = "names"

    def __init__(self, names: Sequence[str] | Callable[[], Iterable[str]], *, label: str = "value",
                 notes: MappingT[str, str] | None = None, **kw):
        super().__init__(**kw)
        self.names, self.label, self.notes = names, label, dict(notes or {})

    def allowed(self) -> tuple[str, ...]:
        """The valid names now."""
        return _names(self.names)

    def listed(self) -> list[str]:
        """The valid names as messages list them: without the empty name, with their notes."""
        return [f"{n} ({self.notes[n]})" if n in self.notes else n for n in self.allowed() if n]

    def fits(self, v):
        return isinstance(v, str)

    def _parse(self, v, at):
        if not isinstance(v, str) or v not in self.allowed():
            at.fail(at.wording.unknown_name(self, v))
        return v

    def _describe(self):
        shown = self.listed()
        return f"one of {', '.join(shown)}" if len(shown) != 1 else repr(shown[0])

    def plural(self):
        return f"names ({', '.join(self.listed())})"

    def _json(self, defs):
        names = list(self.allowed())
        return {"type": "string", "enum": names} if len(names) != 1 else {"const": names[0]}


class ListOf(Field):
    """A list of ``item`` values with ``min_items``/``max_items``; ``unique`` (a noun, e.g.
    ``"seed"``) rejects repeated values."""

    plural_noun = "lists"

    def __init__(self, item: Field, *, min_items: int = 0, max_items: int | None = None,
                 unique: str | None = None, **kw):
        super().__init__(**kw)
        self.item, self.min_items, self.max_items, self.unique = item, min_items, max_items, unique

    def fits(self, v):
        return isinstance(v, list)

    def _parse(self, v, at):
        if not isinstance(v, list) or len(v) < self.min_items \
                or self.max_items is not None and len(v) > self.max_items:
            at.expected(self, v)
        out = [self.item.parse(x, at / i) for i, x in enumerate(v)]
        if self.unique:
            seen = []
            for x in out:
                if x in seen:
                    at.fail(f"must not repeat a {self.unique} ({show(x)} appears twice)")
                seen.append(x)
        return out

    def _describe(self):
        lo, hi, things = self.min_items, self.max_items, self.item.plural()
        if hi is not None and lo == hi:
            return f"a list of {lo} {things}"
        if hi is not None:
            return f"a list of {lo} to {hi} {things}"
        if lo == 1:
            return f"a non-empty list of {things}"
        return f"a list of at least {lo} {things}" if lo else f"a list of {things}"

    def _json(self, defs):
        out = {"type": "array", "items": self.item.json(defs)}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        if self.unique:
            out["uniqueItems"] = True
        return out


class Switch(Field):
    """A mapping key whose type depends on a sibling key declared before it in the same
    :class:`Mapping` (e.g. ``params`` depends on ``policy``).  ``cases`` maps each sibling
    value to a field, or is a function returning that dict (called when needed)."""

    def __init__(self, on: str, cases: MappingT[str, Field] | Callable[[], MappingT[str, Field]],
                 **kw):
        super().__init__(**kw)
        self.on, self.cases = on, cases

    def all_cases(self) -> dict[str, Field]:
        """The sibling value -> field table now."""
        return dict(self.cases() if callable(self.cases) else self.cases)

    def case(self, sibling: Any, at: At) -> Field:
        """The field for ``sibling``'s value (an error at ``at`` when it has none)."""
        field = self.all_cases().get(sibling) if isinstance(sibling, str) else None
        if field is None:
            at.fail(f"cannot be given when {self.on} is {show(sibling)}")
        return field

    def _describe(self):
        return f"a value that depends on {self.on}"


class Mapping(Field):
    """A mapping with the declared keys ``fields`` (name -> field), parsed in declaration order
    to a dict holding the given keys (and the defaults of absent ones when ``fill_defaults``).

    ``exactly_one`` names keys of which exactly one must be given; ``key_what`` is how the
    unknown-key message calls a key (e.g. ``"parameter of threshold"``).
    """

    plural_noun = "mappings"

    def __init__(self, fields: MappingT[str, Field], *, exactly_one: Sequence[str] = (),
                 fill_defaults: bool = True, key_what: str = "key", **kw):
        super().__init__(**kw)
        self.fields = dict(fields)
        self.exactly_one, self.fill_defaults, self.key_what = tuple(exactly_one), fill_defaults, key_what
        for name, f in self.fields.items():
            if isinstance(f, Switch) and f.on not in list(self.fields)[:list(self.fields).index(name)]:
                raise ValueError(f"Switch {name!r} depends on {f.on!r}, which is not declared before it")

    def defaults(self) -> dict[str, Any]:
        """The declared defaults, by key."""
        return {k: f.default for k, f in self.fields.items() if f.default is not MISSING}

    def fits(self, v):
        return isinstance(v, dict)

    def _parse(self, v, at):
        if not isinstance(v, dict):
            at.expected(self, v)
        for k in v:
            if not isinstance(k, str) or k not in self.fields:
                (at / k).fail(at.wording.unknown_key(self.key_what, tuple(self.fields)))
        if self.exactly_one:
            given = [k for k in self.exactly_one if v.get(k) is not None]
            if len(given) != 1:
                at.fail(f"must give exactly one of {', '.join(self.exactly_one)}"
                        + (f" (got {', '.join(given)})" if given else ""))
        out: dict[str, Any] = {}
        for name, f in self.fields.items():
            raw = v.get(name)
            if raw is None:
                if f.required:
                    hint = f.all_cases().get(out.get(f.on), f) if isinstance(f, Switch) else f
                    (at / name).fail(f"is required ({hint.hint()})")
                if self.fill_defaults and f.default is not MISSING:
                    out[name] = f.default
                continue
            if isinstance(f, Switch):
                f = f.case(out.get(f.on), at / name)
            out[name] = f.parse(raw, at / name)
        return out

    def _describe(self):
        return "a mapping"

    def _hint(self):
        needed = [k for k, f in self.fields.items() if f.required]
        return f"a mapping with {', '.join(needed)}" if needed else "a mapping"

    def _json(self, defs):
        props, required, conditions = {}, [], []
        for name, f in self.fields.items():
            if isinstance(f, Switch):
                props[name] = f.json(defs)
                implied = self.fields[f.on].default   # what an absent or null sibling means
                for value, case in f.all_cases().items():
                    when = ({"properties": {f.on: {"enum": [value, None]}}} if value == implied
                            else {"properties": {f.on: {"const": value}}, "required": [f.on]})
                    conditions.append({"if": when,
                                       "then": {"properties": {name: _nullable(case.json(defs))}}})
                continue
            props[name] = f.json(defs) if f.required else _nullable(f.json(defs))
            if f.required:
                required.append(name)
        out: dict = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            out["required"] = required
        if self.exactly_one:
            out["oneOf"] = [{"required": [k], "properties": {k: {"not": {"type": "null"}}}}
                            for k in self.exactly_one]
        if conditions:
            out["allOf"] = conditions
        return out


class Tagged(Field):
    """A mapping whose key set depends on its ``tag`` key: ``variants`` maps each tag value to
    the fields the mapping may hold besides the tag (e.g. a load profile's ``type``)."""

    plural_noun = "mappings"

    def __init__(self, tag: str, variants: MappingT[str, MappingT[str, Field]], *,
                 fill_defaults: bool = True, **kw):
        super().__init__(**kw)
        self.tag = tag
        self.tag_field = Choice(tuple(variants), required=True)
        self.variants = {name: Mapping({tag: Choice((name,), required=True), **fields},
                                       fill_defaults=fill_defaults)
                         for name, fields in variants.items()}

    def fits(self, v):
        return isinstance(v, dict)

    def _parse(self, v, at):
        if not isinstance(v, dict):
            at.expected(self, v)
        if v.get(self.tag) is None:
            (at / self.tag).fail(f"is required ({self.tag_field.hint()})")
        name = self.tag_field.parse(v[self.tag], at / self.tag)
        return self.variants[name].parse(v, at)

    def _describe(self):
        return f"a mapping with a {self.tag}"

    def _json(self, defs):
        return {"type": "object", "required": [self.tag],
                "properties": {self.tag: self.tag_field.json(defs)},
                "oneOf": [m.json(defs) for m in self.variants.values()]}


class Either(Field):
    """One of several alternatives told apart by the value's shape: the value is parsed by the
    first alternative it :meth:`~Field.fits` (a mapping by a :class:`Mapping`, a number by a
    :class:`Number`, ...)."""

    def __init__(self, *alternatives: Field, **kw):
        super().__init__(**kw)
        self.alternatives = alternatives

    def fits(self, v):
        return any(a.fits(v) for a in self.alternatives)

    def _parse(self, v, at):
        alt = next((a for a in self.alternatives if a.fits(v)), None)
        if alt is None:
            at.expected(self, v)
        return alt.parse(v, at)

    def _describe(self):
        return " or ".join(a.describe() for a in self.alternatives)

    def _hint(self):
        return " or ".join(a.hint() for a in self.alternatives)

    def _json(self, defs):
        return {"anyOf": [a.json(defs) for a in self.alternatives]}


class Custom(Field):
    """A value checked by ``check(value, at) -> value`` (raise with ``at.fail``), for what the
    other types cannot say; ``json_schema`` is its JSON Schema (default: anything)."""

    def __init__(self, check: Callable[[Any, At], Any], *, json_schema: dict | None = None,
                 what: str = "a value", **kw):
        super().__init__(what=what, **kw)
        self.check, self.json_schema = check, dict(json_schema or {})

    def _parse(self, v, at):
        return self.check(v, at)

    def _json(self, defs):
        return dict(self.json_schema)


def forbidden(reason: str, **kw) -> Custom:
    """A key that may not be given (null counts as not given); ``reason`` completes
    "<path> <reason>" (e.g. ``is not supported; ...``)."""
    def check(v, at):
        at.fail(reason)
    return Custom(check, json_schema={"not": {}}, what="nothing", **kw)


def from_param(param: Any, **kw) -> Field:
    """The field of a declared numeric policy parameter (a
    :class:`simulator.policies.declare.Param`, or anything with its attributes ``kind``
    (``"int"``/``"float"``), ``default``, ``low``, ``high`` (``inf``: unbounded), ``unit`` and
    ``help``): an :class:`Int` or :class:`Number` in ``[low, high]`` with the default, unit and
    help.  ``kw`` overrides the field arguments (e.g. ``default=MISSING``)."""
    if param.kind == "bool":
        args = dict(default=bool(param.default), help=param.help)
        args.update(kw)
        return Bool(**args)
    cls = Int if param.kind == "int" else Number
    high = None if math.isinf(param.high) else param.high
    low = None if math.isinf(param.low) else param.low
    args = dict(ge=low, le=high, default=param.default, unit=param.unit, help=param.help)
    args.update(kw)
    return cls(**args)


def _nullable(schema: dict) -> dict:
    """``schema`` that also accepts null (an optional key may be written with no value)."""
    if "$ref" not in schema and not {"anyOf", "oneOf", "allOf", "const"} & schema.keys():
        if "enum" in schema:
            schema = {**schema, "enum": list(schema["enum"]) + [None]}
        t = schema.get("type")
        if isinstance(t, str):
            return {**schema, "type": [t, "null"]}
        if isinstance(t, list):
            return {**schema, "type": t + ["null"]}
    outer = {k: schema[k] for k in ("description", "default") if k in schema}
    inner = {k: v for k, v in schema.items() if k not in outer}
    if set(inner) == {"anyOf"}:
        return {**outer, "anyOf": inner["anyOf"] + [{"type": "null"}]}
    return {**outer, "anyOf": [inner, {"type": "null"}]}
