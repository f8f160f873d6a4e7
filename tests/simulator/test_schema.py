"""The schema layer (simulator.schema): the strict YAML loader, the field types and their error
messages, and the JSON Schema export agreeing with the parser."""
from __future__ import annotations

import json
import math

import jsonschema
import pytest
import yaml

from simulator.errors import InputError
from simulator.policies.declare import FLOAT, INT, Param
from simulator.schema import (MISSING, At, Bool, Choice, Custom, Either, Int, ListOf, Mapping,
                              Number, Str, Switch, Tagged, Wording, document, forbidden,
                              from_param, load_yaml, read_yaml)


# ------------------------------------------------------------------------------------- loader


def _load_error(text: str) -> str:
    with pytest.raises(InputError) as e:
        load_yaml(text, "f.yaml", "workload spec")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("f.yaml: ")
    return msg


@pytest.mark.parametrize("text, expected", [
    ("a: 1\nb: 2\na: 3\n", "f.yaml: duplicate key 'a' at line 3"),
    ("a:\n  x: 1\n  y: 2\n  x: 1\n", "f.yaml: duplicate key 'x' at line 4"),
    ("- {k: 1, k: 2}\n", "f.yaml: duplicate key 'k' at line 1"),
    ("1: a\n1: b\n", "f.yaml: duplicate key 1 at line 2"),
    ("? [1, 2]\n: x\n", "f.yaml: a mapping key must be a plain value, got list at line 1"),
    ("a: [1, 2\n", "f.yaml: invalid YAML at line 2, column 1:"),
    ("a: b: c\n", "f.yaml: invalid YAML at line 1, column 5: mapping values are not allowed here"),
    ("", "f.yaml: file is empty (expected a workload spec)"),
    ("# nothing but a comment\n", "f.yaml: file is empty (expected a workload spec)"),
    ("---\n", "f.yaml: file is empty (expected a workload spec)"),
    ("a: 1\n---\na: 2\n", "f.yaml: expected one YAML document, found 2"),
])
def test_loader_rejects_with_one_line_naming_source_and_line(text, expected):
    assert expected in _load_error(text)


def test_loader_reads_yaml_1_2_floats_and_keeps_merge_overrides():
    doc = load_yaml("a: 1e3\nb: -2.5E-1\nc: 1_000\nd: .inf\ne: '1e3'\nf: 7\n", "f.yaml")
    assert doc == {"a": 1000.0, "b": -0.25, "c": 1000, "d": math.inf, "e": "1e3", "f": 7}
    assert isinstance(doc["a"], float) and isinstance(doc["f"], int)
    merged = load_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert merged["use"] == {"x": 1, "y": 3}
    # the strict loader has its own resolvers: the plain SafeLoader is unchanged
    assert yaml.safe_load("a: 1e3\n") == {"a": "1e3"}


def test_read_yaml_names_unreadable_files(tmp_path):
    with pytest.raises(InputError, match=r"^cannot read jobs file '.*nope.yaml': "):
        read_yaml(str(tmp_path / "nope.yaml"), "jobs file")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"a: \xe9\n")
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_yaml(str(bad), "jobs file")
    good = tmp_path / "ok.yaml"
    good.write_text("a: 1\na: 2\n")
    with pytest.raises(InputError, match=r"ok.yaml: duplicate key 'a' at line 2$"):
        read_yaml(str(good), "jobs file")


# ------------------------------------------------------------------------------------- fields

NAMES = ["alpha", "beta"]


def _built(v, at):
    if v.get("low") is not None and v.get("high") is not None and v["low"] > v["high"]:
        (at / "low").fail(f"must be <= high ({v['high']}), got {v['low']}")
    return v


DELAY = Either(Number(ge=0, unit="s"),
               Mapping({"uniform": ListOf(Number(ge=0), min_items=2, max_items=2),
                        "exponential": Number(gt=0)}, exactly_one=("uniform", "exponential")),
               help="a fixed delay or a distribution")

DEMO = Mapping({
    "name": Str(nonempty=True, required=True, help="what to call it"),
    "count": Int(ge=1, le=8, default=1, unit="replicas", help="how many"),
    "ratio": Number(gt=0, lt=1, help="a fraction"),
    "share": Number(ge=0, le=1, help="another fraction"),
    "flag": Bool(default=False),
    "label": Str(allow_int=True),
    "mode": Choice(("fast", "slow", ""), default=""),
    "policy": Choice(lambda: tuple(NAMES), default="alpha"),
    "params": Switch("policy", lambda: {
        n: Mapping({"w": Number(ge=0, le=10)}, key_what=f"parameter of {n}") for n in NAMES}),
    "seeds": ListOf(Int(ge=0), min_items=1, unique="seed"),
    "low": Int(), "high": Int(),
    "delay": DELAY,
    "profile": Tagged("type", {"step": {"factor": Number(gt=0, required=True)},
                               "sine": {"amplitude": Number(ge=0, lt=1, required=True),
                                        "period_s": Number(gt=0, default=1.0)}}),
    "inner": Mapping({"deep": ListOf(Mapping({"x": Int(required=True)}))}),
    "legacy": forbidden("is not supported; use name"),
    "even": Custom(lambda v, at: v if isinstance(v, int) and v % 2 == 0 else at.fail(
        f"must be an even integer, got {v!r}"), json_schema={"type": "integer", "multipleOf": 2}),
}, then=_built, help="a demo document")


def _err(doc) -> str:
    with pytest.raises(InputError) as e:
        DEMO.parse(doc, At("demo.yaml"))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_parse_fills_defaults_converts_and_keeps_declaration_order():
    got = DEMO.parse({"seeds": [3, 1.0], "name": "n", "count": 2.0, "share": 1, "label": 7,
                      "ratio": None, "policy": "beta", "params": {"w": 3},
                      "delay": {"uniform": [1, 2]}, "profile": {"type": "sine", "amplitude": 0.5},
                      "inner": {"deep": [{"x": 1}]}, "legacy": None, "even": 4}, At("demo.yaml"))
    assert got == {"name": "n", "count": 2, "share": 1.0, "flag": False, "label": "7",
                   "mode": "", "policy": "beta", "params": {"w": 3.0}, "seeds": [3, 1],
                   "delay": {"uniform": [1.0, 2.0]},
                   "profile": {"type": "sine", "amplitude": 0.5, "period_s": 1.0},
                   "inner": {"deep": [{"x": 1}]}, "even": 4}
    assert list(got)[:3] == ["name", "count", "share"]   # declaration order, not file order
    assert type(got["count"]) is int and type(got["share"]) is float
    assert DEMO.parse({"name": "n", "delay": 2}, At())["delay"] == 2.0


@pytest.mark.parametrize("doc, expected", [
    ([1], "demo.yaml: the document must be a mapping, got a list of 1 item"),
    ({"name": "n", "colour": 1},
     "demo.yaml: colour is not a known key (valid: name, count, ratio, share, flag, label, mode, "
     "policy, params, seeds, low, high, delay, profile, inner, legacy, even)"),
    ({}, "demo.yaml: name is required (a non-empty string)"),
    ({"name": None}, "demo.yaml: name is required"),
    ({"name": "  "}, "demo.yaml: name must not be empty"),
    ({"name": 3}, "demo.yaml: name must be a non-empty string, got 3"),
    ({"name": "n", "count": "two"}, "demo.yaml: count must be an integer, got 'two'"),
    ({"name": "n", "count": True}, "demo.yaml: count must be an integer, got true"),
    ({"name": "n", "count": 1.5}, "demo.yaml: count must be an integer, got 1.5"),
    ({"name": "n", "count": 9}, "demo.yaml: count must be in [1, 8], got 9"),
    ({"name": "n", "low": 2**63}, "demo.yaml: low must fit in a 64-bit integer"),
    ({"name": "n", "ratio": 1}, "demo.yaml: ratio must be in (0, 1), got 1"),
    ({"name": "n", "ratio": 0.0}, "demo.yaml: ratio must be in (0, 1), got 0"),
    ({"name": "n", "share": 1.5}, "demo.yaml: share must be in [0, 1], got 1.5"),
    ({"name": "n", "share": math.nan}, "demo.yaml: share must be a finite number, got NaN"),
    ({"name": "n", "share": math.inf}, "demo.yaml: share must be a finite number, got +Inf"),
    ({"name": "n", "share": "half"}, "demo.yaml: share must be a number, got 'half'"),
    ({"name": "n", "flag": "yes"}, "demo.yaml: flag must be true or false, got 'yes'"),
    ({"name": "n", "flag": 1}, "demo.yaml: flag must be true or false, got 1"),
    ({"name": "n", "label": 1.5}, "demo.yaml: label must be a string, got 1.5"),
    ({"name": "n", "mode": "medium"}, "demo.yaml: mode must be one of fast, slow, got 'medium'"),
    ({"name": "n", "policy": "gamma"}, "demo.yaml: policy must be one of alpha, beta, got 'gamma'"),
    ({"name": "n", "params": {"v": 1}},
     "demo.yaml: params.v is not a known parameter of alpha (valid: w)"),
    ({"name": "n", "params": {"w": 11}}, "demo.yaml: params.w must be in [0, 10], got 11"),
    ({"name": "n", "params": []}, "demo.yaml: params must be a mapping, got an empty list"),
    ({"name": "n", "seeds": []},
     "demo.yaml: seeds must be a non-empty list of integers >= 0, got an empty list"),
    ({"name": "n", "seeds": 3}, "demo.yaml: seeds must be a non-empty list of integers >= 0, got 3"),
    ({"name": "n", "seeds": [1, "x"]}, "demo.yaml: seeds[1] must be an integer, got 'x'"),
    ({"name": "n", "seeds": [2, 2]}, "demo.yaml: seeds must not repeat a seed (2 appears twice)"),
    ({"name": "n", "low": 3, "high": 2}, "demo.yaml: low must be <= high (2), got 3"),
    ({"name": "n", "delay": "soon"},
     "demo.yaml: delay must be a number or a mapping, got 'soon'"),
    ({"name": "n", "delay": [1]}, "demo.yaml: delay must be a number or a mapping, got a list"),
    ({"name": "n", "delay": -1}, "demo.yaml: delay must be >= 0, got -1"),
    ({"name": "n", "delay": {}}, "demo.yaml: delay must give exactly one of uniform, exponential"),
    ({"name": "n", "delay": {"uniform": [1, 2], "exponential": 3}},
     "demo.yaml: delay must give exactly one of uniform, exponential (got uniform, exponential)"),
    ({"name": "n", "delay": {"gamma": 3}},
     "demo.yaml: delay.gamma is not a known key (valid: uniform, exponential)"),
    ({"name": "n", "delay": {"uniform": [1]}},
     "demo.yaml: delay.uniform must be a list of 2 numbers >= 0, got a list of 1 item"),
    ({"name": "n", "delay": {"uniform": [1, -2]}}, "demo.yaml: delay.uniform[1] must be >= 0, got -2"),
    ({"name": "n", "profile": 3}, "demo.yaml: profile must be a mapping with a type, got 3"),
    ({"name": "n", "profile": {"factor": 2}},
     "demo.yaml: profile.type is required (one of step, sine)"),
    ({"name": "n", "profile": {"type": "square"}},
     "demo.yaml: profile.type must be one of step, sine, got 'square'"),
    ({"name": "n", "profile": {"type": "step"}},
     "demo.yaml: profile.factor is required (a number > 0)"),
    ({"name": "n", "profile": {"type": "step", "factor": 2, "amplitude": 0.1}},
     "demo.yaml: profile.amplitude is not a known key (valid: type, factor)"),
    ({"name": "n", "profile": {"type": "sine", "amplitude": 1}},
     "demo.yaml: profile.amplitude must be in [0, 1), got 1"),
    ({"name": "n", "inner": {"deep": [{"x": 1}, {"x": 1, "y": 2}]}},
     "demo.yaml: inner.deep[1].y is not a known key (valid: x)"),
    ({"name": "n", "inner": {"deep": [{"x": "one"}]}},
     "demo.yaml: inner.deep[0].x must be an integer, got 'one'"),
    ({"name": "n", "inner": {"deep": [{}]}}, "demo.yaml: inner.deep[0].x is required (an integer)"),
    ({"name": "n", "inner": {"deep": [None]}},
     "demo.yaml: inner.deep[0] must be a mapping, got nothing"),
    ({"name": "n", "legacy": "x"}, "demo.yaml: legacy is not supported; use name"),
    ({"name": "n", "even": 3}, "demo.yaml: even must be an even integer, got 3"),
])
def test_every_error_kind_is_one_line_with_key_path_and_allowed_values(doc, expected):
    assert _err(doc).startswith(expected)


def test_computed_names_are_read_when_parsing_and_exporting():
    NAMES.append("gamma")
    try:
        assert DEMO.parse({"name": "n", "policy": "gamma", "params": {"w": 1}},
                          At())["policy"] == "gamma"
        schema = document(DEMO, "demo")
        assert "gamma" in schema["properties"]["policy"]["enum"]
        assert any(c["if"]["properties"]["policy"] == {"const": "gamma"}
                   for c in schema["allOf"])
    finally:
        NAMES.remove("gamma")
    assert "gamma" in _err({"name": "n", "policy": "gamma"})


def test_at_without_source_and_with_a_caller_prefix():
    with pytest.raises(InputError, match=r"^x.yaml: autoscaler.count must be in \[1, 8\], got 0$"):
        Mapping({"count": Int(ge=1, le=8)}).parse({"count": 0}, At("", "x.yaml: autoscaler"))
    with pytest.raises(InputError, match=r"^count is required"):
        Mapping({"count": Int(required=True)}).parse({}, At())


def test_declaration_mistakes_are_caught_when_the_schema_is_built():
    with pytest.raises(ValueError):
        Int(required=True, default=1)
    with pytest.raises(ValueError):
        Number(ge=0, gt=0)
    with pytest.raises(ValueError):
        Mapping({"params": Switch("policy", {}), "policy": Choice(("a",))})


# ------------------------------------------------------------------------- fields from Params


PARAMS = (Param("up_load", FLOAT, 16.0, 0.5, 512.0, "requests/replica", "scale up above"),
          Param("step", INT, 1, 1, 64, "replicas", "replicas per action"),
          Param("window", FLOAT, 1.0, 0.0, math.inf, "s", "look-back window"))


class _ColonWording(Wording):
    """A format keeping another convention: ``<source> <path>: <problem>``."""

    top = "(top level)"

    def line(self, source, path, problem):
        return f"{source} {path}: {problem}" if path else f"{source}: {problem}"

    def expected(self, field, got):
        return f"expected {field.describe()}, got {type(got).__name__}"

    def out_of_range(self, field, got):
        return f"must be {field.hint()}, got {got}"

    def unknown_name(self, field, got):
        return f"unknown {field.label} {got!r}"

    def unknown_key(self, key_what, valid):
        return f"unknown {key_what} (allowed: {', '.join(valid)})"


@pytest.mark.parametrize("doc, expected", [
    ({"n": 0}, "src n: must be an integer in [1, 8], got 0"),
    ({"n": "x"}, "src n: expected an integer, got str"),
    ({"colour": "red"}, "src colour: unknown key (allowed: n, name, sub)"),
    ({"name": "gamma"}, "src name: unknown thing 'gamma'"),
    ({"sub": {"k": 2.0}}, "src sub.k: expected an integer, got float"),   # integer literals only
    ([1], "src (top level): expected a mapping, got list"),
])
def test_a_wording_phrases_every_error_of_a_document(doc, expected):
    schema = Mapping({"n": Int(ge=1, le=8), "name": Choice(NAMES, label="thing"),
                      "sub": Mapping({"k": Int(integral_floats=False)})})
    with pytest.raises(InputError) as e:
        schema.parse(doc, At("src", wording=_ColonWording()))
    assert str(e.value) == expected
    with pytest.raises(InputError) as e:               # the standard wording by default
        schema.parse(doc, At("src"))
    assert str(e.value).startswith("src: ")


def test_a_schema_is_built_from_parameter_declarations():
    params = Mapping({p.name: from_param(p) for p in PARAMS}, fill_defaults=False,
                     key_what="parameter of threshold")
    at = At("b.yaml", "autoscaler.params")
    assert params.parse({"step": 2, "up_load": 1}, at) == {"up_load": 1.0, "step": 2}
    for doc, msg in [({"step": 1.5}, "autoscaler.params.step must be an integer, got 1.5"),
                     ({"step": 65}, "autoscaler.params.step must be in [1, 64], got 65"),
                     ({"window": -1}, "autoscaler.params.window must be >= 0, got -1"),
                     ({"up_load": 0.1}, "up_load must be in [0.5, 512], got 0.1"),
                     ({"down": 1}, "down is not a known parameter of threshold "
                                   "(valid: up_load, step, window)")]:
        with pytest.raises(InputError) as e:
            params.parse(doc, at)
        assert msg in str(e.value)
    js = params.json()
    assert js["properties"]["step"] == {
        "description": "replicas per action (unit: replicas)", "type": ["integer", "null"],
        "minimum": 1, "maximum": 64, "default": 1}
    assert "maximum" not in js["properties"]["window"]
    assert from_param(PARAMS[0], default=MISSING).default is MISSING


# ------------------------------------------------------------------------------- JSON Schema


VALID = [
    {"name": "n"},
    {"name": "n", "count": 8, "ratio": 0.5, "share": 0, "flag": True, "label": 3, "mode": "fast",
     "policy": "beta", "params": {"w": 10}, "seeds": [0, 1], "delay": 0.5,
     "profile": {"type": "sine", "amplitude": 0, "period_s": 2},
     "inner": {"deep": [{"x": -3}]}, "even": 2},
    {"name": "n", "count": None, "mode": None, "delay": {"exponential": 2}, "legacy": None},
    {"name": "n", "delay": {"uniform": [0, 3]}, "profile": {"type": "step", "factor": 1}},
]
# mistakes the JSON Schema knows about (cross-field rules live in `then` hooks only)
INVALID = [
    {}, [1], {"name": ""}, {"name": "n", "colour": 1}, {"name": "n", "count": 0},
    {"name": "n", "count": 1.5}, {"name": "n", "count": "1"}, {"name": "n", "ratio": 1},
    {"name": "n", "share": -0.1}, {"name": "n", "flag": 1}, {"name": "n", "label": 1.5},
    {"name": "n", "mode": "medium"}, {"name": "n", "policy": "gamma"},
    {"name": "n", "params": {"v": 1}}, {"name": "n", "params": {"w": 11}},
    {"name": "n", "seeds": []}, {"name": "n", "seeds": [1, 1]}, {"name": "n", "seeds": [-1]},
    {"name": "n", "delay": "soon"}, {"name": "n", "delay": {}}, {"name": "n", "delay": -1},
    {"name": "n", "delay": {"uniform": [1, 2], "exponential": 3}},
    {"name": "n", "delay": {"uniform": [1]}}, {"name": "n", "profile": {"type": "square"}},
    {"name": "n", "profile": {"type": "step"}}, {"name": "n", "profile": {"factor": 2}},
    {"name": "n", "profile": {"type": "step", "factor": 2, "amplitude": 0.1}},
    {"name": "n", "inner": {"deep": [{"y": 1}]}}, {"name": "n", "inner": {"deep": [{}]}},
    {"name": "n", "legacy": "x"}, {"name": "n", "even": 3},
]


def _parser_accepts(doc) -> bool:
    try:
        DEMO.parse(doc, At("demo.yaml"))
        return True
    except InputError:
        return False


def test_json_schema_is_a_valid_2020_12_schema_with_descriptions_and_bounds():
    schema = document(DEMO, "Demo")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False and schema["required"] == ["name"]
    count = schema["properties"]["count"]
    assert count["description"] == "how many (unit: replicas)" and count["default"] == 1
    assert (count["minimum"], count["maximum"]) == (1, 8)
    ratio = schema["properties"]["ratio"]
    assert (ratio["exclusiveMinimum"], ratio["exclusiveMaximum"]) == (0, 1)
    assert schema["properties"]["mode"]["enum"] == ["fast", "slow", "", None]
    json.dumps(schema)   # plain JSON


@pytest.mark.parametrize("doc", VALID + INVALID)
def test_json_schema_accepts_and_rejects_what_the_parser_does(doc):
    validator = jsonschema.Draft202012Validator(document(DEMO, "Demo"))
    assert validator.is_valid(doc) == _parser_accepts(doc), (doc, _parser_accepts(doc))


def test_json_schema_is_looser_only_for_cross_field_rules():
    doc = {"name": "n", "low": 3, "high": 2}
    assert not _parser_accepts(doc)
    assert jsonschema.Draft202012Validator(document(DEMO, "Demo")).is_valid(doc)


def test_shared_definitions_go_to_defs_with_each_use_keeping_its_help():
    dist = lambda help: Mapping({"mean": Number(gt=0, required=True)}, ref="dist", help=help)  # noqa: E731
    schema = document(Mapping({"a": dist("first"), "b": dist("second")}), "refs")
    assert schema["$defs"] == {"dist": {"type": "object", "properties": {
        "mean": {"type": "number", "exclusiveMinimum": 0}}, "additionalProperties": False,
        "required": ["mean"]}}
    assert schema["properties"]["a"]["description"] == "first"
    assert schema["properties"]["b"]["description"] == "second"
    v = jsonschema.Draft202012Validator(schema)
    assert v.is_valid({"a": {"mean": 1}, "b": None}) and not v.is_valid({"a": {"mean": 0}})
