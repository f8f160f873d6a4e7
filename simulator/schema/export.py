"""JSON Schema (draft 2020-12) documents of the input files, for editors and other tools.

``blis schema <name>`` prints :func:`document` of the named root field; an editor given the
schema (e.g. a ``# yaml-language-server: $schema=...`` comment) completes keys, shows their help
and flags wrong types, bounds, names and unknown keys while typing.
"""
from __future__ import annotations

from .fields import Field

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def document(root: Field, title: str, description: str = "") -> dict:
    """The complete JSON Schema of ``root``: ``$schema``, ``title``, the root's schema and the
    shared sub-schemas (fields declared with ``ref``) under ``$defs``."""
    defs: dict = {}
    body = root.json(defs)
    out = {"$schema": DIALECT, "title": title}
    if description:
        out["description"] = description
    out.update({k: v for k, v in body.items() if not (k == "description" and description)})
    if defs:
        out["$defs"] = dict(sorted(defs.items()))
    return out
