"""The emulated cloud: moto's backends inside the lab process, and what labkit adds to them.

moto plays IAM, STS and EC2 with authorization switched on: every request must be signed by a
known identity and is checked against that identity's policies. This module owns the lab's
bootstrap (the administrator who plays "the person in the console", a few ordinary users), the
reset, and the two things the metadata service needs and moto lacks: the facts about one
instance, and real STS sessions for the role attached to it.

Only the lab process imports this module, after `configure_moto()`.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from labkit.labprocess.journal import Journal
from labkit.protocol import ACCOUNT_ID, INSTANCES_DIR, REGION
from labkit.trust import ec2_may_assume

ADMIN_USER = "admin"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
STARTER_USERS = ("alice", "bob", "carol")

KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# Every lab draws moto's ids from this seed (secrets never follow it): a student's own run of the
# series and `labkit reset --to NN` then give the same instance, role and profile ids.
LAB_SEED = 2000
ROLE_SESSION_SECONDS = 6 * 3600
# AWS makes new credentials available at least five minutes before the old ones expire.
REFRESH_BEFORE = timedelta(minutes=15)


def configure_moto() -> None:
    """Set moto's switches; must run before moto is first imported in this process."""
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "false")


def moto_version() -> str:
    """The installed moto's version, which the journal's header records."""
    from moto import __version__

    return str(__version__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_key_pair(prefix: str = "AKIA") -> tuple[str, str]:
    """A fresh access key id and secret, as AWS makes them: never derived from any seed, so a key
    of one lab is unknown to every other lab, even at the same seeded checkpoint."""
    return fresh_key_id(prefix), fresh_secret()


def fresh_key_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(16))


def fresh_secret() -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(40))


def new_admin_keys() -> tuple[str, str]:
    return new_key_pair("AKIA")


class Secrets:
    """Where the lab's fresh secrets come from (access key ids and secrets, session tokens): the
    system's random source, or, while the journal replays a change, the values drawn the first time."""

    def __init__(self) -> None:
        self.drawn: list[str] = []
        self._replay: list[str] | None = None

    def draw(self, make: Callable[[], str]) -> str:
        value = self._replay.pop(0) if self._replay else make()
        self.drawn.append(value)
        return value

    @contextmanager
    def replaying(self, values: list[str]) -> Iterator[None]:
        self._replay = list(values)
        try:
            yield
        finally:
            self._replay = None


SECRETS = Secrets()


@dataclass
class Change:
    """One change in the making: set `record` to what to journal, or leave it None to keep nothing."""

    record: dict[str, Any] | None = None


@dataclass(frozen=True)
class Restored:
    """What `Cloud.restore` brought back from the journal."""

    changes: int
    problem: str = ""


@dataclass(frozen=True)
class InstanceFacts:
    """What the metadata service may say about one instance."""

    instance_id: str
    state: str
    ami_id: str
    instance_type: str
    local_ipv4: str
    availability_zone: str
    security_groups: tuple[str, ...]
    http_tokens: str
    http_endpoint: str
    profile_arn: str | None
    profile_id: str | None
    role_name: str | None
    role_arn: str | None
    role_trust_policy: str | None

    @property
    def region(self) -> str:
        return REGION

    @property
    def local_hostname(self) -> str:
        return f"ip-{self.local_ipv4.replace('.', '-')}.ec2.internal"


@dataclass(frozen=True)
class RoleSession:
    """Temporary credentials of the lab's STS for the role of one instance."""

    role_arn: str
    access_key_id: str
    secret_access_key: str
    token: str
    last_updated: datetime
    expiration: datetime


class Cloud:
    """moto's backends for the lab's one account and region, plus the lab's own state."""

    def __init__(
        self,
        home: Path,
        admin_keys: tuple[str, str],
        *,
        clock: Callable[[], datetime] = utcnow,
        journal: Journal | None = None,
    ) -> None:
        self.home = home
        self.admin_keys = admin_keys
        self.clock = clock
        self.journal = journal
        self.lock = threading.RLock()
        self._sessions: dict[str, RoleSession] = {}
        self._seed = LAB_SEED
        self._streams: dict[str, Any] = {}

    # -- moto's backends -------------------------------------------------------------------
    @property
    def iam(self) -> Any:
        from moto.backends import get_backend

        return get_backend("iam")[ACCOUNT_ID]["aws"]

    @property
    def ec2(self) -> Any:
        from moto.backends import get_backend

        return get_backend("ec2")[ACCOUNT_ID][REGION]

    @property
    def sts(self) -> Any:
        from moto.backends import get_backend

        return get_backend("sts")[ACCOUNT_ID]["aws"]

    # -- a new lab ---------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """A fresh lab: the administrator, a few ordinary users, the default VPC and AMIs."""
        with self.lock:
            iam = self.iam
            iam.create_user(REGION, ADMIN_USER)
            iam.attach_user_policy(ADMIN_POLICY_ARN, ADMIN_USER)
            key = iam.create_access_key(ADMIN_USER)  # motofixes: admin_keys_chosen_by_the_lab
            del iam.access_keys[key.physical_resource_id]
            key.access_key_id, key.secret_access_key = self.admin_keys
            iam.access_keys[key.physical_resource_id] = key
            for name in STARTER_USERS:
                iam.create_user(REGION, name)
            _ = self.ec2  # creating the EC2 backend makes the default VPC, subnets and moto's AMIs

    def reset(self, *, seed: int = LAB_SEED) -> None:
        """Wipe every backend and the instances' home directories, then bootstrap again.

        moto's ids (instances, roles, profiles) then follow from the seed, so that the same steps
        yield the same ids (see `_drawing`). Secrets never follow it. The journal starts anew.
        """
        with self.lock:
            shutil.rmtree(self.home / INSTANCES_DIR, ignore_errors=True)
            self._fresh(seed)
            if self.journal is not None:
                self.journal.start({"seed": seed, "admin": list(self.admin_keys), "moto": moto_version()})

    def _fresh(self, seed: int) -> None:
        """Fresh backends, seeded and bootstrapped; the instances' home directories are left alone."""
        from moto.moto_api._internal import mock_random
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()  # motofixes: ids_follow_the_lab_seed, as in _drawing
        self._sessions.clear()
        self._seed, self._streams = seed, {}
        mock_random.seed(seed)
        self.bootstrap()

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
        acknowledged) if asked to."""
        with self.lock, self._drawing(stream) as state:
            SECRETS.drawn.clear()
            change = Change()
            yield change
            if change.record is not None and self.journal is not None:
                random_state = [state[0], list(state[1]), state[2]]
                self.journal.append(
                    {**change.record, "stream": stream, "random": random_state, "secrets": list(SECRETS.drawn)}
                )

    def restore(self, replay_request: Callable[[dict[str, Any]], int]) -> Restored | None:
        """Bring the lab back from its journal: the same ids, keys and sessions. None without one."""
        from moto import settings

        assert self.journal is not None
        contents = self.journal.read()
        if contents.header is None:
            if contents.problem:
                aside = self.journal.set_aside(contents.problem)
                self.reset()
                return Restored(0, f"the journal could not be read: {contents.problem}; it was kept as {aside}")
            return None
        self.admin_keys = (contents.header["admin"][0], contents.header["admin"][1])
        journal, self.journal = self.journal, None  # nothing replayed is journaled again
        # motofixes: replay_without_authorization
        authorization, settings.INITIAL_NO_AUTH_ACTION_COUNT = settings.INITIAL_NO_AUTH_ACTION_COUNT, float("inf")
        replayed = 0
        try:
            self._fresh(int(contents.header["seed"]))
            for change in contents.changes:
                random_state = change["random"]
                stream = change.get("stream") or change.get("action") or change["kind"]  # older journals
                state = (random_state[0], tuple(random_state[1]), random_state[2])
                with self.lock, self._drawing(stream, state), SECRETS.replaying(change["secrets"]):
                    if change["kind"] == "request":
                        status = replay_request(change)
                        if status >= 400:
                            raise RuntimeError(f"replaying {change.get('action')} gave HTTP {status}")
                    else:
                        facts = self.instance_facts(change["instance"])
                        assert facts is not None, f"no instance {change['instance']}"
                        self._mint(facts, datetime.fromisoformat(change["issued"]))
                replayed += 1
        except Exception as error:  # a change that no longer replays: keep what did
            contents.problem = f"change {replayed + 1} could not be replayed ({error}); it and later ones were dropped"
            contents.changes = contents.changes[:replayed]
        finally:
            settings.INITIAL_NO_AUTH_ACTION_COUNT = authorization
            self.journal = journal
        written_under, running = contents.header.get("moto"), moto_version()
        if written_under and written_under != running:  # a header without it (older labkit): this moto
            contents.header["moto"] = running  # what follows is written under this one
            if contents.problem:
                aside = self.journal.set_aside(contents.problem, suffix=f"moto-{written_under}")
                contents.problem = (
                    f"the journal was written under moto {written_under} and this lab runs moto {running}: "
                    f"{contents.problem}; the whole journal was kept as {aside}"
                )
            self.journal.keep(contents)
        elif contents.problem:
            self.journal.keep(contents)
        return Restored(len(contents.changes), contents.problem)

    # -- what the metadata service reads ---------------------------------------------------
    def instance_facts(self, instance_id: str) -> InstanceFacts | None:
        """The facts about one instance, or None when the lab has no such instance."""
        from moto.ec2.exceptions import InvalidInstanceIdError
        from moto.iam.exceptions import NotFoundException

        with self.lock:
            try:
                inst = self.ec2.get_instance(instance_id)
            except InvalidInstanceIdError:
                return None
            profile = role = None
            association = self.ec2.iam_instance_profile_associations.get(instance_id)
            if association is not None:
                try:  # read the profile afresh: it may have lost its role or been deleted
                    profile = self.iam.get_instance_profile(association.iam_instance_profile.name)
                except NotFoundException:
                    profile = None
            if profile is not None and profile.roles:
                role = profile.roles[0]
            options = inst.metadata_options
            return InstanceFacts(
                instance_id=inst.id,
                state=inst._state.name,
                ami_id=inst.image_id,
                instance_type=inst.instance_type,
                local_ipv4=inst.private_ip,
                availability_zone=inst.availability_zone,
                security_groups=tuple(g.name for g in inst.security_groups),
                http_tokens=options.http_tokens,
                http_endpoint=options.http_endpoint,
                profile_arn=profile.arn if profile else None,
                profile_id=profile.id if profile else None,
                role_name=role.name if role else None,
                role_arn=role.arn if role else None,
                role_trust_policy=role.assume_role_policy_document if role else None,
            )

    def role_session(self, facts: InstanceFacts) -> RoleSession | None:
        """Credentials for the instance's role, or None when EC2 may not assume that role.

        The session is minted inside the lab (moto's STS cannot assume a role for a service
        principal with authorization on), named after the instance id, cached per instance
        and replaced well before it expires.
        """
        if facts.role_arn is None or facts.role_trust_policy is None:
            return None
        if not ec2_may_assume(facts.role_trust_policy):
            return None
        now = self.clock()
        with self.lock:
            cached = self._sessions.get(facts.instance_id)
            if cached is not None and cached.role_arn == facts.role_arn and now < cached.expiration - REFRESH_BEFORE:
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
        session = RoleSession(
            role_arn=facts.role_arn,
            access_key_id=assumed.access_key_id,
            secret_access_key=assumed.secret_access_key,
            token=assumed.session_token,
            last_updated=now,
            expiration=now + timedelta(seconds=ROLE_SESSION_SECONDS),
        )
        self._sessions[facts.instance_id] = session
        return session
