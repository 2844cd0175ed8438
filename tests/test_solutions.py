"""Checkpoints: `reset --to NN` replays the notebooks before NN, the same ids every time."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import labkit
from labkit import solutions
from labkit.catalogue import (
    APP_DATA_POLICY,
    APP_SERVER,
    BUCKET,
    INSTANCE,
    NOTEBOOKS,
    OPERATOR,
    ORDER,
    PROFILE,
    ROLE,
    SETTINGS,
    SETTINGS_KEY,
    TABLE,
    checkpoint,
)


def ids(lab: labkit.Lab) -> dict[str, Any]:
    iam = lab.client("iam")
    return {
        "instances": sorted(i.instance_id for i in lab.instances()),
        "roles": sorted(r["RoleId"] for r in iam.list_roles()["Roles"]),
        "profiles": sorted(p["InstanceProfileId"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        "users": sorted(u["UserId"] for u in iam.list_users()["Users"]),
    }


@pytest.mark.parametrize("number", ["01", "02", "03", "04", "05", "06", "07"])
def test_a_checkpoint_holds_what_the_notebooks_before_it_built(lab: labkit.Lab, number: str) -> None:
    lab.reset(to=number)
    assert lab.check(f"{int(number) - 1:02d}").ok
    assert lab.ready_for(number).ok


def test_the_same_checkpoint_yields_the_same_ids(lab: labkit.Lab) -> None:
    lab.reset(to="05")
    first = ids(lab)
    lab.reset()
    lab.reset(to="05")
    assert ids(lab) == first
    assert len(first["instances"]) == 3 and first["profiles"][0].startswith("AIPA")


def test_a_students_own_run_and_the_checkpoints_share_their_ids(lab: labkit.Lab) -> None:
    """A student's run does more than the steps (the metadata service hands out sessions, cells
    describe, a call is refused): the ids the series shows must still be those of `reset --to`."""
    ec2 = lab.client("ec2")
    lab.reset()
    solutions.notebook_01(lab)
    lab.instance(APP_SERVER).run("aws iam list-users")  # no credentials yet
    solutions.notebook_02(lab)
    solutions.notebook_03(lab)
    box = lab.instance(INSTANCE)
    assert box.run("aws iam list-users").ok  # a role session minted
    ec2.describe_instances()
    with pytest.raises(ec2.exceptions.ClientError):  # IncorrectState, as notebook 04 shows on purpose
        ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": PROFILE}, InstanceId=box.id)
    own = ids(lab)
    lab.reset(to="04")
    assert ids(lab) == own


def test_notebook_04s_operator_leaves_nothing_behind(lab: labkit.Lab) -> None:
    """Notebook 04's operator attaches DemoRoleForEC2 to app-server once allowed iam:PassRole; the
    notebook then takes the role off app-server and deletes operator, and so does its replay."""
    lab.reset(to="05")
    assert OPERATOR not in [u["UserName"] for u in lab.client("iam").list_users()["Users"]]
    app_server = solutions.running_instance_id(lab, APP_SERVER)
    assert app_server is not None and solutions.association_of(lab, app_server) is None


def test_04s_instance_reads_the_bucket_and_the_table_through_the_role_once_allowed(
    environment_lab: labkit.Lab,
) -> None:
    """What notebook 04 shows, with the real CLI on demo-instance: refused both reads in AWS's words,
    S3's and DynamoDB's, until ReadAppData allows them; then it prints the object and the item, and its
    upload is still refused (s3:PutObject); the diagram's AWS APIs box names what the role reaches.

    In a lab sealed by environment: a lab sealed by the kernel resolves BUCKET.s3.amazonaws.com and
    dynamodb.us-east-1.amazonaws.com only once the sandbox answers DNS for AWS's names."""
    lab = environment_lab
    lab.reset(to="04")
    solutions.put_the_app_data(lab)
    box = lab.instance(INSTANCE)
    item = f"aws dynamodb get-item --table-name {TABLE} --key '{json.dumps({'order_id': ORDER['order_id']})}'"
    session = f"assumed-role/{ROLE}/{box.id}"

    head = box.run(f"aws s3 cp s3://{BUCKET}/{SETTINGS_KEY} -")
    get = box.run(f"aws s3api get-object --bucket {BUCKET} --key {SETTINGS_KEY} /dev/stdout")
    read = box.run(item)
    assert head.exit_code == 1 and "(403) when calling the HeadObject operation: Forbidden" in head.stderr, head
    assert get.exit_code == 255 and get.stderr.strip() == (
        f"An error occurred (AccessDenied) when calling the GetObject operation: User: arn:aws:sts::123456789012:"
        f'{session} is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::{BUCKET}/{SETTINGS_KEY}" '
        "because no identity-based policy allows the s3:GetObject action"
    )
    assert read.exit_code == 255 and read.stderr.strip() == (
        "An error occurred (AccessDeniedException) when calling the GetItem operation: User: "
        f"arn:aws:sts::123456789012:{session} is not authorized to perform: dynamodb:GetItem on resource: "
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE} because no identity-based policy allows the "
        "dynamodb:GetItem action"
    )

    solutions.let_the_role_read_the_app_data(lab)
    head, read = box.run(f"aws s3 cp s3://{BUCKET}/{SETTINGS_KEY} -"), box.run(item)
    upload = box.run(f"echo changed | aws s3 cp - s3://{BUCKET}/{SETTINGS_KEY}")
    assert (head.exit_code, head.stdout) == (0, SETTINGS.decode()), head
    assert (read.exit_code, json.loads(read.stdout)) == (0, {"Item": ORDER}), read
    assert (
        upload.exit_code == 1
        and (
            f'{session} is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::{BUCKET}/{SETTINGS_KEY}" '
            "because no identity-based policy allows the s3:PutObject action"
        )
        in upload.stderr
    ), upload
    assert lab.client("s3").get_object(Bucket=BUCKET, Key=SETTINGS_KEY)["Body"].read() == SETTINGS
    drawn = labkit.diagram(lab, INSTANCE)
    assert drawn.boxes[0] == ("IAM role", (ROLE, "IAMReadOnlyAccess", f"{APP_DATA_POLICY} (inline)"))
    assert drawn.boxes[4] == ("AWS APIs", ("dynamodb: GetItem", "iam: Get*, List* +4", "s3: GetObject"))


def test_04s_replay_leaves_the_data_and_takes_the_grant_away(lab: labkit.Lab) -> None:
    """After 04 the bucket holds the settings and the table the order, for 06 to clean up; the inline
    policy ReadAppData is gone again, as 05 expects the role (its revocation lists the role's inline
    policies)."""
    lab.reset(to="05")
    s3, dynamodb = lab.client("s3"), lab.client("dynamodb")
    assert s3.get_object(Bucket=BUCKET, Key=SETTINGS_KEY)["Body"].read() == SETTINGS
    assert dynamodb.get_item(TableName=TABLE, Key={"order_id": ORDER["order_id"]})["Item"] == ORDER
    assert lab.client("iam").list_role_policies(RoleName=ROLE)["PolicyNames"] == []


def test_after_05s_revocation_a_reset_to_06_waits_for_nothing_and_the_instance_works(lab: labkit.Lab) -> None:
    """05's replay revokes DemoRoleForEC2's older sessions with this whole second as the cutoff (no session
    exists yet in a replayed lab): the first session handed out after the reset, in the same second or
    later, is not denied, and the reset does not wait out a second: it takes less than a second more than
    the reset to 05, which replays everything but 05's own steps (timed against it, not against a clock
    of its own, so that a slow machine is not taken for a wait)."""
    lab.reset(to="06")  # each timed reset below then ends the same instances first
    began = time.monotonic()
    lab.reset(to="05")
    before = time.monotonic() - began
    began = time.monotonic()
    lab.reset(to="06")
    took = time.monotonic() - began - before
    listed = lab.instance(INSTANCE).run("aws iam list-users --query 'Users[].UserName'")
    assert listed.exit_code == 0, listed.stderr
    policies = lab.client("iam").list_role_policies(RoleName=PROFILE)["PolicyNames"]
    assert policies == ["AWSRevokeOlderSessions"] and took < 0.9, (policies, took, before)


def test_the_administrator_keys_do_not_follow_the_seed(lab: labkit.Lab) -> None:
    before = lab.info.admin_access_key_id
    lab.reset(to="03")
    assert lab.client("sts").get_caller_identity()["Arn"].endswith(":user/admin")
    assert lab.info.admin_access_key_id == before


def test_checkpoint_names() -> None:
    assert checkpoint(3) == checkpoint("3") == checkpoint("03") == "03"
    assert checkpoint(7) == "07"  # the challenge
    with pytest.raises(labkit.CheckpointNotFound) as caught:
        checkpoint("8")
    assert str(caught.value).startswith("There is no notebook 8; the checkpoints are 00, 01, 02, 03, 04, 05, 06, 07")


def test_each_step_names_the_notebook_that_teaches_it() -> None:
    for number, step in solutions.STEPS.items():
        assert step.__doc__ is not None and step.__doc__.startswith(f"Taught in {NOTEBOOKS[number][:-6]}")
