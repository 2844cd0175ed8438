"""The flow chart: whether one request is allowed, and which policy decided.

IAM User Guide, "Policy evaluation logic" and "Policy evaluation for requests within a single account"
(its flow charts for an IAM user and an IAM role), same account, no SCP or RCP:

1. Deny evaluation: an applicable Deny in any identity-based, resource-based, permissions boundary or
   session policy is an explicit deny ("with an explicit deny in an identity-based policy", …).
2. Resource-based policies. Same account, a statement whose Principal names the caller's own ARN (a user,
   a role session), or `"*"`, allows by itself: "an implicit deny in a permissions boundary does not limit
   the permissions granted to an IAM user or role session by a resource-based policy"
   ("Permissions boundaries for IAM entities", "Evaluating effective permissions with boundaries"), and
   "the resource-based policy permissions are not limited by the session policy" when the Principal is the
   session's ARN ("Session policies"). A Principal naming the role's ARN instead allows without the
   identity-based policies, but "an implicit deny in a permissions boundary does limit the permissions
   granted to the ARN of the underlying IAM role", and "the session policy limits the total permissions
   granted by the resource-based policy and the identity-based policy". A Principal naming the account
   (`arn:aws:iam::123456789012:root`, `123456789012`) delegates to the account: the identity-based
   policies must allow too ("How IAM roles differ from resource-based policies").
3. Identity-based policies must allow; 4. the permissions boundary, if set, too; 5. the session
   policies, if passed, too. Otherwise an implicit deny, naming the first that did not allow.

The account root user has full access: "By default, all requests are implicitly denied with the exception
of the AWS account root user" ("How AWS enforcement code logic evaluates requests"); an explicit deny in a
resource-based policy still applies to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.labprocess.evaluation.conditions import Outcome, conditions_met
from labkit.labprocess.evaluation.statements import Principals, Statement, compile_document

IDENTITY, RESOURCE, BOUNDARY, SESSION = "identity", "resource", "boundary", "session"
EXPLICIT_DENY_IN = {
    IDENTITY: "an identity-based policy",
    RESOURCE: "a resource-based policy",
    BOUNDARY: "a permissions boundary",
    SESSION: "a session policy",
}
NOT_ALLOWED_BY = {
    IDENTITY: "identity-based policy",
    RESOURCE: "resource-based policy",
    BOUNDARY: "permissions boundary",
    SESSION: "session policy",
}
_ARN = re.compile(r"^arn:(?P<partition>[^:]+):(?P<service>[^:]*):[^:]*:(?P<account>\d{12}):(?P<rest>.*)$")


@dataclass(frozen=True)
class Request:
    """What is asked: who (an ARN, or a service principal such as ec2.amazonaws.com), which action, on which
    resource, and the request context (condition keys → values; names case-insensitive). For a role session
    (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), `role_arn` is its role's ARN."""

    principal: str
    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]]
    role_arn: str = ""


@dataclass(frozen=True)
class Policy:
    """A JSON policy document, its name or ARN (simulate's SourcePolicyId) and its SourcePolicyType."""

    document: str | Mapping[str, Any]
    name: str = ""
    kind: str = "IAM Policy"


@dataclass(frozen=True)
class Policies:
    """Every policy that applies to one request, by type (AWS's policy types, same account)."""

    identity: Sequence[Policy] = ()
    resource: Sequence[Policy] = ()
    boundary: Policy | None = None
    session: Sequence[Policy] | None = None
    resource_required: bool = False


@dataclass(frozen=True)
class Matched:
    """A statement that applied: simulate's MatchedStatements entry."""

    policy: Policy
    sid: str
    effect: str
    index: int
    start: tuple[int, int]
    end: tuple[int, int]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny_in: str = ""
    not_allowed_by: str = ""
    matched: tuple[Matched, ...] = ()
    missing_context: tuple[str, ...] = ()
    unknown_operators: tuple[str, ...] = ()
    decision: str = ""


@dataclass(frozen=True)
class _Caller:
    """The caller's identities as a Principal element can name them."""

    arn: str
    role_arn: str
    account: str
    account_root: str

    @classmethod
    def of(cls, request: Request) -> _Caller:
        found = _ARN.match(request.principal)
        if not found:
            return cls(request.principal, request.role_arn, "", "")
        account = found.group("account")
        return cls(request.principal, request.role_arn, account, f"arn:{found.group('partition')}:iam::{account}:root")

    @property
    def is_root(self) -> bool:
        return bool(self.account_root) and self.arn == self.account_root

    def names_account(self, item: str) -> bool:
        return bool(self.account) and item in (self.account, self.account_root)


# What a resource-based statement's Principal grants the caller, strongest first.
DIRECT, ROLE, ACCOUNT = "direct", "role", "account"


def _grant(principals: Principals, caller: _Caller) -> str:
    """DIRECT, ROLE, ACCOUNT, or "" when the Principal does not name the caller."""
    if principals.everyone:
        return DIRECT
    best = ""
    for kind, items in principals.by_kind:
        for item in items:
            if item == caller.arn or (kind == "AWS" and item == "*"):
                return DIRECT
            if kind == "AWS" and caller.role_arn and item == caller.role_arn:
                best = ROLE
            elif kind == "AWS" and not best and caller.names_account(item):
                best = ACCOUNT
    return best


def _excluded(principals: Principals, caller: _Caller) -> bool:
    """NotPrincipal: the caller is excluded only when each of its identities is listed (IAM User Guide,
    "AWS JSON policy elements: NotPrincipal": a user needs its ARN and its account listed, a role session
    its session ARN, its role ARN and its account)."""
    listed = {item for _kind, items in principals.by_kind for item in items}
    identities = [caller.arn in listed]
    if caller.role_arn:
        identities.append(caller.role_arn in listed)
    if caller.account:
        identities.append(caller.account in listed or caller.account_root in listed)
    return principals.everyone or all(identities)


@dataclass(frozen=True)
class _Applied:
    kind: str
    policy: Policy
    statement: Statement
    grant: str  # for resource-based statements: DIRECT, ROLE or ACCOUNT

    def matched(self) -> Matched:
        statement = self.statement
        return Matched(self.policy, statement.sid, statement.effect, statement.index, statement.start, statement.end)


def _applies(
    statement: Statement,
    kind: str,
    request: Request,
    context: Mapping[str, Any],
    caller: _Caller,
    boundary: bool,
    outcome: Outcome,
) -> str | None:
    """Whether a statement applies to the request: None if not; else its grant ("" outside resource
    policies)."""
    if statement.effect not in ("Allow", "Deny") or not statement.matches_action(request.action):
        return None
    resource_policy = kind == RESOURCE
    if not statement.matches_resource(request.resource, context, resource_policy=resource_policy):
        if statement.variables:
            for key in statement.unresolved_keys(context):
                outcome.note_missing(key)
        return None
    if not resource_policy:
        return ""
    if statement.principal is not None:
        return _grant(statement.principal, caller) or None
    if statement.not_principal is not None:
        # "The NotPrincipal element with a Deny effect will always deny any IAM principal that has a
        # permissions boundary policy attached" ("Permissions boundaries for IAM entities").
        if statement.effect == "Deny" and boundary:
            return DIRECT
        return None if _excluded(statement.not_principal, caller) else DIRECT
    return None  # a resource-based statement without a Principal names nobody


def _context_value(value: Any) -> str | list[str]:
    """A context value as text: booleans as IAM writes them ("true", "false"), numbers as written."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return [_context_value(item) for item in value]  # type: ignore[misc]


def _applied(request: Request, policies: Policies, outcome: Outcome) -> list[_Applied]:
    context = {str(key).lower(): _context_value(value) for key, value in request.context.items()}
    caller = _Caller.of(request)
    groups: list[tuple[str, Sequence[Policy]]] = [
        (IDENTITY, policies.identity),
        (RESOURCE, policies.resource),
        (BOUNDARY, (policies.boundary,) if policies.boundary is not None else ()),
        (SESSION, policies.session or ()),
    ]
    applied = []
    for kind, group in groups:
        for policy in group:
            for statement in compile_document(policy.document).statements:
                grant = _applies(statement, kind, request, context, caller, policies.boundary is not None, outcome)
                if grant is None:
                    continue
                if statement.conditions and not conditions_met(
                    statement.conditions, context, statement.variables, outcome
                ):
                    continue
                applied.append(_Applied(kind, policy, statement, grant))
    return applied


def decide(request: Request, policies: Policies) -> Decision:
    """The flow chart of "Policy evaluation logic", same account, for one request."""
    outcome = Outcome()
    applied = _applied(request, policies, outcome)
    missing, unknown = tuple(outcome.missing), tuple(outcome.unknown)

    denies = [item for item in applied if item.statement.effect == "Deny"]
    if denies:
        return Decision(
            allowed=False,
            explicit_deny_in=EXPLICIT_DENY_IN[denies[0].kind],
            matched=tuple(item.matched() for item in denies),
            decision="explicitDeny",
            missing_context=missing,
            unknown_operators=unknown,
        )
    allows = [item for item in applied if item.statement.effect == "Allow"]
    matched = tuple(item.matched() for item in allows)

    def denied(kind: str) -> Decision:
        return Decision(
            allowed=False,
            not_allowed_by=NOT_ALLOWED_BY[kind],
            matched=matched,
            decision="implicitDeny",
            missing_context=missing,
            unknown_operators=unknown,
        )

    kinds = {item.kind for item in allows}
    grants = {item.grant for item in allows if item.kind == RESOURCE}
    if policies.resource_required and not grants:
        return denied(RESOURCE)
    if DIRECT in grants:
        return Decision(
            allowed=True, matched=matched, decision="allowed", missing_context=missing, unknown_operators=unknown
        )
    if ROLE not in grants and IDENTITY not in kinds and not _Caller.of(request).is_root:
        return denied(IDENTITY)
    if policies.boundary is not None and BOUNDARY not in kinds:
        return denied(BOUNDARY)
    if policies.session is not None and SESSION not in kinds:
        return denied(SESSION)
    return Decision(
        allowed=True, matched=matched, decision="allowed", missing_context=missing, unknown_operators=unknown
    )


def explain(decision: Decision, action: str) -> str:
    """The end of AWS's AccessDenied sentence (IAM User Guide, "Troubleshoot access denied error messages"):
    'because no identity-based policy allows the iam:CreateUser action', 'with an explicit deny in a
    permissions boundary'; '' when allowed."""
    if decision.allowed:
        return ""
    if decision.explicit_deny_in:
        return f"with an explicit deny in {decision.explicit_deny_in}"
    if decision.not_allowed_by:
        return f"because no {decision.not_allowed_by} allows the {action} action"
    return ""
