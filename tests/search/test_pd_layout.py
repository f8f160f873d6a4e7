"""Layout genes (search.genome LAYOUT_PARAMS) and the gpus objective: the search can choose
monolithic or disaggregated deployments and their size."""
from __future__ import annotations

from blis_evo.deployment import build_sim_config
from blis_evo.experiment import load_experiment
from blis_evo.phenotype import Layout, Phenotype
from search.genome import GeneSpace, bundle_dict
from search.pd_report import winners
from search.report import layout_label
from simulator.config import PolicyConfig


def test_pd_layout_genes_map_to_pools():
    assert Layout(pd_prefill_replicas=0).disaggregation(4) is None
    dc = Layout(pd_prefill_replicas=3).disaggregation(4)
    assert (dc.prefill_replicas, dc.decode_replicas, dc.decider) == (3, 1, "always")
    dc = Layout(pd_prefill_replicas=5, pd_prefix_threshold=700).disaggregation(3)
    assert (dc.prefill_replicas, dc.decode_replicas) == (2, 1)      # decode pool keeps one
    assert (dc.decider, dc.prefix_threshold) == ("prefix-threshold", 700)
    assert Layout(pd_prefill_replicas=1).disaggregation(1) is None  # nothing left to split


def test_layout_experiment_decodes_to_a_disaggregated_sim_config():
    exp = load_experiment("experiments/disaggregation_layout.yaml")
    space = GeneSpace({"num_instances": {"int": [2, 6]}, "pd_prefill_replicas": {"int": [0, 3]}})
    ph = space.phenotype([5, 2])
    cfg = build_sim_config(exp, 1, ph)
    assert cfg.num_instances == 5 and cfg.disaggregation.prefill_replicas == 2
    bundle = bundle_dict(Phenotype(PolicyConfig(), layout=ph.layout))
    assert bundle["disaggregation"]["decode_replicas"] == 3 and "engine" not in bundle
    assert build_sim_config(exp, 1, space.phenotype([3, 0])).disaggregation is None
    assert "gpus" in [o.key for o in exp.objectives.multi]


def test_report_names_the_best_layout_per_gpu_count():
    mono = {"admission": {"policy": "always-admit"}}
    dis = {**mono, "disaggregation": {"prefill_replicas": 1, "decode_replicas": 3,
                                      "decider": "always"}}
    def point(ttft, gpus, e2e, policy):
        return {"metrics": {"p99_ttft": ttft, "gpus": gpus, "mean_e2e": e2e}, "policy": policy}

    pts = [point(50.0, 4.0, 900.0, mono), point(40.0, 4.0, 950.0, dis),
           point(80.0, 2.0, 990.0, mono)]
    assert winners(pts) == [(2, "monolithic", 80.0, 990.0),
                            (4, "disaggregated 1P+3D (always)", 40.0, 950.0)]
    assert layout_label(mono) == "monolithic"


def test_pd_report_rejects_a_front_without_layout_metrics(tmp_path, capsys):
    from search.pd_report import main
    run = tmp_path / "run"
    run.mkdir()
    (run / "pareto.json").write_text('[{"objectives": [-1.0, -2.0], "metrics": {"p99_ttft": 1.0,'
                                     ' "throughput": 2.0}, "policy": {}}]')
    assert main([f"x={run}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics p99_ttft, gpus and mean_e2e" in err[0]
    (run / "pareto.json").write_text('{"not": "a list"}')
    assert main([f"x={run}"]) == 2
    assert "expected a list" in capsys.readouterr().err
