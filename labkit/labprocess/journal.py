"""The lab's durable record: every change, whole on disk before it is acknowledged, replayed after
a crash; and, every few hundred changes, a snapshot, so that bringing a lab back does not take
longer as its history grows.

    journal.jsonl              line 1: the header (seed of the last reset, administrator keys,
                               moto's version, and the snapshot the changes follow, if any), then
                               one line per change since that snapshot: an AWS request that changed
                               something, or a role session the metadata service handed out
    snapshot-N.pickle          the lab's state after its first N changes (owner-only, like the
                               whole state directory; read only by the lab that wrote it)
    journal.jsonl.unreplayed-… changes the lab could not bring back, kept as they were
    journal.jsonl.damaged-…    a journal (or snapshot) that could not be used at all, kept as it was

Each change also records moto's random state from just before it and the secrets drawn while it
ran (access keys, session tokens), so that replaying it yields the same ids and the same secrets: a
key a student copied, or a credentials file on an instance, still works after the lab comes back.
`labkit reset` starts a new journal.

A change whose line is not whole on disk (a full disk, a file size limit, an I/O error) raises
JournalWriteFailed; the partial line is cut off again, and the caller must undo the change and must
not acknowledge it. A journal is never cut: what cannot be replayed is kept beside it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.protocol import JOURNAL_FILE

FORMAT = 1
READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Simulate")
READ_ONLY_ACTIONS = {
    "DecodeAuthorizationMessage",  # reads a message; its key is the lab process's own
    "Scan", "Query", "BatchGetItem", "TransactGetItems",  # DynamoDB's reads
}  # fmt: skip
SNAPSHOT_PREFIX = "snapshot-"


class JournalWriteFailed(Exception):
    """A change could not be written whole to the journal; str() says why, in a few words."""


@dataclass
class Contents:
    """What a journal file holds, and what was wrong with it, if anything."""

    header: dict[str, Any] | None
    changes: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""
    unreadable: bytes = b""  # the journal from its first unreadable line to its end


def why(error: OSError) -> str:
    """An OSError as a student or instructor reads it."""
    if error.errno == errno.ENOSPC:
        return "the disk is full"
    if error.errno == errno.EFBIG:
        return "the journal reached the largest file this process may write (ulimit -f)"
    if error.errno == errno.EDQUOT:
        return "the disk quota is used up"
    return f"{error.strerror or error}"


def _fsync_directory(path: Path) -> None:
    """Make a file's creation, rename or removal in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_whole(fd: int, data: bytes) -> None:
    """Write all of `data` (os.write may write part of it when the disk fills up)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def write_file(path: Path, data: bytes) -> None:
    """Write `path` atomically and durably, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_whole(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_directory(path.parent)


class Journal:
    """An append-only file of changes, each whole on disk before the change is acknowledged."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / JOURNAL_FILE
        self.header: dict[str, Any] = {}  # of the journal being written
        self.since_snapshot = 0  # changes in the journal file, after its snapshot

    # -- writing -------------------------------------------------------------------------------
    def start(self, header: dict[str, Any]) -> None:
        """Begin a new journal (after a reset, or after a snapshot), replacing the old one atomically;
        snapshots it no longer follows are removed."""
        self._rewrite({"format": FORMAT, **header}, [])
        self._remove_unused_snapshots()

    def append(self, change: dict[str, Any]) -> None:
        """Write one change, whole, to disk; raises JournalWriteFailed, leaving the journal as it was."""
        data = (json.dumps(change, separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        except OSError as error:
            raise JournalWriteFailed(why(error)) from None
        try:
            end = os.fstat(fd).st_size
            try:
                _write_whole(fd, data)
                os.fsync(fd)
            except OSError as error:
                try:  # cut the partial line off again, so the next change follows a whole line
                    os.ftruncate(fd, end)
                    os.fsync(fd)
                except OSError:
                    pass  # the line stays partial: read() sees it as unreadable, and keeps it aside
                raise JournalWriteFailed(why(error)) from None
        finally:
            os.close(fd)
        self.since_snapshot += 1

    def write_snapshot(self, state: bytes, changes: int) -> dict[str, Any]:
        """Write the lab's state after its first `changes` changes; returns the reference the next
        journal's header holds. Raises OSError (the journal goes on without it)."""
        path = self.home / f"{SNAPSHOT_PREFIX}{changes}.pickle"
        write_file(path, state)
        return {"file": path.name, "sha256": hashlib.sha256(state).hexdigest(), "changes": changes}

    def read_snapshot(self, reference: dict[str, Any]) -> bytes:
        """The state a header's snapshot reference names; ValueError when it is not that state."""
        name = str(reference.get("file", ""))
        if not name.startswith(SNAPSHOT_PREFIX) or "/" in name:
            raise ValueError(f"the snapshot it names ({name!r}) is not one of the lab's")
        try:
            state = (self.home / name).read_bytes()
        except OSError as error:
            raise ValueError(f"its snapshot {name} cannot be read ({why(error)})") from None
        if hashlib.sha256(state).hexdigest() != reference.get("sha256"):
            raise ValueError(f"its snapshot {name} is damaged (its checksum does not match)")
        return state

    # -- reading -------------------------------------------------------------------------------
    def read(self) -> Contents:
        """The header and every whole change; a damaged record is reported, never fatal."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Contents(None)
        except OSError as error:  # a directory where the journal should be, unreadable, …
            return Contents(None, problem=f"journal.jsonl cannot be read ({why(error)})")
        first, _, rest = raw.partition(b"\n")
        problem = header_problem(first)
        if problem:
            return Contents(None, problem=f"its first line, the header, is unreadable ({problem})")
        contents = Contents(json.loads(first))
        offset = len(first) + 1
        for number, line in enumerate(rest.split(b"\n"), start=2):
            if line.strip():
                try:
                    change = json.loads(line)
                    if not isinstance(change, dict) or "kind" not in change:
                        raise ValueError("not a change")
                except ValueError:
                    cut = not raw.endswith(b"\n") and offset + len(line) >= len(raw)
                    contents.problem = (
                        "its last change was cut short (written when the lab stopped) and was not replayed"
                        if cut
                        else f"line {number} is unreadable; it and the changes after it were not replayed"
                    )
                    contents.unreadable = raw[offset:]
                    break
                contents.changes.append(change)
            offset += len(line) + 1
        return contents

    # -- keeping what cannot be used -----------------------------------------------------------
    def keep(self, contents: Contents, unreplayed: bytes = b"") -> Path | None:
        """Rewrite the journal with only what was replayed, so new changes follow on cleanly; what
        was not (`unreplayed`, and what read() could not read) is first kept beside it, and its
        path returned."""
        assert contents.header is not None
        aside = None
        left = unreplayed + contents.unreadable
        if left:
            aside = self._free_name("unreplayed")
            write_file(aside, left)
        self._rewrite(contents.header, contents.changes)
        return aside

    def set_aside(self, reason: str, *, suffix: str = "damaged") -> Path:
        """Move a journal that cannot be used out of the way, keeping it for inspection (as
        journal.jsonl.damaged, or with another `suffix`; a number follows when that is taken).
        The snapshot it follows, if any, moves with it."""
        aside = self._free_name(suffix)
        os.replace(self.path, aside)
        for snapshot in self.home.glob(f"{SNAPSHOT_PREFIX}*.pickle"):
            os.replace(snapshot, aside.with_name(f"{aside.name}.{snapshot.name}"))
        _fsync_directory(self.home)
        return aside

    def _free_name(self, suffix: str) -> Path:
        path = self.path.with_name(f"{JOURNAL_FILE}.{suffix}")
        number = 2
        while path.exists() or path.is_symlink():
            path = self.path.with_name(f"{JOURNAL_FILE}.{suffix}-{number}")
            number += 1
        return path

    def _rewrite(self, header: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        lines = [json.dumps(record, separators=(",", ":")) + "\n" for record in (header, *changes)]
        write_file(self.path, "".join(lines).encode())
        self.header, self.since_snapshot = header, len(changes)

    def _remove_unused_snapshots(self) -> None:
        used = (self.header.get("snapshot") or {}).get("file")
        for snapshot in self.home.glob(f"{SNAPSHOT_PREFIX}*.pickle"):
            if snapshot.name != used:
                snapshot.unlink(missing_ok=True)


def header_problem(line: bytes) -> str:
    """'' when `line` is a header the lab can start from, else what is wrong with it."""
    try:
        header = json.loads(line)
    except ValueError as error:
        return str(error)
    if not isinstance(header, dict):
        return "not an object"
    if header.get("format") != FORMAT:
        return f"format {header.get('format')!r}"
    admin = header.get("admin")
    if not (isinstance(admin, list) and len(admin) == 2 and all(isinstance(part, str) and part for part in admin)):
        return f"its administrator keys are {admin!r}"
    if not isinstance(header.get("seed"), int) or isinstance(header.get("seed"), bool):
        return f"its seed is {header.get('seed')!r}"
    snapshot = header.get("snapshot")
    if snapshot is not None and not (isinstance(snapshot, dict) and isinstance(snapshot.get("changes"), int)):
        return f"its snapshot is {snapshot!r}"
    return ""


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
        return not action.startswith(READ_ONLY_PREFIXES) and action not in READ_ONLY_ACTIONS
    return method not in ("GET", "HEAD")
