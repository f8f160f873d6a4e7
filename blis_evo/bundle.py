"""Policy bundle YAML (``--policy-config``).

Behaviour port of BLIS ``sim/bundle.go`` (LoadPolicyBundle + Validate) @cbb0de7b, declared with
:mod:`simulator.schema` (:func:`bundle_schema`; ``blis schema bundle`` prints it).  The policy
sections and their parameters are derived from the policy registry
(:mod:`simulator.policies.registry`) each time the schema is built, so a registered policy is
part of it; the scorer lists are declared in :mod:`blis_evo.scorers`, the ``disaggregation``
section in :mod:`blis_evo.disagg_settings`, the ``autoscaler`` section in
:mod:`simulator.autoscale.config`, and the reference's error wording in
:mod:`blis_evo.bundle_values`.  The file layout is::

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
code:PATH`` does; the file is read and sandbox-checked where the bundle becomes a
PolicyConfig.  ``engine`` is a blis-evo extension (so the accepted schema is a strict superset of the reference's): the two engine knobs the policy search
evolves besides the policies, integers >= 0 (``snapshot_refresh_interval`` in µs,
``long_prefill_token_threshold`` in tokens).  They take the place of the flags of the same
names (``--snapshot-refresh-interval``, ``--long-prefill-token-threshold``) with the usual
precedence, so a search's ``champion.yaml`` reproduces the evaluated champion exactly.  The
reference rejects a bundle with an ``engine`` section (unknown key); bundles without it are
read identically by both.

Parsing is strict: unknown or duplicate keys anywhere, wrong value types, invalid names and
bad numbers all raise :class:`InputError` naming the key path (``policy-config <path>:
<problem>``).  Every field is optional; a
missing/null/empty value means "not set" (the CLI flag or reference default applies).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from simulator.policies import registry
from simulator.policies.declare import BOOL, INT
from simulator.policies.registry import family
from simulator.policy_encoding import POLICY_FAMILIES
from simulator.config import PolicyConfig, ScorerSpec
from simulator.autoscale.config import AUTOSCALER, AutoscalerConfig
from simulator.fileio import read_text
from simulator.schema import (MISSING, At, Choice, Custom, Field, Int, Mapping, Str, from_param,
                              load_yaml)
from simulator.slo import SLO_CLASS_NAMES, override_problem

from .bundle_values import BUNDLE_WORDING, PREFIX, go_quote
from .disagg_settings import DISAGGREGATION
from .scorers import scorer_list_field


@dataclass(frozen=True)
class PolicyBundle:
    """The contents of a policy bundle; ``None`` / ``()`` means the field was not set."""

    admission_policy: str | None = None
    routing_policy: str | None = None
    scorers: tuple[ScorerSpec, ...] = ()
    priority_policy: str | None = None
    scheduler: str | None = None
    preemption_policy: str | None = None
    flow_control_policy: str | None = None   # flow_control.policy: off | gateway
    saturation_detector_policy: str | None = None
    dispatch_order: str | None = None
    fairness_policy: str | None = None
    slo_priorities: tuple[tuple[str, int], ...] = ()  # admission.slo_priorities overrides
    slo_targets: tuple[tuple[str, int], ...] = ()     # admission.slo_targets (µs per class)
    tenant_budgets: tuple[tuple[str, float], ...] = ()  # tenant_budgets: {tenant: share}
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
        preemption_policy=policy.preemption,
        flow_control_policy=policy.flow_control,
        saturation_detector_policy=policy.saturation_detector,
        dispatch_order=policy.dispatch_order,
        fairness_policy=policy.fairness,
        slo_priorities=policy.slo_priorities,
        slo_targets=policy.slo_targets,
        tenant_budgets=policy.tenant_budgets,
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
        if key in _WRITTEN_WHEN_SET and name == fam.default:
            continue  # (written only when set: bundles from before they existed stay the same)
        if len(fam.bundle) == 1:
            out[fam.bundle[0]] = name
            continue
        section = out.setdefault(fam.bundle[0], {})
        section[fam.bundle[1]] = name
        if fam.has(name):
            for p in fam.get(name).params:
                value = policy.param(p.name)
                section[p.name] = (int(value) if p.kind == INT else bool(value)
                                   if p.kind == BOOL else float(value))
        if key == "routing" and name == "weighted":
            section["scorers"] = [{"name": s.name, "weight": float(s.weight)} for s in policy.scorers]
        if key == "admission" and policy.slo_priorities:
            section["slo_priorities"] = dict(policy.slo_priorities)
        if key == "admission" and policy.slo_targets:
            section["slo_targets"] = dict(policy.slo_targets)
    if policy.tenant_budgets:
        out["tenant_budgets"] = dict(policy.tenant_budgets)
    return out


_WRITTEN_WHEN_SET = ("preemption", "flow_control", "saturation_detector", "dispatch_order",
                     "fairness")
"""Families a written bundle names only when not at their default (they came later)."""


# ---------------------------------------------------------------------------------------------
# The schema (simulator.schema declarations, derived from the policy registry when used)
# ---------------------------------------------------------------------------------------------


def _policy_choice(key: str, **kw) -> Choice:
    """A family's policy name: a declared policy, ``code`` where the family takes code
    policies, or ``""`` (unset)."""
    fam = family(key)

    def names():
        return (*registry.valid_names(key), *((registry.CODE_POLICY,) if fam.code_policy is not None
                                              else ()), "")
    return Choice(names, label=fam.label, notes={registry.CODE_POLICY: "with code_path"},
                  help=f"{fam.help} (default: {fam.default})"
                       + (f"; {registry.CODE_POLICY}: the rule in the code policy file code_path"
                          if fam.code_policy is not None else ""), **kw)


def _section_policy(key: str, section: dict, at: At) -> str | None:
    """The policy a family's section chooses (None: unset): the name, or ``"code:<path>"`` for
    ``policy: code`` with ``code_path`` (relative paths resolved against the bundle's folder,
    ``at.context``).  ``code`` needs ``code_path`` and vice versa."""
    name = section.get(family(key).bundle[1]) or None
    code_path = section.get("code_path") or None
    if name != registry.CODE_POLICY:
        if code_path is not None:
            (at / "code_path").fail(f"only used with policy: {registry.CODE_POLICY}, got policy "
                                    f"{go_quote(name or '')}")
        return name
    if code_path is None:
        (at / "code_path").fail(f"required with policy: {registry.CODE_POLICY} (the code policy "
                                "file)")
    if at.context is not None and not os.path.isabs(code_path):
        code_path = os.path.join(at.context, code_path)
    return f"{registry.CODE_POLICY}:{code_path}"


def _family_section(key: str) -> Field:
    """The bundle field of family ``key``: its policy name, or (two-level families) a section
    with the choice, every declared parameter of the family's policies, the scorer list
    (routing) and ``code_path`` (families taking code policies).  Parsed to ``(policy or None,
    ((parameter, value), ...), scorers)``."""
    fam = family(key)
    if len(fam.bundle) == 1:
        return _policy_choice(key, then=lambda v, at: (v or None, (), ()))
    fields: dict[str, Field] = {fam.bundle[1]: _policy_choice(key)}
    for pol in fam.policies:
        for p in pol.params:
            fields[p.name] = from_param(p, default=MISSING,
                                        help=f"{pol.name}: {p.help} (default: {p.default:g})")
    if key == "routing":
        fields["scorers"] = scorer_list_field(help="the weighted router's scorers")
    if key in ("admission", "priority"):
        fields["slo_priorities"] = _slo_priorities_field()
    if key == "admission":
        fields["slo_targets"] = _slo_targets_field()
    if fam.code_policy is not None:
        fields["code_path"] = Str(help=f"policy {registry.CODE_POLICY}: the code policy file "
                                       "(relative to the bundle file's folder, or absolute)")
    params = [p.name for p in fam.params()]

    def build(section, at):
        return (_section_policy(key, section, at),
                tuple((n, float(section[n])) for n in params if n in section),
                section.get("scorers", ()), section.get("slo_priorities") or {},
                section.get("slo_targets") or {})
    return Mapping(fields, fill_defaults=False, then=build, help=f"the {fam.label} ({fam.help})")


def _slo_priorities(doc: dict, at: At) -> tuple[tuple[str, int], ...]:
    """``admission.slo_priorities`` (the reference's key) or ``priority.slo_priorities`` (the
    same overrides where the priority policy is chosen); at most one of them."""
    given = [(sec, doc[sec][3]) for sec in ("admission", "priority")
             if sec in doc and len(doc[sec]) > 3 and doc[sec][3]]
    if len(given) > 1:
        (at / "priority" / "slo_priorities").fail(
            "set SLO priorities in one place: admission.slo_priorities or "
            "priority.slo_priorities, not both")
    return tuple(sorted(given[0][1].items())) if given else ()


def _slo_priorities_field() -> Field:
    def check(v, at):
        if not isinstance(v, dict):
            at.fail(f"must be a mapping {{class: priority}}, got {type(v).__name__}")
        for name, value in v.items():
            problem = override_problem(name, value)
            if problem is not None:
                (at / str(name)).fail(problem)
        return {str(k): int(val) for k, val in v.items()}
    return Custom(check, json_schema={
        "type": "object", "propertyNames": {"enum": list(SLO_CLASS_NAMES)},
        "additionalProperties": {"type": "integer", "minimum": -100, "maximum": 100}},
        what="a mapping", help="SLO-tier priority per class, integers in [-100, 100] (defaults "
                               "critical 4, standard 3, batch -1, sheddable -2, background -3; "
                               "realtime/interactive follow critical/standard; < 0 = sheddable)")


def _slo_targets_field() -> Field:
    def check(v, at):
        if not isinstance(v, dict):
            at.fail(f"must be a mapping {{class: µs}}, got {type(v).__name__}")
        for name, value in v.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                (at / str(name)).fail(f"must be a positive integer (µs), got {value!r}")
        return {str(k): int(val) for k, val in v.items()}
    return Custom(check, json_schema={"type": "object", "additionalProperties": {
        "type": "integer", "exclusiveMinimum": 0}}, what="a mapping",
        help="slo-deadline dispatch: µs each SLO class may wait in the gateway queue")


def _tenant_budgets_field() -> Field:
    def check(v, at):
        if not isinstance(v, dict):
            at.fail(f"must be a mapping {{tenant: share}}, got {type(v).__name__}")
        for name, value in v.items():
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and 0.0 <= float(value) <= 1.0)
            if not ok:
                (at / str(name)).fail(f"must be a share of capacity in [0, 1], got {value!r}")
        return {str(k): float(val) for k, val in v.items()}
    return Custom(check, json_schema={"type": "object", "additionalProperties": {
        "type": "number", "minimum": 0, "maximum": 1}}, what="a mapping",
        help="tenant -> share of capacity (instances x max running requests); a tenant at or "
             "above its share has its sheddable requests rejected")


def _build(doc: dict, at: At) -> PolicyBundle:
    chosen = {key: doc.get(family(key).bundle[0], (None, (), ())) for key in POLICY_FAMILIES}
    engine = doc.get("engine", {})
    return PolicyBundle(
        admission_policy=chosen["admission"][0],
        routing_policy=chosen["routing"][0],
        scorers=chosen["routing"][2],
        priority_policy=chosen["priority"][0],
        scheduler=chosen["scheduler"][0],
        preemption_policy=chosen["preemption"][0],
        flow_control_policy=chosen["flow_control"][0],
        saturation_detector_policy=chosen["saturation_detector"][0],
        dispatch_order=chosen["dispatch_order"][0],
        fairness_policy=chosen["fairness"][0],
        slo_priorities=_slo_priorities(doc, at),
        slo_targets=tuple(sorted(doc["admission"][4].items())) if "admission" in doc else (),
        tenant_budgets=tuple(sorted((doc.get("tenant_budgets") or {}).items())),
        autoscaler=doc.get("autoscaler"),
        params=tuple(p for key in POLICY_FAMILIES for p in chosen[key][1]),
        **{k: engine.get(k) for k in ENGINE_KEYS},
        disaggregation=tuple(doc.get("disaggregation", {}).items()),
    )


def bundle_schema() -> Mapping:
    """The policy bundle's schema as the policy registry declares it now (a policy registered
    later, e.g. an extension's, is part of the next call's schema).  Parses to a
    :class:`PolicyBundle`."""
    sections = {family(key).bundle[0]: _family_section(key) for key in POLICY_FAMILIES}
    engine = Mapping({
        "snapshot_refresh_interval": Int(ge=0, integral_floats=False, unit="µs",
                                         help="router snapshot refresh interval "
                                              "(--snapshot-refresh-interval)"),
        "long_prefill_token_threshold": Int(ge=0, integral_floats=False, unit="tokens",
                                            help="chunked-prefill threshold "
                                                 "(--long-prefill-token-threshold)"),
    }, fill_defaults=False, help="engine knobs (blis-evo extension)")
    return Mapping({**sections, "tenant_budgets": _tenant_budgets_field(), "engine": engine,
                    "disaggregation": DISAGGREGATION, "autoscaler": AUTOSCALER},
                   fill_defaults=False, then=_build,
                   help="a policy bundle (--policy-config); every key is optional, a missing, "
                        "null or empty value means not set (the flag or default applies)")


def __getattr__(name: str):
    if name == "BUNDLE":   # the schema now (``blis schema bundle``)
        return bundle_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def bundle_from_mapping(doc: Any, base_dir: str | None = None) -> PolicyBundle:
    """Validate an already-parsed YAML document and build a :class:`PolicyBundle`.

    ``base_dir``: folder relative ``code_path`` values are resolved against (the bundle file's
    folder; None = as given, i.e. relative to the working directory)."""
    return bundle_schema().parse({} if doc is None else doc,
                                 At(PREFIX, context=base_dir, wording=BUNDLE_WORDING))


def load_policy_bundle(path: str) -> PolicyBundle:
    """Read, strictly parse and validate the policy bundle YAML at ``path``.

    Raises InputError (one line, naming the key path) on unreadable files, YAML syntax errors,
    empty or multi-document files, unknown/duplicate keys, wrong types, invalid policy or
    scorer names, duplicate scorers, non-positive/non-finite scorer weights, negative or
    non-finite token-bucket numbers and ``engine`` knobs that are not integers >= 0.
    """
    doc = load_yaml(read_text(path, "--policy-config"), f"{PREFIX} {path}", "policy bundle")
    return bundle_from_mapping(doc, os.path.dirname(os.path.abspath(path)))
