"""Tables and diagrams drawn from the lab's live state.

    labkit.diagram(lab, "demo-instance")    # role → instance profile → instance → IMDS → AWS APIs
    labkit.policy_table(lab, ["arn:aws:iam::aws:policy/IAMReadOnlyAccess", ...])

Every figure is read from the lab as it is now; nothing is drawn from what it ought to be.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.errors import ResourceNotFound
from labkit.solutions import association_of
from labkit.trust import ec2_may_assume

if TYPE_CHECKING:
    import pandas

    from labkit.connection import Connection


@dataclass(frozen=True)
class Link:
    """One arrow of the diagram: whether it holds now, and what it carries."""

    holds: bool
    label: str


@dataclass(frozen=True)
class Diagram:
    """How an instance gets its permissions, as the lab holds it now."""

    boxes: tuple[tuple[str, tuple[str, ...]], ...]  # (title, lines), left to right
    links: tuple[Link, ...]  # between consecutive boxes

    def __str__(self) -> str:
        def box(title: str, lines: tuple[str, ...]) -> str:
            return f"[{title}: {' '.join(lines)}]"

        parts = [box(*self.boxes[0])]
        for link, following in zip(self.links, self.boxes[1:], strict=True):
            arrow = f"--{link.label}-->" if link.holds else f"-x {link.label} x-"
            parts.append(f"\n  {arrow} {box(*following)}")
        return "".join(parts)

    __repr__ = __str__

    def _repr_svg_(self) -> str:
        width, gap, height = 140, 36, 86
        total = len(self.boxes) * width + (len(self.boxes) - 1) * gap + 20
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height + 40}" '
            f'viewBox="0 0 {total} {height + 40}" style="max-width:100%;height:auto" '
            'font-family="sans-serif" font-size="12">',
            '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
            '<path d="M0,0 L8,4 L0,8 z" fill="#2e7d32"/></marker></defs>',
        ]
        for index, (title, lines) in enumerate(self.boxes):
            x = 10 + index * (width + gap)
            out.append(
                f'<rect x="{x}" y="20" width="{width}" height="{height}" rx="8" fill="#f5f7fa" stroke="#455a64"/>'
            )
            out.append(
                f'<text x="{x + width / 2}" y="42" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>'
            )
            for row, text in enumerate(_fit(line, 21) for line in lines[:3]):
                out.append(
                    f'<text x="{x + width / 2}" y="{62 + 15 * row}" text-anchor="middle">{html.escape(text)}</text>'
                )
        for index, link in enumerate(self.links):
            x1 = 10 + index * (width + gap) + width
            x2 = x1 + gap
            style = (
                'stroke="#2e7d32" marker-end="url(#arrow)"' if link.holds else 'stroke="#c62828" stroke-dasharray="4 3"'
            )
            out.append(f'<line x1="{x1}" y1="63" x2="{x2 - 2}" y2="63" stroke-width="2" {style}/>')
            color = "#2e7d32" if link.holds else "#c62828"
            label = link.label if link.holds else f"✗ {link.label}"
            out.append(
                f'<text x="{(x1 + x2) / 2}" y="{height + 36}" text-anchor="middle" fill="{color}" '
                f'font-size="11">{html.escape(label)}</text>'
            )
        out.append("</svg>")
        return "\n".join(out)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _wildcards_first(actions: list[str]) -> list[str]:
    return sorted(actions, key=lambda a: ("*" not in a, a))


def _summary(actions: list[str]) -> tuple[str, ...]:
    """Allowed actions, wildcards first: ('iam:Get*, iam:List*', '+4 more') where the role reaches one
    service; where it reaches several, a line each, named by the service's prefix:
    ('dynamodb: GetItem', 'iam: Get*, List* +4', 's3: GetObject'); past three services (the box has
    room for three lines), the first two and how many more."""
    if not actions:
        return ("nothing allowed",)
    services = sorted({a.split(":", 1)[0] for a in actions})
    if len(services) == 1:
        ordered = _wildcards_first(actions)
        shown = ", ".join(ordered[:2])
        return (shown,) if len(ordered) <= 2 else (shown, f"+{len(ordered) - 2} more")
    lines = []
    for service in services:
        verbs = _wildcards_first([a.split(":", 1)[1] for a in actions if a.startswith(f"{service}:")])
        more = f" +{len(verbs) - 2}" if len(verbs) > 2 else ""
        lines.append(f"{service}: {', '.join(verbs[:2])}{more}" if verbs else service)  # "*": every action
    return tuple(lines) if len(lines) <= 3 else (*lines[:2], f"+{len(lines) - 2} more services")


def _allowed(document: Any) -> list[str]:
    """The actions a policy document allows, as written (`iam:Get*` is one): its Allow statements'."""
    if isinstance(document, str):
        document = json.loads(document)
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    allowed: list[str] = []
    for statement in statements:
        if statement.get("Effect") == "Allow":
            action = statement.get("Action", [])
            allowed += [action] if isinstance(action, str) else list(action)
    return allowed


def _actions(iam: Any, policy_arn: str) -> list[str]:
    try:
        policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
    except iam.exceptions.NoSuchEntityException:
        raise ResourceNotFound(
            f"No managed policy {policy_arn} in this lab. AWS managed policies are named like "
            "arn:aws:iam::aws:policy/IAMReadOnlyAccess; yours like arn:aws:iam::123456789012:policy/NAME."
        ) from None
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"][
        "Document"
    ]
    return _allowed(document)


def diagram(lab: Connection, instance: str, *, profile: str | None = None) -> Diagram:
    """Role → instance profile → instance → metadata service → AWS APIs, for one running instance.
    The role's box names its policies, managed and inline; the AWS APIs box, what they allow.

    The profile drawn is the one attached to the instance, or `profile` when you name the one you
    mean to attach: then the diagram shows which links of the chain exist yet."""
    iam, ec2 = lab.client("iam"), lab.client("ec2")
    box = lab.instance(instance)
    association = association_of(lab, box.id)
    held = str(association["IamInstanceProfile"]["Arn"]).rsplit("/", 1)[-1] if association else None
    profile_name = profile or held
    try:
        found = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"] if profile_name else None
    except iam.exceptions.NoSuchEntityException:
        names = [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]]
        raise ResourceNotFound(
            f"No instance profile {profile_name} in this lab; profiles: {', '.join(names) or 'none'}. "
            "Name one of those, or create it first (notebook 02 shows how)."
        ) from None
    role = found["Roles"][0] if found and found["Roles"] else None
    name = role["RoleName"] if role else None
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] if name else []
    inline = iam.list_role_policies(RoleName=name)["PolicyNames"] if name else []
    policies = [p["PolicyName"] for p in attached] + [f"{policy} (inline)" for policy in inline]
    documents = [iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"] for policy in inline]
    actions = sorted(
        {a for p in attached for a in _actions(iam, p["PolicyArn"])} | {a for d in documents for a in _allowed(d)}
    )
    trusted = role is not None and ec2_may_assume(role["AssumeRolePolicyDocument"])
    options = ec2.describe_instances(InstanceIds=[box.id])["Reservations"][0]["Instances"][0]["MetadataOptions"]
    tokens = "IMDSv2 required" if options["HttpTokens"] == "required" else "IMDSv1 and v2"
    return Diagram(
        boxes=(
            ("IAM role", (role["RoleName"], *(policies or ["no policies attached"])) if role else ("none",)),
            ("instance profile", (profile_name or "none attached",)),
            ("EC2 instance", (box.name or box.id, box.id)),
            ("metadata service", ("169.254.169.254", tokens)),
            ("AWS APIs", _summary(actions)),
        ),
        links=(
            Link(role is not None, "holds role"),
            Link(held is not None and held == profile_name, "attached to"),
            Link(options["HttpEndpoint"] == "enabled", "asks"),
            Link(
                trusted and held == profile_name,
                "temporary credentials" if role is None or trusted else "EC2 may not assume role",
            ),
        ),
    )


@dataclass(frozen=True)
class PolicyTable:
    """AWS managed policies side by side: one row each, every cell shown whole, no row numbers."""

    frame: pandas.DataFrame

    def __repr__(self) -> str:
        import pandas

        with pandas.option_context("display.max_colwidth", None, "display.width", 200):
            return str(self.frame.to_string(index=False))

    def _repr_html_(self) -> str:
        import pandas

        with pandas.option_context("display.max_colwidth", None):
            table = self.frame.to_html(index=False, escape=True)
        return f'<div style="white-space:normal">{table}</div>'


def policy_table(lab: Connection, policy_arns: list[str]) -> PolicyTable:
    """The lab's own copies of AWS managed policies: the action patterns each allows, in full.

    A pattern is what the policy says (`s3:*`, `s3:Get*`); one pattern can stand for hundreds of
    actions, so the table counts patterns and says so, rather than pretend to count actions."""
    import pandas

    iam = lab.client("iam")
    rows = []
    for arn in policy_arns:
        actions = _actions(iam, arn)
        services = sorted({a.split(":", 1)[0] for a in actions if ":" in a} | ({"*"} if "*" in actions else set()))
        verbs = {a.split(":", 1)[1] if ":" in a else a for a in actions}
        read_only = all(v.startswith(("Get", "List", "Describe", "Generate", "Simulate")) for v in verbs)
        rows.append(
            {
                "policy": arn.rsplit("/", 1)[-1],
                "services": ", ".join(services),
                "read-only": "yes" if read_only else "no",
                "action patterns": len(actions),
                "allows (each * matches every action that begins so)": ", ".join(actions),
            }
        )
    return PolicyTable(pandas.DataFrame(rows))
