"""Fidelity: IAM's policy simulator, answered by the lab's evaluator (labkit/labprocess/evaluation/),
so that a student can ask the lab why: `aws iam simulate-principal-policy` (the policies of a user,
a group or a role) and `aws iam simulate-custom-policy` (policies given in the request).

Each evaluation result carries EvalActionName, EvalResourceName, EvalDecision (`allowed`,
`explicitDeny`, `implicitDeny`), MatchedStatements (SourcePolicyId, SourcePolicyType, StartPosition,
EndPosition) and MissingContextValues, as IAM API reference, SimulatePrincipalPolicy and
EvaluationResult, describe. The simulator uses the context entries the request gives, nothing else
(IAM User Guide, "Testing IAM policies with the IAM policy simulator"). moto has neither action: it
authorizes the caller, then raises NotImplementedError; this rewrite of the middleware answers instead.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from labkit.labprocess import principals
from labkit.labprocess.evaluation import Decision, Policies, Policy, Request, decide
from labkit.labprocess.motofixes import middleware
from labkit.labprocess.motofixes.middleware import Answer
from labkit.labprocess.motofixes.middleware import Request as Asked

IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
ACTIONS = ("SimulatePrincipalPolicy", "SimulateCustomPolicy")


def members(asked: Asked, name: str) -> list[str]:
    """The values of a query-protocol list parameter (`ActionNames.member.1`, …), in order."""
    found, n = [], 1
    while (value := asked.param(f"{name}.member.{n}")) is not None:
        found.append(value)
        n += 1
    return found


def context_of(asked: Asked) -> dict[str, str | list[str]]:
    """The request's ContextEntries, by key."""
    context: dict[str, str | list[str]] = {}
    n = 1
    while (key := asked.param(f"ContextEntries.member.{n}.ContextKeyName")) is not None:
        context[key] = members(asked, f"ContextEntries.member.{n}.ContextKeyValues")
        n += 1
    return context


def _error(status: int, code: str, message: str) -> Answer:
    return Answer(
        status,
        f'<ErrorResponse xmlns="{IAM_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>",
    )


def answer_simulations(asked: Asked, answer: Answer) -> Answer | None:
    """SimulatePrincipalPolicy and SimulateCustomPolicy, once moto has authorized the caller."""
    if asked.service != "iam" or asked.action not in ACTIONS or not answer.raised.startswith("NotImplementedError"):
        return None
    actions = members(asked, "ActionNames")
    if not actions:
        return _error(
            400,
            "ValidationError",
            "1 validation error detected: Value null at 'actionNames' failed to "
            "satisfy constraint: Member must not be null",
        )
    given = tuple(Policy(d, name=f"PolicyInputList.{n}") for n, d in enumerate(members(asked, "PolicyInputList"), 1))
    bounds = members(asked, "PermissionsBoundaryPolicyInputList")
    boundary = (
        Policy(bounds[0], name="PermissionsBoundaryPolicyInputList.1", kind="Permissions Boundary Policy")
        if bounds
        else None
    )
    caller = asked.param("CallerArn") or ""
    if asked.action == "SimulatePrincipalPolicy":
        source = asked.param("PolicySourceArn") or ""
        found = principals.of_arn(source)
        if found is None:  # IAM's answer: `The role with name automation-role cannot be found.`
            kind, _, name = source.rpartition(":")[2].partition("/")
            return _error(
                404, "NoSuchEntity", f"The {kind or 'entity'} with name {name.rpartition('/')[2]} cannot be found."
            )
        policies = Policies(identity=(*found.policies.identity, *given), boundary=boundary or found.policies.boundary)
        caller = caller or source
    else:
        policies = Policies(identity=given, boundary=boundary)
    resource_policy = asked.param("ResourcePolicy")
    if resource_policy:
        policies = Policies(
            identity=policies.identity,
            boundary=policies.boundary,
            resource=(Policy(resource_policy, name="ResourcePolicy", kind="Resource Policy"),),
        )
    context = context_of(asked)
    results = []
    for action in actions:
        for resource in members(asked, "ResourceArns") or ["*"]:
            decision = decide(Request(caller or "*", action, resource, context), policies)
            results.append(_result(action, resource, decision, policies))
    tag = f"{asked.action}Response"
    return Answer(
        200,
        f'<{tag} xmlns="{IAM_XMLNS}"><{asked.action}Result><IsTruncated>false</IsTruncated>'
        f"<EvaluationResults>{''.join(results)}</EvaluationResults></{asked.action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{tag}>",
    )


def _result(action: str, resource: str, decision: Decision, policies: Policies) -> str:
    matched = "".join(
        f"<member><SourcePolicyId>{escape(m.policy.name)}</SourcePolicyId>"
        f"<SourcePolicyType>{escape(_type(m.policy))}</SourcePolicyType>"
        f"<StartPosition><Line>{m.start[0]}</Line><Column>{m.start[1]}</Column></StartPosition>"
        f"<EndPosition><Line>{m.end[0]}</Line><Column>{m.end[1]}</Column></EndPosition></member>"
        for m in decision.matched
    )
    missing = "".join(f"<member>{escape(key)}</member>" for key in decision.missing_context)
    boundary = ""
    if policies.boundary is not None:
        allowed = decision.allowed or decision.not_allowed_by != "permissions boundary"
        boundary = (
            "<PermissionsBoundaryDecisionDetail><AllowedByPermissionsBoundary>"
            f"{str(allowed).lower()}</AllowedByPermissionsBoundary></PermissionsBoundaryDecisionDetail>"
        )
    return (
        f"<member><EvalActionName>{escape(action)}</EvalActionName><EvalResourceName>{escape(resource)}"
        f"</EvalResourceName><EvalDecision>{decision.decision}</EvalDecision>"
        f"<MatchedStatements>{matched}</MatchedStatements><MissingContextValues>{missing}</MissingContextValues>"
        f"{boundary}</member>"
    )


def _type(policy: Policy) -> str:
    """SourcePolicyType: `resource` for a resource-based policy, else `IAM Policy`."""
    return "resource" if policy.kind in ("Resource Policy", "Role Trust Policy") else "IAM Policy"


def simulations_answered_by_the_evaluator() -> None:
    middleware.add(answer_simulations)
