"""What S3 and DynamoDB add to a decision: the action and resource AWS names, a bucket's policy, and
the words each service refuses in.

- S3 (Service Authorization Reference, Amazon S3): moto names a request's action after its API
  operation; IAM's action is sometimes another (HeadBucket is `s3:ListBucket`, a public access block is
  `s3:GetBucketPublicAccessBlock`). The resource is the bucket or the object
  (`arn:aws:s3:::BUCKET/KEY`); ListBuckets has none. A bucket's policy is a resource-based policy,
  decided with the caller's own ("Policy evaluation logic"). A request that is not signed is the
  anonymous principal's: only a bucket policy that names `"*"` may allow it.
- DynamoDB: the resource is the table (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME`), or its index;
  ListTables has none (decided on `*`).
- Refusals: S3's `<Error><Code>AccessDenied</Code>…` (a 403; `Access Denied` for the anonymous
  principal), DynamoDB's `AccessDeniedException` (a 400, in JSON), each with IAM's whole sentence
  (`User: ARN is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::BUCKET/KEY"
  because no identity-based policy allows the s3:GetObject action`: AWS's S3 puts the resource in
  quotes, DynamoDB does not).

Only the lab process imports this module.
"""

from __future__ import annotations

import json
from typing import Any

from labkit.labprocess.evaluation import Policy
from labkit.protocol import ACCOUNT_ID, REGION

ANONYMOUS = "*"  # the principal of a request that is not signed
S3_ACTIONS = {  # moto's name for a request → IAM's action (Service Authorization Reference, Amazon S3)
    "HeadBucket": "ListBucket",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    "PutLifecycleConfiguration": "PutLifecycleConfiguration",
}
DYNAMODB_TABLELESS = frozenset({"ListTables", "DescribeLimits", "DescribeEndpoints", "ListBackups",
                                "ListGlobalTables", "ListImports", "ListExports"})  # fmt: skip


def s3_action(moto_action: str) -> str:
    """IAM's S3 action for moto's (`s3:HeadBucket` → `s3:ListBucket`)."""
    service, _, operation = moto_action.partition(":")
    return f"{service}:{S3_ACTIONS.get(operation, operation)}"


def s3_resource(moto_resource: str) -> str:
    """The bucket or object a request names (moto's `arn:aws:s3:::BUCKET[/KEY]`), or '' for none."""
    return "" if moto_resource in ("", "*", "arn:aws:s3:::*") else moto_resource


def bucket_of(resource: str) -> str:
    """The bucket of an S3 resource ARN, or ''."""
    return resource.removeprefix("arn:aws:s3:::").partition("/")[0] if resource.startswith("arn:aws:s3:::") else ""


def bucket_policy(bucket_name: str) -> Policy | None:
    """A bucket's policy, as the resource-based policy S3 decides with; None when it has none."""
    if not bucket_name:
        return None
    from moto.s3.models import s3_backends

    bucket = s3_backends[ACCOUNT_ID]["aws"].buckets.get(bucket_name)
    document = getattr(bucket, "policy", None)
    if not document:
        return None
    text = document.decode() if isinstance(document, bytes) else str(document)
    return Policy(text, name=bucket_name, kind="Resource Policy")


def dynamodb_resources(operation: str, body: bytes) -> list[str]:
    """The tables (or indexes) a DynamoDB request acts on, as ARNs; [] for an action without one."""
    if operation in DYNAMODB_TABLELESS:
        return []
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return []
    if not isinstance(params, dict):
        return []
    prefix = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/"
    names: list[str] = []
    if isinstance(params.get("RequestItems"), dict):  # BatchGetItem, BatchWriteItem
        names = [str(name) for name in params["RequestItems"]]
    elif isinstance(params.get("TransactItems"), list):
        for item in params["TransactItems"]:
            for part in item.values() if isinstance(item, dict) else ():
                if isinstance(part, dict) and part.get("TableName"):
                    names.append(str(part["TableName"]))
    elif params.get("TableName"):
        name = str(params["TableName"])
        index = params.get("IndexName")
        names = [f"{name}/index/{index}" if index else name]
    elif params.get("ResourceArn"):  # tagging
        return [str(params["ResourceArn"])]
    return [name if name.startswith("arn:") else prefix + name for name in dict.fromkeys(names)]


def refusal_error(service: str, code: str, message: str) -> Exception:
    """The exception moto's response code turns into the service's own refusal."""
    if service == "s3":
        from moto.s3.exceptions import S3ClientError

        class S3AccessRefused(S3ClientError):
            pass

        error = S3AccessRefused(code, message)
        return error
    if service == "dynamodb":
        from moto.core.exceptions import JsonRESTError

        return JsonRESTError(f"com.amazon.coral.service#{code}Exception", message)
    raise ValueError(service)


def dynamodb_message(who: str, resource: str, why: str) -> str:
    """DynamoDB's AccessDeniedException message: the resource is the table's ARN, unquoted; an action
    without one (ListTables, decided on `*`) names every table, as DynamoDB's refusals do lately
    (`… dynamodb:ListTables on resource: arn:aws:dynamodb:us-east-1:ACCOUNT:table/*`)."""
    named = resource if resource != "*" else f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/*"
    return f"{who} on resource: {named} {why}"


def s3_message(who: str, resource: str, why: str) -> str:
    """S3's AccessDenied message: the resource in quotes, when there is one."""
    on = f' on resource: "{resource}"' if resource else ""
    return f"{who}{on} {why}"


def anonymous_request(environ: dict[str, Any]) -> bool:
    """Whether a request to S3 carries no signature at all (no Authorization, no presigned query)."""
    query = environ.get("QUERY_STRING", "")
    return not environ.get("HTTP_AUTHORIZATION") and "X-Amz-Credential=" not in query


# What makes a statement that names every principal not public: a fixed value of one of these keys
# (S3 User Guide, "Blocking public access to your Amazon S3 storage", "The meaning of public").
NOT_PUBLIC_KEYS = frozenset(key.lower() for key in (
    "aws:PrincipalAccount", "aws:PrincipalArn", "aws:PrincipalOrgID", "aws:SourceAccount", "aws:SourceArn",
    "aws:SourceOwner", "aws:SourceVpc", "aws:SourceVpce", "aws:userid", "s3:DataAccessPointArn",
    "s3:DataAccessPointAccount",
))  # fmt: skip


def _names_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        values = principal.get("AWS", [])
        return "*" in (values if isinstance(values, list) else [values])
    return False


def _fixed(condition: Any) -> bool:
    """Whether a statement's Condition pins one of NOT_PUBLIC_KEYS to values without wildcards."""
    if not isinstance(condition, dict):
        return False
    for operator, pairs in condition.items():
        if "like" in operator.lower() or not isinstance(pairs, dict):
            continue
        for key, values in pairs.items():
            listed = values if isinstance(values, list) else [values]
            if key.lower() in NOT_PUBLIC_KEYS and listed and not any("*" in str(v) or "?" in str(v) for v in listed):
                return True
    return False


def policy_is_public(document: bytes | str) -> bool:
    """Whether a bucket policy grants public access: an Allow for every principal that no fixed value of
    an account, ARN, organization, VPC or source key narrows ("The meaning of public")."""
    try:
        policy = json.loads(document)
    except ValueError:
        return False
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    for statement in statements if isinstance(statements, list) else [statements]:
        if (
            isinstance(statement, dict)
            and statement.get("Effect") == "Allow"
            and _names_everyone(statement.get("Principal"))
            and not _fixed(statement.get("Condition"))
        ):
            return True
    return False


def public_access_block(bucket_name: str) -> Any:
    """A bucket's Block Public Access settings (moto's PublicAccessBlock), or None when it has none."""
    from moto.s3.models import s3_backends

    bucket = s3_backends[ACCOUNT_ID]["aws"].buckets.get(bucket_name)
    return getattr(bucket, "public_access_block", None)


def object_missing(resource: str) -> bool:
    """Whether an object ARN names a key its bucket does not hold (a bucket that is not there: False,
    S3's own NoSuchBucket answers that)."""
    from moto.s3.models import s3_backends

    name, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
    bucket = s3_backends[ACCOUNT_ID]["aws"].buckets.get(name)
    return bool(key) and bucket is not None and bucket.keys.get(key) is None
