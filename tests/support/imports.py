"""The import graph of a package, read from its sources with ``ast`` (nothing is imported or run).

An import counts wherever it stands: at the top of a module, inside a
function, under ``try``. Only the imports under ``if TYPE_CHECKING:`` are
told apart: they never run, so they cannot make an import cycle, but they
still say what a module knows of, so the layer order counts them.

Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``:
those packages count as imported too, except the importer's own packages
(already being imported when it runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One module naming another of the packages read."""

    source: str
    target: str
    line: int
    #: The name taken (``from target import name``), or the module itself for ``import target``.
    name: str
    #: Under ``if TYPE_CHECKING:``: never run.
    typing_only: bool


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of ``packages`` (folders below ``root``), by dotted name; a package by its own name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(root: Path, packages: Iterable[str]) -> list[Import]:
    """Every import from a module of ``packages`` to another module of them."""
    known = modules(root, packages)
    found: list[Import] = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        found += _imports_of(name, is_package, tree, known)
    return found


def _imports_of(module: str, is_package: bool, tree: ast.Module, known: dict[str, Path]) -> Iterator[Import]:
    for node, typing_only in _import_statements(tree, False):
        if isinstance(node, ast.Import):
            named = [(alias.name, alias.name) for alias in node.names]
        else:
            base = _absolute(module, is_package, node.level, node.module)
            named = [
                (f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base, alias.name)
                for alias in node.names
            ]
        targets = [
            (target, name) for dotted, name in named if (target := _known_prefix(dotted, known)) not in (None, module)
        ]
        implied = dict.fromkeys(package for target, _ in targets for package in _packages_run(module, target))
        for package in implied:
            yield Import(module, package, node.lineno, package, typing_only)
        for target, name in targets:
            yield Import(module, target, node.lineno, name, typing_only)


def _import_statements(node: ast.AST, typing_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """The import statements in ``node`` at any depth, each with whether it stands under ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, typing_only
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for statement in node.body:
            yield from _import_statements(statement, True)
        for statement in node.orelse:
            yield from _import_statements(statement, typing_only)
    else:
        for child in ast.iter_child_nodes(node):
            yield from _import_statements(child, typing_only)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The dotted name a ``from`` import names (``from ..x import y`` in ``a.b.c`` names ``a.x``)."""
    if not level:
        return name or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def _known_prefix(dotted: str, known: dict[str, Path]) -> str | None:
    """The longest module of ``known`` that ``dotted`` is or lies in (``a.b.Name`` -> ``a.b``)."""
    while dotted:
        if dotted in known:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def _packages_run(importer: str, target: str) -> list[str]:
    """The packages above ``target`` that importing it runs first, less the importer's own."""
    own = {importer.rsplit(".", n)[0] for n in range(importer.count(".") + 1)}
    parts = target.split(".")
    return [p for p in (".".join(parts[:n]) for n in range(1, len(parts))) if p not in own]


def cycles(found: Iterable[Import]) -> list[list[str]]:
    """The import cycles (modules that reach each other, typing-only imports aside), each sorted, largest first."""
    graph = _run_time_graph(found)
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        order[node] = low[node] = len(order)
        stack.append(node)
        for child in sorted(graph[node]):
            if child not in order:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], order[child])
        if low[node] == order[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return sorted(components, key=lambda c: (-len(c), c))


def _run_time_graph(found: Iterable[Import]) -> dict[str, set[str]]:
    """Module -> the modules it imports when it runs (every module named, the typing-only imports left out)."""
    graph: dict[str, set[str]] = {}
    for edge in found:
        if not edge.typing_only:
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    return graph


def package_of(module: str, path: Path) -> str:
    """The package a module belongs to: itself for a package's ``__init__.py``, else its parent."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]
