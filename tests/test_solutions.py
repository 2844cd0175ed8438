"""Checkpoints: `reset --to NN` replays the notebooks before NN, the same ids every time."""

from __future__ import annotations

import time
from typing import Any

import pytest

import labkit
from labkit import solutions
from labkit.catalogue import APP_SERVER, INSTANCE, NOTEBOOKS, OPERATOR, PROFILE, checkpoint


def ids(lab: labkit.Lab) -> dict[str, Any]:
    iam = lab.client("iam")
    return {
        "instances": sorted(i.instance_id for i in lab.instances()),
        "roles": sorted(r["RoleId"] for r in iam.list_roles()["Roles"]),
        "profiles": sorted(p["InstanceProfileId"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        "users": sorted(u["UserId"] for u in iam.list_users()["Users"]),
    }


@pytest.mark.parametrize("number", ["01", "02", "03", "04", "05", "06"])
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


def test_after_05s_revocation_a_reset_to_06_waits_for_nothing_and_the_instance_works(lab: labkit.Lab) -> None:
    """05's replay revokes DemoRoleForEC2's older sessions with this whole second as the cutoff (no session
    exists yet in a replayed lab): the first session handed out after the reset, in the same second or
    later, is not denied, and the reset does not wait out a second."""
    began = time.monotonic()
    lab.reset(to="06")
    took = time.monotonic() - began
    listed = lab.instance(INSTANCE).run("aws iam list-users --query 'Users[].UserName'")
    assert listed.exit_code == 0, listed.stderr
    policies = lab.client("iam").list_role_policies(RoleName=PROFILE)["PolicyNames"]
    assert policies == ["AWSRevokeOlderSessions"] and took < 1.9, (policies, took)


def test_the_administrator_keys_do_not_follow_the_seed(lab: labkit.Lab) -> None:
    before = lab.info.admin_access_key_id
    lab.reset(to="03")
    assert lab.client("sts").get_caller_identity()["Arn"].endswith(":user/admin")
    assert lab.info.admin_access_key_id == before


def test_checkpoint_names() -> None:
    assert checkpoint(3) == checkpoint("3") == checkpoint("03") == "03"
    with pytest.raises(labkit.CheckpointNotFound) as caught:
        checkpoint("7")
    assert str(caught.value).startswith("There is no notebook 7; the checkpoints are 00, 01, 02, 03, 04, 05, 06")


def test_each_step_names_the_notebook_that_teaches_it() -> None:
    for number, step in solutions.STEPS.items():
        assert step.__doc__ is not None and step.__doc__.startswith(f"Taught in {NOTEBOOKS[number][:-6]}")
