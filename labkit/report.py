"""What `labkit status --json` says of a lab, as one dict: the command prints it, and each student's
Jupyter server answers it to the class page (labkit/classroom/server_extension.py).

    from labkit.report import status_report
    status_report(lab_home())["furthest"]       # "04", or None; {"running": False, ...} with no lab
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.lab import running_info
from labkit.lesson import Lab


def status_report(home: Path) -> dict[str, Any]:
    """The lab of `home`: whether it runs, where and since when, what it holds, and, for every
    notebook, whether it is done and what is missing. `{"running": False, "home": …}` when no lab runs."""
    info = running_info(home)
    if info is None:
        return {"running": False, "home": str(home)}
    lab = Lab(home, info)
    status = lab.status()
    progress = lab.progress()
    since = datetime.fromtimestamp(info.started_at, UTC).astimezone()
    return {
        "running": True,
        "home": str(home),
        "pid": info.pid,
        "api_url": info.api_url,
        "started_at": since.isoformat(timespec="seconds"),
        "users": status.users,
        "roles": status.roles,
        "instances": [
            {"id": i.instance_id, "name": i.name, "state": i.state, "private_ip": i.private_ip,
             "role": status.role_of(i)} for i in status.instances
        ],
        "finished": progress.finished,
        "furthest": progress.furthest,
        "next": progress.next,  # the notebook the student is ready for: `reset --to 04` makes it "04"
        "progress": {
            n: {"done": progress.done(n), "holds": r.ok, "missing": [c.item for c in r.missing]}
            for n, r in progress.reports.items()
        },
        "fixes_missing": info.fixes_missing,
        "iam_delay": info.iam_delay,
        "sealed": info.sealed,
        "seal_asked": info.seal_asked,
        "seal_note": info.seal_note,
        "restored": info.restoration(),
        "journal": status.journal,
    }  # fmt: skip
