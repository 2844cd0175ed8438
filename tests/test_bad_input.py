"""Bad input gets one clear answer and leaves the lab as it was.

AWS's own errors are shown as AWS words them (they are the lesson); labkit's say what happened and
what to type next, with no traceback from inside labkit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

import labkit

LABKIT = str(Path(sys.executable).parent / "labkit")


def snapshot(lab: labkit.Lab) -> dict[str, Any]:
    iam, ec2 = lab.client("iam"), lab.client("ec2")
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    return {
        "users": [u["UserName"] for u in iam.list_users()["Users"]],
        "roles": {
            r: [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=r)["AttachedPolicies"]] for r in roles
        },
        "profiles": {
            p["InstanceProfileName"]: [r["RoleName"] for r in p["Roles"]]
            for p in iam.list_instance_profiles()["InstanceProfiles"]
        },
        "instances": [(i.instance_id, i.state, i.instance_profile_arn) for i in lab.instances()],
        "associations": [
            (a["InstanceId"], a["IamInstanceProfile"]["Arn"])
            for a in ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
        ],
    }


@pytest.fixture
def at_04(lab: labkit.Lab) -> Iterator[labkit.Lab]:
    """A lab as after notebook 03; each test must leave it exactly so."""
    lab.reset(to="04")
    before = snapshot(lab)
    yield lab
    assert snapshot(lab) == before


def aws_error(call: Callable[[], Any]) -> dict[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return {"Code": caught.value.response["Error"]["Code"], "Message": caught.value.response["Error"]["Message"]}


def test_an_instance_id_that_does_not_exist(at_04: labkit.Lab) -> None:
    with pytest.raises(labkit.InstanceNotFound, match=r"^No instance i-0123456789abcdef0 in this lab; instances: i-"):
        at_04.instance("i-0123456789abcdef0")
    associate = at_04.client("ec2").associate_iam_instance_profile
    assert aws_error(
        lambda: associate(IamInstanceProfile={"Name": "DemoRoleForEC2"}, InstanceId="i-0123456789abcdef0")
    ) == {
        "Code": "InvalidInstanceID.NotFound",
        "Message": "The instance ID 'i-0123456789abcdef0' does not exist",
    }


def test_a_terminated_instance(lab: labkit.Lab) -> None:
    lab.reset(to="04")
    demo = lab.instance("demo-instance")
    lab.client("ec2").terminate_instances(InstanceIds=[demo.id])
    before = snapshot(lab)
    with pytest.raises(
        labkit.InstanceNotRunning, match=rf"^Instance {demo.id} \(demo-instance, terminated\) is not running"
    ):
        lab.instance(demo.id)
    assert snapshot(lab) == before


@pytest.mark.slow
def test_an_instance_id_from_another_lab(at_04: labkit.Lab, tmp_path: Path) -> None:
    elsewhere = labkit.connect(tmp_path / "other")
    ours = {i.instance_id for i in at_04.instances()}
    try:  # every lab draws ids from the same seed: its first launches give the ids ours has
        foreign = next(
            i for i in (labkit.solutions.launch(elsewhere, "foreign") for _ in range(len(ours) + 1)) if i not in ours
        )
    finally:
        labkit.down(elsewhere.home)
    with pytest.raises(labkit.InstanceNotFound, match=rf"^No instance {foreign} in this lab; instances: "):
        at_04.instance(foreign)


def test_a_role_or_profile_that_does_not_exist(at_04: labkit.Lab) -> None:
    iam, ec2 = at_04.client("iam"), at_04.client("ec2")
    instance_id = at_04.instance("demo-instance").id
    assert aws_error(lambda: iam.get_role(RoleName="NoSuchRole")) == {
        "Code": "NoSuchEntity",
        "Message": "The role with name NoSuchRole cannot be found.",
    }
    assert aws_error(lambda: iam.get_instance_profile(InstanceProfileName="NoSuchProfile")) == {
        "Code": "NoSuchEntity",
        "Message": "Instance Profile NoSuchProfile cannot be found.",
    }
    replace = ec2.replace_iam_instance_profile_association
    association = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    assert aws_error(
        lambda: replace(IamInstanceProfile={"Name": "NoSuchProfile"}, AssociationId=association["AssociationId"])
    ) == {
        "Code": "InvalidParameterValue",
        "Message": "Value (NoSuchProfile) for parameter iamInstanceProfile.name is invalid. "
        "Invalid IAM Instance Profile name",
    }
    missing_arn = "arn:aws:iam::123456789012:instance-profile/NoSuchProfile"  # AWS then says `ARN` (terraform #9474)
    assert aws_error(
        lambda: replace(IamInstanceProfile={"Arn": missing_arn}, AssociationId=association["AssociationId"])
    ) == {
        "Code": "InvalidParameterValue",
        "Message": f"Value ({missing_arn}) for parameter iamInstanceProfile.arn is invalid. "
        "Invalid IAM Instance Profile ARN",
    }
    with pytest.raises(
        labkit.ResourceNotFound, match="^No instance profile NoSuchProfile in this lab; profiles: DemoRoleForEC2"
    ):
        labkit.diagram(at_04, instance_id, profile="NoSuchProfile")


def test_a_role_or_profile_that_exists_already(at_04: labkit.Lab) -> None:
    iam = at_04.client("iam")
    assert aws_error(lambda: iam.create_role(RoleName="DemoRoleForEC2", AssumeRolePolicyDocument="{}")) == {
        "Code": "EntityAlreadyExists",
        "Message": "Role with name DemoRoleForEC2 already exists.",
    }
    assert aws_error(lambda: iam.create_instance_profile(InstanceProfileName="DemoRoleForEC2")) == {
        "Code": "EntityAlreadyExists",
        "Message": "Instance Profile DemoRoleForEC2 already exists.",
    }


def test_a_trust_policy_that_is_not_json(at_04: labkit.Lab) -> None:
    create = at_04.client("iam").create_role
    assert aws_error(lambda: create(RoleName="Broken", AssumeRolePolicyDocument="{'Version': 2012}")) == {
        "Code": "MalformedPolicyDocument",
        "Message": "This policy contains invalid Json",
    }


def test_a_managed_policy_that_does_not_exist(at_04: labkit.Lab) -> None:
    attach = at_04.client("iam").attach_role_policy
    arn = "arn:aws:iam::aws:policy/IAMReadOnlyAcess"
    assert aws_error(lambda: attach(RoleName="DemoRoleForEC2", PolicyArn=arn)) == {
        "Code": "NoSuchEntity",
        "Message": f"Policy {arn} does not exist or is not attachable.",
    }
    with pytest.raises(labkit.ResourceNotFound, match=f"^No managed policy {arn} in this lab"):
        labkit.policy_table(at_04, [arn])


def test_a_notebook_out_of_order(at_04: labkit.Lab) -> None:
    with pytest.raises(
        labkit.LabNotReady, match="^The lab is not ready for notebook 06; missing: instance profile Demo"
    ):
        at_04.ready_for("06")


def test_a_checkpoint_that_does_not_exist(at_04: labkit.Lab) -> None:
    env = {**os.environ, "LABKIT_HOME": str(at_04.home)}
    done = subprocess.run([LABKIT, "reset", "--yes", "--to", "12"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "labkit: There is no notebook 12; the checkpoints are 00, 01, 02, 03, 04, 05, 06, 07 (00-welcome.ipynb, "
        "01-the-problem.ipynb, 02-create-the-role.ipynb, 03-attach-the-role.ipynb, 04-role-permissions.ipynb, "
        "05-instance-metadata.ipynb, 06-review.ipynb, 07-your-turn.ipynb).\n"
    )


def unretried(lab: labkit.Lab, service: str) -> Any:
    """A client of the lab's administrator that sends each request once (an unreadable answer is not retried)."""
    import boto3
    from botocore.config import Config

    from labkit.connection import sealed_botocore_session

    env = lab.env()
    session = boto3.session.Session(botocore_session=sealed_botocore_session(), region_name=env["AWS_DEFAULT_REGION"])
    return session.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                          config=Config(retries={"total_max_attempts": 1}))  # fmt: skip


def unparsable(action: str) -> str:
    """The line's pattern for a part whose answer to `action` botocore cannot parse."""
    return (
        rf"could not be read: the lab's answer to {action} is not XML botocore can parse \(not well-formed "
        r"\(invalid token\): line \d+, column \d+\): something in the lab \(a name, a tag\) holds a character XML "
        r"cannot carry; delete it, or `labkit reset --to NN`"
    )


@pytest.mark.slow
def test_status_says_in_one_line_what_it_could_not_read_and_shows_the_rest(lab: labkit.Lab) -> None:
    """Through a path that remains: moto takes a user name and a key pair name holding ESC (IAM and EC2
    would refuse them) and writes it raw into ListUsers and DescribeInstances, which botocore cannot parse."""
    from botocore.parsers import ResponseParserError
    from IPython.core.formatters import HTMLFormatter

    from labkit.catalogue import AL2023

    lab.reset(to="04")
    iam, ec2 = unretried(lab, "iam"), unretried(lab, "ec2")
    image = ec2.describe_images(Owners=["amazon"], Filters=AL2023)["Images"][0]["ImageId"]
    try:
        for make in (lambda: iam.create_user(UserName="a\x1bb"), lambda: ec2.create_key_pair(KeyName="k\x1b"),
                     lambda: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName="k\x1b")):  # fmt: skip
            with pytest.raises(ResponseParserError):  # made, but its own answer is unreadable
                make()
        with pytest.raises(ResponseParserError):  # a positive control: the lab's answers are unreadable now
            lab.client("iam").list_users()
        with pytest.raises(ResponseParserError):
            lab.instances()
        env = {**os.environ, "LABKIT_HOME": str(lab.home)}
        shown = subprocess.run([LABKIT, "status"], env=env, capture_output=True, text=True, timeout=120)
        assert (shown.returncode, shown.stderr) == (0, "")
        lines = shown.stdout.splitlines()
        assert lines[0].startswith(f"Lab {lab.info.pid} running at ") and "  roles:     DemoRoleForEC2" in lines
        assert re.fullmatch("  users:     " + unparsable("iam:ListUsers"), lines[1]), lines[1]
        instances = next(line for line in lines if line.startswith("  instances:"))
        assert re.fullmatch("  instances: " + unparsable("ec2:DescribeInstances"), instances), instances
        assert lines[-1] == "Progress: not known: the notebooks' checks read the instances, which could not be read"
        said = subprocess.run([LABKIT, "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
        report = json.loads(said.stdout)
        assert (said.returncode, said.stderr, report["running"], report["roles"]) == (0, "", True, ["DemoRoleForEC2"])
        assert (report["users"], report["instances"], report["progress"], report["furthest"]) == (None,) * 4
        assert set(report["unreadable"]) == {"users", "instances", "progress"}
        assert re.fullmatch(unparsable("iam:ListUsers"), report["unreadable"]["users"])
        held = lab.status()  # what a notebook's `lab.status()` shows: before, ResponseParserError from inside labkit
        assert (held.users, held.roles, held.instances, set(held.unreadable)) == ([], ["DemoRoleForEC2"], [],
                                                                                 {"users", "instances"})  # fmt: skip
        assert re.fullmatch(unparsable("iam:ListUsers"), held.unreadable["users"])
        shown_html = HTMLFormatter()(held)  # as a notebook shows it
        assert "DemoRoleForEC2" in shown_html and "users: could not be read" in shown_html
    finally:
        lab.reset()
