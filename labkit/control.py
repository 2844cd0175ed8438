"""Asking the lab process itself (not its AWS API): `GET /_labkit/health`, `POST /_labkit/reset`, …,
on loopback, with the lab's secret, through no proxy."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from labkit.errors import LabError
from labkit.statedir import LabInfo

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the lab is on loopback: never a proxy


def call(info: LabInfo, action: str, *, method: str = "GET", timeout: float = 30.0) -> dict[str, Any]:
    """The lab's answer to `action`, as it comes (HTTP and socket errors raised as they are)."""
    request = urllib.request.Request(
        f"{info.api_url}/_labkit/{action}",
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Authorization": f"Bearer {info.secret}"},
    )
    with NO_PROXY.open(request, timeout=timeout) as response:
        return dict(json.load(response))


def control(info: LabInfo, action: str, *, method: str = "GET", timeout: float = 30.0) -> dict[str, Any]:
    """Ask the lab process to do `action`; a failure is a LabError that says where to look."""
    try:
        return call(info, action, method=method, timeout=timeout)
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


def answers(info: LabInfo) -> bool:
    """Whether the process `info` names answers for it now."""
    try:
        return call(info, "health", timeout=2.0).get("pid") == info.pid
    except (OSError, ValueError):
        return False
