"""blis-evo: the domain and user surface (CLI, policy bundles, metrics, Python API).

``from blis_evo import evolve, evaluate`` is the notebook API (:mod:`blis_evo.api`).
"""
from __future__ import annotations

__all__ = ["evolve", "evaluate", "load_experiment", "default_experiment"]


def __getattr__(name):
    """``blis_evo.evolve`` and friends: the names of :mod:`blis_evo.api`, loaded on first use."""
    if name in __all__:
        from blis_evo import api  # lazy: keeps the search out of every blis command's start-up

        return getattr(api, name)
    raise AttributeError(f"module 'blis_evo' has no attribute {name!r}")
