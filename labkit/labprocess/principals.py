"""Who signed a request, as IAM knows them: the caller's ARN, the policies that apply to it (a user's
own and its groups', a role's, a permissions boundary, a session policy) and the condition keys that
describe it (`aws:username`, `aws:userid`, `aws:PrincipalArn`, `aws:PrincipalType`,
`aws:TokenIssueTime`, `aws:PrincipalTag/…`, `ec2:SourceInstanceARN` …).

Read from moto's IAM and STS backends as they are when the request arrives (a role's sessions see the
role through `--iam-delay`, labkit/labprocess/propagation.py, since moto's `collect_policies` is that
record's seam). The lab's evaluator (labkit/labprocess/evaluation/) decides; this module only gathers.

Sources: IAM User Guide, "AWS global condition context keys" (which keys a user and a role session
carry); "Permissions boundaries for IAM entities"; "Session policies".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from labkit.labprocess.evaluation import Policies, Policy
from labkit.protocol import ACCOUNT_ID, REGION

PARTITION = "aws"


@dataclass(frozen=True)
class Principal:
    """The caller of one request: who, what applies to it, and the keys that describe it."""

    arn: str  # arn:aws:iam::ACCOUNT:user/NAME or arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    user_id: str  # AIDA… for a user, AROA…:SESSION for a role session
    policies: Policies
    keys: dict[str, str | list[str]] = field(default_factory=dict)
    role_arn: str = ""  # a role session's role
    name: str = ""  # a user's name


def _document(policy: Any) -> tuple[str, str]:
    """(name, document) of what moto's `collect_policies` gives: a managed policy (its default
    version), an inline policy's document, or a user's inline policy record."""
    from moto.iam.models import Policy as ManagedPolicy

    if isinstance(policy, ManagedPolicy):
        version = next(v for v in policy.versions if v.is_default)
        return policy.name, version.document
    if isinstance(policy, dict):
        return str(policy.get("policy_name", "")), str(policy["policy_document"])
    if isinstance(policy, tuple):  # (name, document)
        return str(policy[0]), str(policy[1])
    return "", str(policy)


def _identity(collected: list[Any]) -> tuple[Policy, ...]:
    return tuple(Policy(document, name=name) for name, document in map(_document, collected))


def _with_inline_names(collected: list[Any], role: Any) -> list[Any]:
    """moto's role `collect_policies` gives a role's inline policies as bare documents: each is paired
    with its name again (from the role's own inline policies), so that SourcePolicyId names it."""
    names = {document: name for name, document in getattr(role, "policies", {}).items()}
    return [(names.get(p, ""), p) if isinstance(p, str) else p for p in collected]


def _boundary(iam: Any, boundary_arn: str | None) -> Policy | None:
    """The permissions boundary named by `boundary_arn`, or None. A boundary whose policy is gone
    allows nothing (AWS refuses to delete a policy in use as a boundary; the lab never finds one)."""
    if not boundary_arn:
        return None
    try:
        name, document = _document(iam.get_policy(boundary_arn))
    except Exception:
        return Policy('{"Version":"2012-10-17","Statement":[]}', name=boundary_arn, kind="Permissions Boundary Policy")
    return Policy(document, name=name, kind="Permissions Boundary Policy")


def _tags(tags: list[dict[str, str]]) -> dict[str, str | list[str]]:
    """aws:PrincipalTag/KEY for each of a user's or role's tags (moto keeps both as Key/Value lists)."""
    return {f"aws:PrincipalTag/{tag['Key']}": tag["Value"] for tag in tags}


def of_access_key(access_key: Any) -> Principal:
    """The caller behind moto's access key object (IAMUserAccessKey or AssumedRoleAccessKey)."""
    from moto.iam.access_control import AssumedRoleAccessKey

    if isinstance(access_key, AssumedRoleAccessKey):
        return _session(access_key)
    return _user(access_key)


def _user(access_key: Any) -> Principal:
    iam = access_key.backend
    user = iam.get_user(access_key._owner_user_name)
    keys: dict[str, str | list[str]] = {
        "aws:username": user.name,
        "aws:userid": user.id,
        "aws:PrincipalArn": user.arn,
        "aws:PrincipalType": "User",
        "aws:PrincipalAccount": ACCOUNT_ID,
    }
    keys.update(_tags(iam.list_user_tags(user.name)))
    # no boundary: moto has no PutUserPermissionsBoundary (the lab answers it 501), so a user never has one
    policies = Policies(identity=_identity(access_key.collect_policies()))
    return Principal(arn=user.arn, user_id=user.id, policies=policies, keys=keys, name=user.name)


def assumed_role_of(access_key_id: str) -> Any:
    """moto's AssumedRole for `access_key_id`, or None."""
    from moto.sts.models import sts_backends

    for assumed in sts_backends[ACCOUNT_ID][PARTITION].assumed_roles:
        if assumed.access_key_id == access_key_id:
            return assumed
    return None


def _session(access_key: Any) -> Principal:
    iam = access_key.backend
    assumed = assumed_role_of(access_key._access_key_id)
    role_arn = assumed.role_arn
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception:
        role = None
    role_id = role.id if role is not None else "AROA"
    user_id = f"{role_id}:{access_key._session_name}"
    issued: datetime | None = getattr(assumed, "issued", None)
    keys: dict[str, str | list[str]] = {
        "aws:userid": user_id,
        "aws:PrincipalArn": role_arn,
        "aws:PrincipalType": "AssumedRole",
        "aws:PrincipalAccount": ACCOUNT_ID,
        "aws:MultiFactorAuthPresent": "false",
    }
    if issued is not None:
        keys["aws:TokenIssueTime"] = issued.strftime("%Y-%m-%dT%H:%M:%SZ")
    instance_id = getattr(assumed, "for_instance", "")
    if instance_id:  # credentials from an instance's metadata service
        keys["ec2:SourceInstanceARN"] = f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT_ID}:instance/{instance_id}"
    if role is not None:
        keys.update(_tags(role.tags))
    session = None
    if assumed.policy:
        session = (Policy(assumed.policy, name="session policy", kind="Session Policy"),)
    boundary = _boundary(iam, getattr(role, "permissions_boundary_arn", None))
    collected = access_key.collect_policies()
    policies = Policies(identity=_identity(_with_inline_names(collected, role)), boundary=boundary, session=session)
    return Principal(arn=access_key.arn, user_id=user_id, policies=policies, keys=keys, role_arn=role_arn)


def of_arn(arn: str) -> Principal | None:
    """A user, group or role named by ARN, with the policies IAM's simulator evaluates for it (its own,
    a user's groups', a role's permissions boundary), or None when the account holds no such entity.
    A user's and a role's are gathered as moto gathers them for a request they sign."""
    from moto.iam.access_control import AssumedRoleAccessKey, IAMUserAccessKey
    from moto.iam.exceptions import NoSuchEntity, NotFoundException
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT_ID][PARTITION]
    kind, _, rest = arn.partition(f"arn:{PARTITION}:iam::{ACCOUNT_ID}:")[2].partition("/")
    name = rest.rpartition("/")[2]
    try:
        if kind == "user":
            user = iam.get_user(name)
            signer: Any = SimpleNamespace(backend=iam, _owner_user_name=name)  # what collect_policies reads
            collected: list[Any] = IAMUserAccessKey.collect_policies(signer)
            return Principal(arn=user.arn, user_id=user.id, name=name, policies=Policies(identity=_identity(collected)))
        if kind == "role":
            role = iam.get_role(name)
            signer = SimpleNamespace(backend=iam, _owner_role_name=name)
            collected = _with_inline_names(AssumedRoleAccessKey.collect_policies(signer), role)
            policies = Policies(identity=_identity(collected), boundary=_boundary(iam, role.permissions_boundary_arn))
            return Principal(arn=role.arn, user_id=role.id, role_arn=role.arn, policies=policies)
        if kind == "group":
            group = iam.get_group(name)
            collected = [iam.get_group_policy(name, p) for p in iam.list_group_policies(name)]
            collected += iam.list_attached_group_policies(name)[0]
            return Principal(arn=group.arn, user_id=group.id, policies=Policies(identity=_identity(collected)))
    except (NoSuchEntity, NotFoundException):  # moto's two ways of saying so
        return None
    return None


def trust_policy(role: Any) -> Policy:
    """A role's trust policy, as the resource-based policy AssumeRole is decided by."""
    document = role.assume_role_policy_document
    if not isinstance(document, str):
        document = json.dumps(document)
    return Policy(document, name=role.name, kind="Role Trust Policy")
