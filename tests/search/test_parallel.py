"""Ray fan-out: the search gives the same logbook and champion whatever the worker count."""
from __future__ import annotations

import pytest

from search.evolve import evolve
from search.loop import logbook_bytes

ray = pytest.importorskip("ray")


def test_same_seed_same_logbook_with_1_and_2_workers(small_experiment, tmp_path):
    _, exp = small_experiment(num_requests=120)
    serial = evolve(exp, generations=2, workers=1, out=tmp_path / "w1")
    fanned = evolve(exp, generations=2, workers=2, out=tmp_path / "w2")
    assert not ray.is_initialized()                      # the evaluator shut its runtime down
    assert logbook_bytes(fanned.state.logbook) == logbook_bytes(serial.state.logbook)
    assert list(fanned.state.champion) == list(serial.state.champion)
    assert fanned.champion_bundle == serial.champion_bundle
    assert (tmp_path / "w1" / "champion.yaml").read_bytes() == (tmp_path / "w2" / "champion.yaml").read_bytes()
    assert [r["nevals"] for r in serial.state.logbook][0] == exp.search.population


def test_batch_size_groups_light_evaluations_and_spreads_heavy_ones():
    from search.parallel import BATCHES_PER_CPU, TARGET_TASK_SECONDS, batch_size

    assert batch_size(64, 2, None) == 64 // (BATCHES_PER_CPU * 2)       # before any timing
    assert batch_size(24, 2, 0.5) == 1                                    # heavy: one per task
    light = batch_size(1000, 2, 0.001)
    assert light == round(TARGET_TASK_SECONDS / 0.001)                   # ~0.25 s of work per task
    assert batch_size(10, 2, 0.001) == 5                                  # but every CPU gets work
    for n in (1, 7, 100):
        for spe in (None, 1e-4, 0.01, 3.0):
            assert 1 <= batch_size(n, 4, spe) <= max(1, -(-n // 4))
