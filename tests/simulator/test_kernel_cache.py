"""The numba kernel cache: keyed by the content of the kernel sources, which import nothing of
the project outside simulator/kernels, and found from any copy of those sources (a shipped Ray
working directory, a fresh clone)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KDIR = REPO / "simulator" / "kernels"
PROJECT_PACKAGES = ("simulator", "blis_evo", "search", "tests", "benchmarks", "experiments")


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, absolute module name, relative level) of every import in ``path``, at module level
    or inside functions; ``from . import x`` counts as importing ``<package>.x``."""
    package = "simulator.kernels"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                out.append((node.lineno, node.module or "", 0))
                continue
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            mods = [f"{base}.{node.module}"] if node.module else [f"{base}.{a.name}" for a in node.names]
            out.extend((node.lineno, m, node.level) for m in mods)
    return out


def test_kernels_import_nothing_of_the_project_outside_the_kernel_package():
    """Every code and constant a kernel compiles in is defined under simulator/kernels, so the
    cache digest (kernel files only) covers all of them and editing other modules never
    invalidates the cache."""
    files = sorted(KDIR.glob("*.py"))
    assert len(files) > 10
    bad = []
    for path in files:
        for line, mod, level in _imports(path):
            top = mod.split(".")[0]
            inside = mod == "simulator.kernels" or mod.startswith("simulator.kernels.")
            if (level > 1 or top in PROJECT_PACKAGES) and not inside:
                bad.append(f"{path.name}:{line} imports {mod}")
    assert not bad, bad


def test_the_import_check_sees_function_local_and_relative_imports(tmp_path):
    src = tmp_path / "probe.py"
    src.write_text("from .layout import R_PI\nfrom .. import config\n"
                   "def f():\n    from simulator.latency import RP_LEN\n    import blis_evo.cli\n")
    assert _imports(src) == [(1, "simulator.kernels.layout", 1), (2, "simulator.config", 2),
                             (4, "simulator.latency", 0), (5, "blis_evo.cli", 0)]


def _probe(src_root: Path, cache: Path) -> dict:
    code = ("import json, numba, simulator; simulator.warmup(); "
            "from numba.core.registry import CPUDispatcher; "
            "import simulator.kernels.cluster as c, simulator.kernels.instance as i, "
            "simulator.kernels.state as s; "
            "ds = [v for m in (c, i, s) for v in vars(m).values() "
            "if isinstance(v, CPUDispatcher)]; "
            "print(json.dumps({'dir': numba.config.CACHE_DIR, "
            "'hits': sum(sum(d.stats.cache_hits.values()) for d in ds), "
            "'misses': sum(sum(d.stats.cache_misses.values()) for d in ds)}))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(src_root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=src_root, env=env, check=True,
                         capture_output=True, text=True, timeout=600).stdout
    import json
    return json.loads(out.strip().splitlines()[-1])


def test_a_copy_of_the_sources_loads_the_cached_kernels_and_an_edit_gets_a_new_cache(tmp_path):
    import simulator
    from numba import config

    simulator.warmup()                                # compiles only if the suite has not yet
    warm = Path(config.CACHE_DIR)                     # this process's (already compiled) cache
    assert warm.name.startswith("kernels-")
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache / warm.name)
    copy = tmp_path / "elsewhere"
    shutil.copytree(REPO / "simulator", copy / "simulator",
                    ignore=shutil.ignore_patterns("__pycache__"))
    probe = _probe(copy, cache)
    assert probe["dir"] == str(cache / warm.name)
    assert probe["hits"] >= 1 and probe["misses"] == 0   # loaded, not recompiled

    def cache_dir() -> str:
        code = "import numba, simulator.kernels; print(numba.config.CACHE_DIR)"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(copy)}
        return subprocess.run([sys.executable, "-c", code], cwd=copy, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    with open(copy / "simulator" / "latency.py", "a") as fh:  # not a kernel file: same cache
        fh.write("\n# edited\n")
    assert cache_dir() == probe["dir"]
    with open(copy / "simulator" / "kernels" / "latency.py", "a") as fh:  # a kernel: new cache
        fh.write("\n# edited\n")
    edited = cache_dir()
    assert edited != probe["dir"] and Path(edited).parent == cache
