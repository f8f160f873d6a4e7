"""Shared test setup: the numba cache location and paths to the shipped data and fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
