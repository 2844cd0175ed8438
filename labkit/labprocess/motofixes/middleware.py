"""The second seam: a WSGI middleware between the lab and moto's server that rewrites moto's answer
from the request and the answer.

A fix that changes what moto answers registers a rewrite (`add`). The middleware passes every
request to moto unchanged. When moto does not succeed (a 4xx refusal, a 5xx answer, or an exception
instead of an answer: moto's app lets NotImplementedError out for an action it does not implement,
and the server then answers with an HTML page and status 500), it offers the request and moto's
answer to each rewrite in turn, and the first that returns a new answer replaces moto's (an
exception no rewrite answers goes on as it came). A rewrite that must also see moto's successes to
some actions names them (`watch`: `iam:GetUser` answers a role's session with a user moto makes
up); moto's answers to those actions reach it whatever their status. Every other success streams
through untouched, so the cost of a request moto accepts is one status check, and, while some
rewrite watches actions, a look at the request's Action.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from labkit.labprocess.wsgi import body_of, credential_scope, headers_of, reason

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Request:
    """What a rewrite may read of the request moto answered."""

    service: str  # from the signature's credential scope: iam, sts, ec2, …
    action: str  # the query protocol's Action
    params: dict[str, list[str]]  # the form body, each parameter's values in a list
    headers: dict[str, str]  # as moto sees them: `X-Amz-Security-Token`, …
    access_key_id: str

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # moto's XML; empty when moto raised instead of answering
    raised: str = ""  # what moto raised instead of answering, `NotImplementedError: …` (then status is 500)


Rewrite = Callable[[Request, Answer], Answer | None]

_rewrites: list[tuple[Rewrite, frozenset[str]]] = []


def add(rewrite: Rewrite, *, watch: Iterable[str] = ()) -> None:
    """Offer every answer that is not a success to `rewrite` (in the order they were added), and
    also moto's successes to the actions in `watch` ("iam:GetUser": the service, then the action)."""
    if all(rewrite is not added for added, _ in _rewrites):
        _rewrites.append((rewrite, frozenset(watch)))


def wrap(app: Any) -> Any:
    """`app` behind the middleware, or `app` itself when no rewrite was added."""
    return RefusalRewriter(app, tuple(_rewrites)) if _rewrites else app


source_ip: contextvars.ContextVar[str] = contextvars.ContextVar("source_ip", default="127.0.0.1")
ACTION = re.compile(rb"(?:^|&)Action=([A-Za-z0-9]+)")


class RefusalRewriter:
    """WSGI: moto, with the answers it does not succeed with (and those to watched actions)
    offered to the rewrites. Each rewrite is a function, or (function, watched actions)."""

    def __init__(self, app: Any, rewrites: tuple[Rewrite | tuple[Rewrite, frozenset[str]], ...]) -> None:
        self.app = app
        self.rewrites = [entry if isinstance(entry, tuple) else (entry, frozenset()) for entry in rewrites]
        self.watched = frozenset().union(*(watched for _, watched in self.rewrites))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = body_of(environ)  # left readable for moto (LabApp hands over a BytesIO already)
        source_ip.set(environ.get("REMOTE_ADDR") or "127.0.0.1")  # aws:SourceIp, for decisions.py
        answered: list[tuple[str, list[tuple[str, str]]]] = []

        def hold(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            answered.append((status, headers))
            return lambda data: None  # moto's app never writes through the legacy write()

        try:
            out = self.app(environ, hold)
        except Exception as error:  # moto raised instead of answering
            rewritten = self._rewritten(_request(environ, body), Answer(500, "", f"{type(error).__name__}: {error}"))
            if rewritten is None:
                raise
            return _send(rewritten, [], start_response)
        status, headers = answered[0]
        succeeded = status[:1] in "123"
        if succeeded and not (self.watched and self._watched(environ, body)):
            start_response(status, headers)
            return out
        moto_said = b"".join(out)
        if hasattr(out, "close"):
            out.close()
        answer = Answer(int(status.split()[0]), moto_said.decode("utf-8", "replace"))
        rewritten = self._rewritten(_request(environ, body), answer, succeeded=succeeded)
        if rewritten is not None:
            return _send(rewritten, headers, start_response)
        start_response(status, headers)
        return [moto_said]

    def _rewritten(self, request: Request | None, answer: Answer, *, succeeded: bool = False) -> Answer | None:
        """The first rewrite's answer to `request`, or None when none rewrites moto's."""
        for rewrite, watched in self.rewrites:
            if request is None:
                return None
            if succeeded and f"{request.service}:{request.action}" not in watched:
                continue
            rewritten = rewrite(request, answer)
            if rewritten is not None:
                return rewritten
        return None

    def _watched(self, environ: dict[str, Any], body: bytes) -> bool:
        """Whether the request asks for an action some rewrite watches (a quick look, before parsing)."""
        found = ACTION.search(body)
        service = credential_scope(environ)
        return found is not None and len(service) >= 4 and f"{service[3]}:{found[1].decode()}" in self.watched


def _send(answer: Answer, headers: list[tuple[str, str]], start_response: StartResponse) -> list[bytes]:
    """Send a rewritten answer, with moto's headers but its own length and type."""
    data = answer.body.encode()
    kept = [(name, value) for name, value in headers if name.lower() not in ("content-length", "content-type")]
    start_response(f"{answer.status} {reason(answer.status)}",
                   [*kept, ("Content-Type", "text/xml"), ("Content-Length", str(len(data)))])  # fmt: skip
    return [data]


def _request(environ: dict[str, Any], body: bytes) -> Request | None:
    """The request, when it is a signed query-protocol request (all the lesson makes)."""
    scope = credential_scope(environ)
    if len(scope) < 4 or "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return None
    params = parse_qs(body.decode("utf-8", "replace"))
    headers = headers_of(environ)
    action = (params.get("Action") or [""])[0]
    return Request(service=scope[3], action=action, params=params, headers=headers, access_key_id=scope[0])
