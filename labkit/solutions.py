"""The canonical solution of each notebook: the AWS calls a student makes, replayed by `reset --to`.

`labkit reset --to NN` wipes the lab and replays the steps of every notebook before NN, so the lab
is exactly as a student who finished them would have it, with the same ids as the student's own run
(every lab draws moto's ids from one seed, a stream per kind of change: labkit/labprocess/recovery.py).
Each function says which notebook teaches it; the names it uses are in labkit/catalogue.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from labkit.catalogue import (
    AL2023,
    APP_DATA_POLICY,
    APP_SERVER,
    APP_USER,
    BUCKET,
    EC2_FULL_ACCESS,
    EC2_READ_ONLY,
    EC2_TRUST_POLICY,
    INSTANCE,
    LEGACY_SERVER,
    LEGACY_TOKEN,
    OPERATOR,
    ORDER,
    PASS_ROLE_POLICY,
    PROFILE,
    READ_ONLY,
    REVOKE_POLICY,
    ROLE,
    SECOND_PROFILE,
    SECOND_ROLE,
    SETTINGS,
    SETTINGS_ARN,
    SETTINGS_KEY,
    TABLE,
    TABLE_ARN,
    TABLE_KEY,
    WEB_SERVER,
)
from labkit.protocol import ACCOUNT_ID

if TYPE_CHECKING:
    from labkit.connection import Connection

__all__ = [
    "READ_APP_DATA",
    "STEPS",
    "association_of",
    "before",
    "create_role_for_ec2",
    "create_table",
    "delete_the_app_data",
    "let_the_role_read_the_app_data",
    "launch",
    "notebook_01",
    "notebook_02",
    "notebook_03",
    "notebook_04",
    "notebook_05",
    "notebook_06",
    "pass_role_to_an_operator",
    "put_the_app_data",
    "revoke_older_sessions",
    "running_instance_id",
]

PASS_ROLE_TO_EC2: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        }
    ],
}

# 04's inline policy: the least the application needs, each resource named by its ARN.
READ_APP_DATA: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": SETTINGS_ARN},
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE_ARN},
    ],
}


def launch(
    lab: Connection,
    name: str,
    *,
    profile: str | None = None,
    metadata_options: dict[str, Any] | None = None,
    client_token: str | None = None,
) -> str:
    """Launch one Amazon Linux 2023 t3.micro with a Name tag (and an instance profile, metadata
    options other than the AMI's, a ClientToken that makes it idempotent); returns its id."""
    ec2 = lab.client("ec2")
    image = ec2.describe_images(Owners=["amazon"], Filters=AL2023)["Images"][0]["ImageId"]
    reservation = once_ec2_sees_the_profile(
        lab,
        lambda: ec2.run_instances(
            ImageId=image,
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
            **({"IamInstanceProfile": {"Name": profile}} if profile else {}),
            **({"MetadataOptions": metadata_options} if metadata_options else {}),
            **({"ClientToken": client_token} if client_token else {}),
        ),
    )
    return str(reservation["Instances"][0]["InstanceId"])


def once_ec2_sees_the_profile(lab: Connection, call: Callable[[], Any]) -> Any:
    """`call()`, tried again while EC2 does not see a new instance profile yet: with `labkit up
    --iam-delay N`, as on AWS, a profile made a moment ago is refused for a few seconds (Terraform
    retries the same way)."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + float(getattr(lab.info, "iam_delay", 0.0) or 0.0) + 1.0
    while True:
        try:
            return call()
        except ClientError as error:
            young = "Invalid IAM Instance Profile" in str(error.response.get("Error", {}).get("Message", ""))
            if not young or time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def create_role_for_ec2(lab: Connection, name: str, policy_arn: str) -> None:
    """A role EC2 may assume, one managed policy, and the instance profile the console would make."""
    iam = lab.client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST_POLICY))
    iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)


def revoke_older_sessions(lab: Connection, role: str, cutoff: datetime | None = None) -> datetime:
    """What the console's *Roles → ROLE → Revoke sessions → Revoke active sessions* does: the inline
    policy AWSRevokeOlderSessions, denying every action to the role's sessions issued before `cutoff`
    (`aws:TokenIssueTime`; by default the next whole second, so that a session issued this second is
    revoked too), which it returns. Sessions issued later are not denied (IAM User Guide, "Revoke IAM
    role temporary security credentials")."""
    cutoff = cutoff or (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    condition = {"DateLessThan": {"aws:TokenIssueTime": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    revoke = {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition},
    }
    lab.client("iam").put_role_policy(RoleName=role, PolicyName=REVOKE_POLICY, PolicyDocument=json.dumps(revoke))
    return cutoff


def association_of(lab: Connection, instance_id: str) -> dict[str, Any] | None:
    """The instance's current instance-profile association, if it has one."""
    found = lab.client("ec2").describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}, {"Name": "state", "Values": ["associated"]}]
    )["IamInstanceProfileAssociations"]
    return found[0] if found else None


def running_instance_id(lab: Connection, name: str) -> str | None:
    found = [i for i in lab.instances() if i.name == name and i.state == "running"]
    return found[0].instance_id if found else None


def notebook_01(lab: Connection) -> None:
    """Taught in 01-the-problem: an app user with IAMReadOnlyAccess, the app-server it ran on.

    The access key the notebook writes to app-server's disk is deleted again by its end, and the
    credentials file removed, so neither remains.
    """
    iam = lab.client("iam")
    iam.create_user(UserName=APP_USER)
    iam.attach_user_policy(UserName=APP_USER, PolicyArn=READ_ONLY)
    launch(lab, APP_SERVER)


def notebook_02(lab: Connection) -> None:
    """Taught in 02-create-the-role: DemoRoleForEC2, trusted by EC2, with IAMReadOnlyAccess and its profile."""
    create_role_for_ec2(lab, ROLE, READ_ONLY)


def notebook_03(lab: Connection) -> None:
    """Taught in 03-attach-the-role: launch demo-instance and attach DemoRoleForEC2 ("Modify IAM role")."""
    instance_id = launch(lab, INSTANCE)
    ec2 = lab.client("ec2")
    once_ec2_sees_the_profile(
        lab, lambda: ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": PROFILE}, InstanceId=instance_id)
    )


def notebook_04(lab: Connection) -> None:
    """Taught in 04-role-permissions: the application's data, read through the role once allowed
    (put_the_app_data, let_the_role_read_the_app_data); detach and re-attach the policy; switch roles
    and back; operator refused, then allowed, to pass the role (pass_role_to_an_operator); launch
    web-server with the role from the start, then terminate it.

    What remains: the bucket and the table, with their object and item; a second role,
    DemoEC2ReadOnlyRole, and its profile; demo-instance holds DemoRoleForEC2 again, with
    IAMReadOnlyAccess attached again. The inline policy ReadAppData is deleted again by the end of its
    section, so that 05 finds the role as it knows it. The key of alice that the notebook leaves on
    demo-instance, to show that it wins over the role, is deleted again by its end, and the
    credentials file removed, so neither remains; so are operator and app-server's role.
    """
    iam, ec2 = lab.client("iam"), lab.client("ec2")
    put_the_app_data(lab)
    let_the_role_read_the_app_data(lab)
    iam.delete_role_policy(RoleName=ROLE, PolicyName=APP_DATA_POLICY)
    iam.detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    create_role_for_ec2(lab, SECOND_ROLE, EC2_READ_ONLY)
    instance_id = running_instance_id(lab, INSTANCE)
    assert instance_id is not None, "notebook 03 launches demo-instance"
    for profile in (SECOND_PROFILE, PROFILE):
        association = association_of(lab, instance_id)
        assert association is not None, "notebook 03 attaches DemoRoleForEC2"
        replace = partial(
            ec2.replace_iam_instance_profile_association,
            IamInstanceProfile={"Name": profile},
            AssociationId=association["AssociationId"],
        )
        once_ec2_sees_the_profile(lab, replace)
    pass_role_to_an_operator(lab)
    ec2.terminate_instances(InstanceIds=[launch(lab, WEB_SERVER, profile=PROFILE)])


def put_the_app_data(lab: Connection) -> None:
    """Taught in 04-role-permissions ("What the role is for: the application's data"): the
    administrator makes the application's bucket, with its settings in config/settings.json, and its
    table of orders (on demand, keyed by a string order_id), with one order in it.

    On AWS a new table is CREATING for a moment, so the notebook waits until it exists (a waiter
    that the lab, whose tables are ACTIVE at once, answers at its first ask)."""
    s3, dynamodb = lab.client("s3"), lab.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=SETTINGS_KEY, Body=SETTINGS)
    create_table(lab, TABLE, TABLE_KEY)
    dynamodb.put_item(TableName=TABLE, Item=ORDER)


def create_table(lab: Connection, name: str, key: str) -> None:
    """An on-demand table keyed by the string `key`, waited for until it exists (CREATING for a
    moment on AWS; the lab's tables are ACTIVE at once, so its waiter answers at the first ask)."""
    dynamodb = lab.client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
    )
    dynamodb.get_waiter("table_exists").wait(TableName=name)


def let_the_role_read_the_app_data(lab: Connection) -> None:
    """Taught in 04-role-permissions: DemoRoleForEC2's inline policy ReadAppData, s3:GetObject on the
    bucket's config/ objects and dynamodb:GetItem on the table, each named by its ARN. The notebook
    shows demo-instance refused both reads before it (S3's AccessDenied, DynamoDB's
    AccessDeniedException), allowed both after it, and refused an upload (s3:PutObject). A replay runs
    nothing on an instance: the refused upload would move only PutObject's id stream, which no later
    step draws from."""
    lab.client("iam").put_role_policy(
        RoleName=ROLE, PolicyName=APP_DATA_POLICY, PolicyDocument=json.dumps(READ_APP_DATA)
    )


def delete_the_app_data(lab: Connection) -> None:
    """Taught in 06-review ("Clean up"): S3 deletes only an empty bucket, so its objects go first;
    then the bucket, and the table (DELETING for a moment on AWS: the notebook waits until it is gone)."""
    s3 = lab.client("s3")
    for found in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=found["Key"])
    s3.delete_bucket(Bucket=BUCKET)
    dynamodb = lab.client("dynamodb")
    dynamodb.delete_table(TableName=TABLE)
    dynamodb.get_waiter("table_not_exists").wait(TableName=TABLE)


def pass_role_to_an_operator(lab: Connection) -> None:
    """Taught in 04-role-permissions ("Who may hand out a role: iam:PassRole"): operator, who holds
    AmazonEC2FullAccess, is refused attaching DemoRoleForEC2 to app-server (UnauthorizedOperation:
    no iam:PassRole on the role), is granted iam:PassRole on it for ec2.amazonaws.com, attaches it;
    then the role comes off app-server and operator is deleted, so nothing of it remains.

    Replayed, refusal included: a refused request draws from its action's id stream as an accepted
    one does, so the refused attempt, like the attach, moves AssociateIamInstanceProfile's stream
    on, and operator moves CreateUser's (IAM User Guide, "Grant a user permissions to pass a role
    to an AWS service")."""
    from botocore.exceptions import ClientError

    iam, ec2 = lab.client("iam"), lab.client("ec2")
    iam.create_user(UserName=OPERATOR)
    iam.attach_user_policy(UserName=OPERATOR, PolicyArn=EC2_FULL_ACCESS)
    key = iam.create_access_key(UserName=OPERATOR)["AccessKey"]
    as_operator = lab.client("ec2", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    server = running_instance_id(lab, APP_SERVER)
    assert server is not None, "notebook 01 launches app-server"
    attach = partial(
        as_operator.associate_iam_instance_profile, IamInstanceProfile={"Name": PROFILE}, InstanceId=server
    )
    try:
        attach()
    except ClientError as refusal:
        assert refusal.response["Error"]["Code"] == "UnauthorizedOperation", refusal
    else:
        raise AssertionError("AmazonEC2FullAccess alone let operator pass DemoRoleForEC2")
    iam.put_user_policy(UserName=OPERATOR, PolicyName=PASS_ROLE_POLICY, PolicyDocument=json.dumps(PASS_ROLE_TO_EC2))
    association = attach()["IamInstanceProfileAssociation"]["AssociationId"]
    ec2.disassociate_iam_instance_profile(AssociationId=association)
    iam.delete_access_key(UserName=OPERATOR, AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=OPERATOR, PolicyName=PASS_ROLE_POLICY)
    iam.detach_user_policy(UserName=OPERATOR, PolicyArn=EC2_FULL_ACCESS)
    iam.delete_user(UserName=OPERATOR)


def notebook_05(lab: Connection) -> None:
    """Taught in 05-instance-metadata: revoke DemoRoleForEC2's older sessions ("Revoke active
    sessions"), as after a leak; launch legacy-server with DemoRoleForEC2 allowing IMDSv1, as an older
    launch template would, then require IMDSv2 on it ("IMDSv2 Required"). demo-instance, from Amazon
    Linux 2023, has required IMDSv2 since its launch.

    The notebook then stops and starts demo-instance, so that it gets a session issued after the
    revocation. A replayed lab has handed out no session yet (no step here runs a command on an
    instance), so the cutoff is this whole second, not the next: every session it hands out later is
    issued after it, and a reset waits for nothing."""
    revoke_older_sessions(lab, ROLE, cutoff=datetime.now(UTC).replace(microsecond=0))
    instance_id = launch(
        lab, LEGACY_SERVER, profile=PROFILE, metadata_options={"HttpTokens": "optional"}, client_token=LEGACY_TOKEN
    )
    lab.client("ec2").modify_instance_metadata_options(InstanceId=instance_id, HttpTokens="required")


def notebook_06(lab: Connection) -> None:
    """Taught in 06-review: clean up everything the series made, 04's bucket and table too."""
    iam, ec2 = lab.client("iam"), lab.client("ec2")
    ours = (INSTANCE, APP_SERVER, LEGACY_SERVER)
    instance_ids = [i.instance_id for i in lab.instances() if i.name in ours and i.state == "running"]
    for instance_id in instance_ids:
        association = association_of(lab, instance_id)
        if association is not None:
            ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
    if instance_ids:
        ec2.terminate_instances(InstanceIds=instance_ids)
    for role, profile, policy in ((ROLE, PROFILE, READ_ONLY), (SECOND_ROLE, SECOND_PROFILE, EC2_READ_ONLY)):
        iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=role)
        iam.delete_instance_profile(InstanceProfileName=profile)
        iam.detach_role_policy(RoleName=role, PolicyArn=policy)
        for inline in iam.list_role_policies(RoleName=role)["PolicyNames"]:  # 05's AWSRevokeOlderSessions
            iam.delete_role_policy(RoleName=role, PolicyName=inline)
        iam.delete_role(RoleName=role)
    delete_the_app_data(lab)
    iam.detach_user_policy(UserName=APP_USER, PolicyArn=READ_ONLY)
    iam.delete_user(UserName=APP_USER)


STEPS: dict[str, Callable[[Connection], None]] = {
    "01": notebook_01,
    "02": notebook_02,
    "03": notebook_03,
    "04": notebook_04,
    "05": notebook_05,
    "06": notebook_06,
}


def before(checkpoint: str) -> list[str]:
    """The notebooks whose steps come before `checkpoint` (itself excluded)."""
    return [number for number in STEPS if number < checkpoint]
