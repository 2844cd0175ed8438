"""IAM's eventual consistency, as a lab option: `labkit up --iam-delay SECONDS` (labkit/labprocess/propagation.py).

What AWS does, and where it says so:
- IAM User Guide, "Troubleshooting IAM: Changes that I make are not always immediately visible"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency):
  IAM is eventually consistent; a change takes time to reach every endpoint, so a detached policy
  can keep allowing a role's sessions for a few seconds, and an attached one not allow them yet.
- EC2 User Guide, "IAM roles for Amazon EC2": "After you create an IAM role, it may take several
  seconds for the permissions to propagate. If your first attempt to launch an instance with a role
  fails, wait a few seconds before trying again" (quoted in hashicorp/terraform#1885). The refusal
  is `InvalidParameterValue: Value (NAME) for parameter iamInstanceProfile.name is invalid. Invalid
  IAM Instance Profile name` from RunInstances (hashicorp/terraform#9474) and from
  AssociateIamInstanceProfile and ReplaceIamInstanceProfileAssociation, which Terraform's AWS
  provider retries for that reason (hashicorp/terraform-provider-aws#3055, #6079: "IAM unfortunately
  does not provide a better error code or message for eventual consistency"); for an ARN,
  `…iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN`.

Every test here runs real lab processes and waits in real time: DELAY is short, and each "right
after" check is made well within it (asserted, so that a machine too slow to see it says so).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import labkit
from conftest import create_role, kill_until_silent
from labkit.catalogue import AL2023, PROFILE, READ_ONLY, ROLE, SECOND_PROFILE, SECOND_ROLE
from labkit.lab import up
from labkit.solutions import launch

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

DELAY = 2.0
LIST_USERS = "aws iam list-users --query 'Users[].UserName' --output text"
LABKIT = str(Path(sys.executable).parent / "labkit")
DENIED = "An error occurred (AccessDenied) when calling the ListUsers operation"


def labkit_command(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABKIT_HOME": str(home)}
    return subprocess.run([LABKIT, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def delayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.Lab]:
    """A lab of its own, started with `--iam-delay DELAY`."""
    home = tmp_path_factory.mktemp("delayed")
    info, started = up(home, iam_delay=DELAY)
    assert started and info.iam_delay == DELAY
    lab = labkit.connect(home)
    yield lab
    labkit.down(home)


class Clock:
    """Seconds since a change was acknowledged, to check that a "right after" is within DELAY."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def within_the_delay(self) -> None:
        elapsed = time.monotonic() - self.start
        assert elapsed < DELAY * 0.75, f"this machine took {elapsed:.2f} s to look: too slow to see a {DELAY} s delay"

    def past_the_delay(self) -> None:
        time.sleep(max(0.0, self.start + DELAY + 0.25 - time.monotonic()))


def instance_with_the_role(lab: labkit.Lab) -> labkit.Instance:
    """demo-instance holding DemoRoleForEC2 (IAMReadOnlyAccess), every change to them propagated."""
    lab.reset()
    iam, ec2 = lab.client("iam"), lab.client("ec2")
    made = Clock()
    create_role(iam)
    instance_id = launch(lab, "demo-instance")
    made.past_the_delay()
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": PROFILE}, InstanceId=instance_id)
    box = lab.instance("demo-instance")
    assert box.run(LIST_USERS).ok  # the role session is allowed, and the instance's aws is warm
    return box


def ec2_refusal(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def test_a_role_session_keeps_a_detached_policy_until_the_delay_has_passed(delayed: labkit.Lab) -> None:
    box = instance_with_the_role(delayed)
    iam = delayed.client("iam")

    iam.detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    detached = Clock()
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []  # IAM itself: at once
    right_after = box.run(LIST_USERS)
    detached.within_the_delay()
    assert right_after.ok and right_after.stdout.split() == ["admin", "alice", "bob", "carol"]
    detached.past_the_delay()
    later = box.run(LIST_USERS)
    assert not later.ok and later.stderr.strip().startswith(DENIED), later

    iam.attach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    attached = Clock()
    right_after = box.run(LIST_USERS)
    attached.within_the_delay()
    assert right_after.stderr.strip().startswith(DENIED)  # the attach has not reached the instance yet
    attached.past_the_delay()
    assert box.run(LIST_USERS).ok


def test_an_inline_policy_reaches_role_sessions_after_the_delay_too(delayed: labkit.Lab) -> None:
    box = instance_with_the_role(delayed)
    iam = delayed.client("iam")
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*"}]}

    iam.put_role_policy(RoleName=ROLE, PolicyName="NoListing", PolicyDocument=json.dumps(deny))
    put = Clock()
    right_after = box.run(LIST_USERS)
    put.within_the_delay()
    assert right_after.ok
    put.past_the_delay()
    denied = box.run(LIST_USERS)
    assert denied.stderr.strip().startswith(DENIED) and "NoListing" not in denied.stderr  # moto's short sentence

    iam.delete_role_policy(RoleName=ROLE, PolicyName="NoListing")
    deleted = Clock()
    right_after = box.run(LIST_USERS)
    deleted.within_the_delay()
    assert right_after.stderr.strip().startswith(DENIED)
    deleted.past_the_delay()
    assert box.run(LIST_USERS).ok


def test_ec2_refuses_a_new_instance_profile_until_the_delay_has_passed(delayed: labkit.Lab) -> None:
    delayed.reset()
    iam, ec2 = delayed.client("iam"), delayed.client("ec2")
    create_role(iam)
    made = Clock()
    image = ec2.describe_images(Owners=["amazon"], Filters=AL2023)["Images"][0]["ImageId"]
    run = {"ImageId": image, "MinCount": 1, "MaxCount": 1, "IamInstanceProfile": {"Name": PROFILE}}
    assert ec2_refusal(ec2.run_instances, **run) == (
        "InvalidParameterValue",
        f"Value ({PROFILE}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
    )
    assert delayed.instances() == []  # refused before anything was launched
    instance_id = launch(delayed, "demo-instance")
    association = {"IamInstanceProfile": {"Name": PROFILE}, "InstanceId": instance_id}
    assert ec2_refusal(ec2.associate_iam_instance_profile, **association)[0] == "InvalidParameterValue"
    made.within_the_delay()
    made.past_the_delay()
    associated = ec2.associate_iam_instance_profile(**association)["IamInstanceProfileAssociation"]
    assert delayed.instance("demo-instance").run(LIST_USERS).ok

    create_role(iam, SECOND_ROLE)
    second = Clock()
    arn = iam.get_instance_profile(InstanceProfileName=SECOND_PROFILE)["InstanceProfile"]["Arn"]
    replacement = {"IamInstanceProfile": {"Arn": arn}, "AssociationId": associated["AssociationId"]}
    assert ec2_refusal(ec2.replace_iam_instance_profile_association, **replacement) == (
        "InvalidParameterValue",
        f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
    )
    second.within_the_delay()
    second.past_the_delay()
    replaced = ec2.replace_iam_instance_profile_association(**replacement)["IamInstanceProfileAssociation"]
    assert replaced["IamInstanceProfile"]["Arn"] == arn


def test_the_delay_outlives_a_crash_and_a_restart_and_replayed_changes_count_as_propagated(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    up(home, iam_delay=DELAY)
    lab = labkit.connect(home)
    try:
        box = instance_with_the_role(lab)
        assert stat.S_IMODE((home / "options.json").stat().st_mode) == 0o600
        kill_until_silent(lab)

        back = labkit.connect(home)  # as a notebook's first cell does: no option given
        assert back.info.iam_delay == DELAY and back.info.restored > 0 and back.info.problem == ""
        box = back.instance("demo-instance")
        assert box.run(LIST_USERS).ok  # the replayed CreateRole, AttachRolePolicy… are not "on their way"
        back.client("iam").detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
        detached = Clock()
        right_after = box.run(LIST_USERS)
        detached.within_the_delay()
        assert right_after.ok  # and the delay still applies after the restart
        detached.past_the_delay()
        assert box.run(LIST_USERS).stderr.strip().startswith(DENIED)

        labkit.down(home)
        assert up(home)[0].iam_delay == DELAY  # `labkit down; labkit up` keeps it too
        labkit.down(home)
        assert up(home, iam_delay=0)[0].iam_delay == 0  # until `--iam-delay 0`
        again = labkit.connect(home)
        again.client("iam").attach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
        assert again.instance("demo-instance").run(LIST_USERS).ok  # at once
        labkit.down(home)
        assert up(home)[0].iam_delay == 0
    finally:
        labkit.down(home)


def test_off_by_default_iam_changes_apply_at_once_and_status_says_nothing(fresh_lab: labkit.Lab) -> None:
    assert fresh_lab.info.iam_delay == 0
    iam, ec2 = fresh_lab.client("iam"), fresh_lab.client("ec2")
    create_role(iam)
    instance_id = launch(fresh_lab, "demo-instance", profile=PROFILE)  # a profile made a moment ago
    association = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    assert association["InstanceId"] == instance_id
    box = fresh_lab.instance("demo-instance")
    assert box.run(LIST_USERS).ok
    iam.detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    assert box.run(LIST_USERS).stderr.strip().startswith(DENIED)  # the next call, at once
    assert "IAM delay" not in labkit_command(fresh_lab.home, "status").stdout
    assert json.loads(labkit_command(fresh_lab.home, "status", "--json").stdout)["iam_delay"] == 0


def test_labkit_up_takes_the_delay_and_status_shows_it(tmp_path: Path) -> None:
    try:
        started = labkit_command(tmp_path, "up", "--iam-delay", "1.5")
        assert started.returncode == 0, started.stderr
        said = ("IAM delay: 1.5 s (role policy changes reach role sessions, and new instance profiles EC2, "
                "1.5 s later, as on AWS")  # fmt: skip
        assert started.stdout.splitlines()[-1] == f"{said}; `--iam-delay 0` turns it off)."
        assert f"  {said})" in labkit_command(tmp_path, "status").stdout.splitlines()
        assert json.loads(labkit_command(tmp_path, "status", "--json").stdout)["iam_delay"] == 1.5
        other = labkit_command(tmp_path, "up", "--iam-delay", "3")
        assert other.returncode == 1 and other.stderr.strip() == (
            "labkit: this lab runs with --iam-delay 1.5; a lab takes its delay when it starts: "
            "`labkit down`, then `labkit up --iam-delay 3`."
        )
        assert labkit_command(tmp_path, "up").returncode == 0
        for bad in ("-1", "nan", "601", "soon"):
            refused = labkit_command(tmp_path, "up", "--iam-delay", bad)
            assert refused.returncode == 2 and "argument --iam-delay:" in refused.stderr, bad
    finally:
        labkit_command(tmp_path, "down")


def test_the_role_as_seen_from_elsewhere_is_the_role_as_it_was_delay_seconds_ago() -> None:
    """The rule itself, on a clock of its own: a detach at 10, an attach at 11, a delay of 2."""
    from labkit.labprocess.propagation import Notes, Policies

    attached, detached = Policies((), ("IAMReadOnlyAccess",)), Policies((), ())
    notes = Notes()
    notes.changed("Role", attached, now=10.0, delay=2.0)  # before the detach: attached
    notes.changed("Role", detached, now=11.0, delay=2.0)  # before the attach: detached
    assert notes.seen("Role", now=11.5, delay=2.0) == attached  # neither has arrived
    assert notes.seen("Role", now=12.5, delay=2.0) == detached  # the detach has
    assert notes.seen("Role", now=13.0, delay=2.0) is None  # both: the role as it is
    assert notes.roles == {}  # nothing kept once it has arrived
    notes.profiles["New"] = 20.0
    assert [notes.young("New", now=t, delay=2.0) for t in (20.0, 21.9, 22.0, 30.0)] == [True, True, False, False]


def test_reset_to_a_checkpoint_waits_for_ec2_to_see_each_new_profile(delayed: labkit.Lab) -> None:
    """`labkit reset --to NN` replays the notebooks' steps, which attach profiles made a moment
    before: with the delay on, EC2 refuses them for DELAY seconds, as on AWS. Before: the reset
    stopped at notebook 03 with InvalidParameterValue (a traceback from `labkit reset --to 04`)."""
    began = time.monotonic()
    delayed.reset(to="06", say=False)
    assert delayed.check("05").ok and time.monotonic() - began >= DELAY  # it did wait, and got there


def test_an_option_that_cannot_be_saved_leaves_no_file_behind(tmp_path: Path) -> None:
    """options.json is written in one place, whole or not at all (labkit/labprocess/options.py): when
    it cannot be replaced, the file begun beside it is removed, for the delay as for the seal."""
    from labkit.labprocess.options import OPTIONS_FILE, chosen_delay, chosen_sealed

    (tmp_path / OPTIONS_FILE).mkdir()  # os.replace cannot put a file in its place
    said: list[str] = []
    assert chosen_delay(tmp_path, 5.0, said.append) == 5.0
    assert said and "could not be written" in said[0] and "--iam-delay 5 holds until the lab stops" in said[0]
    assert chosen_sealed(tmp_path, False, said.append) is False  # before: IsADirectoryError, and no lab started
    assert "could not be written" in said[1] and "--no-sealed holds until the lab stops" in said[1]
    assert sorted(path.name for path in tmp_path.iterdir()) == [OPTIONS_FILE]


def test_options_that_cannot_be_written_hold_for_the_run_and_say_so(tmp_path: Path) -> None:
    """A real write error (`prlimit --fsize=0`: every write fails, as on a full disk). Before, a
    `--no-sealed` that could not be saved raised from inside labkit and the lab did not start."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom labkit.labprocess.options import chosen_delay, chosen_sealed\n"
        "home = Path(sys.argv[1])\n"
        "print(chosen_delay(home, 5.0), chosen_sealed(home, False), sep='|')\n"
    )
    ran = subprocess.run(["prlimit", "--fsize=0", sys.executable, "-c", script, str(tmp_path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert "could not be written" in lines[0] and "--iam-delay 5 holds until the lab stops" in lines[0]
    assert "could not be written" in lines[1] and "--no-sealed holds until the lab stops" in lines[1]
    assert lines[2] == "5.0|False"
    assert list(tmp_path.iterdir()) == []  # nothing begun is left behind
    control = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert control.stdout == "5.0|False\n" and (tmp_path / "options.json").exists()  # without the limit: saved
