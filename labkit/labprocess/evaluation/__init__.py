"""The evaluation room: IAM's documented policy evaluation logic, as pure Python (no moto, no I/O).

    from labkit.labprocess.evaluation import Policies, Policy, Request, decide, explain
    decision = decide(Request(principal=user_arn, action="iam:CreateUser", resource="*", context={}),
                      Policies(identity=[Policy(document, name="IAMReadOnlyAccess")]))
    decision.allowed, explain(decision, "iam:CreateUser")
    # False, 'because no identity-based policy allows the iam:CreateUser action'

Every request the lab serves is decided here; simulate-principal-policy and simulate-custom-policy read
the same Decision (EvalDecision, MatchedStatements, MissingContextValues).

    statements.py  a policy document compiled into statements (cached by its text); Action, Resource,
                   Principal matching; policy variables
    conditions.py  the condition operators, `…IfExists`, `ForAnyValue:` / `ForAllValues:`, Null
    decide.py      the flow chart: explicit deny, resource-based, identity-based, boundary, session

Sources (AWS IAM User Guide): "Policy evaluation logic"; "Determining whether a request is allowed or
denied within an account"; "IAM JSON policy elements: Condition operators"; "IAM policy elements:
Variables and tags"; "AWS global condition context keys"; "Permissions boundaries for IAM entities";
"Session policies"; "Troubleshoot access denied error messages".
"""

from labkit.labprocess.evaluation.decide import Decision, Matched, Policies, Policy, Request, decide, explain

__all__ = ["Decision", "Matched", "Policies", "Policy", "Request", "decide", "explain"]
