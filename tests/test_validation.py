"""The lab refuses what IAM and EC2 refuse, in their codes and words (issue 23, "Validation missing";
the records of labkit/labprocess/motofixes/validation.py).

Each test names where AWS's wording comes from. Where the lab's wording is AWS's by analogy and not
from a transcript of that very request, the record says so (docs/registry.md).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

import labkit
from conftest import EC2_TRUST, Demo, create_role
from labkit.catalogue import INSTANCE, PROFILE, ROLE
from labkit.solutions import launch

BASE = "http://169.254.169.254/latest"


def refusal(call: Callable[[], Any]) -> tuple[int, str, str]:
    """(HTTP status, code, message) of the error a call answers."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


# -- item 1: trust policies ------------------------------------------------------------------------
def trust(**changes: Any) -> str:
    """notebook 02's trust policy (EC2 may assume the role), its one statement changed: a value of
    None removes the field."""
    policy = copy.deepcopy(EC2_TRUST)
    statement = policy["Statement"][0]
    for field, value in changes.items():
        if value is None:
            del statement[field]
        else:
            statement[field] = value
    return json.dumps(policy)


MALFORMED_TRUST = [  # (the statement changed, IAM's message)
    ({"Resource": "*"}, "Has prohibited field Resource"),
    ({"Principal": None}, "Missing required field Principal"),
    ({"Principal": {"Service": "ec2"}}, 'Invalid principal in policy: "SERVICE":"ec2"'),
]


@pytest.mark.parametrize(("changes", "message"), MALFORMED_TRUST, ids=["resource", "no-principal", "service-ec2"])
def test_create_role_refuses_a_malformed_trust_policy(fresh_lab: labkit.Lab, changes: Any, message: str) -> None:
    """IAM: a trust policy may not have `Resource`, must name a `Principal`, and a service principal
    must be a service's (`ec2.amazonaws.com`, not `ec2`): 400 MalformedPolicyDocument. Wording: IAM's
    answers as transcripts show them (`An error occurred (MalformedPolicyDocument) when calling the
    CreateRole operation: Has prohibited field Resource`; `MalformedPolicyDocument: Invalid principal
    in policy: "SERVICE":"eks.amazonaws.com.cn"` from terraform-provider-aws); IAM User Guide, "IAM
    JSON policy elements: Principal" (a role's trust policy must name a principal)."""
    iam = fresh_lab.client("iam")
    assert refusal(lambda: iam.create_role(RoleName="Malformed", AssumeRolePolicyDocument=trust(**changes))) == (
        400, "MalformedPolicyDocument", message)  # fmt: skip
    assert "Malformed" not in [role["RoleName"] for role in iam.list_roles()["Roles"]]
    iam.create_role(RoleName="WellFormed", AssumeRolePolicyDocument=trust())  # the positive control


@pytest.mark.parametrize(("changes", "message"), MALFORMED_TRUST, ids=["resource", "no-principal", "service-ec2"])
def test_update_assume_role_policy_refuses_a_malformed_trust_policy(
    fresh_lab: labkit.Lab, changes: Any, message: str
) -> None:
    """IAM validates the trust policy of UpdateAssumeRolePolicy as CreateRole's, and keeps the old one
    (IAM API Reference, UpdateAssumeRolePolicy: MalformedPolicyDocument, 400)."""
    iam = fresh_lab.client("iam")
    iam.create_role(RoleName="Trusting", AssumeRolePolicyDocument=trust())
    assert refusal(lambda: iam.update_assume_role_policy(RoleName="Trusting", PolicyDocument=trust(**changes))) == (
        400, "MalformedPolicyDocument", message)  # fmt: skip
    kept = iam.get_role(RoleName="Trusting")["Role"]["AssumeRolePolicyDocument"]
    assert kept == EC2_TRUST


def test_update_assume_role_policy_refuses_what_is_not_json(fresh_lab: labkit.Lab) -> None:
    """The not-JSON check of CreateRole (record trust_policy_must_be_json) holds for
    UpdateAssumeRolePolicy too: `This policy contains invalid Json` (IAM's wording)."""
    iam = fresh_lab.client("iam")
    iam.create_role(RoleName="Trusting", AssumeRolePolicyDocument=trust())
    assert refusal(lambda: iam.update_assume_role_policy(RoleName="Trusting", PolicyDocument="{'Version': 2012}")) == (
        400, "MalformedPolicyDocument", "This policy contains invalid Json")  # fmt: skip


# -- item 2: metadata options ----------------------------------------------------------------------
BAD_OPTIONS = [  # (the options, EC2's message)
    ({"HttpPutResponseHopLimit": 0},
     "A value of '0' is not valid for HttpPutResponseHopLimit. Specify a value between 1 and 64 and try again."),
    ({"HttpPutResponseHopLimit": 65},
     "A value of '65' is not valid for HttpPutResponseHopLimit. Specify a value between 1 and 64 and try again."),
    ({"HttpTokens": "sometimes"},
     "A value of 'sometimes' is not valid for HttpTokens. Specify either 'optional' or 'required' and try again."),
    ({"HttpEndpoint": "on"},
     "A value of 'on' is not valid for HttpEndpoint. Specify either 'enabled' or 'disabled' and try again."),
]  # fmt: skip
BAD_IDS = ["hop-limit-0", "hop-limit-65", "tokens-sometimes", "endpoint-on"]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=BAD_IDS)
def test_modify_instance_metadata_options_refuses_a_value_ec2_does_not_take(
    demo: Demo, options: dict[str, Any], message: str
) -> None:
    """EC2 API Reference, ModifyInstanceMetadataOptions: HttpPutResponseHopLimit `Possible values:
    Integers from 1 to 64`, HttpTokens `optional | required`, HttpEndpoint `enabled | disabled`; a
    value outside is 400 InvalidParameterValue. The wording is EC2's for HttpEndpoint (`A value of ''
    is not valid for HttpEndpoint. Specify either 'enabled' or 'disabled' and try again.`, in
    terraform-provider-aws issue 25547), and the same sentence for the others. Nothing changes."""
    before = demo.ec2.describe_instances(InstanceIds=[demo.instance_id])["Reservations"][0]["Instances"][0]
    modify = demo.ec2.modify_instance_metadata_options
    assert refusal(lambda: modify(InstanceId=demo.instance_id, **options)) == (400, "InvalidParameterValue", message)
    after = demo.ec2.describe_instances(InstanceIds=[demo.instance_id])["Reservations"][0]["Instances"][0]
    assert after["MetadataOptions"] == before["MetadataOptions"]


def test_the_bounds_of_the_hop_limit_are_taken(demo: Demo) -> None:
    """1 and 64 are in EC2's range (EC2 API Reference, ModifyInstanceMetadataOptions): the positive control."""
    for hops in (1, 64):
        answer = demo.ec2.modify_instance_metadata_options(InstanceId=demo.instance_id, HttpPutResponseHopLimit=hops)
        assert answer["InstanceMetadataOptions"]["HttpPutResponseHopLimit"] == hops


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=BAD_IDS)
def test_run_instances_refuses_metadata_options_ec2_does_not_take(
    fresh_lab: labkit.Lab, options: dict[str, Any], message: str
) -> None:
    """RunInstances' MetadataOptions (InstanceMetadataOptionsRequest, EC2 API Reference) take the same
    values as ModifyInstanceMetadataOptions; a launch outside them is refused and launches nothing."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        launch(fresh_lab, "badly-configured", metadata_options=options)
    error = caught.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("InvalidParameterValue", message)
    assert fresh_lab.instances() == []


def test_http_tokens_sometimes_cannot_reopen_imdsv1(attached: Demo) -> None:
    """With IMDSv2 required, `HttpTokens=sometimes` is refused and IMDSv1 stays closed: a plain curl
    on the instance still gets 401 (EC2 User Guide, "Use IMDSv2"; the metadata service reads
    HttpTokens, and only `required` refuses a request without a token)."""
    attached.ec2.modify_instance_metadata_options(InstanceId=attached.instance_id, HttpTokens="required")
    refused = refusal(lambda: attached.ec2.modify_instance_metadata_options(
        InstanceId=attached.instance_id, HttpTokens="sometimes"))  # fmt: skip
    assert refused[1] == "InvalidParameterValue"
    options = attached.ec2.describe_instances(InstanceIds=[attached.instance_id])["Reservations"][0]["Instances"][0]
    assert options["MetadataOptions"]["HttpTokens"] == "required"
    result = attached.box.run(f"curl -s -o /dev/null -w '%{{http_code}}' {BASE}/meta-data/iam/security-credentials/")
    assert result.stdout == "401"


# -- item 3: RemoveRoleFromInstanceProfile ---------------------------------------------------------
def test_removing_a_role_the_profile_does_not_hold_is_no_such_entity(fresh_lab: labkit.Lab) -> None:
    """IAM API Reference, RemoveRoleFromInstanceProfile: a request that names an entity that is not
    there is NoSuchEntity, 404 (`The error message describes the resource`). The profile and the role
    exist; the profile does not hold the role."""
    iam = fresh_lab.client("iam")
    create_role(iam)
    iam.create_role(RoleName="Other", AssumeRolePolicyDocument=trust())
    assert refusal(lambda: iam.remove_role_from_instance_profile(InstanceProfileName=PROFILE, RoleName="Other")) == (
        404, "NoSuchEntity", f"The role with name Other cannot be found in instance profile {PROFILE}.")  # fmt: skip
    held = iam.get_instance_profile(InstanceProfileName=PROFILE)["InstanceProfile"]["Roles"]
    assert [role["RoleName"] for role in held] == [ROLE]
    iam.remove_role_from_instance_profile(InstanceProfileName=PROFILE, RoleName=ROLE)  # the positive control
    assert refusal(lambda: iam.remove_role_from_instance_profile(InstanceProfileName=PROFILE, RoleName=ROLE))[:2] == (
        404, "NoSuchEntity")  # fmt: skip


# -- item 4: DescribeInstances' IamInstanceProfile -------------------------------------------------
def described_profile(demo: Demo) -> dict[str, str]:
    instance = demo.ec2.describe_instances(InstanceIds=[demo.instance_id])["Reservations"][0]["Instances"][0]
    return dict(instance["IamInstanceProfile"])


def test_describe_instances_names_the_instance_profile_by_its_own_id_and_arn(demo: Demo) -> None:
    """EC2 API Reference, IamInstanceProfile (DescribeInstances): `Arn`, the instance profile's ARN,
    and `Id`, the instance profile's ID (IAM's `AIPA…`), not the association's `iip-assoc-…`; after
    ReplaceIamInstanceProfileAssociation, the new profile's."""
    association = demo.attach()
    profile = demo.iam.get_instance_profile(InstanceProfileName=PROFILE)["InstanceProfile"]
    assert described_profile(demo) == {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert profile["InstanceProfileId"].startswith("AIPA") and association.startswith("iip-assoc-")
    create_role(demo.iam, "OtherRole")
    demo.ec2.replace_iam_instance_profile_association(IamInstanceProfile={"Name": "OtherRole"},
                                                      AssociationId=association)  # fmt: skip
    other = demo.iam.get_instance_profile(InstanceProfileName="OtherRole")["InstanceProfile"]
    assert described_profile(demo) == {"Arn": other["Arn"], "Id": other["InstanceProfileId"]}


# -- item 5: DescribeInstances' filters ------------------------------------------------------------
def test_the_iam_instance_profile_filters_find_the_instances_with_that_profile(demo: Demo) -> None:
    """EC2 API Reference, DescribeInstances, Filters: `iam-instance-profile.arn` (the instance
    profile's ARN) and `iam-instance-profile.id` (its ID)."""
    demo.attach()
    launch(demo.lab, "no-role")
    profile = demo.iam.get_instance_profile(InstanceProfileName=PROFILE)["InstanceProfile"]

    def found(name: str, value: str) -> list[str]:
        reservations = demo.ec2.describe_instances(Filters=[{"Name": name, "Values": [value]}])["Reservations"]
        return [instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"]]

    assert found("iam-instance-profile.arn", profile["Arn"]) == [demo.instance_id]
    assert found("iam-instance-profile.id", profile["InstanceProfileId"]) == [demo.instance_id]
    assert found("iam-instance-profile.arn", "arn:aws:iam::123456789012:instance-profile/Nothing") == []
    assert len(found("instance-state-name", "running")) == 2  # a filter moto knows: unchanged


def test_a_filter_describe_instances_does_not_know_is_invalid_parameter_value(demo: Demo) -> None:
    """EC2 refuses a filter name DescribeInstances does not list (EC2 API Reference, DescribeInstances,
    Filters): 400 InvalidParameterValue, `The filter 'NAME' is invalid`. The tag filters
    (`tag:<key>`, `tag-key`) are names it lists."""
    describe = demo.ec2.describe_instances
    assert refusal(lambda: describe(Filters=[{"Name": "iam-role", "Values": [ROLE]}])) == (
        400, "InvalidParameterValue", "The filter 'iam-role' is invalid")  # fmt: skip
    assert refusal(lambda: describe(Filters=[{"Name": "instance-name", "Values": [INSTANCE]}]))[1] == (
        "InvalidParameterValue")  # fmt: skip
    tagged = describe(Filters=[{"Name": "tag:Name", "Values": [INSTANCE]}])["Reservations"]
    assert [i["InstanceId"] for r in tagged for i in r["Instances"]] == [demo.instance_id]
