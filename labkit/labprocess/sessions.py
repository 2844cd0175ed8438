"""Role sessions: the temporary credentials the metadata service hands an instance for its role,
minted inside the lab, cached per instance and replaced well before they expire.

`RoleSessions` is a part of `Cloud` (labkit/labprocess/backends.py), which supplies the lab's lock,
its clock, moto's STS and `change` (labkit/labprocess/recovery.py): each session handed out is a
change, journaled, so that a restored lab hands its instances the same keys.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from labkit.labprocess.evaluation import Policies, Policy, Request, decide
from labkit.labprocess.facts import InstanceFacts
from labkit.protocol import REGION
from labkit.trust import EC2_PRINCIPAL

if TYPE_CHECKING:
    from labkit.labprocess.recovery import Change

ROLE_SESSION_SECONDS = 6 * 3600
# AWS makes new credentials available at least five minutes before the old ones expire.
REFRESH_BEFORE = timedelta(minutes=15)


def utcnow() -> datetime:
    """The lab's clock (a test gives Cloud another)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RoleSession:
    """Temporary credentials of the lab's STS for the role of one instance."""

    role_arn: str
    access_key_id: str
    secret_access_key: str
    token: str
    last_updated: datetime
    expiration: datetime
    starts: int = 0  # the instance's starts when it was minted: a start after a stop gets new credentials


def ec2_may_assume(role_arn: str, trust_policy: str) -> bool:
    """Whether the role's trust policy lets the EC2 service assume it, decided by the lab's evaluator
    (a service named in a trust policy needs no identity-based policy of its own)."""
    trusted = Policies(resource=(Policy(trust_policy, kind="Role Trust Policy"),), resource_required=True)
    context = {"aws:PrincipalServiceName": EC2_PRINCIPAL, "aws:RequestedRegion": REGION}
    return decide(Request(EC2_PRINCIPAL, "sts:AssumeRole", role_arn, context), trusted).allowed


class RoleSessions:
    """The role sessions the lab hands out, one per instance (see the module docstring)."""

    clock: Callable[[], datetime]
    lock: threading.RLock
    _sessions: dict[str, RoleSession]

    if TYPE_CHECKING:

        @property
        def sts(self) -> Any: ...

        def change(self, stream: str) -> AbstractContextManager[Change]: ...

    def role_session(self, facts: InstanceFacts) -> RoleSession | None:
        """Credentials for the instance's role, or None when EC2 may not assume that role.

        The session is minted inside the lab (moto's STS cannot assume a role for a service
        principal with authorization on), named after the instance id, cached per instance
        and replaced well before it expires.
        """
        if facts.role_arn is None or facts.role_trust_policy is None:
            return None
        if not ec2_may_assume(facts.role_arn, facts.role_trust_policy):
            return None
        now = self.clock()
        with self.lock:
            cached = self._sessions.get(facts.instance_id)
            if (
                cached is not None
                and cached.role_arn == facts.role_arn
                and cached.starts == facts.starts  # a session pickled before the field reads the default, 0
                and now < cached.expiration - REFRESH_BEFORE
            ):
                return cached
            with self.change("session") as change:
                session = self._mint(facts, now)
                change.record = {"kind": "session", "instance": facts.instance_id, "issued": now.isoformat()}
            return session

    def _mint(self, facts: InstanceFacts, now: datetime) -> RoleSession:
        assert facts.role_arn is not None
        assumed = self.sts.assume_role(  # motofixes: role_sessions_minted_in_the_lab
            region_name=REGION,
            role_session_name=facts.instance_id,
            role_arn=facts.role_arn,
            policy=None,
            duration=ROLE_SESSION_SECONDS,
            external_id=None,
        )
        assumed.issued, assumed.for_instance = now, facts.instance_id  # aws:TokenIssueTime, ec2:SourceInstanceARN
        session = RoleSession(
            role_arn=facts.role_arn,
            access_key_id=assumed.access_key_id,
            secret_access_key=assumed.secret_access_key,
            token=assumed.session_token,
            last_updated=now,
            expiration=now + timedelta(seconds=ROLE_SESSION_SECONDS),
            starts=facts.starts,
        )
        self._sessions[facts.instance_id] = session
        return session
