"""The lab's durable record: every change, on disk before it is acknowledged, replayed after a crash.

    journal.jsonl   line 1: the header (seed of the last reset, administrator keys, moto's version)
                    then one line per change: an AWS request that changed something, or a role
                    session the metadata service handed out

Each change also records moto's random state from just before it and the secrets drawn while it
ran (access keys, session tokens), so that replaying it yields the same ids and the same secrets: a
key a student copied, or a credentials file on an instance, still works after the lab comes back.
`labkit reset` starts a new journal.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.protocol import JOURNAL_FILE

FORMAT = 1
READ_ONLY_PREFIXES = ("Get", "List", "Describe")


@dataclass
class Contents:
    """What a journal file holds, and what was wrong with it, if anything."""

    header: dict[str, Any] | None
    changes: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""


class Journal:
    """An append-only file of changes, each flushed to disk before the change is acknowledged."""

    def __init__(self, home: Path) -> None:
        self.path = home / JOURNAL_FILE

    def start(self, header: dict[str, Any]) -> None:
        """Begin a new journal (after a reset), replacing the old one atomically."""
        self._rewrite({"format": FORMAT, **header}, [])

    def append(self, change: dict[str, Any]) -> None:
        line = json.dumps(change, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Contents:
        """The header and every whole change; a damaged record is reported, never fatal."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Contents(None)
        lines = raw.split(b"\n")
        try:
            header = json.loads(lines[0])
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')!r}")
        except (ValueError, AttributeError) as error:
            return Contents(None, problem=f"its first line, the header, is unreadable ({error})")
        contents = Contents(header)
        body = [line for line in lines[1:] if line.strip()]
        for number, line in enumerate(body, start=2):
            try:
                contents.changes.append(json.loads(line))
            except ValueError:
                cut = number == len(body) + 1 and not raw.endswith(b"\n")
                contents.problem = (
                    "its last change was cut short (written when the lab stopped) and was not replayed"
                    if cut
                    else f"line {number} is unreadable; it and the changes after it were not replayed"
                )
                break
        return contents

    def keep(self, contents: Contents) -> None:
        """Rewrite the journal with only what was replayed, so new changes follow on cleanly."""
        assert contents.header is not None
        self._rewrite(contents.header, contents.changes)

    def set_aside(self, reason: str, *, suffix: str = "damaged") -> Path:
        """Move a journal that cannot be used out of the way, keeping it for inspection
        (as journal.jsonl.damaged, or with another `suffix`)."""
        aside = self.path.with_name(f"{JOURNAL_FILE}.{suffix}")
        os.replace(self.path, aside)
        return aside

    def _rewrite(self, header: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".{JOURNAL_FILE}.tmp")
        with open(tmp, "w") as f:
            for record in (header, *changes):
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def action_of(method: str, query: str, body: bytes, headers: dict[str, str]) -> str:
    """The AWS action a request asks for (query and JSON protocols), or '' when there is none."""
    from urllib.parse import parse_qs

    target = headers.get("X-Amz-Target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    form = parse_qs(query)
    if not form.get("Action") and body and "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        form = parse_qs(body.decode(errors="replace"))
    return form.get("Action", [""])[0]


def changes_something(method: str, action: str) -> bool:
    """Whether a request may change the lab: anything but a Get/List/Describe (or a GET/HEAD)."""
    if action:
        return not action.startswith(READ_ONLY_PREFIXES)
    return method not in ("GET", "HEAD")
