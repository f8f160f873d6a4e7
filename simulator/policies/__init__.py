"""Policy families declared once (:mod:`.declare` types, one module per family, :mod:`.registry`).

Kept import-light on purpose: import :mod:`simulator.policies.registry` for the lookups.
"""
