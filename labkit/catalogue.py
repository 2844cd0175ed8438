"""The lesson's names, in one place: its roles, instance profiles, instances, users, policies, the
application's data (a bucket and a table), the challenge's scene (notebook 07) and notebooks.

    from labkit.catalogue import ROLE, PROFILE, INSTANCE
    lab.client("ec2").associate_iam_instance_profile(IamInstanceProfile={"Name": PROFILE}, InstanceId=...)

The notebooks' steps (labkit/solutions.py), their checks (labkit/checks.py) and the tests' fixtures
read these names from here; the notebooks spell them out for the student, and their checks hold
them to these. The connection to the lab (labkit/connection.py) knows none of them.
"""

from __future__ import annotations

from typing import Any

from labkit.errors import CheckpointNotFound
from labkit.protocol import ACCOUNT_ID, REGION

ROLE = "DemoRoleForEC2"  # made in 02, attached to demo-instance in 03
SECOND_ROLE = "DemoEC2ReadOnlyRole"  # 04: one role per instance, switched and back
PROFILE = ROLE  # the console names a role's instance profile after the role
SECOND_PROFILE = SECOND_ROLE

INSTANCE = "demo-instance"  # 03-06
APP_SERVER = "app-server"  # 01: where the access key was written to disk
WEB_SERVER = "web-server"  # 04: launched with the role, then terminated
LEGACY_SERVER = "legacy-server"  # 05: launched allowing IMDSv1, as an older launch template does; then closed
LEGACY_TOKEN = "legacy-server-05"  # 05: its launch's ClientToken, so that running the cell again launches nothing new

APP_USER = "app-user"  # 01: the user whose key the app used
STARTER_USER = "alice"  # 04: a user of a new lab, whose key wins over the role
OPERATOR = "operator"  # 04: may manage EC2, and attach DemoRoleForEC2 once granted iam:PassRole on it
PASS_ROLE_POLICY = "PassDemoRoleToEC2"  # 04: operator's inline policy (the IAM User Guide's example)
REVOKE_POLICY = "AWSRevokeOlderSessions"  # 05: the inline policy the console's *Revoke active sessions* adds
APP_DATA_POLICY = "ReadAppData"  # 04: DemoRoleForEC2's inline policy, s3:GetObject and dynamodb:GetItem; then deleted

# 04: the application's data, what the role is for; kept until 06's clean-up. Bucket names are global
# on AWS, so the bucket's ends in the account's id, as is the custom.
BUCKET = f"acme-app-data-{ACCOUNT_ID}"
SETTINGS_KEY = "config/settings.json"  # its one object
SETTINGS = b'{"log_level": "info", "orders_table": "acme-app-orders"}\n'
TABLE = "acme-app-orders"  # on demand (PAY_PER_REQUEST), keyed by a string order_id
TABLE_KEY = "order_id"
ORDER = {"order_id": {"S": "1001"}, "status": {"S": "shipped"}}  # its one item
SETTINGS_ARN = f"arn:aws:s3:::{BUCKET}/config/*"  # what ReadAppData allows s3:GetObject on
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}"

# 07, the challenge: what `labkit reset --to 07` adds to a lab whose student finished 00-06 (labkit/challenge/).
# Fixed, so that instructors and tests can rely on them; the role, policy and profile are the student's to name.
REPORT_SERVER = "report-server"  # runs the app; no role, IMDSv2 optional, hop limit 2 (an old launch template's)
REPORTS_BUCKET = "acme-reports"  # reports/ (the app reads reports/latest.csv) and private/ (it must not read)
LATEST_REPORT = "reports/latest.csv"
REPORT_TABLE = "report-index"  # on demand, keyed by a string `report`: the app puts one item in it
REPORT_TABLE_KEY = "report"
REPORT_APP = "~/report-app/run"  # on report-server, in ec2-user's home: reads the report, indexes it, prints APP_DONE
APP_DONE = "report indexed"

READ_ONLY = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"
EC2_READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess"
EC2_FULL_ACCESS = "arn:aws:iam::aws:policy/AmazonEC2FullAccess"

AL2023 = [{"Name": "name", "Values": ["al2023-ami-2023.*-kernel-6.1-x86_64"]}]  # describe_images' filter
EC2_TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
    ],
}

NOTEBOOKS = {
    "00": "00-welcome.ipynb",
    "01": "01-the-problem.ipynb",
    "02": "02-create-the-role.ipynb",
    "03": "03-attach-the-role.ipynb",
    "04": "04-role-permissions.ipynb",
    "05": "05-instance-metadata.ipynb",
    "06": "06-review.ipynb",
    "07": "07-your-turn.ipynb",
}
CHALLENGE = "07"  # the notebook whose check is a grade of the student's own solution, not a replayed step


def checkpoint(number: str | int) -> str:
    """'3', 3 and '03' all name notebook (and checkpoint) '03'; anything else is a clear error."""
    name = f"{int(number):02d}" if str(number).isdigit() else str(number)
    if name not in NOTEBOOKS:
        raise CheckpointNotFound(
            f"There is no notebook {number}; the checkpoints are {', '.join(NOTEBOOKS)} "
            f"({', '.join(NOTEBOOKS.values())})."
        )
    return name
