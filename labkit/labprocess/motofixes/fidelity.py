"""The lab's changes to moto where it differs from AWS in what the lesson shows (fidelity), and where
one lab must never share a secret with another (isolation). Each is a record in registry.py; each
function here is that record's `apply`, run once in the lab process.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

LAB_PARTITION = "aws"


def default_subnet_address() -> None:
    """Fidelity: an instance launched without a subnet gets an address in its AZ's default subnet.

    On AWS it is 172.31.x.x (the default VPC); moto keeps an EC2-Classic random 10.x address
    while it places the network interface in the default subnet.
    """
    from moto.ec2.models.instances import Instance

    original = Instance.prep_nics

    def prep_nics(self: Any, nic_spec: Any, private_ip: str | None = None, **kwargs: Any) -> None:
        if not self._subnet_id and not nic_spec and private_ip is None:
            subnet = self.ec2_backend.get_default_subnets().get(self._placement.zone)
            if subnet is not None:
                private_ip = subnet.get_available_subnet_ip(instance=self)
        original(self, nic_spec, private_ip, **kwargs)

    setattr(Instance, "prep_nics", prep_nics)  # noqa: B010 - a patch, said plainly


def metadata_options_keep_what_is_not_named() -> None:
    """Fidelity: ModifyInstanceMetadataOptions changes only the options it names.

    moto replaces them all, so `HttpTokens=required` alone would also blank `HttpEndpoint`.
    """
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.modify_instance_metadata_options

    def modify_instance_metadata_options(self: Any, instance_id: str, **changes: Any) -> Any:
        current = self.get_instance(instance_id).metadata_options
        kept = {
            "http_tokens": current.http_tokens,
            "hop_limit": current.http_put_response_hop_limit,
            "http_endpoint": current.http_endpoint,
            "http_protocol": current.http_protocol_ipv6,
            "metadata_tags": current.instance_metadata_tags,
        }
        given = {name: value for name, value in changes.items() if value is not None}
        return original(self, instance_id, **{**kept, **given})

    setattr(InstanceBackend, "modify_instance_metadata_options", modify_instance_metadata_options)  # noqa: B010


def inactive_keys_are_refused() -> None:
    """Fidelity: a request signed with an Inactive access key is refused, as AWS refuses it.

    moto looks the key up and ignores its status, so a deactivated (leaked) key would keep working.
    """
    from moto.iam import access_control

    original = access_control.IAMUserAccessKey.__init__

    def __init__(self: Any, account_id: str, partition: str, access_key_id: str, headers: dict[str, str]) -> None:
        original(self, account_id, partition, access_key_id, headers)
        for user in self.backend.list_users("/", None, None):
            for key in user.access_keys:
                if key.access_key_id == access_key_id and key.status != "Active":
                    raise access_control.CreateAccessKeyFailure(reason="InvalidId")

    setattr(access_control.IAMUserAccessKey, "__init__", __init__)  # noqa: B010


def ids_look_like_aws() -> None:
    """Fidelity: instance profile ids are AIPA… and user ids AIDA…, as role ids are AROA….

    moto gives them 20 random lower-case characters, which `iam/info` and `list-users` would show.
    """
    from moto.iam import models
    from moto.iam.utils import generate_access_key_id_from_account_id

    def with_id(method: Any, prefix: str) -> Any:
        def create(self: Any, *args: Any, **kwargs: Any) -> Any:
            made = method(self, *args, **kwargs)
            made.id = generate_access_key_id_from_account_id(self.account_id, prefix=prefix, total_length=21)
            return made

        return create

    setattr(models.IAMBackend, "create_instance_profile", with_id(models.IAMBackend.create_instance_profile, "AIPA"))  # noqa: B010
    setattr(models.IAMBackend, "create_user", with_id(models.IAMBackend.create_user, "AIDA"))  # noqa: B010


def access_keys_are_never_seeded() -> None:
    """Isolation: access key ids and secrets (users' keys, role sessions) and session tokens come
    from a real random source, not from moto's seeded one, so that two labs reset to the same
    checkpoint never share a key. moto still draws its own values first, so every other id keeps
    following the seed. The journal records what was drawn, to restore the same keys after a crash."""
    from moto.iam import models
    from moto.sts import models as sts_models

    from labkit.labprocess.backends import SECRETS, fresh_key_id, fresh_secret

    original = models.AccessKey.__init__
    token = sts_models.random_session_token

    def __init__(self: Any, user_name: str | None, prefix: str, account_id: str, status: str = "Active") -> None:
        original(self, user_name, prefix, account_id, status)
        self.access_key_id = SECRETS.draw(lambda: fresh_key_id(prefix))
        self.secret_access_key = SECRETS.draw(fresh_secret)

    setattr(models.AccessKey, "__init__", __init__)  # noqa: B010
    setattr(sts_models, "random_session_token", lambda: SECRETS.draw(token))  # noqa: B010


def not_found_says_what_aws_says() -> None:
    """A role or instance profile that does not exist: AWS's wording of NoSuchEntity."""
    from moto.iam import models
    from moto.iam.exceptions import NotFoundException

    get_role, get_profile = models.IAMBackend.get_role, models.IAMBackend.get_instance_profile

    def get_role_as_aws(self: Any, role_name: str) -> Any:
        try:
            return get_role(self, role_name)
        except NotFoundException:
            raise NotFoundException(f"The role with name {role_name} cannot be found.") from None

    def get_profile_as_aws(self: Any, profile_name: str) -> Any:
        try:
            return get_profile(self, profile_name)
        except NotFoundException:
            raise NotFoundException(f"Instance Profile {profile_name} cannot be found.") from None

    setattr(models.IAMBackend, "get_role", get_role_as_aws)  # noqa: B010
    setattr(models.IAMBackend, "get_instance_profile", get_profile_as_aws)  # noqa: B010


def trust_policy_must_be_json() -> None:
    """A trust policy that is not JSON: MalformedPolicyDocument."""
    from moto.iam import models
    from moto.iam.exceptions import MalformedPolicyDocument

    create_role = models.IAMBackend.create_role

    def create_role_as_aws(self: Any, role_name: str, assume_role_policy_document: str, *args: Any, **kw: Any) -> Any:
        try:
            json.loads(assume_role_policy_document)
        except ValueError:
            raise MalformedPolicyDocument("This policy contains invalid Json") from None
        return create_role(self, role_name, assume_role_policy_document, *args, **kw)

    setattr(models.IAMBackend, "create_role", create_role_as_aws)  # noqa: B010


FILTER_PROFILES_IN = ("moto.ec2.utils", "moto.ec2.models.iam_instance_profile", "moto.ec2.responses.instances")


def ec2_names_a_missing_profile() -> None:
    """An instance profile EC2 cannot find: EC2's InvalidParameterValue, not IAM's NoSuchEntity."""
    from moto.ec2 import utils as ec2_utils
    from moto.ec2.exceptions import EC2ClientError
    from moto.iam.exceptions import NotFoundException

    original_filter = ec2_utils.filter_iam_instance_profiles

    def filter_iam_instance_profiles(
        account_id: str, partition: str, iam_instance_profile_arn: str | None, iam_instance_profile_name: str | None
    ) -> Any:
        try:
            return original_filter(account_id, partition, iam_instance_profile_arn, iam_instance_profile_name)
        except NotFoundException:
            given, field = (
                (iam_instance_profile_name, "name") if iam_instance_profile_name else (iam_instance_profile_arn, "arn")
            )
            raise EC2ClientError(
                "InvalidParameterValue",
                f"Value ({given}) for parameter iamInstanceProfile.{field} is invalid. "
                f"Invalid IAM Instance Profile {field}",
            ) from None

    for name in FILTER_PROFILES_IN:  # each module imported the function by name
        setattr(importlib.import_module(name), "filter_iam_instance_profiles", filter_iam_instance_profiles)  # noqa: B010


def access_denied_says_why() -> None:
    """Fidelity: a request that no policy allows is refused with AWS's whole sentence.

    IAM: `User: ARN is not authorized to perform: iam:CreateUser on resource:
    arn:aws:iam::123456789012:user/intruder because no identity-based policy allows the
    iam:CreateUser action`; moto stops after the action. EC2's Describe actions: the error is
    UnauthorizedOperation, `You are not authorized to perform this operation. User: ARN is not
    authorized to perform: ec2:DescribeInstances because no identity-based policy allows the
    ec2:DescribeInstances action`. Left as moto has them: an explicit Deny (AWS would name the
    denying policy, which moto does not track) and EC2's other actions (AWS adds an encoded
    message that only AWS can make).
    """
    from moto.core.exceptions import AccessDeniedError, _RESTError
    from moto.iam.access_control import IAMPolicy, IAMRequest, PermissionResult

    class UnauthorizedOperation(_RESTError):  # as moto's own AccessDeniedError, with EC2's code
        code = 403

    original = IAMRequest.check_action_permitted

    def check_action_permitted(self: Any, resource: str) -> None:
        try:
            original(self, resource)
        except AccessDeniedError:
            policies = self._access_key.collect_policies()
            denied = PermissionResult.DENIED
            operation = self._action.split(":", 1)[1]
            describes = self._service == "ec2" and operation.startswith("Describe")
            if not (self._service == "iam" or describes) or any(
                IAMPolicy(p).is_action_permitted(self._action, resource) == denied for p in policies
            ):
                raise
            why = f"because no identity-based policy allows the {self._action} action"
            if describes:
                raise UnauthorizedOperation(
                    "UnauthorizedOperation",
                    "You are not authorized to perform this operation. "
                    f"User: {self._access_key.arn} is not authorized to perform: {self._action} {why}",
                ) from None
            target = _iam_resource_of(self.backend, self.account_id, operation, self._data)
            raise AccessDeniedError(
                user_arn=self._access_key.arn, action=f"{self._action} on resource: {target} {why}"
            ) from None

    setattr(IAMRequest, "check_action_permitted", check_action_permitted)  # noqa: B010


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


def _iam_resource_of(backend: Any, account_id: str, action: str, data: dict[str, Any]) -> str:
    """The resource AWS names in an IAM AccessDenied: the entity the request acts on (with its path),
    the path a listing reads (`user/` for ListUsers, `policy path /` for ListPolicies), or `*` for
    an action that has no resource (GetAccountSummary, say)."""

    def given(name: str) -> str | None:  # a query-protocol request: each parameter's values, in a list
        return (data.get(name) or [None])[0]

    prefix = f"arn:{LAB_PARTITION}:iam::{account_id}:"
    for parameter, kind, lookup in IAM_RESOURCES:
        name = given(parameter)
        if name:
            try:
                path = getattr(backend, lookup)(name).path
            except Exception:  # not there (yet): the path it would get
                path = given("Path") or "/"
            return f"{prefix}{kind}{path}{name}"
    if action in IAM_LISTINGS:
        return f"{prefix}{IAM_LISTINGS[action]}{given('PathPrefix') or '/'}"
    if action == "ListPolicies":
        return f"policy path {given('PathPrefix') or '/'}"
    if given("PolicyArn"):
        return str(given("PolicyArn"))
    if action == "CreatePolicy" and given("PolicyName"):
        return f"{prefix}policy{given('Path') or '/'}{given('PolicyName')}"
    return "*"
