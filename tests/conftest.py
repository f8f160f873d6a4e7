"""Shared test setup: the numba cache location and paths to the shipped data and fixtures."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "blis_evo" / "data"

# numba reads NUMBA_CACHE_DIR when it is first imported; conftest runs before the test modules
# import it.  Subprocess tests pass the same directory explicitly.
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO_ROOT / ".numba_cache"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds ``blis_evo/``, ``simulator/``, ``.numba_cache``)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shipped ``blis_evo/data`` directory (defaults.yaml, model configs, hardware config)."""
    return DATA_DIR


# ---- small experiments for fast search tests, derived from the shipped default experiment ----


def small_experiment_dict(num_requests: int = 150, **top) -> dict:
    """The default experiment as a dict with fewer requests, 2 train / 2 held-out seeds and a
    small search; ``top`` replaces whole top-level sections (e.g. ``search_space=...``)."""
    from blis_evo.experiment import DEFAULT_EXPERIMENT_PATH

    doc = copy.deepcopy(yaml.safe_load(DEFAULT_EXPERIMENT_PATH.read_text()))
    doc["name"] = "small"
    doc["workload"]["num_requests"] = num_requests
    doc["seeds"] = {"train": [1, 2], "heldout": [101, 102]}
    doc["search"].update({"population": 8, "generations": 3, "patience": 0})
    doc.update(top)
    return doc


@pytest.fixture
def small_experiment(tmp_path):
    """Factory: ``small_experiment(**kw)`` writes the YAML to tmp_path and returns (path, Experiment)."""
    def make(**kw):
        path = tmp_path / "small.yaml"
        path.write_text(yaml.safe_dump(small_experiment_dict(**kw), sort_keys=False))
        from blis_evo.experiment import load_experiment

        return path, load_experiment(path)
    return make
