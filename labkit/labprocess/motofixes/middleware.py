"""The second seam: a WSGI middleware between the lab and moto's server that rewrites a refusal
from the request and moto's answer.

A fix that changes how moto words a refusal registers a rewrite (`add`). The middleware passes
every request to moto unchanged; when moto refuses one (a 4xx answer), it offers the request and
the answer to each rewrite in turn, and the first that returns a new answer replaces moto's.
Answers that are not refusals stream through untouched, so the cost of a request moto accepts is
one status check.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Request:
    """What a rewrite may read of the request moto refused."""

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
    body: str  # moto's XML


Rewrite = Callable[[Request, Answer], Answer | None]

_rewrites: list[Rewrite] = []


def add(rewrite: Rewrite) -> None:
    """Offer every refusal to `rewrite` too (in the order they were added)."""
    if rewrite not in _rewrites:
        _rewrites.append(rewrite)


def wrap(app: Any) -> Any:
    """`app` behind the middleware, or `app` itself when no rewrite was added."""
    return RefusalRewriter(app, tuple(_rewrites)) if _rewrites else app


REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}


class RefusalRewriter:
    """WSGI: moto, with its refusals offered to the rewrites."""

    def __init__(self, app: Any, rewrites: tuple[Rewrite, ...]) -> None:
        self.app = app
        self.rewrites = rewrites

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = _body(environ)
        answered: list[tuple[str, list[tuple[str, str]]]] = []

        def hold(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            answered.append((status, headers))
            return lambda data: None  # moto's app never writes through the legacy write()

        out = self.app(environ, hold)
        status, headers = answered[0]
        if not status.startswith("4"):
            start_response(status, headers)
            return out
        moto_said = b"".join(out)
        if hasattr(out, "close"):
            out.close()
        answer = Answer(int(status.split()[0]), moto_said.decode("utf-8", "replace"))
        request = _request(environ, body)
        for rewrite in self.rewrites:
            if request is None:
                break
            rewritten = rewrite(request, answer)
            if rewritten is not None:
                data = rewritten.body.encode()
                kept = [(name, value) for name, value in headers if name.lower() != "content-length"]
                start_response(f"{rewritten.status} {REASONS.get(rewritten.status, 'Error')}",
                               [*kept, ("Content-Length", str(len(data)))])  # fmt: skip
                return [data]
        start_response(status, headers)
        return [moto_said]


def _body(environ: dict[str, Any]) -> bytes:
    """The request's body, left readable for moto (LabApp hands over a BytesIO already)."""
    stream = environ.get("wsgi.input")
    if isinstance(stream, io.BytesIO):
        return stream.getvalue()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = stream.read(length) if stream is not None and length else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def _request(environ: dict[str, Any], body: bytes) -> Request | None:
    """The refused request, when it is a signed query-protocol request (all the lesson makes)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    scope = authorization.partition("Credential=")[2].partition(",")[0].split("/")
    if len(scope) < 4 or "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return None
    params = parse_qs(body.decode("utf-8", "replace"))
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}
    action = (params.get("Action") or [""])[0]
    return Request(service=scope[3], action=action, params=params, headers=headers, access_key_id=scope[0])
