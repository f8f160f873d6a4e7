"""The ``blis`` command line: ``blis run [flags]`` (also ``python -m blis_evo run [flags]``) and
``blis replay [options]`` (:mod:`search.replay`: re-evaluate a policy bundle on fresh seeds).

Behaviour port of the ``run`` command of BLIS ``cmd/root.go`` @cbb0de7b:

1. parse and validate the flags (:mod:`blis_evo.flags`, :mod:`blis_evo.settings`);
2. resolve the latency model (:func:`simulator.latency.resolve_latency`: defaults.yaml
   coefficients, roofline configs; the defaults.yaml KV-block count replaces
   ``--total-kv-blocks`` unless that flag was given);
3. build the workload (CSV trace, ``distribution``, or a named preset from defaults.yaml);
4. run the cluster simulation (:func:`simulator.engine.run`);
5. print the report to stdout and write ``--results-path``.

With ``--experiment E`` steps 2-3 take the experiment's cluster and workload for ``--seed``
exactly as the policy search simulates them (:func:`blis_evo.deployment.build_sim_config` and
:func:`blis_evo.deployment.experiment_workload`), so a champion can be checked with the ordinary
CLI.

Logs go to stderr (``--log``, logrus-style lines, see :mod:`blis_evo.logging_setup`); stdout is
deterministic.  Where the reference would ``logrus.Fatalf`` or panic on bad input, ``main`` prints
one line ``blis: error: <message>`` to stderr and returns 2 (no traceback, no results file).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Sequence

import numpy as np
import yaml

import simulator
from simulator import engine
from simulator.config import INT64_MAX
from simulator.errors import InputError
from simulator.latency import resolve_latency
from simulator.workload.csv_trace import load_trace_csv
from simulator.workload.distribution import (generate_distribution, preset_workload,
                                             validate_distribution_args)

from .commands import (EXIT_INPUT_ERROR, EXIT_INTERRUPTED, EXIT_OK, check_output_dir,
                       check_output_file, one_line)
from .flags import parse_run_args
from .go_scalars import go_float_str
from .logging_setup import configure_logging, reset_logging
from .output import print_run_report, write_results_json
from .settings import RunSettings, resolve_run_settings

_MASK64 = (1 << 64) - 1
_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3

PRESET_WORKLOADS = ("chatbot", "summarization", "contentgen", "multidoc")


# ---------------------------------------------------------------------------------------------
# RNG: one SeedSequence child per named subsystem (mirrors the reference's PartitionedRNG)
# ---------------------------------------------------------------------------------------------


def _fnv1a64(data: bytes) -> int:
    h = _FNV64_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV64_PRIME) & _MASK64
    return h


def subsystem_seed_sequence(seed: int, name: str) -> np.random.SeedSequence:
    """The SeedSequence of subsystem ``name`` (e.g. ``"workload"``) for master ``seed``.

    A child of the master ``SeedSequence(seed mod 2**64)`` whose spawn key is the FNV-1a-64 hash
    of ``name``, so each named subsystem gets an independent stream that does not depend on which
    other subsystems exist or on the order they are created (the role of the reference's
    ``PartitionedRNG``; the streams themselves are numpy's, not Go's).
    """
    return np.random.SeedSequence(int(seed) & _MASK64, spawn_key=(_fnv1a64(name.encode("utf-8")),))


def subsystem_rng(seed: int, name: str) -> np.random.Generator:
    """A fresh ``numpy.random.Generator`` (PCG64) for subsystem ``name`` under master ``seed``."""
    return np.random.Generator(np.random.PCG64(subsystem_seed_sequence(seed, name)))


# ---------------------------------------------------------------------------------------------
# Pipeline steps
# ---------------------------------------------------------------------------------------------


def _resolve_sim_config(settings: RunSettings, log):
    """SimConfig with the resolved latency model and the effective KV block count."""
    li = settings.latency
    res = resolve_latency(
        model=li.model,
        hardware=li.hardware,
        tp=li.tp,
        vllm_version=li.vllm_version,
        alpha=li.alpha,
        beta=li.beta,
        model_config_folder=li.model_config_folder,
        hardware_config=li.hardware_config,
        defaults_path=li.defaults_filepath,
        latency_model=li.latency_model,
        total_kv_blocks_explicit=li.total_kv_blocks_explicit,
        dp=li.dp,
        enable_expert_parallel=li.enable_expert_parallel,
        moe_comm_backend=li.moe_comm_backend,
        block_size=li.block_size,
        gpu_memory_utilization=li.gpu_memory_utilization,
    )
    for note in res.notes:
        log.info("%s", note)
    for warning in res.warnings:
        log.warning("%s", warning)
    # The reference announces every value it filled in from defaults.yaml as a warning.
    if li.tp == 0 and res.tp != li.tp:
        log.warning("Using default tp=%s for model=%s", res.tp, res.model)
    if not li.hardware and res.hardware:
        log.warning("Using default GPU=%s for model=%s", res.hardware, res.model)
    if not li.vllm_version and res.vllm_version:
        log.warning("Using default vLLM version=%s for model=%s", res.vllm_version, res.model)
    lat = res.config
    if lat.kind in ("roofline", "trained-physics"):
        log.info("Using %s step-time model for model=%s, TP=%s, GPU=%s",
                 lat.kind, res.model, res.tp, res.hardware)
    if lat.kind == "trained-physics" and "max-model-len" in settings.explicit:
        lat = dataclasses.replace(lat, context_tokens=max(int(settings.max_model_len), 0))
    kv_blocks = settings.sim.total_kv_blocks if res.total_kv_blocks is None else res.total_kv_blocks
    return dataclasses.replace(settings.sim, latency=lat, total_kv_blocks=int(kv_blocks))


def _check_results_path(path: str) -> None:
    """Fail before simulating if ``--results-path`` can obviously not be written."""
    if path != "":
        check_output_file(path, "--results-path")


def build_workload(settings: RunSettings, horizon_us: int, log):
    """The run's :class:`~simulator.workload.types.Workload`, as the reference builds it.

    ``traces``: the CSV file, read up to the horizon.  ``distribution``: the length flags.
    Presets (chatbot, summarization, contentgen, multidoc): lengths from the ``workloads:``
    section of the defaults YAML; only ``--rate`` and ``--num-requests`` come from the command
    line, like the reference.  Generated workloads draw from the ``"workload"`` subsystem RNG of
    ``--seed``.  Raises InputError on bad input.
    """
    ws = settings.workload
    if ws.kind == "traces":
        return load_trace_csv(ws.traces_path, horizon_us)
    if ws.kind == "distribution":
        lengths = dict(
            prefix_tokens=ws.prefix_tokens,
            prompt_mean=ws.prompt_tokens, prompt_std=ws.prompt_tokens_stdev,
            prompt_min=ws.prompt_tokens_min, prompt_max=ws.prompt_tokens_max,
            output_mean=ws.output_tokens, output_std=ws.output_tokens_stdev,
            output_min=ws.output_tokens_min, output_max=ws.output_tokens_max,
        )
        check_ranges = True
    elif ws.kind in PRESET_WORKLOADS:
        lengths = preset_workload(ws.kind, settings.latency.defaults_filepath)
        log.info("Using preset workload %s", ws.kind)
        check_ranges = False  # the reference checks only the rate for presets
    else:  # flags.py restricts --workload; keep the error one line anyway
        raise InputError(f"--workload: unknown workload type {ws.kind!r}")
    validate_distribution_args(rate_per_s=ws.rate, num_requests=ws.num_requests,
                               check_ranges=check_ranges, **lengths)
    return generate_distribution(rate_per_s=ws.rate, num_requests=ws.num_requests,
                                 horizon_us=horizon_us, rng=subsystem_rng(ws.seed, "workload"),
                                 **lengths)


def _warmup_engine(log) -> None:
    """Load (or compile) the engine's kernels outside the timed region."""
    simulator.warmup()


def _log_run_config(settings: RunSettings, sim, log) -> None:
    pol = settings.policy
    log.info("Policy config: admission=%s, routing=%s, priority=%s, scheduler=%s",
             pol.admission, pol.routing, pol.priority, pol.scheduler)
    if pol.routing == "weighted":
        log.info("Weighted routing scorers: %s",
                 ", ".join("%s:%.1f" % (s.name, s.weight) for s in pol.scorers))
    if pol.admission == "token-bucket":
        log.info("Token bucket: capacity=%.0f, refill-rate=%.0f",
                 pol.param("token_bucket_capacity"), pol.param("token_bucket_refill_rate"))
    if settings.trace_level != "none" and not (settings.summarize_trace or settings.trace_report):
        log.info("Decision tracing enabled (trace-level=%s). Use --summarize-trace to print summary.",
                 settings.trace_level)
    alpha = "[" + " ".join(go_float_str(x) for x in sim.latency.alpha) + "]"
    beta = "[" + " ".join(go_float_str(x) for x in sim.latency.beta) + "]"
    log.info("Starting simulation with %d KV blocks, horizon=%dticks, alphaCoeffs=%s, betaCoeffs=%s",
             sim.total_kv_blocks, sim.horizon, alpha, beta)


def _resolve_spec(settings: RunSettings, sim):
    """Load ``--workload-spec`` and apply its bounds the way the reference does: the spec's
    horizon and num_requests apply unless ``--horizon`` / ``--num-requests`` were given, and at
    least one bound is required.  ``--seed`` overrides the spec seed only when given explicitly.
    ``preset:NAME`` selects a built-in scenario; an explicit ``--rate`` sets its aggregate rate
    (the reference's scenario constructors take the rate as an argument).
    Returns (spec, sim config with the horizon applied, max requests, seed or None)."""
    # lazy: workload specs (and the trace v2 and generator modules below) load only for the
    # runs that use them, not for the reference's trace and distribution workloads
    from simulator.workload.spec import PRESET_PREFIX, load_workload_spec, scenario_spec

    path = settings.workload.spec_path
    if path.startswith(PRESET_PREFIX) and "rate" in settings.explicit:
        spec = scenario_spec(path[len(PRESET_PREFIX):], rate=float(settings.workload.rate))
    else:
        spec = load_workload_spec(path)
    horizon = sim.horizon
    if spec.horizon > 0 and "horizon" not in settings.explicit:
        horizon = int(spec.horizon)
    max_requests = int(spec.num_requests)
    if "num-requests" in settings.explicit:
        max_requests = int(settings.workload.num_requests)
    if max_requests <= 0 and horizon == INT64_MAX:
        raise InputError("--workload-spec requires num_requests (in the YAML or --num-requests) "
                         "or a horizon (in the YAML or --horizon) to bound generation")
    seed = int(settings.workload.seed) if "seed" in settings.explicit else None
    return spec, dataclasses.replace(sim, horizon=horizon), max_requests, seed


def _spec_slo_targets(spec) -> dict | None:
    """SLO targets per class declared by the spec's clients, or None when there are none."""
    return spec.slo_targets_by_class() or None


# ---------------------------------------------------------------------------------------------
# Trace v2: replay through --workload-spec, export with --trace-output
# ---------------------------------------------------------------------------------------------


def _is_trace_replay(path: str) -> bool:
    """Whether ``--workload-spec path`` names a trace v2 (its directory, or a YAML header with a
    ``trace_version`` key) rather than a workload spec."""
    if not path:
        return False
    from simulator.workload.tracev2 import is_trace_v2  # lazy: see _resolve_spec

    return is_trace_v2(path)


def _resolve_trace_replay(settings: RunSettings, sim):
    """Load the trace v2 named by ``--workload-spec`` for replay.  The recorded horizon applies
    unless ``--horizon`` was given; an explicit ``--num-requests`` keeps the first N requests;
    ``--seed`` seeds synthetic token ids when the trace has no token sidecar.
    Returns (trace, sim config with the horizon applied)."""
    from simulator.workload.tracev2 import head_trace, read_trace_v2  # lazy: see _resolve_spec

    trace = read_trace_v2(settings.workload.spec_path, seed=int(settings.workload.seed))
    horizon = sim.horizon
    if trace.horizon is not None and "horizon" not in settings.explicit:
        horizon = int(trace.horizon)
    if "num-requests" in settings.explicit:
        trace = head_trace(trace, int(settings.workload.num_requests))
    return trace, dataclasses.replace(sim, horizon=horizon)


def _check_trace_output(path: str) -> None:
    """Fail before simulating if ``--trace-output`` can obviously not be written."""
    if path != "":
        check_output_dir(path, "--trace-output")


def _write_trace_output(settings: RunSettings, sim, workload, result, details, spec, trace,
                        slo_targets, log) -> None:
    """Export what was simulated as a trace v2 into ``--trace-output`` (see
    :mod:`simulator.workload.tracev2`); replaying it reproduces the run."""
    # lazy: see _resolve_spec
    from simulator.workload.tracev2 import clients_from_spec, write_trace_v2

    clients, workload_spec = None, ""
    if spec is not None:
        clients, workload_spec = clients_from_spec(spec), settings.workload.spec_path
    elif trace is not None:
        clients, workload_spec = list(trace.clients), trace.header.get("workload_spec", "")
    header = {
        "mode": "generated",
        "warm_up_requests": 0,
        "workload_spec": workload_spec,
        "server": {"type": "blis-evo", "model": settings.latency.model,
                   "tensor_parallel": settings.latency.tp, "max_num_seqs": sim.max_running_reqs,
                   "block_size": sim.block_size, "max_model_len": settings.max_model_len},
    }
    paths = write_trace_v2(settings.trace_output, workload, result, header=header,
                           details=details, clients=clients, slo_targets=slo_targets,
                           horizon=sim.horizon)
    log.info("Trace v2 written to %s", paths.directory)


def _simulate_and_report(settings: RunSettings, sim, workload, start: float, slo_targets,
                         client_network, log):
    """Run the engine, print the stdout report and write ``--results-path``; return the
    SimResult.  ``start`` is when workload generation began (for the wall-clock log line)."""
    log.debug("Workload: %d requests", workload.num_requests)
    result = engine.run(sim, settings.policy, workload)
    log.info("Simulation wall-clock time: %.3fs", time.perf_counter() - start)

    out = sys.stdout
    print_run_report(result, sim_cfg=sim, policy=settings.policy,
                     fitness_weights=settings.fitness_weights,
                     summarize_trace=settings.summarize_trace, out=out)
    if settings.trace_report:
        from .summary import summarize_run  # lazy: only --summarize-trace=text loads the report

        out.write("=== Trace Report ===\n" + summarize_run(result, workload, slo_targets,
                                                          sim_cfg=sim, policy=settings.policy))
    out.flush()
    if settings.results_path:
        write_results_json(result, settings.results_path, sim_cfg=sim, policy=settings.policy,
                           fitness_weights=settings.fitness_weights,
                           summarize_trace=settings.summarize_trace, slo_targets=slo_targets,
                           client_network=client_network)
        log.info("Results written to %s", settings.results_path)
    return result


def _experiment_client_network(exp, seed: int):
    """Per-request client network arrays of a spec/preset experiment whose clients declare a
    network block (for ``client_ttft_ms`` / ``client_e2e_ms`` in the results file), else None.

    Regenerates the same requests as ``blis_evo.deployment.experiment_workload`` (same spec,
    bounds and seed) to obtain the per-request details that the memoised table drops.
    """
    w = exp.workload
    if w.spec is None or not any(getattr(c, "network", None) is not None for c in w.spec.clients):
        return None
    from simulator.workload.generator import generate_spec_requests  # lazy: see _resolve_spec

    details = generate_spec_requests(w.spec, horizon_us=w.horizon_us, max_requests=w.num_requests,
                                     seed=int(seed))
    net = details.network
    return net if net is not None and net.any else None


def _execute_experiment(settings: RunSettings, log) -> int:
    """``blis run --experiment E --seed S``: one simulation of the experiment's cluster and
    workload for seed S (``settings.sim`` is already the search's SimConfig for S), reported
    like any ``blis run``.  The numbers equal ``search.evaluate.evaluate(policy, E, [S], ...)``."""
    # lazy: only --experiment runs load the experiment's workload readers
    from .deployment import experiment_workload, slo_targets

    exp = settings.experiment
    sim = settings.sim
    seed = int(settings.workload.seed)
    _check_results_path(settings.results_path)
    log.info("Experiment %s (%s): seed %d, cluster %d x %s/%s/TP%d",
             exp.name, exp.source, seed, sim.num_instances, exp.cluster.model,
             exp.cluster.hardware, exp.cluster.tp)
    _log_run_config(settings, sim, log)
    _warmup_engine(log)
    start = time.perf_counter()
    workload = experiment_workload(exp, seed)
    client_network = _experiment_client_network(exp, seed)
    _simulate_and_report(settings, sim, workload, start, slo_targets(exp) or None,
                         client_network, log)
    return EXIT_OK


def execute(settings: RunSettings, log) -> int:
    """Run a resolved ``blis run``: latency, workload, simulation, report, results file.

    Returns the exit status (0).  Raises InputError/OSError on bad input; nothing is written to
    stdout or to ``--results-path`` before every input has been read and validated.
    """
    for msg in settings.warnings:
        log.warning("%s", msg)
    if settings.experiment is not None:
        return _execute_experiment(settings, log)
    sim = _resolve_sim_config(settings, log)
    spec = None
    slo_targets = None
    trace = None
    if _is_trace_replay(settings.workload.spec_path):
        trace, sim = _resolve_trace_replay(settings, sim)
        slo_targets = trace.slo_targets
    if settings.workload.spec_path and trace is None:
        spec, sim, max_requests, spec_seed = _resolve_spec(settings, sim)
        slo_targets = _spec_slo_targets(spec)
    _check_results_path(settings.results_path)
    _check_trace_output(settings.trace_output)
    _log_run_config(settings, sim, log)

    _warmup_engine(log)
    start = time.perf_counter()
    client_network = None
    generated = None
    if spec is not None:
        # lazy: see _resolve_spec
        from simulator.workload.generator import generate_spec_requests

        generated = generate_spec_requests(spec, horizon_us=sim.horizon,
                                           max_requests=max_requests, seed=spec_seed)
        workload = generated.workload
        if generated.network is not None and generated.network.any:
            client_network = generated.network
        log.info("Generated %d requests from workload spec", workload.num_requests)
    elif trace is not None:
        generated = trace.requests
        workload = generated.workload
        if generated.network is not None and generated.network.any:
            client_network = generated.network
        log.info("Replaying %d requests from trace v2 %s", workload.num_requests,
                 trace.paths.header)
    else:
        workload = build_workload(settings, sim.horizon, log)
    result = _simulate_and_report(settings, sim, workload, start, slo_targets, client_network, log)
    if settings.trace_output:
        _write_trace_output(settings, sim, workload, result, generated, spec, trace, slo_targets,
                            log)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """One-line message for an input error of any of the caught kinds."""
    if isinstance(exc, InputError):
        return one_line(str(exc)) or "invalid input"
    if isinstance(exc, OSError) and exc.strerror:
        name = exc.filename if exc.filename is not None else ""
        return one_line(f"{exc.strerror}: {name}" if name != "" else exc.strerror)
    if isinstance(exc, yaml.YAMLError):
        return "invalid YAML: " + one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


def _error(exc: BaseException) -> int:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    print(f"blis: error: {_describe(exc)}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def _is_trace_replay_args(args: Sequence[str]) -> bool:
    """``blis replay --trace DIR ...`` (not the champion replay, which takes ``--policy``)."""
    return any(a == "--trace" or a.startswith("--trace=") for a in args)


def _trace_replay_as_run_args(args: Sequence[str]) -> list[str]:
    """``--trace DIR`` spelled as the equivalent ``blis run`` flag ``--workload-spec DIR``.

    Raises InputError (naming ``--trace``) when the value is missing or is not a trace v2
    directory, or when ``--workload-spec`` is given too (it would silently win)."""
    from simulator.workload.tracev2 import is_trace_v2  # lazy: see _resolve_spec

    if any(a == "--workload-spec" or a.startswith("--workload-spec=") for a in args):
        raise InputError("--trace and --workload-spec are the same input; give only --trace")
    out: list[str] = []
    seen_trace = False
    k = 0
    while k < len(args):
        a = args[k]
        if a == "--trace" or a.startswith("--trace="):
            if a == "--trace":
                value = args[k + 1] if k + 1 < len(args) and not args[k + 1].startswith("--") else ""
                k += 1
            else:
                value = a[len("--trace="):]
            if not value:
                raise InputError("--trace expects a trace v2 directory (written by blis observe or "
                                 "blis run --trace-output)")
            if seen_trace:
                raise InputError("--trace given more than once")
            if not is_trace_v2(value):
                raise InputError(f"--trace: {value!r} is not a trace v2 directory (no header.yaml)")
            seen_trace = True
            out += ["--workload-spec", value]
        else:
            out.append(a)
        k += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``blis`` CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    ``argv`` is ``["run", <flags>...]`` (the leading ``run`` may be omitted),
    ``["replay", "--policy", ...]`` (champion replay, :func:`search.replay.main`),
    ``["replay", "--trace", DIR, <run flags>...]`` (a recorded trace through the simulator: the
    same as ``run --workload-spec DIR``), ``["observe", ...]`` (:func:`blis_evo.observe.main`),
    ``["calibrate", ...]`` (:func:`blis_evo.calibrate.main`) or ``["schema", NAME]``
    (:func:`blis_evo.schema_command.main`: print an input format's JSON Schema).  Returns 0 on
    success, 2 on bad input (``blis: error: <one line>`` on stderr, no traceback, no results
    file), 130 on Ctrl-C, and the argparse status for ``--help``.  Never calls ``sys.exit``;
    the console script and ``python -m blis_evo`` do that with the returned value.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "replay" and not _is_trace_replay_args(args[1:]):
        from search.replay import main as replay_main  # lazy: keeps the search out of blis run

        return replay_main(args[1:], prog="blis")
    if args and args[0] == "replay":
        try:
            args = ["run", *_trace_replay_as_run_args(args[1:])]
        except InputError as exc:
            return _error(exc)
    if args and args[0] == "observe":
        # lazy: each subcommand loads only its own modules (observe: aiohttp)
        from .observe import main as observe_main

        return observe_main(args[1:], prog="blis")
    if args and args[0] == "calibrate":
        from .calibrate import main as calibrate_main  # lazy: as observe

        return calibrate_main(args[1:], prog="blis")
    if args and args[0] == "schema":
        from .schema_command import main as schema_main  # lazy: as observe

        return schema_main(args[1:], prog="blis")
    try:
        try:
            ns = parse_run_args(args)
        except SystemExit as exc:  # argparse --help / -h
            code = exc.code
            return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_INPUT_ERROR)
        settings = resolve_run_settings(ns)
        log = configure_logging(settings.log_level)
        return execute(settings, log)
    except (InputError, OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        return _error(exc)
    except KeyboardInterrupt:
        print("blis: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        reset_logging()


def _broken_pipe() -> int:
    """stdout was closed by the reader (e.g. ``| head``): stop quietly, as a pipe writer should."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
