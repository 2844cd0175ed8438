"""The emulated cloud: moto's backends inside the lab process, and what labkit adds to them.

moto plays IAM, STS and EC2 with authorization switched on: every request must be signed by a
known identity and is checked against that identity's policies. This module owns the lab's
bootstrap (the administrator who plays "the person in the console", a few ordinary users), the
reset, and the two things the metadata service needs and moto lacks: the facts about one
instance, and real STS sessions for the role attached to it.

Only the lab process imports this module, after `configure_moto()`.
"""

from __future__ import annotations

import base64
import json
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

from labkit.labprocess import propagation, snapshot
from labkit.labprocess.journal import Contents, Journal, JournalWriteFailed, why
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


class ChangeNotSaved(Exception):
    """A change was made but could not be journaled, so it was undone and must not be acknowledged;
    str() says why, in one sentence."""


class Unreplayable(Exception):
    """A journaled change that does not replay; str() says which and why."""


def _private_dns_name(ipv4: str) -> str:
    return f"ip-{ipv4.replace('.', '-')}.ec2.internal"  # us-east-1's form (REGION)


def _known(value: str | None) -> str | None:
    """moto's value, or None where it has none (moto writes a missing kernel id as "None")."""
    return value if value and value != "None" else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class InterfaceFacts:
    """One network interface attached to an instance, as DescribeInstances shows it."""

    mac: str
    interface_id: str
    device_number: int
    owner_id: str
    private_ipv4s: tuple[str, ...]  # the primary address first
    public_ipv4: str | None  # associated with the primary private address
    public_hostname: str | None  # None when the VPC's enableDnsHostnames is off
    ipv6s: tuple[str, ...]
    security_groups: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    subnet_id: str
    subnet_ipv4_cidr_block: str
    subnet_ipv6_cidr_blocks: tuple[str, ...]
    vpc_id: str
    vpc_ipv4_cidr_blocks: tuple[str, ...]  # the primary block first
    vpc_ipv6_cidr_blocks: tuple[str, ...]
    network_card_index: int = 0

    @property
    def local_hostname(self) -> str:
        return _private_dns_name(self.private_ipv4s[0])


@dataclass(frozen=True)
class InstanceFacts:
    """What the metadata service may say about one instance (the fields after `role_trust_policy`
    have defaults, so that a test can name only what it needs)."""

    instance_id: str
    state: str
    ami_id: str
    instance_type: str
    local_ipv4: str
    availability_zone: str
    security_groups: tuple[str, ...]  # the names of the primary interface's groups
    http_tokens: str
    http_endpoint: str
    profile_arn: str | None
    profile_id: str | None
    role_name: str | None
    role_arn: str | None
    role_trust_policy: str | None
    account_id: str = ACCOUNT_ID
    reservation_id: str = ""
    ami_launch_index: int = 0
    architecture: str = "x86_64"
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    product_codes: tuple[str, ...] = ()
    launch_time: datetime | None = None  # DescribeInstances' LaunchTime, UTC
    availability_zone_id: str = ""
    placement_group: str = ""
    host_id: str | None = None
    partition_number: int | None = None
    lifecycle: str = "on-demand"  # or "spot"
    monitoring: str = "disabled"
    hibernation_configured: bool = False
    root_device_name: str = ""
    ebs_devices: tuple[str, ...] = ()  # the other EBS volumes' device names, as mapped at launch
    interfaces: tuple[InterfaceFacts, ...] = ()  # by device number: the primary first
    key_name: str | None = None
    public_key: str | None = None  # the key pair's public key, OpenSSH format
    user_data: bytes | None = None  # decoded, as given to RunInstances
    tags: tuple[tuple[str, str], ...] = ()
    instance_metadata_tags: str = "disabled"
    http_protocol_ipv6: str = "disabled"

    @property
    def region(self) -> str:
        return REGION

    @property
    def local_hostname(self) -> str:
        return _private_dns_name(self.local_ipv4)

    @property
    def primary_interface(self) -> InterfaceFacts | None:
        return self.interfaces[0] if self.interfaces else None


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
        self._replay_request: Callable[[dict[str, Any]], int] | None = None
        self.changes = 0  # since the last reset, snapshots included
        self.problem = ""  # the last time a change could not be saved, and why; '' when all were
        self.broken = ""  # why the lab's state no longer matches its journal; then it refuses changes

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
            if self.journal is not None:  # first on disk: a crash right after comes back as a fresh lab
                try:
                    self.journal.start({"seed": seed, "admin": list(self.admin_keys), "moto": moto_version()})
                except OSError as error:
                    self.problem = (
                        f"the lab could not start a new journal ({why(error)}), so it was not reset; "
                        f"free space where the lab keeps its state ({self.home}), then try again"
                    )
                    say(f"labkit: {self.problem}.")
                    raise ChangeNotSaved(self.problem) from None
            shutil.rmtree(self.home / INSTANCES_DIR, ignore_errors=True)
            self._fresh(seed)
            self.changes, self.broken = 0, ""

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
                if change.record is None or self.journal is None:
                    return
                random_state = [state[0], list(state[1]), state[2]]
                record = {**change.record, "stream": stream, "random": random_state, "secrets": list(SECRETS.drawn)}
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
        try:
            journal, self.journal = self.journal, None
            assert journal is not None
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
        finally:
            self.journal = journal

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
        self.journal = None  # nothing replayed is journaled again
        try:
            unreplayed = self._load(contents, journal, other_moto=other_moto)
        except Unreplayable as error:  # nothing of it can be brought back
            self.journal = journal
            aside = journal.set_aside(str(error))
            self.reset()
            return Restored(0, f"{error}; the journal was kept as {aside}, and the lab started fresh")
        finally:
            self.journal = journal
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
        from moto import settings
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
        # motofixes: replay_without_authorization
        authorization, settings.INITIAL_NO_AUTH_ACTION_COUNT = settings.INITIAL_NO_AUTH_ACTION_COUNT, float("inf")
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
        finally:
            settings.INITIAL_NO_AUTH_ACTION_COUNT = authorization
        return None

    def _replay(self, change: dict[str, Any]) -> None:
        assert self._replay_request is not None
        random_state = change["random"]
        stream = change.get("stream") or change.get("action") or change["kind"]  # older journals
        state = (random_state[0], tuple(random_state[1]), random_state[2])
        # a change long made has reached everywhere: not noted as on its way (labkit/labprocess/propagation.py)
        with self.lock, self._drawing(stream, state), SECRETS.replaying(change["secrets"]), propagation.replaying():
            if change["kind"] == "request":
                status = self._replay_request(change)
                if status >= 400:
                    raise RuntimeError(f"replaying {change.get('action')} gave HTTP {status}")
            else:
                facts = self.instance_facts(change["instance"])
                assert facts is not None, f"no instance {change['instance']}"
                self._mint(facts, datetime.fromisoformat(change["issued"]))

    # -- what the metadata service reads ---------------------------------------------------
    def running_instances(self) -> dict[str, tuple[str, str]]:
        """The running instances: id → (private address, name of the AMI it was launched from), what
        their sandboxes are made of (labprocess/sandbox.py)."""
        with self.lock:
            return {
                inst.id: (inst.private_ip, getattr(self.ec2.amis.get(inst.image_id), "name", "") or "")
                for reservation in self.ec2.reservations.values()
                for inst in reservation.instances
                if inst._state.name == "running"
            }

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
            interfaces = tuple(self._interface_facts(eni) for _, eni in sorted(inst.nics.items()))
            zones = self.ec2.describe_availability_zones(zone_names=[inst.availability_zone])
            reservation = next((r.id for r in self.ec2.reservations.values() if inst in r.instances), "")
            key_pair = self.ec2.key_pairs.get(inst.key_name) if inst.key_name else None
            hibernation = inst.hibernation_options or {}
            return InstanceFacts(
                instance_id=inst.id,
                state=inst._state.name,
                ami_id=inst.image_id,
                instance_type=inst.instance_type,
                local_ipv4=inst.private_ip,
                availability_zone=inst.availability_zone,
                security_groups=interfaces[0].security_groups if interfaces else (),
                http_tokens=options.http_tokens,
                http_endpoint=options.http_endpoint,
                profile_arn=profile.arn if profile else None,
                profile_id=profile.id if profile else None,
                role_name=role.name if role else None,
                role_arn=role.arn if role else None,
                role_trust_policy=role.assume_role_policy_document if role else None,
                account_id=inst.owner_id,
                reservation_id=reservation,
                ami_launch_index=int(inst.ami_launch_index or 0),
                architecture=inst.architecture or "x86_64",
                kernel_id=_known(inst.kernel or inst.kernel_id),
                ramdisk_id=_known(inst.ramdisk),
                product_codes=tuple(str(code) for code in inst.product_codes),
                launch_time=inst.launch_time.replace(tzinfo=UTC),
                availability_zone_id=zones[0].zone_id if zones else "",
                placement_group=inst.placement.group_name or "",
                host_id=inst.placement.host_id or None,
                partition_number=getattr(inst.placement, "partition_number", None),
                lifecycle=inst.lifecycle or "on-demand",
                monitoring="enabled" if inst.monitored else "disabled",
                hibernation_configured=bool(hibernation.get("Configured")),
                root_device_name=inst.root_device_name or "",
                ebs_devices=self._ebs_devices(inst),
                interfaces=interfaces,
                key_name=inst.key_name or None,
                public_key=_text(key_pair.material_public) if key_pair is not None else None,
                user_data=base64.b64decode(inst.user_data.as_bytes()) if inst.user_data is not None else None,
                tags=tuple((tag["key"], tag["value"]) for tag in inst.get_tags()),
                instance_metadata_tags=options.instance_metadata_tags,
                http_protocol_ipv6=options.http_protocol_ipv6,
            )

    def _interface_facts(self, eni: Any) -> InterfaceFacts:
        """One attached network interface, from the same moto objects DescribeInstances renders."""
        subnet = eni.subnet
        vpc = self.ec2.get_vpc(subnet.vpc_id)
        groups = list(eni.group_set)
        if isinstance(eni.group_set, set):  # moto merges the instance's groups in as a set
            groups.sort(key=lambda group: group.id)
        addresses = [eni.private_ip_address]
        addresses += [a["PrivateIpAddress"] for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in addresses]
        public = eni.public_ip or None
        vpc_blocks = [vpc.cidr_block]
        vpc_blocks += [
            c["cidr_block"]
            for c in vpc.get_cidr_block_association_set()
            if c["cidr_block_state"]["state"] == "associated" and c["cidr_block"] not in vpc_blocks
        ]
        return InterfaceFacts(
            mac=eni.mac_address,
            interface_id=eni.id,
            device_number=int(eni.device_index or 0),
            owner_id=eni.owner_id,
            private_ipv4s=tuple(addresses),
            public_ipv4=public,
            # the name DescribeInstances gives the instance (moto's ENI association says ip-….ec2.internal)
            public_hostname=f"ec2-{public.replace('.', '-')}.compute-1.amazonaws.com"
            if public and vpc.enable_dns_hostnames
            else None,
            ipv6s=tuple(eni.ipv6_addresses),
            security_groups=tuple(group.name for group in groups),
            security_group_ids=tuple(group.id for group in groups),
            subnet_id=subnet.id,
            subnet_ipv4_cidr_block=subnet.cidr_block,
            subnet_ipv6_cidr_blocks=tuple(
                a["ipv6CidrBlock"]
                for a in subnet.ipv6_cidr_block_associations.values()
                if a["ipv6CidrBlockState"].get("State") == "associated"
            ),
            vpc_id=vpc.id,
            vpc_ipv4_cidr_blocks=tuple(vpc_blocks),
            vpc_ipv6_cidr_blocks=tuple(
                c["cidr_block"]
                for c in vpc.get_cidr_block_association_set(ipv6=True)
                if c["cidr_block_state"]["state"] == "associated"
            ),
        )

    @staticmethod
    def _ebs_devices(inst: Any) -> tuple[str, ...]:
        """The device names of the EBS volumes other than the root one that were attached at
        launch (AWS: "only available in metadata if they were present at launch time")."""
        mapping = inst.get_block_device_mapping
        names = [name for name, _ in mapping]
        # moto attaches a default root volume at /dev/sda1 whatever the AMI's root device name
        root = inst.root_device_name if inst.root_device_name in names else "/dev/sda1"
        launched = inst.launch_time + timedelta(seconds=1)
        return tuple(
            name for name, block in mapping if name != root and block.attach_time and block.attach_time <= launched
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
