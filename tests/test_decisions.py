"""The lab decides every request as IAM does (labkit/labprocess/evaluation/, wired in by the record
`requests_decided_by_the_labs_evaluator`): iam:PassRole, permissions boundaries, the account's trust,
policy variables, conditions, explicit denies, session policies and revoking a role's sessions, each
through real requests (boto3 as a console user, the real `aws` CLI on an instance).

Sources: IAM User Guide, "Policy evaluation logic"; "Grant a user permissions to pass a role to an AWS
service"; EC2 User Guide, "Permission to pass an IAM role to an instance"; "Permissions boundaries for
IAM entities"; "Session policies"; "Revoking IAM role temporary security credentials"; "Troubleshoot
access denied error messages".
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions
import pytest

import labkit
from conftest import READ_ONLY, ROLE, Demo, kill_until_unlocked
from labkit import solutions
from labkit.catalogue import EC2_TRUST_POLICY
from labkit.protocol import ACCOUNT_ID

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
EC2_FULL = "arn:aws:iam::aws:policy/AmazonEC2FullAccess"
EC2_READ = "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess"


def user_with(lab: labkit.Lab, name: str, *managed: str, inline: dict[str, Any] | None = None) -> dict[str, str]:
    """A new user holding `managed` policies (and one inline policy), and its access key as client keywords."""
    iam = lab.client("iam")
    iam.create_user(UserName=name)
    for arn in managed:
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    if inline is not None:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=json.dumps(inline))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def refused(call: Any) -> dict[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return dict(caught.value.response["Error"])


def statement(effect: str, action: Any, resource: Any = "*", **condition: Any) -> dict[str, Any]:
    made: dict[str, Any] = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        made["Condition"] = condition
    return made


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# -- iam:PassRole --------------------------------------------------------------------------------------
def test_attaching_a_role_needs_pass_role_and_the_refusal_decodes_to_it(demo: Demo) -> None:
    """EC2 User Guide, "Permission to pass an IAM role to an instance": AmazonEC2FullAccess alone does
    not let a user attach a role it may not pass; EC2 answers UnauthorizedOperation with an encoded
    message whose decoded context is iam:PassRole on the role."""
    keys = user_with(demo.lab, "operator", EC2_FULL)
    ec2 = demo.lab.client("ec2", **keys)
    error = refused(
        lambda: ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": ROLE}, InstanceId=demo.instance_id)
    )
    assert error["Code"] == "UnauthorizedOperation"
    head, _, encoded = error["Message"].partition(" Encoded authorization failure message: ")
    assert head == (
        f"You are not authorized to perform this operation. User: arn:aws:iam::{ACCOUNT}:user/operator is not "
        f"authorized to perform: iam:PassRole on resource: {ROLE_ARN} because no identity-based policy allows "
        "the iam:PassRole action."
    )
    decoded = json.loads(demo.lab.client("sts").decode_authorization_message(EncodedMessage=encoded)["DecodedMessage"])
    assert (decoded["allowed"], decoded["context"]["action"], decoded["context"]["resource"]) == (
        False,
        "iam:PassRole",
        ROLE_ARN,
    )
    conditions = {
        item["key"]: item["values"]["items"][0]["value"] for item in decoded["context"]["conditions"]["items"]
    }
    assert conditions["iam:PassedToService"] == "ec2.amazonaws.com"
    assert demo.ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"] == []


def test_launching_with_a_role_needs_pass_role_too(demo: Demo) -> None:
    keys = user_with(demo.lab, "launcher", EC2_FULL)
    ec2 = demo.lab.client("ec2", **keys)
    image = demo.ec2.describe_instances(InstanceIds=[demo.instance_id])["Reservations"][0]["Instances"][0]["ImageId"]
    error = refused(
        lambda: ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", IamInstanceProfile={"Name": ROLE}
        )
    )
    assert error["Code"] == "UnauthorizedOperation" and f"iam:PassRole on resource: {ROLE_ARN}" in error["Message"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")  # no role: no PassRole


def test_pass_role_for_ec2_lets_the_operator_attach_and_replace(demo: Demo) -> None:
    """IAM User Guide, "Grant a user permissions to pass a role to an AWS service": iam:PassRole on the
    role, with the condition iam:PassedToService ec2.amazonaws.com."""
    pass_to_ec2 = statement(
        "Allow", "iam:PassRole", ROLE_ARN, StringEquals={"iam:PassedToService": "ec2.amazonaws.com"}
    )
    keys = user_with(demo.lab, "operator", EC2_FULL, inline=policy(pass_to_ec2))
    ec2 = demo.lab.client("ec2", **keys)
    association = ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": ROLE}, InstanceId=demo.instance_id)
    assert association["IamInstanceProfileAssociation"]["State"] in ("associating", "associated")
    demo.iam.create_role(
        RoleName="Other",
        AssumeRolePolicyDocument=json.dumps(
            policy({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
        ),
    )
    demo.iam.create_instance_profile(InstanceProfileName="Other")
    demo.iam.add_role_to_instance_profile(InstanceProfileName="Other", RoleName="Other")
    error = refused(
        lambda: ec2.replace_iam_instance_profile_association(
            IamInstanceProfile={"Name": "Other"},
            AssociationId=association["IamInstanceProfileAssociation"]["AssociationId"],
        )
    )
    assert f"iam:PassRole on resource: arn:aws:iam::{ACCOUNT}:role/Other" in error["Message"]


def test_pass_role_to_another_service_does_not_count(demo: Demo) -> None:
    pass_to_lambda = statement(
        "Allow", "iam:PassRole", ROLE_ARN, StringEquals={"iam:PassedToService": "lambda.amazonaws.com"}
    )
    ec2 = demo.lab.client("ec2", **user_with(demo.lab, "operator", EC2_FULL, inline=policy(pass_to_lambda)))
    error = refused(
        lambda: ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": ROLE}, InstanceId=demo.instance_id)
    )
    assert error["Code"] == "UnauthorizedOperation"


# -- permissions boundaries ----------------------------------------------------------------------------
def test_a_boundary_limits_the_roles_sessions_on_the_instance(attached: Demo) -> None:
    """IAM User Guide, "Permissions boundaries for IAM entities": effective permissions are where the
    identity-based policies and the boundary both allow."""
    assert attached.box.run("aws iam list-users").exit_code == 0
    attached.iam.put_role_permissions_boundary(RoleName=ROLE, PermissionsBoundary=EC2_READ)
    denied = attached.box.run("aws iam list-users")
    assert denied.exit_code == 255
    assert denied.stderr.strip().endswith(
        f"iam:ListUsers on resource: arn:aws:iam::{ACCOUNT}:user/ because no permissions boundary allows the "
        "iam:ListUsers action"
    )
    attached.iam.delete_role_permissions_boundary(RoleName=ROLE)
    assert attached.box.run("aws iam list-users").exit_code == 0


# -- the account's trust -------------------------------------------------------------------------------
def test_a_role_that_trusts_the_account_is_assumed_by_an_allowed_principal(fresh_lab: labkit.Lab) -> None:
    """IAM User Guide, "Policy evaluation logic" (cross-account and the account principal): a trust
    policy naming `arn:aws:iam::ACCOUNT:root` delegates to the account, whose principals need
    sts:AssumeRole in their own policies."""
    iam = fresh_lab.client("iam")
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    )
    iam.create_role(RoleName="Shared", AssumeRolePolicyDocument=json.dumps(trust))
    assumed = fresh_lab.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/Shared", RoleSessionName="admin"
    )
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Shared/admin"
    sts = fresh_lab.client("sts", **user_with(fresh_lab, "nobody"))
    error = refused(lambda: sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/Shared", RoleSessionName="nobody"))
    assert error["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/nobody is not authorized to perform: sts:AssumeRole on resource: "
        f"arn:aws:iam::{ACCOUNT}:role/Shared"
    )


# -- policy variables, conditions, explicit denies -----------------------------------------------------
def test_policy_variables_name_the_caller(fresh_lab: labkit.Lab) -> None:
    """IAM User Guide, "IAM policy elements: Variables and tags": `${aws:username}` in a Resource."""
    own_keys = statement(
        "Allow", ["iam:ListAccessKeys", "iam:GetUser"], f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}"
    )
    iam = fresh_lab.client("iam", **user_with(fresh_lab, "dana", inline=policy(own_keys)))
    assert iam.get_user(UserName="dana")["User"]["UserName"] == "dana"
    assert refused(lambda: iam.get_user(UserName="alice"))["Code"] == "AccessDenied"


def test_a_condition_on_the_region_is_kept(fresh_lab: labkit.Lab) -> None:
    """IAM User Guide, "AWS global condition context keys", aws:RequestedRegion."""
    only_west = statement("Allow", "ec2:DescribeInstances", StringEquals={"aws:RequestedRegion": "us-west-2"})
    ec2 = fresh_lab.client("ec2", **user_with(fresh_lab, "westie", inline=policy(only_west)))
    assert refused(lambda: ec2.describe_instances())["Code"] == "UnauthorizedOperation"


def test_an_explicit_deny_says_where_it_is(fresh_lab: labkit.Lab) -> None:
    """IAM User Guide, "Troubleshoot access denied error messages": `with an explicit deny in an
    identity-based policy`."""
    deny = statement("Deny", "iam:ListUsers")
    iam = fresh_lab.client("iam", **user_with(fresh_lab, "denied", READ_ONLY, inline=policy(deny)))
    assert refused(lambda: iam.list_users())["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/denied is not authorized to perform: iam:ListUsers on resource: "
        f"arn:aws:iam::{ACCOUNT}:user/ with an explicit deny in an identity-based policy"
    )


def test_a_session_policy_limits_an_assumed_role(fresh_lab: labkit.Lab) -> None:
    """IAM User Guide, "Session policies": the session's permissions are the role's and the session
    policy's intersection."""
    iam = fresh_lab.client("iam")
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    )
    iam.create_role(RoleName="Reader", AssumeRolePolicyDocument=json.dumps(trust))
    iam.attach_role_policy(RoleName="Reader", PolicyArn=READ_ONLY)
    only_roles = json.dumps(policy(statement("Allow", "iam:ListRoles")))
    credentials = fresh_lab.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/Reader", RoleSessionName="narrow", Policy=only_roles
    )["Credentials"]
    session = fresh_lab.client(
        "iam",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    session.list_roles()
    assert refused(lambda: session.list_users())["Message"].endswith(
        "because no session policy allows the iam:ListUsers action"
    )


# -- revoking a role's sessions ------------------------------------------------------------------------
def test_revoking_older_sessions_denies_the_instances_credentials_from_anywhere(attached: Demo) -> None:
    """IAM User Guide, "Revoking IAM role temporary security credentials": the console adds the inline
    policy AWSRevokeOlderSessions, denying every action to sessions issued before now."""
    token = attached.box.run(
        'curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60"'
    ).stdout.strip()
    leaked = json.loads(
        attached.box.run(
            f'curl -s -H "X-aws-ec2-metadata-token: {token}" '
            f"http://169.254.169.254/latest/meta-data/iam/security-credentials/{ROLE}"
        ).stdout
    )
    outside = attached.lab.client(
        "iam",
        aws_access_key_id=leaked["AccessKeyId"],
        aws_secret_access_key=leaked["SecretAccessKey"],
        aws_session_token=leaked["Token"],
    )
    assert outside.list_users()["Users"]  # a leaked session works from anywhere
    solutions.revoke_older_sessions(attached.lab, ROLE)  # as the console's *Revoke active sessions*
    assert refused(lambda: outside.list_users())["Message"].endswith(
        "with an explicit deny in an identity-based policy"
    )


# -- IAM's policy simulator ----------------------------------------------------------------------------
def test_the_simulator_says_why_as_the_lab_decides(attached: Demo) -> None:
    """IAM API reference, SimulatePrincipalPolicy: EvalDecision and MatchedStatements per action, asked
    on the instance with the role's own credentials (IAMReadOnlyAccess allows iam:Simulate*)."""
    asked = attached.box.run(
        f"aws iam simulate-principal-policy --policy-source-arn {ROLE_ARN} --action-names iam:ListUsers iam:CreateUser"
    )
    assert asked.exit_code == 0, asked.stderr
    results = {r["EvalActionName"]: r for r in json.loads(asked.stdout)["EvaluationResults"]}
    assert results["iam:ListUsers"]["EvalDecision"] == "allowed"
    assert [m["SourcePolicyId"] for m in results["iam:ListUsers"]["MatchedStatements"]] == ["IAMReadOnlyAccess"]
    assert (results["iam:CreateUser"]["EvalDecision"], results["iam:CreateUser"]["MatchedStatements"]) == (
        "implicitDeny",
        [],
    )


def test_the_simulator_names_a_roles_inline_policy(fresh_lab: labkit.Lab) -> None:
    """IAM API reference, Statement: SourcePolicyId is the policy's name, an inline policy's too (the
    challenge's grade says which policy allows too much). moto's collect_policies gives a role's inline
    policies as bare documents; the lab names them again."""
    iam = fresh_lab.client("iam")
    iam.create_role(RoleName="NamedInline", AssumeRolePolicyDocument=json.dumps(EC2_TRUST_POLICY))
    allow = json.dumps(policy(statement("Allow", "s3:GetObject")))
    iam.put_role_policy(RoleName="NamedInline", PolicyName="ReadReports", PolicyDocument=allow)
    found = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT_ID}:role/NamedInline", ActionNames=["s3:GetObject"]
    )["EvaluationResults"][0]
    assert found["EvalDecision"] == "allowed"
    assert [m["SourcePolicyId"] for m in found["MatchedStatements"]] == ["ReadReports"]


def test_a_custom_policy_is_simulated_with_its_context(fresh_lab: labkit.Lab) -> None:
    """IAM API reference, SimulateCustomPolicy: ContextEntries decide conditions; a key a condition asks
    for and the request does not give is in MissingContextValues."""
    iam = fresh_lab.client("iam")
    only_west = json.dumps(policy(statement("Allow", "ec2:*", StringEquals={"aws:RequestedRegion": "us-west-2"})))
    west = [{"ContextKeyName": "aws:RequestedRegion", "ContextKeyValues": ["us-west-2"], "ContextKeyType": "string"}]
    allowed = iam.simulate_custom_policy(
        PolicyInputList=[only_west], ActionNames=["ec2:RunInstances"], ContextEntries=west
    )["EvaluationResults"][0]
    assert allowed["EvalDecision"] == "allowed"
    assert allowed["MatchedStatements"][0]["SourcePolicyId"] == "PolicyInputList.1"
    unknown = iam.simulate_custom_policy(PolicyInputList=[only_west], ActionNames=["ec2:RunInstances"])
    assert unknown["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"
    assert unknown["EvaluationResults"][0]["MissingContextValues"] == ["aws:RequestedRegion"]


def imds_credentials(demo: Demo) -> dict[str, str]:
    token = demo.box.run(
        'curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60"'
    ).stdout.strip()
    path = f"http://169.254.169.254/latest/meta-data/iam/security-credentials/{ROLE}"
    found: dict[str, str] = json.loads(demo.box.run(f'curl -s -H "X-aws-ec2-metadata-token: {token}" {path}').stdout)
    return found


def test_after_a_revocation_a_stop_and_start_gives_the_instance_new_credentials(attached: Demo) -> None:
    """A revoked instance keeps its current (denied) credentials until EC2 delivers new ones; stopping
    and starting it forces that (IAM User Guide, "Revoke IAM role temporary security credentials": new
    sessions are not denied)."""
    before = imds_credentials(attached)
    cutoff = solutions.revoke_older_sessions(attached.lab, ROLE)
    assert attached.box.run("aws iam list-users").exit_code == 255
    assert imds_credentials(attached)["AccessKeyId"] == before["AccessKeyId"]  # kept until EC2 refreshes them
    time.sleep(max(0.0, (cutoff - datetime.now(UTC)).total_seconds()))
    attached.ec2.stop_instances(InstanceIds=[attached.instance_id])
    attached.ec2.start_instances(InstanceIds=[attached.instance_id])
    assert imds_credentials(attached)["AccessKeyId"] != before["AccessKeyId"]
    assert attached.box.run("aws iam list-users").exit_code == 0


def test_a_revoked_session_stays_revoked_after_kill_9(own_lab: labkit.Lab) -> None:
    """The journal keeps when each role session was issued: a session assumed before a revocation is
    still refused after the lab restarts (before: the replayed session looked newly issued)."""
    iam = own_lab.client("iam")
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    )
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    issued = own_lab.client("sts").assume_role(RoleArn=ROLE_ARN, RoleSessionName="leaked")["Credentials"]
    keys = {"aws_access_key_id": issued["AccessKeyId"], "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"]}  # fmt: skip
    cutoff = solutions.revoke_older_sessions(own_lab, ROLE)
    time.sleep(max(0.0, (cutoff - datetime.now(UTC)).total_seconds()) + 1)
    assert refused(lambda: own_lab.client("iam", **keys).list_users())["Code"] == "AccessDenied"
    kill_until_unlocked(own_lab)
    back = labkit.connect(own_lab.home)
    assert refused(lambda: back.client("iam", **keys).list_users())["Code"] == "AccessDenied"


def test_a_principal_tag_is_a_condition_key_of_its_requests(fresh_lab: labkit.Lab) -> None:
    """IAM User Guide, "AWS global condition context keys", aws:PrincipalTag/tag-key: the tags of the
    user (or role) that signs the request."""
    team_only = policy(statement("Allow", "iam:ListUsers", StringEquals={"aws:PrincipalTag/team": "blue"}))
    blue = fresh_lab.client("iam", **user_with(fresh_lab, "blue-user", inline=team_only))
    fresh_lab.client("iam").tag_user(UserName="blue-user", Tags=[{"Key": "team", "Value": "blue"}])
    other = fresh_lab.client("iam", **user_with(fresh_lab, "red-user", inline=team_only))
    fresh_lab.client("iam").tag_user(UserName="red-user", Tags=[{"Key": "team", "Value": "red"}])
    assert blue.list_users()["Users"]
    assert refused(lambda: other.list_users())["Code"] == "AccessDenied"


def test_the_simulator_names_a_principal_that_is_not_there_as_iam_does(fresh_lab: labkit.Lab) -> None:
    """A transcript of IAM's answer: `An error occurred (NoSuchEntity) when calling the
    SimulatePrincipalPolicy operation: The role with name automation-role cannot be found.`"""
    iam = fresh_lab.client("iam")
    error = refused(
        lambda: iam.simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:role/automation-role", ActionNames=["iam:ListUsers"]
        )
    )
    assert (error["Code"], error["Message"]) == ("NoSuchEntity", "The role with name automation-role cannot be found.")


def test_the_simulator_is_refused_on_the_principal_it_would_simulate(fresh_lab: labkit.Lab) -> None:
    """A transcript of IAM's refusal: `… is not authorized to perform: iam:SimulatePrincipalPolicy on
    resource: arn:aws:iam::ACCOUNT:user/NAME` (the PolicySourceArn)."""
    iam = fresh_lab.client("iam", **user_with(fresh_lab, "curious"))
    error = refused(
        lambda: iam.simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/curious", ActionNames=["iam:ListUsers"]
        )
    )
    assert error["Message"].startswith(
        f"User: arn:aws:iam::{ACCOUNT}:user/curious is not authorized to perform: iam:SimulatePrincipalPolicy "
        f"on resource: arn:aws:iam::{ACCOUNT}:user/curious because"
    )
