"""What IAM and EC2 validate and moto does not: fidelity records of registry.py, each a mixin of
the lab's IAM or EC2 backend (subclass.py). Each refuses with AWS's code and words.

IAM, a role's trust policy (CreateRole, UpdateAssumeRolePolicy): 400 MalformedPolicyDocument for a
statement with `Resource` (`Has prohibited field Resource`), one that names no principal (`Missing
required field Principal`), and a service principal that is not a service's (`Invalid principal in
policy: "SERVICE":"ec2"`). Sources: IAM User Guide, "IAM JSON policy elements: Principal" and "Roles
terms and concepts" (a trust policy names who may assume the role, and has no Resource); the wording
is IAM's as transcripts show it (`An error occurred (MalformedPolicyDocument) when calling the
CreateRole operation: Has prohibited field Resource`; `MalformedPolicyDocument: Invalid principal in
policy: "SERVICE":"eks.amazonaws.com.cn"`, terraform-provider-aws). IAM checks a service principal
against the services it knows; the lab accepts any `NAME.amazonaws.com`.

IAM, RemoveRoleFromInstanceProfile of a role the profile does not hold: 404 NoSuchEntity (IAM API
Reference, RemoveRoleFromInstanceProfile, Errors: "referenced a resource entity that does not exist.
The error message describes the resource"). The sentence is the lab's, in IAM's style: no transcript
of this very refusal was found.

EC2, the instance metadata options (ModifyInstanceMetadataOptions, RunInstances' MetadataOptions):
HttpPutResponseHopLimit "Integers from 1 to 64", HttpTokens `optional | required`, HttpEndpoint
`enabled | disabled` (EC2 API Reference, ModifyInstanceMetadataOptions and
InstanceMetadataOptionsRequest); a value outside is 400 InvalidParameterValue. The wording is EC2's
for HttpEndpoint (`A value of '' is not valid for HttpEndpoint. Specify either 'enabled' or
'disabled' and try again.`, terraform-provider-aws issue 25547), the same sentence for the others.

EC2, DescribeInstances: an instance's `IamInstanceProfile` is the profile's ARN and id (`AIPA…`; EC2
API Reference, IamInstanceProfile).

EC2, DescribeInstances: the filters are those DescribeInstances documents (EC2 API Reference,
DescribeInstances, Filters; the list is read from botocore's model of it), among them
`iam-instance-profile.arn` and `.id`; any other name is 400 InvalidParameterValue, `The filter
'NAME' is invalid`.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from fnmatch import fnmatchcase
from typing import Any

from labkit.labprocess.motofixes import subclass
from labkit.labprocess.motofixes.fidelity import Backend

# -- IAM: trust policies ----------------------------------------------------------------------------
SERVICE_PRINCIPAL = re.compile(r"[a-z0-9][a-z0-9.-]*\.amazonaws\.com")


def trust_policy_problem(document: str) -> str:
    """'' when IAM takes `document` as a role's trust policy as far as the lab checks, else IAM's message."""
    try:
        policy = json.loads(document)
    except ValueError:
        return "This policy contains invalid Json"
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    statements = [statements] if isinstance(statements, dict) else statements
    statements = [statement for statement in statements if isinstance(statement, dict)]
    for statement in statements:
        for prohibited in ("Resource", "NotResource"):
            if prohibited in statement:
                return f"Has prohibited field {prohibited}"
        if "Principal" not in statement and "NotPrincipal" not in statement:
            return "Missing required field Principal"
    for statement in statements:
        principal = statement.get("Principal")
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        for service in [services] if isinstance(services, str) else services:
            if not (isinstance(service, str) and SERVICE_PRINCIPAL.fullmatch(service)):
                return f'Invalid principal in policy: "SERVICE":"{service}"'
    return ""


def _check_trust_policy(document: str) -> None:
    from moto.iam.exceptions import MalformedPolicyDocument

    problem = trust_policy_problem(document)
    if problem:
        raise MalformedPolicyDocument(problem)


class TrustPoliciesAsIamValidatesThem(Backend):
    """A trust policy with Resource, without Principal, or naming a service that is none: refused."""

    def create_role(self, role_name: str, assume_role_policy_document: str, *args: Any, **kwargs: Any) -> Any:
        _check_trust_policy(assume_role_policy_document)
        return super().create_role(role_name, assume_role_policy_document, *args, **kwargs)

    def update_assume_role_policy(self, role_name: str, policy_document: str) -> None:
        self.get_role(role_name)  # a role that is not there is NoSuchEntity first
        _check_trust_policy(policy_document)
        super().update_assume_role_policy(role_name, policy_document)


def trust_policies_validated_as_iam_validates_them() -> None:
    subclass.add("iam", TrustPoliciesAsIamValidatesThem)


# -- IAM: RemoveRoleFromInstanceProfile ------------------------------------------------------------
class RemovingARoleNotHeldIsNoSuchEntity(Backend):
    """A role the instance profile does not hold: NoSuchEntity (moto fails in list.remove: HTML 500)."""

    def remove_role_from_instance_profile(self, profile_name: str, role_name: str) -> None:
        from moto.iam.exceptions import NotFoundException

        profile = self.get_instance_profile(profile_name)
        self.get_role(role_name)
        if all(role.name != role_name for role in profile.roles):
            raise NotFoundException(
                f"The role with name {role_name} cannot be found in instance profile {profile_name}."
            )
        super().remove_role_from_instance_profile(profile_name, role_name)


def removing_a_role_not_held_is_no_such_entity() -> None:
    subclass.add("iam", RemovingARoleNotHeldIsNoSuchEntity)


# -- EC2: metadata options --------------------------------------------------------------------------
HOP_LIMITS = range(1, 65)
CHOICES = {"HttpTokens": ("optional", "required"), "HttpEndpoint": ("enabled", "disabled")}


def metadata_options_problem(options: dict[str, Any]) -> str:
    """'' when EC2 takes these options (named as the API names them; None: not given), else EC2's message."""
    hops = options.get("HttpPutResponseHopLimit")
    if hops is not None and not (str(hops).lstrip("-").isdigit() and int(hops) in HOP_LIMITS):
        return (
            f"A value of '{hops}' is not valid for HttpPutResponseHopLimit. "
            "Specify a value between 1 and 64 and try again."
        )
    for name, (first, second) in CHOICES.items():
        value = options.get(name)
        if value is not None and value not in (first, second):
            return (
                f"A value of '{value}' is not valid for {name}. Specify either '{first}' or '{second}' and try again."
            )
    return ""


def _check_metadata_options(options: dict[str, Any]) -> None:
    from moto.ec2.exceptions import EC2ClientError

    problem = metadata_options_problem(options)
    if problem:
        raise EC2ClientError("InvalidParameterValue", problem)


class MetadataOptionsInEc2sRanges(Backend):
    """A hop limit outside 1..64, HttpTokens or HttpEndpoint outside their values: refused, nothing changed."""

    def modify_instance_metadata_options(self, instance_id: str, **changes: Any) -> Any:
        _check_metadata_options({"HttpTokens": changes.get("http_tokens"), "HttpEndpoint": changes.get("http_endpoint"),
                                 "HttpPutResponseHopLimit": changes.get("hop_limit")})  # fmt: skip
        return super().modify_instance_metadata_options(instance_id, **changes)

    def run_instances(self, image_id: str, count: int, user_data: Any, security_group_names: Any, **kwargs: Any) -> Any:
        _check_metadata_options(dict(kwargs.get("metadata_options") or {}))
        return super().run_instances(image_id, count, user_data, security_group_names, **kwargs)


def metadata_options_in_ec2s_ranges() -> None:
    subclass.add("ec2", MetadataOptionsInEc2sRanges)


# -- EC2: DescribeInstances' IamInstanceProfile --------------------------------------------------
class DescribedProfileIsTheProfile(Backend):
    """An instance's IamInstanceProfile: the profile's ARN and id, also after a replace (moto keeps the
    association's id, and the first profile's ARN after ReplaceIamInstanceProfileAssociation)."""

    def associate_iam_instance_profile(self, instance_id: str, *args: Any, **kwargs: Any) -> Any:
        return _described(super().associate_iam_instance_profile(instance_id, *args, **kwargs))

    def replace_iam_instance_profile_association(self, association_id: str, *args: Any, **kwargs: Any) -> Any:
        return _described(super().replace_iam_instance_profile_association(association_id, *args, **kwargs))


def _described(association: Any) -> Any:
    if association is not None and association.instance is not None:
        profile = association.iam_instance_profile
        association.instance.iam_instance_profile = {"Arn": profile.arn, "Id": profile.id}
    return association


def described_profile_is_the_profile() -> None:
    subclass.add("ec2", DescribedProfileIsTheProfile)


# -- EC2: DescribeInstances' filters -------------------------------------------------------------
PROFILE_FILTERS = {"iam-instance-profile.arn": "Arn", "iam-instance-profile.id": "Id"}


@functools.cache
def instance_filters() -> frozenset[str]:
    """The filter names botocore's model of DescribeInstances documents (`tag:<key>` stands for every tag)."""
    from botocore.session import get_session

    documented = get_session().get_service_model("ec2").operation_model("DescribeInstances")
    text = documented.input_shape.members["Filters"].documentation
    return frozenset(re.findall(r"<li>\s*<p>\s*<code>([^<]+)</code>", text))


def _profile_filters(filters: Any) -> tuple[dict[str, list[str]], Any]:
    """The filters the lab answers itself, and the rest for moto; a name EC2 does not know: refused."""
    from moto.ec2.exceptions import InvalidFilter

    if not filters:
        return {}, filters
    for name in filters:
        if name not in instance_filters() and not name.startswith("tag:"):
            raise InvalidFilter(name, "InvalidParameterValue")
    own = {name: values for name, values in filters.items() if name in PROFILE_FILTERS}
    return own, {name: values for name, values in filters.items() if name not in PROFILE_FILTERS}


def _with_profile(reservations: list[Any], own: dict[str, list[str]]) -> list[Any]:
    if not own:
        return reservations

    def matches(instance: Any) -> bool:
        profile = getattr(instance, "iam_instance_profile", None) or {}
        return all(any(fnmatchcase(str(profile.get(field, "")), value) for value in own[name])
                   for name, field in PROFILE_FILTERS.items() if name in own)  # fmt: skip

    kept = []
    for reservation in reservations:
        instances = [instance for instance in reservation.instances if matches(instance)]
        if instances:
            kept.append(copy.copy(reservation))
            kept[-1].instances = instances
    return kept


class InstanceFiltersAsEc2KnowsThem(Backend):
    """DescribeInstances: `iam-instance-profile.arn` and `.id` answered; a filter EC2 does not know refused."""

    def describe_instances(self, filters: Any = None) -> Any:
        own, rest = _profile_filters(filters)
        return _with_profile(super().describe_instances(filters=rest), own)

    def get_reservations_by_instance_ids(self, instance_ids: list[str], filters: Any = None) -> Any:
        own, rest = _profile_filters(filters)
        return _with_profile(super().get_reservations_by_instance_ids(instance_ids, filters=rest), own)


def instance_filters_as_ec2_knows_them() -> None:
    subclass.add("ec2", InstanceFiltersAsEc2KnowsThem)
