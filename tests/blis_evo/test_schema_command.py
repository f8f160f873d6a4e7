"""``blis schema NAME``: the JSON Schema of an input format on stdout, agreeing with the parser on
the shipped files (each accepted by both, a mistyped key rejected by both); unknown formats are
one-line errors (exit 2)."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from blis_evo import cli
from blis_evo.bundle import load_policy_bundle
from blis_evo.experiment import DEFAULT_EXPERIMENT_FILE, EXPERIMENTS_DIR, load_experiment
from simulator.errors import InputError
from simulator.schema import read_yaml
from simulator.workload.spec import load_workload_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "blis_evo" / "data" / "examples"


def _example_specs() -> list[Path]:
    """The shipped example files that are workload specs (the others are policy bundles)."""
    return [p for p in sorted(EXAMPLES.glob("*.yaml")) if "aggregate_rate" in read_yaml(str(p), "x")]


def _example_bundles() -> list[Path]:
    """The shipped example files that are policy bundles."""
    return [p for p in sorted(EXAMPLES.glob("*.yaml")) if p not in _example_specs()]


def _experiments() -> list[Path]:
    """The shipped experiments: the packaged default and experiments/*.yaml (not jobs files)."""
    return [DEFAULT_EXPERIMENT_FILE] + sorted(p for p in EXPERIMENTS_DIR.glob("*.yaml")
                                              if not p.name.startswith("jobs-"))


def _call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_python_m_blis_evo_schema_workload_spec_prints_a_schema_the_examples_satisfy(tmp_path):
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(REPO_ROOT / ".numba_cache"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "blis_evo", "schema", "workload-spec"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    schema = json.loads(proc.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    specs = _example_specs()
    assert len(specs) >= 3
    for path in specs:
        doc = read_yaml(str(path), "workload spec")
        load_workload_spec(path)                                   # the parser accepts it ...
        assert validator.is_valid(doc), (path, next(validator.iter_errors(doc)).message)  # ... so does the schema
        typo = copy.deepcopy(doc)
        typo["clients"][0]["rate_fractoin"] = 1
        assert not validator.is_valid(typo)


def test_schema_lists_keys_with_help_bounds_and_allowed_names():
    code, out, err = _call(["schema", "workload-spec"])
    assert code == 0 and err == ""
    schema = json.loads(out)
    assert schema["required"] == ["aggregate_rate"] and schema["additionalProperties"] is False
    rate = schema["properties"]["aggregate_rate"]
    assert rate["exclusiveMinimum"] == 0 and "requests/s" in rate["description"]
    client = schema["properties"]["clients"]["items"]
    assert client["properties"]["arrival"]["properties"]["process"]["enum"] == [
        "poisson", "gamma", "weibull"]
    assert set(client["properties"]["slo_class"]["enum"]) == {
        "", "critical", "standard", "sheddable", "batch", "background", "realtime", "interactive",
        None}
    assert "3" not in schema["properties"]["version"]["enum"]
    assert set(schema["$defs"]) == {"length_distribution", "count_distribution"}


# (format, its shipped files, the parser, where to put a mistyped key in a copy of a file)
PARSED_FORMATS = {
    "bundle": (_example_bundles, load_policy_bundle, lambda doc: doc.setdefault("admision", {})),
    "experiment": (_experiments, load_experiment,
                   lambda doc: doc["cluster"].__setitem__("num_instance", 2)),
}


@pytest.mark.parametrize("name", list(PARSED_FORMATS))
def test_bundle_and_experiment_schemas_agree_with_their_parsers(name, tmp_path):
    files, parse, add_typo = PARSED_FORMATS[name]
    code, out, err = _call(["schema", name])
    assert code == 0 and err == ""
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    paths = files()
    assert len(paths) >= 4
    for path in paths:
        doc = read_yaml(str(path), name)
        parse(str(path))                                           # the parser accepts it ...
        assert validator.is_valid(doc), (path, next(validator.iter_errors(doc)).message)  # ... so does the schema
        typo = copy.deepcopy(doc)
        add_typo(typo)
        assert not validator.is_valid(typo), path
        bad = tmp_path / path.name
        bad.write_text(json.dumps(typo))                           # JSON is YAML
        with pytest.raises(InputError) as err_info:
            parse(str(bad))
        assert ("admision" if name == "bundle" else "cluster.num_instance") in str(err_info.value)


def test_bundle_schema_has_the_declared_policies_parameters_and_sections():
    schema = json.loads(_call(["schema", "bundle"])[1])
    assert schema["additionalProperties"] is False and "required" not in schema
    assert list(schema["properties"]) == [
        "admission", "routing", "priority", "scheduler", "preemption", "flow_control",
        "saturation_detector", "dispatch_order", "fairness_policy", "tenant_budgets", "engine",
        "disaggregation", "autoscaler"]
    flow = schema["properties"]["flow_control"]["properties"]
    assert "boolean" in flow["queue_shedding"]["type"] and {"off", "gateway"} <= set(flow["policy"]["enum"])
    admission = schema["properties"]["admission"]["properties"]
    assert {"always-admit", "token-bucket", "code", ""} <= set(admission["policy"]["enum"])
    assert admission["token_bucket_capacity"]["minimum"] == 0
    assert admission["tier_shed_min_priority"]["minimum"] == -100
    slo = admission["slo_priorities"]
    assert slo["additionalProperties"]["maximum"] == 100 and "critical" in slo["propertyNames"]["enum"]
    assert schema["properties"]["preemption"]["properties"]["policy"]["enum"][:2] == ["fcfs", "priority"]
    routing = schema["properties"]["routing"]["properties"]
    assert routing["scorers"]["items"]["required"] == ["name", "weight"]
    assert "code" not in schema["properties"]["scheduler"]["enum"]
    transfer = schema["properties"]["disaggregation"]["properties"]["transfer"]["properties"]
    assert transfer["granularity"]["enum"] == ["request", "block", None]
    assert schema["properties"]["autoscaler"]["anyOf"][0]["required"] == ["policy"]


def test_experiment_schema_reuses_the_workload_spec_and_autoscaler_declarations():
    schema = json.loads(_call(["schema", "experiment"])[1])
    assert schema["required"] == ["name", "cluster", "workload", "seeds", "objectives"]
    spec = json.loads(_call(["schema", "workload-spec"])[1])
    inline = schema["properties"]["workload"]["properties"]["spec"]["anyOf"][1]
    assert inline["properties"] == spec["properties"]
    assert set(spec["$defs"]) <= set(schema["$defs"])
    bundle = json.loads(_call(["schema", "bundle"])[1])
    autoscaler = dict(schema["properties"]["autoscaler"])
    assert autoscaler == bundle["properties"]["autoscaler"]
    assert schema["properties"]["cluster"]["properties"]["num_instances"]["maximum"] == 4096


@pytest.mark.parametrize("argv, expected", [
    (["schema", "nope"], "blis: error: argument NAME: invalid choice: 'nope'"),
    (["schema"], "blis: error: the following arguments are required: NAME"),
])
def test_unavailable_or_unknown_formats_are_one_line_errors(argv, expected):
    code, out, err = _call(argv)
    assert (code, out) == (2, "") and err.startswith(expected) and err.count("\n") == 1, err
    if "nope" in argv:
        assert "workload-spec" in err and "experiment" in err


def test_schema_document_api_raises_input_error_for_unknown_names():
    from blis_evo.schema_command import schema_document

    with pytest.raises(InputError,
                       match="'nope' is unknown; available: workload-spec, bundle, experiment"):
        schema_document("nope")
