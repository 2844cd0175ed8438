"""The challenge (notebook 07), graded for real: a lab at checkpoint 07, the reference solution from
the instructor's guide, the real grader running the real app on report-server, `labkit check 07`,
`labkit hint 07`, `labkit status --json` and `labkit reset` as commands.

One lab for the module (reset to 07 once, the reference solution applied once): each other solution
and each mistake is a change made to the solved lab and undone after its test (`changed`), and every
such test ends with the control that the grade is all ✓ again. Tests run in file order: the fresh
checkpoint first, the reset to 06 last.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_cli import LABKIT

import labkit
from conftest import REPO
from labkit.challenge import HINTS
from labkit.challenge.scene import APP
from labkit.checks import CheckReport
from labkit.solutions import association_of, launch, running_instance_id

pytestmark = pytest.mark.slow  # a lab of its own, and the `labkit` command many times

# The grade's items, in its order, as the student reads them.
APP_RUNS = "the app on report-server prints `report indexed` (~/report-app/run, as Acme wrote it)"
HOLDS_A_ROLE = "report-server holds a role, through an instance profile"
TRUST = "only EC2 may assume that role (its trust policy)"
ALLOWS = "the role allows what the app does (s3:GetObject on acme-reports/reports/*, dynamodb:PutItem)"
READS_NOTHING_ELSE = "the role reads nothing else in S3 (private/, other buckets, listings)"
CHANGES_NOTHING = "the role changes nothing in S3 (no put, delete or bucket policy)"
NOTHING_ELSE_IN_DYNAMODB = (
    "the role does nothing else in DynamoDB (no reading or scanning report-index, no other table)"
)
NOTHING_IN_IAM = "the role does nothing in IAM, EC2 or STS"
IMDSV2 = "report-server requires IMDSv2 (HttpTokens required)"
HOP_LIMIT = "report-server's hop limit is 1"
NO_KEY = "no access key on report-server (~/.aws, its shell's startup files, the app's directory)"
ITEMS = (APP_RUNS, HOLDS_A_ROLE, TRUST, ALLOWS, READS_NOTHING_ELSE, CHANGES_NOTHING, NOTHING_ELSE_IN_DYNAMODB,
         NOTHING_IN_IAM, IMDSV2, HOP_LIMIT, NO_KEY)  # fmt: skip
THE_ROLES = (TRUST, ALLOWS, READS_NOTHING_ELSE, CHANGES_NOTHING, NOTHING_ELSE_IN_DYNAMODB, NOTHING_IN_IAM)

ACCOUNT_ROOT = "arn:aws:iam::123456789012:root"
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
REPORT_KEY = {"report": {"S": "reports/latest.csv"}}


def reference_solution() -> str:
    """The ```python block under "## The challenge (notebook 07)" in the instructor's guide."""
    guide = (REPO / "docs" / "instructors.md").read_text()
    section = guide.split("\n## The challenge (notebook 07)\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, f"the guide's challenge section holds {len(blocks)} python blocks, not one"
    return str(blocks[0])


def labkit_command(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `labkit` command, for the lab of `home`."""
    env = {**os.environ, "LABKIT_HOME": str(home)}
    return subprocess.run([LABKIT, *args], env=env, capture_output=True, text=True, timeout=300)


def status_json(home: Path) -> dict[str, Any]:
    said = labkit_command(home, "status", "--json")
    assert said.returncode == 0, said.stdout + said.stderr
    return dict(json.loads(said.stdout))


def hint(home: Path) -> str:
    said = labkit_command(home, "hint", "07")
    assert (said.returncode, said.stderr) == (0, ""), said
    return said.stdout.rstrip("\n")


def hints_shown_by(said: str) -> int:
    """How many hints `labkit hint 07`'s answer says were shown: its "Hint K of N"."""
    found = re.match(r"Hint (\d+) of \d+", said)
    assert found, said
    return int(found.group(1))


@pytest.fixture(scope="module")
def challenge_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.Lab]:
    """A lab of the module's own at checkpoint 07 (none of its hints shown yet)."""
    home = tmp_path_factory.mktemp("challenge-lab")
    lab = labkit.connect(home)
    lab.reset(to="07", say=False)
    yield lab
    labkit.down(home)


@dataclass(frozen=True)
class Solved:
    """The lab after the reference solution, and what the solution made, read back from the lab."""

    lab: labkit.Lab
    server: str  # report-server's instance id
    role: str
    policy: str  # the role's one inline policy
    profile: str
    permissions: dict[str, Any]
    trust: dict[str, Any]

    def grade(self) -> CheckReport:
        return self.lab.check("07")

    def move_the_role(self, *, off: str, to: str, profile: str | None = None) -> None:
        """The instance profile taken off one instance and associated with another."""
        ec2 = self.lab.client("ec2")
        association = association_of(self.lab, off)
        assert association is not None, f"{off} holds no instance profile"
        ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
        ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": profile or self.profile}, InstanceId=to)


@pytest.fixture(scope="module")
def solved(challenge_lab: labkit.Lab) -> Solved:
    lab = challenge_lab
    exec(reference_solution(), {"lab": lab})
    iam, server = lab.client("iam"), running_instance_id(lab, "report-server")
    assert server is not None
    association = association_of(lab, server)
    assert association is not None, "the reference solution associated no instance profile with report-server"
    profile = str(association["IamInstanceProfile"]["Arn"]).rsplit("/", 1)[-1]
    role = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"][0]["RoleName"]
    [policy] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    permissions = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    return Solved(lab, server, role, policy, profile, dict(permissions), dict(trust))


@dataclass(frozen=True)
class Change:
    """Something a student may do to the solved lab, how to undo it, and what the grade then says:
    the items that fail (in the grade's order; all others hold) and, for some, text in their fix."""

    name: str
    make: Callable[[Solved], None]
    undo: Callable[[Solved], None]
    fails: tuple[str, ...] = ()
    says: dict[str, str] = field(default_factory=dict)


@contextmanager
def changed(solved: Solved, change: Change) -> Iterator[None]:
    """`change` made in the solved lab, and undone whatever happens: the module shares the lab."""
    try:
        change.make(solved)
        yield
    finally:
        change.undo(solved)


def test_checkpoint_07_is_ready_for_the_challenge(challenge_lab: labkit.Lab) -> None:
    report = challenge_lab.ready_for("07")
    assert report.verdict == "✓ Ready for notebook 07: the lab holds what notebooks 00-06 built."
    assert [c.item for c in report.checks][-3:] == [
        "report-server runs, with ~/report-app/run on its disk",
        "bucket acme-reports holds reports/latest.csv",
        "table report-index exists",
    ]


def test_the_fresh_checkpoint_fails_every_item_but_no_access_key(challenge_lab: labkit.Lab) -> None:
    """At checkpoint 07 report-server has no role: `labkit check 07` exits 1, every item but the
    access key fails, and the app's item quotes what the app said, AWS's own error."""
    checked = labkit_command(challenge_lab.home, "check", "07")
    lines = checked.stdout.splitlines()
    assert (checked.returncode, checked.stderr) == (1, ""), checked
    assert lines[0].startswith("Notebook 07: 10 of 11 items missing ("), lines[0]
    assert [line[0] for line in lines[1:]] == ["✗"] * 10 + ["✓"]
    assert [line[2:].startswith(item) for line, item in zip(lines[1:], ITEMS, strict=True)] == [True] * 11
    assert lines[1] == (
        f"✗ {APP_RUNS}: it said `download failed: s3://acme-reports/reports/latest.csv to - Unable to locate "
        "credentials`: run it yourself on report-server and read the error"
    )
    assert lines[2] == f"✗ {HOLDS_A_ROLE}: associate_iam_instance_profile on report-server itself (notebook 03)"
    assert lines[9:11] == [
        f"✗ {IMDSV2}: it is optional: modify_instance_metadata_options on report-server (notebook 05)",
        f"✗ {HOP_LIMIT}: it is 2 (no container runs on it): HttpPutResponseHopLimit=1, "
        "modify_instance_metadata_options on report-server (notebook 05)",
    ]


def test_the_grade_runs_the_app_as_acme_wrote_it(challenge_lab: labkit.Lab) -> None:
    """The app is ec2-user's to read in their home, and to change: a copy that only prints `report
    indexed` fools nobody, since the grade runs the app as Acme wrote it (the control: the copy did
    print it)."""
    box = challenge_lab.instance("report-server")
    read = box.run("cat ~/report-app/run")
    assert (read.exit_code, read.stdout) == (0, APP), read
    assert "aws s3 cp s3://acme-reports/reports/latest.csv -" in read.stdout
    faked = box.run("echo 'echo report indexed' > ~/report-app/run && ~/report-app/run")
    try:
        assert (faked.exit_code, faked.stdout) == (0, "report indexed\n"), faked
        graded = {c.item: c for c in challenge_lab.check("07").checks}
        assert not graded[APP_RUNS].ok
        assert "Unable to locate credentials" in graded[APP_RUNS].fix
    finally:
        box.run("cat > ~/report-app/run <<'EOF'\n" + APP + "EOF\n")
    assert box.run("cat ~/report-app/run").stdout == APP


def test_the_hints_labkit_ssh_commands_work_as_typed_in_a_terminal(challenge_lab: labkit.Lab, tmp_path: Path) -> None:
    """Each `labkit ssh` command a hint names, typed into a terminal's bash (whose own HOME is not the
    instance's), with the command the hint says to type there next. Hint 1 once said `labkit ssh
    report-server -- cat ~/report-app/run`, which the terminal's shell expanded to its own home (as
    ssh's callers' shells do): `No such file or directory`."""
    commands = [snippet for said in HINTS for snippet in re.findall(r"`([^`]+)`", said)]
    ssh = [(n, command) for n, command in enumerate(commands) if command.startswith("labkit ssh ")]
    assert ssh, "a hint says how to read the app"
    for n, command in ssh:
        typed = "" if " -- " in command else commands[n + 1] + "\n"  # a login: what the hint says to type there
        env = {**os.environ, "LABKIT_HOME": str(challenge_lab.home), "HOME": str(tmp_path),
               "PATH": f"{Path(LABKIT).parent}:{os.environ['PATH']}"}  # fmt: skip
        done = subprocess.run(["bash", "-c", command], input=typed, env=env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, (command, done.stdout[-500:], done.stderr[-500:])
        assert "aws s3 cp s3://acme-reports/reports/latest.csv -" in done.stdout, (command, done.stdout[-500:])


def test_the_reference_solution_gets_every_item_and_exit_status_0(solved: Solved) -> None:
    """The guide's solution: `labkit check 07` says ✓ on all 11 items and exits 0; on report-server
    the app, run by hand, prints `report indexed` as the role's session and indexes the report."""
    checked = labkit_command(solved.lab.home, "check", "07")
    lines = checked.stdout.splitlines()
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stdout
    assert re.fullmatch(
        r"✓ Challenge complete: report-server's app runs with least privilege \(\d+ hints? used\)\.", lines[0]
    ), lines[0]
    assert lines[1:] == [f"✓ {item}" for item in ITEMS]

    dynamodb, box = solved.lab.client("dynamodb"), solved.lab.instance("report-server")
    dynamodb.delete_item(TableName="report-index", Key=REPORT_KEY)  # the grader's own run indexed it
    who = box.run("aws sts get-caller-identity --query Arn --output text")
    ran = box.run("~/report-app/run")
    assert who.stdout.strip() == f"arn:aws:sts::123456789012:assumed-role/{solved.role}/{solved.server}", who
    assert (ran.exit_code, ran.stdout, ran.stderr) == (0, "report indexed\n", ""), ran
    item = dynamodb.get_item(TableName="report-index", Key=REPORT_KEY)["Item"]
    assert item == {**REPORT_KEY, "rows": {"N": "2"}}


def test_the_solved_lab_is_still_ready_for_the_challenge(solved: Solved) -> None:
    assert solved.lab.ready_for("07").ok


# Other names: the student's choice.
def _substituted(solved: Solved) -> None:
    """The guide's block with the role, its inline policy and its profile named otherwise."""
    block = reference_solution()
    for old, new in (
        ('ROLE = "ReportAppRole"', 'ROLE = "IndexerForReports"'),
        ('"IndexLatestReport"', '"ReadLatestWriteIndex"'),
        ("InstanceProfileName=ROLE", 'InstanceProfileName="report-indexer"'),
        ('IamInstanceProfile={"Name": ROLE}', 'IamInstanceProfile={"Name": "report-indexer"}'),
    ):
        assert old in block, f"the guide's solution no longer holds {old}"
        block = block.replace(old, new)
    association = association_of(solved.lab, solved.server)
    assert association is not None
    solved.lab.client("ec2").disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
    exec(block, {"lab": solved.lab})


def _unsubstituted(solved: Solved) -> None:
    iam = solved.lab.client("iam")
    solved.move_the_role(off=solved.server, to=solved.server)
    iam.remove_role_from_instance_profile(InstanceProfileName="report-indexer", RoleName="IndexerForReports")
    iam.delete_instance_profile(InstanceProfileName="report-indexer")
    iam.delete_role_policy(RoleName="IndexerForReports", PolicyName="ReadLatestWriteIndex")
    iam.delete_role(RoleName="IndexerForReports")


MANAGED_POLICY = "arn:aws:iam::123456789012:policy/ReportAppAccess"


def _with_a_managed_policy(solved: Solved) -> None:
    """A role of another name whose permissions are a customer managed policy, not an inline one."""
    iam = solved.lab.client("iam")
    iam.create_policy(PolicyName="ReportAppAccess", PolicyDocument=json.dumps(solved.permissions))
    iam.create_role(RoleName="report-app-ec2", AssumeRolePolicyDocument=json.dumps(solved.trust))
    iam.attach_role_policy(RoleName="report-app-ec2", PolicyArn=MANAGED_POLICY)
    iam.create_instance_profile(InstanceProfileName="report-app-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="report-app-profile", RoleName="report-app-ec2")
    solved.move_the_role(off=solved.server, to=solved.server, profile="report-app-profile")


def _without_the_managed_policy(solved: Solved) -> None:
    iam = solved.lab.client("iam")
    solved.move_the_role(off=solved.server, to=solved.server)
    iam.remove_role_from_instance_profile(InstanceProfileName="report-app-profile", RoleName="report-app-ec2")
    iam.delete_instance_profile(InstanceProfileName="report-app-profile")
    iam.detach_role_policy(RoleName="report-app-ec2", PolicyArn=MANAGED_POLICY)
    iam.delete_role(RoleName="report-app-ec2")
    iam.delete_policy(PolicyArn=MANAGED_POLICY)


OTHER_SOLUTIONS = (
    Change("names-substituted", _substituted, _unsubstituted, says={"role": "IndexerForReports"}),
    Change("customer-managed-policy", _with_a_managed_policy, _without_the_managed_policy,
           says={"role": "report-app-ec2"}),
)  # fmt: skip


@pytest.mark.parametrize("solution", OTHER_SOLUTIONS, ids=lambda c: c.name)
def test_a_solution_with_other_names_passes(solved: Solved, solution: Change) -> None:
    box = solved.lab.instance("report-server")
    with changed(solved, solution):
        report = solved.grade()
        who = box.run("aws sts get-caller-identity --query Arn --output text")
    assert report.ok, str(report)
    assert who.stdout.strip() == f"arn:aws:sts::123456789012:assumed-role/{solution.says['role']}/{solved.server}"
    assert solved.grade().ok  # the control: the reference solution is back


# The mistakes, each made on top of the reference solution.
def _attach_administrator_access(solved: Solved) -> None:
    solved.lab.client("iam").attach_role_policy(RoleName=solved.role, PolicyArn=ADMINISTRATOR_ACCESS)


def _detach_administrator_access(solved: Solved) -> None:
    solved.lab.client("iam").detach_role_policy(RoleName=solved.role, PolicyArn=ADMINISTRATOR_ACCESS)


def _s3_statement(solved: Solved, statement: dict[str, Any]) -> None:
    """The role's inline policy with its S3 statement replaced by `statement`."""
    permissions = json.loads(json.dumps(solved.permissions))
    [index] = [i for i, s in enumerate(permissions["Statement"]) if s["Action"] == "s3:GetObject"]
    permissions["Statement"][index] = statement
    solved.lab.client("iam").put_role_policy(
        RoleName=solved.role, PolicyName=solved.policy, PolicyDocument=json.dumps(permissions)
    )


def _the_solutions_permissions(solved: Solved) -> None:
    solved.lab.client("iam").put_role_policy(
        RoleName=solved.role, PolicyName=solved.policy, PolicyDocument=json.dumps(solved.permissions)
    )


def _s3_star_on_the_bucket(solved: Solved) -> None:
    resources = ["arn:aws:s3:::acme-reports", "arn:aws:s3:::acme-reports/*"]
    _s3_statement(solved, {"Effect": "Allow", "Action": "s3:*", "Resource": resources})


def _get_object_on_the_whole_bucket(solved: Solved) -> None:
    _s3_statement(solved, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-reports/*"})


def _trust_the_account_too(solved: Solved) -> None:
    account = {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT}, "Action": "sts:AssumeRole"}
    trust = {**solved.trust, "Statement": [*solved.trust["Statement"], account]}
    solved.lab.client("iam").update_assume_role_policy(RoleName=solved.role, PolicyDocument=json.dumps(trust))


def _the_solutions_trust(solved: Solved) -> None:
    solved.lab.client("iam").update_assume_role_policy(RoleName=solved.role, PolicyDocument=json.dumps(solved.trust))


def _metadata_options(**options: Any) -> Callable[[Solved], None]:
    def modify(solved: Solved) -> None:
        solved.lab.client("ec2").modify_instance_metadata_options(InstanceId=solved.server, **options)

    return modify


KEY_USER = "report-app"


def _key_in_the_credentials_file(solved: Solved) -> None:
    """A real access key of a real IAM user (allowed what the app does), put on report-server with
    `aws configure set` run there, as a student would: the app works, through the key."""
    iam = solved.lab.client("iam")
    iam.create_user(UserName=KEY_USER)
    iam.put_user_policy(
        UserName=KEY_USER, PolicyName="IndexLatestReport", PolicyDocument=json.dumps(solved.permissions)
    )
    key = iam.create_access_key(UserName=KEY_USER)["AccessKey"]
    box = solved.lab.instance("report-server")
    for name, value in (("aws_access_key_id", key["AccessKeyId"]), ("aws_secret_access_key", key["SecretAccessKey"])):
        configured = box.run(f"aws configure set {name} {value}")
        assert configured.ok, configured
    who = box.run("aws sts get-caller-identity --query Arn --output text")
    assert who.stdout.strip() == f"arn:aws:iam::123456789012:user/{KEY_USER}", who  # the key, not the role


def _no_key(solved: Solved) -> None:
    removed = solved.lab.instance("report-server").run("rm -rf ~/.aws")
    assert removed.ok, removed
    iam = solved.lab.client("iam")
    for key in iam.list_access_keys(UserName=KEY_USER)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=KEY_USER, AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=KEY_USER, PolicyName="IndexLatestReport")
    iam.delete_user(UserName=KEY_USER)


def _role_on_another_instance(solved: Solved) -> None:
    """report-worker launched, and the solution's profile moved onto it from report-server."""
    solved.move_the_role(off=solved.server, to=launch(solved.lab, "report-worker"))


def _role_back_on_report_server(solved: Solved) -> None:
    worker = running_instance_id(solved.lab, "report-worker")
    assert worker is not None
    solved.move_the_role(off=worker, to=solved.server)
    solved.lab.client("ec2").terminate_instances(InstanceIds=[worker])


NO_ROLE = "first give report-server a role"
MISTAKES = (
    Change("administrator-access", _attach_administrator_access, _detach_administrator_access,
           (READS_NOTHING_ELSE, CHANGES_NOTHING, NOTHING_ELSE_IN_DYNAMODB, NOTHING_IN_IAM),
           {NOTHING_IN_IAM: "iam:CreateUser on *; iam:PassRole on *",
            CHANGES_NOTHING: "(allowed by AdministratorAccess)"}),
    Change("s3-star-on-the-bucket", _s3_star_on_the_bucket, _the_solutions_permissions,
           (READS_NOTHING_ELSE, CHANGES_NOTHING),
           {READS_NOTHING_ELSE: "it may s3:GetObject on acme-reports/private/salaries.csv; "
                                "s3:ListBucket on acme-reports",
            CHANGES_NOTHING: "it may s3:PutObject on acme-reports/reports/latest.csv; s3:DeleteObject on "
                             "acme-reports/reports/latest.csv; s3:PutBucketPolicy on acme-reports"}),
    Change("get-object-on-the-whole-bucket", _get_object_on_the_whole_bucket, _the_solutions_permissions,
           (READS_NOTHING_ELSE,),
           {READS_NOTHING_ELSE: "it may s3:GetObject on acme-reports/private/salaries.csv (allowed by "
                                "IndexLatestReport)"}),
    Change("trust-policy-trusts-the-account", _trust_the_account_too, _the_solutions_trust, (TRUST,),
           {TRUST: f"its trust policy also trusts AWS {ACCOUNT_ROOT}: keep only ec2.amazonaws.com"}),
    Change("imdsv1-left-open", _metadata_options(HttpTokens="optional"), _metadata_options(HttpTokens="required"),
           (IMDSV2,), {IMDSV2: "it is optional: modify_instance_metadata_options on report-server"}),
    Change("hop-limit-2", _metadata_options(HttpPutResponseHopLimit=2), _metadata_options(HttpPutResponseHopLimit=1),
           (HOP_LIMIT,), {HOP_LIMIT: "it is 2 (no container runs on it)"}),
    Change("key-in-aws-credentials", _key_in_the_credentials_file, _no_key, (NO_KEY,),
           {NO_KEY: "a key is in ~/.aws/credentials: delete the file on report-server"}),
    Change("role-on-another-instance", _role_on_another_instance, _role_back_on_report_server,
           (APP_RUNS, HOLDS_A_ROLE, *THE_ROLES),
           {APP_RUNS: "Unable to locate credentials",
            HOLDS_A_ROLE: "associate_iam_instance_profile on report-server itself (notebook 03)",
            TRUST: NO_ROLE, NOTHING_IN_IAM: NO_ROLE}),
)  # fmt: skip


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda c: c.name)
def test_each_mistake_fails_its_own_item(solved: Solved, mistake: Change) -> None:
    """Each mistake fails the items it names, and only those, each fix saying what is wrong; once it
    is undone, the grade is all ✓ again."""
    with changed(solved, mistake):
        report = solved.grade()
    assert [c.item for c in report.missing] == list(mistake.fails), str(report)
    fixes = {c.item: c.fix for c in report.missing}
    for item, text in mistake.says.items():
        assert text in fixes[item], (item, fixes[item])
    again = solved.grade()
    assert again.ok, str(again)  # the control: undone, the solution holds again


def test_hints_come_one_more_each_time_and_the_grade_counts_them(solved: Solved) -> None:
    """`labkit hint 07`: hint 1, then hint 2, and the grade says "2 hints used"; past the last one
    (asked in the notebook, lab.hint(), which counts in the same record), the last again, saying so,
    and the count stops there."""
    home, lab = solved.lab.home, solved.lab
    assert len(HINTS) >= 3
    assert [hint(home), hint(home)] == [f"Hint 1 of {len(HINTS)}: {HINTS[0]}", f"Hint 2 of {len(HINTS)}: {HINTS[1]}"]
    assert (
        solved.grade().verdict == "✓ Challenge complete: report-server's app runs with least privilege (2 hints used)."
    )
    rest = [lab.hint() for _ in range(len(HINTS) - 2)]
    assert rest == [f"Hint {n} of {len(HINTS)}: {HINTS[n - 1]}" for n in range(3, len(HINTS) + 1)]
    last = f"Hint {len(HINTS)} of {len(HINTS)} (the last): {HINTS[-1]}"
    assert [lab.hint(), hint(home)] == [last, last]
    assert solved.grade().verdict.endswith(f"({len(HINTS)} hints used).")


def test_status_carries_the_last_grade_and_the_hints(solved: Solved) -> None:
    """`labkit status --json` has "challenge": the last grade (ok, the items missing, how many there
    are) and the hints shown, as `labkit check 07` and `labkit hint 07` left them."""
    shown = hints_shown_by(solved.lab.hint())
    hop_limit_2 = next(m for m in MISTAKES if m.name == "hop-limit-2")
    with changed(solved, hop_limit_2):
        solved.grade()
        graded = status_json(solved.lab.home)["challenge"]
    at = datetime.fromisoformat(graded.pop("graded_at"))
    assert datetime.now(UTC) - at < timedelta(minutes=2)
    assert graded == {"ok": False, "missing": [HOP_LIMIT], "items": 11, "hints": shown}
    assert solved.grade().ok  # the control: undone, the solution holds again


@dataclass(frozen=True)
class ResetTo06:
    """What `labkit reset --yes --to 06` did to a graded, hinted lab: the status before and after."""

    hints: int
    before: dict[str, Any]
    after: dict[str, Any]
    said: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def reset_to_06(solved: Solved) -> ResetTo06:
    """The solved lab graded, a hint shown, then `labkit reset --yes --to 06` (the module's last use of it)."""
    home = solved.lab.home
    shown = hints_shown_by(solved.lab.hint())
    solved.grade()
    before = status_json(home)
    said = labkit_command(home, "reset", "--yes", "--to", "06")
    return ResetTo06(shown, before, status_json(home), said)


def test_a_reset_forgets_the_grade_and_keeps_the_hints(reset_to_06: ResetTo06) -> None:
    assert reset_to_06.said.returncode == 0, reset_to_06.said
    assert {k: v for k, v in reset_to_06.before["challenge"].items() if k != "graded_at"} == {
        "ok": True,
        "missing": [],
        "items": 11,
        "hints": reset_to_06.hints,
    }
    assert reset_to_06.after["challenge"] == {
        "graded_at": None,
        "ok": None,
        "missing": [],
        "items": 0,
        "hints": reset_to_06.hints,
    }


def test_checkpoint_06_is_not_ready_for_the_challenge(solved: Solved, reset_to_06: ResetTo06) -> None:
    """At checkpoint 06 neither 06's clean-up nor the scene is there: ready_for("07") names both, and
    the reset that makes them."""
    with pytest.raises(labkit.LabNotReady) as caught:
        solved.lab.ready_for("07")
    said = str(caught.value)
    assert said.startswith("The lab is not ready for notebook 07; missing: the series' instances are terminated; ")
    assert said.endswith(
        "app-user is deleted; report-server runs, with ~/report-app/run on its disk; bucket acme-reports holds "
        'reports/latest.csv; table report-index exists. Run `labkit reset --to 07` in a terminal (or lab.reset(to="07")'
        " here) to catch up."
    )
