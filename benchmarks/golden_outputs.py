"""Write the outputs a restructure must not change, so two checkouts can be diffed byte for byte.

For every parity case (``tests/fixtures/blis_parity*``) this runs ``blis run`` twice — with
``--legacy-blis-quirks`` and in the default mode — and keeps stdout and the results JSON; then it
runs ``blis run --experiment default`` on two seeds and a short search of the default
experiment (``python -m search.evolve --generations 3 --workers 1``) and keeps every file the
search writes.  Run it from each checkout with the same ``--out`` root and ``diff -r`` the two
folders::

    PYTHONPATH=OLD python benchmarks/golden_outputs.py --out /tmp/golden/old
    PYTHONPATH=NEW python benchmarks/golden_outputs.py --out /tmp/golden/new
    diff -r /tmp/golden/old /tmp/golden/new

Wall-clock figures (the search's elapsed times, progress lines) are removed from what is kept,
so every remaining byte is a result.  Nothing here is a test: it is the tool the issue note's
"byte-identical before and after" claim is checked with.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DIRS = ("blis_parity", "blis_parity_more")
_CLOCK = re.compile(r'("?(?:wall|elapsed|seconds|time_s|duration|started|finished)[a-z_]*"?\s*[:=]\s*)'
                    r'[-0-9.eE+":TZ ]+', re.I)


_WALL_TIME = re.compile(r"(wall time )[0-9.]+( s)")
"""The search report's prose form (``...; wall time 263.2 s.``)."""


def _scrub(text: str) -> str:
    """Drop wall-clock values (they differ between any two runs)."""
    return _WALL_TIME.sub(r"\1<clock>\2", _CLOCK.sub(r"\1<clock>", text))


def _code_root() -> str:
    """The checkout whose code runs: the first PYTHONPATH entry when set (``python -m`` puts the
    working directory first on sys.path, so commands run from there), else this repository."""
    first = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    return first or str(REPO)


def _run(argv: list[str], out_dir: Path, name: str) -> None:
    """Run one command from the code's checkout; keep its exit code and scrubbed stdout."""
    proc = subprocess.run(argv, cwd=_code_root(), capture_output=True, text=True)
    (out_dir / f"{name}.stdout").write_text(f"exit {proc.returncode}\n" + _scrub(proc.stdout))


def parity_runs(root: Path) -> None:
    """Every parity case in legacy and default mode: stdout + results JSON."""
    data = REPO / "blis_evo" / "data"
    for sub in FIXTURE_DIRS:
        folder = REPO / "tests" / "fixtures" / sub
        if not folder.is_dir():
            print(f"golden_outputs: no {folder}, skipped", file=sys.stderr)
            continue
        for fx_path in sorted(folder.glob("*.json")):
            flags = [f.replace("{DATA}", str(data)) for f in json.loads(fx_path.read_text())["flags"]]
            for mode in ("legacy", "default"):
                name = f"{fx_path.stem}-{mode}"
                results = root / f"{name}.results.json"
                argv = [sys.executable, "-m", "blis_evo", "run", *flags, "--workload", "traces",
                        "--workload-traces-filepath", str(folder / f"{fx_path.stem}.csv.gz"),
                        "--results-path", str(results)]
                if mode == "legacy":
                    argv.append("--legacy-blis-quirks")
                _run(argv, root, name)


def experiment_runs(root: Path) -> None:
    """``blis run --experiment default`` on two seeds (the search's own simulation)."""
    for seed in (0, 3):
        name = f"experiment-default-seed{seed}"
        _run([sys.executable, "-m", "blis_evo", "run", "--experiment", "default", "--seed", str(seed),
              "--results-path", str(root / f"{name}.results.json")], root, name)


def search_run(root: Path, generations: int) -> None:
    """A short search of the default experiment; every written file is kept (clock-scrubbed)."""
    out = root / "search"
    _run([sys.executable, "-m", "search.evolve", "--generations", str(generations), "--workers", "1",
          "--no-progress", "--out", str(out)], root, "search")
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".yaml", ".md", ".csv", ".txt"):
            path.write_text(_scrub(path.read_text()))


def main(argv=None) -> int:
    """Write every golden output under ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write into (created)")
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--skip-search", action="store_true")
    args = ap.parse_args(argv)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    parity_runs(root)
    experiment_runs(root)
    if not args.skip_search:
        search_run(root, args.generations)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
