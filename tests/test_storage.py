"""S3 and DynamoDB in the lab: decided by the lab's evaluator (the record
`buckets_decided_by_the_labs_evaluator`: the caller's policies with the bucket's, the anonymous principal
for unsigned requests, refusals in each service's words), the lab's own limits (5 MiB an object, 100 MiB
in all, labkit/labprocess/storage_limits.py), and durability: what was acknowledged comes back after
kill -9 and from a snapshot, a reset wipes it, and nothing refused is ever kept.

What the student types runs through the real `aws` CLI and curl on instances in both seals; setup is
the administrator's boto3 from the test.

Sources: S3 User Guide, "How Amazon S3 authorizes a request", "Bucket policy examples", "Error
responses" (AccessDenied, EntityTooLarge, InternalError); GetObject's "Permissions" (a missing key is
403 without s3:ListBucket); IAM User Guide, "Policy evaluation logic", "Troubleshoot access denied
error messages"; DynamoDB Developer Guide, "Error handling" (AccessDeniedException,
InternalServerError).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_durability import fill, small_disk  # noqa: F401 - small_disk is a fixture used here

import labkit
from conftest import READ_ONLY, ROLE, Demo, kill_until_unlocked
from labkit.lab import lab_process_env
from labkit.transcript import CommandResult

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
BUCKET = "labkit-demo-reports"
TABLE = "Orders"
REPORT, REPORT_BODY = "reports/q3.txt", "revenue is up\n"
S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
S3_FULL = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
DYNAMODB_READ = "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess"
DYNAMODB_FULL = "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"
MIB = 1 << 20
ANONYMOUS_REFUSAL = "<Code>AccessDenied</Code><Message>Access Denied</Message>"
PUBLIC_NOTICES = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/public/*"}
    ],
}


# -- helpers -------------------------------------------------------------------------------------------
def session_arn(demo: Demo) -> str:
    """The role session an instance's CLI signs as (EC2 names it after the instance)."""
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{demo.instance_id}"


def with_storage(lab: labkit.Lab) -> tuple[Any, Any]:
    """The administrator's bucket (one report in it) and table (one order in it); their clients."""
    s3, dynamodb = lab.client("s3"), lab.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=REPORT, Body=REPORT_BODY.encode())
    dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")  # fmt: skip
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "o-1"}, "total": {"N": "42"}})
    return s3, dynamodb


def role_holds(demo: Demo, *managed: str, inline: dict[str, Any] | None = None) -> None:
    """The demo's role with `managed` policies (and one inline policy) in place of IAMReadOnlyAccess."""
    demo.iam.detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    for arn in managed:
        demo.iam.attach_role_policy(RoleName=ROLE, PolicyArn=arn)
    if inline is not None:
        demo.iam.put_role_policy(RoleName=ROLE, PolicyName="storage", PolicyDocument=json.dumps(inline))


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def on(demo: Demo, command: str) -> CommandResult:
    """`command` typed on the demo's instance."""
    return demo.box.run(command, timeout=120)


def said(result: CommandResult) -> str:
    """What a failed CLI command printed last on stderr: the one line a student reads."""
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"(nothing on stderr; stdout: {result.stdout!r})"


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return {"code": response["Error"]["Code"], "message": response["Error"].get("Message", ""),
            "status": response["ResponseMetadata"]["HTTPStatusCode"]}  # fmt: skip


def keys_in(s3: Any, bucket: str = BUCKET) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_table(dynamodb: Any, name: str = TABLE) -> None:
    dynamodb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")  # fmt: skip


def unsigned_on_the_api_port(lab: labkit.Lab, key: str, *options: str) -> tuple[int, str]:
    """curl with no signature to the lab's API port, addressed to the bucket's S3 name (Host): the
    gate's positive control, which needs no name resolving inside an instance."""
    ran = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", f"Host: {BUCKET}.s3.amazonaws.com",
                          *options, f"{lab.api_url}/{key}"], capture_output=True, text=True, timeout=30)  # fmt: skip
    body, _, status = ran.stdout.rpartition("\n")
    return int(status), body


def unsigned_on_the_instance(demo: Demo, key: str) -> tuple[int, str]:
    """`curl https://BUCKET.s3.amazonaws.com/KEY`, typed on the instance: its status and body."""
    ran = on(demo, f"curl -s -w '\\n%{{http_code}}' https://{BUCKET}.s3.amazonaws.com/{key}")
    assert ran.exit_code == 0, f"curl on the instance failed (exit {ran.exit_code}; 6: the name did not resolve)"
    body, _, status = ran.stdout.rpartition("\n")
    return int(status), body


# -- decided by the lab's evaluator: the registry's paired tests ---------------------------------------
def test_a_bucket_policy_deny_for_the_role_leaves_the_administrator_alone(either_demo: Demo) -> None:
    """S3 User Guide, "How Amazon S3 authorizes a request": a bucket policy is decided with the
    caller's own, and its Principal and Condition say whom a statement applies to. moto alone refuses
    everyone, the administrator too, with an empty 403."""
    demo = either_demo
    s3, _ = with_storage(demo.lab)
    role_holds(demo, S3_READ)
    demo.attach()
    assert on(demo, f"aws s3 cp s3://{BUCKET}/{REPORT} -").stdout == REPORT_BODY
    objects = f"arn:aws:s3:::{BUCKET}/*"
    by_condition = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": objects,
                    "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE_ARN}}}  # fmt: skip
    by_principal = {"Effect": "Deny", "Principal": {"AWS": ROLE_ARN}, "Action": "s3:GetObject", "Resource": objects}
    for deny in (by_condition, by_principal):
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy(deny)))
        copied = on(demo, f"aws s3 cp s3://{BUCKET}/{REPORT} -")
        assert (copied.exit_code, said(copied)) == (1, (
            f"download failed: s3://{BUCKET}/{REPORT} to - An error occurred (403) when calling the HeadObject "
            "operation: Forbidden")), deny  # fmt: skip
        got = on(demo, f"aws s3api get-object --bucket {BUCKET} --key {REPORT} report.txt")
        assert (got.exit_code, said(got)) == (255, (
            f"An error occurred (AccessDenied) when calling the GetObject operation: User: {session_arn(demo)} is "
            f'not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::{BUCKET}/{REPORT}" with an explicit '
            "deny in a resource-based policy")), deny  # fmt: skip
        assert s3.get_object(Bucket=BUCKET, Key=REPORT)["Body"].read().decode() == REPORT_BODY  # the administrator
        listed = on(demo, f"aws s3 ls s3://{BUCKET}/reports/")  # s3:ListBucket is not denied
        assert listed.exit_code == 0 and "q3.txt" in listed.stdout, listed.stderr


def test_an_unsigned_request_is_the_anonymous_principals(demo: Demo) -> None:
    """S3 User Guide, "Bucket policy examples" (read-only permission for anonymous users): an unsigned
    request is the anonymous principal's, refused `Access Denied` unless a bucket policy allows
    `"Principal": "*"`. moto alone answers a private object with an empty 403, and one a policy opens
    with a KeyError (500)."""
    s3, _ = with_storage(demo.lab)
    s3.put_object(Bucket=BUCKET, Key="public/notice.txt", Body=b"open to all\n")
    for status, body in (unsigned_on_the_api_port(demo.lab, REPORT), unsigned_on_the_api_port(demo.lab, "")):
        assert status == 403 and ANONYMOUS_REFUSAL in body, body  # reaches S3 (not the gate's refusal)
    s3.delete_public_access_block(Bucket=BUCKET)  # new buckets block public access (the test below)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(PUBLIC_NOTICES))
    assert unsigned_on_the_api_port(demo.lab, "public/notice.txt") == (200, "open to all\n")
    status, body = unsigned_on_the_api_port(demo.lab, "public/not-there.txt")
    assert status == 403 and ANONYMOUS_REFUSAL in body, body  # not NoSuchKey: no s3:ListBucket for "*"
    status, body = unsigned_on_the_api_port(demo.lab, REPORT)
    assert status == 403 and ANONYMOUS_REFUSAL in body, body
    status, body = unsigned_on_the_api_port(demo.lab, "public/planted.txt", "-X", "PUT", "--data-binary", "x")
    assert status == 403 and ANONYMOUS_REFUSAL in body, body  # reading is allowed, writing is not
    assert keys_in(s3) == ["public/notice.txt", REPORT]
    # what the student types on the instance (sealed by the kernel: S3's names resolve inside it)
    assert unsigned_on_the_instance(demo, "public/notice.txt") == (200, "open to all\n")
    status, body = unsigned_on_the_instance(demo, REPORT)
    assert status == 403 and ANONYMOUS_REFUSAL in body, body
    s3.delete_bucket_policy(Bucket=BUCKET)
    status, body = unsigned_on_the_instance(demo, "public/notice.txt")
    assert status == 403 and ANONYMOUS_REFUSAL in body, body


def test_a_new_bucket_blocks_public_access(demo: Demo) -> None:
    """S3 User Guide, "Blocking public access to your Amazon S3 storage": since April 2023 a new bucket has
    all four settings on, so a public bucket policy is refused, and once the block is lifted and the policy
    put, turning RestrictPublicBuckets back on shuts the anonymous principal out again. moto alone makes
    buckets with no block and takes the public policy."""
    s3, _ = with_storage(demo.lab)
    s3.put_object(Bucket=BUCKET, Key="public/notice.txt", Body=b"open to all\n")
    demo.attach()  # the demo's role: IAMReadOnlyAccess only
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}  # fmt: skip
    refused = on(demo, f"echo '{json.dumps(PUBLIC_NOTICES)}' > public.json && "
                       f"aws s3api put-bucket-policy --bucket {BUCKET} --policy file://public.json")  # fmt: skip
    assert (refused.exit_code, said(refused)) == (255, "An error occurred (AccessDenied) when calling the "
        f"PutBucketPolicy operation: User: {session_arn(demo)} is not authorized to perform: s3:PutBucketPolicy "
        f'on resource: "arn:aws:s3:::{BUCKET}" because no identity-based policy allows the s3:PutBucketPolicy action'
    )  # fmt: skip  # the role first: not allowed at all
    with pytest.raises(ClientError) as blocked:
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(PUBLIC_NOTICES))
    assert blocked.value.response["Error"]["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/admin is not authorized to perform: s3:PutBucketPolicy on resource: "
        f'"arn:aws:s3:::{BUCKET}" because public policies are blocked by the BlockPublicPolicy block public access '
        "setting."
    )
    narrowed = policy(
        {**PUBLIC_NOTICES["Statement"][0], "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}}
    )
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(narrowed))  # not public: one account's principals
    s3.delete_public_access_block(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(PUBLIC_NOTICES))
    assert unsigned_on_the_instance(demo, "public/notice.txt") == (200, "open to all\n")
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": False,
            "IgnorePublicAcls": False,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )
    status, body = unsigned_on_the_instance(demo, "public/notice.txt")  # fmt: skip
    assert status == 403 and ANONYMOUS_REFUSAL in body, body


def test_refusals_are_in_s3s_and_dynamodbs_words(either_demo: Demo) -> None:
    """IAM User Guide, "Troubleshoot access denied error messages": S3's AccessDenied names the
    object in quotes, DynamoDB's AccessDeniedException names the table's ARN; ListTables, which names
    no table, is refused on `table/*`."""
    demo = either_demo
    s3, dynamodb = with_storage(demo.lab)
    demo.attach()  # the demo's role: IAMReadOnlyAccess only
    who = f"User: {session_arn(demo)} is not authorized to perform:"
    put = on(demo, f"echo draft > draft.txt && aws s3api put-object --bucket {BUCKET} --key reports/draft.txt "
                   "--body draft.txt")  # fmt: skip
    assert (put.exit_code, said(put)) == (255, (
        f"An error occurred (AccessDenied) when calling the PutObject operation: {who} s3:PutObject on resource: "
        f'"arn:aws:s3:::{BUCKET}/reports/draft.txt" because no identity-based policy allows the s3:PutObject action'
    ))  # fmt: skip
    item = on(demo, f"""aws dynamodb put-item --table-name {TABLE} --item '{{"id": {{"S": "o-2"}}}}'""")
    assert (item.exit_code, said(item)) == (255, (
        f"An error occurred (AccessDeniedException) when calling the PutItem operation: {who} dynamodb:PutItem on "
        f"resource: arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE} because no identity-based policy allows the "
        "dynamodb:PutItem action"))  # fmt: skip
    tables = on(demo, "aws dynamodb list-tables")
    assert (tables.exit_code, said(tables)) == (255, (
        f"An error occurred (AccessDeniedException) when calling the ListTables operation: {who} dynamodb:ListTables "
        f"on resource: arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/* because no identity-based policy allows the "
        "dynamodb:ListTables action"))  # fmt: skip
    buckets = on(demo, "aws s3 ls")
    assert (buckets.exit_code, said(buckets)) == (255, (
        f"An error occurred (AccessDenied) when calling the ListBuckets operation: {who} s3:ListAllMyBuckets "
        "because no identity-based policy allows the s3:ListAllMyBuckets action"))  # fmt: skip
    assert keys_in(s3) == [REPORT]  # nothing refused was made
    assert [i["id"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]] == ["o-1"]


# -- what a role's policies allow ----------------------------------------------------------------------
def test_a_role_reads_what_its_policy_names_and_no_more(either_demo: Demo) -> None:
    """An inline policy naming one prefix and one table; then AmazonDynamoDBReadOnlyAccess."""
    demo = either_demo
    s3, _ = with_storage(demo.lab)
    s3.put_object(Bucket=BUCKET, Key="payroll/june.csv", Body=b"alice,1\n")
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE}"
    role_holds(demo, inline=policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/reports/*"},
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": table_arn},
    ))  # fmt: skip
    demo.attach()
    assert on(demo, f"aws s3 cp s3://{BUCKET}/{REPORT} -").stdout == REPORT_BODY
    other = on(demo, f"aws s3api get-object --bucket {BUCKET} --key payroll/june.csv june.csv")
    assert (other.exit_code, said(other)) == (255, (
        f"An error occurred (AccessDenied) when calling the GetObject operation: User: {session_arn(demo)} is not "
        f'authorized to perform: s3:GetObject on resource: "arn:aws:s3:::{BUCKET}/payroll/june.csv" because no '
        "identity-based policy allows the s3:GetObject action"))  # fmt: skip
    got = on(demo, f"""aws dynamodb get-item --table-name {TABLE} --key '{{"id": {{"S": "o-1"}}}}'""")
    assert got.exit_code == 0 and json.loads(got.stdout)["Item"] == {"id": {"S": "o-1"}, "total": {"N": "42"}}
    put = on(demo, f"""aws dynamodb put-item --table-name {TABLE} --item '{{"id": {{"S": "o-2"}}}}'""")
    assert put.exit_code == 0, put.stderr
    scan = on(demo, f"aws dynamodb scan --table-name {TABLE}")
    assert scan.exit_code == 255 and "dynamodb:Scan on resource" in said(scan)
    demo.iam.delete_role_policy(RoleName=ROLE, PolicyName="storage")
    demo.iam.attach_role_policy(RoleName=ROLE, PolicyArn=DYNAMODB_READ)
    scan = on(demo, f"aws dynamodb scan --table-name {TABLE} --query 'Items[].id.S' --output text")
    assert (scan.exit_code, scan.stdout.split()) == (0, ["o-1", "o-2"]), scan.stderr
    put = on(demo, f"""aws dynamodb put-item --table-name {TABLE} --item '{{"id": {{"S": "o-3"}}}}'""")
    assert put.exit_code == 255 and said(put).endswith(
        f"dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE} because no identity-based "
        "policy allows the dynamodb:PutItem action"
    )


def test_the_cli_reaches_s3_and_dynamodb_as_typed(either_demo: Demo) -> None:
    """`aws s3 ls`, `aws s3 cp` both ways, `aws s3api`, `aws dynamodb`, with no endpoint flag."""
    demo = either_demo
    s3, dynamodb = with_storage(demo.lab)
    role_holds(demo, S3_FULL, DYNAMODB_FULL)
    demo.attach()
    listed = on(demo, "aws s3 ls")
    assert listed.exit_code == 0 and listed.stdout.split()[-1] == BUCKET, listed.stderr
    up = on(demo, f"head -c 300000 /dev/urandom > photo.jpg && aws s3 cp photo.jpg s3://{BUCKET}/uploads/photo.jpg")
    assert up.exit_code == 0 and f"upload: ./photo.jpg to s3://{BUCKET}/uploads/photo.jpg" in up.stdout, up.stderr
    local = on(demo, "sha256sum photo.jpg").stdout.split()[0]
    assert sha256(s3.get_object(Bucket=BUCKET, Key="uploads/photo.jpg")["Body"].read()) == local
    down = on(demo, f"aws s3 cp s3://{BUCKET}/uploads/photo.jpg copy.jpg && sha256sum copy.jpg")
    assert down.exit_code == 0 and local in down.stdout, down.stderr
    keys = on(demo, f"aws s3api list-objects-v2 --bucket {BUCKET} --query 'Contents[].Key' --output text")
    assert (keys.exit_code, sorted(keys.stdout.split())) == (0, sorted([REPORT, "uploads/photo.jpg"])), keys.stderr
    removed = on(demo, f"aws s3 rm s3://{BUCKET}/uploads/photo.jpg")
    assert removed.exit_code == 0 and keys_in(s3) == [REPORT], removed.stderr
    tables = on(demo, "aws dynamodb list-tables --output text")
    assert tables.exit_code == 0 and tables.stdout.split() == ["TABLENAMES", TABLE], tables.stderr
    order = """'{"id": {"S": "o-2"}, "total": {"N": "7"}}'"""
    put = on(demo, f"aws dynamodb put-item --table-name {TABLE} --item {order}")
    assert put.exit_code == 0, put.stderr
    values = """'{":id": {"S": "o-2"}}'"""
    query = on(demo, f"aws dynamodb query --table-name {TABLE} --key-condition-expression 'id = :id' "
                     f"--expression-attribute-values {values} --query 'Items[0].total.N'")  # fmt: skip
    assert (query.exit_code, query.stdout.strip()) == (0, '"7"'), query.stderr
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "o-2"}})["Item"]
    assert item == {"id": {"S": "o-2"}, "total": {"N": "7"}}


# -- the lab's limits ----------------------------------------------------------------------------------
def fill_to_the_lab_limit(s3: Any, prefix: str = "fill/") -> dict[str, bytes]:
    """Objects of 5 MiB until the lab's 100 MiB has no room for another: the keys and bodies written."""
    from labkit.labprocess.storage_limits import LAB_LIMIT, OBJECT_LIMIT

    held = sum(item["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
               for item in page.get("Contents", []))  # fmt: skip
    written: dict[str, bytes] = {}
    while held + OBJECT_LIMIT <= LAB_LIMIT:
        key, body = f"{prefix}{len(written):02d}", os.urandom(OBJECT_LIMIT)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        written[key] = body
        held += OBJECT_LIMIT
    return written


def test_uploads_past_the_labs_limits_are_entity_too_large_and_rm_makes_room(either_demo: Demo) -> None:
    """S3's EntityTooLarge (`Your proposed upload exceeds the maximum allowed size`), with the lab's
    limit: 5 MiB an object, 100 MiB in all; `aws s3 rm` makes room."""
    demo = either_demo
    s3, _ = with_storage(demo.lab)
    role_holds(demo, S3_FULL)
    demo.attach()
    big = on(demo, f"head -c 6000000 /dev/urandom > big.bin && aws s3 cp big.bin s3://{BUCKET}/big.bin")
    assert (big.exit_code, said(big)) == (1, (
        f"upload failed: ./big.bin to s3://{BUCKET}/big.bin An error occurred (EntityTooLarge) when calling the "
        "PutObject operation: Your proposed upload exceeds the maximum allowed size: this lab keeps objects of at "
        "most 5 MiB (AWS takes up to 5 GiB in one PUT)"))  # fmt: skip
    s3.delete_object(Bucket=BUCKET, Key=REPORT)
    filled = sorted(fill_to_the_lab_limit(s3))
    assert len(filled) == 20  # 100 MiB
    more = on(demo, f"head -c 100000 /dev/urandom > small.bin && aws s3 cp small.bin s3://{BUCKET}/small.bin")
    assert (more.exit_code, said(more)) == (1, (
        f"upload failed: ./small.bin to s3://{BUCKET}/small.bin An error occurred (EntityTooLarge) when calling the "
        "PutObject operation: Your proposed upload exceeds the maximum allowed size: this lab keeps at most 100 MiB "
        "of objects in all and holds 100 MiB; delete some first (aws s3 rm)"))  # fmt: skip
    assert keys_in(s3) == filled  # nothing refused was kept
    room = on(demo, f"aws s3 rm s3://{BUCKET}/{filled[0]} && aws s3 cp small.bin s3://{BUCKET}/small.bin")
    assert room.exit_code == 0 and f"upload: ./small.bin to s3://{BUCKET}/small.bin" in room.stdout, room.stderr
    assert keys_in(s3) == sorted([*filled[1:], "small.bin"])


# -- durability ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_what_s3_and_dynamodb_acknowledged_comes_back_after_kill_9_and_nothing_refused_does(
    own_lab: labkit.Lab,
) -> None:
    s3, dynamodb = own_lab.client("s3"), own_lab.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    objects = {f"notes/{n}.txt": os.urandom(3000 + n) for n in range(3)}
    objects["big/dump.bin"] = os.urandom(int(4.9 * MIB))
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    create_table(dynamodb)
    items = [{"id": {"S": f"o-{n}"}, "total": {"N": str(n * 10)}} for n in range(5)]
    for item in items:
        dynamodb.put_item(TableName=TABLE, Item=item)
    dynamodb.delete_item(TableName=TABLE, Key={"id": {"S": "o-4"}})
    too_big = refused(lambda: s3.put_object(Bucket=BUCKET, Key="six.bin", Body=os.urandom(6 * MIB)))
    assert (too_big["status"], too_big["code"]) == (400, "EntityTooLarge")
    objects.update(fill_to_the_lab_limit(s3))
    over = refused(lambda: s3.put_object(Bucket=BUCKET, Key="over.bin", Body=os.urandom(5 * MIB)))
    assert over["code"] == "EntityTooLarge" and "keeps at most 100 MiB of objects in all" in over["message"]
    kill_until_unlocked(own_lab)
    back = labkit.connect(own_lab.home)
    assert back.info.problem == ""
    s3, dynamodb = back.client("s3"), back.client("dynamodb")
    assert keys_in(s3) == sorted(objects)  # neither six.bin nor over.bin
    for key, body in objects.items():
        assert sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == sha256(body), key
    assert sorted(dynamodb.scan(TableName=TABLE)["Items"], key=lambda i: i["id"]["S"]) == items[:4]
    again = refused(lambda: s3.put_object(Bucket=BUCKET, Key="over.bin", Body=os.urandom(MIB)))
    assert again["code"] == "EntityTooLarge"  # the restored lab counts what it holds again
    s3.delete_object(Bucket=BUCKET, Key="big/dump.bin")
    s3.put_object(Bucket=BUCKET, Key="over.bin", Body=os.urandom(MIB))


SNAPSHOT_BACKENDS = """
import json, pickle, sys
from labkit.labprocess.backends import configure_moto
configure_moto()
from labkit.labprocess import motofixes
motofixes.apply(motofixes.LAB)  # the lab's backend classes, which a snapshot names
print(json.dumps(sorted(pickle.loads(open(sys.argv[1], "rb").read())["backends"])))
"""


def snapshot_backends(path: Path) -> list[str]:
    """The services whose moto backends a snapshot holds, read by the lab's own code in a process of its own."""
    ran = subprocess.run([sys.executable, "-c", SNAPSHOT_BACKENDS, str(path)], capture_output=True, text=True,
                         env=lab_process_env(), timeout=120, check=True)  # fmt: skip
    found: list[str] = json.loads(ran.stdout)
    return found


def changes_until_a_snapshot(lab: labkit.Lab) -> Path:
    """IAM changes until the lab writes a new snapshot; that snapshot."""
    from labkit.labprocess.recovery import SNAPSHOT_EVERY

    before = set(lab.home.glob("snapshot-*.pickle"))
    iam = lab.client("iam")
    for n in range(SNAPSHOT_EVERY + 1):
        iam.tag_user(UserName="bob", Tags=[{"Key": "n", "Value": str(n)}])
        made = set(lab.home.glob("snapshot-*.pickle")) - before
        if made:
            return made.pop()
    raise AssertionError(f"no snapshot after {SNAPSHOT_EVERY + 1} changes")


@pytest.mark.slow
def test_a_lab_that_never_used_s3_snapshots_none_and_a_snapshot_brings_objects_back(own_lab: labkit.Lab) -> None:
    """moto's S3 and DynamoDB backends are made on first use: a lab that never touched them keeps
    none in its snapshot. Once used, the snapshot holds them, and a kill -9 after it brings the
    objects and items back from the snapshot alone."""
    first = changes_until_a_snapshot(own_lab)
    held = snapshot_backends(first)
    assert "iam" in held and "s3" not in held and "dynamodb" not in held, held
    s3, dynamodb = own_lab.client("s3"), own_lab.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    bodies = {"small.txt": b"kept in the snapshot\n", "big.bin": os.urandom(int(4.9 * MIB))}
    for key, body in bodies.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    create_table(dynamodb)
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "o-1"}})
    second = changes_until_a_snapshot(own_lab)
    assert {"iam", "s3", "dynamodb"} <= set(snapshot_backends(second))
    header = json.loads((own_lab.home / "journal.jsonl").read_bytes().splitlines()[0])
    assert header["snapshot"]["changes"] > int(first.stem.split("-")[1])  # the journal follows the new one
    kill_until_unlocked(own_lab)
    back = labkit.connect(own_lab.home)
    assert back.info.problem == ""
    s3 = back.client("s3")
    assert keys_in(s3) == sorted(bodies)
    for key, body in bodies.items():
        assert sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == sha256(body), key
    assert back.client("dynamodb").scan(TableName=TABLE)["Items"] == [{"id": {"S": "o-1"}}]


def labkit_command(lab: labkit.Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LABKIT_HOME": str(lab.home)})  # fmt: skip


def test_a_reset_and_a_checkpoint_wipe_buckets_and_tables(fresh_lab: labkit.Lab) -> None:
    for reset in (("reset",), ("reset", "--to", "04")):
        with_storage(fresh_lab)
        done = labkit_command(fresh_lab, *reset)
        assert done.returncode == 0, done.stderr
        assert fresh_lab.client("s3").list_buckets()["Buckets"] == [], reset
        assert fresh_lab.client("dynamodb").list_tables()["TableNames"] == [], reset


def test_dynamodbs_reads_do_not_grow_the_journal_and_its_writes_do(fresh_lab: labkit.Lab) -> None:
    s3, dynamodb = with_storage(fresh_lab)
    journal = fresh_lab.home / "journal.jsonl"
    lines = len(journal.read_bytes().splitlines())
    key = {"id": {"S": "o-1"}}
    dynamodb.get_item(TableName=TABLE, Key=key)
    dynamodb.scan(TableName=TABLE)
    dynamodb.query(TableName=TABLE, KeyConditionExpression="id = :id", ExpressionAttributeValues={":id": key["id"]})
    dynamodb.batch_get_item(RequestItems={TABLE: {"Keys": [key]}})
    dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": TABLE, "Key": key}}])
    dynamodb.describe_table(TableName=TABLE)
    dynamodb.list_tables()
    s3.get_object(Bucket=BUCKET, Key=REPORT)
    s3.head_object(Bucket=BUCKET, Key=REPORT)
    s3.list_objects_v2(Bucket=BUCKET)
    assert len(journal.read_bytes().splitlines()) == lines
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "o-2"}})
    written = journal.read_bytes().splitlines()
    assert len(written) == lines + 1 and json.loads(written[-1])["action"] == "PutItem"


# -- a change that cannot be written whole is neither acknowledged nor kept ----------------------------
@pytest.fixture
def lab_on_a_small_disk(small_disk: Path) -> Iterator[tuple[labkit.Lab, Path]]:  # noqa: F811 - the fixture
    home = small_disk / "lab"
    lab = labkit.connect(home)
    try:
        yield lab, small_disk
    finally:
        labkit.down(home)


def full_disk_line(lab: labkit.Lab) -> str:
    return ("The lab could not write a change to its journal (the disk is full), so it did not make it; free space "
            f"where the lab keeps its state ({lab.home}), then try again.")  # fmt: skip


@pytest.mark.slow
@pytest.mark.root(reason="mounting a tmpfs needs root")
def test_an_upload_the_full_disk_cannot_journal_is_s3s_internal_error_and_not_kept(
    lab_on_a_small_disk: tuple[labkit.Lab, Path],
) -> None:
    """S3's answer to a request it failed to carry out: 500 InternalError (S3 API Reference, "Error
    responses"), here with the lab's line."""
    lab, disk = lab_on_a_small_disk
    s3 = lab.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="before.txt", Body=b"kept")
    filler = fill(disk)
    answer = refused(lambda: s3.put_object(Bucket=BUCKET, Key="lost.bin", Body=os.urandom(MIB)))
    assert keys_in(s3) == ["before.txt"]
    filler.unlink()
    kill_until_unlocked(lab)
    assert keys_in(labkit.connect(lab.home).client("s3")) == ["before.txt"]
    assert (answer["status"], answer["message"]) == (500, full_disk_line(lab))
    assert answer["code"] == "InternalError", answer  # S3's code; the lab answers IAM's InternalFailure


@pytest.mark.slow
@pytest.mark.root(reason="mounting a tmpfs needs root")
def test_an_item_the_full_disk_cannot_journal_is_dynamodbs_internal_server_error_and_not_kept(
    lab_on_a_small_disk: tuple[labkit.Lab, Path],
) -> None:
    """DynamoDB's answer to a request it failed to carry out: 500 InternalServerError, in JSON
    (DynamoDB Developer Guide, "Error handling"), here with the lab's line."""
    lab, disk = lab_on_a_small_disk
    dynamodb = lab.client("dynamodb")
    create_table(dynamodb)
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "before"}})
    filler = fill(disk)
    answer = refused(lambda: dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "lost"}, "blob": {"S": "x" * 1000}}))
    assert dynamodb.scan(TableName=TABLE)["Items"] == [{"id": {"S": "before"}}]
    filler.unlink()
    kill_until_unlocked(lab)
    assert labkit.connect(lab.home).client("dynamodb").scan(TableName=TABLE)["Items"] == [{"id": {"S": "before"}}]
    assert answer["status"] == 500
    assert (answer["code"], answer["message"]) == ("InternalServerError", full_disk_line(lab)), answer


# -- found while writing these tests -------------------------------------------------------------------
@pytest.mark.slow
def test_a_multipart_upload_comes_back_after_kill_9(own_lab: labkit.Lab) -> None:
    """moto draws a multipart upload's id from os.urandom, not from the lab's seeded streams, so a
    replayed CreateMultipartUpload gets another id and the journaled UploadPart that names the first
    one cannot be replayed: it and every later change are dropped. `aws s3 cp` of a file of 8 MB or
    more makes a multipart upload."""
    s3 = own_lab.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="parts.bin")["UploadId"]
    body = os.urandom(MIB)
    part = s3.upload_part(Bucket=BUCKET, Key="parts.bin", UploadId=upload, PartNumber=1, Body=body)
    s3.complete_multipart_upload(Bucket=BUCKET, Key="parts.bin", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="after.txt", Body=b"acknowledged after it")
    kill_until_unlocked(own_lab)
    back = labkit.connect(own_lab.home)
    assert back.info.problem == ""
    assert keys_in(back.client("s3")) == ["after.txt", "parts.bin"]
    assert sha256(back.client("s3").get_object(Bucket=BUCKET, Key="parts.bin")["Body"].read()) == sha256(body)


def test_a_missing_key_is_access_denied_to_whom_s3_list_bucket_is_not_allowed(fresh_lab: labkit.Lab) -> None:
    """GetObject, "Permissions": without s3:ListBucket on the bucket, a key that does not exist is 403
    AccessDenied, not 404 NoSuchKey (which would tell what keys exist): for a role's session and for
    the anonymous principal alike."""
    s3, _ = with_storage(fresh_lab)
    iam = fresh_lab.client("iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="reports", PolicyDocument=json.dumps(policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/reports/*"})))  # fmt: skip
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    reader = fresh_lab.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert reader.get_object(Bucket=BUCKET, Key=REPORT)["Body"].read().decode() == REPORT_BODY
    assert refused(lambda: s3.get_object(Bucket=BUCKET, Key="reports/none.txt"))["code"] == "NoSuchKey"  # admin
    s3.delete_public_access_block(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/reports/*"}
    )))  # fmt: skip
    status, body = unsigned_on_the_api_port(fresh_lab, "reports/none.txt")
    missing = refused(lambda: reader.get_object(Bucket=BUCKET, Key="reports/none.txt"))
    assert (missing["status"], missing["code"]) == (403, "AccessDenied"), missing
    assert status == 403 and ANONYMOUS_REFUSAL in body, body
