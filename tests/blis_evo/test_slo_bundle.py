"""SLO tiers in the policy bundle and on the command line: ``admission.slo_priorities`` (or
``priority.slo_priorities``), ``preemption.policy`` / ``--preemption-policy``, the tier-shed and
gaie-legacy parameters; the champion writer reproduces them; bad values are one-line errors."""
from __future__ import annotations

import textwrap

import pytest

from blis_evo.bundle import bundle_from_mapping, load_policy_bundle, policy_sections
from blis_evo.flags import parse_run_args
from blis_evo.settings import resolve_run_settings
from simulator.config import PolicyConfig
from simulator.errors import InputError


def _resolve(tmp_path, text, *argv):
    path = tmp_path / "b.yaml"
    path.write_text(textwrap.dedent(text))
    return resolve_run_settings(parse_run_args(["--model", "m", "--policy-config", str(path),
                                                *argv])).policy


def test_bundle_sets_tiers_admission_and_preemption(tmp_path):
    pol = _resolve(tmp_path, """\
        admission:
          policy: tier-shed
          tier_shed_threshold: 8
          tier_shed_min_priority: 4
          slo_priorities: {batch: 2, critical: 9}
        preemption: {policy: priority}
        """)
    assert pol.admission == "tier-shed" and pol.preemption == "priority"
    assert pol.param("tier_shed_threshold") == 8 and pol.param("tier_shed_min_priority") == 4
    assert pol.slo_priorities == (("batch", 2), ("critical", 9))


def test_flags_override_the_bundle(tmp_path):
    pol = _resolve(tmp_path, "preemption: {policy: priority}\n", "--preemption-policy", "fcfs",
                   "--tier-shed-min-priority", "-1")
    assert pol.preemption == "fcfs" and pol.param("tier_shed_min_priority") == -1


def test_priority_section_alias(tmp_path):
    pol = _resolve(tmp_path, "priority: {policy: slo-tier, slo_priorities: {standard: 1}}\n")
    assert pol.priority == "slo-tier" and pol.slo_priorities == (("standard", 1),)


def test_champion_writer_round_trip():
    pol = PolicyConfig(admission="gaie-legacy", preemption="priority",
                       slo_priorities=(("sheddable", -5),)).with_params({"gaie_kv_threshold": 0.5})
    doc = policy_sections(pol)
    assert doc["admission"]["slo_priorities"] == {"sheddable": -5}
    assert doc["preemption"] == {"policy": "priority"}
    back = bundle_from_mapping(doc)
    assert back.preemption_policy == "priority" and back.slo_priorities == (("sheddable", -5),)
    assert back.param("gaie_kv_threshold") == 0.5
    assert "preemption" not in policy_sections(PolicyConfig())  # default: not written


@pytest.mark.parametrize("text, needle", [
    ("admission: {slo_priorities: {gold: 1}}", "admission.slo_priorities.gold: unknown SLO class"),
    ("admission: {slo_priorities: {batch: 101}}", "must be an integer in [-100, 100], got 101"),
    ("admission: {slo_priorities: {batch: 1.5}}", "got 1.5"),
    ("admission: {slo_priorities: {batch: 1}}\npriority: {slo_priorities: {batch: 2}}",
     "not both"),
    ("preemption: {policy: lifo}", "preemption"),
    ("admission: {policy: tier-shed, tier_shed_min_priority: 200}", "tier_shed_min_priority"),
    ("admission: {policy: gaie-legacy, gaie_kv_threshold: 1.5}", "gaie_kv_threshold"),
])
def test_bad_bundle_values_are_one_line_errors(tmp_path, text, needle):
    path = tmp_path / "b.yaml"
    path.write_text(text + "\n")
    with pytest.raises(InputError) as exc:
        load_policy_bundle(str(path))
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_bad_preemption_flag_exit_2(capsys):
    from blis_evo.cli import main
    assert main(["run", "--model", "m", "--preemption-policy", "lifo"]) == 2
    err = capsys.readouterr().err
    assert "--preemption-policy" in err and "fcfs, priority" in err
