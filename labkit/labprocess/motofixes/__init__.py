"""Every change the lab makes to moto, botocore and awscli: one record each, in `REGISTRY`.

A record says what AWS does, what the dependency does instead, the versions it was checked against
(`CHECKED`, the pins of constraints.txt), whether the lesson needs it (`required`), what it changes
(`targets`: module, attribute, and the parameters it relies on), how it is applied, and its two
paired tests: one that the dependency alone still behaves the old way (so that an upstream fix
announces itself), one that the lab behaves as AWS does.

    apply(LAB)   in the lab process, after configure_moto(), before moto's server is made
    apply(CLI)   in the warm `aws` server (cliserver.py), after awscli is imported

    record.py    what a record holds (Fix) and what it changes (Target)
    subclass.py  the seam of backend changes: the lab's subclasses of moto's IAM and EC2 backends
    middleware.py  the seam of answers: a WSGI middleware that rewrites what moto refuses or lacks
    registry.py  the records, one per change (REGISTRY)
    listing.py   the records as readers see them: docs/registry.md, generated
    fidelity.py  the changes where moto differs from AWS in what the lesson shows, and isolation
    launch.py    what an AMI's ImdsSupport makes of a launch (Amazon Linux 2023 requires IMDSv2)
    authorization.py  EC2's encoded authorization messages, STS decoding them, STS's refusals
    role_credentials.py  what IAM answers a role session that names no user
    iam_delay.py the option `labkit up --iam-delay N`: role sessions and EC2 see IAM changes late
    validation.py  what IAM and EC2 validate and moto does not: trust policies, metadata options, filters
    speed.py     the changes for speed and memory in the lab process
    warm_aws.py  the changes to botocore in the warm `aws` server

Each record's `seam` says how it changes the dependency. Where moto offers a seam, the lab uses it:
a subclass of moto's IAM or EC2 backend, built from the fixes' mixins and installed once
(subclass.py), or a WSGI middleware that rewrites a refusal from the request and moto's answer
(middleware.py; `wrap` puts it in front of moto's server). Where none reaches the behaviour (a model
class or a module function moto uses by name, a cache, botocore's loader), the record's seam says
`setattr:` and why.

`apply` checks every target first. A record whose target is gone, or whose signature changed, is not
applied: it is named in lab.log and in `labkit status`, and the program runs without it, unless it
is required; then the program stops with one line naming the fix and the installed version (the lab
process refuses to start; the warm `aws` server does not start, and instances run the plain CLI).
A record whose code runs elsewhere (`apply` is None, `where` names it, under labkit.labprocess) is always
required. Every record's paired test of the dependency alone is its case of ALONE, and the versions it
was checked against are CHECKED: both are derived, never written in a record.

Kinds: fidelity (moto differs from AWS where the lesson shows it; each has a text to send
upstream), isolation, lab (what the lab needs from moto beyond its API), speed and memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from labkit.labprocess.motofixes import subclass
from labkit.labprocess.motofixes.middleware import wrap
from labkit.labprocess.motofixes.record import (
    ALONE,
    CHECKED,
    CLI,
    LAB,
    Fix,
    RequiredFixMissing,
    Target,
    not_applied,
)
from labkit.labprocess.motofixes.registry import REGISTRY, by_name

__all__ = [
    "ALONE",
    "CHECKED",
    "CLI",
    "LAB",
    "REGISTRY",
    "Fix",
    "RequiredFixMissing",
    "Target",
    "apply",
    "by_name",
    "wrap",
]

_applied: set[str] = set()


def apply(
    process: str = LAB, *, registry: Iterable[Fix] | None = None, report: Callable[[str], None] | None = None
) -> list[str]:
    """Apply every fix of `process` whose targets are there (each once per process); returns the
    names of those that are not, after saying each in one line through `report` (default: print,
    which goes to lab.log). Raises RequiredFixMissing when a required one is among them, before
    applying any fix but the early ones (those that must precede moto's imports). In the lab
    process, the warm aws's fixes are checked too (the same botocore), so that lab.json names every
    fix that is missing."""
    say = report or (lambda line: print(line, flush=True))
    fixes = list(REGISTRY if registry is None else registry)
    mine = [fix for fix in fixes if process in fix.processes]
    missing: list[str] = []

    def check(group: list[Fix]) -> list[Fix]:
        usable = []
        for fix in group:
            problems = fix.problems()
            if not problems:
                usable.append(fix)
                continue
            line = not_applied(fix, problems, process if process in fix.processes else CLI)
            if fix.required and process in fix.processes:
                raise RequiredFixMissing(line)
            say(line)
            missing.append(fix.name)
        return usable

    early = check([fix for fix in mine if fix.early])  # before the others' targets are imported
    _apply_each(early)
    rest = check([fix for fix in mine if not fix.early])
    if process == LAB:
        check([fix for fix in fixes if CLI in fix.processes and LAB not in fix.processes])
    _apply_each(rest)
    if process == LAB:
        subclass.install()  # the backend subclass, built from the mixins the fixes applied added
    return missing


def _apply_each(fixes: list[Fix]) -> None:
    for fix in fixes:
        if fix.apply is not None and fix.name not in _applied:
            fix.apply()
            _applied.add(fix.name)
