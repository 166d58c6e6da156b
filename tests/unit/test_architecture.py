"""The package's structure rules, checked on every run (docs/architecture.rst explains them).

* No import cycles among trio_brod's modules, ``TYPE_CHECKING`` imports included: a cycle
  means two modules are not layered, even when Python happens to import them.
* Hand-written modules stay under 800 lines (generated code and the C source aside): a
  module that grows past that does two jobs and should be split.
* Workers (producers, consumers, group members) depend on the connection pool and the
  metadata cache, never on the client that composes them.

Private reach-ins (ruff's SLF001) are checked by ``nox -s lint``, which selects that rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import trio_brod

PACKAGE = Path(trio_brod.__file__).parent
GENERATED = ("protocol/_gen/",)
#: Generated tables inside hand-written modules: one entry per Kafka error code.
SIZE_EXEMPT = {"protocol/errors.py"}
MAX_LINES = 800


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(GENERATED):
            continue
        parts = ["trio_brod", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The trio_brod modules ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # "from pkg import mod" names the module pkg.mod when there is one, else a
            # name defined in pkg.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def extension_modules() -> set[str]:
    """Compiled modules (named by their .pyi stubs): imported, but with no imports of their own."""
    return {
        ".".join(["trio_brod", *path.relative_to(PACKAGE).with_suffix("").parts])
        for path in PACKAGE.rglob("*.pyi")
    }


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found) | extension_modules() | {"trio_brod.protocol._gen"}
    return {
        name: {target for target in imported(name, path, known) if target in found}
        for name, path in found.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_among_trio_brod_modules() -> None:
    # Packages importing their own submodules (an __init__ re-exporting) are not cycles
    # unless a submodule imports the package back.
    graph = import_graph()
    assert cycles(graph) == []


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in modules()
        if n.startswith(("trio_brod.producer", "trio_brod.consumer", "trio_brod.groups"))
    ],
)
def test_workers_do_not_depend_on_the_client(name: str) -> None:
    graph = import_graph()
    assert "trio_brod.client" not in graph[name]
    assert "trio_brod" not in graph[name]  # the package's __init__ imports the client


def test_modules_stay_under_800_lines() -> None:
    oversized = {}
    for name, path in modules().items():
        relative = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if relative not in SIZE_EXEMPT and lines > MAX_LINES:
            oversized[name] = lines
    assert oversized == {}
