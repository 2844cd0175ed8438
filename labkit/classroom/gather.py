"""The class, as the Hub and each student's server tell it: who is in the group, whether their server
runs, and what their lab's API answers, all students at once with a short timeout each.

    hub = Hub.connect(api_url, token, proxy_url)
    students = await gather(hub, "class", timeout=3.0)   # one StudentLab each, however their server is
    done = await reset(hub, students, to="04")            # each student's POST labkit/api/reset

The page's own token goes to the Hub's API alone, never to a student's server: a student's server runs
the student's code, and would keep it. For each request to a student's server the page has the Hub make
a token OWNED BY THAT STUDENT, for that student's server only (`access:servers!server=NAME/`), living
TOKEN_LIFETIME seconds, and deletes it once answered. Kept by the student, it is worth what the student
already has. What the server answers is read with suspicion (reports.py).

One stopped, pending, silent or odd server shows as such; none holds the others up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from labkit.classroom.reports import MAX_ANSWER, MAX_TEXT, message_from, said_from, status_from
from labkit.errors import ClassNotListed

RESET_TIMEOUT = 120.0  # seconds: `reset --to 06` replays five notebooks, and may first start the lab
HUB_TIMEOUT = 10.0  # seconds the Hub has for each of its answers (the class, a token)
TOKEN_LIFETIME = 60  # seconds a student's token lives at most: it need only carry one request in
PAGE_SIZE = 200  # the Hub API's largest page of users


@dataclass(frozen=True)
class Hub:
    """Where the Hub's API and its proxy are, and the token the page acts with on the Hub's API."""

    api_url: str  # JUPYTERHUB_API_URL, e.g. http://127.0.0.1:8081/hub/api
    token: str = field(repr=False)  # the page's own token (JUPYTERHUB_API_TOKEN): sent to api_url only
    proxy_url: str  # where students' servers are reached, e.g. http://127.0.0.1:8000
    client: AsyncHTTPClient  # to the Hub
    servers: AsyncHTTPClient  # to students' servers: no answer longer than MAX_ANSWER

    @classmethod
    def connect(cls, api_url: str, token: str, proxy_url: str, *, max_clients: int = 200) -> Hub:
        client = AsyncHTTPClient(force_instance=True, max_clients=max_clients)
        servers = AsyncHTTPClient(force_instance=True, max_clients=max_clients, max_body_size=MAX_ANSWER)
        return cls(api_url.rstrip("/"), token, proxy_url.rstrip("/"), client, servers)

    def api(self, path: str, *, method: str = "GET", body: Any = None) -> HTTPRequest:
        """A request to the Hub's API (`/users/ana`), with the page's own token."""
        return _request(f"{self.api_url}{path}", self.token, method=method, body=body, timeout=HUB_TIMEOUT)

    def server(self, path: str, token: str, *, method: str = "GET", body: Any = None, timeout: float) -> HTTPRequest:
        """A request to a student's server (`/user/ana/labkit/api/status`), with that student's token."""
        return _request(f"{self.proxy_url}{path}", token, method=method, body=body, timeout=timeout)


def _request(url: str, token: str, *, method: str, body: Any, timeout: float) -> HTTPRequest:
    return HTTPRequest(
        url,
        method=method,
        body=None if body is None else json.dumps(body),
        headers={"Authorization": f"token {token}", "Accept": "application/json"},
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


async def members(hub: Hub, group: str) -> list[dict[str, Any]]:
    """The users of `group` with their servers, from the Hub API, by name. The page's token lists only
    that group (list:users!group=…), and reads their groups (read:users:groups!group=…): a user whose
    groups the Hub does not show is no member, so that a broader token never adds anyone to the class."""
    users: list[dict[str, Any]] = []
    offset = 0
    while True:
        request = hub.api(f"/users?offset={offset}&limit={PAGE_SIZE}")
        request.headers["Accept"] = "application/jupyterhub-pagination+json"
        try:
            answer = json.loads((await hub.client.fetch(request)).body)
        except (HTTPClientError, OSError, ValueError) as error:
            raise ClassNotListed(
                f"The hub did not list the users of {group} to the class page ({_one_line(error)}). Check that "
                "the hub runs and that the page's role is labkit_class.py's, then refresh."
            ) from None
        page = answer["items"] if isinstance(answer, dict) else answer
        users += page
        following = answer.get("_pagination", {}).get("next") if isinstance(answer, dict) else None
        if not following or not page:
            break
        offset = following["offset"]
    if users and not any("groups" in u for u in users):
        raise ClassNotListed(
            f"The hub lists users to the class page without their groups, so it cannot tell who is in {group}: "
            f"give the page's role read:users:groups!group={group} (deploy/jupyterhub/labkit_class.py), "
            "then restart the hub."
        )
    return sorted((u for u in users if group in (u.get("groups") or [])), key=lambda u: str(u["name"]))


def _one_line(error: BaseException) -> str:
    if isinstance(error, HTTPClientError) and error.response is not None:
        line = f"HTTP {error.code}: {message_from(error.response.body) or error.message}"
    elif isinstance(error, HTTPClientError) and error.code == 599 and "Connection closed" in str(error):
        line = f"its answer broke off, or was longer than the {MAX_ANSWER >> 20} MB the page reads"
    else:
        line = f"{type(error).__name__}: {error}"
    line = (line.splitlines() or [""])[0]
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"


class NoToken(Exception):
    """The Hub made no token for a student's server: the student's row says why."""


@asynccontextmanager
async def student_token(hub: Hub, name: str) -> AsyncIterator[str]:
    """A token owned by `name`, for their default server alone, deleted when the block ends (and dead
    after TOKEN_LIFETIME seconds in any case). Needs `tokens` on that user (the page's role)."""
    tokens = f"/users/{quote(name, safe='')}/tokens"
    asked = {"scopes": [f"access:servers!server={name}/"], "expires_in": TOKEN_LIFETIME,
             "note": "class page: one request to this user's server"}  # fmt: skip
    try:
        made = json.loads((await hub.client.fetch(hub.api(tokens, method="POST", body=asked))).body)
        token, token_id = str(made["token"]), str(made["id"])
    except (HTTPClientError, OSError, ValueError, KeyError, TypeError) as error:
        why = ("; a hub before JupyterHub 5.5.3 (or 6.1.0) refuses the page these, as its log says"
               if isinstance(error, HTTPClientError) and error.code == 403 else "")  # fmt: skip
        raise NoToken(f"the hub made no token for their server ({_one_line(error)}){why}") from None
    try:
        yield token
    finally:
        try:
            await hub.client.fetch(hub.api(f"{tokens}/{quote(token_id, safe='')}", method="DELETE"))
        except (HTTPClientError, OSError):
            pass  # it dies within TOKEN_LIFETIME seconds anyway


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
        async with student_token(hub, name) as token:
            response = await hub.servers.fetch(hub.server(f"{url}labkit/api/status", token, timeout=timeout))
        report = status_from(response.body)
    except NoToken as error:
        return StudentLab(name, "error", activity, note=str(error), server_url=url)
    except HTTPClientError as error:
        if error.code == 599 and "Timeout" in str(error):  # tornado's own code: no answer in time
            return StudentLab(name, "slow", activity, note=f"no answer within {timeout:g} s", server_url=url)
        return StudentLab(name, "error", activity, note=_one_line(error), server_url=url)
    except OSError as error:
        return StudentLab(name, "error", activity, note=_one_line(error), server_url=url)
    except ValueError as error:
        return StudentLab(name, "error", activity, note=f"not labkit's status report: {error}", server_url=url)
    return StudentLab(name, "running", activity, report=report, server_url=url)


async def gather(hub: Hub, group: str, *, timeout: float) -> list[StudentLab]:
    """Every student of `group`, their servers asked all at once, each within `timeout` seconds."""
    users = await members(hub, group)
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
        async with student_token(hub, name) as token:
            response = await hub.servers.fetch(
                hub.server(f"{server_url}labkit/api/reset", token, method="POST",
                           body={} if to is None else {"to": to}, timeout=RESET_TIMEOUT)
            )  # fmt: skip
        return ResetDone(name, True, said_from(response.body))
    except NoToken as error:
        return ResetDone(name, False, str(error))
    except (HTTPClientError, OSError) as error:
        return ResetDone(name, False, _one_line(error))
    except ValueError as error:
        return ResetDone(name, False, f"their server answered, but not as labkit does: {error}")


async def reset(hub: Hub, students: list[StudentLab], *, to: str | None) -> list[ResetDone]:
    """POST each student's labkit/api/reset at once: `to` a checkpoint ("04"), or None for a fresh lab."""
    return list(await asyncio.gather(*(reset_one(hub, s.name, s.server_url, to) for s in students)))
