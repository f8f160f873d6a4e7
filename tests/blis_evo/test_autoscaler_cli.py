"""Autoscaler configuration at the boundary: CLI flags, bundle and experiment YAML (bad values
exit 2 with one line), the results JSON section, and load profiles."""
from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.workload.generator import generate_from_spec
from simulator.workload.spec import parse_workload_spec
from tests.blis_evo.test_cli import BASE, call_main

GOOD_BUNDLE = """\
routing: {policy: least-loaded}
autoscaler:
  policy: threshold
  params: {up_load: 2, cooldown_s: 0}
  min_replicas: 1
  max_replicas: 3
  interval_s: 0.5
  provisioning_delay_s: {uniform: [0.5, 1.0]}
"""

BAD = {
    # id: (args or bundle text, expected fragment of the one error line)
    "unknown-policy-flag": (["--autoscaler", "magic"], "--autoscaler"),
    "zero-min-replicas": (["--autoscaler", "threshold", "--min-replicas", "0"], "--min-replicas"),
    "negative-delay": (["--autoscaler", "threshold", "--provisioning-delay", "-1"], "--provisioning-delay"),
    "bad-drain": (["--autoscaler", "threshold", "--drain-policy", "later"], "--drain-policy"),
    "bad-profile": (["--autoscaler", "threshold", "--warmup-profile", "cubic"], "--warmup-profile"),
    "min-above-max": (["--autoscaler", "threshold", "--min-replicas", "5", "--max-replicas", "2"],
                      "min_replicas"),
    "slo-trigger-above-1": (["--autoscaler", "threshold", "--autoscaler-slo-trigger", "1.5"],
                            "--autoscaler-slo-trigger"),
    "slo-window-zero": (["--autoscaler", "threshold", "--autoscaler-slo-window", "0"],
                        "--autoscaler-slo-window"),
    "slo-ttft-negative": (["--autoscaler", "threshold", "--autoscaler-slo-ttft", "-5"],
                          "--autoscaler-slo-ttft"),
    "yaml-slo-trigger": ("autoscaler: {policy: threshold, trigger_slo_attainment: 2}\n",
                         "autoscaler.trigger_slo_attainment"),
    "yaml-slo-window": ("autoscaler: {policy: threshold, trigger_slo_window: 0.5}\n",
                        "autoscaler.trigger_slo_window"),
    "yaml-slo-window-huge": ("autoscaler: {policy: threshold, trigger_slo_window: 1000000}\n",
                             "autoscaler.trigger_slo_window"),
    "yaml-unknown-key": ("autoscaler: {policy: threshold, max_replica: 3}\n", "autoscaler.max_replica"),
    "yaml-bad-param": ("autoscaler: {policy: threshold, params: {up_load: -1}}\n", "params.up_load"),
    "yaml-foreign-param": ("autoscaler: {policy: oscillator, params: {up_load: 3}}\n", "params.up_load"),
    "yaml-bad-delay": ("autoscaler: {policy: threshold, model_load_time_s: {gamma: 3}}\n",
                       "model_load_time_s"),
    "with-disaggregation": (["--autoscaler", "threshold", "--num-instances", "2", "--architecture",
                             "disaggregated"], "--autoscaler: autoscaling applies to monolithic"),
    "initial-above-max": (["--autoscaler", "threshold", "--num-instances", "5", "--max-replicas",
                           "3"], "--num-instances: 5 is the initial replica count"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_autoscaler_input_exits_2_with_one_line(case, tmp_path):
    arg, fragment = BAD[case]
    res = tmp_path / "r.json"
    if isinstance(arg, str):
        (tmp_path / "p.yaml").write_text(arg)
        arg = ["--policy-config", str(tmp_path / "p.yaml")]
    code, out, err = call_main(["run", *BASE, *arg, "--results-path", str(res)])
    assert code == 2 and out == ""
    assert err.startswith("blis: error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert not res.exists()


def test_bundle_autoscaler_runs_and_reports(tmp_path):
    (tmp_path / "p.yaml").write_text(GOOD_BUNDLE)
    res = tmp_path / "r.json"
    argv = ["run", *BASE[:-4], "--num-requests", "300", "--rate", "40", "--policy-config",
            str(tmp_path / "p.yaml"), "--results-path", str(res)]
    code, out, err = call_main(argv)
    assert code == 0, err
    doc = json.loads(res.read_text())
    a = doc["autoscaler"]
    assert a["scale_ups"] >= 1 and a["scale_events"] == len(a["decisions"])
    assert a["replica_seconds"] > 0 and 1.0 <= a["avg_replicas"] <= 3.0
    assert len(doc["instances"]) == 3          # one block per slot (max_replicas)
    # the flag overrides the bundle: one replica at most, so nothing can scale up
    code, out, err = call_main([*argv, "--max-replicas", "1"])
    assert code == 0, err
    assert json.loads(res.read_text())["autoscaler"]["scale_events"] == 0


SLO_BUNDLE = """\
routing: {policy: least-loaded}
autoscaler:
  policy: threshold
  params: {up_load: 512, up_kv: 1.0, slo_target: 0.9, cooldown_s: 0}
  min_replicas: 1
  max_replicas: 3
"""


def test_slo_trigger_flags_evaluate_between_ticks(tmp_path):
    """A 1 ms TTFT target nobody meets: with ticks 1000 s apart, only the SLO trigger can make
    the policy act, once the first window of 20 first tokens is full (then not again: the
    attainment never recovers, so the edge-triggered trigger does not re-arm)."""
    (tmp_path / "p.yaml").write_text(SLO_BUNDLE)
    res = tmp_path / "r.json"
    argv = ["run", *BASE[:-4], "--num-requests", "100", "--rate", "20", "--policy-config",
            str(tmp_path / "p.yaml"), "--autoscaler-interval", "1000", "--autoscaler-slo-ttft",
            "1", "--autoscaler-slo-window", "20", "--results-path", str(res)]
    code, out, err = call_main(argv)
    assert code == 0, err
    assert json.loads(res.read_text())["autoscaler"]["scale_events"] == 0   # trigger off
    code, out, err = call_main([*argv, "--autoscaler-slo-trigger", "0.9"])
    assert code == 0, err
    decisions = json.loads(res.read_text())["autoscaler"]["decisions"]
    assert [(d["action"], d["trigger"]) for d in decisions] == [("up", "slo")]
    assert decisions[0]["reason"].startswith("slo 0.00 < 0.9")


def test_flags_without_autoscaler_warn_and_run_a_fixed_cluster(tmp_path):
    res = tmp_path / "r.json"
    code, out, err = call_main(["run", *BASE, "--min-replicas", "2", "--results-path", str(res)])
    assert code == 0 and "no effect" in err
    assert "autoscaler" not in json.loads(res.read_text())


# --------------------------------------------------------------------------- load profiles

def _spec(profile):
    doc = {"version": "1", "aggregate_rate": 20, "clients": [{
        "id": "a", "rate_fraction": 1.0, "arrival": {"process": "poisson"},
        "input_distribution": {"type": "exponential", "params": {"mean": 32}},
        "output_distribution": {"type": "exponential", "params": {"mean": 8}}}]}
    if profile is not None:
        doc["load_profile"] = profile
    return parse_workload_spec(doc)


def _counts(profile, bins):
    wl = generate_from_spec(_spec(profile), horizon_us=int(bins[-1] * 1e6), max_requests=0, seed=3)
    return np.histogram(wl.arrival_us / 1e6, bins=bins)[0]


@pytest.mark.parametrize("profile,bins,factors", [
    ({"type": "step", "factor": 3, "start_s": 50, "end_s": 100}, [0, 50, 100, 150], [1, 3, 1]),
    ({"type": "spike", "factor": 5, "start_s": 40, "duration_s": 20}, [0, 40, 60, 100], [1, 5, 1]),
    ({"type": "ramp", "factor": 3, "start_s": 0, "end_s": 100}, [0, 100, 200], [2, 3]),
    ({"type": "diurnal", "amplitude": 0.5, "period_s": 200}, [0, 100, 200], [1 + 1 / np.pi, 1 - 1 / np.pi]),
])
def test_load_profiles_multiply_the_rate(profile, bins, factors):
    counts = _counts(profile, bins)
    expected = 20 * np.diff(bins) * np.array(factors)   # Poisson: mean rate x mean multiplier
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (counts, expected)


def test_specs_without_a_profile_are_unchanged():
    a = generate_from_spec(_spec(None), horizon_us=10_000_000, max_requests=0, seed=3)
    b = generate_from_spec(_spec({"type": "step", "factor": 1, "start_s": 0}), horizon_us=10_000_000,
                           max_requests=0, seed=3)
    assert a.arrival_us.size and np.abs(a.arrival_us - b.arrival_us).max() <= 1


@pytest.mark.parametrize("profile,fragment", [
    ({"type": "square", "factor": 2, "start_s": 0}, "load_profile.type"),
    ({"type": "step", "factor": -2, "start_s": 0}, "load_profile.factor"),
    ({"type": "diurnal", "amplitude": 1.5, "period_s": 10}, "load_profile.amplitude"),
    ({"type": "ramp", "factor": 2, "start_s": 10}, "load_profile.end_s"),
])
def test_bad_load_profiles_are_one_line_errors(profile, fragment):
    with pytest.raises(InputError) as e:
        _spec(profile)
    assert fragment in str(e.value) and "\n" not in str(e.value)
