"""The import structure of ``src/aiodepot``: no import cycles, no reaching into another module's private names.

The graph is built with `ast` from every module of the package: imports at module level *and* inside
functions (a lazy import still couples the two modules, and still makes a cycle), but not those in an
``if TYPE_CHECKING:`` block (they never run). A ``from package import name`` where ``name`` is a submodule
counts as an import of that submodule, and importing ``a.b.c`` also imports the packages ``a`` and ``a.b``
(Python runs their ``__init__``) — except a package's own ``__init__`` importing its submodules, which is
how a package re-exports, not a cycle.

The privacy rule: a module may not import a ``_private`` name (or a ``_private`` module) of another
aiodepot module, with one exception: a module whose file name starts with ``_`` (``_threads.py``,
``backends/_base.py``) is private to its *package*, and the modules of that package (and of its
subpackages) may import its public names. Shared helpers belong in a properly named module, public there.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "aiodepot"

# Known violations inside src/aiodepot/backends/, left to the backend restructuring (issue 17, part 4):
# (importer, imported module, private name). None today; keep it that way.
KNOWN_BACKEND_PRIVATE_IMPORTS: frozenset[tuple[str, str, str]] = frozenset()
KNOWN_BACKEND_CYCLES: frozenset[frozenset[str]] = frozenset()

# The borgstore drop-in keeps borgstore's own module paths, and there ``borgstore.backends._base`` is what
# borgstore's store and users import (``BackendBase``, ``ItemInfo``): a public path under a private name.
BORGSTORE_LAYOUT = {"aiodepot.compat.borgstore.backends._base", "aiodepot.compat.borgstore.backends._utils"}
"""Modules whose private names are borgstore's layout, importable anywhere in the drop-in."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _type_checking_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, outside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_block(node):
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _import_nodes(node)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _with_parents(target: str) -> Iterator[str]:
    parts = target.split(".")
    for end in range(1, len(parts) + 1):
        name = ".".join(parts[:end])
        if name in MODULES:
            yield name


def _imports(module: str) -> Iterator[tuple[str, str | None]]:
    """``(imported module, imported name or None)`` for every import of ``module`` within the package."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield from ((target, None) for target in _with_parents(alias.name))
            continue
        source = _resolve(module, node)
        if source.split(".")[0] != PACKAGE:
            continue
        yield from ((target, None) for target in _with_parents(source))
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in MODULES:
                yield from ((target, None) for target in _with_parents(submodule))
            else:
                yield source, alias.name


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for target, _ in _imports(module):
            # a package's __init__ importing its own submodules re-exports them (see the module docstring)
            own_submodule = _is_package(module) and target.startswith(module + ".")
            if target != module and not own_submodule:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _private_module_allowed(importer: str, target: str) -> bool:
    """A ``_module`` is importable from its own package (and the packages below it)."""
    if target in BORGSTORE_LAYOUT:
        return importer.startswith("aiodepot.compat.borgstore")
    package = target.rpartition(".")[0]
    return importer == package or importer.startswith(package + ".")


def _private_imports() -> set[tuple[str, str, str]]:
    found = set()
    for module in MODULES:
        for target, name in _imports(module):
            if target == module:
                continue
            for part in target.split(".")[1:]:
                if part.startswith("_") and part != "__init__" and not _private_module_allowed(module, target):
                    found.add((module, target, part))
                    break
            if name is not None and name.startswith("_") and not name.startswith("__"):
                found.add((module, target, name))
    return found


def test_the_graph_sees_lazy_imports_and_skips_type_checking() -> None:
    graph = _graph()
    assert "aiodepot.store" in graph["aiodepot.sync"]  # module level
    assert "aiodepot.mapping" in graph["aiodepot.sync"]  # function level (SyncStore.mapping)
    assert "aiodepot.store" not in graph["aiodepot.mapping"]  # only under TYPE_CHECKING


def test_no_import_cycles() -> None:
    cycles = [cycle for cycle in _cycles(_graph()) if frozenset(cycle) not in KNOWN_BACKEND_CYCLES]
    assert cycles == []


def test_no_imports_of_private_names_of_other_modules() -> None:
    assert sorted(_private_imports() - KNOWN_BACKEND_PRIVATE_IMPORTS) == []


def test_known_violations_are_still_there() -> None:
    """An allowance that is no longer needed goes, so it cannot hide a new violation later."""
    assert _private_imports() >= KNOWN_BACKEND_PRIVATE_IMPORTS
    cycles = {frozenset(cycle) for cycle in _cycles(_graph())}
    assert cycles >= KNOWN_BACKEND_CYCLES
