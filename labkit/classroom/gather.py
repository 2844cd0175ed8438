"""The class, as the Hub and each student's server tell it: who is in the group, whether their server
runs, and what their lab's API answers, all students at once with a short timeout each.

    hub = Hub(api_url, token, proxy_url)
    students = await gather(hub, "class", timeout=3.0)   # one StudentLab each, however their server is
    done = await reset(hub, students, to="04")            # each student's POST labkit/api/reset

One stopped, pending or silent server shows as such; none holds the others up.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

RESET_TIMEOUT = 120.0  # seconds: `reset --to 06` replays five notebooks, and may first start the lab
PAGE_SIZE = 200  # the Hub API's largest page of users


@dataclass(frozen=True)
class Hub:
    """Where the Hub's API and its proxy are, and the token the page acts with."""

    api_url: str  # JUPYTERHUB_API_URL, e.g. http://127.0.0.1:8081/hub/api
    token: str  # the page's own token (JUPYTERHUB_API_TOKEN)
    proxy_url: str  # where students' servers are reached, e.g. http://127.0.0.1:8000
    client: AsyncHTTPClient

    @classmethod
    def connect(cls, api_url: str, token: str, proxy_url: str, *, max_clients: int = 200) -> Hub:
        client = AsyncHTTPClient(force_instance=True, max_clients=max_clients)  # every student at once
        return cls(api_url.rstrip("/"), token, proxy_url.rstrip("/"), client)

    def request(self, url: str, *, method: str = "GET", body: Any = None, timeout: float) -> HTTPRequest:
        return HTTPRequest(
            url,
            method=method,
            body=None if body is None else json.dumps(body),
            headers={"Authorization": f"token {self.token}", "Accept": "application/json"},
            connect_timeout=timeout,
            request_timeout=timeout,
            follow_redirects=False,  # a server that redirects to a login page has refused us
        )


@dataclass(frozen=True)
class StudentLab:
    """One student: their server as the Hub says it, and their lab as the server's labkit API says it."""

    name: str
    server: str  # "running", "stopped", "pending", "slow" (no answer in time) or "error"
    last_activity: str | None  # the Hub's, ISO 8601
    report: dict[str, Any] | None = None  # `labkit status --json` of their lab, when their server answered
    note: str = ""  # one line: what went wrong, or what the Hub is doing ("spawn", "stop")
    server_url: str = ""  # /user/NAME/ (the Hub's prefix included), when the server runs


async def members(hub: Hub, group: str, *, timeout: float) -> list[dict[str, Any]]:
    """The users of `group` with their servers, from the Hub API, by name. The page's token may list
    only that group (list:users!group=…), so the Hub answers those users alone; the filter below
    keeps the page right even under a broader token."""
    users: list[dict[str, Any]] = []
    offset = 0
    while True:
        url = f"{hub.api_url}/users?offset={offset}&limit={PAGE_SIZE}"
        request = hub.request(url, timeout=timeout)
        request.headers["Accept"] = "application/jupyterhub-pagination+json"
        answer = json.loads((await hub.client.fetch(request)).body)
        page = answer["items"] if isinstance(answer, dict) else answer
        users += page
        following = answer.get("_pagination", {}).get("next") if isinstance(answer, dict) else None
        if not following or not page:
            break
        offset = following["offset"]
    return sorted((u for u in users if group in u.get("groups", [group])), key=lambda u: str(u["name"]))


def _one_line(error: BaseException) -> str:
    if isinstance(error, HTTPClientError) and error.response is not None:
        try:
            message = json.loads(error.response.body).get("message")
        except (ValueError, AttributeError):
            message = None
        return f"HTTP {error.code}: {message or error.message}"
    return f"{type(error).__name__}: {error}".splitlines()[0]


async def lab_of(hub: Hub, user: dict[str, Any], *, timeout: float) -> StudentLab:
    """One student's row: their default server's state, and, if it runs, what its labkit API answers."""
    name, activity = str(user["name"]), user.get("last_activity")
    server = (user.get("servers") or {}).get("")
    if not server:
        return StudentLab(name, "stopped", activity)
    activity = server.get("last_activity") or activity
    if server.get("pending") or not server.get("ready"):
        return StudentLab(name, "pending", activity, note=str(server.get("pending") or "starting"))
    url = str(server["url"])
    try:
        response: HTTPResponse = await hub.client.fetch(
            hub.request(f"{hub.proxy_url}{url}labkit/api/status", timeout=timeout)
        )
        report = json.loads(response.body)
    except HTTPClientError as error:
        if error.code == 599:  # tornado's own code: no answer (timeout, connection refused)
            said = f"no answer within {timeout:g} s" if "Timeout" in str(error) else _one_line(error)
            return StudentLab(name, "slow" if "Timeout" in str(error) else "error", activity, note=said,
                              server_url=url)  # fmt: skip
        return StudentLab(name, "error", activity, note=_one_line(error), server_url=url)
    except (OSError, ValueError) as error:
        return StudentLab(name, "error", activity, note=_one_line(error), server_url=url)
    return StudentLab(name, "running", activity, report=report, server_url=url)


async def gather(hub: Hub, group: str, *, timeout: float) -> list[StudentLab]:
    """Every student of `group`, their servers asked all at once, each within `timeout` seconds."""
    users = await members(hub, group, timeout=max(timeout, 10.0))
    return list(await asyncio.gather(*(lab_of(hub, user, timeout=timeout) for user in users)))


@dataclass(frozen=True)
class ResetDone:
    """What one student's reset came to: their server's own words, or why it did not happen."""

    name: str
    ok: bool
    said: str


async def reset_one(hub: Hub, name: str, server_url: str, to: str | None) -> ResetDone:
    if not server_url:
        return ResetDone(name, False, "their server is not running: nothing was reset")
    try:
        response = await hub.client.fetch(
            hub.request(f"{hub.proxy_url}{server_url}labkit/api/reset", method="POST",
                        body={} if to is None else {"to": to}, timeout=RESET_TIMEOUT)
        )  # fmt: skip
        return ResetDone(name, True, str(json.loads(response.body)["said"]))
    except (HTTPClientError, OSError, ValueError, KeyError) as error:
        return ResetDone(name, False, _one_line(error))


async def reset(hub: Hub, students: list[StudentLab], *, to: str | None) -> list[ResetDone]:
    """POST each student's labkit/api/reset at once: `to` a checkpoint ("04"), or None for a fresh lab."""
    return list(await asyncio.gather(*(reset_one(hub, s.name, s.server_url, to) for s in students)))
