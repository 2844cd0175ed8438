"""`labkit hint 07`: the challenge's hints, one more each time it is asked, counted in the record
(record.py) so that the grade says how many were used. Each hint points at the notebook that taught
the step; the last ones come close to the answer.
"""

from __future__ import annotations

from pathlib import Path

from labkit.catalogue import LATEST_REPORT, REPORT_APP, REPORT_SERVER, REPORT_TABLE, REPORTS_BUCKET
from labkit.challenge import record
from labkit.protocol import ACCOUNT_ID, REGION

HINTS: tuple[str, ...] = (
    f"Read the app first: log in with `labkit ssh {REPORT_SERVER}`, then `cat {REPORT_APP}` (typed there: after "
    "`--`, your own shell would expand ~ first, as with ssh). Each `aws` command in it is one "
    "action your role must allow, and the error it prints names the action and the resource.",
    f"{REPORT_SERVER} needs a role, never a key: a role whose trust policy names ec2.amazonaws.com and nobody "
    "else (notebook 02).",
    "No managed policy is narrow enough: write your own, one statement per action, each naming its resource "
    f"by ARN: the reports under arn:aws:s3:::{REPORTS_BUCKET}/reports/ and "
    f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{REPORT_TABLE}.",
    "A role reaches an instance through an instance profile: create_instance_profile, "
    f"add_role_to_instance_profile, then associate_iam_instance_profile on {REPORT_SERVER} (notebook 03).",
    f"Close the metadata service: modify_instance_metadata_options on {REPORT_SERVER} with HttpTokens "
    "'required' and HttpPutResponseHopLimit 1 (notebook 05).",
    "Ask IAM's policy simulator before the grader does: `aws iam simulate-principal-policy --policy-source-arn "
    f"ROLE_ARN --action-names s3:GetObject s3:PutObject --resource-arns arn:aws:s3:::{REPORTS_BUCKET}/"
    f"{LATEST_REPORT}` should say allowed, then implicitDeny.",
)


def hints_used(home: Path) -> int:
    """How many hints the student of the lab in `home` has been shown."""
    used = record.read(home).get("hints", 0)
    return used if isinstance(used, int) and not isinstance(used, bool) else 0


def next_hint(home: Path) -> str:
    """The next hint, counted; once all are shown, the last again, saying so."""
    used = hints_used(home)
    if used >= len(HINTS):
        return f"Hint {len(HINTS)} of {len(HINTS)} (the last): {HINTS[-1]}"
    kept = record.read(home)
    kept["hints"] = used + 1
    record.write(home, kept)
    return f"Hint {used + 1} of {len(HINTS)}: {HINTS[used]}"
