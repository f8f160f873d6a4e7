"""The autoscaler section's schema: parameters checked against each policy's declarations, one-line
errors, the JSON Schema agreeing with the parser, and to_mapping round trips."""
from __future__ import annotations

import jsonschema
import pytest

from simulator.autoscale.config import (AUTOSCALER, AutoscalerConfig, DelaySpec, declared_params,
                                        parse_autoscaler, to_mapping)
from simulator.autoscale.policies import POLICIES
from simulator.errors import InputError
from simulator.schema import document

FULL = {"policy": "threshold", "params": {"up_load": 8, "step": 2}, "min_replicas": 1,
        "max_replicas": 8, "initial_replicas": 2, "interval_s": 5, "trigger_load_per_replica": 3,
        "trigger_slo_attainment": 0.9, "trigger_slo_window": 40,
        "provisioning_delay_s": {"uniform": [0.5, 1.0]}, "model_load_time_s": {"exponential": 2},
        "warmup_duration_s": 3, "warmup_profile": "step", "warmup_penalty": 3,
        "drain_policy": "redirect", "slo_ttft_ms": 500, "oscillation_window_s": 30}


def _err(doc) -> str:
    with pytest.raises(InputError) as e:
        parse_autoscaler(doc, "b.yaml: autoscaler")
    assert "\n" not in str(e.value)
    return str(e.value)


def test_full_section_parses_and_round_trips():
    cfg = parse_autoscaler(FULL)
    assert cfg.params == (("up_load", 8.0), ("step", 2.0))   # given ones, declaration order
    assert cfg.provisioning_delay_s == DelaySpec("uniform", 0.5, 1.0)
    assert cfg.model_load_time_s == DelaySpec("exponential", 2.0)
    assert parse_autoscaler(to_mapping(cfg)) == cfg
    assert parse_autoscaler({"policy": "oscillator"}) == AutoscalerConfig(policy="oscillator")


def test_null_means_absent_and_integral_floats_are_integers():
    cfg = parse_autoscaler({"policy": "threshold", "max_replicas": 6.0, "drain_policy": None,
                            "params": None, "model_load_time_s": 2})
    assert (cfg.max_replicas, cfg.drain_policy, cfg.params) == (6, "wait", ())
    assert type(cfg.max_replicas) is int and cfg.model_load_time_s == DelaySpec("fixed", 2.0)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_params_follow_each_policys_declarations(policy):
    declared = declared_params(policy)
    assert {p.name: float(p.default) for p in declared} == POLICIES[policy]().p
    for p in declared:
        assert parse_autoscaler({"policy": policy, "params": {p.name: p.high}}).params == \
            ((p.name, float(p.high)),)
        msg = _err({"policy": policy, "params": {p.name: p.low - 1}})
        assert f"b.yaml: autoscaler.params.{p.name} must be " in msg and "got" in msg
    msg = _err({"policy": policy, "params": {"nope": 1}})
    assert msg == (f"b.yaml: autoscaler.params.nope is not a known parameter of {policy} "
                   f"(valid: {', '.join(p.name for p in declared)})")


@pytest.mark.parametrize("doc, expected", [
    ({}, "b.yaml: autoscaler.policy is required (one of threshold, target-utilization, "
         "queue-depth-per-replica, oscillator)"),
    ({"policy": "magic"}, "b.yaml: autoscaler.policy must be one of threshold, "),
    ({"policy": "threshold", "max_replica": 3},
     "b.yaml: autoscaler.max_replica is not a known key (valid: policy, params, min_replicas, "),
    ({"policy": "threshold", "min_replicas": 5, "max_replicas": 2},
     "b.yaml: autoscaler.min_replicas must be <= max_replicas (2), got 5"),
    ({"policy": "threshold", "initial_replicas": 9},
     "b.yaml: autoscaler.initial_replicas must be in [min_replicas, max_replicas] = [1, 4], got 9"),
    ({"policy": "threshold", "trigger_slo_window": 10**6},
     "b.yaml: autoscaler.trigger_slo_window must be in [1, 100000], got 1000000"),
    ({"policy": "threshold", "warmup_penalty": 0.5},
     "b.yaml: autoscaler.warmup_penalty must be in [1, 100], got 0.5"),
    ({"policy": "threshold", "model_load_time_s": {"gamma": 3}},
     "b.yaml: autoscaler.model_load_time_s.gamma is not a known key (valid: fixed, uniform, "),
    ({"policy": "threshold", "model_load_time_s": {"uniform": [3, 1]}},
     "b.yaml: autoscaler.model_load_time_s.uniform low 3 is greater than high 1"),
    ({"policy": "threshold", "provisioning_delay_s": "soon"},
     "b.yaml: autoscaler.provisioning_delay_s must be a number or a mapping, got 'soon'"),
    ({"policy": "threshold", "drain_policy": "later"},
     "b.yaml: autoscaler.drain_policy must be one of immediate, redirect, wait, got 'later'"),
])
def test_errors_name_the_key_path_and_the_allowed_values(doc, expected):
    assert _err(doc).startswith(expected)


def test_json_schema_agrees_with_the_parser_on_policy_dependent_params():
    schema = document(AUTOSCALER, "autoscaler")
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    ok = [FULL, {"policy": "oscillator", "params": {"period": 3}},
          {"policy": "threshold", "params": None, "model_load_time_s": {"fixed": 1}}]
    bad = [{"policy": "oscillator", "params": {"up_load": 3}},
           {"policy": "threshold", "params": {"up_load": 0.1}},
           {"policy": "threshold", "max_replica": 3}, {"params": {}},
           {"policy": "threshold", "trigger_slo_window": 0.5},
           {"policy": "threshold", "provisioning_delay_s": {"uniform": [1, 2], "fixed": 1}}]
    for doc in ok:
        assert v.is_valid(doc) and parse_autoscaler(doc)
    for doc in bad:
        assert not v.is_valid(doc), doc
        with pytest.raises(InputError):
            parse_autoscaler(doc)
    up_load = next(c["then"]["properties"]["params"] for c in schema["allOf"]
                   if c["if"]["properties"]["policy"]["const"] == "threshold")
    assert up_load["properties"]["up_load"]["minimum"] == 0.5
