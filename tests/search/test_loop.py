"""search.loop: one loop for GA, NSGA-II and GP -- convergence, the NSGA-II front, determinism,
early stopping and checkpoint/resume (the same implementation for every algorithm)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from search.checkpoint import load_checkpoint
from search.genome import GeneSpace, canonical, encode
from search.gp import RuleTrees
from search.loop import logbook_bytes, run
from search.vector import VectorGenome
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


def toy_rule_fitness(genomes):
    """A cheap deterministic score of a rule's source: reward prefix_match, punish length."""
    return [(src.count("prefix_match") - len(src) / 200.0,) for (src,) in genomes]


VECTOR = VectorGenome(SPACE, cxpb=0.5, mutpb=0.4)
GA = dict(rep=VECTOR, algorithm="ga", population=24, tournament=3)
NSGA = dict(rep=VectorGenome(SPACE, cxpb=0.6, mutpb=0.3), algorithm="nsga2", population=24,
            tournament=2, weights=(1.0, 1.0))
GP = dict(rep=RuleTrees(cxpb=0.6, mutpb=0.3), algorithm="gp", population=8, tournament=3,
          seeds=("sub(prefix_match, queue_depth)",))
ALGORITHMS = {"ga": (GA, toy_fitness), "nsga2": (NSGA, toy_two_objectives),
              "gp": (GP, toy_rule_fitness)}


def search(name: str, **kw):
    """``run`` with the named algorithm's toy setup (keywords override)."""
    setup, fitness = ALGORITHMS[name]
    args = {**setup, **kw}
    return run(args.pop("rep"), fitness, **args)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ga_toy_finds_known_best_genome(seed):
    state = search("ga", generations=40, seed=seed, tournament=2)
    champ = SPACE.decode(state.champion)
    assert (champ.routing, champ.scheduler, champ.priority) == ("weighted", "sjf", "slo-based")
    assert [s.name for s in champ.scorers] == ["prefix-affinity", "queue-depth"]
    assert state.champion.fitness.values[0] > 5 - 0.2          # weights within 1.0 in total
    assert [r["gen"] for r in state.logbook] == list(range(41))
    assert all(b["best"] >= a["best"] for a, b in zip(state.logbook, state.logbook[1:]))


def test_nsga2_toy_returns_non_dominated_front():
    state = search("nsga2", generations=15, seed=3)
    front = list(state.pareto)
    assert len(front) >= 5
    for a in front:
        assert not any(b.fitness.dominates(a.fitness) for b in front)
        assert not any(p.fitness.dominates(a.fitness) for p in state.population)
    assert {"f0_min", "f0_avg", "f0_max", "f1_max", "best"} <= set(state.logbook[-1])


def test_gp_is_elitist_within_the_size_limits_and_starts_from_its_seeds():
    state = search("gp", generations=6, seed=3)
    best = [r["fitness_max"] for r in state.logbook]
    assert best == sorted(best)   # (mu+lambda): the best never gets worse
    assert best[-1] > best[0]
    assert all(t.height <= 8 and len(t) <= 40 for t in state.population)
    assert str(search("gp", generations=0, seed=3).population[0]) == GP["seeds"][0]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_same_seed_same_run_and_another_seed_another(name):
    a = search(name, generations=5, seed=11)
    b = search(name, generations=5, seed=11)
    c = search(name, generations=5, seed=12)
    assert logbook_bytes(a.logbook) == logbook_bytes(b.logbook)
    assert [str(i) for i in a.population] == [str(i) for i in b.population]
    assert str(a.champion) == str(b.champion)
    assert logbook_bytes(a.logbook) != logbook_bytes(c.logbook)


def test_gp_leaves_the_global_random_untouched():
    random.seed(123)
    before = random.getstate()
    search("gp", generations=2, seed=1)
    assert random.getstate() == before


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_checkpoint_k_then_resume_equals_uninterrupted(name, k, tmp_path):
    full = search(name, generations=4, seed=5)
    ckpt = str(tmp_path / "ck.pkl")
    extra = {"cache": "of the first session"}
    half = search(name, generations=k, seed=5, checkpoint_path=ckpt, extra_state=extra)
    assert half.generation == k and load_checkpoint(ckpt)["generation"] == k
    mine = {}
    resumed = search(name, generations=4, seed=5, resume_from=ckpt, checkpoint_path=ckpt,
                     extra_state=mine)
    assert mine == extra and resumed.extra is mine          # caller's state restored in place
    assert logbook_bytes(resumed.logbook) == logbook_bytes(full.logbook)
    assert str(resumed.champion) == str(full.champion)
    assert resumed.champion.fitness.values == full.champion.fitness.values
    assert [str(i) for i in resumed.population] == [str(i) for i in full.population]
    assert [str(i) for i in resumed.halloffame] == [str(i) for i in full.halloffame]
    assert resumed.nevals_total == full.nevals_total
    rep = ALGORITHMS[name][0]["rep"]
    assert rep.rng_state(resumed.rng) == rep.rng_state(full.rng)
    if name == "nsga2":
        assert [list(i) for i in resumed.pareto] == [list(i) for i in full.pareto]


@pytest.mark.parametrize("change, setting", [
    (dict(seed=6), "seed"),
    (dict(tournament=2), "tournament"),
    (dict(rep=VectorGenome(SPACE, cxpb=0.3, mutpb=0.4)), "cxpb"),
    (dict(fingerprint="another experiment"), "experiment differs"),
])
def test_resume_with_changed_settings_raises(change, setting, tmp_path):
    ckpt = str(tmp_path / "ck.pkl")
    search("ga", generations=1, seed=5, checkpoint_path=ckpt)
    with pytest.raises(InputError, match=setting):
        search("ga", **{"generations": 2, "seed": 5, "resume_from": ckpt, **change})


def test_resume_refuses_a_checkpoint_of_another_representation(tmp_path):
    ckpt = str(tmp_path / "ck.pkl")
    search("gp", generations=1, seed=5, checkpoint_path=ckpt)
    with pytest.raises(InputError, match="representation"):
        search("ga", generations=2, seed=5, resume_from=ckpt)


def test_resume_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "ck.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        search("ga", generations=2, resume_from=str(bad))


def test_early_stop_by_patience_and_target():
    flat = run(VECTOR, lambda gs: [(1.0,)] * len(gs), algorithm="ga", generations=50, seed=1,
               patience=3)
    assert flat.stop_reason == "patience" and flat.generation == 3
    hit = search("ga", generations=50, seed=1, target=4.0)
    assert hit.stop_reason == "target" and hit.champion.fitness.values[0] >= 4.0
    assert hit.generation < 50
    gp_flat = run(GP["rep"], lambda gs: [(1.0,)] * len(gs), algorithm="gp", generations=50,
                  population=6, patience=2)
    assert gp_flat.stop_reason == "patience" and gp_flat.generation == 2


def test_seed_genomes_and_canonical_cache_use():
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

    state = run(VECTOR, cached, algorithm="ga", population=24, generations=3, seed=2, seeds=[best])
    assert SPACE.decode(state.champion) == BEST


def test_bad_settings_raise_input_error():
    with pytest.raises(InputError, match="algorithm: must be ga or nsga2"):
        run(VECTOR, toy_fitness, algorithm="pso", generations=1)
    with pytest.raises(InputError, match="algorithm: must be gp"):
        run(RuleTrees(), toy_rule_fitness, algorithm="ga", generations=1)
    with pytest.raises(InputError, match="single objective"):
        run(VECTOR, toy_two_objectives, algorithm="ga", weights=(1.0, 1.0), generations=1)
    with pytest.raises(InputError, match="rule trees need one maximised objective"):
        run(RuleTrees(), toy_rule_fitness, algorithm="gp", weights=(-1.0,), generations=1)
    with pytest.raises(InputError, match="cxpb"):
        VectorGenome(SPACE, cxpb=0.8, mutpb=0.5)
    with pytest.raises(ValueError, match="expected 1 finite numbers"):
        run(VECTOR, lambda gs: [(float("nan"),)] * len(gs), algorithm="ga", generations=1)


def test_hall_of_fame_order_of_tied_individuals_survives_a_checkpoint(tmp_path):
    """Equivalent rules often tie; a resumed search must keep the saved champion, so the hall of
    fame is restored in its saved order (DEAP's update would put the later tie first)."""
    from deap import tools

    from search.checkpoint import SearchState, restore, save_checkpoint

    from search.gp import parse_rule

    rep = RuleTrees()
    first, second = parse_rule("add(pending, queue_depth)"), parse_rule("add(queue_depth, pending)")
    for t in (first, second):
        t.fitness.values = (0.5,)
    hof = tools.HallOfFame(4)
    hof.update([first, second])
    saved = [str(t) for t in hof]
    settings = {"representation": "gp", "hof_size": 4, "weights": (1.0,)}
    state = SearchState(population=[first, second], generation=1, halloffame=hof, pareto=None,
                        logbook=tools.Logbook(), rng=random.Random(3), settings=settings)
    save_checkpoint(state, rep, str(tmp_path / "c.pkl"))
    back = restore(load_checkpoint(str(tmp_path / "c.pkl")), settings, rep)
    assert [str(t) for t in back.halloffame] == saved
    assert [str(t) for t in back.population] == [str(first), str(second)]
    assert back.rng.getstate() == random.Random(3).getstate()


_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_loop import search

    def on_gen(state):
        if state.generation == 2:   # the 2nd checkpoint after the initial one is on disk
            os.kill(os.getpid(), signal.SIGKILL)

    search({name!r}, generations=4, seed=9, checkpoint_path={ckpt!r}, on_generation=on_gen)
""")


@pytest.mark.parametrize("name", ["ga", "gp"])
def test_sigkilled_subprocess_resume_matches_uninterrupted(name, tmp_path):
    ckpt = str(tmp_path / "ck.pkl")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = _CHILD.format(tests=str(Path(__file__).parent), ckpt=ckpt, name=name)
    proc = subprocess.run([sys.executable, "-c", child], env=env, cwd=str(REPO),
                          capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert load_checkpoint(ckpt)["generation"] == 2
    assert os.listdir(tmp_path) == ["ck.pkl"]             # no temporary file left behind
    resumed = search(name, generations=4, seed=9, resume_from=ckpt)
    full = search(name, generations=4, seed=9)
    assert logbook_bytes(resumed.logbook) == logbook_bytes(full.logbook)
    assert str(resumed.champion) == str(full.champion)
