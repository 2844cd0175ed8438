"""`labkit check 07`: the challenge graded item by item, each with why it fails and what to look at.

The app must run on report-server, through a role that only EC2 may assume, whose permissions are
exactly what the app does (decided by IAM's policy simulator, which the lab's own evaluator answers:
wildcards, managed policies, Deny statements and the bucket's policy included), with IMDSv2 required,
a hop limit of 1, and no access key on the instance. Every grade is kept (record.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.catalogue import (
    APP_DONE,
    BUCKET,
    LATEST_REPORT,
    REPORT_APP,
    REPORT_SERVER,
    REPORT_TABLE,
    REPORTS_BUCKET,
    TABLE,
)
from labkit.challenge import record
from labkit.challenge.hints import hints_used
from labkit.challenge.scene import APP
from labkit.checks import Check, CheckReport
from labkit.protocol import ACCOUNT_ID, REGION, instance_home
from labkit.solutions import association_of, running_instance_id
from labkit.trust import EC2_PRINCIPAL, ec2_may_assume

if TYPE_CHECKING:
    from labkit.connection import Connection

TABLES = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table"
OBJECTS = f"arn:aws:s3:::{REPORTS_BUCKET}"
NEEDED = (("s3:GetObject", f"{OBJECTS}/{LATEST_REPORT}"), ("dynamodb:PutItem", f"{TABLES}/{REPORT_TABLE}"))


@dataclass(frozen=True)
class Forbidden:
    """One item of least privilege: what the role must not be allowed, and where to look if it is."""

    item: str
    asks: tuple[tuple[str, str], ...]  # (action, resource ARN)
    look: str


FORBIDDEN = (
    Forbidden(
        "the role reads nothing else in S3 (private/, other buckets, listings)",
        (("s3:GetObject", f"{OBJECTS}/private/salaries.csv"), ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/config/x"),
         ("s3:ListBucket", OBJECTS), ("s3:ListAllMyBuckets", "*")),
        f"s3:GetObject's Resource should be {OBJECTS}/reports/*",
    ),
    Forbidden(
        "the role changes nothing in S3 (no put, delete or bucket policy)",
        (("s3:PutObject", f"{OBJECTS}/{LATEST_REPORT}"), ("s3:DeleteObject", f"{OBJECTS}/{LATEST_REPORT}"),
         ("s3:PutBucketPolicy", OBJECTS), ("s3:DeleteBucket", OBJECTS)),
        "the app only reads from S3: s3:GetObject is the one S3 action it needs",
    ),
    Forbidden(
        f"the role does nothing else in DynamoDB (no reading or scanning {REPORT_TABLE}, no other table)",
        (("dynamodb:GetItem", f"{TABLES}/{REPORT_TABLE}"), ("dynamodb:Scan", f"{TABLES}/{REPORT_TABLE}"),
         ("dynamodb:Query", f"{TABLES}/{REPORT_TABLE}"), ("dynamodb:DeleteItem", f"{TABLES}/{REPORT_TABLE}"),
         ("dynamodb:DeleteTable", f"{TABLES}/{REPORT_TABLE}"), ("dynamodb:PutItem", f"{TABLES}/{TABLE}"),
         ("dynamodb:ListTables", "*")),
        f"dynamodb:PutItem on {TABLES}/{REPORT_TABLE} is the one DynamoDB permission the app needs",
    ),
    Forbidden(
        "the role does nothing in IAM, EC2 or STS",
        (("iam:ListUsers", "*"), ("iam:CreateUser", "*"), ("iam:PassRole", "*"), ("iam:AttachRolePolicy", "*"),
         ("ec2:DescribeInstances", "*"), ("ec2:RunInstances", "*"), ("ec2:TerminateInstances", "*"),
         ("sts:AssumeRole", "*")),
        "the app calls S3 and DynamoDB only: no managed policy such as AdministratorAccess or IAMReadOnlyAccess",
    ),
)  # fmt: skip

KEY = re.compile(r"aws_access_key_id|aws_secret_access_key|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", re.IGNORECASE)
MAX_SCANNED = 1 << 20  # bytes: a file larger than this on the instance is not read for keys
MAX_FILES = 2000
END_OF_APP = "END_OF_REPORT_APP"  # the here-document's end, a line the app never holds


def grade(lab: Connection) -> CheckReport:
    """The challenge, graded as the lab is now; the grade is kept for `labkit status` and the class page."""
    iam = lab.client("iam")
    server = running_instance_id(lab, REPORT_SERVER)
    role = _role_held(lab, server)
    document = _role_document(iam, role)
    asked = _Simulator(lab, role and f"arn:aws:iam::{ACCOUNT_ID}:role/{role}")
    items = [
        _app_runs(lab, server),
        _holds_a_role(lab, server, role),
        _trusted_by_ec2_only(role, document),
        _allows_what_the_app_does(asked),
        *(_denies(asked, forbidden) for forbidden in FORBIDDEN),
        *_metadata_options(lab, server),
        _no_access_key(lab, server),
    ]
    record.save_grade(lab.home, [(c.item, c.ok) for c in items])
    hints = hints_used(lab.home)
    used = f"{hints} hint{'s' if hints != 1 else ''} used"
    missing = sum(not c.ok for c in items)
    verdict = (
        f"✓ Challenge complete: {REPORT_SERVER}'s app runs with least privilege ({used})."
        if not missing
        else f"Notebook 07: {missing} of {len(items)} items missing ({used}; `labkit hint 07` gives one more)."
    )
    return CheckReport(verdict, tuple(items))


def _role_held(lab: Connection, server: str | None) -> str | None:
    """The role in the instance profile report-server holds, if any."""
    association = association_of(lab, server) if server else None
    if association is None:
        return None
    profile = str(association["IamInstanceProfile"]["Arn"]).rsplit("/", 1)[-1]
    iam = lab.client("iam")
    try:
        roles = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
    except iam.exceptions.NoSuchEntityException:
        return None
    return str(roles[0]["RoleName"]) if roles else None


def _role_document(iam: Any, role: str | None) -> dict[str, Any] | None:
    if role is None:
        return None
    try:
        document = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    except iam.exceptions.NoSuchEntityException:
        return None
    return json.loads(document) if isinstance(document, str) else dict(document)


def _app_runs(lab: Connection, server: str | None) -> Check:
    item = f"the app on {REPORT_SERVER} prints `{APP_DONE}` ({REPORT_APP}, as Acme wrote it)"
    if server is None:
        return Check(item, False, f"{REPORT_SERVER} is not running: `labkit reset --to 07` sets the scene again")
    # The app as Acme wrote it, whatever became of the copy in ec2-user's home: the role must make it work.
    ran = lab.instance(server).run(f"bash -s <<'{END_OF_APP}'\n{APP}{END_OF_APP}\n", timeout=120)
    if ran.ok and APP_DONE in ran.stdout:
        return Check(item, True, "")
    said = (ran.stderr.strip() or ran.stdout.strip() or ran.stopped or f"exit status {ran.exit_code}").splitlines()
    return Check(item, False, f"it said `{said[-1][:300]}`: run it yourself on {REPORT_SERVER} and read the error")


def _holds_a_role(lab: Connection, server: str | None, role: str | None) -> Check:
    item = f"{REPORT_SERVER} holds a role, through an instance profile"
    if role is not None:
        return Check(item, True, "")
    held = association_of(lab, server) if server else None
    why = (
        "its instance profile holds no role: add_role_to_instance_profile"
        if held
        else f"associate_iam_instance_profile on {REPORT_SERVER} itself (notebook 03)"
    )
    return Check(item, False, why)


def _trusted_by_ec2_only(role: str | None, document: dict[str, Any] | None) -> Check:
    item = "only EC2 may assume that role (its trust policy)"
    if role is None or document is None:
        return Check(item, False, "first give report-server a role")
    others = sorted(_trusted(document) - {f"Service {EC2_PRINCIPAL}"})
    if not ec2_may_assume(document):
        return Check(item, False, f'its trust policy must allow {{"Service": "{EC2_PRINCIPAL}"}} sts:AssumeRole')
    if others:
        return Check(item, False, f"its trust policy also trusts {', '.join(others)}: keep only {EC2_PRINCIPAL}")
    return Check(item, True, "")


def _trusted(document: dict[str, Any]) -> set[str]:
    """Every principal an Allow statement of a trust policy names ("AWS arn:…", "Service …", "*")."""
    found: set[str] = set()
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if "NotPrincipal" in statement:
            found.add("everyone but NotPrincipal's")
        principal = statement.get("Principal")
        if principal == "*":
            found.add("* (everyone)")
        elif isinstance(principal, dict):
            for kind, names in principal.items():
                found.update(f"{kind} {name}" for name in (names if isinstance(names, list) else [names]))
    return found


class _Simulator:
    """IAM's policy simulator asked about the role, as its administrator; S3 questions about the
    bucket carry its bucket policy (a grant there counts as one in the role's policies)."""

    def __init__(self, lab: Connection, role_arn: str | None) -> None:
        self.iam, self.role_arn = lab.client("iam"), role_arn
        s3 = lab.client("s3")
        try:
            self.bucket_policy: str | None = s3.get_bucket_policy(Bucket=REPORTS_BUCKET)["Policy"]
        except s3.exceptions.ClientError:  # NoSuchBucketPolicy, or no bucket
            self.bucket_policy = None

    def allowed(self, asks: tuple[tuple[str, str], ...]) -> Iterator[tuple[str, str, bool, list[str]]]:
        """(action, resource, allowed, the policies whose statements matched) for each question."""
        assert self.role_arn is not None
        for action, resource in asks:
            extra = (
                {"ResourcePolicy": self.bucket_policy} if self.bucket_policy and resource.startswith(OBJECTS) else {}
            )
            found = self.iam.simulate_principal_policy(
                PolicySourceArn=self.role_arn, ActionNames=[action], ResourceArns=[resource], **extra
            )["EvaluationResults"][0]
            sources = sorted({m["SourcePolicyId"] for m in found.get("MatchedStatements", [])})
            yield action, resource, found["EvalDecision"] == "allowed", sources


def _short(resource: str) -> str:
    return resource.removeprefix("arn:aws:s3:::").removeprefix(f"{TABLES}/").replace(f"{TABLES}/", "table/")


def _allows_what_the_app_does(asked: _Simulator) -> Check:
    item = f"the role allows what the app does (s3:GetObject on {REPORTS_BUCKET}/reports/*, dynamodb:PutItem)"
    if asked.role_arn is None:
        return Check(item, False, "first give report-server a role")
    denied = [f"{action} on {_short(resource)}" for action, resource, ok, _ in asked.allowed(NEEDED) if not ok]
    if denied:
        return Check(item, False, f"not allowed: {'; '.join(denied)}: add a statement for each, naming its resource")
    return Check(item, True, "")


def _denies(asked: _Simulator, forbidden: Forbidden) -> Check:
    if asked.role_arn is None:
        return Check(forbidden.item, False, "first give report-server a role")
    allowed = [(f"{a} on {_short(r)}", s) for a, r, ok, s in asked.allowed(forbidden.asks) if ok]
    if not allowed:
        return Check(forbidden.item, True, "")
    sources = sorted({source for _, found in allowed for source in found})
    by = f" (allowed by {', '.join(sources)})" if sources else ""
    return Check(forbidden.item, False, f"it may {'; '.join(a for a, _ in allowed)}{by}: {forbidden.look}")


def _metadata_options(lab: Connection, server: str | None) -> list[Check]:
    required, hops = f"{REPORT_SERVER} requires IMDSv2 (HttpTokens required)", f"{REPORT_SERVER}'s hop limit is 1"
    if server is None:
        return [
            Check(required, False, f"{REPORT_SERVER} is not running"),
            Check(hops, False, f"{REPORT_SERVER} is not running"),
        ]
    described = lab.client("ec2").describe_instances(InstanceIds=[server])
    options = described["Reservations"][0]["Instances"][0]["MetadataOptions"]
    modify = f"modify_instance_metadata_options on {REPORT_SERVER} (notebook 05)"
    return [
        Check(required, options.get("HttpTokens") == "required", f"it is {options.get('HttpTokens')}: {modify}"),
        Check(
            hops,
            options.get("HttpPutResponseHopLimit") == 1,
            f"it is {options.get('HttpPutResponseHopLimit')} (no container runs on it): HttpPutResponseHopLimit=1, "
            + modify,
        ),
    ]


def _no_access_key(lab: Connection, server: str | None) -> Check:
    item = f"no access key on {REPORT_SERVER} (~/.aws, its shell's startup files, the app's directory)"
    if server is None:
        return Check(item, False, f"{REPORT_SERVER} is not running")
    home = instance_home(lab.home, server)
    found = [f"~/{p.relative_to(home)}" for p in _holding_keys(home)]
    if found:
        return Check(item, False, f"a key is in {', '.join(found[:3])}: delete the file on {REPORT_SERVER}, "
                     "and the key itself (delete_access_key)")  # fmt: skip
    return Check(item, True, "")


def _holding_keys(top: Path) -> list[Path]:
    """The files under `top` that hold an access key, or a credentials file's key names."""
    found, seen = [], 0
    for path in sorted(top.rglob("*")) if top.is_dir() else []:
        if seen >= MAX_FILES:
            break
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SCANNED:
            continue
        seen += 1
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if KEY.search(text):
            found.append(path)
    return found
