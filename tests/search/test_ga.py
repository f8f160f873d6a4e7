"""search.ga: convergence, NSGA-II front, determinism, early stopping, checkpoint/resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from search.ga import load_checkpoint, logbook_bytes, run_search
from search.genome import GeneSpace, canonical, encode
from simulator.config import PolicyConfig, ScorerSpec
from simulator.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "routing": {"choices": ["round-robin", "least-loaded", "weighted", "prefix-affinity"]},
    "scheduler": {"choices": ["fcfs", "priority-fcfs", "sjf", "reverse-priority"]},
    "priority": {"choices": ["constant", "slo-based", "inverted-slo"]},
    "scorers": {"prefix-affinity": {"weight": [0, 5]}, "queue-depth": {"weight": [0, 5]}},
}
SPACE = GeneSpace(SPEC)
BEST = PolicyConfig(routing="weighted", scheduler="sjf", priority="slo-based",
                    scorers=(ScorerSpec("prefix-affinity", 3.0), ScorerSpec("queue-depth", 1.0)))


def toy_fitness(genomes):
    """Known optimum BEST: +1 per right categorical, +1 per right scorer switch, minus weight error."""
    out = []
    for g in genomes:
        p = SPACE.decode(g)
        score = (p.routing == "weighted") + (p.scheduler == "sjf") + (p.priority == "slo-based")
        score += g[SPACE.index["scorer.prefix-affinity.on"]] + g[SPACE.index["scorer.queue-depth.on"]]
        score -= abs(g[SPACE.index["scorer.prefix-affinity.weight"]] - 3.0) / 5
        score -= abs(g[SPACE.index["scorer.queue-depth.weight"]] - 1.0) / 5
        out.append((float(score),))
    return out


def toy_two_objectives(genomes):
    """Conflicting objectives on the two weights: maximise w1, maximise 5 - w1**2/5 - w2."""
    i, j = SPACE.index["scorer.prefix-affinity.weight"], SPACE.index["scorer.queue-depth.weight"]
    return [(float(g[i]), float(5 - g[i] ** 2 / 5 - g[j])) for g in genomes]


GA = dict(algorithm="ga", population=24, cxpb=0.5, mutpb=0.4, tournament=3, n_objectives=1)
NSGA = dict(algorithm="nsga2", population=24, cxpb=0.6, mutpb=0.3, tournament=2, n_objectives=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_run_search_ga_toy_finds_known_best_genome(seed):
    state = run_search(SPACE, toy_fitness, generations=40, seed=seed, **{**GA, "tournament": 2})
    champ = SPACE.decode(state.champion)
    assert (champ.routing, champ.scheduler, champ.priority) == ("weighted", "sjf", "slo-based")
    assert [s.name for s in champ.scorers] == ["prefix-affinity", "queue-depth"]
    assert state.champion.fitness.values[0] > 5 - 0.2          # weights within 1.0 in total
    assert [r["gen"] for r in state.logbook] == list(range(41))
    assert all(b["best"] >= a["best"] for a, b in zip(state.logbook, state.logbook[1:]))


def test_run_search_nsga2_toy_returns_non_dominated_front():
    state = run_search(SPACE, toy_two_objectives, generations=15, seed=3, **NSGA)
    front = list(state.pareto)
    assert len(front) >= 5
    for a in front:
        assert not any(b.fitness.dominates(a.fitness) for b in front)
        assert not any(p.fitness.dominates(a.fitness) for p in state.population)
    assert {"f0_min", "f0_avg", "f0_max", "f1_max", "best"} <= set(state.logbook[-1])


@pytest.mark.parametrize("kw", [GA, NSGA], ids=["ga", "nsga2"])
def test_run_search_same_seed_same_logbook(kw):
    fit = toy_fitness if kw is GA else toy_two_objectives
    a = run_search(SPACE, fit, generations=5, seed=11, **kw)
    b = run_search(SPACE, fit, generations=5, seed=11, **kw)
    c = run_search(SPACE, fit, generations=5, seed=12, **kw)
    assert list(a.logbook) == list(b.logbook)
    assert logbook_bytes(a.logbook) == logbook_bytes(b.logbook)
    assert list(a.champion) == list(b.champion)
    assert logbook_bytes(a.logbook) != logbook_bytes(c.logbook)


@pytest.mark.parametrize("kw", [GA, NSGA], ids=["ga", "nsga2"])
def test_run_search_checkpoint_2_resume_to_4_equals_run_4(kw, tmp_path):
    fit = toy_fitness if kw is GA else toy_two_objectives
    full = run_search(SPACE, fit, generations=4, seed=5, **kw)
    ckpt = str(tmp_path / "ck.pkl")
    half = run_search(SPACE, fit, generations=2, seed=5, checkpoint_path=ckpt, **kw)
    assert half.generation == 2 and load_checkpoint(ckpt)["generation"] == 2
    resumed = run_search(SPACE, fit, generations=4, seed=5, resume_from=ckpt, checkpoint_path=ckpt, **kw)
    assert logbook_bytes(resumed.logbook) == logbook_bytes(full.logbook)
    assert list(resumed.logbook) == list(full.logbook)
    assert list(resumed.champion) == list(full.champion)
    assert resumed.champion.fitness.values == full.champion.fitness.values
    assert [list(i) for i in resumed.population] == [list(i) for i in full.population]
    if kw is NSGA:
        assert [list(i) for i in resumed.pareto] == [list(i) for i in full.pareto]


def test_run_search_resume_with_changed_settings_raises(tmp_path):
    ckpt = str(tmp_path / "ck.pkl")
    run_search(SPACE, toy_fitness, generations=1, seed=5, checkpoint_path=ckpt, **GA)
    with pytest.raises(InputError, match="seed"):
        run_search(SPACE, toy_fitness, generations=2, seed=6, resume_from=ckpt, **GA)


def test_run_search_early_stop_by_patience_and_target():
    flat = run_search(SPACE, lambda gs: [(1.0,)] * len(gs), generations=50, seed=1, patience=3, **GA)
    assert flat.stop_reason == "patience" and flat.generation == 3
    hit = run_search(SPACE, toy_fitness, generations=50, seed=1, target=4.0, **GA)
    assert hit.stop_reason == "target" and hit.champion.fitness.values[0] >= 4.0
    assert hit.generation < 50


def test_run_search_seed_genomes_and_canonical_cache_use():
    best = encode(SPACE, BEST)
    seen = {}

    def cached(genomes):
        out = []
        for g in genomes:
            key = canonical(SPACE, g)
            if key not in seen:
                seen[key] = toy_fitness([g])[0]
            out.append(seen[key])
        return out

    state = run_search(SPACE, cached, generations=3, seed=2, seed_genomes=[best], **GA)
    assert SPACE.decode(state.champion) == BEST


def test_run_search_bad_settings_raise_input_error():
    with pytest.raises(InputError, match="algorithm"):
        run_search(SPACE, toy_fitness, algorithm="pso", generations=1)
    with pytest.raises(InputError, match="cxpb"):
        run_search(SPACE, toy_fitness, cxpb=0.8, mutpb=0.5, generations=1)


_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_ga import SPACE, GA, toy_fitness
    from search.ga import run_search

    def on_gen(state):
        if state.generation == 2:   # the 2nd checkpoint after the initial one is on disk
            os.kill(os.getpid(), signal.SIGKILL)

    run_search(SPACE, toy_fitness, generations=4, seed=9, checkpoint_path={ckpt!r},
               on_generation=on_gen, **GA)
""")


def test_run_search_sigkilled_subprocess_resume_matches_uninterrupted(tmp_path):
    ckpt = str(tmp_path / "ck.pkl")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(tests=str(Path(__file__).parent), ckpt=ckpt)],
                          env=env, cwd=str(REPO), capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert load_checkpoint(ckpt)["generation"] == 2
    assert os.listdir(tmp_path) == ["ck.pkl"]             # no temporary file left behind
    resumed = run_search(SPACE, toy_fitness, generations=4, seed=9, resume_from=ckpt, **GA)
    full = run_search(SPACE, toy_fitness, generations=4, seed=9, **GA)
    assert logbook_bytes(resumed.logbook) == logbook_bytes(full.logbook)
    assert list(resumed.champion) == list(full.champion)
