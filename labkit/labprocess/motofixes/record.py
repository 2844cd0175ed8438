"""What a record of the registry holds (Fix), what it changes (Target), and the line that says
one cannot be applied. See labkit/labprocess/motofixes/__init__.py.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LAB: str = "lab process"  # where a fix is applied: the lab process
CLI: str = "warm aws"  # or the warm aws server (cliserver.py)
CHECKED = {"moto": "5.2.5", "botocore": "1.44.8", "awscli": "1.46.3"}  # the pins of constraints.txt
ALONE = "tests/test_motofixes.py::test_the_dependency_alone_still_does_the_old_thing"  # one case per record


@dataclass(frozen=True)
class Target:
    """What a fix changes or relies on: `module` (imported to check it), a dotted `attribute` in it,
    and the `parameters` its signature must have, in this order (others may come between)."""

    module: str
    attribute: str
    parameters: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.module}.{self.attribute}"

    def problem(self) -> str:
        """'' when the target is there as expected, else what is wrong, in a few words."""
        try:
            found: Any = importlib.import_module(self.module)
        except ImportError:
            return f"{self} is gone (no module {self.module})"
        for part in self.attribute.split("."):
            try:
                found = getattr(found, part)
            except AttributeError:
                return f"{self} is gone"
        if self.parameters:
            try:
                names = list(inspect.signature(found).parameters)
            except (TypeError, ValueError):
                return f"{self} has no signature to check"
            remaining = iter(names)
            if not all(name in remaining for name in self.parameters):
                return f"{self} takes ({', '.join(names)}), not ({', '.join(self.parameters)}, …)"
        return ""


@dataclass(frozen=True)
class Fix:
    """One change to a dependency, and why (see the module docstring)."""

    name: str
    kind: str
    aws: str  # what AWS does (or, for speed and memory, what the lab needs)
    dependency: str  # what the dependency does instead
    targets: tuple[Target, ...]
    apply: Callable[[], None] | None  # None: its code runs where `where` says
    proved_by: tuple[str, ...]  # the tests that the lab does what AWS does
    required: bool = False
    seam: str = ""  # how `apply` changes the dependency: a backend subclass, the middleware, or `setattr: why`
    processes: tuple[str, ...] = (LAB,)
    early: bool = False  # applied before anything else: before moto's EC2 models are imported
    where: str = ""  # `module.attribute` under labkit.labprocess, several joined by " and "
    upstream: str = ""  # fidelity: what to send to the dependency's maintainers

    @property
    def alone(self) -> str:
        """The test that the dependency alone still does the old thing: ALONE's case of this record."""
        return f"{ALONE}[{self.name}]"

    @property
    def checked(self) -> dict[str, str]:
        """The versions of the dependencies this record was checked against: CHECKED, for every record."""
        return dict(CHECKED)

    @property
    def places(self) -> tuple[str, ...]:
        """What `where` names, each a dotted name under labkit.labprocess."""
        return tuple(place.strip() for place in self.where.split(" and ") if place.strip())

    @property
    def package(self) -> str:
        return self.targets[0].module.split(".")[0]

    def problems(self) -> list[str]:
        return [problem for target in self.targets if (problem := target.problem())]


class RequiredFixMissing(RuntimeError):
    """A required fix cannot be applied to the installed dependency; the message is one line."""


def installed_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def not_applied(fix: Fix, problems: list[str], process: str) -> str:
    """The one line that says a fix could not be applied, and what follows from it."""
    package = fix.package
    said = (
        f"fix {fix.name} cannot be applied: {'; '.join(problems)} in {package} {installed_version(package)} "
        f"(checked against {package} {fix.checked.get(package, '?')})"
    )
    if not fix.required:
        return f"labkit: {said}; running without it."
    if process == CLI:
        return f"labkit: the warm aws cannot start: {said}; instances run the plain aws CLI."
    return (
        f"labkit: the lab cannot start: {said}, and the lesson needs it; "
        "install the tested versions: pip install -c constraints.txt -e ."
    )
