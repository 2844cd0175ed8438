"""What `labkit status` says of a lab. `read_status` reads it part by part, `status_report` makes it
one dict: `labkit status --json` prints it, and each student's Jupyter server answers it to the
class page (labkit/classroom/server_extension.py).

    from labkit.report import status_report
    status_report(lab_home())["furthest"]       # "04", or None; {"running": False, ...} with no lab

Whatever the lab answers, status shows what it could read: a part it could not (an answer botocore
cannot parse, an error where AWS gives none) is one line in `unreadable`, saying what and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from labkit.checks import Progress
from labkit.errors import LabError
from labkit.lab import LabStatus, _control, running_info
from labkit.lesson import Lab

T = TypeVar("T")
NOT_XML = re.compile(r"Unable to parse response \((?P<why>.*)\), invalid XML received")  # botocore's words
NO_INSTANCES = "not known: the notebooks' checks read the instances, which could not be read"


@dataclass(frozen=True)
class StatusRead:
    """What status could read of a running lab. A part it could not read ("users", "roles",
    "instances", "instance profiles", "progress") is empty in `status` (None for `progress`), and
    `unreadable` says why, one line for each."""

    status: LabStatus
    progress: Progress | None
    unreadable: dict[str, str]


def read_status(lab: Lab) -> StatusRead:
    """Read `lab` part by part, as its administrator: each part the lab's answer lets it read."""
    unreadable: dict[str, str] = {}

    def read(part: str, action: str, reader: Callable[[], T], empty: T) -> T:
        try:
            return reader()
        except LabError:
            raise  # the lab stopped or restarted: the command's own one line
        except Exception as error:  # anything the lab answered: said in one line, the rest still shown
            unreadable[part] = f"could not be read: {why_unreadable(action, error)}"
            return empty

    iam = lab.client("iam")
    status = LabStatus(
        home=lab.home,
        pid=lab.info.pid,
        api_url=lab.info.api_url,
        users=read("users", "iam:ListUsers", lambda: [u["UserName"] for u in iam.list_users()["Users"]], []),
        roles=read("roles", "iam:ListRoles", lambda: [r["RoleName"] for r in iam.list_roles()["Roles"]], []),
        instances=read("instances", "ec2:DescribeInstances", lab.instances, []),
        profile_roles=read("instance profiles", "iam:ListInstanceProfiles", lambda: profile_roles(iam), {}),
        journal=dict(_control(lab.current(), "health").get("journal") or {}),
    )
    progress: Progress | None = None
    if "instances" in unreadable:
        unreadable["progress"] = NO_INSTANCES
    else:
        progress = read("progress", "the notebooks' checks", lab.progress, None)
    return StatusRead(status, progress, unreadable)


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


def status_report(home: Path) -> dict[str, Any]:
    """The lab of `home`: whether it runs, where and since when, what it holds, and, for every
    notebook, whether it is done and what is missing. `{"running": False, "home": …}` when no lab
    runs. A part that could not be read is None, and `unreadable` says why."""
    info = running_info(home)
    if info is None:
        return {"running": False, "home": str(home)}
    lab = Lab(home, info)
    read = read_status(lab)
    status, progress, unreadable = read.status, read.progress, read.unreadable
    since = datetime.fromtimestamp(info.started_at, UTC).astimezone()
    return {
        "running": True,
        "home": str(home),
        "pid": info.pid,
        "api_url": info.api_url,
        "started_at": since.isoformat(timespec="seconds"),
        "users": None if "users" in unreadable else status.users,
        "roles": None if "roles" in unreadable else status.roles,
        "instances": None if "instances" in unreadable else [
            {"id": i.instance_id, "name": i.name, "state": i.state, "private_ip": i.private_ip,
             "role": status.role_of(i)} for i in status.instances
        ],
        "finished": progress.finished if progress else None,
        "furthest": progress.furthest if progress else None,
        "next": progress.next if progress else None,  # the notebook the student is ready for: `reset --to 04`: "04"
        "progress": {
            n: {"done": progress.done(n), "holds": r.ok, "missing": [c.item for c in r.missing]}
            for n, r in progress.reports.items()
        } if progress else None,
        "unreadable": unreadable,
        "fixes_missing": info.fixes_missing,
        "iam_delay": info.iam_delay,
        "sealed": info.sealed,
        "seal_asked": info.seal_asked,
        "seal_note": info.seal_note,
        "restored": info.restoration(),
        "journal": status.journal,
    }  # fmt: skip
