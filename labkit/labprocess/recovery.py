"""The lab's recovery protocol: every change made under the lab's lock and journaled before it is
acknowledged (`change`), undone when its journal entry cannot be written (`_undo`), a snapshot every
SNAPSHOT_EVERY changes (`_snapshot`), and the lab brought back from its journal after a crash or a
restart (`restore`, `_load`, `_replay`): the same ids, keys and sessions.

Each kind of change draws moto's random ids from a stream of its own (`_drawing`), which the journal
records, so that a replayed change gives the same ids. A change is replayed inside
`replay.replaying()` (labkit/labprocess/replay.py), the one switch that everything which must act
otherwise during a replay asks.

`Recovery` is a part of `Cloud` (labkit/labprocess/backends.py), which supplies the lab's state:
moto's backends, the seed and its streams, the role sessions, and how a fresh lab is made.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.labprocess import replay, snapshot
from labkit.labprocess.journal import Contents, Journal, JournalWriteFailed, why
from labkit.labprocess.keys import SECRETS

if TYPE_CHECKING:
    from labkit.labprocess.facts import InstanceFacts
    from labkit.labprocess.sessions import RoleSession

# A snapshot after this many changes: restoring then replays at most this many (~2 ms each), and a
# snapshot (~0.1 s to write) costs each change about 0.2 ms.
SNAPSHOT_EVERY = 500


def _actions_of(lines: bytes) -> str:
    """What journal lines were, for a note: `CreateUser, AttachRolePolicy and 1 unreadable line`."""
    names: list[str] = []
    unreadable = 0
    for line in lines.split(b"\n"):
        if not line.strip():
            continue
        try:
            change = json.loads(line)
            names.append(str(change.get("action") or change.get("kind")) if isinstance(change, dict) else "?")
        except ValueError:
            unreadable += 1
    if unreadable:
        names.append(f"{unreadable} unreadable line" + ("s" if unreadable > 1 else ""))
    shown = names[:8] + ([f"{len(names) - 8} more"] if len(names) > 8 else [])
    return ", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else "".join(shown) or "nothing"


def say(line: str) -> None:
    """One line to lab.log; a full disk, which may be why it is said, must not stop the lab."""
    try:
        print(line, flush=True)
    except OSError:
        pass


def moto_version() -> str:
    """The installed moto's version, which the journal's header records."""
    from moto import __version__

    return str(__version__)


@dataclass
class Change:
    """One change in the making: set `record` to what to journal, or leave it None to keep nothing."""

    record: dict[str, Any] | None = None


@dataclass(frozen=True)
class Restored:
    """What `Cloud.restore` brought back from the journal."""

    changes: int
    problem: str = ""


class ChangeNotSaved(Exception):
    """A change was made but could not be journaled, so it was undone and must not be acknowledged;
    str() says why, in one sentence."""


class Unreplayable(Exception):
    """A journaled change that does not replay; str() says which and why."""


class Recovery:
    """Changes made one at a time, journaled, and brought back from the journal (see the module
    docstring). The class that includes it sets the attributes below and defines `_fresh` (a fresh,
    seeded lab), `reset`, `instance_facts` and `_mint` (a role session)."""

    home: Path
    admin_keys: tuple[str, str]
    journal: Journal | None
    lock: threading.RLock
    changes: int  # since the last reset, snapshots included
    problem: str  # the last time a change could not be saved, and why; '' when all were
    broken: str  # why the lab's state no longer matches its journal; then it refuses changes
    _seed: int
    _streams: dict[str, Any]
    _sessions: dict[str, RoleSession]
    _replay_request: Callable[[dict[str, Any]], int] | None

    if TYPE_CHECKING:

        def _fresh(self, seed: int) -> None: ...

        def reset(self, *, seed: int = ...) -> None: ...

        def instance_facts(self, instance_id: str) -> InstanceFacts | None: ...

        def _mint(self, facts: InstanceFacts, now: datetime) -> RoleSession: ...

    @contextmanager
    def _drawing(self, stream: str, state: Any = None) -> Iterator[Any]:
        """Let moto draw its random ids from `stream` (one per kind of change: an API action, or
        "session"), starting from `state` when given; yields the state it starts from.

        Each stream follows only the lab's seed and the changes of its own kind, so the second
        RunInstances of a lab gives the same instance id whatever else happened in between: the
        metadata service handing out sessions, describing, a refused call. A student's own run of
        the notebooks and `labkit reset --to NN` therefore agree on every id the series shows."""
        from moto.moto_api._internal import mock_random

        if state is None:
            state = self._streams.get(stream) or random.Random(f"{self._seed}:{stream}").getstate()
        mock_random.setstate(state)
        try:
            yield state
        finally:
            self._streams[stream] = mock_random.getstate()

    @contextmanager
    def change(self, stream: str) -> Iterator[Change]:
        """Make one change of kind `stream` under the lab's lock; journal it (before it is
        acknowledged) if asked to. When its journal entry cannot be written whole, the change is
        undone (the lab is rebuilt from its journal) and ChangeNotSaved is raised."""
        with self.lock:
            if self.broken:
                raise ChangeNotSaved(self.broken)
            failed = None
            with self._drawing(stream) as state:
                SECRETS.drawn.clear()
                change = Change()
                yield change
                if change.record is None or self.journal is None or replay.active():  # a replay: journaled already
                    return
                random_state = [state[0], list(state[1]), state[2]]
                record = {**change.record, "stream": stream, "random": random_state, "secrets": list(SECRETS.drawn),
                          "at": datetime.now(UTC).isoformat()}  # fmt: skip
                try:
                    self.journal.append(record)
                except JournalWriteFailed as error:
                    failed = error
            if failed is not None:  # undone once out of _drawing, which keeps the stream's state
                self._undo(
                    f"the lab could not write a change to its journal ({failed}), so it did not make it; "
                    f"free space where the lab keeps its state ({self.home}), then try again"
                )
                raise ChangeNotSaved(self.problem)
            self.changes += 1
            if self.journal.since_snapshot >= SNAPSHOT_EVERY:
                self._snapshot()

    def _undo(self, said: str) -> None:
        """Bring the lab back to what its journal holds, after a change it could not journal."""
        self.problem = said
        say(f"labkit: {said}.")
        journal = self.journal
        assert journal is not None
        try:
            contents = journal.read()
            if contents.header is None or contents.unreadable:
                raise Unreplayable(contents.problem or "the journal is gone")
            unreplayed = self._load(contents, journal)
            if unreplayed is not None:
                raise Unreplayable(unreplayed[0])
        except Exception as error:  # noqa: BLE001 - whatever it is, the lab must stop taking changes
            self.broken = (
                f"the lab's state no longer matches its journal ({error}); restart it: `labkit down`, then `labkit up`"
            )
            say(f"labkit: {self.broken}.")

    def _snapshot(self) -> None:
        """Save the lab's state and start a journal that follows it (see journal.py). A snapshot that
        cannot be written is not a loss: the journal still holds every change; it is tried again
        after the next SNAPSHOT_EVERY changes."""
        assert self.journal is not None
        header = dict(self.journal.header)
        try:
            state = snapshot.dump({"seed": self._seed, "streams": self._streams, "sessions": self._sessions})
            header["snapshot"] = self.journal.write_snapshot(state, self.changes)
            self.journal.start({key: value for key, value in header.items() if key != "format"})
        except (OSError, snapshot.SnapshotUnusable) as error:
            said = why(error) if isinstance(error, OSError) else str(error)
            say(f"labkit: no snapshot after {self.changes} changes ({said}); the journal goes on.")
            self.journal.since_snapshot = 0  # try again later, not after every change

    def restore(self, replay_request: Callable[[dict[str, Any]], int]) -> Restored | None:
        """Bring the lab back from its journal: the same ids, keys and sessions. None without one.

        Every damaged state leads to a running lab and a note: a journal that cannot be used at all
        is kept aside and the lab starts fresh; changes that cannot be read or replayed are kept
        beside the journal, and the note names them."""
        assert self.journal is not None
        self._replay_request = replay_request
        journal = self.journal
        contents = journal.read()
        if contents.header is None:
            if contents.problem:
                aside = journal.set_aside(contents.problem)
                self.reset()
                return Restored(0, f"the journal could not be read: {contents.problem}; it was kept as {aside}")
            return None
        written_under, running = contents.header.get("moto"), moto_version()
        other_moto = bool(written_under) and written_under != running
        try:
            unreplayed = self._load(contents, journal, other_moto=other_moto)
        except Unreplayable as error:  # nothing of it can be brought back
            aside = journal.set_aside(str(error))
            self.reset()
            return Restored(0, f"{error}; the journal was kept as {aside}, and the lab started fresh")
        problem = contents.problem
        if unreplayed:
            problem = unreplayed[0]
        not_back = _actions_of(unreplayed[1] + contents.unreadable) if unreplayed else _actions_of(contents.unreadable)
        if other_moto:  # a header without it (older labkit): this moto
            contents.header["moto"] = running  # what follows is written under this one
            if problem:
                aside = journal.set_aside(problem, suffix=f"moto-{written_under}")
                problem = (
                    f"the journal was written under moto {written_under} and this lab runs moto {running}: "
                    f"{problem}; the whole journal was kept as {aside}"
                )
                journal.keep(contents)
            else:
                journal.keep(contents)
        elif problem:
            kept = journal.keep(contents, unreplayed[1] if unreplayed else b"")
            if kept is not None:
                problem = f"{problem}; not brought back: {not_back}, kept in {kept}"
        else:
            journal.header, journal.since_snapshot = contents.header, len(contents.changes)
        self.changes = int((contents.header.get("snapshot") or {}).get("changes", 0)) + len(contents.changes)
        return Restored(self.changes, problem)

    def _load(self, contents: Contents, journal: Journal, *, other_moto: bool = False) -> tuple[str, bytes] | None:
        """Make the lab's state what `contents` (and the snapshot it follows) says. Changes that do
        not replay are dropped from `contents.changes`; returns what to say and their journal
        lines, or None when all replayed. Raises Unreplayable when nothing can be brought back."""
        from moto.moto_api._internal.models import moto_api_backend

        assert contents.header is not None and self._replay_request is not None
        self.admin_keys = (contents.header["admin"][0], contents.header["admin"][1])
        reference = contents.header.get("snapshot")
        if reference is not None:
            if other_moto:
                raise Unreplayable(
                    f"the journal follows a snapshot made under moto {contents.header.get('moto')}, "
                    f"which this lab's moto {moto_version()} cannot read"
                )
            try:
                state = journal.read_snapshot(reference)
                moto_api_backend.reset()
                extra = snapshot.load(state)
            except (ValueError, snapshot.SnapshotUnusable) as error:
                raise Unreplayable(f"the journal could not be used: {error}") from None
            self._seed, self._streams, self._sessions = extra["seed"], extra["streams"], extra["sessions"]
        else:
            self._fresh(int(contents.header["seed"]))
        replayed = 0
        try:
            for change in contents.changes:
                self._replay(change)
                replayed += 1
        except Exception as error:  # a change that no longer replays: keep what did, and keep the rest aside
            said = f"change {replayed + 1} could not be replayed ({error}); it and later ones were dropped"
            left = "".join(json.dumps(c, separators=(",", ":")) + "\n" for c in contents.changes[replayed:])
            contents.changes = contents.changes[:replayed]
            return said, left.encode()
        return None

    def _replay(self, change: dict[str, Any]) -> None:
        assert self._replay_request is not None
        random_state = change["random"]
        stream = change.get("stream") or change.get("action") or change["kind"]  # older journals
        state = (random_state[0], tuple(random_state[1]), random_state[2])
        with self.lock, self._drawing(stream, state), replay.replaying(change["secrets"], change.get("at")):
            if change["kind"] == "request":
                status = self._replay_request(change)
                if status >= 400:
                    raise RuntimeError(f"replaying {change.get('action')} gave HTTP {status}")
            else:
                facts = self.instance_facts(change["instance"])
                assert facts is not None, f"no instance {change['instance']}"
                self._mint(facts, datetime.fromisoformat(change["issued"]))
