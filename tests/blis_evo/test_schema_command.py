"""``blis schema NAME``: the JSON Schema of an input format on stdout, agreeing with the parser on
the shipped files; unknown or not yet declared formats are one-line errors (exit 2)."""
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
from simulator.errors import InputError
from simulator.schema import read_yaml
from simulator.workload.spec import load_workload_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "blis_evo" / "data" / "examples"


def _example_specs() -> list[Path]:
    """The shipped example files that are workload specs (the others are policy bundles)."""
    return [p for p in sorted(EXAMPLES.glob("*.yaml")) if "aggregate_rate" in read_yaml(str(p), "x")]


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
    assert set(schema["$defs"]) == {"length_distribution", "count_distribution"}


@pytest.mark.parametrize("argv, expected", [
    (["schema", "bundle"], "blis: error: schema: 'bundle' is not declared with the schema layer "
                           "yet; available: workload-spec"),
    (["schema", "experiment"], "blis: error: schema: 'experiment' is not declared with the "
                               "schema layer yet; available: workload-spec"),
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

    with pytest.raises(InputError, match="'nope' is unknown; available: workload-spec"):
        schema_document("nope")
