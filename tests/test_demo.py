"""The classic demo, end to end, through the real aws CLI on a simulated instance."""

from __future__ import annotations

import json

from conftest import NO_CREDENTIALS, READ_ONLY, ROLE, Demo


def test_before_attaching_the_cli_cannot_locate_credentials(demo: Demo) -> None:
    result = demo.box.run("aws iam list-users")
    assert result.exit_code == 255
    assert result.stdout == ""
    assert result.stderr.strip() == NO_CREDENTIALS


def test_after_attaching_list_users_and_list_roles_work(attached: Demo) -> None:
    users = attached.box.run("aws iam list-users")
    roles = attached.box.run("aws iam list-roles")
    assert users.exit_code == 0 and roles.exit_code == 0
    assert [u["UserName"] for u in json.loads(users.stdout)["Users"]] == ["admin", "alice", "bob", "carol"]
    assert ROLE in [r["RoleName"] for r in json.loads(roles.stdout)["Roles"]]


def refusal(demo: Demo, operation: str, resource: str) -> str:
    """AWS's own sentence, word for word, when no policy of the instance's role allows `operation`."""
    return (
        f"An error occurred (AccessDenied) when calling the {operation} operation: "
        f"User: arn:aws:sts::123456789012:assumed-role/{ROLE}/{demo.instance_id} is not authorized to perform: "
        f"iam:{operation} on resource: {resource} because no identity-based policy allows the iam:{operation} action"
    )


def test_create_user_is_access_denied_for_the_role_session(attached: Demo) -> None:
    result = attached.box.run("aws iam create-user --user-name x")
    assert result.exit_code == 255
    assert result.stderr.strip() == refusal(attached, "CreateUser", "arn:aws:iam::123456789012:user/x")
    assert "x" not in [u["UserName"] for u in attached.iam.list_users()["Users"]]


def test_the_instance_is_the_assumed_role_named_after_itself(attached: Demo) -> None:
    identity = json.loads(attached.box.run("aws sts get-caller-identity").stdout)
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{attached.instance_id}"
    assert identity["UserId"].startswith("AROA") and identity["UserId"].endswith(f":{attached.instance_id}")


def test_describe_instances_shows_the_instance_profile(attached: Demo) -> None:
    reservations = attached.ec2.describe_instances(InstanceIds=[attached.instance_id])["Reservations"]
    profile = reservations[0]["Instances"][0]["IamInstanceProfile"]
    assert profile["Arn"] == f"arn:aws:iam::123456789012:instance-profile/{ROLE}"


def test_detaching_the_policy_denies_at_once_and_reattaching_restores(attached: Demo) -> None:
    assert attached.box.run("aws iam list-users").exit_code == 0
    attached.iam.detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    denied = attached.box.run("aws iam list-users")
    assert denied.exit_code == 255
    assert denied.stderr.strip() == refusal(attached, "ListUsers", "arn:aws:iam::123456789012:user/")
    attached.iam.attach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    assert attached.box.run("aws iam list-users").exit_code == 0


def test_a_second_association_is_incorrect_state(attached: Demo) -> None:
    import botocore.exceptions
    import pytest

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        attached.attach()
    error = caught.value.response["Error"]
    assert error["Code"] == "IncorrectState"
    assert error["Message"] == f"There is an existing association for instance {attached.instance_id}"
