"""The numba kernel cache: keyed by the content of every source the kernels compile in, and
found from any copy of those sources (a shipped Ray working directory, a fresh clone)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import simulator.kernels as kernels

REPO = Path(__file__).resolve().parents[2]
KDIR = REPO / "simulator" / "kernels"


def _imported_simulator_modules(path: Path) -> set[str]:
    """File names of simulator modules outside kernels/ that ``path`` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 2 or (node.level == 0 and mod.startswith("simulator.")
                                   and not mod.startswith("simulator.kernels")):
                out.add(mod.split(".")[-1] + ".py")
    return out


def test_digest_covers_every_module_the_kernels_import():
    imported = set().union(*(_imported_simulator_modules(p) for p in KDIR.glob("*.py")))
    assert imported, "the kernels import shared constants"
    assert imported <= set(kernels.KERNEL_DEPENDENCIES)


def _probe(src_root: Path, cache: Path) -> dict:
    code = ("import json, numba, simulator; simulator.warmup(); "
            "from numba.core.registry import CPUDispatcher; "
            "import simulator.kernels.cluster as c, simulator.kernels.instance as i; "
            "ds = [v for m in (c, i) for v in vars(m).values() if isinstance(v, CPUDispatcher)]; "
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

    with open(copy / "simulator" / "latency.py", "a") as fh:  # a dependency, not a kernel file
        fh.write("\n# edited\n")
    code = "import numba, simulator.kernels; print(numba.config.CACHE_DIR)"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(copy)}
    edited = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    assert edited != probe["dir"] and Path(edited).parent == cache
