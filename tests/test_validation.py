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
from conftest import EC2_TRUST

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
