"""Flag table, policy bundle and run-settings resolution (blis_evo.flags / bundle / settings)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from blis_evo.bundle import PolicyBundle, load_policy_bundle
from blis_evo.flags import build_parser, parse_fitness_weights, parse_run_args, run_flags
from blis_evo.scorers import parse_scorers
from blis_evo.settings import SHIPPED_DEFAULTS_YAML, resolve_run_settings
from simulator.config import DEFAULT_SCORERS, INT64_MAX, PolicyConfig, ScorerSpec
from simulator.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "blis_evo" / "data" / "examples"

# The 53 `run` flags of BLIS cmd/root.go @cbb0de7b with their defaults, transcribed by hand
# from the reference's init() (independently of blis_evo.flags.run_flags()).
REFERENCE_RUN_FLAGS = {
    "seed": 42,
    "horizon": 9223372036854775807,
    "log": "warn",
    "defaults-filepath": "defaults.yaml",
    "model-config-folder": "",
    "hardware-config": "",
    "workload": "distribution",
    "workload-traces-filepath": "",
    "total-kv-blocks": 1000000,
    "max-num-running-reqs": 256,
    "max-num-scheduled-tokens": 2048,
    "beta-coeffs": (0.0, 0.0, 0.0),
    "alpha-coeffs": (0.0, 0.0, 0.0),
    "block-size-in-tokens": 16,
    "max-model-len": 2048,
    "long-prefill-token-threshold": 0,
    "model": "",
    "hardware": "",
    "tp": 0,
    "vllm-version": "",
    "rate": 1.0,
    "num-requests": 100,
    "prefix-tokens": 0,
    "prompt-tokens": 512,
    "prompt-tokens-stdev": 256,
    "prompt-tokens-min": 2,
    "prompt-tokens-max": 7000,
    "output-tokens": 512,
    "output-tokens-stdev": 256,
    "output-tokens-min": 2,
    "output-tokens-max": 7000,
    "num-instances": 1,
    "admission-policy": "always-admit",
    "admission-latency": 0,
    "routing-latency": 0,
    "token-bucket-capacity": 10000.0,
    "token-bucket-refill-rate": 1000.0,
    "routing-policy": "round-robin",
    "routing-scorers": "",
    "priority-policy": "constant",
    "scheduler": "fcfs",
    "policy-config": "",
    "fitness-weights": "",
    "trace-level": "none",
    "counterfactual-k": 0,
    "summarize-trace": False,
    "workload-spec": "",
    "kv-cpu-blocks": 0,
    "kv-offload-threshold": 0.9,
    "kv-transfer-bandwidth": 100.0,
    "kv-transfer-base-latency": 0,
    "snapshot-refresh-interval": 0,
    "results-path": "",
}

EXTENSIONS = {"latency-model": "auto", "legacy-blis-quirks": False, "trace-output": "",
              "experiment": "",
              # P/D disaggregation (blis_evo/disagg_settings.py)
              "architecture": "monolithic", "prefill-replicas": 1, "decode-replicas": 1,
              "pd-decider": "always", "pd-prefix-threshold": 256, "pd-transfer-bandwidth": 25.0,
              "pd-transfer-base-latency": 0, "pd-transfer-granularity": "request",
              "pd-transfer-pipelining": False, "pd-kv-bytes-per-token": 131072.0,
              "pd-backpressure-threshold": 0, "pd-backpressure-retry": 1000,
              "pd-decode-scorers": "",
              "autoscaler": "", "min-replicas": 1, "max-replicas": 0,
              "autoscaler-interval": 10.0, "provisioning-delay": 0.0, "model-load-time": 0.0,
              "warmup-duration": 0.0, "warmup-profile": "linear", "drain-policy": "wait",
              "autoscaler-slo-ttft": 1000.0, "autoscaler-slo-trigger": 0.0,
              "autoscaler-slo-window": 50,
              # newest-BLIS (f90a1e3a) trained-physics flags
              "dp": 1, "enable-expert-parallel": False, "moe-comm-backend": "",
              "gpu-memory-utilization": 0.9,
              # SLO tiers (BLIS f90a1e3a): preemption policy, tier-shed and gaie-legacy knobs
              "preemption-policy": "fcfs", "tier-shed-threshold": 0, "tier-shed-min-priority": 3,
              "gaie-qd-threshold": 5.0, "gaie-kv-threshold": 0.8,
              # gateway flow control (BLIS f90a1e3a flag names and defaults)
              "flow-control": False, "max-gateway-queue-depth": 0, "per-band-capacity": 0,
              "usage-limit-threshold": 1.0, "request-ttl": 0, "dispatch-tick-interval": 1000,
              "queue-shedding": False, "in-flight-eviction": False,
              "saturation-detector": "never", "queue-depth-threshold": 5.0,
              "kv-cache-util-threshold": 0.8, "max-concurrency": 100, "dispatch-order": "fifo",
              "fairness-policy": "global-strict", "slo-targets": ""}


def resolve(*argv: str):
    """Parse + resolve ``blis run --model m <argv>``."""
    return resolve_run_settings(parse_run_args(["--model", "m", *argv]))


def write(tmp_path: Path, text: str, name: str = "bundle.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# ------------------------------------------------------------------------- table vs reference


def test_reference_flag_list_has_53_entries():
    """The 53 hand-transcribed reference flags are exactly the table's ``reference=True``
    entries: each name once, none missing or extra, and each with the reference default
    (same value and type: an int default stays an int, a float a float, a bool a bool)."""
    assert len(REFERENCE_RUN_FLAGS) == 53
    table = [f for f in run_flags() if f.reference]
    names = [f.name for f in table]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    assert set(names) == set(REFERENCE_RUN_FLAGS), (
        f"only in the table: {sorted(set(names) - set(REFERENCE_RUN_FLAGS))}, "
        f"only in the reference: {sorted(set(REFERENCE_RUN_FLAGS) - set(names))}")
    wrong = {f.name: (f.default, REFERENCE_RUN_FLAGS[f.name]) for f in table
             if f.default != REFERENCE_RUN_FLAGS[f.name]
             or type(f.default) is not type(REFERENCE_RUN_FLAGS[f.name])}
    assert not wrong, f"defaults differ (table, reference): {wrong}"


def test_flag_table_extensions_are_the_documented_ones():
    """Every non-reference entry is a known blis-evo extension with its default, and no flag
    name appears twice in the whole table (an extension cannot shadow a reference flag)."""
    names = [f.name for f in run_flags()]
    assert len(names) == len(set(names))
    extensions = {f.name: f.default for f in run_flags() if not f.reference}
    assert extensions == EXTENSIONS
    assert not set(EXTENSIONS) & set(REFERENCE_RUN_FLAGS)


def test_parser_defaults_are_all_none():
    ns = parse_run_args([])
    for flag in run_flags():
        assert getattr(ns, flag.dest) is None, flag.name
    assert ns.command == "run"


def test_build_parser_has_run_subcommand():
    ns = build_parser().parse_args(["run", "--model=x"])
    assert ns.command == "run" and ns.model == "x"


def test_all_defaults_resolve_to_reference_values():
    s = resolve()
    assert s.sim.num_instances == 1 and s.sim.horizon == INT64_MAX and s.sim.seed == 42
    assert s.sim.total_kv_blocks == 1_000_000 and s.sim.block_size == 16
    assert s.sim.max_running_reqs == 256 and s.sim.max_scheduled_tokens == 2048
    assert s.sim.kv_offload_threshold == 0.9 and s.sim.kv_transfer_bandwidth == 100.0
    assert s.policy == PolicyConfig()
    assert s.latency.defaults_filepath == SHIPPED_DEFAULTS_YAML
    assert Path(SHIPPED_DEFAULTS_YAML).is_file()
    assert s.latency.latency_model == "auto" and not s.latency.total_kv_blocks_explicit
    assert s.latency.alpha == (0.0, 0.0, 0.0) and s.latency.beta == (0.0, 0.0, 0.0)
    assert s.workload.kind == "distribution" and s.workload.rate == 1.0
    assert s.fitness_weights is None and s.trace_level == "none" and not s.summarize_trace
    assert s.log_level == "warn" and s.results_path == "" and s.explicit == {"model"}
    assert not s.sim.legacy_blis_quirks and not s.sim.trace_decisions


# ------------------------------------------------------------------------- parsing details


def test_pflag_syntax():
    ns = parse_run_args(["run", "--alpha-coeffs", "-1,2.5,3e-3", "--seed=-7", "--beta-coeffs=1,2,3"])
    assert ns.alpha_coeffs == (-1.0, 2.5, 0.003)
    assert ns.seed == -7 and ns.beta_coeffs == (1.0, 2.0, 3.0)
    # float slices append on repetition, as pflag does
    assert parse_run_args(["--alpha-coeffs", "1", "--alpha-coeffs", "2,3"]).alpha_coeffs == (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--summarize-trace"], True),
        (["--summarize-trace=true"], True),
        (["--summarize-trace=false"], False),
        (["--summarize-trace=1"], True),
        (["--summarize-trace=F"], False),
        ([], False),
    ],
)
def test_summarize_trace_bool_forms(argv, expected):
    assert resolve(*argv).summarize_trace is expected


def test_summarize_trace_does_not_eat_next_flag():
    s = resolve("--summarize-trace", "--trace-level", "decisions")
    assert s.summarize_trace and s.trace_level == "decisions" and s.sim.trace_decisions


def test_extensions():
    s = resolve("--latency-model", "roofline", "--legacy-blis-quirks")
    assert s.latency.latency_model == "roofline" and s.sim.legacy_blis_quirks


def test_explicit_values_and_defaults_filepath():
    s = resolve("--defaults-filepath", "/tmp/d.yaml", "--total-kv-blocks", "5", "--tp", "2")
    assert s.latency.defaults_filepath == "/tmp/d.yaml"
    assert s.latency.total_kv_blocks_explicit and s.sim.total_kv_blocks == 5 and s.latency.tp == 2


def test_fitness_weights_parse():
    assert parse_fitness_weights("throughput:0.5, p99_ttft:0.3") == {"throughput": 0.5, "p99_ttft": 0.3}
    assert resolve("--fitness-weights", "mean_e2e:1").fitness_weights == {"mean_e2e": 1.0}


def test_parse_scorers_ok():
    assert parse_scorers("") == ()
    assert parse_scorers(" queue-depth:2 , load-balance:0.5") == (
        ScorerSpec("queue-depth", 2.0), ScorerSpec("load-balance", 0.5))


# ------------------------------------------------------------------------- shipped bundles


@pytest.mark.parametrize("name", ["policy-config.yaml", "weighted-routing.yaml",
                                  "epp-estimate-prefix.yaml", "epp-precise-prefix.yaml"])
def test_shipped_bundles_load(name):
    b = load_policy_bundle(str(EXAMPLES / name))
    assert b.admission_policy == "always-admit" and b.scheduler == "fcfs"
    s = resolve("--policy-config", str(EXAMPLES / name))
    assert s.policy.scheduler == "fcfs"


def test_epp_bundle_scorers():
    b = load_policy_bundle(str(EXAMPLES / "epp-precise-prefix.yaml"))
    assert b.routing_policy == "weighted"
    assert b.scorers == (ScorerSpec("prefix-affinity", 2.0), ScorerSpec("kv-utilization", 1.0),
                         ScorerSpec("queue-depth", 1.0))


def test_empty_sections_mean_unset(tmp_path):
    b = load_policy_bundle(write(tmp_path, "admission:\nrouting: {}\nscheduler: ''\n"))
    assert b == PolicyBundle()


def test_yaml12_float_exponent(tmp_path):
    b = load_policy_bundle(write(tmp_path, "admission: {token_bucket_capacity: 1e3, token_bucket_refill_rate: 0}\n"))
    assert b.param("token_bucket_capacity") == 1000.0 and b.param("token_bucket_refill_rate") == 0.0


# ------------------------------------------------------------------------- precedence

FULL_BUNDLE = """
admission:
  policy: token-bucket
  token_bucket_capacity: 500
  token_bucket_refill_rate: 50
routing:
  policy: weighted
  scorers:
    - {name: load-balance, weight: 1}
    - {name: queue-depth, weight: 4}
priority:
  policy: slo-based
scheduler: sjf
"""

# (flag, flag value, PolicyConfig attribute, bundle value, flag value as resolved, default)
PRECEDENCE_CASES = [
    ("--admission-policy", "reject-all", "admission", "token-bucket", "reject-all", "always-admit"),
    ("--token-bucket-capacity", "7", "token_bucket_capacity", 500.0, 7.0, 10000.0),
    ("--token-bucket-refill-rate", "3", "token_bucket_refill_rate", 50.0, 3.0, 1000.0),
    ("--routing-policy", "least-loaded", "routing", "weighted", "least-loaded", "round-robin"),
    ("--priority-policy", "inverted-slo", "priority", "slo-based", "inverted-slo", "constant"),
    ("--scheduler", "priority-fcfs", "scheduler", "sjf", "priority-fcfs", "fcfs"),
]


def _policy_value(policy, attr):
    """A PolicyConfig field, or a declared policy parameter of that name."""
    return getattr(policy, attr) if hasattr(policy, attr) else policy.param(attr)


@pytest.mark.parametrize("flag, value, attr, from_bundle, from_flag, default", PRECEDENCE_CASES)
def test_precedence_flag_over_bundle_over_default(tmp_path, flag, value, attr, from_bundle, from_flag, default):
    path = write(tmp_path, FULL_BUNDLE)
    assert _policy_value(resolve().policy, attr) == default
    assert _policy_value(resolve("--policy-config", path).policy, attr) == from_bundle
    assert _policy_value(resolve("--policy-config", path, flag, value).policy, attr) == from_flag
    assert _policy_value(resolve(flag, value).policy, attr) == from_flag


def test_bundle_zero_overrides_default(tmp_path):
    path = write(tmp_path, "admission: {token_bucket_capacity: 0}\n")
    assert resolve("--policy-config", path).policy.param("token_bucket_capacity") == 0.0


def test_scorer_precedence(tmp_path):
    path = write(tmp_path, FULL_BUNDLE)
    bundle_scorers = (ScorerSpec("load-balance", 1.0), ScorerSpec("queue-depth", 4.0))
    assert resolve("--policy-config", path).policy.scorers == bundle_scorers
    s = resolve("--policy-config", path, "--routing-scorers", "kv-utilization:2")
    assert s.policy.scorers == (ScorerSpec("kv-utilization", 2.0),)
    assert resolve("--routing-policy", "weighted").policy.scorers == DEFAULT_SCORERS
    # bundle scorers only apply to weighted routing
    s = resolve("--policy-config", path, "--routing-policy", "round-robin")
    assert s.policy.scorers == DEFAULT_SCORERS
    s = resolve("--routing-scorers", "queue-depth:1")
    assert s.policy.scorers == DEFAULT_SCORERS and any("routing-scorers" in w for w in s.warnings)


# ------------------------------------------------------------------------- bad inputs

BAD_FLAGS = [
    (["--routing-policy", "random"], "--routing-policy"),
    (["--admission-policy", "nope"], "--admission-policy"),
    (["--priority-policy", "fifo"], "--priority-policy"),
    (["--scheduler", "lifo"], "--scheduler"),
    (["--routing-policy", "weighted", "--routing-scorers", "queue-depth"], "--routing-scorers"),
    (["--routing-policy", "weighted", "--routing-scorers", "queue-depth:1,queue-depth:2"], "--routing-scorers"),
    (["--routing-policy", "weighted", "--routing-scorers", "magic:1"], "--routing-scorers"),
    (["--routing-policy", "weighted", "--routing-scorers", "queue-depth:0"], "--routing-scorers"),
    (["--routing-policy", "weighted", "--routing-scorers", "queue-depth:-1"], "--routing-scorers"),
    (["--routing-policy", "weighted", "--routing-scorers", "queue-depth:NaN"], "--routing-scorers"),
    (["--routing-policy", "weighted", "--routing-scorers", "queue-depth:+Inf"], "--routing-scorers"),
    (["--routing-policy", "weighted", "--routing-scorers", "queue-depth:x"], "--routing-scorers"),
    (["--routing-scorers", "queue-depth:1,"], "--routing-scorers"),
    (["--num-instances", "0"], "--num-instances"),
    (["--total-kv-blocks", "0"], "--total-kv-blocks"),
    (["--total-kv-blocks", "-5"], "--total-kv-blocks"),
    (["--block-size-in-tokens", "0"], "--block-size-in-tokens"),
    (["--max-num-running-reqs", "0"], "--max-num-running-reqs"),
    (["--max-num-scheduled-tokens", "-1"], "--max-num-scheduled-tokens"),
    (["--long-prefill-token-threshold", "-1"], "--long-prefill-token-threshold"),
    (["--kv-cpu-blocks", "-1"], "--kv-cpu-blocks"),
    (["--kv-offload-threshold", "1.5"], "--kv-offload-threshold"),
    (["--kv-offload-threshold", "NaN"], "--kv-offload-threshold"),
    (["--kv-cpu-blocks", "10", "--kv-transfer-bandwidth", "0"], "--kv-transfer-bandwidth"),
    (["--kv-transfer-base-latency", "-1"], "--kv-transfer-base-latency"),
    (["--snapshot-refresh-interval", "-1"], "--snapshot-refresh-interval"),
    (["--admission-latency", "-1"], "--admission-latency"),
    (["--routing-latency", "-3"], "--routing-latency"),
    (["--horizon", "0"], "--horizon"),
    (["--counterfactual-k", "-1"], "--counterfactual-k"),
    (["--trace-level", "verbose"], "--trace-level"),
    (["--log", "loud"], "--log"),
    (["--workload", "poisson"], "--workload"),
    (["--workload", "traces"], "--workload-traces-filepath"),
    (["--token-bucket-capacity", "-1"], "--token-bucket-capacity"),
    (["--token-bucket-refill-rate", "inf"], "--token-bucket-refill-rate"),
    (["--fitness-weights", "throughput"], "--fitness-weights"),
    (["--fitness-weights", "throughput:-1"], "--fitness-weights"),
    (["--fitness-weights", "throughput:nan"], "--fitness-weights"),
    (["--fitness-weights", "latency:1"], "--fitness-weights"),
    (["--fitness-weights", "p99_ttft:abc"], "--fitness-weights"),
    (["--alpha-coeffs", "1,x,3"], "--alpha-coeffs"),
    (["--beta-coeffs", "1,,3"], "--beta-coeffs"),
    (["--beta-coeffs", "1,2"], "--beta-coeffs"),
    (["--alpha-coeffs", "1,NaN,3"], "--alpha-coeffs"),
    (["--rate", "0"], "--rate"),
    (["--rate", "abc"], "--rate"),
    (["--num-instances", "1.5"], "--num-instances"),
    (["--seed", "99999999999999999999"], "--seed"),
    (["--prompt-tokens", "9000"], "--prompt-tokens"),
    (["--output-tokens-stdev", "1"], "--output-tokens"),
    (["--summarize-trace=maybe"], "--summarize-trace"),
    (["--latency-model", "magic"], "--latency-model"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--policy-config", "/nonexistent/p.yaml"], "--policy-config"),
]


@pytest.mark.parametrize("argv, needle", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_raise_input_error(argv, needle):
    with pytest.raises(InputError) as err:
        resolve(*argv)
    msg = str(err.value)
    assert needle in msg
    assert "\n" not in msg


def test_missing_model():
    with pytest.raises(InputError, match="--model"):
        resolve_run_settings(parse_run_args([]))


def test_policy_error_lists_valid_names():
    with pytest.raises(InputError) as err:
        resolve("--routing-policy", "random")
    assert "always-busiest" in str(err.value) and "least-loaded" in str(err.value)


BAD_BUNDLES = [
    ("admision:\n  policy: always-admit\n", "admision: unknown key"),
    ("admission:\n  polcy: always-admit\n", "admission.polcy: unknown key"),
    ("routing:\n  scorer: []\n", "routing.scorer: unknown key"),
    ("priority:\n  level: 3\n", "priority.level: unknown key"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: 1, bias: 2}\n", "routing.scorers[0].bias: unknown key"),
    ("admission:\n  policy: maybe\n", "admission.policy"),
    ("routing:\n  policy: random\n", "routing.policy"),
    ("priority:\n  policy: vip\n", "priority.policy"),
    ("scheduler: lifo\n", "scheduler"),
    ("scheduler: 3\n", "scheduler: expected a string"),
    ("admission: always-admit\n", "admission: expected a mapping"),
    ("admission:\n  token_bucket_capacity: -1\n", "admission.token_bucket_capacity"),
    ("admission:\n  token_bucket_refill_rate: .nan\n", "admission.token_bucket_refill_rate"),
    ("admission:\n  token_bucket_capacity: .inf\n", "admission.token_bucket_capacity"),
    ("admission:\n  token_bucket_capacity: '100'\n", "admission.token_bucket_capacity: expected a number"),
    ("admission:\n  token_bucket_capacity: true\n", "admission.token_bucket_capacity: expected a number"),
    ("routing:\n  scorers:\n    - {name: magic, weight: 1}\n", "routing.scorers[0].name"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: 1}\n    - {name: queue-depth, weight: 2}\n",
     "routing.scorers[1].name: duplicate"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: 0}\n", "routing.scorers[0].weight"),
    ("routing:\n  scorers:\n    - {name: queue-depth}\n", "routing.scorers[0].weight"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: -2}\n", "routing.scorers[0].weight"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: .inf}\n", "routing.scorers[0].weight"),
    ("routing:\n  scorers: queue-depth\n", "routing.scorers: expected a list"),
    ("routing:\n  scorers:\n    - queue-depth\n", "routing.scorers[0]: expected a mapping"),
    ("scheduler: fcfs\nscheduler: sjf\n", "duplicate key 'scheduler'"),
    ("- admission\n", "expected a mapping"),
    ("", "file is empty"),
    ("admission: [\n", "invalid YAML"),
    ("scheduler: fcfs\n---\nscheduler: sjf\n", "one YAML document"),
]


@pytest.mark.parametrize("text, needle", BAD_BUNDLES, ids=[n for _, n in BAD_BUNDLES])
def test_bad_bundles_raise_input_error(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_policy_bundle(path)
    msg = str(err.value)
    assert needle in msg
    assert "policy-config" in msg and "\n" not in msg
    with pytest.raises(InputError):
        resolve("--policy-config", path)


def test_bundle_bad_name_lists_valid_options(tmp_path):
    with pytest.raises(InputError) as err:
        load_policy_bundle(write(tmp_path, "scheduler: lifo\n"))
    assert "priority-fcfs" in str(err.value) and "reverse-priority" in str(err.value)


def test_go_style_numbers():
    assert parse_run_args(["--rate", "Inf"]).rate == math.inf
    ns = parse_run_args(["--rate", "0x1p-2", "--num-requests", "0x10"])
    assert ns.rate == 0.25 and ns.num_requests == 16
    with pytest.raises(InputError, match="--rate"):
        parse_run_args(["--rate", "1_000"])
