"""Search outputs: champion bundle, hall of fame, logbook, Pareto front, plots and report.md.

Every file is written atomically (temporary file + rename) so an interrupted run never leaves a
half-written output.
"""
from __future__ import annotations

import csv
import io
import json
import os
import statistics
import tempfile
from pathlib import Path

import yaml

OBJECTIVE_KEYS = ("score", "ttft_p99_ms", "e2e_mean_ms", "throughput_rps")


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def policy_summary(evaluations) -> dict:
    """Mean and stdev over seeds of the score and the headline metrics of a policy's evaluations."""
    rows = {"score": [], "ttft_p99_ms": [], "e2e_mean_ms": [], "throughput_rps": []}
    for ev in evaluations:
        rows["score"].append(float(ev.fitness))
        for raw in ev.raw:
            rows["ttft_p99_ms"].append(raw.ttft.p99 / 1000.0)
            rows["e2e_mean_ms"].append(raw.e2e.mean / 1000.0)
            rows["throughput_rps"].append(raw.requests_per_sec)
    out = {}
    for k, v in rows.items():
        if v:
            out[k] = {"mean": statistics.fmean(v), "stdev": statistics.stdev(v) if len(v) > 1 else 0.0}
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def comparison_table(summaries: dict[str, dict], reference: str = "llm-d-default") -> str:
    """Markdown table: each policy's mean ± stdev per metric and its change vs ``reference``."""
    metrics = [m for m in OBJECTIVE_KEYS if any(m in s for s in summaries.values())]
    head = "| policy | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics) + "\n"
    ref = summaries.get(reference, {})
    lines = []
    for name, s in summaries.items():
        cells = []
        for m in metrics:
            if m not in s:
                cells.append("—")
                continue
            cell = f"{s[m]['mean']:.4g} ± {s[m]['stdev']:.2g}"
            if name != reference and m in ref and ref[m]["mean"]:
                rel = (s[m]["mean"] - ref[m]["mean"]) / abs(ref[m]["mean"]) * 100.0
                cell += f" ({rel:+.1f}%)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def write_outputs(out: Path, *, champion_bundle: dict, hall_of_fame: list[dict], logbook,
                  summaries: dict[str, dict], experiment_name: str, heldout_seeds,
                  pareto: list[dict] | None = None, wall_time_s: float | None = None) -> None:
    """Write every search output into ``out``."""
    out = Path(out)
    atomic_write(out / "champion.yaml", yaml.safe_dump(champion_bundle, sort_keys=False))
    atomic_write(out / "hall_of_fame.json", json.dumps(hall_of_fame, indent=2) + "\n")
    atomic_write(out / "logbook.csv", logbook_csv(logbook))
    plot_convergence(logbook, out / "convergence.png")
    if pareto is not None:
        atomic_write(out / "pareto.json", json.dumps(pareto, indent=2) + "\n")
        plot_pareto([p["objectives"] for p in pareto], out / "pareto.png")
    lines = [f"# Search report: {experiment_name}", ""]
    if wall_time_s is not None:
        lines += [f"Wall time: {wall_time_s:.1f} s.", ""]
    lines += [f"Champion vs baselines on the held-out seeds {list(heldout_seeds)} "
              "(mean ± stdev over seeds; change relative to the llm-d default profile):", "",
              comparison_table(summaries), "",
              "Champion policy (`blis run --policy-config champion.yaml`):", "", "```yaml",
              yaml.safe_dump(champion_bundle, sort_keys=False).rstrip(), "```", ""]
    atomic_write(out / "report.md", "\n".join(lines))
