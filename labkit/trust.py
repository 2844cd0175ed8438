"""Does a role's trust policy let EC2 assume it?

On AWS the EC2 service assumes an instance's role itself; if the role's trust policy does not
allow `ec2.amazonaws.com` to call `sts:AssumeRole`, the instance gets no credentials. moto cannot
answer this question for a service principal, so the lab's metadata service asks this module.

What is evaluated: `Effect`, `Principal` (`"*"` or `{"Service": ...}`) and `Action` (with `*`
wildcards). A statement with a `Condition`, `NotPrincipal` or `NotAction` is not evaluated: it
never grants, and never denies. An explicit Deny wins over any Allow, as on AWS.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

EC2_PRINCIPAL = "ec2.amazonaws.com"
ASSUME_ROLE = "sts:AssumeRole"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _names_ec2(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return EC2_PRINCIPAL in _as_list(principal.get("Service", []))
    return False


def _names_assume_role(action: Any) -> bool:
    return any(isinstance(a, str) and fnmatchcase(ASSUME_ROLE.lower(), a.lower()) for a in _as_list(action))


def _applies(statement: dict[str, Any]) -> bool:
    if {"Condition", "NotPrincipal", "NotAction"} & statement.keys():
        return False
    return _names_ec2(statement.get("Principal")) and _names_assume_role(statement.get("Action"))


def ec2_may_assume(document: str | dict[str, Any]) -> bool:
    """True when the trust policy lets the EC2 service assume the role."""
    try:
        policy = json.loads(document) if isinstance(document, str) else document
        statements = [s for s in _as_list(policy.get("Statement", [])) if isinstance(s, dict)]
    except (ValueError, AttributeError):
        return False
    applicable = [s for s in statements if _applies(s)]
    if any(s.get("Effect") == "Deny" for s in applicable):
        return False
    return any(s.get("Effect") == "Allow" for s in applicable)
