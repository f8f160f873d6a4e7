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

import os
from dataclasses import dataclass
from typing import Any

from simulator.policies import registry
from simulator.policies.declare import INT, Param
from simulator.policies.registry import family, policy_params
from simulator.policy_encoding import POLICY_FAMILIES
from simulator.config import INT64_MAX as _INT64_MAX, PolicyConfig, ScorerSpec
from simulator.autoscale.config import AutoscalerConfig, parse_autoscaler
from simulator.errors import InputError
from simulator.fileio import read_text
from simulator.schema import load_yaml

from .bundle_values import (PREFIX, expect_mapping, expect_number, expect_string, go_quote,
                            type_name)
from .disagg_settings import parse_disagg_section
from .scorers import scorer_list



@dataclass(frozen=True)
class PolicyBundle:
    """The contents of a policy bundle; ``None`` / ``()`` means the field was not set."""

    admission_policy: str | None = None
    routing_policy: str | None = None
    scorers: tuple[ScorerSpec, ...] = ()
    priority_policy: str | None = None
    scheduler: str | None = None
    snapshot_refresh_interval: int | None = None
    long_prefill_token_threshold: int | None = None
    disaggregation: tuple = ()   # ((flag name, value), ...) set by the P/D section (disagg_settings)
    autoscaler: AutoscalerConfig | None = None
    params: tuple[tuple[str, float], ...] = ()  # declared policy parameters the bundle sets

    def param(self, name: str) -> float | None:
        """The value the bundle gives policy parameter ``name``, or None when it sets none."""
        return dict(self.params).get(name)

    def engine_params(self) -> dict[str, int]:
        """The ``engine`` knobs that are set, as ``{name: int}`` in :data:`ENGINE_KEYS` order
        (what :class:`blis_evo.phenotype.EngineKnobs` holds)."""
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
        routing_policy=policy.routing,
        scorers=tuple(policy.scorers),
        priority_policy=policy.priority,
        scheduler=policy.scheduler,
        autoscaler=policy.autoscaler,
        params=policy.params,
    )


def policy_sections(policy: PolicyConfig) -> dict[str, Any]:
    """The policy sections of a bundle (``admission``, ``routing``, ``priority``,
    ``scheduler``) that reproduce ``policy``, from the declarations: each family's choice at its
    bundle path, followed by the parameters of the chosen policy (ints as ints), and the
    scorer list under ``weighted`` routing.  The inverse of :func:`bundle_from_mapping` on
    these sections."""
    out: dict[str, Any] = {}
    for key in POLICY_FAMILIES:
        fam = family(key)
        name = getattr(policy, key)
        if len(fam.bundle) == 1:
            out[fam.bundle[0]] = name
            continue
        section = out.setdefault(fam.bundle[0], {})
        section[fam.bundle[1]] = name
        if fam.has(name):
            for p in fam.get(name).params:
                value = policy.param(p.name)
                section[p.name] = int(value) if p.kind == INT else float(value)
        if key == "routing" and name == "weighted":
            section["scorers"] = [{"name": s.name, "weight": float(s.weight)} for s in policy.scorers]
    return out


def _policy_name(family: str, label: str, value: Any, path: str) -> str | None:
    name = expect_string(value, path)
    if name == registry.CODE_POLICY and registry.accepts_code(family):
        return name
    if name is not None and not registry.is_valid(family, name):
        valid = ", ".join(registry.valid_names(family))
        if registry.accepts_code(family):
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


def _param_value(param: Param, value: Any, path: str) -> float | None:
    """A declared policy parameter's bundle value, checked against its declaration (None when
    unset)."""
    number = expect_number(value, path)
    if number is None:
        return None
    problem = param.problem(value)
    if problem is not None:
        raise InputError(f"{PREFIX} {path}: {problem}")
    return number


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
    sections: dict[str, dict] = {}
    for key in POLICY_FAMILIES:   # each family's section: its choice, code_path, parameters
        fam = family(key)
        if len(fam.bundle) == 2:
            allowed = (fam.bundle[1], *(p.name for p in fam.params()),
                       *(("scorers",) if key == "routing" else ()),
                       *(("code_path",) if fam.code_policy is not None else ()))
            sections[key] = expect_mapping(top.get(fam.bundle[0]), fam.bundle[0], allowed)
    # Same check order as the reference: names, then token-bucket numbers, then scorers.
    names: dict[str, str | None] = {}
    for key in POLICY_FAMILIES:
        fam = family(key)
        path = ".".join(fam.bundle)
        value = sections[key].get(fam.bundle[1]) if key in sections else top.get(fam.bundle[0])
        names[key] = _policy_name(key, fam.label, value, path)
    for key in sections:
        if family(key).code_policy is not None:
            names[key] = _with_code_path(names[key], sections[key], family(key).bundle[0], base_dir)
    params = []
    for fam, _pol, p in policy_params():
        if fam.key in sections:
            value = _param_value(p, sections[fam.key].get(p.name), f"{fam.bundle[0]}.{p.name}")
            if value is not None:
                params.append((p.name, value))
    scorers = scorer_list(sections["routing"].get("scorers"), "routing.scorers")
    engine = expect_mapping(top.get("engine"), "engine", ENGINE_KEYS)
    knobs = {k: _non_negative_int(engine.get(k), f"engine.{k}") for k in ENGINE_KEYS}
    autoscaler = None
    if top.get("autoscaler") is not None:
        autoscaler = parse_autoscaler(top["autoscaler"], f"{PREFIX} autoscaler")
    return PolicyBundle(
        admission_policy=names["admission"],
        routing_policy=names["routing"],
        scorers=scorers,
        priority_policy=names["priority"],
        scheduler=names["scheduler"],
        autoscaler=autoscaler,
        params=tuple(params),
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
    doc = load_yaml(read_text(path, "--policy-config"), f"{PREFIX} {path}", "policy bundle")
    return bundle_from_mapping(doc, os.path.dirname(os.path.abspath(path)))
