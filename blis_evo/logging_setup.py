"""stderr logging for the ``blis`` CLI, in the shape of the reference's logrus text output.

The reference (BLIS ``cmd/root.go`` @cbb0de7b) logs through logrus to stderr at the ``--log``
level (default ``warn``); stdout carries only the deterministic report.  Here the same levels map
onto Python :mod:`logging` (``trace``/``debug`` -> DEBUG, ``info`` -> INFO, ``warn``/``warning``
-> WARNING, ``error`` -> ERROR, ``fatal``/``panic`` -> CRITICAL) and records are written as
``level=<name> msg="<message>"`` lines.  The timestamp logrus adds is left out so that stderr of
two identical runs differs only in timings.
"""
from __future__ import annotations

import logging
import sys
from typing import IO

LOGGER_NAME = "blis"

LEVELS: dict[str, int] = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}

_LOGRUS_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}


def _quote(text: str) -> str:
    """Double-quote ``text`` with backslash escapes (logrus quotes every message with spaces)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{out}"'


class LogrusTextFormatter(logging.Formatter):
    """Format records as logrus' text formatter does without a TTY (minus the timestamp)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return ``level=<logrus level> msg="<message>"`` for ``record``."""
        level = _LOGRUS_NAMES.get(record.levelno, record.levelname.lower())
        return f"level={level} msg={_quote(record.getMessage())}"


def level_for(name: str) -> int:
    """Python logging level for a reference ``--log`` level name (case-insensitive).

    Raises KeyError for an unknown name (the flag validator rejects those earlier).
    """
    return LEVELS[name.lower()]


def configure_logging(level_name: str, stream: IO[str] | None = None) -> logging.Logger:
    """Attach a single stderr handler to the ``blis`` logger at the given ``--log`` level.

    ``stream`` defaults to the *current* ``sys.stderr`` (so in-process callers that redirect
    stderr see the records).  Any handler a previous call installed is replaced, so calling
    :func:`blis_evo.cli.main` repeatedly in one process never duplicates lines.  Records do not
    propagate to the root logger.  Undo with :func:`reset_logging`.
    """
    logger = logging.getLogger(LOGGER_NAME)
    reset_logging()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(LogrusTextFormatter())
    handler._blis_cli = True  # type: ignore[attr-defined]  # marks handlers we own
    logger.addHandler(handler)
    logger.setLevel(level_for(level_name))
    logger.propagate = False
    return logger


def reset_logging() -> None:
    """Remove (and close) the handlers :func:`configure_logging` installed."""
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        if getattr(h, "_blis_cli", False):
            logger.removeHandler(h)
            try:
                h.flush()
            except (OSError, ValueError):
                pass
