"""How policy-bundle errors are phrased: :data:`BUNDLE_WORDING`, the :class:`simulator.schema.Wording`
of the bundle's schema (:mod:`blis_evo.bundle`, its scorer lists in :mod:`blis_evo.scorers`, its
``disaggregation`` section in :mod:`blis_evo.disagg_settings`).

The bundle is a port of the reference's format and keeps its message convention: one line
``policy-config <key path>: <problem>``, e.g. ``policy-config admission.polcy: unknown key
(allowed: policy, token_bucket_capacity, ...)``, ``policy-config scheduler: expected a string,
got integer`` or ``policy-config routing.policy: unknown routing policy "random"; valid options:
...``.
"""
from __future__ import annotations

import json
from typing import Any

from simulator.schema import Wording, show

PREFIX = "policy-config"
"""What every policy-bundle error starts with."""


def go_quote(text: str) -> str:
    """Double-quoted string, like Go's %q for plain text (how the reference quotes names in
    errors)."""
    return json.dumps(text, ensure_ascii=False)


def type_name(value: Any) -> str:
    """The YAML type name of a parsed value, for errors (``boolean``, ``integer``, ``mapping``...)."""
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", type(None): "null"}.get(type(value), type(value).__name__)


class BundleWording(Wording):
    """``<source> <path>: <problem>``; a wrong type names the YAML type it got, a value out of
    bounds the allowed values in full, an unknown name its label and the valid names."""

    top = "(top level)"

    def line(self, source, path, problem):
        where = f"{path}: {problem}" if path else problem
        return f"{source} {where}" if source else where

    def expected(self, field, got):
        return f"expected {field.describe()}, got {type_name(got)}"

    def out_of_range(self, field, got):
        return f"must be {field.hint()}, got {show(got)}"

    def unknown_name(self, field, got):
        if not isinstance(got, str):
            return f"expected a string, got {type_name(got)}"
        return f"unknown {field.label} {go_quote(got)}; valid options: {', '.join(field.listed())}"

    def unknown_key(self, key_what, valid):
        return f"unknown {key_what} (allowed: {', '.join(valid)})"


BUNDLE_WORDING = BundleWording()
