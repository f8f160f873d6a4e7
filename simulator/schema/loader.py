"""The one strict YAML loader of every input file (workload spec, policy bundle, experiment,
jobs file, ...).

Strict means: duplicate mapping keys are rejected with their line (PyYAML silently keeps the
last one, the reference's YAML library rejects them); a mapping key must be a plain value; the
file holds exactly one document.  Floats follow YAML 1.2 (``1e3`` is the number 1000.0, not the
string PyYAML 1.1 makes of it).  Every problem is one :class:`~simulator.errors.InputError`
line naming the source and the line.  PyYAML is imported at module level: importing
``simulator`` loads it anyway, so a function-local import would save no start-up time.
"""
from __future__ import annotations

import functools
import re
from typing import Any

import yaml

from simulator.errors import InputError, one_line

_YAML12_FLOAT = r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"


class _KeyProblem(Exception):
    """Raised inside the loader for a duplicate or unusable key; becomes an InputError."""

    def __init__(self, problem: str, line: int):
        super().__init__(problem)
        self.problem, self.line = problem, line


@functools.lru_cache(maxsize=1)
def strict_loader():
    """The loader class: a ``yaml.SafeLoader`` subclass with the checks above (built once)."""
    class StrictLoader(yaml.SafeLoader):
        pass

    # own copies of the resolver lists: add_implicit_resolver appends to them in place
    StrictLoader.yaml_implicit_resolvers = {
        k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_YAML12_FLOAT),
                                       list("-+0123456789"))

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":   # "<<": merged keys may be overridden
                continue
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key is not None and not isinstance(key, (str, int, float, bool)):
                raise _KeyProblem(f"a mapping key must be a plain value, got {type(key).__name__}",
                                  line)
            if key in seen:
                raise _KeyProblem(f"duplicate key {key!r}", line)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def load_yaml(text: str, source: str, what: str = "document") -> Any:
    """Parse ``text`` (one YAML document) with the strict loader and return it.

    ``source`` starts every error message (a file name, or e.g. ``policy-config p.yaml``);
    ``what`` names the expected content in the empty-file message.  Raises InputError:
    ``<source>: invalid YAML at line L, column C: <problem>``, ``<source>: duplicate key 'k' at
    line L``, ``<source>: file is empty (expected a(n) <what>)``, ``<source>: expected one YAML
    document, found N``.
    """
    try:
        docs = list(yaml.load_all(text, Loader=strict_loader()))  # noqa: S506 (a SafeLoader)
    except _KeyProblem as e:
        raise InputError(f"{source}: {e.problem} at line {e.line}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = " ".join(x for x in (e.context, e.problem) if x) or str(e)
        raise InputError(one_line(f"{source}: invalid YAML{where}: {detail}")) from None
    except yaml.YAMLError as e:
        raise InputError(one_line(f"{source}: invalid YAML: {e}")) from None
    if not docs or docs == [None]:
        article = "an" if what[:1].lower() in "aeiou" else "a"
        raise InputError(f"{source}: file is empty (expected {article} {what})")
    if len(docs) > 1:
        raise InputError(f"{source}: expected one YAML document, found {len(docs)}")
    return docs[0]


def read_yaml(path: str, what: str, source: str | None = None) -> Any:
    """Read the file ``path`` and :func:`load_yaml` it (``source`` defaults to ``path``).

    An unreadable or non-UTF-8 file is the InputError ``cannot read <what> '<path>': <reason>``.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"cannot read {what} {path!r}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise InputError(f"cannot read {what} {path!r}: not UTF-8 text") from None
    return load_yaml(text, path if source is None else source, what)
