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
administrator's own requests, the metadata service. The two registry records that make this
(motofixes/registry.py) add mixins to the lab's IAM and EC2 backends and let moto's access control
ask `Notes` how a role looks from elsewhere; with no delay they note nothing and change nothing.

How: for each role, the time of each change and the role's policies just before it. The role as
seen from elsewhere now is the role as it was at (now - DELAY): the policies from before its first
change younger than DELAY, or, with none, its policies now. Notes live beside moto's backends,
never in them (so never in a snapshot), and vanish with them at a reset. Changes replayed from the
journal are not noted (`replaying`): after a restart, every change counts as having reached
everywhere, including one made less than DELAY seconds before the lab stopped.

The delay is the lab's, not the session's: `labkit up --iam-delay N` saves it in the state
directory's `options.json` (owner-only), and a lab started without the option (`labkit up`, or
`labkit.connect()` after a crash) takes the one saved there. `--iam-delay 0` turns it off again.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.protocol import MAX_IAM_DELAY

OPTIONS_FILE = "options.json"  # in the state directory: {"iam_delay": SECONDS}

if TYPE_CHECKING:  # a mixin of one of moto's backends (motofixes/subclass.py): it reaches moto's by super()
    Backend = Any
else:
    Backend = object


def valid_delay(text: str) -> float:
    """A delay from the command line: seconds, from 0 to MAX_IAM_DELAY (argparse's `type`)."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_IAM_DELAY):
        raise ValueError(f"{text} is not between 0 and {MAX_IAM_DELAY:g} seconds")
    return seconds


def chosen_delay(home: Path, given: float | None, say: Callable[[str], None] = print) -> float:
    """The lab's delay: `given` (saved in options.json for the next start), else the one saved
    there, else 0. A file that cannot be read counts as no delay, and `say` tells why; one that
    cannot be written (a full disk) leaves the delay to this run, and `say` tells that too."""
    path = home / OPTIONS_FILE
    if given is not None:
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".options-", suffix=".json")  # owner-only (0600)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({**_other_options(path), "iam_delay": given}, f)
            os.replace(tmp, path)
        except OSError as error:
            Path(tmp).unlink(missing_ok=True)
            say(f"labkit: {path} could not be written ({error}); --iam-delay {given:g} holds until the lab stops.")
        return given
    try:
        saved = json.loads(path.read_text())
        if isinstance(saved, dict) and "iam_delay" not in saved:
            return 0.0  # only other options saved (`labkit up --sealed`)
        return valid_delay(str(saved["iam_delay"]))
    except FileNotFoundError:
        return 0.0
    except (OSError, ValueError, TypeError, KeyError) as error:
        say(f"labkit: {path} could not be read ({error}); IAM changes apply at once.")
        return 0.0


def _other_options(path: Path) -> dict[str, object]:
    """The other options saved beside the delay (`labkit up --sealed`), kept when it is written."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in saved.items() if k != "iam_delay"} if isinstance(saved, dict) else {}


# -- the setting, and what is noted ------------------------------------------------------------------
_delay = 0.0
_replaying = False


def configure(delay: float) -> None:
    """Set the lab's delay (in the lab process, before it serves)."""
    global _delay
    _delay = delay


def delay() -> float:
    return _delay


@contextmanager
def replaying() -> Iterator[None]:
    """While the journal replays a change (backends.Cloud._replay): one long made is not noted."""
    global _replaying
    _replaying = True
    try:
        yield
    finally:
        _replaying = False


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


def _noting() -> bool:
    return _delay > 0 and not _replaying


def notes_of(iam_backend: Any) -> Notes:
    if iam_backend not in _notes:
        _notes[iam_backend] = Notes()
    return _notes[iam_backend]


def seen_by_sessions(iam_backend: Any, role_name: str) -> Policies | None:
    """The role's policies as its sessions see them now, or None: as they are (no delay, or
    nothing on its way)."""
    if not _delay or iam_backend not in _notes:
        return None
    return _notes[iam_backend].seen(role_name, time.monotonic(), _delay)


# -- the changes, noted: a mixin of the lab's IAM backend --------------------------------------------
class RoleChangesNoted(Backend):
    """Notes each change to a role's permission policies, and the policies just before it."""

    def _before(self, role_name: str) -> Policies | None:
        if not _noting():
            return None
        try:
            return Policies.of(self.get_role(role_name))
        except Exception:  # noqa: BLE001 - no such role: moto refuses the change itself
            return None

    def _note(self, role_name: str, before: Policies | None) -> None:
        if before is not None:
            notes_of(self).changed(role_name, before, time.monotonic(), _delay)

    def attach_role_policy(self, policy_arn: str, role_name: str) -> None:
        before = self._before(role_name)
        super().attach_role_policy(policy_arn, role_name)
        self._note(role_name, before)

    def detach_role_policy(self, policy_arn: str, role_name: str) -> None:
        before = self._before(role_name)
        super().detach_role_policy(policy_arn, role_name)
        self._note(role_name, before)

    def put_role_policy(self, role_name: str, policy_name: str, policy_json: str) -> None:
        before = self._before(role_name)
        super().put_role_policy(role_name, policy_name, policy_json)
        self._note(role_name, before)

    def delete_role_policy(self, role_name: str, policy_name: str) -> None:
        before = self._before(role_name)
        super().delete_role_policy(role_name, policy_name)
        self._note(role_name, before)

    def delete_role(self, role_name: str) -> None:
        super().delete_role(role_name)
        if self in _notes:  # a new role of the same name starts afresh
            _notes[self].roles.pop(role_name, None)


def sessions_see_role_changes_after_the_delay() -> None:
    """The apply of the record role_changes_reach_sessions_after_the_delay."""
    from moto.iam import access_control

    from labkit.labprocess.motofixes import subclass

    subclass.add("iam", RoleChangesNoted)
    original = access_control.AssumedRoleAccessKey.collect_policies

    def collect_policies(self: Any) -> list[Any]:
        seen = seen_by_sessions(self.backend, self._owner_role_name)
        return original(self) if seen is None else seen.collected()

    setattr(access_control.AssumedRoleAccessKey, "collect_policies", collect_policies)  # noqa: B010


# -- new instance profiles, refused by EC2 until the delay has passed -----------------------------
class ProfilesNoted(Backend):
    """Notes when each instance profile was made (the lab's IAM backend)."""

    def create_instance_profile(self, *args: Any, **kwargs: Any) -> Any:
        made = super().create_instance_profile(*args, **kwargs)
        if _noting():
            notes_of(self).profiles[made.name] = time.monotonic()
        return made

    def delete_instance_profile(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().delete_instance_profile(name, *args, **kwargs)
        if self in _notes:
            _notes[self].profiles.pop(name, None)


class NewProfilesRefused(Backend):
    """EC2 refuses an instance profile younger than the delay, before it changes anything (the
    lab's EC2 backend): RunInstances launches nothing, and nothing is journaled."""

    def _refuse_a_new_profile(self, name: str | None, arn: str | None) -> None:
        if not _delay:
            return
        from moto.ec2.exceptions import EC2ClientError
        from moto.iam.models import iam_backends

        iam = iam_backends[self.account_id][self.partition]
        if iam not in _notes:
            return
        now = time.monotonic()
        for given, field_name, word in ((name, "name", "name"), (arn, "arn", "ARN")):
            if given and _notes[iam].young(given.rsplit("/", 1)[-1], now, _delay):
                raise EC2ClientError(
                    "InvalidParameterValue",
                    f"Value ({given}) for parameter iamInstanceProfile.{field_name} is invalid. "
                    f"Invalid IAM Instance Profile {word}",
                )

    def run_instances(
        self, image_id: str, count: int, user_data: Any, security_group_names: list[str], **kwargs: Any
    ) -> Any:
        self._refuse_a_new_profile(kwargs.get("iam_instance_profile_name"), kwargs.get("iam_instance_profile_arn"))
        return super().run_instances(image_id, count, user_data, security_group_names, **kwargs)

    def associate_iam_instance_profile(
        self,
        instance_id: str,
        iam_instance_profile_name: str | None = None,
        iam_instance_profile_arn: str | None = None,
    ) -> Any:
        self._refuse_a_new_profile(iam_instance_profile_name, iam_instance_profile_arn)
        return super().associate_iam_instance_profile(instance_id, iam_instance_profile_name, iam_instance_profile_arn)

    def replace_iam_instance_profile_association(
        self,
        association_id: str,
        iam_instance_profile_name: str | None = None,
        iam_instance_profile_arn: str | None = None,
    ) -> Any:
        self._refuse_a_new_profile(iam_instance_profile_name, iam_instance_profile_arn)
        return super().replace_iam_instance_profile_association(
            association_id, iam_instance_profile_name, iam_instance_profile_arn
        )


def ec2_sees_new_profiles_after_the_delay() -> None:
    """The apply of the record new_profiles_reach_ec2_after_the_delay."""
    from labkit.labprocess.motofixes import subclass

    subclass.add("iam", ProfilesNoted)
    subclass.add("ec2", NewProfilesRefused)
