"""numba kernels of the engine (nopython, ``cache=True``).

numba invalidates a cached function only when *its own* source file changes, not when a kernel
it calls (and has compiled in) changes.  So the cache directory is keyed by a digest of every
kernel source file: editing any kernel starts a fresh cache instead of silently reusing stale
machine code.  The kernels import nothing of the project outside this package -- every code and
constant they compile in is defined here -- so editing code elsewhere never touches the cache.

The cache is also content-addressed rather than path-addressed: numba's own locators key entries
by the source file's absolute path and mtime, so a copy of the project (the working directory
``ray job submit`` ships to every node, a fresh clone) would recompile everything.  Here the
kernel files are located by the digest alone, so any copy of the same sources loads the same
cached machine code.
"""
import functools
import hashlib
import os
from pathlib import Path

import numba
from numba.core import caching

_HERE = Path(__file__).resolve().parent


def _kernel_digest() -> str:
    """Digest of every kernel source file (and the numba version) naming the cache directory.

    The kernels import nothing of the project outside this package (tests check it), so these
    files are all the source numba compiles in."""
    h = hashlib.sha256()
    for p in sorted(_HERE.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(numba.__version__.encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _file_digest(path: str) -> str:
    """sha256 of a kernel source file, read once per process (numba asks once per function)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _KernelCacheLocator(caching.UserProvidedCacheLocator):
    """Cache location of this package's kernels: ``CACHE_DIR/kernels`` (CACHE_DIR already names
    the kernel digest) with the file's content hash as freshness stamp, independent of where
    the sources live and of their mtimes."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(numba.config.CACHE_DIR, "kernels")

    def get_source_stamp(self):
        return _file_digest(self._py_file)

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != _HERE:
            return None
        return super().from_function(py_func, py_file)


def _configure_cache_dir() -> None:
    base = os.environ.get("NUMBA_CACHE_DIR") or str(_HERE.parent.parent / ".numba_cache")
    numba.config.CACHE_DIR = os.path.join(base, "kernels-" + _kernel_digest())
    if _KernelCacheLocator not in caching.CacheImpl._locator_classes:
        caching.CacheImpl._locator_classes.insert(0, _KernelCacheLocator)


_configure_cache_dir()
