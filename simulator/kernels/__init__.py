"""numba kernels of the engine (nopython, ``cache=True``).

numba invalidates a cached function only when *its own* source file changes, not when a kernel
it calls (and has compiled in) changes.  So the cache directory is keyed by a digest of every
kernel source file: editing any kernel starts a fresh cache instead of silently reusing stale
machine code.
"""
import hashlib
import os
from pathlib import Path

import numba

_HERE = Path(__file__).resolve().parent


def _kernel_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(_HERE.glob("*.py")) + [_HERE.parent / "codes.py"]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(numba.__version__.encode())
    return h.hexdigest()[:16]


def _configure_cache_dir() -> None:
    base = os.environ.get("NUMBA_CACHE_DIR") or str(_HERE.parent.parent / ".numba_cache")
    numba.config.CACHE_DIR = os.path.join(base, "kernels-" + _kernel_digest())


_configure_cache_dir()
