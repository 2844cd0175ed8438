"""Whether a trust policy lets the EC2 service assume a role."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labkit.trust import ec2_may_assume


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALLOW_EC2 = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}


@pytest.mark.parametrize(
    "statement",
    [
        ALLOW_EC2,
        {**ALLOW_EC2, "Principal": {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]}},
        {**ALLOW_EC2, "Action": ["sts:TagSession", "sts:AssumeRole"]},
        {**ALLOW_EC2, "Action": "sts:*"},
        {**ALLOW_EC2, "Action": "STS:assumerole"},
        {**ALLOW_EC2, "Principal": "*"},
    ],
)
def test_ec2_may_assume(statement: dict[str, Any]) -> None:
    assert ec2_may_assume(policy(statement))


@pytest.mark.parametrize(
    "document",
    [
        policy({**ALLOW_EC2, "Principal": {"Service": "lambda.amazonaws.com"}}),
        policy({**ALLOW_EC2, "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}),
        policy({**ALLOW_EC2, "Action": "sts:AssumeRoleWithWebIdentity"}),
        policy(ALLOW_EC2, {**ALLOW_EC2, "Effect": "Deny"}),
        policy({**ALLOW_EC2, "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}),
        # a statement with NotPrincipal or NotAction is not evaluated: it never grants (mutmut found
        # both untested)
        policy({**ALLOW_EC2, "NotPrincipal": {"Service": "lambda.amazonaws.com"}}),
        policy({**ALLOW_EC2, "NotAction": "sts:TagSession"}),
        policy(),
        "this is not JSON",
        json.dumps(["not", "a", "policy"]),
    ],
)
def test_ec2_may_not_assume(document: str) -> None:
    assert not ec2_may_assume(document)


def test_a_parsed_document_is_accepted_too() -> None:
    assert ec2_may_assume({"Statement": ALLOW_EC2})
