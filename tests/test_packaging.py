"""environment.yml (conda, Binder), pyproject.toml and constraints.txt describe the same set, and pip
can install that set on every Python the README names: the oldest pyproject.toml admits (Debian 12's
own python3, 3.11.2, in CI) and the newest we name (NEWEST).

The two resolver tests ask the package index (PyPI) and take about 20 s each with pip's cache warm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
NEWEST = "3.13"  # the newest Python the README names, and the newest we resolve the pins for
PIP_PROGRESS = re.compile(  # pip's lines that say what it is doing, left out of a failure's message
    r"\s*(━|Looking in |Downloading |Collecting |Obtaining |Using cached |Processing |WARNING: Location |"
    r"Installing build |Checking if |Getting requirements |Preparing )"
)


def pyproject() -> dict[str, Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {Requirement(r).name: Requirement(r) for r in data["project"]["dependencies"]}


def environment() -> dict[str, Requirement]:
    data = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))
    return {Requirement(r).name: Requirement(r) for r in pip}


def constraints() -> dict[str, str]:
    pins = (line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    return {name.lower(): version for name, version in pins}


def oldest_supported() -> str:
    """The oldest Python that pyproject.toml's requires-python admits, as "3.11"."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    oldest = re.fullmatch(r">=\s*(3\.\d+)", spec)
    assert oldest, f"requires-python is a plain lower bound such as '>=3.11', not {spec!r}"
    return oldest[1]


def test_both_name_the_same_dependencies_with_the_same_extras() -> None:
    assert sorted(environment()) == sorted(pyproject())
    assert {n: r.extras for n, r in environment().items()} == {n: r.extras for n, r in pyproject().items()}


def test_environment_pins_the_tested_versions_that_pyproject_allows() -> None:
    allowed, pinned = pyproject(), constraints()
    for name, requirement in environment().items():
        version = re.fullmatch(r"==(.+)", str(requirement.specifier))
        assert version, f"{name} is pinned in environment.yml"
        assert allowed[name].specifier.contains(version[1]), f"{name} {version[1]} is within pyproject.toml's range"
        assert pinned[name.lower()] == version[1], f"{name} matches constraints.txt"


def test_binder_installs_the_package_after_the_repository_is_copied() -> None:
    post_build = ROOT / "postBuild"
    assert post_build.stat().st_mode & 0o111
    assert "pip install --no-deps -e ." in post_build.read_text()


def test_readme_names_the_pythons_that_pyproject_admits_and_the_suite_resolves_for() -> None:
    quick_start = (ROOT / "README.md").read_text().partition("## Quick start")[2].partition("\n## ")[0]
    named = re.search(r"Python (3\.\d+) to (3\.\d+)\b", quick_start)
    assert named, f"README's quick start names the supported Pythons as 'Python {oldest_supported()} to {NEWEST}'"
    assert (named[1], named[2]) == (oldest_supported(), NEWEST), "README, requires-python and NEWEST agree"


def test_ruff_and_conda_target_the_oldest_supported_python() -> None:
    oldest = oldest_supported()
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["target-version"]
    assert ruff == "py" + oldest.replace(".", ""), "ruff checks the code for the oldest Python we support"
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    assert f"python={oldest}" in conda, "conda and Binder install the oldest Python we support, as tested"


def interpreter(minor: str) -> tuple[Version, Path] | None:
    """The oldest Python `minor` ("3.11") on this machine that runs, with its version; None if there is none.

    Debian's own (/usr/bin) is looked at first, then /usr/local, pyenv's versions and PATH.
    """
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [Path(f"/usr/bin/python{minor}"), Path(f"/usr/local/bin/python{minor}")]
    candidates += sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"))
    if on_path := shutil.which(f"python{minor}"):  # a pyenv shim may be there and refuse to run: tried below
        candidates.append(Path(on_path))
    found: list[tuple[Version, Path]] = []
    for path in candidates:
        try:
            run = subprocess.run(
                [path, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if run.returncode == 0 and run.stdout.startswith(f"{minor}."):
            found.append((Version(run.stdout.strip()), path))
    return min(found, default=None)


@dataclass
class Resolution:
    """pip's resolver deciding what `make test` would install for one Python, running."""

    how: str
    report: Path
    process: subprocess.Popen[str]


def start_resolving(tmp_path: Path, minor: str) -> Resolution:
    """What `make test` would install for Python `minor` (`-c constraints.txt -e '.[test]'`), as pip's
    resolver decides it, installing nothing: started, so that two resolutions wait on the index at once.

    With a real interpreter of that version when the machine has one (its own venv, without pip, so that
    neither python3-venv nor a PEP 668 marker is needed; this pip runs under it with --python). Else
    with --python-version, which checks each package's Requires-Python and wheel tags for that version.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    args = ["install", "--dry-run", "--ignore-installed", "--report", str(report)]
    args += ["-c", "constraints.txt", "-e", ".[test]"]
    found = interpreter(minor)
    if found:
        version, python = found
        venv = tmp_path / "venv"
        subprocess.run([python, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
        command, how = [*pip, "--python", str(venv / "bin" / "python"), *args], f"Python {version} ({python})"
    else:
        target = ["--python-version", minor, "--only-binary=:all:", "--target", str(tmp_path / "target")]
        command, how = [*pip, *args, *target], f"--python-version {minor} (no Python {minor} on this machine)"
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Resolution(how, report, process)


def resolved(resolution: Resolution) -> list[dict[str, Any]]:
    """The report's "install" list, once pip has decided."""
    stdout, stderr = resolution.process.communicate(timeout=600)
    output = [line for line in (stdout + stderr).splitlines() if not PIP_PROGRESS.match(line)]
    unreachable = "NewConnectionError" in stderr or "Temporary failure in name resolution" in stderr
    if resolution.process.returncode and unreachable and not os.environ.get("CI"):
        pytest.skip("the package index is unreachable from here (CI reaches it and runs this test)")
    if resolution.process.returncode != 0:
        tail = "\n".join(output[-20:])
        pytest.fail(
            f"pip cannot install constraints.txt on {resolution.how}. A pin whose Requires-Python excludes that "
            f"Python shows up below as a conflict with that pin; pin the newest release that admits it.\n{tail}"
        )
    return json.loads(resolution.report.read_text())["install"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_the_pins_resolve_on_the_oldest_python_we_support_and_the_newest_we_name(tmp_path: Path) -> None:
    """Both resolutions at once: each mostly waits on the package index."""
    oldest = oldest_supported()
    if os.environ.get("CI"):
        assert interpreter(oldest), f"CI has a real Python {oldest} (Debian 12's /usr/bin/python{oldest})"
    on_oldest, on_newest = start_resolving(tmp_path / "oldest", oldest), start_resolving(tmp_path / "newest", NEWEST)
    try:
        installs = resolved(on_oldest)
        newest = resolved(on_newest)
    finally:
        for running in (on_oldest.process, on_newest.process):
            if running.poll() is None:  # the other one failed first
                running.kill()
    needs_newer = {
        f"{p['metadata']['name']}=={p['metadata']['version']}": p["metadata"].get("requires_python")
        for p in installs
        if not SpecifierSet(p["metadata"].get("requires_python") or "").contains(f"{oldest}.0")
    }
    assert not needs_newer, f"every pin admits Python {oldest}.0, as requires-python says"
    assert {p["metadata"]["name"].lower() for p in newest} >= {"labkit", "moto", "jupyterlab", "pandas"}
