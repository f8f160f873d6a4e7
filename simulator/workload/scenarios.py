"""Built-in scenario presets: ready-made workload-spec documents for common traffic patterns
(:func:`simulator.workload.spec.scenario_spec` parses one into a WorkloadSpec).

Port of the reference's ``sim/workload/scenarios.go`` (cbb0de7b).  Each preset has exactly the
reference's clients (ids, tenants, SLO classes, rate fractions, arrival processes, length
distributions, prefix groups, streaming flags), ``version: "1"`` and ``category: language``:

* ``bursty``: one batch client, Gamma arrivals with cv 3.5, input/output exponential 512/256;
* ``unfair-tenants``: 90% batch bulk traffic (exponential 1024/512) and 10% streaming realtime
  traffic (Gaussian 128 ± 50 in [10, 2048] / exponential 64);
* ``prefix-heavy``: 80% of the rate in prefix group ``system-prompt`` (exponential 256/128), 20%
  without a shared prefix (exponential 512/256);
* ``mixed-slo``: realtime / interactive / batch at rate fractions 0.33 / 0.34 / 0.33.

The reference's constructors take ``(seed, rate)`` and set no request count; the defaults here
are the reference CLI's flag defaults (``--seed 42``, ``--rate 1``, ``--num-requests 100``) so
that a preset is runnable on its own.  ``blis run --workload-spec preset:NAME`` loads one (the
CLI's ``--rate`` then sets the aggregate rate, ``--seed`` / ``--num-requests`` / ``--horizon``
apply as for any spec).
"""
from __future__ import annotations

from simulator.errors import InputError

DEFAULT_SEED = 42
DEFAULT_RATE = 1.0
DEFAULT_NUM_REQUESTS = 100


def _exp(mean: float) -> dict:
    return {"type": "exponential", "params": {"mean": mean}}


def _gauss(mean: float, std_dev: float, lo: int, hi: int) -> dict:
    return {"type": "gaussian", "params": {"mean": mean, "std_dev": std_dev, "min": lo, "max": hi}}


_POISSON = {"process": "poisson"}


def _bursty() -> list[dict]:
    return [
        {"id": "bursty-client", "tenant_id": "tenant-A", "slo_class": "batch",
         "rate_fraction": 1.0, "arrival": {"process": "gamma", "cv": 3.5},
         "input_distribution": _exp(512), "output_distribution": _exp(256)},
    ]


def _unfair_tenants() -> list[dict]:
    return [
        {"id": "low-priority-bulk", "tenant_id": "tenant-bulk", "slo_class": "batch",
         "rate_fraction": 0.9, "arrival": dict(_POISSON),
         "input_distribution": _exp(1024), "output_distribution": _exp(512)},
        {"id": "high-priority-realtime", "tenant_id": "tenant-realtime", "slo_class": "realtime",
         "rate_fraction": 0.1, "streaming": True, "arrival": dict(_POISSON),
         "input_distribution": _gauss(128, 50, 10, 2048), "output_distribution": _exp(64)},
    ]


def _prefix_heavy() -> list[dict]:
    return [
        {"id": "shared-prefix", "tenant_id": "tenant-A", "slo_class": "batch",
         "rate_fraction": 0.8, "prefix_group": "system-prompt", "arrival": dict(_POISSON),
         "input_distribution": _exp(256), "output_distribution": _exp(128)},
        {"id": "unique-prefix", "tenant_id": "tenant-B", "slo_class": "interactive",
         "rate_fraction": 0.2, "arrival": dict(_POISSON),
         "input_distribution": _exp(512), "output_distribution": _exp(256)},
    ]


def _mixed_slo() -> list[dict]:
    return [
        {"id": "realtime", "tenant_id": "tenant-rt", "slo_class": "realtime",
         "rate_fraction": 0.33, "streaming": True, "arrival": dict(_POISSON),
         "input_distribution": _gauss(64, 20, 10, 256), "output_distribution": _exp(32)},
        {"id": "interactive", "tenant_id": "tenant-int", "slo_class": "interactive",
         "rate_fraction": 0.34, "arrival": dict(_POISSON),
         "input_distribution": _gauss(256, 100, 32, 2048), "output_distribution": _exp(128)},
        {"id": "batch", "tenant_id": "tenant-batch", "slo_class": "batch",
         "rate_fraction": 0.33, "arrival": dict(_POISSON),
         "input_distribution": _exp(1024), "output_distribution": _exp(512)},
    ]


_PRESETS = {
    "bursty": _bursty,
    "unfair-tenants": _unfair_tenants,
    "prefix-heavy": _prefix_heavy,
    "mixed-slo": _mixed_slo,
}

SCENARIO_NAMES: tuple[str, ...] = tuple(_PRESETS)
"""Names accepted by :func:`simulator.workload.spec.scenario_spec` (and ``--workload-spec
preset:NAME``)."""


def _check_name(name: str) -> None:
    if name not in _PRESETS:
        raise InputError(f"--workload-spec: unknown scenario preset {name!r} "
                         f"(valid: {', '.join(SCENARIO_NAMES)})")


def scenario_document(name: str, *, seed: int = DEFAULT_SEED, rate: float = DEFAULT_RATE,
                      num_requests: int = DEFAULT_NUM_REQUESTS) -> dict:
    """The preset ``name`` as a workload-spec YAML document (a plain dict, fresh each call).

    ``seed`` and ``rate`` (aggregate requests/s) are the reference constructors' arguments;
    ``num_requests`` bounds generation (0 = none; then a horizon must be given).  Raises
    InputError for an unknown name, listing the valid ones.
    """
    _check_name(name)
    return {"version": "1", "seed": int(seed), "category": "language",
            "aggregate_rate": float(rate), "num_requests": int(num_requests),
            "clients": _PRESETS[name]()}
