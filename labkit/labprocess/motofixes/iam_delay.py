"""The two registry records of `labkit up --iam-delay SECONDS` (labkit/labprocess/propagation.py
says what the delay does, and holds the notes these mixins write and read): role sessions see a
role's policy changes DELAY seconds late (role_changes_reach_sessions_after_the_delay), and EC2
refuses an instance profile younger than DELAY (new_profiles_reach_ec2_after_the_delay).
"""

from __future__ import annotations

import time
from typing import Any

from labkit.labprocess.motofixes import subclass
from labkit.labprocess.motofixes.fidelity import Backend
from labkit.labprocess.propagation import Policies, delay, noted, notes_of, noting, seen_by_sessions


# -- the changes, noted: a mixin of the lab's IAM backend --------------------------------------------
class RoleChangesNoted(Backend):
    """Notes each change to a role's permission policies, and the policies just before it."""

    def _before(self, role_name: str) -> Policies | None:
        if not noting():
            return None
        try:
            return Policies.of(self.get_role(role_name))
        except Exception:  # noqa: BLE001 - no such role: moto refuses the change itself
            return None

    def _note(self, role_name: str, before: Policies | None) -> None:
        if before is not None:
            notes_of(self).changed(role_name, before, time.monotonic(), delay())

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
        notes = noted(self)
        if notes is not None:  # a new role of the same name starts afresh
            notes.roles.pop(role_name, None)


def sessions_see_role_changes_after_the_delay() -> None:
    """The apply of the record role_changes_reach_sessions_after_the_delay."""
    from moto.iam import access_control

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
        if noting():
            notes_of(self).profiles[made.name] = time.monotonic()
        return made

    def delete_instance_profile(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().delete_instance_profile(name, *args, **kwargs)
        notes = noted(self)
        if notes is not None:
            notes.profiles.pop(name, None)


class NewProfilesRefused(Backend):
    """EC2 refuses an instance profile younger than the delay, before it changes anything (the
    lab's EC2 backend): RunInstances launches nothing, and nothing is journaled."""

    def _refuse_a_new_profile(self, name: str | None, arn: str | None) -> None:
        seconds = delay()
        if not seconds:
            return
        from moto.ec2.exceptions import EC2ClientError
        from moto.iam.models import iam_backends

        notes = noted(iam_backends[self.account_id][self.partition])
        if notes is None:
            return
        now = time.monotonic()
        for given, field_name, word in ((name, "name", "name"), (arn, "arn", "ARN")):
            if given and notes.young(given.rsplit("/", 1)[-1], now, seconds):
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
    subclass.add("iam", ProfilesNoted)
    subclass.add("ec2", NewProfilesRefused)
