"""An experiment as the simulator runs it: the engine configuration of its cluster (with the
engine knobs and P/D layout of a :class:`~blis_evo.phenotype.Phenotype`), its request table per
seed, its SLO targets, and a policy as the experiment deploys it.

The policy search (``search.evaluate``), ``blis run --experiment`` and replays all build their
simulations here, so they simulate exactly the same thing.  Common random numbers:
:func:`experiment_workload` memoises the request table per ``(experiment, seed)``, so every
policy evaluated on a seed sees exactly the same requests.
"""
from __future__ import annotations

import functools
from dataclasses import replace

from simulator.config import INT64_MAX, PolicyConfig, SimConfig
from simulator.workload.csv_trace import load_trace_csv
from simulator.workload.generator import generate_from_spec
from simulator.workload.tracev2 import is_trace_v2, load_trace_v2
from simulator.workload.types import Workload

from .experiment import Experiment
from .phenotype import Phenotype


def build_sim_config(exp: Experiment, seed: int = 0, phenotype: Phenotype | None = None) -> SimConfig:
    """The engine configuration of the experiment's cluster (``seed`` goes to ``SimConfig.seed``).

    ``phenotype``: its engine knobs and layout (:class:`blis_evo.phenotype.Phenotype`, e.g. a
    decoded genome) override the experiment's values where set; its policy is not part of the
    engine configuration (see :func:`deployed_policy`).
    """
    c = exp.cluster
    horizon = exp.workload.horizon_us if exp.workload.horizon_us is not None else int(INT64_MAX)
    cfg = SimConfig(num_instances=c.num_instances, horizon=int(horizon), seed=int(seed),
                     total_kv_blocks=c.total_kv_blocks, block_size=c.block_size,
                     max_running_reqs=c.max_running_reqs,
                     max_scheduled_tokens=c.max_scheduled_tokens,
                     long_prefill_token_threshold=c.long_prefill_token_threshold,
                     latency=c.latency)
    if phenotype is not None:
        cfg = phenotype.layout.apply(phenotype.engine.apply(cfg))
    return cfg


@functools.lru_cache(maxsize=256)
def experiment_workload(exp: Experiment, seed: int) -> Workload:
    """The request table of ``exp`` for ``seed`` (memoised: the same object for every call).

    Specs and presets are generated with ``workload.num_requests`` / ``horizon_us`` and the seed
    overriding the spec's; a trace is read once (the seed does not change it; a trace-v2
    directory uses the seed only for synthetic token ids).
    """
    w = exp.workload
    if w.kind in ("spec", "preset"):
        return generate_from_spec(w.spec, horizon_us=w.horizon_us, max_requests=w.num_requests,
                                  seed=int(seed))
    if is_trace_v2(w.path):
        wl = load_trace_v2(w.path, seed=int(seed))
    else:
        wl = load_trace_csv(w.path, w.horizon_us if w.horizon_us is not None else int(INT64_MAX))
    if wl.num_requests > w.num_requests:
        wl = _head(wl, w.num_requests)
    return wl


def _head(wl: Workload, n: int) -> Workload:
    """The first ``n`` requests of ``wl`` (a trace longer than the experiment's num_requests)."""
    end = int(wl.token_ptr[n])
    cut = lambda a: None if a is None else a[:n]  # noqa: E731
    return Workload(wl.arrival_us[:n], wl.n_in[:n], wl.n_out[:n], wl.token_ptr[:n + 1],
                    wl.tokens[:end], cut(wl.slo_class), cut(wl.tenant), wl.slo_names,
                    wl.tenant_names)


@functools.lru_cache(maxsize=64)
def slo_targets(exp: Experiment) -> dict:
    """``{slo_class: {ttft_ms/tpot_ms/e2e_ms: value}}`` from the workload spec's clients
    (first client of a class wins); empty for traces and specs without targets."""
    spec = exp.workload.spec
    return {} if spec is None else spec.slo_targets_by_class()


def deployed_policy(policy: PolicyConfig, exp: Experiment) -> PolicyConfig:
    """``policy`` as the experiment deploys it: the experiment's ``autoscaler`` section scales
    the cluster of every policy that brings no autoscaler of its own (baselines included), so
    search genomes, baselines, replays and ``blis run --experiment`` all run the same deployment."""
    if exp.autoscaler is not None and policy.autoscaler is None:
        return replace(policy, autoscaler=exp.autoscaler)
    return policy
