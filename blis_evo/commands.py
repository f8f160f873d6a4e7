"""What the command lines share at their boundary: one-line error reporting with the exit codes
the CLI promises, and the up-front checks that an output file or folder can be written."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from simulator.errors import InputError, one_line  # noqa: F401 - one_line: the CLI's helper

EXIT_OK = 0
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130


def check_output_file(path: str, flag: str) -> None:
    """Fail before any work if ``path`` (named by ``flag``) can obviously not be written: it is
    a directory, or its parent does not exist or is not writable."""
    if os.path.isdir(path):
        raise InputError(f"{flag}: {path!r} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"{flag}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{flag}: directory {parent!r} is not writable")


def check_output_dir(path: str, flag: str) -> None:
    """Fail before any work if the folder ``path`` (named by ``flag``) can obviously not be
    created or written: it exists as a file, or its nearest existing ancestor is not a
    writable directory."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{flag}: {path!r} exists and is not a directory")
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: cannot create or write {path!r} ({probe!r} is not a writable "
                         "directory)")


def run_subcommand(prog: str, parse: Callable[[], Any], execute: Callable[[Any], int]) -> int:
    """``execute(parse())`` with the CLI's error contract; returns the exit status.

    ``--help`` (argparse's SystemExit) returns its status; InputError and OSError print one line
    ``<prog>: error: ...`` on stderr and return 2 (a closed stdout pipe returns 1 quietly);
    Ctrl-C prints ``<prog>: interrupted`` and returns 130.
    """
    try:
        try:
            args = parse()
        except SystemExit as exc:  # --help
            code = exc.code
            return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_INPUT_ERROR)
        return execute(args)
    except InputError as exc:
        print(f"{prog}: error: {one_line(exc) or 'invalid input'}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return 1
        name = f": {exc.filename}" if exc.filename is not None else ""
        print(f"{prog}: error: {one_line(exc.strerror or exc)}{name}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
