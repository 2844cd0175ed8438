"""What the lab reads of a WSGI request, in one place: its headers, its body (read once and left
readable), the credential scope its signature names, and the reason phrase of a status."""

from __future__ import annotations

import io
from http import HTTPStatus
from typing import Any


def headers_of(environ: dict[str, Any]) -> dict[str, str]:
    """The request's HTTP headers, as a client sent them (`X-Amz-Date`, `Authorization`, …)."""
    return {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}


def body_of(environ: dict[str, Any]) -> bytes:
    """The request's body, read once: `wsgi.input` is left a BytesIO that holds it, for the next reader."""
    stream = environ.get("wsgi.input")
    if isinstance(stream, io.BytesIO):
        return stream.getvalue()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = stream.read(length) if stream is not None and length else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def credential_scope(environ: dict[str, Any]) -> list[str]:
    """The signature's credential scope: key id, date, region, service, `aws4_request`."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    return authorization.partition("Credential=")[2].partition(",")[0].split("/")


def reason(status: int) -> str:
    """HTTP's reason phrase for `status` ("Forbidden"), or "Error" for a status HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
