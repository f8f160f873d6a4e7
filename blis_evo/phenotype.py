"""What a search genome decodes to, as one typed, frozen, hashable value: :class:`Phenotype`.

A phenotype is everything an individual changes about a deployment of the experiment:

* ``policy`` -- the control-plane policies and their parameters (:class:`PolicyConfig`),
  including the autoscaler (``policy.autoscaler``, also :attr:`Phenotype.autoscaler`) when the
  experiment has one and the search evolves it;
* ``engine`` -- the engine knobs a search may evolve (:class:`EngineKnobs`);
* ``layout`` -- the deployment layout (:class:`Layout`: replica count and prefill/decode split).

Every knob and layout field is an ``int`` or ``None``; ``None`` means "not chosen: the
experiment's value applies".  The genome decoders (:mod:`search.genome`, :mod:`search.gp`)
produce phenotypes, :func:`blis_evo.deployment.build_sim_config` turns one into the simulated
engine configuration of an experiment, and :meth:`Phenotype.bundle` writes it as a policy bundle
(``blis run --policy-config``) that reproduces it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from simulator.autoscale.config import AutoscalerConfig, to_mapping as autoscaler_mapping
from simulator.config import DisaggConfig, PolicyConfig, SimConfig

from .bundle import policy_sections


@dataclass(frozen=True)
class EngineKnobs:
    """Engine knobs (:class:`SimConfig` fields of the same names) a search may evolve and a
    bundle's ``engine`` section may set; ``None`` keeps the experiment's (or flag's) value."""

    snapshot_refresh_interval: int | None = None
    """µs between routing-snapshot refreshes."""
    long_prefill_token_threshold: int | None = None
    """Prefill chunk size in tokens (0 = no chunking)."""

    def items(self) -> tuple[tuple[str, int], ...]:
        """The knobs that are set, as ``(name, value)`` in field order."""
        return tuple((f.name, getattr(self, f.name)) for f in fields(self)
                     if getattr(self, f.name) is not None)

    def apply(self, cfg: SimConfig) -> SimConfig:
        """``cfg`` with the set knobs replaced."""
        return replace(cfg, **dict(self.items())) if self.items() else cfg


@dataclass(frozen=True)
class Layout:
    """The deployment layout a search may evolve; ``None`` keeps the experiment's cluster.

    ``num_instances``: total replicas.  ``pd_prefill_replicas``: size of the prefill pool
    (0 = monolithic; capped so the decode pool keeps at least one instance).
    ``pd_prefix_threshold``: when set, requests are disaggregated by the prefix-threshold
    decider with this bound (else every request with something to decode is disaggregated).
    """

    num_instances: int | None = None
    pd_prefill_replicas: int | None = None
    pd_prefix_threshold: int | None = None

    def items(self) -> tuple[tuple[str, int], ...]:
        """The fields that are set, as ``(name, value)`` in field order."""
        return tuple((f.name, getattr(self, f.name)) for f in fields(self)
                     if getattr(self, f.name) is not None)

    def disaggregation(self, num_instances: int) -> DisaggConfig | None:
        """The P/D pools of a cluster of ``num_instances`` replicas: None (monolithic) unless
        ``pd_prefill_replicas`` leaves a prefill and a decode pool of at least one each."""
        k = min(int(self.pd_prefill_replicas or 0), num_instances - 1)
        if k <= 0:
            return None
        if self.pd_prefix_threshold is not None:
            return DisaggConfig(prefill_replicas=k, decode_replicas=num_instances - k,
                                decider="prefix-threshold",
                                prefix_threshold=int(self.pd_prefix_threshold))
        return DisaggConfig(prefill_replicas=k, decode_replicas=num_instances - k)

    def apply(self, cfg: SimConfig) -> SimConfig:
        """``cfg`` resized to ``num_instances`` (when set) and split into P/D pools (when
        :meth:`disaggregation` says so)."""
        if self.num_instances is not None:
            cfg = replace(cfg, num_instances=int(self.num_instances))
        dc = self.disaggregation(cfg.num_instances)
        return cfg if dc is None else replace(cfg, disaggregation=dc)


@dataclass(frozen=True)
class Phenotype:
    """A policy with its engine knobs and deployment layout (see the module docstring)."""

    policy: PolicyConfig = PolicyConfig()
    engine: EngineKnobs = EngineKnobs()
    layout: Layout = Layout()

    @classmethod
    def of(cls, value: "Phenotype | PolicyConfig") -> "Phenotype":
        """``value`` as a phenotype: a bare :class:`PolicyConfig` keeps the experiment's engine
        knobs and layout."""
        if isinstance(value, Phenotype):
            return value
        if isinstance(value, PolicyConfig):
            return cls(value)
        raise TypeError(f"expected a Phenotype or a PolicyConfig, got {type(value).__name__}")

    @classmethod
    def from_knobs(cls, policy: PolicyConfig, knobs: Mapping[str, int] | None) -> "Phenotype":
        """A phenotype from a ``{name: int}`` mapping of engine-knob and layout field names
        (the older pair form of a policy and its knobs); ValueError on an unknown name."""
        knobs = dict(knobs or {})
        engine = {f.name for f in fields(EngineKnobs)}
        layout = {f.name for f in fields(Layout)}
        unknown = sorted(set(knobs) - engine - layout)
        if unknown:
            raise ValueError(f"unknown engine/layout knobs {unknown}; allowed: "
                             f"{', '.join(sorted(engine | layout))}")
        return cls(policy,
                   EngineKnobs(**{k: int(v) for k, v in knobs.items() if k in engine}),
                   Layout(**{k: int(v) for k, v in knobs.items() if k in layout}))

    @property
    def autoscaler(self) -> AutoscalerConfig | None:
        """The policy's autoscaler (None: a fixed-size cluster, or the experiment's applies)."""
        return self.policy.autoscaler

    def knob(self, name: str) -> int | None:
        """The engine knob or layout field ``name`` (a search-space gene name); None if unset."""
        for part in (self.engine, self.layout):
            if name in {f.name for f in fields(part)}:
                return getattr(part, name)
        raise KeyError(f"no engine knob or layout field {name!r}")

    def knob_items(self) -> tuple[tuple[str, int], ...]:
        """Every set engine knob and layout field as ``(name, value)``: engine first."""
        return self.engine.items() + self.layout.items()

    def bundle(self) -> dict[str, Any]:
        """The phenotype as a mapping in the policy-bundle schema of ``blis run
        --policy-config``, so that the file reproduces exactly what was evaluated.

        ``{admission: {policy[, parameters]}, routing: {policy[, scorers: [{name, weight}]]},
        priority: {policy}, scheduler: name[, engine: {...}][, disaggregation: {...}]
        [, autoscaler: {...}]}``: a family's parameters are written only for the policy that
        uses them and scorers only for ``weighted`` routing
        (:func:`blis_evo.bundle.policy_sections`).
        ``engine`` (a blis-evo extension, see :mod:`blis_evo.bundle`) holds the set engine knobs,
        as ints in field order, and is left out when none is set.  ``disaggregation`` is written
        for a disaggregated layout whose replica count is set (a monolithic one keeps the
        cluster's size).  Dump with ``yaml.safe_dump(p.bundle(), sort_keys=False)``.
        """
        out: dict[str, Any] = policy_sections(self.policy)
        if self.engine.items():
            out["engine"] = {k: int(v) for k, v in self.engine.items()}
        lay = self.layout
        if (lay.pd_prefill_replicas or 0) > 0 and lay.num_instances is not None:
            dc = lay.disaggregation(int(lay.num_instances))
            if dc is not None:
                out["disaggregation"] = {
                    "architecture": "disaggregated", "prefill_replicas": dc.prefill_replicas,
                    "decode_replicas": dc.decode_replicas, "decider": dc.decider,
                    "prefix_threshold": dc.prefix_threshold}
        if self.policy.autoscaler is not None:
            out["autoscaler"] = autoscaler_mapping(self.policy.autoscaler)
        return out
