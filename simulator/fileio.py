"""Atomic file output shared by every writer (results, traces, checkpoints, reports), and the
one-line-error text reader of the input files (policy bundles, code policies)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` so that readers, and a process
    killed at any moment, see either the old file or the whole new one: a temporary file in the
    same directory, flushed to disk, renamed over ``path``.  Creates missing parent folders;
    the file gets the usual 0644 permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path: str, label: str) -> str:
    """The UTF-8 text of the input file ``path``; InputError ``"<label>: cannot read <path>:
    <reason>"`` or ``"<label>: <path> is not UTF-8 text"`` otherwise."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"{label}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{label}: {path} is not UTF-8 text") from None
