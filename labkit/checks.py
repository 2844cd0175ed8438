"""Checks: does the lab hold what a notebook builds? Item by item, with the fix for what is missing.

    lab.check("03")        # after notebook 03: ✓ per item, or what is missing and how to fix it
    lab.ready_for("04")    # before notebook 04: the lab holds what notebooks 01-03 built

Everything is read through the AWS API as the administrator, except whether a file exists in an
instance's home directory.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.catalogue import (
    APP_SERVER,
    APP_USER,
    BUCKET,
    INSTANCE,
    LATEST_REPORT,
    LEGACY_SERVER,
    LEGACY_TOKEN,
    NOTEBOOKS,
    ORDER,
    PROFILE,
    READ_ONLY,
    REPORT_APP,
    REPORT_SERVER,
    REPORT_TABLE,
    REPORTS_BUCKET,
    REVOKE_POLICY,
    ROLE,
    SECOND_PROFILE,
    SECOND_ROLE,
    SETTINGS_KEY,
    STARTER_USER,
    TABLE,
    TABLE_KEY,
    checkpoint,
)
from labkit.errors import CheckpointNotFound, LabNotReady
from labkit.protocol import instance_home
from labkit.solutions import association_of, running_instance_id
from labkit.trust import ec2_may_assume

if TYPE_CHECKING:
    import pandas

    from labkit.connection import Connection


@dataclass(frozen=True)
class Check:
    """One thing a notebook builds, whether the lab holds it, and how to get it when it does not."""

    item: str
    ok: bool
    fix: str

    def line(self) -> str:
        return f"✓ {self.item}" if self.ok else f"✗ {self.item}: {self.fix}"


@dataclass(frozen=True)
class CheckReport:
    """A verdict and the items it stands on."""

    verdict: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def missing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def __str__(self) -> str:
        return "\n".join([self.verdict, *(c.line() for c in self.checks)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.verdict)}</p>" + str(self.to_frame().to_html(index=False))

    def to_frame(self) -> pandas.DataFrame:
        import pandas

        return pandas.DataFrame(
            [{"": "✓" if c.ok else "✗", "item": c.item, "to fix": "" if c.ok else c.fix} for c in self.checks]
        )


def _fix(notebook: str, what: str) -> str:
    """What to do in the notebook, or the checkpoint after it; the last notebook has none after it."""
    following = f"{int(notebook) + 1:02d}"
    if following not in NOTEBOOKS:
        return f"{what} (notebook {notebook})"
    return f"{what} (notebook {notebook}), or run `labkit reset --to {following}`"


def _attached(iam: Any, role: str) -> set[str]:
    return {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}


def _role(iam: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(iam.get_role(RoleName=name)["Role"])
    except iam.exceptions.NoSuchEntityException:
        return None


def _profile_roles(iam: Any, name: str) -> list[str] | None:
    try:
        return [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]]
    except iam.exceptions.NoSuchEntityException:
        return None


def _held_role(lab: Connection, instance_id: str | None) -> str | None:
    association = association_of(lab, instance_id) if instance_id else None
    return str(association["IamInstanceProfile"]["Arn"]).rsplit("/", 1)[-1] if association else None


def _no_credentials_file(lab: Connection, name: str, instance_id: str | None, notebook: str) -> Check:
    """No access key left on disk on the instance: the only item read off an instance, not the API."""
    left = instance_id is not None and (instance_home(lab.home, instance_id) / ".aws" / "credentials").exists()
    return Check(f"no ~/.aws/credentials on {name}", not left, _fix(notebook, f"rm ~/.aws/credentials on {name}"))


def _after_00(lab: Connection) -> list[Check]:
    arn = lab.client("sts").get_caller_identity()["Arn"]
    return [Check("the lab answers, and you act as its administrator", arn.endswith(":user/admin"), "run `labkit up`")]


def _after_01(lab: Connection) -> list[Check]:
    iam = lab.client("iam")
    users = {u["UserName"] for u in iam.list_users()["Users"]}
    has_user = APP_USER in users
    policies = (
        {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=APP_USER)["AttachedPolicies"]}
        if has_user
        else set()
    )
    keys = iam.list_access_keys(UserName=APP_USER)["AccessKeyMetadata"] if has_user else []
    server = running_instance_id(lab, APP_SERVER)
    return [
        Check("app-user exists, with IAMReadOnlyAccess", READ_ONLY in policies, _fix("01", "create app-user")),
        Check("app-server is running", server is not None, _fix("01", "launch app-server")),
        Check("app-user has no access key left", has_user and not keys, _fix("01", "delete app-user's access key")),
        _no_credentials_file(lab, APP_SERVER, server, "01"),
    ]


def _after_02(lab: Connection) -> list[Check]:
    iam = lab.client("iam")
    role = _role(iam, ROLE)
    trusted = role is not None and ec2_may_assume(json.dumps(role["AssumeRolePolicyDocument"]))
    return [
        Check(f"role {ROLE} exists", role is not None, _fix("02", "create_role")),
        Check("EC2 may assume it (trust policy)", trusted, _fix("02", "create it with the EC2 trust policy")),
        Check(
            "IAMReadOnlyAccess is attached to it",
            role is not None and READ_ONLY in _attached(iam, ROLE),
            _fix("02", "attach_role_policy"),
        ),
        Check(
            f"instance profile {PROFILE} holds the role",
            _profile_roles(iam, PROFILE) == [ROLE],
            _fix("02", "create_instance_profile and add_role_to_instance_profile"),
        ),
    ]


def _after_03(lab: Connection) -> list[Check]:
    instance_id = running_instance_id(lab, INSTANCE)
    return [
        Check("demo-instance is running", instance_id is not None, _fix("03", "launch demo-instance")),
        Check(
            f"demo-instance holds {ROLE}",
            _held_role(lab, instance_id) == ROLE,
            _fix("03", "associate_iam_instance_profile"),
        ),
    ]


def _after_04(lab: Connection) -> list[Check]:
    iam = lab.client("iam")
    instance_id = running_instance_id(lab, INSTANCE)
    role = _role(iam, ROLE)
    keys = iam.list_access_keys(UserName=STARTER_USER)["AccessKeyMetadata"]
    return [
        _no_credentials_file(lab, INSTANCE, instance_id, "04"),
        Check("alice has no access key", not keys, _fix("04", "delete alice's access key")),
        Check(
            f"IAMReadOnlyAccess is attached to {ROLE} again",
            role is not None and READ_ONLY in _attached(iam, ROLE),
            _fix("04", "attach_role_policy again"),
        ),
        Check(
            f"instance profile {SECOND_PROFILE} holds its role",
            _profile_roles(iam, SECOND_PROFILE) == [SECOND_ROLE],
            _fix("04", "create the second role"),
        ),
        Check(
            f"demo-instance holds {ROLE} again",
            _held_role(lab, instance_id) == ROLE,
            _fix("04", "replace_iam_instance_profile_association back"),
        ),
    ]


def _revoked(iam: Any, role: str) -> bool:
    """Whether the role holds the console's AWSRevokeOlderSessions: a Deny of every action with
    DateLessThan on aws:TokenIssueTime (IAM User Guide, "Revoke IAM role temporary security credentials")."""
    try:
        document = iam.get_role_policy(RoleName=role, PolicyName=REVOKE_POLICY)["PolicyDocument"]
    except iam.exceptions.NoSuchEntityException:
        return False
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    return any(
        s.get("Effect") == "Deny"
        and s.get("Action") in ("*", ["*"])
        and "aws:TokenIssueTime" in s.get("Condition", {}).get("DateLessThan", {})
        for s in statements
    )


def _after_05(lab: Connection) -> list[Check]:
    def tokens(instance_id: str | None) -> str | None:
        if instance_id is None:
            return None
        described = lab.client("ec2").describe_instances(InstanceIds=[instance_id])
        return str(described["Reservations"][0]["Instances"][0]["MetadataOptions"]["HttpTokens"])

    legacy, modify = running_instance_id(lab, LEGACY_SERVER), _fix("05", "modify_instance_metadata_options")
    return [
        Check(
            f"{ROLE}'s older sessions are revoked ({REVOKE_POLICY})",
            _revoked(lab.client("iam"), ROLE),
            _fix("05", "Revoke active sessions"),
        ),
        Check(f"{LEGACY_SERVER} runs, holding {ROLE}", _held_role(lab, legacy) == ROLE, _fix("05", "run_instances")),
        Check(f"{LEGACY_SERVER} requires IMDSv2", tokens(legacy) == "required", modify),
        Check(f"{INSTANCE} requires IMDSv2", tokens(running_instance_id(lab, INSTANCE)) == "required", modify),
    ]


def _after_06(lab: Connection) -> list[Check]:
    iam = lab.client("iam")
    ours = [i for i in lab.instances() if i.name in (INSTANCE, APP_SERVER, LEGACY_SERVER)]
    left = [i.name for i in ours if i.state != "terminated"]
    # Terminated instances stay listed for a while, as on AWS: the evidence that the series ran and
    # was cleaned up, which a lab that never started the series does not have.
    ended = {i.name for i in ours if i.state == "terminated"} == {INSTANCE, APP_SERVER, LEGACY_SERVER}
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] in (ROLE, SECOND_ROLE)]
    profiles = [  # the series' only: the challenge (07) makes one of the student's own
        p["InstanceProfileName"]
        for p in iam.list_instance_profiles()["InstanceProfiles"]
        if p["InstanceProfileName"] in (PROFILE, SECOND_PROFILE)
    ]
    users = [u["UserName"] for u in iam.list_users()["Users"] if u["UserName"] == APP_USER]
    terminate = f"terminate {', '.join(left)}" if left else "work through 01-05, then terminate their instances"
    bucket, table = BUCKET in _buckets(lab), TABLE in _tables(lab)
    return [
        Check("the series' instances are terminated", ended and not left, _fix("06", terminate)),
        Check("its instance profiles are deleted", not profiles, _fix("06", f"delete {', '.join(profiles)}")),
        Check("its roles are deleted", not roles, _fix("06", f"delete {', '.join(roles)}")),
        Check(f"bucket {BUCKET} is deleted", not bucket, _fix("06", "delete its objects, then delete_bucket")),
        Check(f"table {TABLE} is deleted", not table, _fix("06", "delete_table")),
        Check("app-user is deleted", not users, _fix("06", "delete app-user")),
    ]


def _before_05(lab: Connection) -> list[Check]:
    """Notebook 05 launches legacy-server with the ClientToken legacy-server-05. EC2 answers a launch
    that repeats a token with the instance it launched first, even once terminated ("The client token
    is valid for at least 24 hours after the termination of the instance": EC2 User Guide, "Ensuring
    idempotency in Amazon EC2 API requests"). After 06's clean-up the token is spent, and only a lab
    that never ran 05 launches legacy-server again."""
    described = lab.client("ec2").describe_instances()  # moto has no filter client-token
    spent = [
        i["InstanceId"]
        for r in described["Reservations"]
        for i in r["Instances"]
        if i.get("ClientToken") == LEGACY_TOKEN and i["State"]["Name"] in ("shutting-down", "terminated")
    ]
    return [
        Check(
            f"no terminated {LEGACY_SERVER} from an earlier run (05's launch would return it)",
            not spent,
            f"05's launch would return {', '.join(spent)} again: run `labkit reset --to 05`",
        )
    ]


def _buckets(lab: Connection) -> list[str]:
    return [b["Name"] for b in lab.client("s3").list_buckets()["Buckets"]]


def _tables(lab: Connection) -> list[str]:
    return list(lab.client("dynamodb").list_tables()["TableNames"])


def _has_settings(lab: Connection) -> bool:
    """Whether 04's bucket holds the application's settings (HeadObject, as the administrator)."""
    s3 = lab.client("s3")
    try:
        s3.head_object(Bucket=BUCKET, Key=SETTINGS_KEY)
    except s3.exceptions.ClientError:  # 404 without the object, or without the bucket
        return False
    return True


def _has_order(lab: Connection) -> bool:
    """Whether 04's table holds its order (GetItem, as the administrator)."""
    dynamodb = lab.client("dynamodb")
    key = {TABLE_KEY: ORDER[TABLE_KEY]}
    try:
        return "Item" in dynamodb.get_item(TableName=TABLE, Key=key)
    except dynamodb.exceptions.ResourceNotFoundException:
        return False


def _before_06(lab: Connection) -> list[Check]:
    """Notebook 06's clean-up deletes the application's data that 04 makes, its bucket (emptied first)
    and its table, and stops at NoSuchBucket where they are not: in a lab that ran 04 before 04 made
    them (a checkpoint of an older labkit). 04's own check does not name them: its items are what
    05's first check lists."""
    again = "run `labkit reset --to 06`"
    return [
        Check(f"bucket {BUCKET} holds {SETTINGS_KEY} (notebook 04)", _has_settings(lab), again),
        Check(f"table {TABLE} holds order {ORDER[TABLE_KEY]['S']} (notebook 04)", _has_order(lab), again),
    ]


def _before_07(lab: Connection) -> list[Check]:
    """The challenge's scene (labkit/challenge/scene.py), which `reset --to 07` sets and no notebook
    builds: report-server running with the app on its disk, the bucket's report, the table."""
    again = "run `labkit reset --to 07` (it replays 01-06, then sets the scene)"
    server = running_instance_id(lab, REPORT_SERVER)
    app = server is not None and (instance_home(lab.home, server) / REPORT_APP.removeprefix("~/")).is_file()
    s3 = lab.client("s3")
    try:
        s3.head_object(Bucket=REPORTS_BUCKET, Key=LATEST_REPORT)
        report = True
    except s3.exceptions.ClientError:  # 404 without the object, or without the bucket
        report = False
    return [
        Check(f"{REPORT_SERVER} runs, with {REPORT_APP} on its disk", app, again),
        Check(f"bucket {REPORTS_BUCKET} holds {LATEST_REPORT}", report, again),
        Check(f"table {REPORT_TABLE} exists", REPORT_TABLE in _tables(lab), again),
    ]


# What a notebook needs of the lab beyond what the notebooks before it build (ready_for asks them too).
PRECONDITIONS: dict[str, Callable[[Connection], list[Check]]] = {"05": _before_05, "06": _before_06, "07": _before_07}

# The series' checks, which status asks every time; the challenge (07) is graded when asked (labkit/challenge/).
CHECKS: dict[str, Callable[[Connection], list[Check]]] = {
    "00": _after_00,
    "01": _after_01,
    "02": _after_02,
    "03": _after_03,
    "04": _after_04,
    "05": _after_05,
    "06": _after_06,
}


@dataclass(frozen=True)
class Progress:
    """Where a student stands: each notebook's report, and the furthest notebook whose work the
    lab holds. Later notebooks change what earlier ones built (06 deletes it all), so a notebook
    counts as done when it, or any notebook after it, is complete."""

    reports: dict[str, CheckReport]

    @property
    def furthest(self) -> str | None:
        """The last notebook whose work the lab holds ("06" when the series is finished)."""
        complete = [number for number, report in self.reports.items() if report.ok]
        return max(complete) if complete else None

    def done(self, notebook: str) -> bool:
        return self.furthest is not None and notebook <= self.furthest

    @property
    def next(self) -> str | None:
        """The notebook the student is ready for (what `reset --to NN` names), None after the series."""
        return next((number for number in self.reports if not self.done(number)), None)

    @property
    def finished(self) -> str:
        """What the student has finished, in words: "the series", "notebooks 00-03", "nothing yet"."""
        last = self.furthest
        if last is None:
            return "nothing yet"
        if last == max(self.reports):
            return "the series"
        return f"notebooks 00-{last}" if last > "00" else "notebook 00"


def progress(lab: Connection) -> Progress:
    """For every notebook, whether the lab holds what it builds, and how far the student got."""
    return Progress({number: check(lab, number) for number in CHECKS})


def check(lab: Connection, notebook: str | int) -> CheckReport:
    """Whether the lab holds what notebook `notebook` builds (the challenge, 07, is graded by
    labkit.challenge, which builds on these checks: lesson.Lab.check asks it)."""
    name = checkpoint(notebook)
    if name not in CHECKS:
        raise CheckpointNotFound(f"Notebook {name} is graded by `labkit check {name}`, not checked by step.")
    items = tuple(CHECKS[name](lab))
    missing = sum(not c.ok for c in items)
    verdict = (
        f"✓ The lab holds everything notebook {name} builds."
        if not missing
        else f"Notebook {name}: {missing} of {len(items)} items missing."
    )
    return CheckReport(verdict, items)


CLEAN_UP = "06"  # deletes what 01-05 built: after it, its own check stands for theirs


def _built_before(name: str) -> list[str]:
    """The notebooks whose checks must hold before notebook `name`: 00 and every one before it, but
    once 06's clean-up is among them, only 00 and 06 (what 01-05 built is gone, as it should be)."""
    earlier = [number for number in CHECKS if number < name or number == "00"]
    if CLEAN_UP in earlier:
        return [number for number in earlier if number == "00" or number >= CLEAN_UP]
    return earlier


def ready_for(lab: Connection, notebook: str | int) -> CheckReport:
    """Whether the lab holds what the notebooks before `notebook` built; raises LabNotReady if not."""
    name = checkpoint(notebook)
    items = tuple(item for earlier in _built_before(name) for item in CHECKS[earlier](lab))
    items += tuple(PRECONDITIONS[name](lab)) if name in PRECONDITIONS else ()
    missing = [c.item for c in items if not c.ok]
    if missing:
        raise LabNotReady(
            f"The lab is not ready for notebook {name}; missing: {'; '.join(missing)}. "
            f'Run `labkit reset --to {name}` in a terminal (or lab.reset(to="{name}") here) to catch up.'
        )
    before = f"notebooks 00-{int(name) - 1:02d}" if name > "01" else "notebook 00"
    verdict = (
        f"✓ Ready for notebook {name}: the lab holds what {before} built."
        if name > "00"
        else ("✓ Ready for notebook 00: the lab answers.")
    )
    return CheckReport(verdict, items)
