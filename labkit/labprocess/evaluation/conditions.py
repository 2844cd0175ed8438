"""The Condition element: IAM's condition operators, each a small function, and how a block is decided.

IAM User Guide pages this follows:
- "IAM JSON policy elements: Condition operators": String, Numeric, Date, Bool, BinaryEquals, IpAddress,
  Arn, `…IfExists`, Null. Its rule for an absent key: "If the key that you specify in a policy condition
  is not present in the request context, the values do not match and the condition is false. If the
  policy condition requires that the key is not matched, such as StringNotLike or ArnNotLike, and the
  right key is not present, the condition is true. This logic applies to all condition operators except
  …IfExists and Null check."
- "Conditions with multiple context keys or values": several operators are ANDed, several keys in one
  operator are ANDed, several values for one key are ORed, and for a negated operator NORed.
- "Set operators for multivalued context keys": `ForAllValues:` is true when every value in the request
  matches one in the policy, and also "if there are no context keys in the request"; `ForAnyValue:` is
  true when at least one does, and false when the key is absent.

Never silently true: an operator this table does not know makes its condition not met (for an Allow no
allow, for a Deny no deny), and the caller records it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from labkit.labprocess.evaluation.statements import (
    ConditionEntry,
    Context,
    Pattern,
    as_text,
    parse_pattern,
    regex,
    resolve,
    unresolved_keys,
)

# One operator's test of one context value against one (resolved) policy value.
Compare = Callable[[str, Pattern], bool]


def _string_equals(value: str, policy: Pattern) -> bool:
    return value == as_text(policy)


def _string_equals_ignore_case(value: str, policy: Pattern) -> bool:
    return value.casefold() == as_text(policy).casefold()


def _string_like(value: str, policy: Pattern) -> bool:
    return regex(policy).fullmatch(value) is not None


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def _numeric(test: Callable[[float, float], bool]) -> Compare:
    def compare(value: str, policy: Pattern) -> bool:
        left, right = _number(value), _number(as_text(policy))
        return left is not None and right is not None and test(left, right)

    return compare


@lru_cache(maxsize=4096)
def parse_date(text: str) -> datetime | None:
    """ISO 8601 (`2019-07-16T12:00:00Z`, `2019-07-16`) or epoch seconds (`1563278400`), as UTC."""
    text = text.strip()
    number = _number(text)
    if number is not None and text.replace(".", "", 1).isdigit():
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date(test: Callable[[datetime, datetime], bool]) -> Compare:
    def compare(value: str, policy: Pattern) -> bool:
        left, right = parse_date(value), parse_date(as_text(policy))
        return left is not None and right is not None and test(left, right)

    return compare


def _bool(value: str, policy: Pattern) -> bool:
    return value.lower() == as_text(policy).lower()


def _binary(value: str, policy: Pattern) -> bool:
    """BinaryEquals: the policy value is base64; the request's value is compared as bytes (given here in
    base64 too, or as text)."""
    try:
        wanted = base64.b64decode(as_text(policy), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        if base64.b64decode(value, validate=True) == wanted:
            return True
    except (binascii.Error, ValueError):
        pass
    return value.encode() == wanted


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _ip_address(value: str, policy: Pattern) -> bool:
    address, network = _address(value), _network(as_text(policy))
    if address is None or network is None:
        return False
    return address.version == network.version and address in network


def _arn_like(value: str, policy: Pattern) -> bool:
    """ArnEquals and ArnLike: "each of the six colon-delimited components of the ARN is checked separately
    and each can include multi-character match wildcards (*) or single-character match wildcards (?)"."""
    text = as_text(policy)
    wanted, given = text.split(":", 5), value.split(":", 5)
    if len(wanted) != 6 or len(given) != 6:
        return False
    return all(
        regex(parse_pattern(part, False)).fullmatch(other) is not None
        for part, other in zip(wanted, given, strict=True)
    )


@dataclass(frozen=True)
class Operator:
    compare: Compare
    negated: bool = False


OPERATORS: dict[str, Operator] = {
    "StringEquals": Operator(_string_equals),
    "StringNotEquals": Operator(_string_equals, negated=True),
    "StringEqualsIgnoreCase": Operator(_string_equals_ignore_case),
    "StringNotEqualsIgnoreCase": Operator(_string_equals_ignore_case, negated=True),
    "StringLike": Operator(_string_like),
    "StringNotLike": Operator(_string_like, negated=True),
    "NumericEquals": Operator(_numeric(lambda a, b: a == b)),
    "NumericNotEquals": Operator(_numeric(lambda a, b: a == b), negated=True),
    "NumericLessThan": Operator(_numeric(lambda a, b: a < b)),
    "NumericLessThanEquals": Operator(_numeric(lambda a, b: a <= b)),
    "NumericGreaterThan": Operator(_numeric(lambda a, b: a > b)),
    "NumericGreaterThanEquals": Operator(_numeric(lambda a, b: a >= b)),
    "DateEquals": Operator(_date(lambda a, b: a == b)),
    "DateNotEquals": Operator(_date(lambda a, b: a == b), negated=True),
    "DateLessThan": Operator(_date(lambda a, b: a < b)),
    "DateLessThanEquals": Operator(_date(lambda a, b: a <= b)),
    "DateGreaterThan": Operator(_date(lambda a, b: a > b)),
    "DateGreaterThanEquals": Operator(_date(lambda a, b: a >= b)),
    "Bool": Operator(_bool),
    "BinaryEquals": Operator(_binary),
    "IpAddress": Operator(_ip_address),
    "NotIpAddress": Operator(_ip_address, negated=True),
    "ArnEquals": Operator(_arn_like),
    "ArnLike": Operator(_arn_like),
    "ArnNotEquals": Operator(_arn_like, negated=True),
    "ArnNotLike": Operator(_arn_like, negated=True),
}

SET_PREFIXES = ("ForAnyValue:", "ForAllValues:")
IF_EXISTS = "IfExists"


@dataclass(frozen=True)
class ParsedOperator:
    """`ForAllValues:StringLikeIfExists` → set "ForAllValues", base "StringLike", if_exists True."""

    base: str
    set_prefix: str = ""
    if_exists: bool = False


@lru_cache(maxsize=1024)
def parse_operator(name: str) -> ParsedOperator | None:
    """None when the operator is not one IAM documents."""
    set_prefix = ""
    for prefix in SET_PREFIXES:
        if name.startswith(prefix):
            set_prefix, name = prefix[:-1], name[len(prefix) :]
    if name == "Null":
        return None if set_prefix else ParsedOperator("Null")
    if_exists = name.endswith(IF_EXISTS) and name[: -len(IF_EXISTS)] in OPERATORS
    if if_exists:
        name = name[: -len(IF_EXISTS)]
    if name not in OPERATORS:
        return None
    return ParsedOperator(name, set_prefix, if_exists)


@dataclass
class Outcome:
    """What evaluating conditions noticed, gathered across a whole decision."""

    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def note_missing(self, key: str) -> None:
        if key not in self.missing:
            self.missing.append(key)

    def note_unknown(self, operator: str) -> None:
        if operator not in self.unknown:
            self.unknown.append(operator)


def _values(context: Context, key: str) -> list[str] | None:
    """The request's values for a key (lower case, as the context's keys); None when absent."""
    value = context.get(key)
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _one_value(operator: Operator, value: str, policies: Sequence[Pattern]) -> bool:
    """One request value against the policy's values: ORed, or NORed for a negated operator."""
    matched = any(operator.compare(value, policy) for policy in policies)
    return not matched if operator.negated else matched


def _null(values: list[str] | None, policies: Sequence[Pattern]) -> bool:
    """Null: "true" is met when the key is absent (or empty), "false" when it is present."""
    absent = not values
    wanted = {as_text(policy).lower() for policy in policies}
    return ("true" in wanted and absent) or ("false" in wanted and not absent)


def _resolved(entry: ConditionEntry, context: Context, outcome: Outcome) -> list[Pattern]:
    """The entry's values with their policy variables substituted; a value whose variable has no value in
    the request (and no default) is left out: it matches nothing, and its key is noted as missing."""
    policies: list[Pattern] = []
    for policy in entry.values:
        resolved = resolve(policy, context)
        if resolved is None:
            for key in unresolved_keys(policy, context):
                outcome.note_missing(key)
            continue
        policies.append(resolved)
    return policies


def entry_met(entry: ConditionEntry, context: Context, variables: bool, outcome: Outcome) -> bool:
    """One operator-key pair of a Condition block, against a request context whose keys are lower case."""
    parsed = parse_operator(entry.operator)
    if parsed is None:
        outcome.note_unknown(entry.operator)
        return False
    values = _values(context, entry.lower_key)
    if values is None:
        outcome.note_missing(entry.key)
    if parsed.base == "Null":
        return _null(values, entry.values)
    policies = _resolved(entry, context, outcome) if variables and entry.has_variables else entry.values
    operator = OPERATORS[parsed.base]
    if parsed.set_prefix == "ForAllValues":
        if not values:
            return True
        return all(_one_value(operator, value, policies) for value in values)
    if parsed.set_prefix == "ForAnyValue":
        if not values:
            return parsed.if_exists and values is None
        return any(_one_value(operator, value, policies) for value in values)
    if not values:
        # IfExists: met when absent. Otherwise absent is "not matched": false, true for a negated operator.
        return parsed.if_exists or operator.negated
    if operator.negated:  # a multivalued key without a set operator: none of its values may match
        return all(_one_value(operator, value, policies) for value in values)
    return any(_one_value(operator, value, policies) for value in values)


def conditions_met(entries: Sequence[ConditionEntry], context: Context, variables: bool, outcome: Outcome) -> bool:
    """Every entry met (operators ANDed, keys ANDed). All entries are evaluated, so that every missing key
    and unknown operator is noted."""
    met = True
    for entry in entries:
        if not entry_met(entry, context, variables, outcome):
            met = False
    return met
