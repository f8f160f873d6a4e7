"""Policy bundle YAML (``--policy-config``).

Behaviour port of BLIS ``sim/bundle.go`` (LoadPolicyBundle + Validate) @cbb0de7b; the scorer
lists are read by :mod:`blis_evo.scorers`, single values checked by :mod:`blis_evo.bundle_values`.
The file layout is::

    admission: {policy, token_bucket_capacity, token_bucket_refill_rate}
    routing:   {policy, scorers: [{name, weight}, ...], code_path}
    priority:  {policy, code_path}
    scheduler: <name>
    engine:    {snapshot_refresh_interval, long_prefill_token_threshold}   # blis-evo extension
    disaggregation: {...}   # blis-evo extension: P/D pools (blis_evo/disagg_settings.py)
    autoscaler: {policy, params, min_replicas, ...}   # blis-evo extension (simulator.autoscale.config)

The first four sections are the reference schema, plus ``code_path`` (blis-evo extension):
``policy: code`` in ``admission``, ``routing`` or ``priority`` takes the rule from the code
policy file ``code_path`` (:mod:`simulator.codepolicy`; relative to the bundle file's folder, or
absolute).  The bundle then holds ``"code:<path>"`` as the policy, as ``--routing-policy
code:PATH`` does; the file is read and sandbox-checked where the bundle becomes a PolicyConfig.  ``engine`` is a blis-evo extension (so the
accepted schema is a strict superset of the reference's): the two engine knobs the policy search
evolves besides the policies, integers >= 0 (``snapshot_refresh_interval`` in µs,
``long_prefill_token_threshold`` in tokens).  They take the place of the flags of the same
names (``--snapshot-refresh-interval``, ``--long-prefill-token-threshold``) with the usual
precedence, so a search's ``champion.yaml`` reproduces the evaluated champion exactly.  The
reference rejects a bundle with an ``engine`` section (unknown key); bundles without it are
read identically by both.

Parsing is strict: unknown or duplicate keys anywhere, wrong value types, invalid names and
bad numbers all raise :class:`InputError` naming the key path.  Every field is optional; a
missing/null/empty value means "not set" (the CLI flag or reference default applies).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from simulator import registry
from simulator.config import INT64_MAX as _INT64_MAX, PolicyConfig, ScorerSpec
from simulator.autoscale.config import AutoscalerConfig, parse_autoscaler
from simulator.errors import InputError, one_line
from simulator.fileio import read_text

from .bundle_values import (PREFIX, expect_mapping, expect_number, expect_string, go_quote,
                            type_name)
from .disagg_settings import parse_disagg_section
from .go_scalars import go_float_str
from .scorers import scorer_list



@dataclass(frozen=True)
class PolicyBundle:
    """The contents of a policy bundle; ``None`` / ``()`` means the field was not set."""

    admission_policy: str | None = None
    token_bucket_capacity: float | None = None
    token_bucket_refill_rate: float | None = None
    routing_policy: str | None = None
    scorers: tuple[ScorerSpec, ...] = ()
    priority_policy: str | None = None
    scheduler: str | None = None
    snapshot_refresh_interval: int | None = None
    long_prefill_token_threshold: int | None = None
    disaggregation: tuple = ()   # ((flag name, value), ...) set by the P/D section (disagg_settings)
    autoscaler: AutoscalerConfig | None = None

    def engine_params(self) -> dict[str, int]:
        """The ``engine`` knobs that are set, as ``{name: int}`` in :data:`ENGINE_KEYS` order
        (the ``sim_params`` mapping of ``search.evaluate``)."""
        return {k: int(getattr(self, k)) for k in ENGINE_KEYS if getattr(self, k) is not None}


ENGINE_KEYS = ("snapshot_refresh_interval", "long_prefill_token_threshold")
"""Keys of the ``engine`` section (also the PolicyBundle / SimConfig attribute names)."""


def bundle_from_policy(policy: PolicyConfig) -> PolicyBundle:
    """A bundle that sets every policy field of ``policy`` (and no engine knob).

    Used where a policy stands in for ``--policy-config`` (``blis run --experiment`` without a
    bundle uses the llm-d default profile), so explicit flags still override it field by field.
    """
    return PolicyBundle(
        admission_policy=policy.admission,
        token_bucket_capacity=float(policy.token_bucket_capacity),
        token_bucket_refill_rate=float(policy.token_bucket_refill_rate),
        routing_policy=policy.routing,
        scorers=tuple(policy.scorers),
        priority_policy=policy.priority,
        scheduler=policy.scheduler,
        autoscaler=policy.autoscaler,
    )


# ---------------------------------------------------------------------------------------------
# YAML loading
# ---------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads YAML 1.2 floats such as ``1e3``."""


_StrictLoader.yaml_implicit_resolvers = {
    key: list(resolvers) for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise InputError(f"{PREFIX}: keys must be plain scalars (line {key_node.start_mark.line + 1})")
        if key in seen:
            raise InputError(
                f"{PREFIX}: duplicate key {key!r} at line {key_node.start_mark.line + 1}"
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _policy_name(family: str, label: str, value: Any, path: str) -> str | None:
    name = expect_string(value, path)
    if name == registry.CODE_POLICY and family in registry.CODE_POLICY_FAMILIES:
        return name
    if name is not None and not registry.is_valid(family, name):
        valid = ", ".join(registry.valid_names(family))
        if family in registry.CODE_POLICY_FAMILIES:
            valid += f", {registry.CODE_POLICY} (with code_path)"
        raise InputError(f"{PREFIX} {path}: unknown {label} {go_quote(name)}; valid options: {valid}")
    return name


def _with_code_path(name: str | None, section: dict, path: str, base_dir: str | None) -> str | None:
    """``"code:<path>"`` for ``policy: code`` with ``code_path`` (relative paths resolved
    against ``base_dir``); ``name`` otherwise.  ``code`` needs ``code_path`` and vice versa."""
    code_path = expect_string(section.get("code_path"), f"{path}.code_path")
    if name != registry.CODE_POLICY:
        if code_path is not None:
            raise InputError(f"{PREFIX} {path}.code_path: only used with policy: "
                             f"{registry.CODE_POLICY}, got policy {go_quote(name or '')}")
        return name
    if code_path is None:
        raise InputError(f"{PREFIX} {path}.code_path: required with policy: "
                         f"{registry.CODE_POLICY} (the code policy file)")
    if base_dir is not None and not os.path.isabs(code_path):
        code_path = os.path.join(base_dir, code_path)
    return f"{registry.CODE_POLICY}:{code_path}"


def _non_negative(value: float | None, path: str) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value):
        raise InputError(f"{PREFIX} {path}: must be a finite number, got {go_float_str(value)}")
    if value < 0:
        raise InputError(f"{PREFIX} {path}: must be non-negative, got {go_float_str(value)}")
    return value


def _non_negative_int(value: Any, path: str) -> int | None:
    """An integer in [0, int64 max]; None when unset.  Booleans and floats are rejected."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{PREFIX} {path}: expected an integer >= 0, got {type_name(value)}")
    if value < 0:
        raise InputError(f"{PREFIX} {path}: must be an integer >= 0, got {value}")
    if value > int(_INT64_MAX):
        raise InputError(f"{PREFIX} {path}: must be at most {int(_INT64_MAX)}, got {value}")
    return int(value)


def bundle_from_mapping(doc: Any, base_dir: str | None = None) -> PolicyBundle:
    """Validate an already-parsed YAML document and build a :class:`PolicyBundle`.

    ``base_dir``: folder relative ``code_path`` values are resolved against (the bundle file's
    folder; None = as given, i.e. relative to the working directory)."""
    top = expect_mapping(doc, "", ("admission", "routing", "priority", "scheduler", "engine",
                             "disaggregation", "autoscaler"))
    admission = expect_mapping(top.get("admission"), "admission",
                         ("policy", "token_bucket_capacity", "token_bucket_refill_rate",
                          "code_path"))
    routing = expect_mapping(top.get("routing"), "routing", ("policy", "scorers", "code_path"))
    priority = expect_mapping(top.get("priority"), "priority", ("policy", "code_path"))
    # Same check order as the reference: names, then token-bucket numbers, then scorers.
    admission_policy = _policy_name("admission", "admission policy", admission.get("policy"),
                                    "admission.policy")
    routing_policy = _policy_name("routing", "routing policy", routing.get("policy"), "routing.policy")
    priority_policy = _policy_name("priority", "priority policy", priority.get("policy"),
                                   "priority.policy")
    scheduler = _policy_name("scheduler", "scheduler", top.get("scheduler"), "scheduler")
    admission_policy = _with_code_path(admission_policy, admission, "admission", base_dir)
    routing_policy = _with_code_path(routing_policy, routing, "routing", base_dir)
    priority_policy = _with_code_path(priority_policy, priority, "priority", base_dir)
    capacity = _non_negative(
        expect_number(admission.get("token_bucket_capacity"), "admission.token_bucket_capacity"),
        "admission.token_bucket_capacity")
    refill = _non_negative(
        expect_number(admission.get("token_bucket_refill_rate"), "admission.token_bucket_refill_rate"),
        "admission.token_bucket_refill_rate")
    scorers = scorer_list(routing.get("scorers"), "routing.scorers")
    engine = expect_mapping(top.get("engine"), "engine", ENGINE_KEYS)
    knobs = {k: _non_negative_int(engine.get(k), f"engine.{k}") for k in ENGINE_KEYS}
    autoscaler = None
    if top.get("autoscaler") is not None:
        autoscaler = parse_autoscaler(top["autoscaler"], f"{PREFIX} autoscaler")
    return PolicyBundle(
        admission_policy=admission_policy,
        token_bucket_capacity=capacity,
        token_bucket_refill_rate=refill,
        routing_policy=routing_policy,
        scorers=scorers,
        priority_policy=priority_policy,
        scheduler=scheduler,
        autoscaler=autoscaler,
        **knobs,
        disaggregation=tuple(parse_disagg_section(top.get("disaggregation")).items()),
    )


def load_policy_bundle(path: str) -> PolicyBundle:
    """Read, strictly parse and validate the policy bundle YAML at ``path``.

    Raises InputError (one line, naming the key path) on unreadable files, YAML syntax errors,
    empty or multi-document files, unknown/duplicate keys, wrong types, invalid policy or
    scorer names, duplicate scorers, non-positive/non-finite scorer weights, negative or
    non-finite token-bucket numbers and ``engine`` knobs that are not integers >= 0.
    """
    text = read_text(path, "--policy-config")
    try:
        docs = list(yaml.load_all(text, Loader=_StrictLoader))
    except yaml.YAMLError as exc:
        raise InputError(f"{PREFIX} {path}: invalid YAML: {one_line(exc)}") from None
    if not docs or docs[0] is None:
        raise InputError(f"{PREFIX} {path}: file is empty")
    if len(docs) > 1:
        raise InputError(f"{PREFIX} {path}: expected one YAML document, found {len(docs)}")
    return bundle_from_mapping(docs[0], os.path.dirname(os.path.abspath(path)))
