"""labkit's import graph, read from its source: no cycle, and the lesson depends on the lab, never the reverse.

Every import counts, at module level or inside a function (a lazy import is still a dependency),
except those in an `if TYPE_CHECKING:` block, which never run. Importing `a.b.c` also runs the packages
`a` and `a.b` (their `__init__`), so it depends on them too, unless they are packages of the importer
itself (those have begun to run before it).

    tools/import-graph    prints the graph, as text
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import labkit

PACKAGE = Path(labkit.__file__).resolve().parent
# The lesson, built on the connection (labkit/connection.py): its names, steps, checks, displays, quiz,
# `%%instance`, the Lab that gathers them, and what loads them all (the package, the command).
LESSON = {
    "labkit.catalogue",
    "labkit.solutions",
    "labkit.checks",
    "labkit.display",
    "labkit.quiz",
    "labkit.magic",
    "labkit.lesson",
    "labkit",
    "labkit.cli",
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in `nodes`, at any depth, outside `if TYPE_CHECKING:` blocks."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _import_nodes([child])
                elif isinstance(child, ast.excepthandler):
                    yield from _import_nodes(child.body)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of the package under directory `package` → the package's modules it imports."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(dotted: str) -> str | None:
        """The module `dotted` names, or the nearest package of ours that holds it."""
        while dotted and dotted not in files:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in _import_nodes(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets |= {known(alias.name) for alias in node.names}
                continue
            base = node.module or ""
            if node.level:
                parent = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in files else known(base))
        for target in [t for t in targets if t is not None]:  # a.b.c runs a and a.b first
            parts = target.split(".")
            targets |= {".".join(parts[:n]) for n in range(1, len(parts)) if ".".join(parts[:n]) in files}
        graph[name] = {t for t in targets if t is not None and t != name and not _holds(t, name)}
    return graph


def _holds(package: str, module: str) -> bool:
    """Whether `package` is `module`'s package, or one that holds it (its __init__ runs first)."""
    return module.startswith(package + ".")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it (the first repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def as_text(graph: dict[str, set[str]], prefix: str = "labkit.") -> str:
    """The graph, one module a line: `module → what it imports`, names shortened by `prefix`."""
    short = lambda name: name.removeprefix(prefix) if name != prefix.rstrip(".") else name  # noqa: E731
    return "".join(
        f"{short(module)} → {', '.join(short(t) for t in sorted(graph[module])) or '(nothing of labkit)'}\n"
        for module in sorted(graph)
    )


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that importing `start` may import, directly or not."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_labkit_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert {"labkit.lab", "labkit.lesson", "labkit.checks", "labkit.labprocess.main"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, " → ".join(cycle or [])


def test_the_connection_imports_nothing_of_the_lesson() -> None:
    graph = import_graph(PACKAGE)
    assert reachable(graph, "labkit.connection") & LESSON == set()
    assert {"labkit.connection", "labkit.checks", "labkit.solutions", "labkit.magic"} <= graph["labkit.lesson"]


def test_the_client_imports_nothing_of_the_lab_process() -> None:
    graph = import_graph(PACKAGE)
    client = [m for m in graph if not m.startswith("labkit.labprocess")]
    assert [m for m in client if any(t.startswith("labkit.labprocess") for t in reachable(graph, m))] == []


def write(package: Path, files: dict[str, str]) -> Path:
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(text)
    return package


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    """A positive control: the same reading finds the cycle a lazy import makes, and resolves
    `from pkg import module` and relative imports to the module."""
    package = write(tmp_path / "pkg", {
        "__init__.py": "",
        "conn.py": "import json\n\ndef reset():\n    from pkg import lesson\n    return lesson.STEPS\n",
        "lesson.py": "from .conn import reset\n\nSTEPS = {}\n",
        "names.py": "from pkg.conn import reset as _\n",
    })  # fmt: skip
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.conn": {"pkg.lesson"}, "pkg.lesson": {"pkg.conn"}, "pkg.names": {"pkg.conn"}}
    assert find_cycle(graph) == ["pkg.conn", "pkg.lesson", "pkg.conn"]


def test_an_import_under_type_checking_makes_no_cycle(tmp_path: Path) -> None:
    """A negative control: an import only type checkers see never runs, so it is no dependency."""
    package = write(tmp_path / "pkg", {
        "__init__.py": "",
        "conn.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.lesson import Lab\n",
        "lesson.py": "import typing\n\nfrom pkg import conn\n\nif typing.TYPE_CHECKING:\n    import pkg.conn\n",
    })  # fmt: skip
    graph = import_graph(package)
    assert graph["pkg.conn"] == set() and graph["pkg.lesson"] == {"pkg.conn"}
    assert find_cycle(graph) is None


def test_a_cycle_through_a_packages_init_is_found(tmp_path: Path) -> None:
    """A positive control: `from pkg.fixes.sub import x` runs pkg/fixes/__init__.py first, so a cycle
    that passes through a package's __init__ is found; a package's own modules never cycle through it."""
    package = write(tmp_path / "pkg", {
        "__init__.py": "",
        "keys.py": "",
        "backends.py": "def f():\n    from pkg.fixes.sub import x\n",
        "fixes": "",
    })  # fmt: skip
    (package / "fixes").unlink()
    write(package / "fixes", {
        "__init__.py": "from pkg.fixes import registry\n",
        "registry.py": "from pkg.fixes.sub import x\n",
        "sub.py": "from pkg import keys\n\ndef g():\n    from pkg.backends import f\n",
    })  # fmt: skip
    graph = import_graph(package)
    assert graph["pkg.backends"] == {"pkg.fixes", "pkg.fixes.sub"}
    assert graph["pkg.fixes.registry"] == {"pkg.fixes.sub"}  # not its own package
    assert find_cycle(graph) == ["pkg.backends", "pkg.fixes", "pkg.fixes.registry", "pkg.fixes.sub", "pkg.backends"]


if __name__ == "__main__":  # tools/import-graph
    print(as_text(import_graph(PACKAGE)), end="")
