"""The registry as readers see it: docs/registry.md, generated from the records themselves.

    python -m labkit.labprocess.motofixes.listing > docs/registry.md

tests/test_motofixes.py checks that the committed docs/registry.md is what this prints.
"""

from __future__ import annotations

from collections.abc import Iterable

from labkit.labprocess.motofixes.record import CHECKED, LAB, Fix

KINDS = {
    "fidelity": "Fidelity: where moto differs from AWS in what the lesson shows",
    "isolation": "Isolation: what one lab must never share with another",
    "lab": "The lab: what it needs from moto beyond its API",
    "speed": "Speed",
    "memory": "Memory",
}


def _record(fix: Fix) -> list[str]:
    required = " (required)" if fix.required else ""
    lines = [f"### `{fix.name}`{required}", "", f"- AWS: {fix.aws}", f"- Instead: {fix.dependency}"]
    lines.append("- Changes or relies on: " + ", ".join(f"`{target}`" for target in fix.targets))
    if fix.apply is not None:
        lines.append(f"- How: {fix.seam}" + ("; applied before moto's EC2 models are imported" if fix.early else ""))
    else:
        lines.append("- Where: " + ", ".join(f"`labkit.labprocess.{place}`" for place in fix.places))
    if fix.processes != (LAB,):
        lines.append("- Applied in: " + ", ".join(fix.processes))
    lines.append(f"- The dependency alone: `{fix.alone}`")
    lines.append("- The lab as AWS: " + ", ".join(f"`{test}`" for test in fix.proved_by))
    if fix.upstream:
        lines.append(f"- To send upstream: {fix.upstream}")
    return [*lines, ""]


def markdown(registry: Iterable[Fix]) -> str:
    """docs/registry.md: every record, grouped by kind, in the registry's order."""
    fixes = list(registry)
    versions = ", ".join(f"{package} {version}" for package, version in CHECKED.items())
    lines = [
        "# The registry: every change the lab makes to moto, botocore and awscli",
        "",
        "Generated from `labkit/labprocess/motofixes/registry.py` by",
        "`python -m labkit.labprocess.motofixes.listing > docs/registry.md`: edit the records, not this file",
        "(`tests/test_motofixes.py` checks that the two agree). What a record holds, and how the lab applies it:",
        "`labkit/labprocess/motofixes/__init__.py`.",
        "",
        f"{len(fixes)} records, each checked against {versions}; {sum(fix.required for fix in fixes)} are "
        "required (without one, the lab or the warm `aws` does not start).",
        "",
    ]
    for kind, title in KINDS.items():
        of_kind = [fix for fix in fixes if fix.kind == kind]
        if of_kind:
            lines += [f"## {title} ({len(of_kind)})", ""]
            for fix in of_kind:
                lines += _record(fix)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from labkit.labprocess.motofixes.registry import REGISTRY

    print(markdown(REGISTRY), end="")
