"""What a student's server answers the class page, read with suspicion.

    report = status_from(body)   # `labkit status --json`, once its shape is labkit's; else ValueError
    said = said_from(body)       # what a reset did, in the server's words: one string; else ValueError
    line = message_from(body)    # the message of an error answer, or None

A student's server runs the student's code, so it may answer anything: a list, a string where a flag
belongs, megabytes, markup. None of it may break the class page: the student's row says what was
wrong instead. The page shows every string it keeps as text (page.py escapes them).
"""

from __future__ import annotations

import json
from typing import Any

MAX_ANSWER = 1 << 20  # bytes: a status report is a few kB (the page's client refuses a longer answer)
MAX_TEXT = 1000  # characters in one string of a report: labkit's longest, a seal note, has about 200
MAX_ITEMS = 100  # notebooks in a report's progress, items missing from one notebook
MAX_COUNT = 1_000_000  # the challenge's items graded (11) and hints shown (one more each time a student asks)

JSON_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "true or false", int: "a number",
              float: "a number", type(None): "null"}  # fmt: skip


def _kind(value: Any) -> str:
    return JSON_KINDS.get(type(value), type(value).__name__)


def _expect(value: Any, kinds: tuple[type, ...], where: str) -> None:
    """ValueError naming `where` unless `value` is one of `kinds` (bool is not a number here)."""
    if type(value) not in kinds:
        wanted = " or ".join(dict.fromkeys(JSON_KINDS[k] for k in kinds))
        raise ValueError(f"{where} is {_kind(value)}, where labkit's report has {wanted}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ValueError(f"{where} is {len(value)} characters long, more than the {MAX_TEXT} the page shows")
    if isinstance(value, dict | list) and len(value) > MAX_ITEMS:
        raise ValueError(f"{where} has {len(value)} entries, more than the {MAX_ITEMS} the page shows")


def _count(value: Any, where: str) -> None:
    """ValueError naming `where` unless `value` is a whole number from 0 to MAX_COUNT."""
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        shown = str(value)[:20] if type(value) in (int, float) else _kind(value)
        raise ValueError(f"{where} is {shown}, where labkit's report has a whole number from 0 to {MAX_COUNT}")


def _check_challenge(challenge: Any) -> None:
    """ValueError unless `challenge` is null or shaped as labkit/challenge/record.py `last_grade` makes it,
    and says one thing: ok is null exactly when it was never graded, true exactly when nothing is missing."""
    _expect(challenge, (dict, type(None)), "challenge")
    if challenge is None:
        return
    graded_at, ok, missing = challenge.get("graded_at"), challenge.get("ok"), challenge.get("missing")
    _expect(graded_at, (str, type(None)), "challenge.graded_at")
    _expect(ok, (bool, type(None)), "challenge.ok")
    _expect(missing, (list,), "challenge.missing")
    for item in missing:
        _expect(item, (str,), "an item of challenge.missing")
    _count(challenge.get("items"), "challenge.items")
    _count(challenge.get("hints"), "challenge.hints")
    said, listed = json.dumps(ok), f"{len(missing)} item{'s' if len(missing) != 1 else ''}"
    if (ok is None) != (graded_at is None):
        graded = "null" if graded_at is None else "a time"
        raise ValueError(f"challenge.ok is {said} while challenge.graded_at is {graded}: labkit's has both or neither")
    if ok is not None and ok != (not missing):
        raise ValueError(f"challenge.ok is {said} while challenge.missing lists {listed}")
    if len(missing) > challenge["items"]:
        raise ValueError(f"challenge.missing lists {listed} of the {challenge['items']} graded")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        raise ValueError(f"the answer is not JSON: {body[:40]!r}") from None


def status_from(body: bytes) -> dict[str, Any]:
    """The status report in `body`, if it is shaped as `labkit status --json` where the page reads it
    (labkit/report.py); ValueError saying what is not, e.g. "progress.02.missing is a string, …"."""
    report = _json(body)
    _expect(report, (dict,), "the report")
    _expect(report.get("running"), (bool,), "running")
    if not report["running"]:
        return report  # {"running": false, "home": …}: the page reads nothing else
    _expect(report.get("sealed", False), (bool,), "sealed")
    for key in ("seal_note", "restored", "finished", "furthest"):
        _expect(report.get(key), (str, type(None)), key)
    progress = report.get("progress") or {}
    _expect(progress, (dict,), "progress")
    for number, entry in progress.items():  # JSON's keys are strings
        where = f"progress.{number[:20]}"
        _expect(entry, (dict,), where)
        _expect(entry.get("done"), (bool,), f"{where}.done")
        missing = entry.get("missing", [])
        _expect(missing, (list,), f"{where}.missing")
        for item in missing:
            _expect(item, (str,), f"an item of {where}.missing")
    _check_challenge(report.get("challenge"))  # notebook 07: graded when the student asks, not in progress
    return report  # type: ignore[no-any-return]


def said_from(body: bytes) -> str:
    """What a reset did, from its answer `{"said": "Reset the lab …", …}`; ValueError if there is no such line."""
    answer = _json(body)
    _expect(answer, (dict,), "the reset's answer")
    said = answer.get("said")
    _expect(said, (str,), "said")
    return said  # type: ignore[no-any-return]


def message_from(body: bytes) -> str | None:
    """The one line of an error answer (Jupyter's `{"message": "…"}`), cut to MAX_TEXT characters; None
    when there is none."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return None
    if not isinstance(message, str) or not message.strip():
        return None
    line = message.strip().splitlines()[0]
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"
