"""The evaluation corpus: IAM's policy evaluation logic, case by case, each from the AWS documentation page
(and section) its docstring or id names. All pages are in the IAM User Guide unless said otherwise.

The cases were written from the pages as stored copies of docs.aws.amazon.com show them (December 2026);
where a page gives a table of request contexts and results, each row is a case here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from labkit.labprocess.evaluation import Decision, Policies, Policy, Request, decide, explain
from labkit.labprocess.evaluation.statements import compile_policy

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/DemoRoleForEC2"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/DemoRoleForEC2/i-0123456789abcdef0"
EC2 = "ec2.amazonaws.com"


def document(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    body: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        body = {"Version": version, **body}
    return json.dumps(body, indent=2)


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def identity(*statements: dict[str, Any], version: str | None = "2012-10-17") -> Policies:
    return Policies(identity=[Policy(document(*statements, version=version), name="inline")])


def ask(
    policies: Policies,
    action: str = "iam:CreateUser",
    resource: str = "*",
    context: dict[str, Any] | None = None,
    principal: str = ALICE,
    role_arn: str = "",
) -> Decision:
    return decide(Request(principal, action, resource, context or {}, role_arn), policies)


def met(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    """Whether an Allow statement with this Condition allows (the condition is met)."""
    return ask(identity(allow(Condition=condition)), context=context).allowed


IAM_READ_ONLY = allow(
    ["iam:GenerateCredentialReport", "iam:GenerateServiceLastAccessedDetails", "iam:Get*", "iam:List*"]
)


# --- "Policy evaluation logic" and "Policy evaluation for requests within a single account" -------------


def test_no_policy_is_an_implicit_deny() -> None:
    """ "How AWS enforcement code logic evaluates requests": by default, all requests are implicitly
    denied; "Troubleshoot access denied error messages": the sentence names the policy type."""
    decision = ask(Policies())
    assert (decision.allowed, decision.decision, decision.not_allowed_by) == (
        False,
        "implicitDeny",
        "identity-based policy",
    )
    assert explain(decision, "iam:CreateUser") == "because no identity-based policy allows the iam:CreateUser action"


def test_read_only_lists_but_does_not_create() -> None:
    """ "Policy evaluation for requests within a single account": an identity-based policy's Allow; the
    AWS managed policy IAMReadOnlyAccess (iam:Get*, iam:List*) lists users and does not create one."""
    policies = identity(IAM_READ_ONLY)
    listed = ask(policies, "iam:ListUsers")
    assert listed.allowed and listed.decision == "allowed" and explain(listed, "iam:ListUsers") == ""
    assert not ask(policies, "iam:CreateUser").allowed


def test_explicit_deny_overrides_allow_in_the_same_identity() -> None:
    """ "How AWS enforcement code logic evaluates requests": "An explicit deny overrides an explicit
    allow"; the sentence: "with an explicit deny in an identity-based policy"."""
    policies = Policies(
        identity=[
            Policy(document(allow("iam:*")), name="IAMFullAccess"),
            Policy(document(deny("iam:CreateUser", Sid="NoNewUsers")), name="deny-users"),
        ]
    )
    decision = ask(policies)
    assert decision.decision == "explicitDeny" and decision.explicit_deny_in == "an identity-based policy"
    assert [(m.policy.name, m.sid, m.effect) for m in decision.matched] == [("deny-users", "NoNewUsers", "Deny")]
    assert explain(decision, "iam:CreateUser") == "with an explicit deny in an identity-based policy"


@pytest.mark.parametrize(
    ("where", "sentence"),
    [
        ("resource", "with an explicit deny in a resource-based policy"),
        ("boundary", "with an explicit deny in a permissions boundary"),
        ("session", "with an explicit deny in a session policy"),
    ],
)
def test_explicit_deny_names_the_policy_type(where: str, sentence: str) -> None:
    """ "Troubleshoot access denied error messages": the explicit-deny sentence for each policy type; "Policy
    evaluation logic": Deny evaluation looks at resource-based policies, boundaries and session policies."""
    denying = Policy(document({**deny("s3:GetObject"), "Principal": "*"} if where == "resource" else deny("s3:*")))
    everything = Policy(document(allow()))
    policies = Policies(
        identity=[everything],
        resource=[denying] if where == "resource" else [],
        boundary=denying if where == "boundary" else everything,
        session=[denying] if where == "session" else None,
    )
    decision = ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/x")
    assert decision.decision == "explicitDeny"
    assert explain(decision, "s3:GetObject") == sentence


def test_explicit_deny_names_the_identity_policy_first() -> None:
    """ "Troubleshoot access denied error messages": one policy type is named; with denies in an identity
    policy and a boundary, the identity-based policy (Deny evaluation reads all; we name the first in the
    order identity, resource, boundary, session)."""
    denying = Policy(document(deny()))
    decision = ask(Policies(identity=[denying], boundary=denying))
    assert decision.explicit_deny_in == "an identity-based policy" and len(decision.matched) == 2


def test_carlos_either_identity_or_resource_policy_allows() -> None:
    """ "Policy evaluation for requests within a single account", "Example identity-based and resource-based
    policy evaluation": "If either the identity-based policy or the resource-based policy within the same
    account allows the request and the other doesn't, the request is still allowed"."""
    carlos = f"arn:aws:iam::{ACCOUNT}:user/carlossalazar"
    own = document(allow(["s3:GetBucketLocation", "s3:ListAllMyBuckets"], "*"))
    bucket = document(
        {
            "Effect": "Allow",
            "Principal": {"AWS": carlos},
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar-logs/*",
        }
    )
    policies = Policies(identity=[Policy(own)], resource=[Policy(bucket, kind="Resource Policy")])
    put = ask(policies, "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar-logs/today", principal=carlos)
    assert put.allowed and [m.policy.kind for m in put.matched] == ["Resource Policy"]
    assert ask(policies, "s3:ListAllMyBuckets", principal=carlos).allowed
    other = ask(policies, "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket/x", principal=carlos)
    assert not other.allowed and other.not_allowed_by == "identity-based policy"


def test_account_root_user_has_full_access() -> None:
    """ "How AWS enforcement code logic evaluates requests": "By default, all requests are implicitly
    denied with the exception of the AWS account root user, which has full access" - but an explicit
    deny in a resource-based policy still applies."""
    assert ask(Policies(), principal=ROOT).allowed
    bucket = Policy(document({**deny("s3:*"), "Principal": {"AWS": ROOT}}))
    decision = ask(Policies(resource=[bucket]), "s3:GetObject", "arn:aws:s3:::b/k", principal=ROOT)
    assert decision.explicit_deny_in == "a resource-based policy"


# --- Trust policies: "How IAM roles differ from resource-based policies", "Roles terms and concepts" ----

TRUST_EC2 = document({"Effect": "Allow", "Principal": {"Service": EC2}, "Action": "sts:AssumeRole"})
TRUST_ACCOUNT = document({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"})


def assume(trust: str, principal: str, *own: dict[str, Any]) -> Decision:
    policies = Policies(
        identity=[Policy(document(*own))] if own else [],
        resource=[Policy(trust, name="DemoRoleForEC2", kind="Role Trust Policy")],
        resource_required=True,
    )
    return ask(policies, "sts:AssumeRole", ROLE, principal=principal)


def test_ec2_assumes_a_role_that_trusts_ec2() -> None:
    """IAM User Guide, "Use an IAM role to grant permissions to applications running on Amazon EC2
    instances": the trust policy names the service principal ec2.amazonaws.com."""
    decision = assume(TRUST_EC2, EC2)
    assert decision.allowed and decision.matched[0].policy.kind == "Role Trust Policy"


def test_a_user_cannot_assume_a_role_that_trusts_only_ec2() -> None:
    """ "Policy evaluation logic" (resource-based policies) and "Roles terms and concepts" (trust policy):
    the role's trust policy must allow the caller; an administrator's own Allow is not enough."""
    decision = assume(TRUST_EC2, ADMIN, allow())
    assert decision.not_allowed_by == "resource-based policy" and decision.decision == "implicitDeny"
    assert explain(decision, "sts:AssumeRole") == "because no resource-based policy allows the sts:AssumeRole action"


def test_trust_policy_naming_the_account_delegates_to_its_administrators() -> None:
    """ "How IAM roles differ from resource-based policies" and "Policy evaluation logic": a Principal of the
    account (arn:aws:iam::ACCOUNT:root) delegates to the account; its principals whose identity-based
    policies allow sts:AssumeRole may assume the role."""
    assert assume(TRUST_ACCOUNT, ADMIN, allow()).allowed
    refused = assume(TRUST_ACCOUNT, ALICE)
    assert refused.not_allowed_by == "identity-based policy"


def test_trust_policy_naming_the_account_id_alone() -> None:
    """ "AWS JSON policy elements: Principal", "AWS account principals": `"AWS": "123456789012"` is the
    same as `arn:aws:iam::123456789012:root`."""
    trust = document({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"})
    assert assume(trust, ADMIN, allow("sts:AssumeRole", ROLE)).allowed
    assert not assume(trust, ADMIN).allowed


def test_trust_policy_naming_the_user_needs_no_identity_allow() -> None:
    """ "Policy evaluation logic", same account: a resource-based policy that names the user's ARN allows by
    itself ("If either the identity-based policy or the resource-based policy … allows")."""
    trust = document({"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"})
    assert assume(trust, ALICE).allowed


def test_trust_policy_of_another_account_does_not_match() -> None:
    """ "AWS JSON policy elements: Principal": an account principal names that account only."""
    trust = document({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "*"})
    assert assume(trust, ADMIN, allow()).not_allowed_by == "resource-based policy"


# --- "Permissions boundaries for IAM entities" ----------------------------------------------------------


def test_boundary_without_the_action_refuses_what_identity_allows() -> None:
    """ "Permissions boundaries for IAM entities": ShirleyRodriguez's boundary allows s3:*, cloudwatch:*
    and ec2:*; her identity policy allows iam:CreateUser; she cannot create users."""
    boundary = Policy(document(allow(["s3:*", "cloudwatch:*", "ec2:*"])), kind="Permissions Boundary Policy")
    policies = Policies(identity=[Policy(document(allow("iam:CreateUser")))], boundary=boundary)
    decision = ask(policies)
    assert decision.not_allowed_by == "permissions boundary"
    assert explain(decision, "iam:CreateUser") == "because no permissions boundary allows the iam:CreateUser action"


def test_boundary_and_identity_both_allowing_allow() -> None:
    """ "Permissions boundaries for IAM entities", "Evaluating effective permissions with boundaries": the
    effective permissions are the intersection of identity-based policies and the boundary."""
    boundary = Policy(document(allow(["s3:*", "cloudwatch:*", "ec2:*"])))
    policies = Policies(identity=[Policy(document(allow("ec2:Describe*")))], boundary=boundary)
    assert ask(policies, "ec2:DescribeInstances").allowed
    assert ask(policies, "s3:ListBucket").not_allowed_by == "identity-based policy"


def test_boundary_does_not_limit_a_resource_grant_to_the_user() -> None:
    """ "Permissions boundaries for IAM entities", "Evaluating effective permissions with boundaries":
    "Within an account, an implicit deny in a permissions boundary does not limit the permissions granted
    to an IAM user or role session by a resource-based policy"."""
    bucket = Policy(document({**allow("s3:GetObject", "arn:aws:s3:::b/*"), "Principal": {"AWS": ALICE}}))
    policies = Policies(resource=[bucket], boundary=Policy(document(allow("ec2:*"))))
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/k").allowed


def test_boundary_does_not_limit_a_resource_grant_to_the_role_session() -> None:
    """ "Permissions boundaries for IAM entities": a resource-based policy naming the role session's ARN is
    not limited by the role's boundary."""
    bucket = Policy(document({**allow("s3:GetObject", "arn:aws:s3:::b/*"), "Principal": {"AWS": SESSION}}))
    policies = Policies(resource=[bucket], boundary=Policy(document(allow("ec2:*"))))
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE).allowed


def test_boundary_limits_a_resource_grant_to_the_role_arn() -> None:
    """ "Permissions boundaries for IAM entities": "an implicit deny in a permissions boundary does limit the
    permissions granted to the ARN of the underlying IAM role … by the resource-based policy"."""
    bucket = Policy(document({**allow("s3:GetObject", "arn:aws:s3:::b/*"), "Principal": {"AWS": ROLE}}))
    limited = Policies(resource=[bucket], boundary=Policy(document(allow("ec2:*"))))
    decision = ask(limited, "s3:GetObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE)
    assert decision.not_allowed_by == "permissions boundary"
    wide = Policies(resource=[bucket], boundary=Policy(document(allow("s3:*"))))
    assert ask(wide, "s3:GetObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE).allowed


def test_not_principal_deny_always_denies_a_principal_with_a_boundary() -> None:
    """ "Permissions boundaries for IAM entities", Important: "The NotPrincipal element with a Deny effect
    will always deny any IAM principal that has a permissions boundary policy attached, regardless of the
    values specified in the NotPrincipal element"."""
    bucket = Policy(document({**deny("s3:*"), "NotPrincipal": {"AWS": [ALICE, ROOT]}}))
    everything = Policy(document(allow()))
    without = Policies(identity=[everything], resource=[bucket])
    assert ask(without, "s3:GetObject", "arn:aws:s3:::b/k").allowed
    with_boundary = Policies(identity=[everything], resource=[bucket], boundary=everything)
    assert ask(with_boundary, "s3:GetObject", "arn:aws:s3:::b/k").explicit_deny_in == "a resource-based policy"


def test_not_principal_excludes_a_user_only_with_its_account() -> None:
    """ "AWS JSON policy elements: NotPrincipal": to exclude a user from a Deny, list both the user's ARN and
    its account's ARN; a user listed without its account is still denied."""
    only_user = Policy(document({**deny("s3:*"), "NotPrincipal": {"AWS": ALICE}}))
    policies = Policies(identity=[Policy(document(allow()))], resource=[only_user])
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/k").decision == "explicitDeny"
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/k", principal=ADMIN).decision == "explicitDeny"


# --- "Session policies" ----------------------------------------------------------------------------------


def test_session_policy_limits_the_role() -> None:
    """ "Session policies": "The resulting session's permissions are the intersection of the entity's
    identity-based policy and the session policies"; a refusal says "because no session policy allows"."""
    policies = Policies(
        identity=[Policy(document(allow("s3:*")))],
        session=[Policy(document(allow("s3:GetObject")), kind="Session Policy")],
    )
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE).allowed
    decision = ask(policies, "s3:PutObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE)
    assert decision.not_allowed_by == "session policy"
    assert explain(decision, "s3:PutObject") == "because no session policy allows the s3:PutObject action"


def test_session_policy_cannot_grant_more_than_the_role() -> None:
    """ "Session policies": "Session policies limit permissions for a created session, but do not grant
    permissions"."""
    policies = Policies(identity=[Policy(document(allow("s3:GetObject")))], session=[Policy(document(allow()))])
    assert ask(policies, "iam:ListUsers", principal=SESSION, role_arn=ROLE).not_allowed_by == "identity-based policy"


def test_no_session_policy_passed_does_not_limit() -> None:
    """ "Session policies": they apply only when passed (AssumeRole's Policy/PolicyArns); none passed, the
    role's policies alone decide."""
    policies = Policies(identity=[Policy(document(allow("s3:*")))], session=None)
    assert ask(policies, "s3:PutObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE).allowed


def test_session_policy_limits_a_resource_grant_to_the_role_arn() -> None:
    """ "Session policies": when a resource-based policy names the role's ARN, "the session policy limits the
    total permissions granted by the resource-based policy and the identity-based policy"."""
    bucket = Policy(document({**allow("s3:GetObject", "arn:aws:s3:::b/*"), "Principal": {"AWS": ROLE}}))
    policies = Policies(resource=[bucket], session=[Policy(document(allow("ec2:*")))])
    decision = ask(policies, "s3:GetObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE)
    assert decision.not_allowed_by == "session policy"


def test_session_policy_does_not_limit_a_resource_grant_to_the_session() -> None:
    """ "Session policies": when a resource-based policy names the session's ARN, "the resource-based policy
    permissions are not limited by the session policy"."""
    bucket = Policy(document({**allow("s3:GetObject", "arn:aws:s3:::b/*"), "Principal": {"AWS": SESSION}}))
    policies = Policies(resource=[bucket], session=[Policy(document(allow("ec2:*")))])
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/k", principal=SESSION, role_arn=ROLE).allowed


# --- Action, NotAction, Resource, NotResource ---------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "allowed"),
    [
        ("iam:List*", "iam:ListUsers", True),
        ("iam:List*", "IAM:listusers", True),  # "Action": action names are case-insensitive
        ("iam:List*", "iam:GetUser", False),
        ("iam:?etUser", "iam:GetUser", True),  # `?` is one character
        ("iam:?etUser", "iam:GetUsers", False),
        ("*", "ec2:RunInstances", True),
        ("iam:*AccessKey*", "iam:CreateAccessKey", True),
        ("s3:*", "s3express:CreateSession", False),
    ],
)
def test_action_wildcards(pattern: str, action: str, allowed: bool) -> None:
    """ "IAM JSON policy elements: Action": "You can use wildcards (* or ?) in the action name"; "Action
    names are case-insensitive" (operators page example iam:*AccessKey*)."""
    assert ask(identity(allow(pattern)), action).allowed is allowed


@pytest.mark.parametrize(
    ("pattern", "resource", "allowed"),
    [
        ("arn:aws:s3:::amzn-s3-demo-bucket/*", "arn:aws:s3:::amzn-s3-demo-bucket/a/b/c", True),
        ("arn:aws:s3:::amzn-s3-demo-bucket/*", "arn:aws:s3:::AMZN-S3-DEMO-BUCKET/a", False),  # case-sensitive
        (f"arn:aws:iam::{ACCOUNT}:*", f"arn:aws:iam::{ACCOUNT}:role/path/DemoRoleForEC2", True),
        ("arn:aws:iam::*:role/Demo*", ROLE, True),
        ("arn:aws:iam::*:role/Demo?oleForEC2", ROLE, True),
        ("arn:aws:iam::*:user/*", ROLE, False),
    ],
)
def test_resource_wildcards(pattern: str, resource: str, allowed: bool) -> None:
    """ "IAM JSON policy elements: Resource", "Including wildcards in resource ARNs": `*` and `?` anywhere;
    `*` matches across the ARN's `/` and `:`; the ARN is matched case-sensitively."""
    assert ask(identity(allow("iam:GetRole", pattern)), "iam:GetRole", resource).allowed is allowed


def test_not_action_allows_everything_else() -> None:
    """ "IAM JSON policy elements: NotAction", "Using NotAction with Allow": `"NotAction": "iam:*"` with
    Allow grants every action except IAM's."""
    policies = identity({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert ask(policies, "ec2:RunInstances").allowed
    assert not ask(policies, "iam:ListUsers").allowed


def test_not_action_deny_unless_mfa() -> None:
    """ "IAM JSON policy elements: NotAction", "Using NotAction with Deny": deny everything but IAM when the
    request was not authenticated with MFA (BoolIfExists aws:MultiFactorAuthPresent false)."""
    policies = identity(
        allow(),
        {
            "Effect": "Deny",
            "NotAction": "iam:*",
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    )
    assert ask(policies, "ec2:RunInstances").decision == "explicitDeny"  # key absent: IfExists is met
    assert ask(policies, "ec2:RunInstances", context={"aws:MultiFactorAuthPresent": "true"}).allowed
    assert ask(policies, "iam:ListUsers").allowed


def test_not_resource_allows_all_but_the_payroll_folder() -> None:
    """ "IAM JSON policy elements: NotResource": Allow s3:* on everything except the listed resource."""
    policies = identity({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::HRBucket/Payroll*"})
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::HRBucket/Reports/q1").allowed
    assert not ask(policies, "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/alice").allowed


# --- "IAM policy elements: Variables and tags" ---------------------------------------------------------

HOME = "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/*"


def test_username_variable_in_resource() -> None:
    """ "IAM policy elements: Variables and tags", "Introduction": arn:aws:s3:::bucket/home/${aws:username}/*
    lets each user reach only their own folder."""
    policies = identity(allow("s3:*", HOME))
    own = ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/alice/a", {"aws:username": "alice"})
    assert own.allowed
    other = ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/bob/a", {"aws:username": "alice"})
    assert not other.allowed


@pytest.mark.parametrize("version", ["2008-10-17", None])
def test_variables_are_literal_text_before_version_2012(version: str | None) -> None:
    """ "IAM policy elements: Variables and tags": "you must include the Version element and set it to
    2012-10-17 … Otherwise, variables like ${aws:username} aren't recognized as variables and are instead
    treated as literal strings"."""
    policies = identity(allow("s3:*", HOME), version=version)
    context = {"aws:username": "alice"}
    assert not ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/alice/a", context).allowed
    literal = "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/a"
    assert ask(policies, "s3:GetObject", literal, context).allowed


def test_absent_variable_matches_nothing() -> None:
    """ "IAM policy elements: Variables and tags", "Request information that you can use for policy
    variables": if the key is not present in the request context, the element is evaluated as not
    matching (aws:username is absent for a role session); the key is reported as missing."""
    decision = ask(identity(allow("s3:*", HOME)), "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/x/a")
    assert not decision.allowed and decision.missing_context == ("aws:username",)
    literal = "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/a"
    assert not ask(identity(allow("s3:*", HOME)), "s3:GetObject", literal).allowed


def test_empty_default_value() -> None:
    """ "IAM policy elements: Variables and tags", "Specifying default values": a default may be empty."""
    policies = identity(allow("s3:*", "arn:aws:s3:::b/home${aws:username, ''}"))
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/home").allowed


def test_variable_default_value() -> None:
    """ "IAM policy elements: Variables and tags", "Specifying default values": ${aws:username, 'none'}
    stands for 'none' when the key is absent."""
    policies = identity(allow("s3:*", "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username, 'none'}/*"))
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/none/a").allowed
    alice = ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/alice/a", {"aws:username": "alice"})
    assert alice.allowed


def test_principal_tag_variable() -> None:
    """ "IAM policy elements: Variables and tags", "Using tags as policy variables": ${aws:PrincipalTag/team}
    (tag key names are case-insensitive, like every condition key)."""
    policies = identity(allow("s3:*", "arn:aws:s3:::amzn-s3-demo-bucket/${aws:PrincipalTag/team}/*"))
    context = {"aws:PrincipalTag/Team": "blue"}
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/blue/x", context).allowed
    assert not ask(policies, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/red/x", context).allowed


def test_special_characters() -> None:
    """ "IAM policy elements: Variables and tags", "Special characters": ${*}, ${?} and ${$} stand for the
    literal characters *, ? and $."""
    policies = identity(allow("s3:*", "arn:aws:s3:::b/${*}${?}${$}"))
    assert ask(policies, "s3:GetObject", "arn:aws:s3:::b/*?$").allowed
    assert not ask(policies, "s3:GetObject", "arn:aws:s3:::b/ab$").allowed


def test_variable_in_a_condition_value() -> None:
    """ "IAM policy elements: Variables and tags", "Where you can use policy variables" (Condition element):
    the home-folder example lists only "${aws:username}/*" under s3:prefix."""
    condition = {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}
    assert met(condition, {"aws:username": "alice", "s3:prefix": "home/alice/photos"})
    assert not met(condition, {"aws:username": "alice", "s3:prefix": "home/bob/photos"})
    decision = ask(identity(allow(Condition=condition)), context={"s3:prefix": "home/x/y"})
    assert not decision.allowed and "aws:username" in decision.missing_context


# --- "IAM JSON policy elements: Condition operators" -----------------------------------------------------

JOB = {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        pytest.param(JOB, {"aws:PrincipalTag/job-category": "iamuser-admin"}, True, id="StringEquals-match"),
        pytest.param(JOB, {"aws:PrincipalTag/job-category": "IAMUSER-admin"}, False, id="StringEquals-case"),
        pytest.param(JOB, {}, False, id="StringEquals-absent"),
        pytest.param(
            {"StringEqualsIgnoreCase": {"aws:PrincipalTag/job-category": "IAMUser-Admin"}},
            {"aws:PrincipalTag/job-category": "iamuser-admin"},
            True,
            id="StringEqualsIgnoreCase",
        ),
        pytest.param(
            {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}},
            {"aws:RequestedRegion": "eu-west-1"},
            True,
            id="StringNotEquals-none-of",
        ),
        pytest.param(
            {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}},
            {"aws:RequestedRegion": "us-west-2"},
            False,
            id="StringNotEquals-NOR",
        ),
        pytest.param(
            {"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}, {}, True, id="StringNotEquals-absent-is-true"
        ),
        pytest.param(
            {"StringNotEqualsIgnoreCase": {"aws:RequestedRegion": "US-EAST-1"}},
            {"aws:RequestedRegion": "us-east-1"},
            False,
            id="StringNotEqualsIgnoreCase",
        ),
        pytest.param({"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/alice"}, True, id="StringLike"),
        pytest.param({"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "Home/alice"}, False, id="StringLike-case"),
        pytest.param({"StringLike": {"s3:prefix": "h?me"}}, {"s3:prefix": "home"}, True, id="StringLike-?"),
        pytest.param({"StringNotLike": {"s3:prefix": "home/*"}}, {}, True, id="StringNotLike-absent-is-true"),
        pytest.param(
            {"StringNotLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/a"}, False, id="StringNotLike-match"
        ),
    ],
)
def test_string_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "String condition operators" (example: aws:PrincipalTag
    job-category iamuser-admin) and the Important note: an absent key makes the condition false, except for
    a negated operator ("such as StringNotLike or ArnNotLike"), which is then true; "Conditions with
    multiple context keys or values": a negated operator's values are NORed."""
    assert met(condition, context) is expected


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, True),
        ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, False),
        ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "ten"}, False),
        ({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "9.5"}, True),
        ({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10.0"}, True),
        ({"NumericNotEquals": {"s3:max-keys": ["10", "20"]}}, {"s3:max-keys": "20"}, False),
        ({"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, True),
        ({"NumericGreaterThanEquals": {"s3:max-keys": 10}}, {"s3:max-keys": "10"}, True),
    ],
)
def test_numeric_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "Numeric condition operators" (example: s3:max-keys
    NumericLessThanEquals 10)."""
    assert met(condition, context) is expected


@pytest.mark.parametrize(
    ("operator", "policy", "now", "expected"),
    [
        ("DateGreaterThan", "2020-04-01T00:00:00Z", "2026-12-07T00:00:00Z", True),
        ("DateLessThan", "2020-06-30T23:59:59Z", "2026-12-07T00:00:00Z", False),
        ("DateLessThan", "1593561599", "2020-06-30T00:00:00Z", True),  # epoch seconds in the policy
        ("DateEquals", "2020-01-01T00:00:00Z", "1577836800", True),  # epoch seconds in the request
        ("DateNotEquals", "2020-01-01T00:00:00Z", "1577836800", False),
        ("DateGreaterThanEquals", "2020-01-01", "2020-01-01T00:00:00Z", True),
        ("DateLessThanEquals", "2020-01-01T00:00:00+01:00", "2019-12-31T23:00:00Z", True),
        ("DateLessThan", "not a date", "2020-01-01T00:00:00Z", False),
    ],
)
def test_date_operators(operator: str, policy: str, now: str, expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "Date condition operators": ISO 8601 dates and epoch
    (UNIX) time both, compared as instants (example: aws:CurrentTime DateGreaterThan 2020-04-01T00:00:00Z)."""
    assert met({operator: {"aws:CurrentTime": policy}}, {"aws:CurrentTime": now}) is expected


REVOKE_OLDER = "2026-12-07T08:00:00Z"


def test_aws_revoke_older_sessions() -> None:
    """ "Revoke IAM role temporary security credentials": the console's inline policy AWSRevokeOlderSessions
    denies everything to sessions whose aws:TokenIssueTime is before the moment of revocation."""
    revoke = Policy(
        document(deny(Condition={"DateLessThan": {"aws:TokenIssueTime": REVOKE_OLDER}})), name="AWSRevokeOlderSessions"
    )
    policies = Policies(identity=[Policy(document(IAM_READ_ONLY)), revoke])
    old = ask(policies, "iam:ListUsers", context={"aws:TokenIssueTime": "2026-12-07T07:00:00Z"}, principal=SESSION)
    assert old.decision == "explicitDeny" and old.matched[0].policy.name == "AWSRevokeOlderSessions"
    assert explain(old, "iam:ListUsers") == "with an explicit deny in an identity-based policy"
    new = ask(policies, "iam:ListUsers", context={"aws:TokenIssueTime": "2026-12-07T08:05:00Z"}, principal=SESSION)
    assert new.allowed


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "false"}, False),
        ({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "TRUE"}, True),
        ({"Bool": {"aws:MultiFactorAuthPresent": "false"}}, {}, False),  # absent: false (Bool, not IfExists)
        ({"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}, {}, True),
        ({"BinaryEquals": {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}, {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}, True),
        ({"BinaryEquals": {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}, {"key": "BinaryValueInBase64"}, True),
        ({"BinaryEquals": {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}, {"key": "other"}, False),
    ],
)
def test_bool_and_binary(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "Boolean condition operators" (aws:SecureTransport)
    and "Binary condition operators" (BinaryEquals, the value base64-encoded); "IAM JSON policy elements:
    Condition operators", "…IfExists condition operators" (aws:MultiFactorAuthPresent)."""
    assert met(condition, context) is expected


@pytest.mark.parametrize(
    ("condition", "ip", "expected"),
    [
        ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, "203.0.113.7", True),
        ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, "198.51.100.7", False),
        ({"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}}, "2001:db8:1234:5678::9", True),
        ({"IpAddress": {"aws:SourceIp": "2001:DB8:1234:5678::/64"}}, "203.0.113.7", False),
        ({"IpAddress": {"aws:SourceIp": "203.0.113.7"}}, "203.0.113.7", True),
        ({"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}}, "203.0.113.7", False),
        ({"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}}, "10.0.0.1", True),
    ],
)
def test_ip_address_operators(condition: dict[str, Any], ip: str, expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "IP address condition operators": CIDR, IPv4 and
    IPv6 (examples 203.0.113.0/24 and 2001:DB8:1234:5678::/64)."""
    assert met(condition, {"aws:SourceIp": ip}) is expected


TOPIC = "arn:aws:sns:us-east-1:123456789012:TOPIC-ID"


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"ArnEquals": {"aws:SourceArn": TOPIC}}, {"aws:SourceArn": TOPIC}, True),
        ({"ArnEquals": {"aws:SourceArn": TOPIC}}, {"aws:SourceArn": TOPIC.replace("TOPIC", "OTHER")}, False),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}, {"aws:SourceArn": TOPIC}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Demo*"}}, {"aws:PrincipalArn": ROLE}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Demo*"}}, {"aws:PrincipalArn": "not-an-arn"}, False),
        ({"ArnNotEquals": {"aws:PrincipalArn": ROLE}}, {"aws:PrincipalArn": ALICE}, True),
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}, {"aws:PrincipalArn": ROLE}, False),
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}, {}, True),
    ],
)
def test_arn_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "Amazon Resource Name (ARN) condition operators":
    "Each of the six colon-delimited components of the ARN is checked separately and each can include
    wildcards"; the Important note: ArnNotLike with the key absent is true."""
    assert met(condition, context) is expected


@pytest.mark.parametrize(
    ("instance_type", "expected"),
    [("t2.micro", True), ("m3.large", True), ("c5.large", False), (None, True)],
)
def test_if_exists(instance_type: str | None, expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "…IfExists condition operators": "If the policy key
    is present in the context of the request, process the key as specified in the policy. If the key is not
    present, evaluate the condition element as true" (example ec2:InstanceType t1.*, t2.*, m3.*)."""
    condition = {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}
    context = {"ec2:InstanceType": instance_type} if instance_type else {}
    assert met(condition, context) is expected


@pytest.mark.parametrize(
    ("value", "context", "expected"),
    [("true", {}, True), ("true", {"aws:TokenIssueTime": "2026-12-07T08:00:00Z"}, False), ("false", {}, False)],
)
def test_null(value: str, context: dict[str, Any], expected: bool) -> None:
    """ "IAM JSON policy elements: Condition operators", "Condition operator to check existence of condition
    keys": "Null": {"aws:TokenIssueTime": "true"} is true when the key is absent (long-term credentials)."""
    assert met({"Null": {"aws:TokenIssueTime": value}}, context) is expected


DENY_RESTRICTED_TAGS = deny(
    ["iam:Tag*", "iam:UnTag*"], Condition={"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}
)


@pytest.mark.parametrize(
    ("tag_keys", "denied"),
    [(["key1:legal"], False), (["key1:hr", "key1:personnel"], False), (["key2:audit"], True), (None, True)],
)
def test_for_all_values_deny_table(tag_keys: list[str] | None, denied: bool) -> None:
    """ "Multivalued context key examples", "Example: Deny policy with condition set operator ForAllValues"
    (DenyRestrictedTags), each row of its table; "The ForAllValues set operator also returns true if there
    are no context keys in the request"."""
    policies = identity(allow(), DENY_RESTRICTED_TAGS)
    context = {"aws:TagKeys": tag_keys} if tag_keys is not None else {}
    assert (ask(policies, "iam:TagUser", context=context).decision == "explicitDeny") is denied


@pytest.mark.parametrize(
    ("condition", "tag_keys", "expected"),
    [
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}, ["environment"], True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}, ["environment", "x"], False),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["environment"]}}, [], True),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "webserver"]}}, ["webserver", "x"], True),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "webserver"]}}, ["x"], False),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment"]}}, None, False),
        ({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["environment"]}}, ["environment", "x"], True),
        ({"ForAnyValue:StringLike": {"aws:TagKeys": ["env*"]}}, ["Env", "environment"], True),
    ],
)
def test_set_operators(condition: dict[str, Any], tag_keys: list[str] | None, expected: bool) -> None:
    """ "Set operators for multivalued context keys": ForAllValues is true when every request value matches
    one of the policy's (and when the key is absent or empty); ForAnyValue when at least one does, and false
    when the key is absent ("Multivalued context key examples", ForAnyValue examples)."""
    context = {"aws:TagKeys": tag_keys} if tag_keys is not None else {}
    assert met(condition, context) is expected


def test_several_keys_and_operators_are_anded() -> None:
    """ "Conditions with multiple context keys or values": several condition operators are ANDed, several
    keys in one operator are ANDed, several values of one key are ORed."""
    condition = {
        "StringEquals": {"aws:PrincipalTag/team": ["blue", "red"], "aws:RequestedRegion": "us-west-2"},
        "Bool": {"aws:SecureTransport": "true"},
    }
    good = {"aws:PrincipalTag/team": "red", "aws:RequestedRegion": "us-west-2", "aws:SecureTransport": "true"}
    assert met(condition, good)
    assert not met(condition, {**good, "aws:RequestedRegion": "us-east-1"})
    assert not met(condition, {**good, "aws:SecureTransport": "false"})
    assert not met(condition, {**good, "aws:PrincipalTag/team": "green"})


def test_requested_region() -> None:
    """ "AWS global condition context keys", aws:RequestedRegion: an allow limited to us-west-2 does not
    allow a call in us-east-1 (the issue's probe)."""
    condition = {"StringEquals": {"aws:RequestedRegion": "us-west-2"}}
    assert met(condition, {"aws:RequestedRegion": "us-west-2"})
    assert not met(condition, {"aws:RequestedRegion": "us-east-1"})


def test_context_values_given_as_booleans_and_numbers() -> None:
    """ "IAM JSON policy elements: Condition operators", "Boolean" and "Numeric": the request's true and 10
    are compared as IAM writes them, "true" and "10"."""
    assert met({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True})
    assert met({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": 10})


def test_condition_keys_are_case_insensitive() -> None:
    """ "IAM JSON policy elements: Condition", "The condition block": "Condition key names are not case
    sensitive"; the values' case follows the operator."""
    assert met({"StringEquals": {"AWS:RequestedRegion": "us-west-2"}}, {"aws:requestedregion": "us-west-2"})
    assert not met({"StringEquals": {"aws:RequestedRegion": "US-WEST-2"}}, {"aws:RequestedRegion": "us-west-2"})


def test_unknown_operator_is_never_true() -> None:
    """ "IAM JSON policy elements: Condition operators" lists every operator; one not listed matches nothing
    here: an Allow does not allow and a Deny does not deny, and the Decision names it."""
    bogus = {"StringEqualsPlease": {"aws:RequestedRegion": "us-west-2"}}
    decision = ask(identity(allow(Condition=bogus)), context={"aws:RequestedRegion": "us-west-2"})
    assert not decision.allowed and decision.unknown_operators == ("StringEqualsPlease",)
    denied = ask(identity(allow(), deny(Condition=bogus)), context={"aws:RequestedRegion": "us-west-2"})
    assert denied.allowed and denied.unknown_operators == ("StringEqualsPlease",)


@pytest.mark.parametrize("operator", ["ForAnyValue:Null", "NullIfExists", "ForSomeValues:StringEquals", "stringequals"])
def test_operators_iam_does_not_document(operator: str) -> None:
    """ "IAM JSON policy elements: Condition operators": Null takes neither IfExists nor a set operator, and
    only ForAllValues/ForAnyValue are set operators; operator names are written as documented."""
    decision = ask(identity(allow(Condition={operator: {"aws:TagKeys": "true"}})), context={"aws:TagKeys": "true"})
    assert not decision.allowed and decision.unknown_operators == (operator,)


def test_unknown_key_is_missing_not_true() -> None:
    """ "IAM JSON policy elements: Condition operators", Important: a key not present in the request context
    does not match; simulate-principal-policy reports it in MissingContextValues."""
    decision = ask(identity(allow(Condition={"StringEquals": {"lab:NoSuchKey": "x"}})))
    assert not decision.allowed and decision.missing_context == ("lab:NoSuchKey",)
    assert explain(decision, "iam:CreateUser") == "because no identity-based policy allows the iam:CreateUser action"


# --- iam:PassRole: "Grant a user permissions to pass a role to an AWS service" -------------------------

PASS_ROLE = allow(
    "iam:PassRole", ROLE, Condition={"StringEquals": {"iam:PassedToService": EC2}}, Sid="PassDemoRoleToEC2"
)


def test_pass_role_to_ec2() -> None:
    """ "Grant a user permissions to pass a role to an AWS service", example policy: iam:PassRole on the role
    with iam:PassedToService ec2.amazonaws.com (EC2 User Guide, "Permission to pass an IAM role to an
    instance")."""
    policies = identity(allow("ec2:*"), PASS_ROLE)
    decision = ask(policies, "iam:PassRole", ROLE, {"iam:PassedToService": EC2})
    assert decision.allowed and [m.sid for m in decision.matched] == ["PassDemoRoleToEC2"]
    assert not ask(policies, "iam:PassRole", ROLE, {"iam:PassedToService": "lambda.amazonaws.com"}).allowed
    other = f"arn:aws:iam::{ACCOUNT}:role/AdminRole"
    assert not ask(policies, "iam:PassRole", other, {"iam:PassedToService": EC2}).allowed


def test_ec2_full_access_does_not_pass_roles() -> None:
    """EC2 User Guide, "Permission to pass an IAM role to an instance": a user who may manage EC2 but holds
    no iam:PassRole cannot attach a role: "because no identity-based policy allows the iam:PassRole
    action"."""
    decision = ask(identity(allow("ec2:*")), "iam:PassRole", ROLE, {"iam:PassedToService": EC2})
    assert explain(decision, "iam:PassRole") == "because no identity-based policy allows the iam:PassRole action"


# --- simulate's MatchedStatements: positions, and the cache -------------------------------------------


def test_matched_statement_positions() -> None:
    """ "SimulatePrincipalPolicy" (IAM API Reference), Statement: SourcePolicyId, SourcePolicyType,
    StartPosition and EndPosition (line and column) of each matched statement."""
    text = (
        '{\n  "Version": "2012-10-17",\n  "Statement": [\n'
        '    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},\n'
        '    {\n      "Sid": "Two",\n      "Effect": "Allow",\n      "Action": "iam:List*",\n'
        '      "Resource": "*",\n      "Condition": {"Bool": {"aws:SecureTransport": "true"}}\n    }\n  ]\n}'
    )
    decision = ask(
        Policies(identity=[Policy(text, name="p")]), "iam:ListUsers", context={"aws:SecureTransport": "true"}
    )
    (matched,) = decision.matched
    assert (matched.sid, matched.index, matched.start, matched.end) == ("Two", 1, (5, 5), (11, 5))
    assert (matched.policy.name, matched.policy.kind, matched.effect) == ("p", "IAM Policy", "Allow")


def test_single_statement_object_position() -> None:
    """ "IAM JSON policy elements: Statement": the Statement may be one object rather than an array."""
    text = '{"Version": "2012-10-17",\n "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}'
    (matched,) = ask(Policies(identity=[Policy(text)])).matched
    assert (matched.index, matched.start, matched.end) == (0, (2, 15), (2, 65))


def test_dict_and_text_documents_decide_alike_and_are_compiled_once() -> None:
    """A document given as a dict is the same policy as its JSON text; each text is compiled once."""
    as_dict = {"Version": "2012-10-17", "Statement": [allow("iam:List*")]}
    for policy in (Policy(as_dict), Policy(json.dumps(as_dict))):
        assert ask(Policies(identity=[policy]), "iam:ListRoles").allowed
    before = compile_policy.cache_info().hits
    ask(Policies(identity=[Policy(as_dict)]), "iam:ListRoles")
    assert compile_policy.cache_info().hits == before + 1


def test_invalid_document_allows_nothing() -> None:
    """IAM validates documents when stored (MalformedPolicyDocument); one that is not JSON decides nothing
    here: no allow."""
    assert not ask(Policies(identity=[Policy("{not json")])).allowed


# --- Speed ------------------------------------------------------------------------------------------------


def heavy_policies() -> Policies:
    """20 policies of 10 statements each, every statement with conditions, as a policy-heavy principal."""
    services = ["iam", "ec2", "s3", "sts", "kms", "sqs", "sns", "logs", "lambda", "dynamodb"]
    policies = []
    for p in range(20):
        statements = []
        for s in range(10):
            service = services[(p + s) % len(services)]
            statements.append(
                {
                    "Sid": f"S{p}x{s}",
                    "Effect": "Deny" if s == 9 else "Allow",
                    "Action": [f"{service}:Get*", f"{service}:List*", f"{service}:Describe*"],
                    "Resource": [f"arn:aws:{service}:*:{ACCOUNT}:thing-{p}-{s}/*", "*"],
                    "Condition": {
                        "StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]},
                        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                        "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
                        "StringLike": {"aws:PrincipalTag/team": "team-${aws:username}*"},
                        "StringNotEquals": {"aws:PrincipalTag/env": "prod"} if s == 9 else {},
                    },
                }
            )
        policies.append(Policy(document(*statements), name=f"policy-{p}"))
    return Policies(identity=policies)


def test_decide_is_fast_for_a_policy_heavy_principal() -> None:
    """Evaluation is on every request (issue 23, Performance): 20 policies x 10 statements with conditions,
    at most 2 ms a decision on average once the documents are compiled."""
    policies = heavy_policies()
    context = {
        "aws:RequestedRegion": "us-east-1",
        "aws:SourceIp": "10.1.2.3",
        "aws:CurrentTime": "2026-12-07T08:00:00Z",
        "aws:username": "alice",
        "aws:PrincipalTag/team": "team-alice-blue",
        "aws:PrincipalTag/env": "prod",
    }
    request = Request(ALICE, "iam:ListUsers", "*", context)
    first = decide(request, policies)
    assert first.allowed and len(first.matched) > 10
    started = time.perf_counter()
    for _ in range(200):
        decide(request, policies)
    average = (time.perf_counter() - started) / 200
    assert average <= 0.002, f"{average * 1000:.2f} ms a decision"
