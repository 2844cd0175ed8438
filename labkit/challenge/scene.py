"""The challenge's scene: what Acme already runs when the student arrives (notebook 07).

`labkit reset --to 07` replays notebooks 01-06, then sets it: report-server, launched from an old
launch template (no role, IMDSv2 optional, hop limit 2); the bucket acme-reports, with reports the
app reads and private files it must not; the table report-index; and the app, ~/report-app/run,
in ec2-user's home on report-server, as Acme deployed it. The names are in labkit/catalogue.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.catalogue import LATEST_REPORT, REPORT_APP, REPORT_SERVER, REPORT_TABLE, REPORT_TABLE_KEY, REPORTS_BUCKET
from labkit.protocol import instance_home
from labkit.solutions import create_table, launch

if TYPE_CHECKING:
    from labkit.connection import Connection

# The bucket's objects: what the app reads, an older report, and what no app may read.
REPORTS: dict[str, bytes] = {
    LATEST_REPORT: b"region,orders,revenue\nus-east-1,1204,58310.20\neu-west-1,877,40112.75\n",
    "reports/2026-11.csv": b"region,orders,revenue\nus-east-1,1150,55020.00\neu-west-1,830,38890.10\n",
    "private/salaries.csv": b"name,salary\nana,98000\nbo,91000\n",
}

# The app, as report-server's AMI holds it: each aws command is one action the role must allow.
APP = f"""#!/bin/bash
# report-app: index the latest sales report (Acme's reporting team).
# Reads s3://{REPORTS_BUCKET}/{LATEST_REPORT}, then records it in the DynamoDB table {REPORT_TABLE}.
set -euo pipefail

report=$(aws s3 cp s3://{REPORTS_BUCKET}/{LATEST_REPORT} -)
rows=$(printf '%s\\n' "$report" | tail -n +2 | wc -l)

aws dynamodb put-item --table-name {REPORT_TABLE} \\
    --item '{{"{REPORT_TABLE_KEY}": {{"S": "{LATEST_REPORT}"}}, "rows": {{"N": "'"$rows"'"}}}}'

echo "report indexed"
"""


def set_the_scene(lab: Connection) -> None:
    """Make the bucket and its reports, the table, and report-server with the app on its disk."""
    s3 = lab.client("s3")
    s3.create_bucket(Bucket=REPORTS_BUCKET)
    for key, body in REPORTS.items():
        s3.put_object(Bucket=REPORTS_BUCKET, Key=key, Body=body)
    create_table(lab, REPORT_TABLE, REPORT_TABLE_KEY)
    instance_id = launch(lab, REPORT_SERVER, metadata_options={"HttpTokens": "optional", "HttpPutResponseHopLimit": 2})
    install_the_app(lab, instance_id)


def install_the_app(lab: Connection, instance_id: str) -> None:
    """Write the app into ec2-user's home on the instance, where Acme deployed it (a home is the one
    place an instance of either seal has of its own: labkit/seal/)."""
    app = instance_home(lab.home, instance_id) / REPORT_APP.removeprefix("~/")
    app.parent.mkdir(parents=True, exist_ok=True)
    app.write_text(APP)
    app.chmod(0o755)
