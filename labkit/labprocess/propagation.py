"""IAM's eventual consistency, as a lab option: `labkit up --iam-delay SECONDS` (off by default).

On AWS, an IAM change is acknowledged at once but takes a few seconds to reach every endpoint (IAM
User Guide, troubleshooting: "Changes that I make are not always immediately visible"; EC2 User
Guide, IAM roles for Amazon EC2: "If your first attempt to launch an instance with a role fails,
wait a few seconds before trying again"). The lab applies every change at once, so that the
notebooks stay deterministic. With a delay, it acts as AWS does where the lesson looks:

    role sessions  a request signed by a role's session (an instance's credentials) is authorized
                   against the role's policies as they were DELAY seconds ago: AttachRolePolicy,
                   DetachRolePolicy, PutRolePolicy and DeleteRolePolicy reach sessions that late
    EC2            RunInstances, AssociateIamInstanceProfile and ReplaceIamInstanceProfileAssociation
                   refuse an instance profile made less than DELAY seconds ago, as AWS does:
                   `InvalidParameterValue: Value (NAME) for parameter iamInstanceProfile.name is
                   invalid. Invalid IAM Instance Profile name` (`.arn` … `ARN` for an ARN)

Everything else sees each change at once: the IAM API itself (ListAttachedRolePolicies), the
administrator's own requests, the metadata service. This module holds the delay and the notes; the
two registry records that act on them (motofixes/iam_delay.py) add mixins to the lab's IAM and EC2
backends and let moto's access control ask `Notes` how a role looks from elsewhere; with no delay
they note nothing and change nothing.

How: for each role, the time of each change and the role's policies just before it. The role as
seen from elsewhere now is the role as it was at (now - DELAY): the policies from before its first
change younger than DELAY, or, with none, its policies now. Notes live beside moto's backends,
never in them (so never in a snapshot), and vanish with them at a reset. Changes replayed from the
journal are not noted (labkit/labprocess/replay.py): after a restart, every change counts as having reached
everywhere, including one made less than DELAY seconds before the lab stopped.

The delay is the lab's, not the session's: `labkit up --iam-delay N` saves it in the state
directory's `options.json` (labkit/labprocess/options.py), and a lab started without the option
(`labkit up`, or `labkit.connect()` after a crash) takes the one saved there. `--iam-delay 0` turns
it off again.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from labkit.labprocess import replay

# -- the setting, and what is noted ------------------------------------------------------------------
_delay = 0.0


def configure(delay: float) -> None:
    """Set the lab's delay (in the lab process, before it serves)."""
    global _delay
    _delay = delay


def delay() -> float:
    return _delay


def noting() -> bool:
    """Whether a change made now is noted as on its way: with a delay, and not while the journal
    replays a change (one long made has reached everywhere)."""
    return _delay > 0 and not replay.active()


@dataclass(frozen=True)
class Policies:
    """A role's permission policies at one moment, as moto's access control collects them: the
    inline policies' documents, then the attached managed policies (moto's objects)."""

    inline: tuple[Any, ...]
    attached: tuple[Any, ...]

    @classmethod
    def of(cls, role: Any) -> Policies:
        return cls(tuple(role.policies.values()), tuple(role.managed_policies.values()))

    def collected(self) -> list[Any]:
        return [*self.inline, *self.attached]


@dataclass
class Notes:
    """What one IAM backend's changes were, and when (time.monotonic), while they may still be
    on their way: per role, (when, its policies just before); per instance profile, when made."""

    roles: dict[str, list[tuple[float, Policies]]] = field(default_factory=dict)
    profiles: dict[str, float] = field(default_factory=dict)

    def changed(self, role_name: str, before: Policies, now: float, delay: float) -> None:
        self.roles[role_name] = [*self._on_their_way(role_name, now, delay), (now, before)]

    def seen(self, role_name: str, now: float, delay: float) -> Policies | None:
        """The role's policies as seen from elsewhere at `now`, or None: as they are."""
        waiting = self._on_their_way(role_name, now, delay)
        if waiting:
            self.roles[role_name] = waiting
            return waiting[0][1]
        self.roles.pop(role_name, None)
        return None

    def _on_their_way(self, role_name: str, now: float, delay: float) -> list[tuple[float, Policies]]:
        return [(when, before) for when, before in self.roles.get(role_name, []) if now - when < delay]

    def young(self, profile_name: str, now: float, delay: float) -> bool:
        """Whether the profile was made too recently for EC2 to know it."""
        made = self.profiles.get(profile_name)
        if made is not None and now - made >= delay:
            del self.profiles[profile_name]
            return False
        return made is not None


_notes: weakref.WeakKeyDictionary[Any, Notes] = weakref.WeakKeyDictionary()


def notes_of(iam_backend: Any) -> Notes:
    """The notes of one IAM backend, made when first asked for."""
    if iam_backend not in _notes:
        _notes[iam_backend] = Notes()
    return _notes[iam_backend]


def noted(iam_backend: Any) -> Notes | None:
    """The notes of one IAM backend, or None when it has noted nothing yet."""
    return _notes.get(iam_backend)


def seen_by_sessions(iam_backend: Any, role_name: str) -> Policies | None:
    """The role's policies as its sessions see them now, or None: as they are (no delay, or
    nothing on its way)."""
    if not _delay or iam_backend not in _notes:
        return None
    return _notes[iam_backend].seen(role_name, time.monotonic(), _delay)
