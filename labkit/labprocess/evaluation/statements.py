"""A policy document compiled into statements, and how a statement's Action, Resource and Principal match.

IAM User Guide pages this follows:
- "IAM JSON policy elements: Action" / "NotAction": action names are case-insensitive and may hold the
  wildcards `*` (any characters) and `?` (one character): `iam:List*`, `*`.
- "IAM JSON policy elements: Resource" / "NotResource": resource ARNs are case-sensitive; `*` and `?` are
  wildcards anywhere in the ARN, `*` matching any characters including `/` and `:`.
- "IAM policy elements: Variables and tags": `${aws:username}`, `${aws:PrincipalTag/team}`, the special
  `${*}`, `${?}`, `${$}` (the literal characters), and defaults `${aws:username, 'none'}`, substituted in
  Resource and in condition values, only under `"Version": "2012-10-17"`; under "2008-10-17" or with no
  Version they are literal text. "If there is no value for the key in the request context … the policy
  element is evaluated as not matching": such a Resource entry matches nothing.

A document (str JSON, or a dict dumped with sort_keys) is compiled once per text (`compile_policy`, an
lru_cache); each statement remembers where it is in the text (line, column), for simulate's
MatchedStatements StartPosition/EndPosition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

VARIABLES_VERSION = "2012-10-17"

# A pattern is a tuple of segments: ("lit", text), ("*",), ("?",), or a variable: ("var", key) or
# ("var", key, default), the key as written in the policy.
Segment = tuple[str, ...]
Pattern = tuple[Segment, ...]
Context = Mapping[str, "str | Sequence[str]"]

_VARIABLE = re.compile(r"\$\{([^{}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,']+?)\s*,\s*'([^']*)'\s*$")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def _wildcards(text: str) -> list[Segment]:
    """Literal text with `*` and `?` as wildcards."""
    out: list[Segment] = []
    literal = ""
    for char in text:
        if char in "*?":
            if literal:
                out.append(("lit", literal))
                literal = ""
            out.append((char,))
        else:
            literal += char
    if literal:
        out.append(("lit", literal))
    return out


@lru_cache(maxsize=4096)
def parse_pattern(text: str, variables: bool) -> Pattern:
    """`text` as segments; with `variables`, `${…}` become variables (AWS: only under Version 2012-10-17)."""
    if not variables or "${" not in text:
        return tuple(_wildcards(text))
    out: list[Segment] = []
    position = 0
    for found in _VARIABLE.finditer(text):
        out.extend(_wildcards(text[position : found.start()]))
        inner = found.group(1).strip()
        if inner in _SPECIAL:
            out.append(("lit", _SPECIAL[inner]))
        else:
            default = _DEFAULT.match(inner)
            if default:
                out.append(("var", default.group(1), default.group(2)))
            else:
                out.append(("var", inner))
        position = found.end()
    out.extend(_wildcards(text[position:]))
    return tuple(out)


def has_variables(pattern: Pattern) -> bool:
    return any(segment[0] == "var" for segment in pattern)


def context_value(context: Context, key: str) -> str | None:
    """A single value for `key` to put in a variable; None when absent. The context's keys are lower case
    (condition key names are case-insensitive).

    AWS: a multivalued context key cannot be a policy variable; a list of one value is that value."""
    value = context.get(key.lower())
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value[0] if len(value) == 1 else None


def resolve(pattern: Pattern, context: Context) -> Pattern | None:
    """The pattern with its variables replaced by literal text from the context; None when a variable's key
    is absent and has no default (AWS: the element is evaluated as not matching)."""
    if not has_variables(pattern):
        return pattern
    out: list[Segment] = []
    for segment in pattern:
        if segment[0] != "var":
            out.append(segment)
            continue
        value = context_value(context, segment[1])
        if value is None:
            if len(segment) < 3:
                return None
            value = segment[2]
        out.append(("lit", value))
    return tuple(out)


def unresolved_keys(pattern: Pattern, context: Context) -> tuple[str, ...]:
    """The keys of the pattern's variables that have neither a value in the context nor a default."""
    return tuple(
        segment[1]
        for segment in pattern
        if segment[0] == "var" and len(segment) < 3 and context_value(context, segment[1]) is None
    )


def as_text(pattern: Pattern) -> str:
    """A resolved pattern as a plain string (wildcards as the characters `*`, `?`): for the operators that
    compare exactly (StringEquals, Numeric…, Date…)."""
    return "".join(segment[1] if segment[0] == "lit" else segment[0] for segment in pattern)


@lru_cache(maxsize=8192)
def regex(pattern: Pattern, ignore_case: bool = False) -> re.Pattern[str]:
    """A resolved pattern as a compiled regular expression (fullmatch; `*` crosses `/` and `:`)."""
    parts = []
    for segment in pattern:
        if segment[0] == "lit":
            parts.append(re.escape(segment[1]))
        elif segment[0] == "*":
            parts.append(".*")
        elif segment[0] == "?":
            parts.append(".")
        else:  # an unresolved variable never matches
            return re.compile(r"(?!)")
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def pattern_matches(pattern: Pattern, value: str, context: Context, *, ignore_case: bool = False) -> bool:
    resolved = resolve(pattern, context) if has_variables(pattern) else pattern
    if resolved is None:
        return False
    return regex(resolved, ignore_case).fullmatch(value) is not None


@dataclass(frozen=True)
class ConditionEntry:
    """One operator, one key, its values: `"StringEquals": {"aws:username": ["a", "b"]}` gives one entry."""

    operator: str  # as written: "ForAnyValue:StringLikeIfExists"
    key: str  # as written in the policy (for missing_context)
    values: tuple[Pattern, ...]
    lower_key: str = ""  # the key as the (lower-cased) request context holds it
    has_variables: bool = False  # whether any value holds a policy variable


@dataclass(frozen=True)
class Principals:
    """A Principal or NotPrincipal element: `"*"` is everyone; otherwise kind ("AWS", "Service", …) →
    values."""

    everyone: bool
    by_kind: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Statement:
    effect: str
    sid: str
    index: int
    actions: re.Pattern[str] | None  # every Action entry in one expression
    not_actions: re.Pattern[str] | None
    resources: tuple[Pattern, ...] | None
    not_resources: tuple[Pattern, ...] | None
    principal: Principals | None
    not_principal: Principals | None
    conditions: tuple[ConditionEntry, ...]
    variables: bool  # Version 2012-10-17: policy variables are substituted
    start: tuple[int, int]
    end: tuple[int, int]

    def matches_action(self, action: str) -> bool:
        if self.actions is not None:
            return self.actions.fullmatch(action) is not None
        if self.not_actions is not None:
            return self.not_actions.fullmatch(action) is None
        return False

    def unresolved_keys(self, context: Context) -> tuple[str, ...]:
        """Keys that Resource or NotResource variables read and the context lacks."""
        patterns = (self.resources or ()) + (self.not_resources or ())
        return tuple(key for pattern in patterns for key in unresolved_keys(pattern, context))

    def matches_resource(self, resource: str, context: Context, *, resource_policy: bool) -> bool:
        """Resource / NotResource; a resource-based policy without either applies to its own resource."""
        if self.resources is not None:
            return any(pattern_matches(pattern, resource, context) for pattern in self.resources)
        if self.not_resources is not None:
            return not any(pattern_matches(pattern, resource, context) for pattern in self.not_resources)
        return resource_policy


@dataclass(frozen=True)
class CompiledPolicy:
    version: str
    statements: tuple[Statement, ...]


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(_scalar(item) for item in value)
    return (_scalar(value),)


def _scalar(value: Any) -> str:
    """A JSON scalar as IAM reads it: true/false as "true"/"false", numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def action_regex(texts: tuple[str, ...]) -> re.Pattern[str]:
    """Action names, case-insensitive, with `*` and `?`: one expression for all of a statement's entries."""
    parts = [regex(tuple(_wildcards(text)), ignore_case=True).pattern for text in texts]
    return re.compile("|".join(f"(?:{part})" for part in parts), re.DOTALL | re.IGNORECASE)


def _principals(value: Any) -> Principals:
    if value == "*":
        return Principals(everyone=True, by_kind=())
    if isinstance(value, Mapping):
        kinds = tuple((str(kind), _strings(items)) for kind, items in value.items())
        everyone = any(kind == "AWS" and "*" in items for kind, items in kinds)
        return Principals(everyone=everyone, by_kind=kinds)
    return Principals(everyone=False, by_kind=(("AWS", _strings(value)),))


def _conditions(value: Any, variables: bool) -> tuple[ConditionEntry, ...]:
    if not isinstance(value, Mapping):
        return ()
    entries = []
    for operator, block in value.items():
        if not isinstance(block, Mapping):
            entries.append(ConditionEntry(str(operator), "", ()))
            continue
        for key, values in block.items():
            patterns = tuple(parse_pattern(text, variables) for text in _strings(values))
            entries.append(
                ConditionEntry(
                    str(operator), str(key), patterns, str(key).lower(), any(has_variables(p) for p in patterns)
                )
            )
    return tuple(entries)


def _statement(raw: Any, index: int, variables: bool, span: tuple[tuple[int, int], tuple[int, int]]) -> Statement:
    raw = raw if isinstance(raw, Mapping) else {}

    def patterns(name: str) -> tuple[Pattern, ...] | None:
        return tuple(parse_pattern(text, variables) for text in _strings(raw[name])) if name in raw else None

    def actions(name: str) -> re.Pattern[str] | None:
        return action_regex(_strings(raw[name])) if name in raw else None

    return Statement(
        effect=str(raw.get("Effect", "")),
        sid=str(raw.get("Sid", "")),
        index=index,
        actions=actions("Action"),
        not_actions=actions("NotAction"),
        resources=patterns("Resource"),
        not_resources=patterns("NotResource"),
        principal=_principals(raw["Principal"]) if "Principal" in raw else None,
        not_principal=_principals(raw["NotPrincipal"]) if "NotPrincipal" in raw else None,
        conditions=_conditions(raw.get("Condition"), variables),
        variables=variables,
        start=span[0],
        end=span[1],
    )


def document_text(document: str | Mapping[str, Any]) -> str:
    """The text a document is cached by: a str as is, a dict dumped with sorted keys."""
    return document if isinstance(document, str) else json.dumps(document, sort_keys=True)


def compile_document(document: str | Mapping[str, Any]) -> CompiledPolicy:
    return compile_policy(document_text(document))


@lru_cache(maxsize=1024)
def compile_policy(text: str) -> CompiledPolicy:
    """A policy's JSON text → its statements. Text that is not a JSON object has no statements (allows and
    denies nothing); IAM validates documents when they are stored, not here."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return CompiledPolicy(version="", statements=())
    if not isinstance(parsed, Mapping):
        return CompiledPolicy(version="", statements=())
    version = str(parsed.get("Version", ""))
    raw = parsed.get("Statement", [])
    raws = list(raw) if isinstance(raw, list) else [raw]
    spans = statement_spans(text)
    variables = version == VARIABLES_VERSION
    statements = tuple(
        _statement(item, index, variables, spans[index] if index < len(spans) else ((1, 1), (1, 1)))
        for index, item in enumerate(raws)
    )
    return CompiledPolicy(version=version, statements=statements)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def statement_spans(text: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where each statement object is in the text: its opening `{` and closing `}`, (line, column), 1-based.

    A small scan of the JSON text (strings skipped, brackets counted): the value of the top-level
    "Statement" key, one object or an array of objects."""
    spans: list[tuple[tuple[int, int], tuple[int, int]]] = []
    depth = 0
    last_string = ""
    state = "before"  # "before" the Statement key, "value" after its colon, "in" its value, "done"
    statement_depth = 0  # the depth a statement object opens at: 2 (a single object) or 3 (in an array)
    opened_at = -1
    i = 0
    length = len(text)
    while i < length:
        char = text[i]
        if char == '"':
            end = i + 1
            while end < length and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            last_string = text[i + 1 : end]
            i = end + 1
            continue
        if char == ":" and depth == 1 and last_string == "Statement" and state == "before":
            state = "value"
        elif char in "{[":
            depth += 1
            if state == "value":
                state = "in"
                statement_depth = 2 if char == "{" else 3
            if state == "in" and depth == statement_depth and char == "{":
                opened_at = i
        elif char in "}]":
            if state == "in" and depth == statement_depth and char == "}" and opened_at >= 0:
                spans.append((_line_column(text, opened_at), _line_column(text, i)))
                opened_at = -1
            if state == "in" and depth == 2:
                state = "done"
            depth -= 1
        i += 1
    return spans
