"""Search outputs: champion bundle, hall of fame, logbook, Pareto front, plots and report.md.

Every file is written atomically (temporary file + rename) so an interrupted run never leaves a
half-written output.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import yaml

from simulator.fileio import atomic_write

from .fitness import OVERALL

SUMMARY_METRICS: tuple[str, ...] = (
    "fitness", "p99_ttft_ms", "p50_ttft_ms", "mean_ttft_ms", "p99_e2e_ms", "p50_e2e_ms",
    "mean_e2e_ms", "throughput_rps", "tokens_per_sec", "slo_attainment", "replica_seconds",
    "avg_replicas", "gpus")
"""Summary columns (:func:`summary_value` reads each from a per-seed ``SeedResult``)."""
TABLE_COLUMNS = ("fitness", "p99_ttft_ms", "mean_ttft_ms", "mean_e2e_ms", "throughput_rps",
                 "slo_attainment")
"""Columns of the comparison table (plus the experiment's primary objective if not among them)."""
LOWER_IS_BETTER = frozenset({"p99_ttft_ms", "p50_ttft_ms", "mean_ttft_ms", "p99_e2e_ms",
                             "p50_e2e_ms", "mean_e2e_ms"})


OUTPUT_FILES = ("champion.yaml", "hall_of_fame.json", "logbook.csv", "convergence.png",
                "pareto.json", "pareto.png", "heldout.json", "failures.json", "report.md")
"""Every file :func:`write_outputs` may write (the search also writes ``checkpoint.pkl``)."""


def objective_column(key: str) -> str:
    """Summary column of an objective key (``p99_ttft`` -> ``p99_ttft_ms``,
    ``throughput`` -> ``throughput_rps``, ``p99_ttft.critical`` -> ``p99_ttft_ms.critical``);
    unknown keys map to themselves."""
    if key == "throughput":
        return "throughput_rps"
    base, dot, cls = key.partition(".")
    if dot and f"{base}_ms" in SUMMARY_METRICS:
        return f"{base}_ms.{cls}"
    if f"{key}_ms" in SUMMARY_METRICS:
        return f"{key}_ms"
    return key


def summary_value(result, column: str) -> float | None:
    """One seed's value of a :data:`SUMMARY_METRICS` column from its ``search.fitness.SeedResult``:
    the penalised fitness, the overall SLO attainment (None without SLO targets) or the raw
    measure of that name."""
    if column == "fitness":
        return result.fitness
    if column == "slo_attainment":
        return result.attainment.get(OVERALL)
    if "." in column:  # per SLO class: p99_ttft_ms.critical, goodput_rps.critical, lost.critical
        base, _, cls = column.partition(".")
        key = f"{base.removesuffix('_ms')}.{cls}"
        return result.class_measures.get(key)
    return getattr(result.measures, column)


CLASS_COLUMNS: tuple[str, ...] = ("p99_ttft_ms", "mean_ttft_ms", "p99_e2e_ms", "goodput_rps",
                                   "lost")
"""Per-SLO-class summary columns (``<column>.<class>``): latencies in ms, goodput in requests/s
meeting the class's targets, requests lost (rejected, refused, shed, expired, evicted)."""


def class_columns(per_seed) -> tuple[str, ...]:
    """``<column>.<class>`` for every class the seeds saw (classes sorted)."""
    classes = sorted({k.partition(".")[2] for r in per_seed for k in r.class_measures})
    return tuple(f"{c}.{cls}" for cls in classes for c in CLASS_COLUMNS)


def class_table(summaries: dict[str, dict], reference: str = "llm-d-default") -> list[str]:
    """The per-SLO-class section of the report: one table per class (policies as rows), the
    class's p99 / mean TTFT and p99 E2E (ms), goodput (requests/s within its targets) and lost
    requests per seed, mean ± stdev, with the change against ``reference``."""
    classes = sorted({k.partition(".")[2] for s in summaries.values() for k in s if "." in k})
    if len(classes) < 2:
        return []
    lines = ["Per SLO class (held-out seeds, mean ± stdev; lost = rejected, refused by a full "
             "gateway queue, shed, expired or evicted requests per seed):", ""]
    for cls in classes:
        cols = [c for c in CLASS_COLUMNS if any(f"{c}.{cls}" in s for s in summaries.values())]
        lines.append(f"**{cls}**")
        lines.append("")
        lines.append("| policy | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        ref = summaries.get(reference, {})
        for name, s in summaries.items():
            cells = [_cell(s.get(f"{c}.{cls}"),
                           None if name == reference or c == "lost" else ref.get(f"{c}.{cls}"))
                     for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def policy_summary(evaluation) -> dict:
    """Mean and sample stdev over seeds of each :data:`SUMMARY_METRICS` column (per-seed values
    from ``evaluation.per_seed``), plus the raw per-seed values under ``"values"``."""
    out = {}
    for column in SUMMARY_METRICS + class_columns(evaluation.per_seed):
        v = [float(x) for x in (summary_value(r, column) for r in evaluation.per_seed)
             if x is not None]
        if v:
            out[column] = {"mean": statistics.fmean(v),
                           "stdev": statistics.stdev(v) if len(v) > 1 else 0.0, "values": v}
    return out


def logbook_csv(logbook) -> str:
    """The DEAP logbook as CSV (one row per generation, flat columns)."""
    rows = [dict(r) for r in logbook]
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in cols})
    return buf.getvalue()


def plot_convergence(logbook, path: Path) -> None:
    """Best and mean fitness per generation."""
    # lazy: matplotlib loads only when a plot is drawn (replay and batch use this module too)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): the headless backend

    rows = [dict(r) for r in logbook]
    gens = [r.get("gen") for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    keys = list(rows[0]) if rows else []
    for suffix, label in (("_max", "best"), ("_avg", "mean")):
        key = next((k for k in keys if k.endswith(suffix)), None)
        if key is not None:
            ax.plot(gens, [r.get(key) for r in rows], label=label)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def plot_pareto(front_points, path: Path, labels=("objective 1", "objective 2")) -> None:
    """Scatter of the first two objectives of the Pareto front."""
    import matplotlib  # lazy: as in plot_convergence

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): the headless backend

    fig, ax = plt.subplots(figsize=(5, 4))
    if front_points:
        xs = [p[0] for p in front_points]
        ys = [p[1] if len(p) > 1 else 0.0 for p in front_points]
        ax.scatter(xs, ys)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def policy_label(bundle: dict, layout: bool = False) -> str:
    """Short description of a policy bundle for report tables: routing (with scorer weights),
    priority/scheduler when not the defaults, the autoscaler and (``layout``) the P/D layout."""
    routing = bundle.get("routing", {})
    parts = [routing.get("policy", "")]
    if routing.get("scorers"):
        parts[0] += " " + ",".join(f"{s['name']}:{s['weight']:.3g}" for s in routing["scorers"])
    prio = bundle.get("priority", {}).get("policy", "constant")
    sched = bundle.get("scheduler", "fcfs")
    if prio != "constant" or sched != "fcfs":
        parts.append(f"{prio}/{sched}")
    asc = bundle.get("autoscaler")
    if asc:
        parts.append(f"autoscaler {asc['policy']} {asc['min_replicas']}-{asc['max_replicas']} "
                     f"replicas")
    if layout:
        parts.append(layout_label(bundle))
    return "; ".join(p for p in parts if p)


def layout_label(bundle: dict) -> str:
    """``monolithic`` or ``disaggregated PP+DD (decider)`` from a policy bundle."""
    d = bundle.get("disaggregation")
    if not d:
        return "monolithic"
    how = d["decider"]
    if how == "prefix-threshold":
        how += f" > {d['prefix_threshold']} tokens"
    return f"disaggregated {d['prefill_replicas']}P+{d['decode_replicas']}D ({how})"


def natural_values(point: dict, directions: list[str]) -> list[float]:
    """A Pareto point's objective values in their own units and sign (pareto.json stores
    ``min`` objectives negated, as the search maximises every objective)."""
    return [-v if d == "min" else v for v, d in zip(point["objectives"], directions)]


def pareto_section(pareto: list[dict], keys: list[str], directions: list[str]) -> list[str]:
    """Report lines for the Pareto front (points carrying ``metrics``, as write_outputs stores
    them): its distinct trade-off points (objective values as scored on the train seeds,
    penalties included), best first on the first objective; and,
    when ``gpus`` is an objective, the layout with the best first objective per GPU count."""
    distinct: dict[tuple, dict] = {}
    for p in pareto:
        distinct.setdefault(tuple(round(v, 6) for v in p["objectives"]), p)
    points = sorted(distinct.values(), key=lambda p: [-v for v in p["objectives"]])
    head = " | ".join(f"{k} ({d})" for k, d in zip(keys, directions))
    lines = [f"Pareto front: {len(points)} distinct trade-off points ({len(pareto)} policies; "
             "objective values on the train seeds, anomaly penalties included; all in "
             "`pareto.json`):", "", f"| # | {head} | policy |",
             "|---|" + "---|" * len(keys) + "---|"]
    for n, p in enumerate(points, 1):
        vals = " | ".join(f"{p['metrics'][k]:.4g}" for k in keys)
        lines.append(f"| {n} | {vals} | {policy_label(p['policy'], layout='gpus' in keys)} |")
    lines.append("")
    if "gpus" in keys and len(keys) > 1:
        lines += layout_winners(points, keys, directions)
    return lines


def layout_winners(points: list[dict], keys: list[str], directions: list[str]) -> list[str]:
    """Report lines: for each GPU count on the front and each other objective, the layout of
    the front point that does best on that objective (which layout wins, and by how much)."""
    g_at = keys.index("gpus")
    others = [k for k in range(len(keys)) if k != g_at]
    best: dict[tuple[int, int], tuple[float, float, str]] = {}   # (gpus, objective) -> ...
    for p in points:
        vals = [p["metrics"][key] for key in keys]
        g = int(round(vals[g_at]))
        for k in others:
            oriented = vals[k] if directions[k] == "min" else -vals[k]
            if (g, k) not in best or oriented < best[(g, k)][0]:
                best[(g, k)] = (oriented, vals[k], layout_label(p["policy"]))
    head = " | ".join(f"best on {keys[k]} ({directions[k]})" for k in others)
    lines = ["Which layout wins, per GPU count on the front:", "", f"| GPUs | {head} |",
             "|---|" + "---|" * len(others)]
    for g in sorted({g for g, _ in best}):
        cells = " | ".join(f"{best[(g, k)][2]}: {best[(g, k)][1]:.4g}" for k in others)
        lines.append(f"| {g} | {cells} |")
    return lines + [""]


def _cell(value: dict | None, ref: dict | None) -> str:
    """``mean ± stdev`` of a summary entry, with its relative change against ``ref``'s mean
    (when given and non-zero); ``—`` when the policy has no such entry."""
    if value is None:
        return "—"
    cell = f"{value['mean']:.4g} ± {value['stdev']:.2g}"
    if ref is not None and ref["mean"]:
        cell += f" ({(value['mean'] - ref['mean']) / abs(ref['mean']) * 100.0:+.1f}%)"
    return cell


def comparison_table(summaries: dict[str, dict], reference: str = "llm-d-default",
                     primary: str | None = None, objectives: tuple[str, ...] = ()) -> str:
    """Markdown table: each policy's mean ± stdev over seeds per metric and its relative change
    vs ``reference`` (a raw change: negative is better for latencies, positive for the rest).
    ``objectives``: the experiment's multi-objective keys, shown too (e.g. replica-seconds)."""
    columns = list(TABLE_COLUMNS)
    if primary and objective_column(primary) not in columns:
        columns.insert(1, objective_column(primary))
    columns += [objective_column(k) for k in objectives if objective_column(k) not in columns]
    metrics = [m for m in columns if any(m in s for s in summaries.values())]
    head = "| policy | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics) + "\n"
    ref = summaries.get(reference, {})
    lines = []
    for name, s in summaries.items():
        cells = [_cell(s.get(m), None if name == reference else ref.get(m)) for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def improvement(summaries: dict[str, dict], metric: str, policy: str = "champion",
                reference: str = "llm-d-default") -> float | None:
    """Relative improvement of ``policy`` over ``reference`` on ``metric`` (mean over seeds):
    positive is better (a lower latency or a higher throughput / fitness); None if absent."""
    a, b = summaries.get(policy, {}).get(metric), summaries.get(reference, {}).get(metric)
    if a is None or b is None or not b["mean"]:
        return None
    rel = (a["mean"] - b["mean"]) / abs(b["mean"])
    return -rel if metric.partition(".")[0] in LOWER_IS_BETTER else rel


def headline(summaries: dict[str, dict], primary: str, policy: str = "champion",
             reference: str = "llm-d-default") -> str:
    """One sentence: ``policy``'s improvement over ``reference`` on the primary objective and
    its throughput change (both from the summaries' means over seeds)."""
    column = objective_column(primary)
    gain = improvement(summaries, column, policy, reference)
    thr = improvement(summaries, "throughput_rps", policy, reference)
    if gain is None:
        return f"No {column} summary for {policy} and {reference}."
    verb = "improves" if gain >= 0 else "worsens"
    text = f"The {policy} {verb} {column} by {abs(gain) * 100:.1f}% over {reference}"
    if thr is not None:
        text += f" (throughput {thr * 100:+.1f}%)"
    return text + "."


def best_baseline(summaries: dict[str, dict], column: str) -> str | None:
    """The baseline (every policy but ``champion``) with the best mean on ``column``."""
    have = [(name, s[column]["mean"]) for name, s in summaries.items()
            if name != "champion" and column in s]
    if not have:
        return None
    lower = column.partition(".")[0] in LOWER_IS_BETTER
    return (min if lower else max)(have, key=lambda kv: kv[1])[0]


def write_outputs(out: Path, *, champion_bundle: dict, hall_of_fame: list[dict], logbook,
                  summaries: dict[str, dict], experiment_name: str, heldout_seeds,
                  primary: str = "", pareto: list[dict] | None = None,
                  pareto_labels=("objective 1", "objective 2"),
                  pareto_directions: list[str] | None = None, wall_time_s: float | None = None,
                  generations: int | None = None, stop_reason: str | None = None,
                  evaluations: int | None = None, failures: list[dict] | None = None,
                  champion_source: str | None = None) -> None:
    """Write every search output into ``out`` (each file atomically).  ``champion_source``:
    the champion's code policy (GP search), quoted in the report after its bundle."""
    out = Path(out)
    atomic_write(out / "champion.yaml", yaml.safe_dump(champion_bundle, sort_keys=False))
    atomic_write(out / "hall_of_fame.json", json.dumps(hall_of_fame, indent=2) + "\n")
    atomic_write(out / "logbook.csv", logbook_csv(logbook))
    plot_convergence(logbook, out / "convergence.png")
    directions = list(pareto_directions or ["max"] * len(pareto_labels))
    if pareto is not None:
        for p in pareto:
            p["metrics"] = dict(zip(pareto_labels, natural_values(p, directions)))
        atomic_write(out / "pareto.json", json.dumps(pareto, indent=2) + "\n")
        plot_pareto([list(p["metrics"].values()) for p in pareto], out / "pareto.png",
                    tuple(pareto_labels))
    atomic_write(out / "heldout.json", json.dumps(summaries, indent=2) + "\n")
    atomic_write(out / "failures.json", json.dumps(failures or [], indent=2) + "\n")
    lines = [f"# Search report: {experiment_name}", ""]
    facts = []
    if generations is not None:
        facts.append(f"{generations} generations"
                     + (f" (stopped early: {stop_reason})" if stop_reason else ""))
    if evaluations is not None:
        facts.append(f"{evaluations} distinct policies evaluated")
    if failures:
        facts.append(f"{len(failures)} failed evaluations (penalised; see failures.json)")
    if wall_time_s is not None:
        facts.append(f"wall time {wall_time_s:.1f} s")
    if facts:
        lines += ["; ".join(facts).capitalize() + ".", ""]
    if primary:
        text = headline(summaries, primary)
        best = best_baseline(summaries, objective_column(primary))
        if best is not None and best != "llm-d-default":
            text += " Against the best baseline on it, " + headline(
                summaries, primary, reference=best)[0].lower() + headline(
                summaries, primary, reference=best)[1:]
        lines += [text + " Held-out seeds, primary objective " f"`{primary}`.", ""]
    lines += [f"Champion vs baselines on the held-out seeds {list(heldout_seeds)} "
              "(mean ± stdev over seeds; change relative to the llm-d default profile):", "",
              comparison_table(summaries, primary=primary or None,
                               objectives=tuple(pareto_labels) if pareto is not None else ()), ""]
    lines += class_table(summaries)
    if pareto:
        lines += pareto_section(pareto, list(pareto_labels), directions)
    lines += [
              "Champion policy (`blis run --policy-config champion.yaml`):", "", "```yaml",
              yaml.safe_dump(champion_bundle, sort_keys=False).rstrip(), "```", ""]
    if champion_source is not None:
        lines += ["Champion score rule (`champion_score.py`, the bundle's `code_path`):", "",
                  "```python", champion_source.rstrip(), "```", ""]
    atomic_write(out / "report.md", "\n".join(lines))
