"""The layer rules of the code base, read from every import statement with ``ast``.

Layers, bottom to top: ``simulator/kernels`` (numba kernels) < ``simulator`` (engine, workload,
policies) < ``blis_evo`` (domain and user surface) < ``search`` (policy search), with the
entry points ``blis_evo.cli`` and ``blis_evo.api`` on top of everything.  A module may import
only from its own layer or below, modules import no cycle of each other, and an import inside a
function (a lazy import) is a deliberate choice with a comment saying why.

Every ``.py`` file under ``simulator/``, ``blis_evo/`` and ``search/`` is parsed; module-level,
conditional (``if TYPE_CHECKING:``) and function-local imports all count, relative imports are
resolved.  ``from pkg import name`` is an import of ``pkg.name`` when that is a module, else of
``pkg``; the implicit import of parent packages is not counted.
"""
from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simulator", "blis_evo", "search")
KERNELS = "simulator.kernels"
ENTRY_POINTS = frozenset({"blis_evo.cli", "blis_evo.api"})
"""The top of the stack: the CLI and the Python API may import every layer."""
HEAVY_LIBRARIES = frozenset({"ray", "deap", "matplotlib", "tqdm", "openevolve", "gepa",
                             "aiohttp", "openai", "numba", "scipy", "pandas"})
"""Third-party packages slow enough to import that a lazy import of them is worth a comment."""


@dataclass(frozen=True)
class ImportEdge:
    """One imported module: ``source`` imports ``target`` at ``path:line``.

    ``target`` is a project module when ``project`` is true, else the imported module's dotted
    name as written.  ``local``: the import runs inside a function.  ``commented``: a comment
    sits on one of its lines or on a comment line just above it, or it continues a block of
    imports whose first one is commented."""

    source: str
    target: str
    path: str
    line: int
    project: bool
    local: bool
    commented: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of a source file under ``root`` (a package's ``__init__.py`` is the
    package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Every module of the project's packages: dotted name -> source file."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            out[module_name(path, root)] = path
    return out


def _comment_lines(source: str) -> tuple[set[int], set[int]]:
    """Line numbers holding a comment, and those holding nothing but a comment."""
    any_comment, only_comment = set(), set()
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            any_comment.add(row)
            if lines[row - 1].lstrip().startswith("#"):
                only_comment.add(row)
    return any_comment, only_comment


def read_imports(name: str, path: Path, modules: dict[str, Path], root: Path) -> list[ImportEdge]:
    """The imports of one module, each resolved to the module it loads (see the module doc)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    any_comment, only_comment = _comment_lines(source)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    rel = path.relative_to(root).as_posix()
    edges: list[ImportEdge] = []

    commented_ends: set[int] = set()  # last lines of commented import statements

    def add(node: ast.AST, target: str, local: bool) -> None:
        end = node.end_lineno or node.lineno
        commented = (any(n in any_comment for n in range(node.lineno, end + 1))
                     or (node.lineno - 1) in only_comment or (node.lineno - 1) in commented_ends)
        if commented:
            commented_ends.add(end)
        project = target.split(".")[0] in PACKAGES and target in modules
        if edges and (edges[-1].target, edges[-1].line) == (target, node.lineno):
            return  # one edge per imported module per statement
        edges.append(ImportEdge(name, target, rel, node.lineno, project, local, commented))

    def visit(node: ast.AST, local: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name, local)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                add(node, sub if sub in modules else mod, local)
        inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return edges


def project_imports(root: Path = REPO_ROOT) -> list[ImportEdge]:
    """Every import statement of every project module, in file and line order."""
    modules = project_modules(root)
    return [e for name, path in modules.items() for e in read_imports(name, path, modules, root)]


def import_graph(edges) -> dict[str, set[str]]:
    """Module -> the project modules it imports (every project module is a node)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set())
        if e.project:
            graph[e.source].add(e.target)
            graph.setdefault(e.target, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one
    module, or of one module that imports itself; each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        # iterative Tarjan: (node, iterator over its successors)
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, succ = work[-1]
            advanced = False
            for nxt in succ:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    found.append(sorted(comp))
    return sorted(found)


def in_layer(module: str, layer: str) -> bool:
    """Whether ``module`` is ``layer`` or lies inside it."""
    return module == layer or module.startswith(layer + ".")


def forbidden_imports(edges, importers: str, forbidden: tuple[str, ...],
                      exempt=frozenset()) -> list[ImportEdge]:
    """The imports by modules of layer ``importers`` (less ``exempt``) of a ``forbidden`` layer."""
    return [e for e in edges
            if e.project and in_layer(e.source, importers) and e.source not in exempt
            and any(in_layer(e.target, f) for f in forbidden)]


def kernel_escapes(edges) -> list[ImportEdge]:
    """Imports by the kernels of any project module outside the kernels."""
    return [e for e in edges
            if e.project and in_layer(e.source, KERNELS) and not in_layer(e.target, KERNELS)]


def unresolved_imports(edges) -> list[ImportEdge]:
    """Imports naming a module of a project package that does not exist (a stale path)."""
    return [e for e in edges if not e.project and e.target.split(".")[0] in PACKAGES]


def uncommented_lazy_imports(edges) -> list[ImportEdge]:
    """Function-local imports of a project module or a heavy library without a comment."""
    return [e for e in edges
            if e.local and not e.commented
            and (e.project or e.target.split(".")[0] in HEAVY_LIBRARIES)]


def _require_none(found: list, what: str) -> None:
    """Fail with one line per finding (import edges, or cycles as their modules)."""
    if found:
        lines = [" <-> ".join(f) if isinstance(f, list) else str(f) for f in found]
        pytest.fail(f"{len(found)} {what}:\n" + "\n".join(lines), pytrace=False)


# ---------------------------------------------------------------------------------------------
# The rules, on the project
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> list[ImportEdge]:
    return project_imports()


def test_every_package_is_read(edges):
    sources = {e.source.split(".")[0] for e in edges}
    assert sources == set(PACKAGES)


def test_kernels_import_only_kernels(edges):
    bad = kernel_escapes(edges)
    _require_none(bad, "kernel imports leave simulator/kernels")


def test_simulator_imports_neither_blis_evo_nor_search(edges):
    bad = forbidden_imports(edges, "simulator", ("blis_evo", "search"))
    _require_none(bad, "simulator imports of blis_evo or search")


def test_blis_evo_imports_search_only_in_entry_points(edges):
    bad = forbidden_imports(edges, "blis_evo", ("search",), exempt=ENTRY_POINTS)
    _require_none(bad, "blis_evo imports of search outside the entry points")


def test_project_imports_resolve(edges):
    _require_none(unresolved_imports(edges), "imports of project modules that do not exist")


def test_no_import_cycles(edges):
    found = cycles(import_graph(edges))
    _require_none(found, "import cycles")


def test_lazy_imports_say_why(edges):
    bad = uncommented_lazy_imports(edges)
    _require_none(bad, "function-local imports without a comment saying why they are lazy")


# ---------------------------------------------------------------------------------------------
# The checker itself, on synthetic code
# ---------------------------------------------------------------------------------------------


def test_cycles_on_a_synthetic_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": {"f"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"], ["d"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_read_imports_resolves_and_flags(tmp_path):
    _write(tmp_path, "simulator/__init__.py", "")
    _write(tmp_path, "simulator/kernels/__init__.py", "")
    _write(tmp_path, "simulator/kernels/k.py", "from .. import codes\nfrom . import j\n")
    _write(tmp_path, "simulator/kernels/j.py", "")
    _write(tmp_path, "simulator/codes.py", "import blis_evo.x\n")
    _write(tmp_path, "blis_evo/__init__.py", "")
    _write(tmp_path, "blis_evo/x.py",
           "from simulator import codes, VALUE\n"
           "def f():\n"
           "    import ray\n"
           "    # lazy: keeps search out of start-up\n"
           "    from search import s\n"
           "    import deap\n"
           "    import json\n"
           "    from ..search.s import thing  # a comment\n")
    _write(tmp_path, "blis_evo/cli.py", "import search.s\n")
    _write(tmp_path, "search/__init__.py", "")
    _write(tmp_path, "search/s.py", "from blis_evo import x\n")
    modules = project_modules(tmp_path)
    edges = [e for n, p in modules.items() for e in read_imports(n, p, modules, tmp_path)]
    got = {(e.source, e.target, e.local, e.commented) for e in edges}
    assert ("simulator.kernels.k", "simulator.codes", False, False) in got
    assert ("simulator.kernels.k", "simulator.kernels.j", False, False) in got
    assert ("blis_evo.x", "simulator.codes", False, False) in got
    assert ("blis_evo.x", "simulator", False, False) in got          # VALUE is no module
    assert ("blis_evo.x", "ray", True, False) in got
    assert ("blis_evo.x", "search.s", True, True) in got
    assert ("blis_evo.x", "deap", True, True) in got                  # same commented block
    assert [str(e) for e in kernel_escapes(edges)] == [
        "simulator/kernels/k.py:1: simulator.kernels.k imports simulator.codes"]
    assert [e.source for e in forbidden_imports(edges, "simulator", ("blis_evo", "search"))] \
        == ["simulator.codes"]
    assert {e.source for e in forbidden_imports(edges, "blis_evo", ("search",),
                                                exempt=ENTRY_POINTS)} == {"blis_evo.x"}
    assert [(e.target, e.line) for e in uncommented_lazy_imports(edges)] == [("ray", 3)]
    assert unresolved_imports(edges) == []
    assert cycles(import_graph(edges)) == [["blis_evo.x", "search.s", "simulator.codes"]]
    _write(tmp_path, "search/t.py", "from .gone import x\nfrom search import s, u\n")
    modules = project_modules(tmp_path)
    edges = read_imports("search.t", modules["search.t"], modules, tmp_path)
    assert [(e.target, e.project) for e in edges] == [("search.gone", False), ("search.s", True),
                                                      ("search", True)]
    assert [e.target for e in unresolved_imports(edges)] == ["search.gone"]
