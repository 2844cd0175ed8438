"""environment.yml (conda, Binder), pyproject.toml and constraints.txt describe the same set."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


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
