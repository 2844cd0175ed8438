"""Checks: item by item, what a notebook builds, and what to do when something is missing."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from test_cli import LABKIT

import labkit
from conftest import Demo, create_role
from labkit import solutions
from labkit.catalogue import (
    BUCKET,
    CHALLENGE,
    EC2_TRUST_POLICY,
    INSTANCE,
    LEGACY_SERVER,
    LEGACY_TOKEN,
    NOTEBOOKS,
    PROFILE,
    READ_ONLY,
    ROLE,
    SECOND_PROFILE,
    STARTER_USER,
)
from labkit.checks import CHECKS, PRECONDITIONS


def test_a_fresh_lab_is_not_ready_for_a_later_notebook(fresh_lab: labkit.Lab) -> None:
    with pytest.raises(labkit.LabNotReady) as caught:
        fresh_lab.ready_for("03")
    message = str(caught.value)
    assert message.startswith("The lab is not ready for notebook 03; missing: app-user exists, with IAMReadOnlyAccess;")
    assert "role DemoRoleForEC2 exists" in message
    assert message.endswith('Run `labkit reset --to 03` in a terminal (or lab.reset(to="03") here) to catch up.')


def test_a_report_names_what_is_missing_and_how_to_fix_it(fresh_lab: labkit.Lab) -> None:
    fresh_lab.reset(to="03")
    fresh_lab.client("iam").detach_role_policy(
        RoleName="DemoRoleForEC2", PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess"
    )
    report = fresh_lab.check("02")
    assert not report.ok
    assert [c.item for c in report.missing] == ["IAMReadOnlyAccess is attached to it"]
    assert str(report).splitlines()[0] == "Notebook 02: 1 of 4 items missing."
    assert (
        "✗ IAMReadOnlyAccess is attached to it: attach_role_policy (notebook 02), or run `labkit reset --to 03`"
        in str(report)
    )
    assert list(report.to_frame().columns) == ["", "item", "to fix"]


def test_a_credentials_file_left_on_app_server_is_noticed(fresh_lab: labkit.Lab) -> None:
    fresh_lab.reset(to="02")
    fresh_lab.instance("app-server").run("mkdir -p ~/.aws && echo '[default]' > ~/.aws/credentials")
    assert [c.item for c in fresh_lab.check("01").missing] == ["no ~/.aws/credentials on app-server"]


def test_attaching_the_role_is_what_notebook_03_checks(demo: Demo) -> None:
    assert [c.item for c in demo.lab.check("03").missing] == ["demo-instance holds DemoRoleForEC2"]
    demo.attach()
    assert demo.lab.check("03").ok


def test_an_error_in_a_notebook_shows_its_message_not_a_traceback() -> None:
    error = labkit.LabNotReady("The lab is not ready for notebook 03; ...")
    assert error._render_traceback_() == ["\x1b[1;31mLabNotReady\x1b[0m: The lab is not ready for notebook 03; ..."]


BUILDS = {
    "01": ["app-user exists, with IAMReadOnlyAccess", "app-server is running", "app-user has no access key left"],
    "02": [
        "role DemoRoleForEC2 exists",
        "EC2 may assume it (trust policy)",
        "IAMReadOnlyAccess is attached to it",
        "instance profile DemoRoleForEC2 holds the role",
    ],
    "03": ["demo-instance is running", "demo-instance holds DemoRoleForEC2"],
    "04": ["instance profile DemoEC2ReadOnlyRole holds its role"],
    "05": [
        "DemoRoleForEC2's older sessions are revoked (AWSRevokeOlderSessions)",
        "legacy-server runs, holding DemoRoleForEC2",
        "legacy-server requires IMDSv2",
    ],
    "06": [
        "the series' instances are terminated",
        "its instance profiles are deleted",
        "its roles are deleted",
        "bucket acme-app-data-123456789012 is deleted",
        "table acme-app-orders is deleted",
        "app-user is deleted",
    ],
}


@pytest.mark.parametrize("number", list(BUILDS))
def test_each_check_fails_before_its_notebook_and_names_what_it_builds(lab: labkit.Lab, number: str) -> None:
    """The lab as it stands before notebook NN lacks exactly what NN builds, and NN's step supplies
    it. (Before 04, the lab already holds what 04 puts back; before 06, all that 06 deletes is there.)

    Guards against a check that says ✓ whatever the lab holds (checks were only ever tested to
    pass). The mutations, in labkit/checks.py: for 04, the line
    `_profile_roles(iam, SECOND_PROFILE) == [SECOND_ROLE],` replaced by `True,`; for 05,
    `tokens(legacy) == "required"` replaced by `True`; for 06, `"06": _after_06,` by `"06": lambda lab: [],`.
    """
    lab.reset(to=number)
    report = lab.check(number)
    assert not report.ok
    assert [c.item for c in report.missing] == BUILDS[number]
    solutions.STEPS[number](lab)
    assert lab.check(number).ok, str(lab.check(number))


def test_what_notebook_04_puts_back_is_checked_item_by_item(lab: labkit.Lab) -> None:
    """A lab left in the middle of 04 (alice's key on demo-instance, the policy detached, the
    second role attached) fails 04's check on each of those items, not only on the second role.

    Guards against any of 04's other items saying ✓ whatever the lab holds (e.g. in
    labkit/checks.py, `not keys` replaced by `True`)."""
    lab.reset(to="05")
    iam, ec2 = lab.client("iam"), lab.client("ec2")
    key = iam.create_access_key(UserName=STARTER_USER)["AccessKey"]
    box = lab.instance(INSTANCE)
    assert box.run(f"aws configure set aws_access_key_id {key['AccessKeyId']}").ok
    iam.detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    association = solutions.association_of(lab, box.id)
    assert association is not None
    ec2.replace_iam_instance_profile_association(
        IamInstanceProfile={"Name": SECOND_PROFILE}, AssociationId=association["AssociationId"]
    )
    assert [c.item for c in lab.check("04").missing] == [
        "no ~/.aws/credentials on demo-instance",
        "alice has no access key",
        "IAMReadOnlyAccess is attached to DemoRoleForEC2 again",
        "demo-instance holds DemoRoleForEC2 again",
    ]


def test_every_notebook_of_the_catalogue_has_its_check() -> None:
    """Each notebook of the series is checked by CHECKS (what its replayed step builds); the challenge
    (07), the last, has no step to replay: labkit.challenge grades it (tests/test_challenge.py)."""
    assert [*CHECKS, CHALLENGE] == list(NOTEBOOKS)


LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def test_a_role_that_ec2_may_not_assume_fails_check_02_on_its_trust_alone(lab: labkit.Lab) -> None:
    """DemoRoleForEC2 built as notebook 02 builds it (IAMReadOnlyAccess attached, an instance profile
    holding it), but trusting Lambda: EC2 can never give it to an instance (03 would fail with
    AssumeRoleUnauthorizedAccess), so check 02 says ✗ on the trust policy, in the notebook and in
    `labkit check 02`, and the lab is not ready for 03. Once the trust names EC2, every item is ✓.

    Guards against check 02 looking only at whether the role exists (in labkit/checks.py,
    `trusted = role is not None and ec2_may_assume(...)` replaced by `trusted = role is not None`)."""
    lab.reset(to="02")
    iam = lab.client("iam")
    create_role(iam, ROLE, trust=LAMBDA_TRUST, policy=READ_ONLY)
    command = [LABKIT, "check", "02"]
    env = {**os.environ, "LABKIT_HOME": str(lab.home)}

    report = lab.check("02")
    shown = [
        "Notebook 02: 1 of 4 items missing.",
        "✓ role DemoRoleForEC2 exists",
        "✗ EC2 may assume it (trust policy): create it with the EC2 trust policy (notebook 02), "
        "or run `labkit reset --to 03`",
        "✓ IAMReadOnlyAccess is attached to it",
        "✓ instance profile DemoRoleForEC2 holds the role",
    ]
    assert str(report).splitlines() == shown
    assert [c.item for c in report.missing] == ["EC2 may assume it (trust policy)"]
    checked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert (checked.returncode, checked.stdout.splitlines(), checked.stderr) == (1, shown, "")
    with pytest.raises(labkit.LabNotReady) as caught:
        lab.ready_for("03")
    assert str(caught.value).startswith(
        "The lab is not ready for notebook 03; missing: EC2 may assume it (trust policy). "
    )

    iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(EC2_TRUST_POLICY))
    assert lab.check("02").ok, str(lab.check("02"))
    checked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        "✓ The lab holds everything notebook 02 builds.",
        "✓ role DemoRoleForEC2 exists",
        "✓ EC2 may assume it (trust policy)",
        "✓ IAMReadOnlyAccess is attached to it",
        "✓ instance profile DemoRoleForEC2 holds the role",
    ]
    assert str(lab.ready_for("03")).startswith("✓ Ready for notebook 03: the lab holds what notebooks 00-02 built.")


def test_after_the_series_05s_first_check_says_its_launch_token_is_spent(lab: labkit.Lab) -> None:
    """After the whole series, and notebooks 01-04 again, notebook 05's launch with ClientToken
    legacy-server-05 returns the terminated legacy-server, as EC2 does ("The client token is valid
    for at least 24 hours after the termination of the instance": EC2 User Guide, "Ensuring
    idempotency in Amazon EC2 API requests"), and its `%%instance legacy-server` cell fails. Its
    first check says so in one line, naming `labkit reset --to 05`; after that reset, 05 is ready.

    Fails on the code before this test (ready_for("05") said ✓ and 05 failed halfway)."""
    lab.reset(to="06")
    assert lab.ready_for("05").ok  # the token's legacy-server runs: running 05 again is fine
    solutions.STEPS["06"](lab)
    for number in solutions.before("05"):
        solutions.STEPS[number](lab)
    again = solutions.launch(
        lab, LEGACY_SERVER, profile=PROFILE, metadata_options={"HttpTokens": "optional"}, client_token=LEGACY_TOKEN
    )
    described = lab.client("ec2").describe_instances(InstanceIds=[again])["Reservations"][0]["Instances"][0]
    assert described["State"]["Name"] == "terminated"  # EC2's answer to the spent token: nothing new
    with pytest.raises(labkit.LabNotReady) as caught:
        lab.ready_for("05")
    assert str(caught.value) == (
        "The lab is not ready for notebook 05; missing: no terminated legacy-server from an earlier run (05's "
        'launch would return it). Run `labkit reset --to 05` in a terminal (or lab.reset(to="05") here) to catch up.'
    )
    lab.reset(to="05")
    assert lab.ready_for("05").ok


def test_notebook_05s_revocation_counts_only_as_the_console_writes_it(lab: labkit.Lab) -> None:
    """IAM User Guide, "Revoke IAM role temporary security credentials": *Revoke active sessions* adds
    the inline policy AWSRevokeOlderSessions, a Deny of every action to sessions issued before a time
    (DateLessThan on aws:TokenIssueTime). A policy of that name that denies nothing is no revocation.

    Guards against the check saying ✓ for the policy's name alone (in labkit/checks.py, `_revoked`
    returning True once get_role_policy answers)."""
    lab.reset(to="05")
    item = "DemoRoleForEC2's older sessions are revoked (AWSRevokeOlderSessions)"
    condition = {"DateLessThan": {"aws:TokenIssueTime": "2026-01-01T00:00:00Z"}}
    allows = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:Get*", "Resource": "*",
                                                      "Condition": condition}]}  # fmt: skip
    iam = lab.client("iam")
    iam.put_role_policy(RoleName=ROLE, PolicyName="AWSRevokeOlderSessions", PolicyDocument=json.dumps(allows))
    assert item in [c.item for c in lab.check("05").missing]
    solutions.revoke_older_sessions(lab, ROLE)
    assert item not in [c.item for c in lab.check("05").missing]


def test_06s_first_check_asks_for_04s_bucket_and_table_which_its_clean_up_deletes(lab: labkit.Lab) -> None:
    """06's clean-up empties and deletes 04's bucket, and deletes its table; without them (a lab whose
    04 ran before 04 made them) it would stop at NoSuchBucket. Its first check names both, and the
    reset that brings them back; after that reset, 06 is ready.

    Guards against the precondition saying ✓ whatever the lab holds (in labkit/checks.py,
    `_has_settings(lab)` or `_has_order(lab)` replaced by `True`), and against 06's replay leaving
    either behind."""
    lab.reset(to="06")
    assert lab.ready_for("06").ok
    solutions.delete_the_app_data(lab)
    with pytest.raises(labkit.LabNotReady) as caught:
        lab.ready_for("06")
    assert str(caught.value) == (
        "The lab is not ready for notebook 06; missing: bucket acme-app-data-123456789012 holds config/settings.json "
        "(notebook 04); table acme-app-orders holds order 1001 (notebook 04). Run `labkit reset --to 06` in a "
        'terminal (or lab.reset(to="06") here) to catch up.'
    )
    lab.client("s3").create_bucket(Bucket=BUCKET)  # an empty bucket is not 04's
    assert [c.item for c in PRECONDITIONS["06"](lab) if not c.ok][0].startswith(f"bucket {BUCKET} holds")
    lab.reset(to="06")
    assert lab.ready_for("06").ok
