"""Fitness oracle: the search's penalised fitness, re-derived by hand from per-request results.

The GA ranks policies by ``search.evaluate.evaluate``.  These tests evaluate a policy on a
small experiment through that function, then simulate the same seeds themselves and recompute,
with numpy over the raw per-request arrays of each ``SimResult``, what the documentation says
the fitness is:

* the weighted score: ``Σ w_k · c_k`` over the objective weights, with latency components
  ``1 / (1 + x_us / 1000)`` (x = p99 TTFT by linear interpolation at rank 0.99·(n-1), mean
  E2E, ...), throughput ``rps / (rps + 100)`` with rps = completed requests per second of
  simulated time, plus ``w_slo`` × overall SLO attainment;
* SLO attainment: over the requests that reached the cluster, the fraction that completed and
  met every target of their class (TTFT, E2E, and TPOT = (E2E - TTFT) / (n_out - 1) when
  n_out > 1); a class without targets always meets them;
* the anomaly rates: SLO-class priority inversions (requests overtaken on their instance by a
  request of a less important class that arrived no earlier but got its first token earlier),
  rejected, dropped-unservable and SLO-violating requests, each per request of the workload;
  HOL-blocking events (instances whose mean per-step wait queue exceeds twice the mean over
  instances) per instance;
* the penalty ``P = Σ penalty_k · rate_k`` and the seed's fitness ``score · exp(-P)``; the
  fitness is the mean over seeds; in multi-objective mode each objective is the mean over seeds
  of its raw metric, negated when minimised, then multiplied by exp(-P̄) when >= 0 and divided
  by it when < 0 (P̄ the mean penalty).

Nothing here calls the metric helpers of ``simulator.metrics`` / ``blis_evo.metrics`` /
``search.evaluate``: the simulation is configured from the experiment's numbers directly, and
every quantity is recomputed from ``req_state``, ``req_instance``, ``arrival_us``,
``first_token_us``, ``ttft_us``, ``e2e_us``, ``n_out`` and the per-instance step / wait-queue
counters.  The experiment is built so that every penalty is non-zero on the checked seeds
(token-bucket rejections, prompts larger than the KV cache, two classes sharing a prefix pinned
to one instance under SJF, and that instance's queue far above the others').
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

import simulator
from search.evaluate import evaluate
from blis_evo.experiment import parse_experiment
from simulator.config import INT64_MAX, PolicyConfig, ScorerSpec, SimConfig
from simulator.kernels.request_states import REQ_COMPLETED, REQ_DROPPED, REQ_NOT_ARRIVED, REQ_REJECTED
from simulator.workload.generator import generate_from_spec

REL = 1e-9
SEEDS = (1, 2)
NUM_INSTANCES = 3
NUM_REQUESTS = 240
KV_BLOCKS = 200          # x 16 tokens: prompts of 3500+ tokens can never fit -> dropped
MAX_RUNNING = 32
MAX_SCHEDULED = 2048

# SLO targets per class, as the spec below declares them (the first client of a class that
# declares targets gives the class's targets: chat-b for "batch").
TARGETS = {"interactive": {"ttft_ms": 300.0, "tpot_ms": 15.0, "e2e_ms": 4000.0},
           "batch": {"e2e_ms": 20000.0}}
# Importance rank per class: classes with a TTFT target above those without (tighter higher).
RANK = {"interactive": 1, "batch": 0}
WEIGHTS = {"p99_ttft": 0.5, "mean_e2e": 0.2, "throughput": 0.2, "slo_attainment": 0.1}
PENALTIES = {"priority_inversions": 2.0, "hol_blocking_events": 0.5, "rejected_requests": 3.0,
             "dropped_requests": 4.0, "slo_violations": 1.0, "scale_oscillation": 5.0}

# The policy under test: prefix affinity pins both classes sharing the "sys" prefix to one
# instance (load balance only places the prefix-less requests), SJF lets short batch requests
# overtake interactive ones there, and a small token bucket rejects part of the bursts.
POLICY = PolicyConfig(routing="weighted",
                      scorers=(ScorerSpec("prefix-affinity", 10.0), ScorerSpec("load-balance", 1.0)),
                      scheduler="sjf", admission="token-bucket",
                      params=(("token_bucket_capacity", 20000.0),
                              ("token_bucket_refill_rate", 30000.0)))


def _client(cid, cls, frac, inp, out, targets=None, prefix=None, arrival=None):
    """One workload-spec client mapping (Poisson arrivals unless ``arrival`` is given)."""
    c = {"id": cid, "tenant_id": cid, "slo_class": cls, "rate_fraction": frac,
         "arrival": arrival or {"process": "poisson"},
         "input_distribution": inp, "output_distribution": out}
    if targets:
        c["slo_targets"] = targets
    if prefix:
        c["prefix_group"] = prefix
        c["prefix_length"] = 512
    return c


def experiment_doc(objectives: dict) -> dict:
    """The oracle experiment as a YAML mapping, with the given ``objectives`` section."""
    exp = lambda mean: {"type": "exponential", "params": {"mean": mean}}  # noqa: E731
    gauss = lambda mean, sd, lo, hi: {"type": "gaussian", "params": {  # noqa: E731
        "mean": mean, "std_dev": sd, "min": lo, "max": hi}}
    return {
        "name": "fitness-oracle",
        "cluster": {"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "tp": 1,
                    "num_instances": NUM_INSTANCES, "total_kv_blocks": KV_BLOCKS,
                    "max_running_reqs": MAX_RUNNING, "max_scheduled_tokens": MAX_SCHEDULED,
                    "block_size": 16},
        "workload": {"num_requests": NUM_REQUESTS, "spec": {
            "version": "1", "category": "language", "aggregate_rate": 40,
            "clients": [
                _client("chat-i", "interactive", 0.45, exp(300), exp(40), TARGETS["interactive"],
                        prefix="sys", arrival={"process": "gamma", "cv": 2.0}),
                _client("chat-b", "batch", 0.25, exp(50), exp(40), TARGETS["batch"], prefix="sys"),
                _client("tiny", "batch", 0.2, gauss(30, 10, 5, 60), exp(10)),
                _client("huge", "batch", 0.1, gauss(3800, 100, 3500, 4000), exp(10)),
            ]}},
        "seeds": {"train": list(SEEDS), "heldout": [3]},
        "objectives": objectives,
        "penalties": dict(PENALTIES),
    }


def run_seed(exp, seed: int):
    """Simulate ``POLICY`` on seed ``seed`` of the experiment, configured from the numbers
    above (not from the search's config builder): (SimResult, Workload)."""
    wl = generate_from_spec(exp.workload.spec, horizon_us=None, max_requests=NUM_REQUESTS,
                            seed=seed)
    cfg = SimConfig(num_instances=NUM_INSTANCES, horizon=int(INT64_MAX), seed=seed,
                    total_kv_blocks=KV_BLOCKS, block_size=16, max_running_reqs=MAX_RUNNING,
                    max_scheduled_tokens=MAX_SCHEDULED, latency=exp.cluster.latency)
    return simulator.run(cfg, POLICY, wl), wl


# ---------------------------------------------------------------------------------------------
# The oracle (numpy over per-request arrays)
# ---------------------------------------------------------------------------------------------


def request_classes(wl) -> np.ndarray:
    """SLO class name of every request (object array)."""
    return np.array(wl.slo_names, dtype=object)[np.asarray(wl.slo_class, dtype=np.int64)]


def slo_met(res, classes) -> np.ndarray:
    """Per request: completed and within every target of its class (TPOT only for n_out > 1);
    requests of a class without targets always meet them."""
    ttft_ms = res.ttft_us / 1000.0
    e2e_ms = res.e2e_us / 1000.0
    completed = res.req_state == REQ_COMPLETED
    met = np.ones(len(classes), dtype=bool)
    for k, cls in enumerate(classes):
        tg = TARGETS.get(cls)
        if not tg:
            continue
        ok = bool(completed[k])
        if ok and "ttft_ms" in tg:
            ok = ttft_ms[k] <= tg["ttft_ms"]
        if ok and "e2e_ms" in tg:
            ok = e2e_ms[k] <= tg["e2e_ms"]
        if ok and "tpot_ms" in tg and res.n_out[k] > 1:
            ok = (e2e_ms[k] - ttft_ms[k]) / (res.n_out[k] - 1) <= tg["tpot_ms"]
        met[k] = ok
    return met


def class_inversions(res, classes) -> int:
    """Requests overtaken on their instance by a lower-rank request that arrived no earlier
    but got its first token strictly earlier (the overtaken one got it later, or never)."""
    rank = np.array([RANK[c] for c in classes])
    inst = res.req_instance
    arr = res.arrival_us.astype(np.float64)
    ft = np.where(res.first_token_us >= 0, res.first_token_us, np.inf).astype(np.float64)
    count = 0
    for h in np.flatnonzero(inst >= 0):
        lower = ((inst == inst[h]) & (rank < rank[h]) & np.isfinite(ft) & (arr >= arr[h])
                 & (ft < ft[h]))
        count += bool(lower.any())
    return count


def hol_events(res) -> int:
    """Instances whose mean wait-queue length per step is above twice the mean of those means
    (over instances that stepped; needs two of them and a positive mean)."""
    steps = res.inst_steps.astype(np.float64)
    avg = res.inst_waitq_sum[steps > 0] / steps[steps > 0]
    if len(res.inst_steps) < 2 or avg.size < 2 or avg.mean() <= 0:
        return 0
    return int(np.sum(avg > 2 * avg.mean()))


def oracle_seed(res, wl) -> dict:
    """Score, SLO attainment, anomaly rates, penalty and penalised fitness of one seed."""
    n = wl.num_requests
    classes = request_classes(wl)
    ttft = res.ttft_us[~np.isnan(res.ttft_us)]
    e2e = res.e2e_us[~np.isnan(res.e2e_us)]
    completed = int(np.sum(res.req_state == REQ_COMPLETED))
    duration_s = float(np.max(res.inst_sim_ended_us)) / 1e6
    rps = completed / duration_s
    comps = {
        "p99_ttft": 1.0 / (1.0 + np.percentile(ttft, 99) / 1000.0),
        "mean_e2e": 1.0 / (1.0 + e2e.mean() / 1000.0),
        "throughput": rps / (rps + 100.0),
    }
    arrived = res.req_state != REQ_NOT_ARRIVED
    met = slo_met(res, classes) & arrived
    attainment = met.sum() / arrived.sum()
    score = sum(WEIGHTS[k] * v for k, v in comps.items()) + WEIGHTS["slo_attainment"] * attainment
    rates = {
        "priority_inversions": class_inversions(res, classes) / n,
        "hol_blocking_events": hol_events(res) / NUM_INSTANCES,
        "rejected_requests": int(np.sum(res.req_state == REQ_REJECTED)) / n,
        "dropped_requests": int(np.sum(res.req_state == REQ_DROPPED)) / n,
        "slo_violations": int(np.sum(arrived & ~met)) / n,
        "scale_oscillation": 0.0,  # fixed cluster: no scale actions
    }
    penalty = sum(PENALTIES[k] * r for k, r in rates.items())
    return {"components": comps, "attainment": attainment,
            "attainment_by_class": {c: met[classes == c].sum() / arrived[classes == c].sum()
                                    for c in TARGETS},
            "score": score, "rates": rates, "penalty": penalty,
            "fitness": score * math.exp(-penalty), "rps": rps,
            "p99_ttft_ms": np.percentile(ttft, 99) / 1000.0, "mean_e2e_ms": e2e.mean() / 1000.0}


def close(a: float, b: float) -> bool:
    """Tight relative agreement (1e-9; absolute 1e-12 for zeros)."""
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


@pytest.fixture(scope="module")
def oracle_runs():
    """``{seed: oracle dict}`` for the single-mode experiment (the simulations do not depend
    on the objectives section, so both modes share them)."""
    exp = parse_experiment(yaml.safe_dump(experiment_doc(
        {"mode": "single", "weights": WEIGHTS})))
    return {s: oracle_seed(*run_seed(exp, s)) for s in SEEDS}


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_the_case_exercises_every_penalty(oracle_runs):
    """The oracle sees every anomaly on seed 1 (otherwise the comparison would not test the
    penalty arithmetic): rejections, drops, class inversions, HOL blocking, SLO violations."""
    rates = oracle_runs[1]["rates"]
    for k in ("priority_inversions", "hol_blocking_events", "rejected_requests",
              "dropped_requests", "slo_violations"):
        assert rates[k] > 0, (k, rates)
    assert oracle_runs[1]["penalty"] > 0.1


def test_single_objective_fitness_matches_the_oracle(oracle_runs):
    """Per seed: each weighted component, SLO attainment, each anomaly rate, the penalty, the
    score and the penalised fitness; then the mean over seeds."""
    exp = parse_experiment(yaml.safe_dump(experiment_doc({"mode": "single", "weights": WEIGHTS})))
    ev = evaluate(POLICY, exp, SEEDS)
    problems = []
    for seed, m in zip(SEEDS, ev.per_seed):
        o = oracle_runs[seed]
        pairs = [("score", m.score, o["score"]), ("penalty", m.penalty, o["penalty"]),
                 ("fitness", m.fitness, o["fitness"]),
                 ("attainment[overall]", m.attainment["overall"], o["attainment"]),
                 ("components[slo_attainment]", m.components["slo_attainment"], o["attainment"]),
                 ("measures.throughput_rps", m.measures.throughput_rps, o["rps"]),
                 ("measures.p99_ttft_ms", m.measures.p99_ttft_ms, o["p99_ttft_ms"]),
                 ("measures.mean_e2e_ms", m.measures.mean_e2e_ms, o["mean_e2e_ms"])]
        pairs += [(f"components[{k}]", m.components[k], v) for k, v in o["components"].items()]
        pairs += [(f"rates.{k}", getattr(m.rates, k), v) for k, v in o["rates"].items()]
        pairs += [(f"attainment[{c}]", m.attainment[c], v)
                  for c, v in o["attainment_by_class"].items()]
        problems += [f"seed {seed} {k}: search {a!r} vs oracle {b!r}"
                     for k, a, b in pairs if not close(a, b)]
    assert not problems, "\n".join(problems)
    want = float(np.mean([oracle_runs[s]["fitness"] for s in SEEDS]))
    assert close(ev.fitness, want), (ev.fitness, want)
    assert ev.objectives == (ev.fitness,)
    assert close(ev.penalty, float(np.mean([oracle_runs[s]["penalty"] for s in SEEDS])))


MULTI = [{"key": "p99_ttft", "direction": "min"}, {"key": "throughput", "direction": "max"},
         {"key": "slo_attainment", "direction": "max"},
         {"key": "slo_attainment.interactive", "direction": "max"},
         {"key": "mean_e2e", "direction": "min"}]


def test_multi_objective_vector_matches_the_oracle(oracle_runs):
    """Multi mode: each objective is the seed mean of its raw metric (ms, req/s, attainment),
    negated when minimised, scaled by exp(-mean P) (divided by it when negative); the scalar
    fitness is the same as in single mode."""
    exp = parse_experiment(yaml.safe_dump(experiment_doc(
        {"mode": "multi", "weights": WEIGHTS, "multi": MULTI})))
    ev = evaluate(POLICY, exp, SEEDS)
    runs = [oracle_runs[s] for s in SEEDS]
    raw = {
        "p99_ttft": np.mean([o["p99_ttft_ms"] for o in runs]),
        "throughput": np.mean([o["rps"] for o in runs]),
        "slo_attainment": np.mean([o["attainment"] for o in runs]),
        "slo_attainment.interactive": np.mean([o["attainment_by_class"]["interactive"]
                                               for o in runs]),
        "mean_e2e": np.mean([o["mean_e2e_ms"] for o in runs]),
    }
    factor = math.exp(-np.mean([o["penalty"] for o in runs]))
    want = []
    for o in MULTI:
        v = raw[o["key"]]
        want.append(-v / factor if o["direction"] == "min" else v * factor)
    assert len(ev.objectives) == len(want)
    for o, got, w in zip(MULTI, ev.objectives, want):
        assert close(got, w), (o["key"], got, w)
    assert close(ev.fitness, float(np.mean([o["fitness"] for o in runs])))
