"""What `labkit status` says of a lab. `read_status` reads it part by part, `status_report` makes it
one dict: `labkit status --json` prints it, and each student's Jupyter server answers it to the
class page (labkit/classroom/server_extension.py).

    from labkit.report import status_report
    status_report(lab_home())["furthest"]       # "04", or None; {"running": False, ...} with no lab

Whatever the lab answers, status shows what it could read: a part it could not (an answer botocore
cannot parse, an error where AWS gives none) is one line in `unreadable`, saying what and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.challenge import last_grade
from labkit.checks import Progress
from labkit.connection import LabStatus, why_unreadable
from labkit.errors import LabError
from labkit.lab import running_info
from labkit.lesson import Lab

CHECKS = "the notebooks' checks"
NO_INSTANCES = "not known: the notebooks' checks read the instances, which could not be read"


@dataclass(frozen=True)
class StatusRead:
    """What status could read of a running lab: what it holds (labkit/connection.py `status`), and
    the notebooks' progress, None when it could not be read (`unreadable["progress"]` says why)."""

    status: LabStatus
    progress: Progress | None
    unreadable: dict[str, str]


def read_status(lab: Lab) -> StatusRead:
    """Read `lab` part by part, as its administrator: each part the lab's answer lets it read."""
    status = lab.status()
    unreadable = dict(status.unreadable)
    progress: Progress | None = None
    if "instances" in unreadable:
        unreadable["progress"] = NO_INSTANCES
    else:
        try:
            progress = lab.progress()
        except LabError:
            raise
        except Exception as error:  # anything the lab answered: said in one line, the rest still shown
            unreadable["progress"] = f"could not be read: {why_unreadable(CHECKS, error)}"
    return StatusRead(status, progress, unreadable)


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
        "challenge": last_grade(home),  # notebook 07 as last graded, and its hints (labkit/challenge/record.py)
    }  # fmt: skip
