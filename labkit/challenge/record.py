"""What the lab keeps of the challenge, in the lab's state directory (challenge.json, the student's
alone): how many hints were shown, and the last grade. `labkit status` and the class page read it:
grading runs the app on report-server, which a status that is asked every few seconds must not do.

A reset forgets the grade (the lab it graded is gone) and keeps the hints (what was read stays read).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RECORD_FILE = "challenge.json"


def read(home: Path) -> dict[str, Any]:
    """The record of the lab of `home`; empty when there is none, or it cannot be read as one."""
    try:
        found = json.loads((home / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write(home: Path, record: dict[str, Any]) -> None:
    """Replace the record whole (written aside, then renamed: a reader sees the old one or the new)."""
    aside = home / f".{RECORD_FILE}.{os.getpid()}"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(aside, home / RECORD_FILE)


def save_grade(home: Path, items: list[tuple[str, bool]]) -> None:
    """Keep a grade: when, and each item with whether it holds."""
    record = read(home)
    record["grade"] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "items": [{"item": item, "ok": ok} for item, ok in items],
    }
    write(home, record)


def forget_grade(home: Path) -> None:
    """After a reset: the grade was of a lab that is gone."""
    record = read(home)
    if record.pop("grade", None) is not None:
        write(home, record)


def last_grade(home: Path) -> dict[str, Any] | None:
    """The challenge as last graded and hinted, as `labkit status --json` says it: `graded_at` (None
    when it never was), `ok`, `missing` (the items that did not hold), `items` (how many there are)
    and `hints` (how many were shown). None when the student has neither graded nor asked a hint."""
    record = read(home)
    grade, hints = record.get("grade"), record.get("hints", 0)
    if not isinstance(hints, int) or isinstance(hints, bool):
        hints = 0
    if not isinstance(grade, dict) or not isinstance(grade.get("items"), list):
        return {"graded_at": None, "ok": None, "missing": [], "items": 0, "hints": hints} if hints else None
    items = [i for i in grade["items"] if isinstance(i, dict) and isinstance(i.get("item"), str)]
    missing = [str(i["item"]) for i in items if i.get("ok") is not True]
    return {"graded_at": str(grade.get("at")), "ok": not missing, "missing": missing, "items": len(items),
            "hints": hints}  # fmt: skip


def said(graded: dict[str, Any]) -> str:
    """A grade in a few words: "✓ (2 hints used)", "3 of 11 items missing (0 hints used)", "not graded yet"."""
    hints = f"{graded['hints']} hint{'s' if graded['hints'] != 1 else ''} used"
    if graded["graded_at"] is None:
        return f"not graded yet ({hints}; `labkit check 07` grades it)"
    if graded["ok"]:
        return f"✓ complete, graded {graded['graded_at']} ({hints})"
    return f"{len(graded['missing'])} of {graded['items']} items missing, graded {graded['graded_at']} ({hints})"
