"""The test suite itself: its quick part (`make test-fast`) is big enough to be worth running, every
marker it uses is registered (pyproject.toml), and no test reaches into a private name of labkit."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUICK = "not slow and not browser and not hub"  # what `make test-fast` selects (Makefile)
# every test module and conftest, but this one: its check's own test names private names on purpose
SOURCES = sorted({*REPO.glob("tests/*.py"), REPO / "conftest.py"} - {Path(__file__).resolve()})


def registered_markers() -> set[str]:
    """The markers pyproject.toml registers (`name: meaning`)."""
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return {line.split(":", 1)[0].split("(", 1)[0].strip() for line in options["markers"]}


def test_make_test_fast_runs_the_quick_part_of_the_suite() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(rf'^test-fast:.*\n\t.* -m "{QUICK}" tests\n', makefile, re.M), "make test-fast"
    assert re.search(r"^\.PHONY:.* test-fast\b", makefile, re.M)
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", QUICK, "tests"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout + collected.stderr
    selected = [line for line in collected.stdout.splitlines() if "::" in line]
    assert len(selected) >= 150, f"make test-fast selects only {len(selected)} tests"
    for left_out in (  # one test of each kind the quick part leaves out
        "tests/test_browser.py::test_the_attach_the_role_notebook_runs_in_jupyterlab",  # browser
        "tests/test_classroom.py::test_students_are_refused_the_page_and_each_others_labs",  # hub
        "tests/test_shared_install.py::test_install_links_labkit_into_bindir",  # slow
    ):
        assert left_out not in selected


def test_every_marker_the_tests_use_is_registered() -> None:
    builtin = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}
    used: dict[str, list[str]] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            # pytest.mark.NAME, as a decorator, in pytestmark, or called
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                owner = node.value
                if owner.attr == "mark" and isinstance(owner.value, ast.Name) and owner.value.id == "pytest":
                    used.setdefault(node.attr, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    registered = registered_markers()
    assert {"slow", "browser", "root", "hub"} <= registered
    assert {name: where for name, where in used.items() if name not in registered | builtin} == {}
    assert (
        "--strict-markers"
        in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    )


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_labkit_module(name: str) -> bool:
    if name != "labkit" and not name.startswith("labkit."):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def private_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Where a module's code names a private labkit name: `from labkit.x import _y`, and `m._y` where
    `m` is (an alias of) a labkit module, or a labkit module reached from one (`labkit.x._y`)."""
    modules: dict[str, str] = {}  # a name bound in this code → the labkit module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_labkit_module(alias.name):
                    if alias.asname:
                        modules[alias.asname] = alias.name
                    else:
                        modules[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and is_labkit_module(node.module):
            for alias in node.names:
                if is_private(alias.name):
                    yield node.lineno, f"{node.module}.{alias.name}"
                elif is_labkit_module(f"{node.module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def module_of(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return modules.get(node.id)
        if isinstance(node, ast.Attribute) and (owner := module_of(node.value)):
            return f"{owner}.{node.attr}" if is_labkit_module(f"{owner}.{node.attr}") else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and (owner := module_of(node.value)):
            yield node.lineno, f"{owner}.{node.attr}"
        # a script the test runs in another Python (python -c "..."): the same rule holds there
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "labkit" in node.value:
            try:
                script = ast.parse(textwrap.dedent(node.value))
            except SyntaxError:
                continue
            for line, name in private_uses(script):
                yield node.lineno + line - 1, name


def test_no_test_reaches_into_a_private_name_of_labkit() -> None:
    """A test uses what the user uses, or the public API of a small module: never `_name`."""
    found = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in SOURCES
        for line, name in sorted(set(private_uses(ast.parse(path.read_text()))))
    ]
    assert found == []


def test_the_private_name_check_sees_each_way_to_reach_one() -> None:
    code = textwrap.dedent('''
        import labkit
        import labkit.lab as L
        from labkit import instances
        from labkit.lab import _lab_process_env, connect
        labkit.lab._answers(None)
        L._start
        instances._entry
        labkit.connect  # public
        connect._x  # not a module
        subprocess.run(["python", "-c", "import labkit.statedir\\nlabkit.statedir._hidden"])
    ''')  # fmt: skip
    assert [name for _, name in sorted(private_uses(ast.parse(code)))] == [
        "labkit.lab._lab_process_env",
        "labkit.lab._answers",
        "labkit.lab._start",
        "labkit.instances._entry",
        "labkit.statedir._hidden",
    ]
