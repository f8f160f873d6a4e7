"""Resolve parsed ``blis run`` flags into validated, frozen run settings.

Behaviour port of the flag handling in BLIS ``cmd/root.go`` @cbb0de7b: precedence is
explicit flag (cobra ``Changed()``) > policy bundle (``--policy-config``) > reference default,
and every flag is validated once, here, with a one-line :class:`InputError` naming the flag.
The bundle's ``engine`` section (blis-evo extension) sits at the same level for
``--snapshot-refresh-interval`` and ``--long-prefill-token-threshold``.

``--experiment E`` (blis-evo extension) takes the cluster and workload from a search experiment
(:mod:`blis_evo.experiment`): ``sim`` is then the exact SimConfig the search simulates for
``--seed`` (:func:`blis_evo.deployment.build_sim_config`), only the flags in
:func:`blis_evo.flags.experiment_compatible` flags may be given, the policy defaults to the llm-d
weighted profile when there is no ``--policy-config``, and the engine knobs default to the
experiment's values.

Not resolved here (left to the caller): the latency model (alpha/beta from the defaults YAML,
roofline configs, the defaults-file KV-block override) and preset workload parameters.  The raw
inputs for those are kept in :class:`LatencyInputs` and :class:`WorkloadSettings`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.autoscale.config import AutoscalerConfig, parse_autoscaler, to_mapping
from simulator.codepolicy import CodePolicy, load_code_policy_file
from simulator.config import DEFAULT_SCORERS, PolicyConfig, ScorerSpec, SimConfig
from simulator.policies.registry import CODE_POLICY, policy_params
from simulator.errors import InputError
from simulator.slo import parse_slo_targets

from .baselines import BASELINES
from .disagg_settings import PD_FIELDS, resolve_disaggregation
from .phenotype import EngineKnobs, Phenotype
from .bundle import PolicyBundle, bundle_from_policy, load_policy_bundle
from .flags import (CODE_PREFIX, experiment_compatible, explicit_flags, flag_by_name,
                    parse_fitness_weights, parse_run_args, run_flags)
from .go_scalars import go_float_str
from .scorers import parse_scorers

SHIPPED_DEFAULTS_YAML = str(Path(__file__).resolve().parent / "data" / "defaults.yaml")


@dataclass(frozen=True)
class LatencyInputs:
    """Raw inputs of the step-time model, resolved later by the caller (as in cmd/root.go)."""

    model: str
    hardware: str
    tp: int
    vllm_version: str
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    model_config_folder: str
    hardware_config: str
    defaults_filepath: str
    latency_model: str  # "auto" (choose like BLIS), "blackbox", "roofline" or "trained-physics"
    total_kv_blocks_explicit: bool  # True: --total-kv-blocks given, the defaults YAML must not override
    dp: int = 1  # data parallelism of a MoE model (trained-physics)
    enable_expert_parallel: bool = False
    moe_comm_backend: str = ""  # "" = the reference's default (allgather_reducescatter)
    block_size: int = 16  # tokens per KV block (trained-physics KV sizing)
    gpu_memory_utilization: float = 0.9  # fraction of GPU memory (trained-physics KV sizing)


@dataclass(frozen=True)
class WorkloadSettings:
    """Workload choice and its raw parameters (rate in requests/second, as on the command line)."""

    kind: str  # distribution | traces | chatbot | summarization | contentgen | multidoc | experiment
    traces_path: str
    spec_path: str
    rate: float
    num_requests: int
    prefix_tokens: int
    prompt_tokens: int
    prompt_tokens_stdev: int
    prompt_tokens_min: int
    prompt_tokens_max: int
    output_tokens: int
    output_tokens_stdev: int
    output_tokens_min: int
    output_tokens_max: int
    seed: int


@dataclass(frozen=True)
class RunSettings:
    """Everything ``blis run`` needs, validated.  ``sim.latency`` is still the default
    LatencyConfig and ``sim.total_kv_blocks`` the flag value: resolve both from ``latency``."""

    sim: SimConfig
    policy: PolicyConfig
    latency: LatencyInputs
    workload: WorkloadSettings
    fitness_weights: dict[str, float] | None
    trace_level: str  # "none" or "decisions"
    summarize_trace: bool  # --summarize-trace / =true: the short decision-count summary
    results_path: str
    log_level: str  # lower-cased logrus level name
    policy_config_path: str
    max_model_len: int  # accepted, unused (as in the reference)
    explicit: frozenset[str] = frozenset()  # flag names the user set (cobra Changed())
    warnings: tuple[str, ...] = field(default=())  # non-fatal notices the reference logs as warnings
    trace_output: str = ""  # --trace-output: directory for the trace v2 export ("" = none)
    # --experiment: the loaded blis_evo.experiment.Experiment (None = a plain run).  ``sim`` is
    # then final (latency and KV blocks resolved) and the workload is the experiment's.
    experiment: Any = None
    trace_report: bool = False  # --summarize-trace=text: the markdown report (blis_evo.summary)


_ENGINE_FLAGS = (  # (flag name, SimConfig / bundle engine attribute)
    ("snapshot-refresh-interval", "snapshot_refresh_interval"),
    ("long-prefill-token-threshold", "long_prefill_token_threshold"),
)
_BUNDLE_FIELDS = (
    # (flag name, PolicyBundle attribute)
    ("admission-policy", "admission_policy"),
    ("routing-policy", "routing_policy"),
    ("priority-policy", "priority_policy"),
    ("scheduler", "scheduler"),
    ("preemption-policy", "preemption_policy"),
    ("saturation-detector", "saturation_detector_policy"),
    ("dispatch-order", "dispatch_order"),
    ("fairness-policy", "fairness_policy"),
) + _ENGINE_FLAGS


def effective_values(ns: argparse.Namespace, bundle: PolicyBundle | None) -> dict[str, Any]:
    """Flag name -> value after precedence: explicit flag > bundle field > reference default
    (declared policy parameters: their flag > the bundle's value > the declared default)."""
    values: dict[str, Any] = {}
    for flag in run_flags():
        given = getattr(ns, flag.dest, None)
        values[flag.name] = flag.default if given is None else given
    if bundle is not None:
        from_bundle = [(name, getattr(bundle, attr)) for name, attr in _BUNDLE_FIELDS]
        if bundle.flow_control_policy is not None:  # an on/off switch on the command line
            from_bundle.append(("flow-control", bundle.flow_control_policy == "gateway"))
        from_bundle += [(p.flag, bundle.param(p.name)) for _, _, p in policy_params()]
        for name, value in from_bundle:
            if value is not None and getattr(ns, name.replace("-", "_"), None) is None:
                values[name] = value
    return values


def _check_token_ranges(v: dict[str, Any], kind: str) -> None:
    lo, hi = v[f"{kind}-tokens-min"], v[f"{kind}-tokens-max"]
    mean, stdev = v[f"{kind}-tokens"], v[f"{kind}-tokens-stdev"]
    if not (lo <= mean <= hi and lo <= stdev <= hi):
        raise InputError(
            f"--{kind}-tokens and --{kind}-tokens-stdev must be in [--{kind}-tokens-min, "
            f"--{kind}-tokens-max] = [{lo}, {hi}], got {mean} and {stdev}"
        )


def _choose_scorers(routing: str, flag_text: str, bundle: PolicyBundle | None) -> tuple[ScorerSpec, ...]:
    parsed = parse_scorers(flag_text)  # validated even when unused (typos are still errors)
    if routing != "weighted":
        return DEFAULT_SCORERS
    if parsed:
        return parsed
    if bundle is not None and bundle.scorers:
        return bundle.scorers
    return DEFAULT_SCORERS


def _code_policy(family: str, value: str,
                 bundle: PolicyBundle | None = None) -> tuple[str, CodePolicy | None]:
    """(policy name, code policy) of a policy value: ``code:PATH`` loads and sandbox-checks
    the file (InputError naming where the path came from, the flag or the bundle's
    ``code_path``, or ``PATH:LINE: ...`` for rejected code)."""
    if not value.startswith(CODE_PREFIX):
        return value, None
    source = f"--{family}-policy"
    if bundle is not None and getattr(bundle, f"{family}_policy", None) == value:
        source = f"policy-config {family}.code_path"
    return CODE_POLICY, load_code_policy_file(value[len(CODE_PREFIX):], family, flag=source)


def _policy_config(v: dict[str, Any], bundle: PolicyBundle | None) -> PolicyConfig:
    """The PolicyConfig of effective flag values ``v`` (scorers: flag > bundle > default)."""
    defaults = PolicyConfig()
    admission, admission_code = _code_policy(
        "admission", v["admission-policy"] or defaults.admission, bundle)
    routing, routing_code = _code_policy("routing", v["routing-policy"] or defaults.routing, bundle)
    priority, priority_code = _code_policy(
        "priority", v["priority-policy"] or defaults.priority, bundle)
    return PolicyConfig(
        admission=admission,
        params=tuple((p.name, float(v[p.flag])) for _, _, p in policy_params()),
        routing=routing,
        scorers=_choose_scorers(routing, v["routing-scorers"], bundle),
        priority=priority,
        scheduler=v["scheduler"] or defaults.scheduler,
        preemption=v["preemption-policy"] or defaults.preemption,
        flow_control="gateway" if v["flow-control"] else "off",
        saturation_detector=v["saturation-detector"] or defaults.saturation_detector,
        dispatch_order=v["dispatch-order"] or defaults.dispatch_order,
        fairness=v["fairness-policy"] or defaults.fairness,
        slo_targets=(parse_slo_targets(v["slo-targets"]) if v["slo-targets"]
                     else bundle.slo_targets if bundle is not None else ()),
        tenant_budgets=bundle.tenant_budgets if bundle is not None else (),
        slo_priorities=bundle.slo_priorities if bundle is not None else (),
        routing_code=routing_code,
        admission_code=admission_code,
        priority_code=priority_code,
        autoscaler=bundle.autoscaler if bundle is not None else None,
    )


_AUTOSCALER_KEYS = (  # (flag name, autoscaler mapping key)
    ("min-replicas", "min_replicas"), ("max-replicas", "max_replicas"),
    ("autoscaler-interval", "interval_s"), ("provisioning-delay", "provisioning_delay_s"),
    ("model-load-time", "model_load_time_s"), ("warmup-duration", "warmup_duration_s"),
    ("warmup-profile", "warmup_profile"), ("drain-policy", "drain_policy"),
    ("autoscaler-slo-ttft", "slo_ttft_ms"), ("autoscaler-slo-trigger", "trigger_slo_attainment"),
    ("autoscaler-slo-window", "trigger_slo_window"),
)


def _autoscaler_config(v: dict[str, Any], explicit: frozenset[str],
                       bundle: PolicyBundle | None) -> AutoscalerConfig | None:
    """The autoscaler: the bundle's ``autoscaler`` section with explicit flags laid over it, or
    the flags alone when ``--autoscaler`` names a policy; None (fixed cluster) otherwise.
    ``--max-replicas`` 0 / unset without a bundle section means max(--num-instances,
    --min-replicas).  A different ``--autoscaler`` policy drops the bundle's params."""
    base = bundle.autoscaler if bundle is not None else None
    name = v["autoscaler"] if "autoscaler" in explicit and v["autoscaler"] != "" else None
    if base is None and name is None:
        return None
    doc = to_mapping(base) if base is not None else {"policy": name}
    if name is not None and name != doc["policy"]:
        doc.update(policy=name, params={})
    for flag, key in _AUTOSCALER_KEYS:
        if flag in explicit:
            doc[key] = v[flag]
    if doc.get("max_replicas", 0) == 0:
        doc["max_replicas"] = max(v["num-instances"], doc.get("min_replicas", 1))
    return parse_autoscaler(doc, "autoscaler")


def _check_autoscaled_cluster(asc: AutoscalerConfig | None, disagg, v: dict[str, Any],
                              explicit: frozenset[str]) -> None:
    """Cross-field rules of an autoscaled run: the deployment is monolithic, and an explicit
    ``--num-instances`` (the initial replica count) lies within [min, max] replicas."""
    if asc is None:
        return
    if disagg is not None:
        raise InputError("--autoscaler: autoscaling applies to monolithic deployments; drop "
                         "--architecture disaggregated (or the bundle's disaggregation section) "
                         "or the autoscaler")
    n = v["num-instances"]
    if "num-instances" in explicit and not asc.min_replicas <= n <= asc.max_replicas:
        raise InputError(f"--num-instances: {n} is the initial replica count of an autoscaled "
                         f"cluster and must lie within --min-replicas {asc.min_replicas} .. "
                         f"--max-replicas {asc.max_replicas}")


def policy_from_bundle(bundle: PolicyBundle) -> PolicyConfig:
    """The engine policy ``blis run --policy-config`` uses for ``bundle`` when no policy flag
    is given: unset fields take the reference defaults (= :class:`PolicyConfig` defaults) and
    weighted routing without scorers gets :data:`DEFAULT_SCORERS`.

    Shares the precedence code of :func:`resolve_run_settings`, so library callers (e.g.
    ``search.replay.load_policy``) and the CLI cannot disagree about a bundle.
    """
    return _policy_config(effective_values(parse_run_args([]), bundle), bundle)


def phenotype_from_bundle(bundle: PolicyBundle) -> Phenotype:
    """The :class:`Phenotype` a policy bundle describes for a search experiment: the policy of
    :func:`policy_from_bundle` and the engine knobs its ``engine`` section sets (unset knobs
    keep the experiment's values).  The bundle's ``disaggregation`` section is not read here
    (only ``blis run`` applies it)."""
    return Phenotype(policy_from_bundle(bundle),
                     EngineKnobs(**{attr: int(getattr(bundle, attr)) for _, attr in _ENGINE_FLAGS
                                    if getattr(bundle, attr) is not None}))


def _check_experiment_flags(explicit: frozenset[str]) -> None:
    """With ``--experiment`` only :func:`experiment_compatible` flags may be given."""
    for flag in run_flags():
        if flag.name in explicit and flag.name not in experiment_compatible():
            allowed = ", ".join("--" + n for n in experiment_compatible() if n != "experiment")
            raise InputError(
                f"--{flag.name} cannot be combined with --experiment (the experiment defines the "
                f"cluster and workload); allowed with --experiment: {allowed}")


def _experiment_sim(exp, v: dict[str, Any], explicit: frozenset[str],
                    bundle: PolicyBundle | None) -> SimConfig:
    """The search's SimConfig of ``exp`` for ``--seed``, with the engine knobs set by an
    explicit flag or the bundle's ``engine`` section (otherwise the experiment's values) and the
    observability flags applied."""
    # lazy: only --experiment runs load the experiment's workload readers
    from .deployment import build_sim_config

    knobs = EngineKnobs(**{attr: int(v[name]) for name, attr in _ENGINE_FLAGS
                           if name in explicit
                           or (bundle is not None and getattr(bundle, attr) is not None)})
    sim = build_sim_config(exp, int(v["seed"]), Phenotype(engine=knobs))
    return dataclasses.replace(sim, trace_decisions=(v["trace-level"] or "none") == "decisions",
                               counterfactual_k=v["counterfactual-k"])


def resolve_run_settings(ns: argparse.Namespace) -> RunSettings:
    """Apply precedence and every ``run`` validation to parsed flags; return :class:`RunSettings`.

    ``ns`` comes from :func:`blis_evo.flags.parse_run_args`.  Raises InputError (one line,
    naming the flag or YAML key and the allowed values) on the first invalid input.
    """
    explicit = explicit_flags(ns)
    raw = effective_values(ns, None)

    # Checks that come first in the reference (log level, model), then the workload choice.
    flag_by_name("log").validator("log", raw["log"])  # type: ignore[misc]
    experiment = None
    if raw["experiment"] != "":
        _check_experiment_flags(explicit)
    elif raw["model"] == "":
        raise InputError("--model is required (LLM name, e.g. meta-llama/llama-3.1-8b-instruct)")

    bundle = load_policy_bundle(raw["policy-config"]) if raw["policy-config"] != "" else None
    if raw["experiment"] != "":
        # lazy: only --experiment runs load the experiment loader
        from .experiment import experiment_from_arg

        experiment = experiment_from_arg(raw["experiment"], flag="--experiment")
        if bundle is None:
            bundle = bundle_from_policy(BASELINES["llm-d-default"])
    v = effective_values(ns, bundle)

    for flag in run_flags():
        if flag.validator is not None:
            flag.validator(flag.name, v[flag.name])

    workload = v["workload"]
    if workload != "traces":
        rate = v["rate"]
        if not math.isfinite(rate) or rate <= 0:
            raise InputError(f"--rate must be a finite value > 0, got {go_float_str(rate)}")
    if workload == "distribution":
        _check_token_ranges(v, "prompt")
        _check_token_ranges(v, "output")
    if workload == "traces" and v["workload-traces-filepath"] == "":
        raise InputError("--workload-traces-filepath is required when using --workload traces")
    trace_output = v["trace-output"]
    if trace_output != "" and Path(trace_output).exists() and not Path(trace_output).is_dir():
        raise InputError(f"--trace-output: {trace_output!r} exists and is not a directory")
    bandwidth = v["kv-transfer-bandwidth"]
    if v["kv-cpu-blocks"] > 0 and (not math.isfinite(bandwidth) or bandwidth <= 0):
        raise InputError(
            "--kv-transfer-bandwidth must be a finite value > 0 when --kv-cpu-blocks > 0, "
            f"got {go_float_str(bandwidth)}"
        )

    policy = _policy_config(v, bundle)
    policy = dataclasses.replace(policy, autoscaler=_autoscaler_config(v, explicit, bundle))
    routing = policy.routing

    trace_level = v["trace-level"] or "none"
    summarize = v["summarize-trace"] is True
    trace_report = v["summarize-trace"] == "text"
    warnings: list[str] = []
    if trace_level == "none" and v["counterfactual-k"] > 0:
        warnings.append(f"--counterfactual-k={v['counterfactual-k']} has no effect without --trace-level decisions")
    if trace_level == "none" and summarize:
        warnings.append("--summarize-trace has no effect without --trace-level decisions")
    if policy.autoscaler is None and explicit & {f for f, _ in _AUTOSCALER_KEYS}:
        warnings.append("autoscaler flags have no effect without --autoscaler or a bundle autoscaler section")
    if routing != "weighted" and v["routing-scorers"] != "":
        warnings.append(f"--routing-scorers has no effect when routing policy is {routing!r} (only 'weighted')")

    sim = SimConfig(
        num_instances=v["num-instances"],
        horizon=v["horizon"],
        seed=v["seed"],
        total_kv_blocks=v["total-kv-blocks"],
        block_size=v["block-size-in-tokens"],
        max_running_reqs=v["max-num-running-reqs"],
        max_scheduled_tokens=v["max-num-scheduled-tokens"],
        long_prefill_token_threshold=v["long-prefill-token-threshold"],
        kv_cpu_blocks=v["kv-cpu-blocks"],
        kv_offload_threshold=float(v["kv-offload-threshold"]),
        kv_transfer_bandwidth=float(bandwidth),
        kv_transfer_base_latency=v["kv-transfer-base-latency"],
        admission_latency=v["admission-latency"],
        routing_latency=v["routing-latency"],
        snapshot_refresh_interval=v["snapshot-refresh-interval"],
        trace_decisions=trace_level == "decisions",
        counterfactual_k=v["counterfactual-k"],
        legacy_blis_quirks=bool(v["legacy-blis-quirks"]),
    )
    disagg = resolve_disaggregation(
        v, explicit, dict(bundle.disaggregation) if bundle is not None else {},
        parse_scorers(v["pd-decode-scorers"], "--pd-decode-scorers"),
        v["num-instances"] if "num-instances" in explicit else None)
    _check_autoscaled_cluster(policy.autoscaler, disagg, v, explicit)
    pd_flags = {f for f, *_ in PD_FIELDS if f != "architecture"} | {"pd-decode-scorers"}
    if disagg is None and explicit & pd_flags:
        warnings.append("P/D flags (--prefill-replicas, --decode-replicas, --pd-*) have no effect "
                        "on a monolithic deployment (use --architecture disaggregated)")
    latency = LatencyInputs(
        model=v["model"],
        hardware=v["hardware"],
        tp=v["tp"],
        vllm_version=v["vllm-version"],
        alpha=tuple(float(x) for x in v["alpha-coeffs"]),
        beta=tuple(float(x) for x in v["beta-coeffs"]),
        model_config_folder=v["model-config-folder"],
        hardware_config=v["hardware-config"],
        defaults_filepath=v["defaults-filepath"] if "defaults-filepath" in explicit else SHIPPED_DEFAULTS_YAML,
        latency_model=v["latency-model"],
        total_kv_blocks_explicit="total-kv-blocks" in explicit,
        dp=v["dp"],
        enable_expert_parallel=bool(v["enable-expert-parallel"]),
        moe_comm_backend=v["moe-comm-backend"],
        block_size=v["block-size-in-tokens"],
        gpu_memory_utilization=float(v["gpu-memory-utilization"]),
    )
    wl = WorkloadSettings(
        kind=workload,
        traces_path=v["workload-traces-filepath"],
        spec_path=v["workload-spec"],
        rate=float(v["rate"]),
        num_requests=v["num-requests"],
        prefix_tokens=v["prefix-tokens"],
        prompt_tokens=v["prompt-tokens"],
        prompt_tokens_stdev=v["prompt-tokens-stdev"],
        prompt_tokens_min=v["prompt-tokens-min"],
        prompt_tokens_max=v["prompt-tokens-max"],
        output_tokens=v["output-tokens"],
        output_tokens_stdev=v["output-tokens-stdev"],
        output_tokens_min=v["output-tokens-min"],
        output_tokens_max=v["output-tokens-max"],
        seed=v["seed"],
    )
    if experiment is not None:
        from .deployment import deployed_policy  # lazy: as in _experiment_sim

        c = experiment.cluster
        sim = _experiment_sim(experiment, v, explicit, bundle)
        policy = deployed_policy(policy, experiment)
        latency = dataclasses.replace(latency, model=c.model, hardware=c.hardware, tp=c.tp,
                                      vllm_version=c.vllm_version, total_kv_blocks_explicit=True)
        wl = dataclasses.replace(wl, kind="experiment", spec_path="",
                                 num_requests=experiment.workload.num_requests)
    if disagg is not None:
        sim = dataclasses.replace(sim, num_instances=disagg.prefill_replicas + disagg.decode_replicas,
                                  disaggregation=disagg)
    return RunSettings(
        sim=sim,
        policy=policy,
        latency=latency,
        workload=wl,
        fitness_weights=parse_fitness_weights(v["fitness-weights"]),
        trace_level=trace_level,
        summarize_trace=summarize,
        results_path=v["results-path"],
        log_level=v["log"].lower(),
        policy_config_path=v["policy-config"],
        max_model_len=v["max-model-len"],
        explicit=explicit,
        warnings=tuple(warnings),
        trace_output=trace_output,
        experiment=experiment,
        trace_report=trace_report,
    )
