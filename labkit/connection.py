"""A connection to a running lab: its administrator's clients, its instances, what it holds, its reset.

The connection knows nothing of the lesson's steps, checks or displays: those are built on it
(labkit/lesson.py), never the reverse; its messages only say where the lesson shows a thing.

Every client made here talks to the lab on loopback with the lab's administrator keys, through a
botocore session that reads no `AWS_*` variable and no file under `~/.aws`: a student's own AWS
credentials are never read, used or copied.
"""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from labkit.control import control
from labkit.errors import InstanceNotFound, InstanceNotRunning, LabError, LabNotRunning
from labkit.instances import Instance
from labkit.lab import running_info, up
from labkit.protocol import REGION
from labkit.statedir import LabInfo, lab_home, read_info

if TYPE_CHECKING:
    import pandas

T = TypeVar("T")
STOPPED = (
    "Your lab has stopped (`labkit down`, or its process ended), so nothing answers for {home}. "
    "Start it again with `labkit up` in a terminal, or `lab = labkit.connect()` here: its journal brings "
    "everything back."
)
NOT_XML = re.compile(r"Unable to parse response \((?P<why>.*)\), invalid XML received")  # botocore's words


def sealed_botocore_session() -> Any:
    """A botocore session that reads no AWS_* variable and no file under ~/.aws."""
    import botocore.session
    from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES

    sealed = {
        name: (cfg, None, default, conv)
        for name, (cfg, _env, default, conv) in BOTOCORE_DEFAUT_SESSION_VARIABLES.items()
    }
    sealed["config_file"] = (None, None, os.devnull, None)
    sealed["credentials_file"] = (None, None, os.devnull, None)
    return botocore.session.Session(session_vars=sealed)


@dataclass(frozen=True)
class InstanceSummary:
    instance_id: str
    name: str
    state: str
    private_ip: str
    instance_profile_arn: str | None

    def label(self) -> str:
        return f"{self.instance_id} ({self.name or 'no Name tag'}, {self.state})"


@dataclass(frozen=True)
class LabStatus:
    """What a lab holds, read through the AWS API as its administrator."""

    home: Path
    pid: int
    api_url: str
    users: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    instances: list[InstanceSummary] = field(default_factory=list)
    profile_roles: dict[str, list[str]] = field(default_factory=dict)
    journal: dict[str, Any] = field(default_factory=dict)  # changes kept, and the last that could not be
    unreadable: dict[str, str] = field(default_factory=dict)  # a part that could not be read: one line, why

    def to_frame(self) -> pandas.DataFrame:
        """What the lab holds, one row per user, role and instance."""
        import pandas

        rows = [{"kind": "IAM user", "name": name, "detail": ""} for name in self.users]
        rows += [{"kind": "IAM role", "name": name, "detail": ""} for name in self.roles]
        for inst in self.instances:
            role = self.role_of(inst)
            detail = f"{inst.state}, {inst.private_ip}, " + (f"role {role}" if role else "no role")
            rows.append({"kind": "EC2 instance", "name": f"{inst.name or '-'} ({inst.instance_id})", "detail": detail})
        return pandas.DataFrame(rows, columns=["kind", "name", "detail"])

    def __repr__(self) -> str:
        return str(self.to_frame().to_string(index=False))

    def _repr_html_(self) -> str:
        said = "".join(f"<p>{html.escape(part)}: {html.escape(why)}</p>" for part, why in self.unreadable.items())
        return str(self.to_frame().to_html(index=False)) + said

    def role_of(self, instance: InstanceSummary) -> str | None:
        """The role an instance holds through its instance profile, if any."""
        roles = self.profile_roles.get(instance.instance_profile_arn or "", [])
        return roles[0] if roles else None


class Connection:
    """A running lab: its administrator's clients, its instances, its reset to a fresh lab.

    A connection follows its state directory: after `labkit down` and `labkit up` (or a crash and a
    restart) its clients, instances and `%%instance` cells reach the new lab process, which the
    journal has brought back with the same keys. While no lab runs, they say so in one line."""

    def __init__(self, home: Path, info: LabInfo) -> None:
        self.home = home
        self.info = info
        self._clients: dict[tuple[str | None, ...], Any] = {}
        self._session: Any = None  # one sealed boto3 session for all clients: botocore's models decoded once

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, *, start: bool = True) -> Self:
        """Connect to the lab of `home` (default `$LABKIT_HOME`), starting it if it is not running."""
        path = lab_home(home)
        info = running_info(path)
        if info is None:
            if not start:
                raise LabNotRunning(f"No lab is running for {path}. Start it with `labkit up` (or labkit.connect()).")
            print("labkit: starting your lab (a few seconds)…", flush=True)
            info, started = up(path)
            if started and info.restoration():
                print(f"labkit: {info.restoration()}")
        return cls(path, info)

    def current(self) -> LabInfo:
        """The record of the lab running now for this state directory (raises LabNotRunning)."""
        recorded = read_info(self.home)
        if recorded is not None and recorded.pid == self.info.pid:
            return self.info  # the same process: a crash shows as a refused connection (_stopped)
        running = running_info(self.home)
        if running is None:
            raise LabNotRunning(STOPPED.format(home=self.home))
        if running.admin_access_key_id != self.info.admin_access_key_id:
            raise LabNotRunning(
                f"The lab in {self.home} was started anew, with new keys, so this connection no longer "
                "works. Run `lab = labkit.connect()` again (a notebook's first cell)."
            )
        self.info = running
        return running

    def _follow(self, request: Any, **_: Any) -> None:
        """botocore's before-sign hook: send the request to the lab running now."""
        from urllib.parse import urlsplit, urlunsplit

        current = urlsplit(self.current().api_url)
        request.url = urlunsplit(urlsplit(request.url)._replace(scheme=current.scheme, netloc=current.netloc))

    def _stopped(self, exception: Exception, **_: Any) -> None:
        """botocore's after-call-error hook: a lab that stopped answering is one line, not a traceback."""
        from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

        if isinstance(exception, (EndpointConnectionError, ConnectionClosedError)) and running_info(self.home) is None:
            raise LabNotRunning(STOPPED.format(home=self.home)) from None

    def __repr__(self) -> str:
        return f"<Lab {self.home} at {self.info.api_url} (pid {self.info.pid})>"

    def _repr_html_(self) -> str:
        return f"<p>Your lab, running on this machine. It holds:</p>{self.status()._repr_html_()}"

    @property
    def api_url(self) -> str:
        return self.info.api_url

    @property
    def sealing(self) -> str:
        """How this host seals the lab's instances, in one line (`labkit status` says it too)."""
        return self.current().sealing()

    def client(
        self,
        service_name: str,
        *,
        region_name: str = REGION,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
    ) -> Any:
        """A boto3 client against the lab: as its administrator ("the person in the console"), or
        with the keys you give it. It reads no AWS_* variable and nothing under ~/.aws."""
        import boto3
        from botocore.config import Config

        given = (aws_access_key_id, aws_secret_access_key, aws_session_token)
        key = (service_name, region_name, *given)
        if key not in self._clients:
            if self._session is None:  # it holds no credentials: each client is given its own keys
                self._session = boto3.session.Session(botocore_session=sealed_botocore_session())
            client = self._session.client(
                service_name,
                region_name=region_name,
                endpoint_url=self.info.api_url,
                aws_access_key_id=aws_access_key_id or self.info.admin_access_key_id,
                aws_secret_access_key=aws_secret_access_key or self.info.admin_secret_access_key,
                aws_session_token=aws_session_token,
                config=Config(proxies={}, connect_timeout=5, retries={"mode": "standard", "max_attempts": 2}),
            )
            client.meta.events.register("before-sign", self._follow)
            client.meta.events.register("after-call-error", self._stopped)
            self._clients[key] = client
        return self._clients[key]

    def instances(self) -> list[InstanceSummary]:
        """Every instance the lab has launched, terminated ones included."""
        found = []
        for page in self.client("ec2").get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    found.append(InstanceSummary(
                        instance_id=inst["InstanceId"],
                        name=tags.get("Name", ""),
                        state=inst["State"]["Name"],
                        private_ip=inst.get("PrivateIpAddress", ""),
                        instance_profile_arn=inst.get("IamInstanceProfile", {}).get("Arn"),
                    ))  # fmt: skip
        return found

    def instance(self, ref: str) -> Instance:
        """The running instance with id or Name tag `ref`, ready to run commands on."""
        everything = self.instances()
        matches = [i for i in everything if ref in (i.instance_id, i.name)]
        running = [i for i in matches if i.state == "running"]
        listing = ", ".join(i.label() for i in everything) or "none"
        if not matches:
            raise InstanceNotFound(
                f"No instance {ref} in this lab; instances: {listing}. "
                "Launch one with lab.client('ec2').run_instances(...) (notebook 03 shows how)."
            )
        if not running:
            raise InstanceNotRunning(
                f"Instance {matches[0].label()} is not running, so nothing can be run on it; "
                f"instances: {listing}. Launch a new one with lab.client('ec2').run_instances(...)."
            )
        if len(running) > 1:
            raise InstanceNotFound(
                f"{len(running)} running instances are named {ref}: "
                f"{', '.join(i.instance_id for i in running)}. Name the one you mean by its id."
            )
        target = running[0]
        return Instance(self.home, self.current, target.instance_id, name=target.name, private_ip=target.private_ip)

    def reset(self) -> float:
        """Wipe the lab back to a freshly bootstrapped one; every reset draws ids from the same seed.
        Returns the seconds taken."""
        began = time.perf_counter()
        control(self.current(), "reset", method="POST")
        return time.perf_counter() - began

    def status(self) -> LabStatus:
        """What the lab holds: its users, roles and instances, and which role each instance holds.

        Read part by part, as its administrator: a part the lab's answer does not let it read
        ("users", "roles", "instances", "instance profiles") is empty, and `unreadable` says why."""
        unreadable: dict[str, str] = {}

        def read(part: str, action: str, reader: Callable[[], T], empty: T) -> T:
            try:
                return reader()
            except LabError:
                raise  # the lab stopped or restarted: its own one line
            except Exception as error:  # anything the lab answered: said in one line, the rest still shown
                unreadable[part] = f"could not be read: {why_unreadable(action, error)}"
                return empty

        iam = self.client("iam")
        return LabStatus(
            home=self.home,
            pid=self.info.pid,
            api_url=self.info.api_url,
            users=read("users", "iam:ListUsers", lambda: [u["UserName"] for u in iam.list_users()["Users"]], []),
            roles=read("roles", "iam:ListRoles", lambda: [r["RoleName"] for r in iam.list_roles()["Roles"]], []),
            instances=read("instances", "ec2:DescribeInstances", self.instances, []),
            profile_roles=read("instance profiles", "iam:ListInstanceProfiles", lambda: profile_roles(iam), {}),
            journal=dict(control(self.current(), "health").get("journal") or {}),
            unreadable=unreadable,
        )

    def env(self) -> dict[str, str]:
        """Variables that make a terminal's own `aws` act as the lab's administrator."""
        return {
            "AWS_ACCESS_KEY_ID": self.info.admin_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.info.admin_secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.info.api_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


def profile_roles(iam: Any) -> dict[str, list[str]]:
    """Each instance profile's ARN, and the roles in it."""
    profiles = iam.list_instance_profiles()["InstanceProfiles"]
    return {profile["Arn"]: [role["RoleName"] for role in profile["Roles"]] for profile in profiles}


def why_unreadable(action: str, error: Exception) -> str:
    """Why `action` gave nothing to read, in one line, and what to do about it."""
    from botocore.exceptions import ClientError

    said = str(error).strip().splitlines()[0] if str(error).strip() else ""
    found = NOT_XML.search(said)
    if found is not None:
        return (
            f"the lab's answer to {action} is not XML botocore can parse ({found['why']}): something in the lab "
            "(a name, a tag) holds a character XML cannot carry; delete it, or `labkit reset --to NN`"
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "?")
        message = str(error.response.get("Error", {}).get("Message", "")).strip().splitlines()
        return f"{action} answered {code}: {message[0] if message else ''}"[:300]
    return f"{action} failed: {type(error).__name__}: {said}"[:300]
