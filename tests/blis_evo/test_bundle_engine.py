"""The ``engine`` section of the policy bundle (blis-evo extension) and ``search.genome.bundle_dict``.

Expected values are written out by hand here (bundle texts and the dicts they must give); the
round-trip test compares a decoded genome with what the CLI loader reads back from its file.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from blis_evo.bundle import ENGINE_KEYS, PolicyBundle, load_policy_bundle
from blis_evo.flags import parse_run_args
from blis_evo.settings import resolve_run_settings
from blis_evo.phenotype import Phenotype
from search.genome import SIM_PARAMS, GeneSpace, bundle_dict
from simulator.config import PolicyConfig, ScorerSpec
from simulator.errors import InputError


def write(tmp_path: Path, text: str, name: str = "bundle.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def resolve(*argv: str):
    """Parse + resolve ``blis run --model m <argv>``."""
    return resolve_run_settings(parse_run_args(["--model", "m", *argv]))


# ------------------------------------------------------------------------- parsing


def test_engine_keys_are_the_search_engine_knobs():
    assert ENGINE_KEYS == SIM_PARAMS == ("snapshot_refresh_interval", "long_prefill_token_threshold")


def test_engine_section_parsed(tmp_path):
    b = load_policy_bundle(write(tmp_path, """
        scheduler: sjf
        engine:
          long_prefill_token_threshold: 512
          snapshot_refresh_interval: 0
        """))
    assert b == PolicyBundle(scheduler="sjf", snapshot_refresh_interval=0,
                             long_prefill_token_threshold=512)
    # fixed key order, whatever the file's order
    assert list(b.engine_params().items()) == [("snapshot_refresh_interval", 0),
                                               ("long_prefill_token_threshold", 512)]


@pytest.mark.parametrize("text", ["engine:\n", "engine: {}\n", "engine: {snapshot_refresh_interval: null}\n"])
def test_empty_engine_means_unset(tmp_path, text):
    b = load_policy_bundle(write(tmp_path, text))
    assert b == PolicyBundle() and b.engine_params() == {}


BAD_ENGINE = [
    ("engine: 5\n", "engine: expected a mapping"),
    ("engine: {snapshot_interval: 5}\n", "engine.snapshot_interval: unknown key"),
    ("engine: {snapshot_refresh_interval: -1}\n", "engine.snapshot_refresh_interval"),
    ("engine: {long_prefill_token_threshold: -20}\n", "engine.long_prefill_token_threshold"),
    ("engine: {snapshot_refresh_interval: 1.5}\n", "engine.snapshot_refresh_interval: expected an integer"),
    ("engine: {snapshot_refresh_interval: 1e3}\n", "engine.snapshot_refresh_interval: expected an integer"),
    ("engine: {long_prefill_token_threshold: '100'}\n", "engine.long_prefill_token_threshold: expected an integer"),
    ("engine: {long_prefill_token_threshold: true}\n", "engine.long_prefill_token_threshold: expected an integer"),
    ("engine: {snapshot_refresh_interval: 9223372036854775808}\n", "engine.snapshot_refresh_interval"),
    ("engine: {snapshot_refresh_interval: 1, snapshot_refresh_interval: 2}\n", "duplicate key"),
]


@pytest.mark.parametrize("text, needle", BAD_ENGINE, ids=[n for _, n in BAD_ENGINE])
def test_bad_engine_section_is_one_line_error(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_policy_bundle(path)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    with pytest.raises(InputError):
        resolve("--policy-config", path)


def test_unknown_top_level_key_lists_engine(tmp_path):
    with pytest.raises(InputError) as err:
        load_policy_bundle(write(tmp_path, "engines: {}\n"))
    assert "engines: unknown key" in str(err.value) and "engine" in str(err.value)


# ------------------------------------------------------------------------- precedence in blis run

KNOBS = [  # (flag, SimConfig attribute, bundle value, flag value, reference default)
    ("--snapshot-refresh-interval", "snapshot_refresh_interval", 7000, 250, 0),
    ("--long-prefill-token-threshold", "long_prefill_token_threshold", 384, 64, 0),
]


@pytest.mark.parametrize("flag, attr, from_bundle, from_flag, default", KNOBS)
def test_engine_precedence_flag_over_bundle_over_default(tmp_path, flag, attr, from_bundle,
                                                         from_flag, default):
    path = write(tmp_path, f"engine: {{{attr}: {from_bundle}}}\n")
    assert getattr(resolve().sim, attr) == default
    assert getattr(resolve("--policy-config", path).sim, attr) == from_bundle
    assert getattr(resolve("--policy-config", path, flag, str(from_flag)).sim, attr) == from_flag
    assert getattr(resolve(flag, str(from_flag)).sim, attr) == from_flag


def test_bundle_engine_zero_overrides_nothing_else(tmp_path):
    path = write(tmp_path, "engine: {snapshot_refresh_interval: 0}\n")
    s = resolve("--policy-config", path, "--long-prefill-token-threshold", "32")
    assert (s.sim.snapshot_refresh_interval, s.sim.long_prefill_token_threshold) == (0, 32)
    assert s.policy == PolicyConfig()


# ------------------------------------------------------------------------- bundle_dict

POLICY = PolicyConfig(admission="token-bucket", params=(("token_bucket_capacity", 5000.0),
                      ("token_bucket_refill_rate", 250.5)), routing="weighted",
                      scorers=(ScorerSpec("prefix-affinity", 4.0), ScorerSpec("queue-depth", 1.5)),
                      priority="slo-based", scheduler="priority-fcfs")
POLICY_DICT = {
    "admission": {"policy": "token-bucket", "token_bucket_capacity": 5000.0,
                  "token_bucket_refill_rate": 250.5},
    "routing": {"policy": "weighted", "scorers": [{"name": "prefix-affinity", "weight": 4.0},
                                                  {"name": "queue-depth", "weight": 1.5}]},
    "priority": {"policy": "slo-based"},
    "scheduler": "priority-fcfs",
}


def test_bundle_dict_without_engine_knobs_is_unchanged():
    assert bundle_dict(POLICY) == POLICY_DICT
    assert bundle_dict(Phenotype(POLICY)) == POLICY_DICT
    assert bundle_dict(Phenotype.from_knobs(POLICY, None)) == POLICY_DICT
    assert list(bundle_dict(POLICY)) == ["admission", "routing", "priority", "scheduler"]


def test_bundle_dict_engine_section_fixed_order_and_ints():
    d = bundle_dict(Phenotype.from_knobs(POLICY, {"long_prefill_token_threshold": np.int64(512),
                                                  "snapshot_refresh_interval": 3000.0}))
    assert list(d) == ["admission", "routing", "priority", "scheduler", "engine"]
    assert list(d["engine"].items()) == [("snapshot_refresh_interval", 3000),
                                         ("long_prefill_token_threshold", 512)]
    assert all(type(v) is int for v in d["engine"].values())
    assert bundle_dict(Phenotype.from_knobs(POLICY, {"long_prefill_token_threshold": 8}))["engine"] == {
        "long_prefill_token_threshold": 8}
    text = yaml.safe_dump(d, sort_keys=False)
    assert "engine:\n  snapshot_refresh_interval: 3000\n  long_prefill_token_threshold: 512\n" in text


def test_phenotype_rejects_unknown_knob():
    with pytest.raises(ValueError, match="max_running_reqs"):
        bundle_dict(Phenotype.from_knobs(POLICY, {"max_running_reqs": 3}))


SPACE = GeneSpace({
    "routing": {"choices": ["round-robin", "weighted", "prefix-affinity"]},
    "scheduler": {"choices": ["fcfs", "sjf"]},
    "admission": {"choices": ["always-admit", "token-bucket"]},
    "scorers": {"prefix-affinity": {"weight": [0, 5]}, "queue-depth": {"weight": [0, 5]}},
    "token_bucket_capacity": {"int": [1000, 100000]},
    "token_bucket_refill_rate": {"real": [100, 100000]},
    "snapshot_refresh_interval": {"int": [0, 50000]},
    "long_prefill_token_threshold": {"int": [0, 4096]},
})


@pytest.mark.parametrize("seed", range(25))
def test_champion_file_reproduces_policy_and_engine_knobs_in_blis_run(tmp_path, seed):
    genome = SPACE.random_genome(np.random.default_rng(seed))
    phenotype = SPACE.phenotype(genome)
    path = tmp_path / "champion.yaml"
    path.write_text(yaml.safe_dump(bundle_dict(phenotype), sort_keys=False))
    s = resolve("--policy-config", str(path))
    assert s.policy == phenotype.policy
    assert s.sim.snapshot_refresh_interval == phenotype.engine.snapshot_refresh_interval
    assert s.sim.long_prefill_token_threshold == phenotype.engine.long_prefill_token_threshold
