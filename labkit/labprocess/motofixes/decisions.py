"""Fidelity: every request the lab serves is decided by the lab's evaluator of IAM's documented logic
(labkit/labprocess/evaluation/), and refused in AWS's words. The apply of the record
`requests_decided_by_the_labs_evaluator`.

moto's own authorization (`IAMRequestBase.check_action_permitted`) matches actions and resources
with wildcards and nothing more: it evaluates every request against the resource `*`, ignores
conditions, policy variables, permissions boundaries and session policies, treats a trust policy
that names the account as naming no one, and refuses in a short sentence of its own. The lab keeps
moto's authentication (the signature, the key) and replaces the decision:

- the caller and what applies to it: labkit/labprocess/principals.py;
- the resource AWS names: labkit/labprocess/resources.py;
- the request's condition keys: here (`aws:RequestedRegion`, `aws:CurrentTime`, `aws:EpochTime`,
  `aws:SecureTransport`, `aws:SourceIp`, and the service keys the lesson meets);
- AssumeRole: the role's trust policy must allow (a trust policy naming the account delegates to
  the account's principals whose own policies allow sts:AssumeRole);
- RunInstances, AssociateIamInstanceProfile and ReplaceIamInstanceProfileAssociation: the caller
  must also be allowed iam:PassRole on the profile's role, with `iam:PassedToService`
  `ec2.amazonaws.com` (EC2 User Guide, "Permission to pass an IAM role to an instance");
- refusals: IAM's and STS's AccessDenied, EC2's UnauthorizedOperation with an encoded message
  (authorization.py seals it; STS's DecodeAuthorizationMessage opens it), each ending as AWS ends it
  (`because no identity-based policy allows the ACTION action`, `with an explicit deny in an
  identity-based policy`, … : IAM User Guide, "Troubleshoot access denied error messages").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from labkit.labprocess import principals, replay, resources, storage_access
from labkit.labprocess.evaluation import Decision, Policies, Request, decide, explain
from labkit.labprocess.motofixes import authorization, middleware
from labkit.protocol import ACCOUNT_ID, REGION
from labkit.trust import EC2_PRINCIPAL

ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})  # AWS: needs no permission, even under a Deny
PROFILE_ACTIONS = ("RunInstances", "AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation")


class Refused(Exception):
    """Why a request is refused: the error code, AWS's whole message, and the service that refuses
    (its words: IAM's and STS's ErrorResponse, EC2's, S3's, DynamoDB's)."""

    def __init__(self, code: str, message: str, service: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.service = code, message, service


def request_keys(region: str, now: datetime | None = None) -> dict[str, str | list[str]]:
    """The global condition keys every request carries (IAM User Guide, "AWS global condition context
    keys"). aws:SecureTransport is true: every AWS SDK and CLI request is HTTPS (the lab's loopback
    hop is not part of what a student sends)."""
    now = now or datetime.now(UTC)
    return {
        "aws:RequestedRegion": region,
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
        "aws:SecureTransport": "true",
        "aws:SourceIp": middleware.source_ip.get(),  # the address the lab's API sees
    }


def ec2_keys(operation: str, param: resources.Param) -> dict[str, str | list[str]]:
    """EC2's condition keys the lesson meets (Service Authorization Reference, Amazon EC2)."""
    keys: dict[str, str | list[str]] = {"ec2:Region": REGION}
    tokens = param("MetadataOptions.HttpTokens") or param("HttpTokens")
    if tokens:
        keys["ec2:MetadataHttpTokens"] = tokens
    hops = param("MetadataOptions.HttpPutResponseHopLimit") or param("HttpPutResponseHopLimit")
    if hops:
        keys["ec2:MetadataHttpPutResponseHopLimit"] = hops
    instance_id = param("InstanceId") or param("InstanceId.1")
    if operation in resources.ASSOCIATION_ACTIONS:
        instance_id = resources.instance_of_association(param("AssociationId") or "")
    profile = _profile_arn_of_instance(instance_id) if instance_id else ""
    if profile:
        keys["ec2:InstanceProfile"] = profile
    return keys


def _profile_arn_of_instance(instance_id: str) -> str:
    from moto.ec2.models import ec2_backends

    for association in ec2_backends[ACCOUNT_ID][REGION].iam_instance_profile_associations.values():
        if association.instance.id == instance_id:
            return str(association.iam_instance_profile.arn)
    return ""


def check_action_permitted(iam_request: Any, moto_resource: str) -> None:
    """Decide one request moto has authenticated; raise the service's refusal if IAM would refuse it."""
    action = iam_request._action
    if action in ALWAYS_ALLOWED:
        return
    caller = principals.of_access_key(iam_request._access_key)
    service, _, operation = action.partition(":")
    context: dict[str, str | list[str]] = {**caller.keys, **request_keys(iam_request._region)}
    if service in ("s3", "dynamodb"):
        _check_storage(caller, iam_request, moto_resource, context)
        return
    param = resources.param_of(iam_request._data)
    policies = caller.policies
    named = _named_resource(service, operation, param, moto_resource, iam_request)
    if action == "sts:AssumeRole":
        role = _role(named)
        if role is None:  # AWS answers as for a role the caller may not assume
            raise Refused(
                "AccessDenied", f"User: {caller.arn} is not authorized to perform: {action} on resource: {named}"
            )
        policies = replace(policies, resource=(principals.trust_policy(role),), resource_required=True)
    if service == "ec2":
        context.update(ec2_keys(operation, param))
    decision = decide(
        Request(caller.arn, action, resources.evaluated(named), context, role_arn=caller.role_arn), policies
    )
    if not decision.allowed:
        raise _refusal(caller, action, named, decision, context)
    if service == "ec2" and operation in PROFILE_ACTIONS:
        _check_pass_role(caller, operation, param, context)


def _check_storage(
    caller: principals.Principal, iam_request: Any, moto_resource: str, context: dict[str, str | list[str]]
) -> None:
    """An S3 request (the bucket's policy decides with the caller's own) or a DynamoDB request (on each
    table it names); refused in the service's words."""
    action = iam_request._action
    if action.startswith("s3:"):
        action = storage_access.s3_action(action)
        named = storage_access.s3_resource(moto_resource)
        bucket = storage_access.bucket_policy(storage_access.bucket_of(named))
        policies = replace(caller.policies, resource=(bucket,) if bucket else ())
        decision = decide(Request(caller.arn, action, named or "*", context, role_arn=caller.role_arn), policies)
        who = f"User: {caller.arn} is not authorized to perform: {action}"
        if not decision.allowed:
            raise Refused("AccessDenied", storage_access.s3_message(who, named, explain(decision, action)), "s3")
        if action == "s3:GetObject" and storage_access.object_missing(named):
            _check_listing(caller, named, policies, context)
        block = storage_access.public_access_block(storage_access.bucket_of(named))
        if action == "s3:PutBucketPolicy" and block is not None and block.block_public_policy:
            if storage_access.policy_is_public(iam_request._body):
                why = "because public policies are blocked by the BlockPublicPolicy block public access setting."
                raise Refused("AccessDenied", storage_access.s3_message(who, named, why), "s3")
        return
    operation = action.partition(":")[2]
    for named in storage_access.dynamodb_resources(operation, iam_request._body) or ["*"]:
        decision = decide(Request(caller.arn, action, named, context, role_arn=caller.role_arn), caller.policies)
        if not decision.allowed:
            who = f"User: {caller.arn} is not authorized to perform: {action}"
            message = storage_access.dynamodb_message(who, named, explain(decision, action))
            raise Refused("AccessDenied", message, "dynamodb")


def _check_listing(
    caller: principals.Principal, named: str, policies: Policies, context: dict[str, str | list[str]]
) -> None:
    """A key that is not there is NoSuchKey (404) only to whom s3:ListBucket on its bucket is allowed;
    to anyone else S3 answers 403 AccessDenied, so that a refusal tells nothing of what the bucket holds
    (S3 API Reference, GetObject, "Permissions")."""
    bucket = f"arn:aws:s3:::{storage_access.bucket_of(named)}"
    if not decide(Request(caller.arn, "s3:ListBucket", bucket, context, role_arn=caller.role_arn), policies).allowed:
        raise Refused("AccessDenied", "Access Denied", "s3")


def anonymous_s3_allowed(action: str, resource: str) -> bool:
    """Whether S3 lets a request that is not signed do `action` on `resource`: only a bucket policy
    that allows the anonymous principal (`"Principal": "*"`) does, on a bucket whose Block Public Access
    does not restrict public buckets (new buckets' does: buckets.py)."""
    name = storage_access.bucket_of(resource)
    bucket, block = storage_access.bucket_policy(name), storage_access.public_access_block(name)
    if bucket is None or (block is not None and block.restrict_public_buckets):
        return False  # RestrictPublicBuckets: only the account's principals, whatever the policy says
    context = request_keys(REGION)
    request = Request(storage_access.ANONYMOUS, action, resource, context)
    return decide(request, Policies(resource=(bucket,), resource_required=True)).allowed


def _named_resource(service: str, operation: str, param: resources.Param, moto_resource: str, iam_request: Any) -> str:
    if service == "iam":
        return resources.iam_resource_of(iam_request.backend, operation, param)
    if service == "ec2":
        return "" if operation.startswith("Describe") else resources.ec2_resource_of(operation, param)
    if service == "sts" and operation == "AssumeRole":
        return param("RoleArn") or ""
    return moto_resource if moto_resource != "*" else ""


def _role(role_arn: str) -> Any:
    from moto.iam.models import iam_backends

    try:
        return iam_backends[ACCOUNT_ID][principals.PARTITION].get_role_by_arn(role_arn)
    except Exception:
        return None


def _check_pass_role(
    caller: principals.Principal, operation: str, param: resources.Param, context: dict[str, str | list[str]]
) -> None:
    """iam:PassRole on the role of the instance profile the request names, passed to EC2. A profile
    that does not exist, or holds no role, is left to EC2's own answer."""
    role_arn = _role_of_profile(param("IamInstanceProfile.Name"), param("IamInstanceProfile.Arn"))
    if not role_arn:
        return
    instance_id = param("InstanceId")
    if operation == "ReplaceIamInstanceProfileAssociation":
        instance_id = resources.instance_of_association(param("AssociationId") or "")
    passed = {**context, "iam:PassedToService": EC2_PRINCIPAL}
    if instance_id:
        passed["iam:AssociatedResourceArn"] = f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/{instance_id}"
    decision = decide(Request(caller.arn, "iam:PassRole", role_arn, passed, role_arn=caller.role_arn), caller.policies)
    if not decision.allowed:
        raise _refusal(caller, "iam:PassRole", role_arn, decision, passed, ec2=True)


def _role_of_profile(name: str | None, arn: str | None) -> str:
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT_ID][principals.PARTITION]
    try:
        profile = iam.get_instance_profile(name) if name else iam.get_instance_profile_by_arn(arn or "")
    except Exception:
        return ""
    roles = getattr(profile, "roles", [])
    return str(roles[0].arn) if roles else ""


def _refusal(
    caller: principals.Principal,
    action: str,
    named: str,
    decision: Decision,
    context: dict[str, str | list[str]],
    *,
    ec2: bool = False,
) -> Refused:
    """The refusal of `action`, in the words of the service that refuses it."""
    why = explain(decision, action)
    who = f"User: {caller.arn} is not authorized to perform: {action}"
    on = f" on resource: {named}" if named else ""
    service = "ec2" if ec2 else action.partition(":")[0]
    if action == "sts:AssumeRole" and not decision.explicit_deny_in:
        return Refused("AccessDenied", f"{who}{on}")
    if service == "ec2":
        said = f"You are not authorized to perform this operation. {who}{on} {why}"
        if action.partition(":")[2].startswith("Describe"):
            return Refused("UnauthorizedOperation", said)
        encoded = authorization.seal(authorization.decoded_refusal(caller, action, named, decision, context))
        return Refused("UnauthorizedOperation", f"{said}. Encoded authorization failure message: {encoded}")
    return Refused("AccessDenied", f"{who}{on} {why}")


def requests_decided_by_the_labs_evaluator() -> None:
    """Replace moto's decision (keeping its authentication) and stamp each role session with the
    time it was issued (`aws:TokenIssueTime`)."""
    from moto.core.exceptions import _RESTError
    from moto.iam import access_control
    from moto.sts import models as sts_models

    class AccessRefused(_RESTError):
        code = 403

    def check(self: Any, resource: str) -> None:
        try:
            check_action_permitted(self, resource)
        except Refused as refused:
            if refused.service in ("s3", "dynamodb"):
                raise storage_access.refusal_error(refused.service, refused.code, refused.message) from None
            raise AccessRefused(refused.code, refused.message) from None

    setattr(access_control.IAMRequestBase, "check_action_permitted", check)  # noqa: B010
    authorization.keep_a_key()
    original = sts_models.AssumedRole.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.issued = replay.made_at() or datetime.now(UTC)  # a replayed session keeps its time

    setattr(sts_models.AssumedRole, "__init__", __init__)  # noqa: B010
