"""One schema layer for the YAML input files: a strict loader, declarative field types that
parse and validate a document into one-line errors naming the key path, and the JSON Schema of
the same declarations.

* :mod:`.loader` -- :func:`load_yaml` / :func:`read_yaml`: the one strict YAML loader;
* :mod:`.fields` -- :class:`Mapping`, :class:`Int`, :class:`Number`, :class:`Str`,
  :class:`Bool`, :class:`Choice`, :class:`ListOf`, :class:`Switch`, :class:`Tagged`,
  :class:`Either`, :class:`Custom`, :func:`from_param`, :class:`At` (where a value is, and
  the error raised there) and :class:`Wording` (how errors are phrased; :data:`STANDARD`
  unless a format keeps another convention);
* :mod:`.export` -- :func:`document`: a JSON Schema (draft 2020-12) document.

A schema is plain data built with these types, by hand or by code (e.g. one field per declared
policy parameter with :func:`from_param`)::

    from simulator.schema import At, Mapping, from_param

    params = Mapping({p.name: from_param(p) for p in policy.params}, fill_defaults=False,
                     key_what=f"parameter of {policy.name}")
    values = params.parse(doc, At("bundle.yaml", "autoscaler.params"))
    # bundle.yaml: autoscaler.params.step must be in [1, 64], got 65

Why hand-written and not pydantic (installed with ray, not a dependency of ours): the parsers
run on the ``blis run`` path, whose start-up time is budgeted -- this package imports only the
standard library and PyYAML, in a few milliseconds, while importing pydantic and
building one model took ~0.7 s on the (busy, 2-core) development machine; and the error format
(one line, the key path, the allowed values, null meaning absent, integral floats as integers)
and schemas built from policy declarations at run time would need as much adapter code as the
field types themselves.  Nothing here imports from ``blis_evo`` or ``search``: the simulator's
own inputs (workload specs) are declared with it.
"""
from .export import document
from .fields import (MISSING, STANDARD, At, Bool, Choice, Custom, Either, Field, Int, ListOf,
                     Mapping, Number, Str, Switch, Tagged, Wording, forbidden, from_param,
                     range_text, show)
from .loader import load_yaml, read_yaml, strict_loader

__all__ = ["MISSING", "STANDARD", "At", "Bool", "Choice", "Custom", "Either", "Field", "Int",
           "ListOf", "Mapping", "Number", "Str", "Switch", "Tagged", "Wording", "document",
           "forbidden", "from_param", "load_yaml", "range_text", "read_yaml", "show",
           "strict_loader"]
