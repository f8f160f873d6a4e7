"""Which deployment layout wins for which workload mix: read the ``pareto.json`` of P/D layout
searches (experiments/disaggregation_layout*.yaml) and, per mix and GPU count, name the layout
(monolithic or disaggregated p+d) with the lowest tail TTFT on the front.

Usage: ``python -m search.pd_report NAME=DIR [NAME=DIR ...] [--out FILE.md]``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.errors import InputError
from simulator.fileio import atomic_write

from .report import layout_label


def winners(points: list[dict]) -> list[tuple[int, str, float, float]]:
    """Per GPU count on the front: (gpus, layout, p99 TTFT ms, mean E2E ms) of the point with the
    lowest p99 TTFT (mean E2E breaks ties).  Reads each point's ``metrics`` (objective values in
    their own sign, written by search.report); InputError when a point lacks ``p99_ttft``,
    ``gpus`` or ``mean_e2e``."""
    best: dict[int, tuple[float, float, str]] = {}
    for p in points:
        m = p.get("metrics") if isinstance(p, dict) else None
        if not isinstance(m, dict) or not {"p99_ttft", "gpus", "mean_e2e"} <= set(m):
            raise InputError("pareto.json: each point needs metrics p99_ttft, gpus and mean_e2e "
                             "(a P/D layout search: experiments/disaggregation_layout*.yaml)")
        g = int(round(m["gpus"]))
        cand = (m["p99_ttft"], m["mean_e2e"], layout_label(p["policy"]))
        if g not in best or cand < best[g]:
            best[g] = cand
    return [(g, lay, t, e) for g, (t, e, lay) in sorted(best.items())]


def report(runs: dict[str, Path]) -> str:
    """Markdown table: mix, GPUs, winning layout, its p99 TTFT and mean E2E."""
    lines = ["| mix | GPUs | best layout on the front (lowest p99 TTFT) | p99 TTFT ms | mean E2E ms |",
             "|---|---|---|---|---|"]
    for name, folder in runs.items():
        path = folder / "pareto.json"
        try:
            points = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read a pareto.json ({exc})") from None
        if not isinstance(points, list):
            raise InputError(f"{path}: expected a list of Pareto points")
        for g, lay, t, e in winners(points):
            lines.append(f"| {name} | {g} | {lay} | {t:.1f} | {e:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI entry: print (and optionally write) the comparison table."""
    ap = argparse.ArgumentParser(prog="python -m search.pd_report")
    ap.add_argument("runs", nargs="+", help="NAME=DIR of a layout search's output folder")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    try:
        runs = {}
        for item in a.runs:
            name, sep, folder = item.partition("=")
            if not sep:
                raise InputError(f"expected NAME=DIR, got {item!r}")
            runs[name] = Path(folder)
        text = report(runs)
    except InputError as exc:
        print(f"pd_report: error: {exc}", file=sys.stderr)
        return 2
    if a.out:
        try:
            atomic_write(Path(a.out), text)
        except OSError as exc:
            print(f"pd_report: error: --out: cannot write {a.out} ({exc.strerror})", file=sys.stderr)
            return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
