"""A policy declared once is found everywhere: CLI flags and their validation, the policy-bundle
reader, writer and JSON Schema, the search genome, the engine's encoding and the README table.

The derivation is proven with a toy admission policy with two parameters, registered for the
duration of each test (it has no kernel branch: the derivations, not the simulation, are under
test).  The README test keeps the shipped table in step with the registry.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blis_evo.bundle import bundle_from_mapping, policy_sections
from blis_evo.flags import build_parser, flag_by_name, parse_run_args
from blis_evo.settings import resolve_run_settings as resolve_settings
from search.genome import GeneSpace, decode, encode
from simulator.config import PolicyConfig
from simulator.errors import InputError
from simulator.kernels import layout as L
from simulator.policies import registry
from simulator.policies.declare import FLOAT, INT, Param, Policy
from simulator.policies.table import END, START, markdown_table
from simulator.policy_encoding import encode_policies

README = Path(__file__).resolve().parents[1] / "README.md"

TOY = Policy("toy-gate", 97, "admit while fewer than toy_gate_limit requests wait (toy)",
             params=(Param("toy_gate_limit", INT, 8, 1, 64, "requests", "queued requests allowed"),
                     Param("toy_gate_share", FLOAT, 0.5, 0.0, 1.0, "fraction", "share kept free")),
             reference=False)


@pytest.fixture
def toy():
    """The toy policy registered in the admission family for one test."""
    with registry.registered("admission", TOY) as fam:
        yield fam


def test_registered_policy_is_a_cli_choice_with_its_parameter_flags(toy):
    assert "toy-gate" in flag_by_name("admission-policy").help
    limit = flag_by_name("toy-gate-limit")
    assert limit is not None and limit.kind == "int" and limit.default == 8 and not limit.reference
    assert flag_by_name("toy-gate-share").kind == "float"
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "--toy-gate-limit" in help_text and "--toy-gate-share" in help_text
    ns = parse_run_args(["--admission-policy", "toy-gate", "--toy-gate-limit", "5"])
    assert ns.admission_policy == "toy-gate" and ns.toy_gate_limit == 5


def test_registered_policy_resolves_into_the_policy_config(toy):
    s = resolve_settings(parse_run_args(["--model", "m", "--admission-policy", "toy-gate",
                                         "--toy-gate-share", "0.25"]))
    assert s.policy.admission == "toy-gate"
    assert s.policy.param("toy_gate_share") == 0.25
    assert s.policy.param("toy_gate_limit") == 8          # the declared default


@pytest.mark.parametrize("argv, needle", [
    (["--toy-gate-limit", "0"], "--toy-gate-limit must be an integer in [1, 64], got 0"),
    (["--toy-gate-share", "1.5"], "--toy-gate-share must be a finite value in [0, 1], got 1.5"),
    (["--admission-policy", "toy-gat"], "valid: always-admit, gaie-legacy, reject-all, tier-shed, token-bucket, toy-gate"),
])
def test_registered_parameter_bounds_are_checked_at_the_flag(toy, argv, needle):
    with pytest.raises(InputError) as err:
        resolve_settings(parse_run_args(["--model", "m", *argv]))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_registered_policy_is_read_and_written_by_the_bundle(toy):
    b = bundle_from_mapping({"admission": {"policy": "toy-gate", "toy_gate_limit": 3}})
    assert b.admission_policy == "toy-gate" and b.param("toy_gate_limit") == 3.0
    with pytest.raises(InputError, match=r"admission.toy_gate_limit: must be an integer in \[1, 64\]"):
        bundle_from_mapping({"admission": {"policy": "toy-gate", "toy_gate_limit": 100}})
    policy = PolicyConfig(admission="toy-gate", params=(("toy_gate_limit", 3),))
    assert policy_sections(policy)["admission"] == {
        "policy": "toy-gate", "toy_gate_limit": 3, "toy_gate_share": 0.5}
    again = bundle_from_mapping(policy_sections(policy))
    assert (again.admission_policy, again.param("toy_gate_limit")) == ("toy-gate", 3.0)


def test_registered_policy_and_parameters_are_in_the_bundle_json_schema(toy):
    import jsonschema

    from blis_evo.schema_command import schema_document

    schema = schema_document("bundle")
    jsonschema.Draft202012Validator.check_schema(schema)
    admission = schema["properties"]["admission"]
    assert "toy-gate" in admission["properties"]["policy"]["enum"]
    limit = admission["properties"]["toy_gate_limit"]
    assert (limit["minimum"], limit["maximum"]) == (1, 64) and "integer" in limit["type"]
    assert "queued requests allowed" in limit["description"]
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"admission": {"policy": "toy-gate", "toy_gate_limit": 3,
                                             "toy_gate_share": 0.25}})
    assert not validator.is_valid({"admission": {"policy": "toy-gate", "toy_gate_limit": 100}})


def test_without_registration_the_toy_is_unknown_everywhere():
    assert flag_by_name("toy-gate-limit") is None
    with pytest.raises(InputError, match="unknown key"):
        bundle_from_mapping({"admission": {"toy_gate_limit": 3}})
    from blis_evo.schema_command import schema_document

    admission = schema_document("bundle")["properties"]["admission"]
    assert "toy_gate_limit" not in admission["properties"]
    assert "toy-gate" not in admission["properties"]["policy"]["enum"]
    with pytest.raises(InputError, match="search_space.toy_gate_limit: unknown key"):
        GeneSpace({"toy_gate_limit": {"int": [1, 4]}})


def test_registered_policy_and_parameter_are_genes(toy):
    space = GeneSpace({"admission": {"choices": ["always-admit", "toy-gate"]},
                       "toy_gate_limit": {"int": [2, 10]}})
    kinds = {g.name: g.kind for g in space.genes}
    assert kinds == {"admission": "cat", "toy_gate_limit": "int"}
    chosen = decode(space, [1, 7])
    assert chosen.admission == "toy-gate" and chosen.param("toy_gate_limit") == 7
    other = decode(space, [0, 7])          # the parameter only matters under its policy
    assert other.param("toy_gate_limit") == 8
    assert decode(space, encode(space, chosen)) == chosen
    with pytest.raises(InputError, match="outside the parameter's range"):
        GeneSpace({"toy_gate_limit": {"int": [0, 10]}})
    with pytest.raises(InputError, match="must be an int gene"):
        GeneSpace({"toy_gate_limit": {"real": [2, 10]}})


def test_registered_policy_is_encoded_for_the_kernel(toy):
    P, PF = np.zeros(L.NP_, dtype=np.int64), np.zeros(L.NPF, dtype=np.float64)
    encode_policies(PolicyConfig(admission="toy-gate"), P, PF)
    assert P[L.P_ADMISSION] == 97


def test_registered_policy_appears_in_the_policy_table(toy):
    assert "| admission | `toy-gate` |" in markdown_table()
    assert "`toy_gate_limit` (requests; default 8; 1..64)" in markdown_table()


def test_registration_rejects_clashes():
    with pytest.raises(ValueError, match="already declared"):
        registry.register("admission", Policy("token-bucket", 98, "x"))
    clash = Policy("toy-2", 98, "x", params=(Param("token_bucket_capacity", FLOAT, 1, 0, 2, "t", "x"),))
    with pytest.raises(ValueError, match="parameter names already declared"):
        registry.register("admission", clash)
    with pytest.raises(ValueError, match="duplicate kernel codes"):
        registry.register("admission", Policy("toy-3", 1, "x"))
    assert "toy-3" not in registry.valid_names("admission")


def test_readme_policy_table_matches_the_registry():
    text = README.read_text(encoding="utf-8")
    table = text[text.index(START) + len(START):text.index(END)].strip("\n") + "\n"
    assert table == markdown_table(), ("README policy table is stale: run "
                                       "`python -m simulator.policies.table --write README.md`")


def test_every_family_default_and_code_is_declared_once():
    for fam in registry.families():
        assert fam.default in fam.names()
        codes = [p.code for p in fam.policies]
        assert len(set(codes)) == len(codes)
        for pol in fam.policies:
            for need in pol.needs:
                assert need in registry.NEEDS, (fam.key, pol.name, need)
