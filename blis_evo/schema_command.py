"""``blis schema NAME``: print the JSON Schema (draft 2020-12) of an input file format, for editors
(key completion, help on hover, errors while typing) and other tools.

NAME is ``workload-spec`` (``--workload-spec`` files), ``bundle`` (``--policy-config``) or
``experiment`` (``--experiment``, ``python -m search.evolve``).  The printed schema is the
declaration the format's parser itself uses (:mod:`simulator.schema`), so the two cannot drift
apart: the workload spec's :data:`simulator.workload.spec.SPEC`, the bundle's
:func:`blis_evo.bundle.bundle_schema` (built from the policy registry, so registered policies
and their parameters are in it) and the experiment's :data:`blis_evo.experiment.EXPERIMENT`.
What the parsers check beyond single keys (cross-key rules, files, the latency model of a
cluster, the genes of an experiment's ``search_space``) is not in the schemas.
"""
from __future__ import annotations

import importlib
import json
import sys
from typing import Sequence

from simulator.errors import InputError
from simulator.schema import document

from .commands import run_subcommand
from .flags import InputErrorParser

FORMATS: dict[str, tuple[str, str, str]] = {
    "workload-spec": ("simulator.workload.spec", "SPEC", "blis-evo workload spec (--workload-spec)"),
    "bundle": ("blis_evo.bundle", "BUNDLE", "blis-evo policy bundle (--policy-config)"),
    "experiment": ("blis_evo.experiment", "EXPERIMENT",
                   "blis-evo experiment (--experiment, python -m search.evolve)"),
}
"""Format name -> (module, attribute holding the root field, schema title)."""


def schema_document(name: str) -> dict:
    """The JSON Schema document of format ``name``; InputError for an unknown name."""
    entry = FORMATS.get(name)
    if entry is None:
        raise InputError(f"schema: {name!r} is unknown; available: {', '.join(FORMATS)}")
    module, attr, title = entry
    return document(getattr(importlib.import_module(module), attr), title)


def _parse(argv: Sequence[str], prog: str) -> str:
    parser = InputErrorParser(prog=prog, allow_abbrev=False,
                              description="Print the JSON Schema (draft 2020-12) of an input "
                                          "file format to stdout.")
    parser.add_argument("name", choices=list(FORMATS), metavar="NAME",
                        help=f"the format: {', '.join(FORMATS)}")
    return parser.parse_args(list(argv)).name


def _print(name: str) -> int:
    sys.stdout.write(json.dumps(schema_document(name), indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "blis") -> int:
    """``blis schema`` entry point: prints the schema and returns 0; 2 with one line
    ``blis: error: ...`` for an unknown format; argparse's status for ``--help``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_subcommand(prog, lambda: _parse(args, f"{prog} schema"), _print)
