"""The README's policy table, written from the declarations.

``python -m simulator.policies.table`` prints the table; ``python -m simulator.policies.table
--write README.md`` replaces the part of the file between the ``<!-- policy-table -->`` and
``<!-- /policy-table -->`` markers.  A test checks that the README holds exactly this table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .declare import BOOL, Param, show_number
from .registry import CODE_POLICY, families

START = "<!-- policy-table -->"
END = "<!-- /policy-table -->"


def _param_text(p: Param) -> str:
    if p.kind == BOOL:
        return f"`{p.name}` (true/false; default {str(bool(p.default)).lower()})"
    if p.high == float("inf"):
        bounds = f">= {show_number(p.low)}"
    else:
        bounds = f"{show_number(p.low)}..{show_number(p.high)}"
    return f"`{p.name}` ({p.unit}; default {show_number(p.default)}; {bounds})"


def markdown_table() -> str:
    """One row per declared policy: family, name, what it does, its parameters, how to choose
    it (flag and bundle key).  Families that accept a code policy get a ``code`` row."""
    rows = ["| family | policy | what it does | parameters | chosen by |",
            "|---|---|---|---|---|"]
    for fam in families():
        where = " / ".join(x for x in (fam.choose or (f"`--{fam.flag}`" if fam.flag else ""),
                                       f"bundle `{'.'.join(fam.bundle)}`" if fam.bundle else "")
                           if x)
        for pol in fam.policies:
            default = " (default)" if pol.name == fam.default else ""
            params = "; ".join(_param_text(p) for p in pol.params) or "—"
            rows.append(f"| {fam.key} | `{pol.name}`{default} | {pol.help} | {params} | {where} |")
        if fam.code_policy is not None:
            rows.append(f"| {fam.key} | `{CODE_POLICY}:PATH` | your rule in a code policy file "
                        f"(see Code policies) | — | {where} |")
    return "\n".join(rows) + "\n"


def replace_table(text: str) -> str:
    """``text`` with the part between the markers replaced by :func:`markdown_table`
    (ValueError if the markers are missing)."""
    i, j = text.find(START), text.find(END)
    if i < 0 or j < i:
        raise ValueError(f"markers {START} ... {END} not found")
    return text[:i + len(START)] + "\n" + markdown_table() + text[j:]


def main(argv=None) -> int:
    """Print the table, or with ``--write FILE`` update FILE's marked section in place."""
    ap = argparse.ArgumentParser(prog="python -m simulator.policies.table")
    ap.add_argument("--write", metavar="FILE", help="update the table between the markers in FILE")
    args = ap.parse_args(argv)
    if args.write is None:
        sys.stdout.write(markdown_table())
        return 0
    path = Path(args.write)
    path.write_text(replace_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
