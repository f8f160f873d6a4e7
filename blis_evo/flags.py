"""The ``blis run`` flag table and the argparse parser built from it.

Behaviour port of the ``run`` flags of BLIS ``cmd/root.go`` @cbb0de7b (cobra/pflag).  Every
reference flag keeps its kebab-case name and reference default; four blis-evo extensions are
added (``--latency-model``, ``--legacy-blis-quirks``, ``--trace-output`` and ``--experiment``).
With ``--experiment`` only the flags in :data:`EXPERIMENT_COMPATIBLE` may be given.

The parser leaves every option at ``None`` so later code can tell which flags the user set
(cobra's ``Changed()``); :mod:`blis_evo.settings` applies bundle values and reference defaults
afterwards and runs the per-flag validators declared here.

pflag syntax that plain argparse would reject is normalised first: a value-taking flag always
consumes the next token (so ``--alpha-coeffs -1,2,3`` works), a bare bool flag means ``true``,
``--flag=value`` works everywhere, and repeated float-slice flags append, as in pflag.
"""
from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from simulator.policies import registry
from simulator.policies.declare import BOOL, INT, Param
from simulator.autoscale.config import MAX_SLO_WINDOW
from simulator.config import INT64_MAX
from simulator.errors import InputError
from simulator.latency import MOE_COMM_BACKENDS

from .go_scalars import go_float_str, parse_go_bool, parse_go_float, parse_go_int
from .scorers import parse_scorers
from simulator.slo import parse_slo_targets

Validator = Callable[[str, Any], None]

_VALID_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
_VALID_TRACE_LEVELS = ("none", "decisions")
WORKLOAD_TYPES = ("distribution", "traces", "chatbot", "summarization", "contentgen", "multidoc")
LATENCY_MODELS = ("blackbox", "roofline", "trained-physics")
SUMMARY_MODES = ("text",)
"""Named values ``--summarize-trace`` takes besides the Go booleans."""


# ---------------------------------------------------------------------------------------------
# Validators (called by blis_evo.settings on the effective value: flag > bundle > default)
# ---------------------------------------------------------------------------------------------


def _int_at_least(lo: int) -> Validator:
    def check(name: str, value: int) -> None:
        if value < lo:
            raise InputError(f"--{name} must be >= {lo}, got {value}")

    return check


def _int_above(lo: int) -> Validator:
    def check(name: str, value: int) -> None:
        if value <= lo:
            raise InputError(f"--{name} must be > {lo}, got {value}")

    return check


def _int_range(lo: int, hi: int) -> Validator:
    def check(name: str, value: int) -> None:
        if not lo <= value <= hi:
            raise InputError(f"--{name} must be in [{lo}, {hi}], got {value}")

    return check


def _finite_non_negative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InputError(f"--{name} must be a finite value >= 0, got {go_float_str(value)}")


def _finite_positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"--{name} must be a finite value > 0, got {go_float_str(value)}")


def _unit_interval(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"--{name} must be a finite value in [0, 1], got {go_float_str(value)}")


def _fraction_above_zero(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise InputError(f"--{name} must be a finite value in (0, 1.0], got {go_float_str(value)}")


def _slo_targets(name: str, value: str) -> None:
    parse_slo_targets(value, f"--{name}")


def _one_of(allowed: Sequence[str], *, empty_ok: bool = False, lower: bool = False) -> Validator:
    def check(name: str, value: str) -> None:
        probe = value.lower() if lower else value
        if probe in allowed or (empty_ok and probe == ""):
            return
        raise InputError(f"--{name}: unknown value {value!r}; valid: {', '.join(allowed)}")

    return check


CODE_PREFIX = registry.CODE_POLICY + ":"
"""``--routing-policy code:PATH`` (and admission, priority): a code policy file."""


def policy_choices(family: str) -> str:
    """The valid values of a policy flag, for help and errors (``code:PATH`` where allowed)."""
    names = registry.valid_names(family)
    if registry.accepts_code(family):
        names = names + [CODE_PREFIX + "PATH"]
    return ", ".join(names)


def _policy(family: str, label: str) -> Validator:
    def check(name: str, value: str) -> None:
        if registry.accepts_code(family) and value.startswith(CODE_PREFIX):
            if value == CODE_PREFIX:
                raise InputError(f"--{name}: {CODE_PREFIX}PATH needs the path of a code policy file")
            return
        if value != "" and value not in registry.valid_names(family):  # "": the default
            raise InputError(f"--{name}: unknown {label} {value!r}; valid: {policy_choices(family)}")

    return check


def _param_check(param: Param) -> Validator:
    def check(name: str, value: float) -> None:
        problem = param.problem(value)
        if problem is not None:
            raise InputError(f"--{name} {problem}")

    return check


def family_flag(key: str, *, reference: bool = True, default: str | None = None,
                help: str | None = None, validate: bool = True) -> "Flag":
    """The flag choosing family ``key``'s policy, from its declaration: choices and validation
    read the registry when the flag is checked, so registered policies are accepted.
    ``validate=False`` where a settings section checks the value with its siblings (P/D)."""
    fam = registry.family(key)
    if fam.switch is not None:
        return Flag(fam.flag, "bool", False, (help or fam.help) + f" (on: {fam.switch[1]})",
                    reference=reference)
    text = (help or fam.help) + ": " + policy_choices(key)
    return Flag(fam.flag, "str", fam.default if default is None else default, text,
                _policy(key, fam.label) if validate else None, reference=reference)


def param_flags(key: str) -> tuple["Flag", ...]:
    """One flag per declared parameter of family ``key``'s policies (kind, default, bounds,
    unit and help from the declaration)."""
    out = []
    for pol in registry.family(key).policies:
        for p in pol.params:
            kind = {INT: "int", BOOL: "bool"}.get(p.kind, "float")
            default = {INT: int, BOOL: bool}.get(p.kind, float)(p.default)
            out.append(Flag(p.flag, kind, default, f"{pol.name}: {p.help} ({p.unit})",
                            _param_check(p), reference=p.reference and pol.reference))
    return tuple(out)


def _finite_list(name: str, value: Sequence[float]) -> None:
    if len(value) < 3:
        raise InputError(f"--{name} needs at least 3 comma-separated numbers, got {len(value)}")
    for v in value:
        if not math.isfinite(v):
            raise InputError(f"--{name}: coefficients must be finite, got {go_float_str(v)}")


def _scorers(name: str, value: str) -> None:
    parse_scorers(value)


def _fitness(name: str, value: str) -> None:
    parse_fitness_weights(value)


# ---------------------------------------------------------------------------------------------
# Fitness weights (port of cluster.ParseFitnessWeights + the key check of ComputeFitness)
# ---------------------------------------------------------------------------------------------

FITNESS_KEYS = (
    "throughput",
    "tokens_per_sec",
    "p99_ttft",
    "p50_ttft",
    "mean_ttft",
    "p99_e2e",
    "p50_e2e",
    "mean_e2e",
)


def parse_fitness_weights(text: str) -> dict[str, float] | None:
    """Parse ``--fitness-weights`` ("key:value,key:value"); ``""`` gives None (no fitness output).

    Keys must be fitness metric names (checked up front here; the reference checks them only
    after the simulation); values must be finite and >= 0.  A repeated key keeps the last value.
    """
    if text == "":
        return None
    weights: dict[str, float] = {}
    for raw in text.split(","):
        pair = raw.strip()
        key, sep, val_text = pair.partition(":")
        if not sep:
            raise InputError(f"--fitness-weights: invalid entry {pair!r}; expected key:value")
        key = key.strip()
        try:
            val = parse_go_float(val_text.strip())
        except ValueError:
            raise InputError(
                f"--fitness-weights: invalid value {val_text.strip()!r} for {key!r}; expected a number"
            ) from None
        if not math.isfinite(val) or val < 0:
            raise InputError(
                f"--fitness-weights: weight for {key!r} must be a finite non-negative number, "
                f"got {go_float_str(val)}"
            )
        if key not in FITNESS_KEYS:
            raise InputError(
                f"--fitness-weights: unknown fitness metric key {key!r}; valid keys: {', '.join(FITNESS_KEYS)}"
            )
        weights[key] = val
    return weights


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One ``blis run`` flag.

    ``kind`` is ``"int"`` (Go int/int64), ``"float"``, ``"str"``, ``"bool"`` or ``"floats"``
    (comma-separated float slice).  ``choices``: the allowed values of a ``"str"`` flag, or the
    named values a ``"bool"`` flag accepts besides true/false (the value is then that name).  ``default`` is the reference default (applied after the
    bundle, never given to argparse).  ``validator(name, value)`` raises InputError on a bad
    effective value.  ``reference`` is False for blis-evo extensions.
    """

    name: str
    kind: str
    default: Any
    help: str
    validator: Validator | None = None
    reference: bool = True
    choices: tuple[str, ...] | None = None

    @property
    def option(self) -> str:
        """The command-line spelling, e.g. ``--num-instances``."""
        return "--" + self.name

    @property
    def dest(self) -> str:
        """The argparse namespace attribute, e.g. ``num_instances``."""
        return self.name.replace("-", "_")


@functools.lru_cache(maxsize=4)
def _build_flags(_families: tuple) -> tuple[Flag, ...]:
    """The flag table for one state of the policy registry (``_families`` is the cache key)."""
    F = Flag
    return (
    # general
    F("seed", "int", 42, "seed for request generation"),
    F("horizon", "int", INT64_MAX, "simulation horizon in ticks (µs)", _int_above(0)),
    F("log", "str", "warn", "log level: " + ", ".join(_VALID_LOG_LEVELS),
      _one_of(_VALID_LOG_LEVELS, lower=True)),
    F("defaults-filepath", "str", "defaults.yaml",
      "defaults YAML (coefficients, default specs, preset workloads); default: the shipped copy"),
    F("model-config-folder", "str", "", "folder holding the model's HF config.json (roofline)"),
    F("hardware-config", "str", "", "hardware config JSON (roofline)"),
    F("workload", "str", "distribution", "workload type: " + ", ".join(WORKLOAD_TYPES),
      _one_of(WORKLOAD_TYPES)),
    F("workload-traces-filepath", "str", "", "CSV trace file for --workload traces"),
    # engine
    F("total-kv-blocks", "int", 1_000_000, "GPU KV-cache blocks per instance", _int_above(0)),
    F("max-num-running-reqs", "int", 256, "max requests in the running batch", _int_above(0)),
    F("max-num-scheduled-tokens", "int", 2048, "max new tokens per step across the batch",
      _int_above(0)),
    F("beta-coeffs", "floats", (0.0, 0.0, 0.0), "step-time coefficients beta0,beta1,beta2",
      _finite_list),
    F("alpha-coeffs", "floats", (0.0, 0.0, 0.0),
      "queueing/post-processing coefficients alpha0,alpha1,alpha2", _finite_list),
    F("block-size-in-tokens", "int", 16, "tokens per KV block", _int_above(0)),
    F("max-model-len", "int", 2048, "max request length (accepted but unused, as in BLIS)"),
    F("long-prefill-token-threshold", "int", 0, "prefill length above which prefill is chunked",
      _int_at_least(0)),
    # model / hardware
    F("model", "str", "", "LLM name (required)"),
    F("hardware", "str", "", "GPU type"),
    F("tp", "int", 0, "tensor parallelism (0: default from the defaults YAML)", _int_at_least(0)),
    F("vllm-version", "str", "", "vLLM version"),
    # distribution workload
    F("rate", "float", 1.0, "request arrival rate (requests/second)"),
    F("num-requests", "int", 100, "number of requests to generate"),
    F("prefix-tokens", "int", 0, "shared prefix length in tokens"),
    F("prompt-tokens", "int", 512, "mean prompt length"),
    F("prompt-tokens-stdev", "int", 256, "prompt length standard deviation"),
    F("prompt-tokens-min", "int", 2, "min prompt length"),
    F("prompt-tokens-max", "int", 7000, "max prompt length"),
    F("output-tokens", "int", 512, "mean output length"),
    F("output-tokens-stdev", "int", 256, "output length standard deviation"),
    F("output-tokens-min", "int", 2, "min output length"),
    F("output-tokens-max", "int", 7000, "max output length"),
    # cluster and policies
    F("num-instances", "int", 1, "number of instances", _int_at_least(1)),
    F("admission-latency", "int", 0, "admission latency (µs)", _int_at_least(0)),
    F("routing-latency", "int", 0, "routing latency (µs)", _int_at_least(0)),
    family_flag("admission"), *param_flags("admission"),
    family_flag("routing"), *param_flags("routing"),
    F("routing-scorers", "str", "",
      "weighted-routing scorers name:weight,... (default prefix-affinity:3,queue-depth:2,"
      "kv-utilization:2); scorers: " + ", ".join(registry.valid_names("scorer")), _scorers),
    family_flag("priority"), *param_flags("priority"),
    family_flag("scheduler"), *param_flags("scheduler"),
    family_flag("preemption", reference=False),
    # gateway flow control (BLIS f90a1e3a)
    family_flag("flow_control", reference=False), *param_flags("flow_control"),
    family_flag("saturation_detector", reference=False), *param_flags("saturation_detector"),
    family_flag("dispatch_order", reference=False),
    family_flag("fairness", reference=False),
    F("slo-targets", "str", "", "slo-deadline dispatch: CLASS=µs,... the longest wait in the "
      "gateway queue per SLO class", _slo_targets, reference=False),
    F("policy-config", "str", "", "policy bundle YAML (explicit flags override it)"),
    # evaluation and tracing
    F("fitness-weights", "str", "",
      "fitness weights key:value,... (keys: " + ", ".join(FITNESS_KEYS) + ")", _fitness),
    F("trace-level", "str", "none", "decision trace level: none, decisions",
      _one_of(_VALID_TRACE_LEVELS, empty_ok=True)),
    F("counterfactual-k", "int", 0, "counterfactual candidates per routing decision",
      _int_at_least(0)),
    F("summarize-trace", "bool", False,
      "print a trace summary after the run: true (short decision counts, needs --trace-level "
      "decisions) or text (a markdown report for LLM reflection: outcome vs SLO targets, key "
      "issues, regret, worst decisions, suggested focus)", choices=SUMMARY_MODES),
    F("workload-spec", "str", "", "workload-spec YAML, preset:NAME, or a trace v2 directory/header to replay "
      "(overrides --workload)"),
    # tiered KV cache
    F("kv-cpu-blocks", "int", 0, "CPU-tier KV blocks (0 = single tier)", _int_at_least(0)),
    F("kv-offload-threshold", "float", 0.9, "GPU utilisation in [0,1] above which blocks offload",
      _unit_interval),
    F("kv-transfer-bandwidth", "float", 100.0, "CPU<->GPU transfer rate (blocks/tick)"),
    F("kv-transfer-base-latency", "int", 0, "fixed per-transfer latency (ticks)", _int_at_least(0)),
    F("snapshot-refresh-interval", "int", 0, "KV-utilisation snapshot refresh interval (µs)",
      _int_at_least(0)),
    F("results-path", "str", "", "file to write the JSON results to"),
    # blis-evo extensions
    F("latency-model", "str", "auto",
      "step-time model: blackbox (alpha/beta rows of the defaults YAML), roofline, or "
      "trained-physics (roofline basis with fitted coefficients: any model with a config.json, "
      "any GPU of the hardware file); default: blackbox or roofline chosen like BLIS cbb0de7b",
      reference=False, choices=LATENCY_MODELS),
    F("dp", "int", 1, "data parallelism of a MoE model (trained-physics only; dense models scale "
      "with --num-instances)", _int_at_least(1), reference=False),
    F("enable-expert-parallel", "bool", False, "expert parallelism for a MoE model, as vLLM "
      "--enable-expert-parallel (trained-physics only; validated, no step-time effect)",
      reference=False),
    F("moe-comm-backend", "str", "", "MoE all-to-all backend for the dispatch/combine cost at "
      "--dp > 1 (trained-physics only): " + ", ".join(MOE_COMM_BACKENDS) + " (default "
      "allgather_reducescatter)", _one_of(tuple(MOE_COMM_BACKENDS), empty_ok=True),
      reference=False),
    F("gpu-memory-utilization", "float", 0.9, "fraction of GPU memory for the model and KV cache, "
      "in (0, 1]; trained-physics sizes the KV cache from it unless --total-kv-blocks is given",
      _fraction_above_zero, reference=False),
    F("legacy-blis-quirks", "bool", False, "replicate known BLIS cbb0de7b bugs bit-for-bit",
      reference=False),
    F("trace-output", "str", "",
      "directory to write a trace v2 of the simulated workload to (header.yaml, trace.csv, "
      "tokens.npz); replay it with --workload-spec DIR", reference=False),
    F("experiment", "str", "",
      "run seed --seed of a search experiment (YAML path, or 'default' for the embedded default "
      "experiment): its cluster and workload exactly as the search simulates them, under "
      "--policy-config (default: the llm-d weighted profile prefix-affinity:3,queue-depth:2,"
      "kv-utilization:2); cluster and workload flags are then not allowed", reference=False),
    # P/D disaggregation (blis_evo/disagg_settings.py validates and resolves these)
    F("architecture", "str", "monolithic", "deployment: monolithic or disaggregated (prefill and "
      "decode pools)", reference=False),
    F("prefill-replicas", "int", 1, "disaggregated: prefill pool size", reference=False),
    F("decode-replicas", "int", 1, "disaggregated: decode pool size", reference=False),
    family_flag("pd-decider", reference=False, validate=False,   # disagg_settings checks it
                help="disaggregated: which requests are disaggregated"),
    F("pd-prefix-threshold", "int", 256, "prefix-threshold decider: disaggregate when the "
      "uncached prompt exceeds this many tokens", reference=False),
    F("pd-transfer-bandwidth", "float", 25.0, "P/D KV transfer link bandwidth (GB/s)",
      reference=False),
    F("pd-transfer-base-latency", "int", 0, "P/D KV transfer latency per transfer unit (µs)",
      reference=False),
    F("pd-transfer-granularity", "str", "request", "P/D KV transfer unit: request or block",
      reference=False),
    F("pd-transfer-pipelining", "bool", False, "send KV blocks as prefill chunks finish "
      "(needs granularity block)", reference=False),
    F("pd-kv-bytes-per-token", "float", 131072.0, "KV bytes per token when no roofline model "
      "config gives it", reference=False),
    F("pd-backpressure-threshold", "int", 0, "throttle prefill routing while this many "
      "requests wait for their decode instance (0 = off)", reference=False),
    F("pd-backpressure-retry", "int", 1000, "µs between prefill routing retries under "
      "backpressure", reference=False),
    F("pd-decode-scorers", "str", "", "decode pool's weighted-routing scorers name:weight,... "
      "(default: --routing-scorers)", reference=False),
    # autoscaler (blis-evo extension; flags override the bundle's autoscaler section)
    family_flag("autoscaler", reference=False, default="",
                help="autoscaler policy (default: fixed cluster)"),
    F("min-replicas", "int", 1, "autoscaler: minimum replicas", _int_at_least(1), reference=False),
    F("max-replicas", "int", 0, "autoscaler: maximum replicas (0: max(--num-instances, "
      "--min-replicas))", _int_at_least(0), reference=False),
    F("autoscaler-interval", "float", 10.0, "autoscaler: evaluation interval (s)",
      _finite_positive, reference=False),
    F("provisioning-delay", "float", 0.0, "autoscaler: provisioning delay of a new replica (s)",
      _finite_non_negative, reference=False),
    F("model-load-time", "float", 0.0, "autoscaler: model load time of a new replica (s)",
      _finite_non_negative, reference=False),
    F("warmup-duration", "float", 0.0, "autoscaler: warmup of a new replica (s)",
      _finite_non_negative, reference=False),
    family_flag("warmup-profile", reference=False, help="autoscaler: warmup penalty profile"),
    family_flag("drain", reference=False,
                help="autoscaler: scale-down drain mode"),
    F("autoscaler-slo-ttft", "float", 1000.0, "autoscaler: TTFT target (ms) of the SLO "
      "attainment the policy and the SLO trigger see", _finite_non_negative, reference=False),
    F("autoscaler-slo-trigger", "float", 0.0, "autoscaler: also evaluate when the SLO "
      "attainment of the last --autoscaler-slo-window first tokens falls below this (0 = off)",
      _unit_interval, reference=False),
    F("autoscaler-slo-window", "int", 50, "autoscaler: first tokens in the SLO trigger's window",
      _int_range(1, MAX_SLO_WINDOW), reference=False),
    )


def run_flags() -> tuple[Flag, ...]:
    """The ``blis run`` flag table: the fixed flags plus, at their places, one flag per policy
    family and per declared policy parameter, derived from the policy registry as it is now
    (so a registered policy's parameters are flags too)."""
    return _build_flags(registry.families())


def flag_by_name(name: str) -> Flag | None:
    """The flag called ``name`` (without ``--``), or None."""
    for flag in run_flags():
        if flag.name == name:
            return flag
    return None

def experiment_compatible() -> tuple[str, ...]:
    """Flags allowed together with ``--experiment`` (see :data:`EXPERIMENT_COMPATIBLE`): the
    fixed ones plus every policy family's flag and declared parameter flag."""
    policy = [registry.family(key).flag for key in ("admission", "routing", "priority",
                                                    "scheduler")]
    policy += [p.flag for _, _, p in registry.policy_params()]
    return ("experiment", "seed", "log", "results-path", "fitness-weights", "policy-config",
            *policy, "routing-scorers", *EXPERIMENT_COMPATIBLE)


EXPERIMENT_COMPATIBLE: tuple[str, ...] = (
    # the engine knobs a search evolves (explicit flag > bundle engine section > experiment)
    "snapshot-refresh-interval", "long-prefill-token-threshold",
    # observability (does not change the simulated outcome)
    "trace-level", "counterfactual-k", "summarize-trace",
)
"""Flags allowed together with ``--experiment`` besides the general ones and the policy flags
(explicit flag > ``--policy-config`` > llm-d default profile) that
:func:`experiment_compatible` adds.  Every other flag defines the cluster (model,
hardware, sizes, latency, KV tiers, infrastructure latencies), the workload or the engine mode,
which the experiment fixes, and is a one-line error: the run must be the search's simulation."""



# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


class InputErrorParser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise :class:`InputError` (one line) instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        """Raise InputError with argparse's message collapsed to one line."""
        raise InputError(" ".join(message.split()))


class _AppendFloats(argparse.Action):
    """Float-slice action: the first use replaces the default, later uses append (pflag)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest)
        setattr(namespace, self.dest, tuple(values) if current is None else tuple(current) + tuple(values))


def _type_for(flag: Flag) -> Callable[[str], Any]:
    def as_int(text: str) -> int:
        try:
            return parse_go_int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def as_float(text: str) -> float:
        try:
            return parse_go_float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None

    def as_floats(text: str) -> tuple[float, ...]:
        out = []
        for part in text.split(","):
            try:
                out.append(parse_go_float(part))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"invalid number {part!r} in {text!r} (expected comma-separated numbers like 0.1,2,3)"
                ) from None
        return tuple(out)

    def as_bool(text: str) -> bool | str:
        if flag.choices and text in flag.choices:
            return text
        try:
            return parse_go_bool(text)
        except ValueError:
            allowed = ", ".join(("true", "false") + (flag.choices or ()))
            raise argparse.ArgumentTypeError(f"invalid value {text!r}; valid: {allowed}") from None

    kinds = {"int": as_int, "float": as_float, "floats": as_floats, "bool": as_bool, "str": str}
    return kinds[flag.kind]


def _add_flag(parser: argparse.ArgumentParser, flag: Flag) -> None:
    default_txt = (" (a value needs '=': --" + flag.name + "=VALUE)" if flag.kind == "bool"
                   else f" (default: {_show_default(flag)})")
    common = dict(dest=flag.dest, default=None, help=flag.help + default_txt)
    if flag.kind == "bool":
        parser.add_argument(flag.option, nargs="?", const=True, type=_type_for(flag),
                            metavar="|".join(("true", "false") + (flag.choices or ())), **common)
    elif flag.kind == "floats":
        parser.add_argument(flag.option, type=_type_for(flag), action=_AppendFloats, metavar="A,B,C",
                            **common)
    elif flag.choices:
        parser.add_argument(flag.option, choices=flag.choices, **common)
    else:
        parser.add_argument(flag.option, type=_type_for(flag), metavar=flag.kind.upper(), **common)


def _show_default(flag: Flag) -> str:
    if flag.kind == "floats":
        return ",".join(go_float_str(v) for v in flag.default)
    if flag.name == "horizon":
        return "int64 max"
    return repr(flag.default) if flag.kind == "str" else str(flag.default)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``blis`` parser with its ``run`` subcommand (one option per :func:`run_flags` entry).

    Every option defaults to ``None`` (unset); errors raise InputError instead of exiting.
    """
    parser = InputErrorParser(prog="blis", allow_abbrev=False,
                              description="blis-evo: BLIS inference-serving simulator (Python port)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=InputErrorParser)
    sub.required = True
    run = sub.add_parser("run", help="run one simulation", allow_abbrev=False,
                         description="Run one cluster simulation (flags as in BLIS cmd/root.go). "
                         "Other commands: blis replay --policy P (re-evaluate a policy bundle on "
                         "fresh seeds), blis replay --trace DIR (simulate a recorded trace), "
                         "blis observe (record a real server), blis calibrate (compare a trace "
                         "with the simulator and fit alpha/beta), blis schema NAME (print the "
                         "JSON Schema of an input file format); each takes --help.")
    for flag in run_flags():
        _add_flag(run, flag)
    return parser


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite pflag syntax into argparse-safe tokens (see the module docstring).

    ``--flag value`` becomes ``--flag=value`` for value-taking flags (so values starting with
    ``-`` work), and a bare bool flag becomes ``--flag=true``.  Tokens after ``--`` are untouched.
    """
    out: list[str] = []
    by_name = {f.name: f for f in run_flags()}
    i = 0
    argv = list(argv)
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            out.extend(argv[i:])
            break
        flag = by_name.get(tok[2:]) if tok.startswith("--") else None
        if flag is not None and flag.kind == "bool":
            out.append(tok + "=true")
        elif flag is not None and i + 1 < len(argv):
            out.append(f"{tok}={argv[i + 1]}")
            i += 1
        else:
            out.append(tok)
        i += 1
    return out


def parse_run_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the arguments of ``blis run`` (with or without the leading ``run`` token).

    Returns a Namespace with one attribute per flag (``Flag.dest``), ``None`` when not given,
    plus ``command == "run"``.  Raises InputError on unknown flags or malformed values.
    """
    args = list(argv)
    if args and args[0] == "run":
        args = args[1:]
    return build_parser().parse_args(["run", *normalize_argv(args)])


def explicit_flags(ns: argparse.Namespace) -> frozenset[str]:
    """Names of the flags the user set (cobra ``Changed()``)."""
    return frozenset(f.name for f in run_flags() if getattr(ns, f.dest, None) is not None)
