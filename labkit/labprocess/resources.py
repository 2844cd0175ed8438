"""The resource a request acts on, as AWS names it: in its refusals (`… on resource: ARN …`) and to
the lab's evaluator, which matches it against policies' `Resource` elements.

IAM: the entity a request names (with its path), the path a listing reads (`user/` for ListUsers),
or `*` for an action with no resource (GetAccountSummary). EC2: the instance an action names, or
`instance/*` for RunInstances. STS: the role AssumeRole names. Sources: the Service Authorization
Reference's tables (actions, resources and condition keys) for IAM, EC2 and STS, and AWS's refusals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.protocol import ACCOUNT_ID, REGION

PARTITION = "aws"
Param = Callable[[str], "str | None"]  # a request's parameter by name: its first value, or None

IAM_RESOURCES = (  # the request parameter that names an action's resource, most specific first
    ("InstanceProfileName", "instance-profile", "get_instance_profile"),
    ("RoleName", "role", "get_role"),
    ("GroupName", "group", "get_group"),
    ("UserName", "user", "get_user"),
)
IAM_LISTINGS = {
    "ListUsers": "user",
    "ListRoles": "role",
    "ListGroups": "group",
    "ListInstanceProfiles": "instance-profile",
}

INSTANCE_ACTIONS = frozenset({  # EC2 actions on the instance(s) named by InstanceId(.N)
    "TerminateInstances", "StopInstances", "StartInstances", "RebootInstances", "ModifyInstanceAttribute",
    "ModifyInstanceMetadataOptions", "AssociateIamInstanceProfile", "GetConsoleOutput", "GetPasswordData",
    "MonitorInstances", "UnmonitorInstances",
})  # fmt: skip
ASSOCIATION_ACTIONS = frozenset({"ReplaceIamInstanceProfileAssociation", "DisassociateIamInstanceProfile"})
TAGGING_ACTIONS = frozenset({"CreateTags", "DeleteTags"})
RESOURCE_TYPES = {"i": "instance", "vol": "volume", "sg": "security-group", "subnet": "subnet", "vpc": "vpc",
                  "eni": "network-interface"}  # fmt: skip


def param_of(data: dict[str, Any]) -> Param:
    """A query-protocol request's parameters (each a list of values, or a value) as a lookup."""

    def param(name: str) -> str | None:
        value = data.get(name)
        if isinstance(value, list):
            return str(value[0]) if value else None
        return None if value is None else str(value)

    return param


def iam_resource_of(backend: Any, action: str, param: Param) -> str:
    """The resource AWS names in an IAM AccessDenied (see the module docstring)."""
    prefix = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:"
    for parameter, kind, lookup in IAM_RESOURCES:
        name = param(parameter)
        if name:
            try:
                path = getattr(backend, lookup)(name).path
            except Exception:  # not there (yet): the path it would get
                path = param("Path") or "/"
            return f"{prefix}{kind}{path}{name}"
    if action in IAM_LISTINGS:
        return f"{prefix}{IAM_LISTINGS[action]}{param('PathPrefix') or '/'}"
    if action == "ListPolicies":
        return f"policy path {param('PathPrefix') or '/'}"
    if param("PolicyArn") or param("PolicySourceArn"):  # a policy; the user, group or role simulated
        return str(param("PolicyArn") or param("PolicySourceArn"))
    if action == "CreatePolicy" and param("PolicyName"):
        return f"{prefix}policy{param('Path') or '/'}{param('PolicyName')}"
    return "*"


def ec2_resource_of(operation: str, param: Param) -> str:
    """The resource AWS names when it refuses `operation`, or '' for an action the lab does not map."""
    prefix = f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT_ID}:"
    if operation == "RunInstances":
        return f"{prefix}instance/*"
    if operation in INSTANCE_ACTIONS:
        instance_id = param("InstanceId") or param("InstanceId.1")
        return f"{prefix}instance/{instance_id}" if instance_id else ""
    if operation in ASSOCIATION_ACTIONS:
        instance_id = instance_of_association(param("AssociationId") or "")
        return f"{prefix}instance/{instance_id or '*'}"
    if operation in TAGGING_ACTIONS:
        tagged = param("ResourceId.1") or ""
        kind = RESOURCE_TYPES.get(tagged.partition("-")[0])
        return f"{prefix}{kind}/{tagged}" if kind else ""
    return ""


def instance_of_association(association_id: str) -> str:
    """The instance an instance profile association belongs to, or ''."""
    from moto.ec2.models import ec2_backends

    associations = ec2_backends[ACCOUNT_ID][REGION].iam_instance_profile_associations
    found = [key for key, association in associations.items() if association.association_id == association_id]
    return found[0] if found else ""


def evaluated(named: str) -> str:
    """What the evaluator matches policies against, for the resource a refusal names: an ARN, or `*`
    for an action without one (`policy path /` and '' included)."""
    return named if named.startswith("arn:") else "*"
