"""A connection to the lab: start it when needed, act as its administrator, reach its instances.

The connection knows nothing of the lesson: the notebooks' steps, checks and `%%instance` are built
on it (labkit/lesson.py), never the reverse.

Every client made here talks to the lab on loopback with the lab's administrator keys, through a
botocore session that reads no `AWS_*` variable and no file under `~/.aws`: a student's own AWS
credentials are never read, used or copied.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from labkit.errors import InstanceNotFound, InstanceNotRunning, LabError, LabNotRunning, LabStartFailed
from labkit.instances import Instance
from labkit.protocol import LOG_FILE, REGION, START_LOCK
from labkit.statedir import LabInfo, ensure_home, lab_home, owner, read_info, remove_info

if TYPE_CHECKING:
    import pandas

START_TIMEOUT = 60.0
_STOPPED = (
    "Your lab has stopped (`labkit down`, or its process ended), so nothing answers for {home}. "
    "Start it again with `labkit up` in a terminal, or `lab = labkit.connect()` here: its journal brings "
    "everything back."
)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(info: LabInfo, action: str, *, method: str = "GET", timeout: float = 30.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{info.api_url}/_labkit/{action}",
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Authorization": f"Bearer {info.secret}"},
    )
    with _NO_PROXY.open(request, timeout=timeout) as response:
        return dict(json.load(response))


def _control(info: LabInfo, action: str, *, method: str = "GET", timeout: float = 30.0) -> dict[str, Any]:
    """Ask the lab process to do `action`; a failure is a LabError that says where to look."""
    try:
        return _call(info, action, method=method, timeout=timeout)
    except urllib.error.HTTPError as error:
        try:
            said = str(json.load(error).get("error") or error)
        except (OSError, ValueError, AttributeError):
            said = str(error)
        what = action.split("?")[0]
        raise LabError(f"The lab (pid {info.pid}) could not {what}: {said[:1].lower()}{said[1:]}") from None
    except (OSError, ValueError) as error:
        raise LabError(
            f"The lab (pid {info.pid}) failed to {action.split('?')[0]}: {error}. "
            "Its log is lab.log in the lab's state directory; `labkit down` then `labkit up` restarts it."
        ) from None


def _answers(info: LabInfo) -> bool:
    try:
        return _call(info, "health", timeout=2.0).get("pid") == info.pid
    except (OSError, ValueError):
        return False


def running_info(home: Path) -> LabInfo | None:
    """The record of the lab running for `home`, or None when none answers."""
    info = read_info(home)
    return info if info is not None and _answers(info) else None


def _lab_process_env() -> dict[str, str]:
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    kept = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in drop}
    return {
        **kept,
        "PYTHONHASHSEED": "0",  # the same ids and orders from the same steps, every time
        # moto makes botocore sessions; they must not read the student's ~/.aws (found by tests/test_offline.py)
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _sealed_from_environment() -> bool | None:
    """`LABKIT_SEALED=1` (or 0): what labkit.connect() and tests ask of a lab they start."""
    value = os.environ.get("LABKIT_SEALED", "")
    return None if value == "" else value not in ("0", "false", "no")


def _start(home: Path, *, iam_delay: float | None = None, sealed: bool | None = None) -> LabInfo:
    kept = 256 * 1024  # lab.log keeps the last 256 KB of earlier runs, from a whole line: enough to see why one stopped
    if (home / LOG_FILE).exists() and (home / LOG_FILE).stat().st_size > kept:
        with open(home / LOG_FILE, "r+b") as earlier:  # no lab writes to it now: none answers, and we hold START_LOCK
            earlier.seek(-kept, os.SEEK_END)
            end = earlier.read()
            earlier.seek(0)
            earlier.write(end[end.find(b"\n") + 1 :])
            earlier.truncate()
    log = open(home / LOG_FILE, "ab")
    delay = [] if iam_delay is None else ["--iam-delay", str(float(iam_delay))]
    sealed = _sealed_from_environment() if sealed is None else sealed
    seal = [] if sealed is None else ["--sealed" if sealed else "--no-sealed"]
    process = subprocess.Popen(
        [sys.executable, "-m", "labkit.labprocess.main", "--home", str(home), *delay, *seal],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=_lab_process_env(),
        cwd=home,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (home / LOG_FILE).read_text(errors="replace").strip().splitlines()[-3:]
            raise LabStartFailed(
                f"The lab process exited with status {process.returncode} while starting: "
                f"{' | '.join(tail)}. Full log: {home / LOG_FILE}"
            )
        info = read_info(home)
        if info is not None and info.pid == process.pid and _answers(info):
            return info
        time.sleep(0.05)
    process.kill()
    raise LabStartFailed(f"The lab did not answer within {START_TIMEOUT:.0f} s; see {home / LOG_FILE}.")


def up(
    home: str | os.PathLike[str] | None = None, *, iam_delay: float | None = None, sealed: bool | None = None
) -> tuple[LabInfo, bool]:
    """Start the lab of `home` unless it runs already; returns its record and whether it started.

    `iam_delay`: the seconds IAM changes take to reach role sessions and EC2, as on AWS (0: at
    once); a lab it starts keeps it across restarts, and None starts one with the delay it had
    last. A running lab keeps its own: its record's `iam_delay` says which. `sealed`: each instance a
    machine of its own, in namespaces (labkit/labprocess/sandbox.py); kept the same way (None: as
    `LABKIT_SEALED` says, else as last started).

    A lab process that owns the directory (holds its lock) is never doubled: when it does not
    answer, `up` waits for it while it runs, and says what to do when it cannot answer."""
    path = ensure_home(lab_home(home))
    with open(path / START_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = running_info(path)
        if info is not None:
            return info, False
        pid = owner(path)
        if pid is None:
            return _start(path, iam_delay=iam_delay, sealed=sealed), True
        deadline = time.monotonic() + START_TIMEOUT
        while (pid := owner(path)) is not None and time.monotonic() < deadline:
            info = read_info(path)
            if info is not None and info.pid == pid and _answers(info):
                return info, False
            if info is None or info.pid != pid or _process_state(pid) == "T":
                break  # waiting would not help
            time.sleep(0.1)
        if pid is None:  # it ended meanwhile
            return _start(path, iam_delay=iam_delay, sealed=sealed), True
        raise LabError(
            f"The lab process {pid} owns {path} but does not answer ({_why_silent(path, pid)}). "
            "`labkit down` stops it; `labkit up` then brings the lab back from its journal."
        )


def _why_silent(path: Path, pid: int) -> str:
    if _process_state(pid) == "T":
        return "it is stopped, as by Ctrl-Z or SIGSTOP"
    info = read_info(path)
    if info is None:
        return "lab.json, which says where it listens, is missing or unreadable"
    if info.pid != pid:
        return f"lab.json names another process, {info.pid}"
    return "it is busy or hung"


def _process_state(pid: int) -> str:
    """The state letter of process `pid` (R, S, T, Z, …), or '' when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def down(home: str | os.PathLike[str] | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the lab of `home`; returns False when none was running.

    The lab is the process that owns the directory (labkit.statedir.owner), answering or not:
    asked to stop, then signalled, then killed; lab.json goes only once it has ended."""
    path = lab_home(home)
    pid = owner(path)
    if pid is None:
        remove_info(path)
        return False
    info = read_info(path)
    asked = False
    if info is not None and info.pid == pid:
        try:
            _call(info, "shutdown", method="POST", timeout=2.0)
            asked = True
        except (OSError, ValueError):
            pass
    if not asked and pid > 0:
        _signal(pid, signal.SIGTERM)
        _signal(pid, signal.SIGCONT)  # a stopped process takes its SIGTERM once it runs again
    if not _released(path, timeout) and (pid := owner(path) or pid) > 0:
        _signal(pid, signal.SIGKILL)
        _released(path, timeout)
    if owner(path) is not None:
        raise LabError(f"The lab process {pid} owns {path} and could not be stopped; stop it with `kill -9 {pid}`.")
    deadline = time.monotonic() + 2.0
    while pid > 0 and _pid_alive(pid) and time.monotonic() < deadline:  # it has ended: reap it if it is ours
        time.sleep(0.01)
    remove_info(path)
    return True


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _released(path: Path, timeout: float) -> bool:
    """Wait until no process owns `path`, for up to `timeout` seconds; returns whether none does."""
    deadline = time.monotonic() + timeout
    while owner(path) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (exited, not yet reaped by its parent) does not.
    Our own child is reaped here once it has exited, so that it is gone when we say so."""

    def reap() -> None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours: its parent (or init) reaps it
            pass

    reap()
    if Path("/proc").is_dir():
        try:
            running = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return False
        if not running:
            reap()  # it exited after the first look
        return running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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
        return str(self.to_frame().to_html(index=False))

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
            raise LabNotRunning(_STOPPED.format(home=self.home))
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
            raise LabNotRunning(_STOPPED.format(home=self.home)) from None

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
            session = boto3.session.Session(botocore_session=sealed_botocore_session(), region_name=region_name)
            client = session.client(
                service_name,
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
        _control(self.current(), "reset", method="POST")
        return time.perf_counter() - began

    def status(self) -> LabStatus:
        """What the lab holds: its users, roles and instances, and which role each instance holds."""
        iam = self.client("iam")
        return LabStatus(
            home=self.home,
            pid=self.info.pid,
            api_url=self.info.api_url,
            users=[u["UserName"] for u in iam.list_users()["Users"]],
            roles=[r["RoleName"] for r in iam.list_roles()["Roles"]],
            instances=self.instances(),
            profile_roles={
                p["Arn"]: [r["RoleName"] for r in p["Roles"]] for p in iam.list_instance_profiles()["InstanceProfiles"]
            },
            journal=dict(_control(self.current(), "health").get("journal") or {}),
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
