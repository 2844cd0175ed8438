"""tools/mutations cannot be fooled: a breakage counts as caught only when its tests fail on an
assertion and pass without it, in the same run; a Python without the project's dependencies is refused.

Each case is a small tree of its own (a module, a test), run through the tool's own verdict.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

ROOT = Path(__file__).resolve().parent.parent


def the_tool() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("mutations_tool", str(ROOT / "tools" / "mutations"))
    spec = importlib.util.spec_from_loader("mutations_tool", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutations_tool"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


TOOL = the_tool()
MODULE = "def double(x):\n    return 2 * x\n"
TESTS = {
    "asserts": "from mod import double\n\ndef test_it():\n    assert double(2) == 4\n",
    "times_out": "from mod import double\n\ndef test_it():\n    if double(2) != 4:\n        raise TimeoutError()\n",
    "raises": "import pytest\nfrom mod import double\n\ndef test_it():\n    with pytest.raises(ZeroDivisionError):\n"
    "        1 / (double(2) - 4)\n",
    "always_fails": "def test_it():\n    assert False, 'broken without any breakage'\n",
}
BREAKAGES = {
    "caught": ("return 2 * x", "return 3 * x"),  # double(2) == 6: an assertion fails
    "import": ("return 2 * x", "return 2 *"),  # a syntax error: the test cannot even import
    "nothing": ("def double(x):", "def double(x):  # a comment"),  # the tests still pass
}


def tree_with(tmp_path: Path, test: str) -> Path:
    (tmp_path / "mod.py").write_text(MODULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mod.py").write_text(TESTS[test])
    return tmp_path


def verdict(tmp_path: Path, test: str, breakage: str) -> tuple[str, str]:
    tree = tree_with(tmp_path, test)
    mutation = TOOL.Mutation(breakage, "a breakage", "mod.py", (BREAKAGES[breakage],), ("tests/test_mod.py::test_it",))
    return TOOL.verdict(mutation, tree)


def test_a_breakage_an_assertion_catches_is_caught(tmp_path: Path) -> None:
    assert verdict(tmp_path, "asserts", "caught") == ("caught", "1 test failed on an assertion; control passed")


def test_pytest_raises_that_did_not_raise_is_an_assertion_in_pytests_words(tmp_path: Path) -> None:
    assert verdict(tmp_path, "raises", "caught") == ("caught", "1 test failed on an assertion; control passed")


def test_a_breakage_that_stops_the_tests_importing_is_an_error_not_a_catch(tmp_path: Path) -> None:
    said, why = verdict(tmp_path, "asserts", "import")
    assert (said, why) == (
        "ERROR",
        "tests/test_mod.py::test_it: error: collecting tests/test_mod.py failed, not an assertion about the breakage",
    )


def test_a_test_that_fails_on_something_else_than_an_assertion_is_an_error(tmp_path: Path) -> None:
    said, why = verdict(tmp_path, "times_out", "caught")
    assert (said, why) == (
        "ERROR",
        "tests/test_mod.py::test_it: failed on TimeoutError, not an assertion about the breakage",
    )


def test_a_test_that_fails_unbroken_is_an_error_of_its_control(tmp_path: Path) -> None:
    said, why = verdict(tmp_path, "always_fails", "caught")
    assert (said, why) == ("ERROR", "control: tests/test_mod.py::test_it assertion without the breakage")


def test_a_breakage_the_tests_pass_with_survives(tmp_path: Path) -> None:
    assert verdict(tmp_path, "asserts", "nothing") == (
        "SURVIVED",
        "tests/test_mod.py::test_it passed with the breakage",
    )


def test_a_named_test_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "asserts")
    mutation = TOOL.Mutation("x", "a breakage", "mod.py", (BREAKAGES["caught"],), ("tests/test_mod.py::test_gone",))
    said, why = TOOL.verdict(mutation, tree)
    assert (said, why) == ("ERROR", "control: tests/test_mod.py::test_gone not run (no such test) without the breakage")


def test_every_mutation_still_applies_and_names_tests_that_exist(tmp_path: Path) -> None:
    """Each breakage can still be made in today's code (its text occurs once), and every test the
    mutations name is one pytest collects (a parametrized one named without parameters: all of them)."""
    for chosen in TOOL.MUTATIONS:
        target = tmp_path / chosen.name / chosen.path
        target.parent.mkdir(parents=True)
        target.write_text((ROOT / chosen.path).read_text())
        assert TOOL.apply(chosen, tmp_path / chosen.name) is None, chosen.name
        assert target.read_text() != (ROOT / chosen.path).read_text()
    named = sorted({test for m in TOOL.MUTATIONS for test in m.tests})
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:nbval", "--collect-only", "-q", *named],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    collected = {line.split("[")[0] for line in listed.stdout.splitlines() if "::" in line}
    collected |= {line for line in listed.stdout.splitlines() if "::" in line}
    assert [test for test in named if test not in collected] == []


def test_a_python_without_the_projects_dependencies_is_refused(tmp_path: Path) -> None:
    bare = subprocess.run(["/usr/bin/python3", "-c", "import moto"], capture_output=True)
    assert bare.returncode != 0  # the control: Debian's Python lacks the project's dependencies
    done = subprocess.run(["/usr/bin/python3", str(ROOT / "tools" / "mutations")], capture_output=True, text=True)
    assert done.returncode == 2, done
    assert done.stderr.startswith("tools/mutations: /usr/bin/python3 lacks the project's dependencies (labkit, moto"), (
        done
    )
    assert done.stderr.rstrip().endswith("run `make mutations`."), done
