"""What the lab accepts on its two ports, decided from a request's line and headers alone.

Any user of the machine can connect to the lab's loopback ports. So before moto, the lab's control
endpoints or the metadata service see a request, and before a byte of its body is read, the lab
refuses, as a web server would:

    400 Bad Request        a Content-Length that is not one number of bytes, a Host (or a target's
                           authority) that is not host[:port], credentials that are not ASCII
    411 Length Required    a body of unknown length (Transfer-Encoding): only reading it would tell
                           (save an S3 upload botocore sends chunked, read here up to the lab's limit:
                           labprocess/chunked.py)
    413 Content Too Large  a body bigger than MAX_BODY
    400 EntityTooLarge     an S3 upload bigger than the lab keeps (labprocess/storage_limits.py)

and, on the API port, what is not signed, as AWS answers it (the /_labkit/ control endpoints carry
the lab's own secret instead; a request to an S3 endpoint's name may be unsigned, as S3 decides
who the anonymous principal may be):

    403 MissingAuthenticationToken   no Authorization header
    400 IncompleteSignature          an Authorization header that is not a SigV4 signature
    501 Not Implemented              a presigned request (X-Amz-Credential in the query)

A connection that sends nothing for REQUEST_TIMEOUT seconds (before its request line, in the middle
of its headers or of its body) is closed. What the ports write to lab.log goes through one PortLog:
a refusal is one line, a flood of them a line a minute, never a traceback.
"""

from __future__ import annotations

import io
import re
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from labkit.labprocess import storage_limits
from labkit.labprocess.chunked import ChunkedBodyRefused, read_chunked

# Seconds a connection may stay silent: waiting for its request line, between two pieces of its
# headers or body, and for the client to take the answer. Every client of the lab sends a request
# at once, in one go, on loopback.
REQUEST_TIMEOUT = 5.0
# The largest body the lab reads. The lesson's biggest requests are a role's trust policy or a
# policy document (IAM caps them at 2,048 and 6,144 characters) and RunInstances (user data at most
# 16 KB): a few KB, form-encoded. 1 MiB leaves room for any request a student could make by hand.
# (What AWS answers a bigger body, the references searched did not say: 413 is HTTP's answer.)
MAX_BODY = 1 << 20
# Seconds a refused client's unsent body is still read (and dropped) after the answer, so that
# closing the connection does not reset it before the client has read that answer.
LINGER = 2.0

_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::([0-9]{1,5}))?", re.ASCII)
_LENGTH = re.compile(r"[0-9]{1,19}", re.ASCII)
# What botocore (boto3, the aws CLI) sends: `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/
# aws4_request, SignedHeaders=a;b, Signature=<64 hex>`. Only its form is checked here; moto checks
# the key and the signature.
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[A-Za-z0-9]+/[0-9]{8}/[a-z0-9-]+/[a-z0-9-]+/aws4_request,"
    r" ?SignedHeaders=[a-z0-9._;-]+, ?Signature=[0-9a-f]{64}",
    re.ASCII,
)


@dataclass(frozen=True)
class Refusal:
    """The answer to a request the lab does not take; `why` is also its line in lab.log."""

    status: int
    why: str
    code: str = ""  # AWS's error code, when the answer is AWS's
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"

    @property
    def answer(self) -> bytes:
        return self.body or f"labkit: {self.why}\n".encode()


def _shown(value: str) -> str:
    """A header value as lab.log shows it: quoted, escaped, at most 40 characters."""
    return repr(value[:40] + ("…" if len(value) > 40 else ""))


def _aws_error(status: int, code: str, message: str, why: str) -> Refusal:
    """A refusal worded as IAM and STS word theirs (the query protocol's ErrorResponse)."""
    body = (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">\n'
        f"  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n"
        f"  <RequestId>{uuid.uuid4()}</RequestId>\n</ErrorResponse>\n"
    )
    return Refusal(status, why, code, body.encode(), "text/xml")


def target_refusal(method: str, target: str, version: str, headers: Message) -> Refusal | None:
    """400 for a request whose host is not host[:port]: its Host header, or the authority of an
    absolute target (a proxy request), which takes the place of Host (RFC 9112, section 3.2)."""
    hosts = headers.get_all("Host") or []
    if len(hosts) > 1:
        return Refusal(400, "a request with more than one Host header")
    parts = urlsplit(target)
    if method == "CONNECT":
        authority = target
    elif parts.scheme and parts.netloc:
        authority = parts.netloc
    elif hosts:
        authority = hosts[0].strip()
    elif version >= "HTTP/1.1":
        return Refusal(400, "an HTTP/1.1 request without a Host header")
    else:
        return None
    match = _AUTHORITY.fullmatch(authority)
    if match is None or int(match[1] or 0) > 65535:
        return Refusal(400, f"a request for the host {_shown(authority)}, which is not host[:port]")
    return None


def body_refusal(headers: Message) -> Refusal | None:
    """400, 411 or 413 for a body the lab will not read; credentials that are not ASCII are 400; an S3
    upload bigger than the lab keeps is S3's 400 EntityTooLarge."""
    for name in ("Authorization", "Proxy-Authorization"):
        values = headers.get_all(name) or []
        if len(values) > 1 or not all(value.isascii() for value in values):
            return Refusal(400, f"a request whose {name} header is not one ASCII value")
    if headers.get_all("Transfer-Encoding") and not chunked_upload(headers):
        return Refusal(411, "a body sent with Transfer-Encoding; the lab reads only a body of known Content-Length")
    lengths = headers.get_all("Content-Length") or []
    if len(lengths) > 1:
        return Refusal(400, "a request with more than one Content-Length header")
    if lengths and not _LENGTH.fullmatch(lengths[0].strip()):
        return Refusal(400, f"a Content-Length of {_shown(lengths[0])}, which is not a number of bytes")
    if storage_limits.for_s3(headers):
        too_large = storage_limits.request_refusal(headers)
        if too_large is not None:
            return Refusal(too_large.status, too_large.why, too_large.code, too_large.body, "application/xml")
        return None
    if lengths and int(lengths[0]) > MAX_BODY:
        return Refusal(413, f"a body of {int(lengths[0])} bytes; the lab reads at most {MAX_BODY}")
    return None


def chunked_upload(headers: Message) -> bool:
    """An S3 upload botocore sends over HTTPS: `Transfer-Encoding: chunked` alone, no Content-Length,
    and the object's size in X-Amz-Decoded-Content-Length (labprocess/chunked.py)."""
    encodings = headers.get_all("Transfer-Encoding") or []
    decoded = (headers.get("X-Amz-Decoded-Content-Length") or "").strip()
    return (
        [value.strip().lower() for value in encodings] == ["chunked"]
        and not headers.get_all("Content-Length")
        and _LENGTH.fullmatch(decoded) is not None
        and storage_limits.for_s3(headers)
    )


def body_length(headers: Message) -> int:
    """The body's length, for a request body_refusal let through."""
    return int(headers.get("Content-Length") or 0)


def signature_refusal(path: str, query: str, headers: Message, *, unsigned: tuple[str, ...]) -> Refusal | None:
    """What AWS answers a request that is not signed with SigV4; None for a signed one, and for the
    lab's own paths `unsigned` (its control endpoints, which need the lab's secret instead).

    The lab's one endpoint serves IAM, STS and EC2 and cannot tell, before reading the body, which
    service an unsigned request is for. It answers as IAM and STS do (403 MissingAuthenticationToken,
    `Request is missing Authentication Token`); EC2 says 400 MissingParameter (`The request must
    contain the parameter AWSAccessKeyId`) instead."""
    if path.startswith(unsigned):
        return None
    authorization = headers.get("Authorization")
    presigned = {"X-Amz-Credential", "X-Amz-Signature"} & parse_qs(query).keys()
    if (
        authorization is None
        and not presigned
        and storage_limits.S3_HOST.fullmatch((headers.get("Host") or "").strip())
    ):
        return None  # S3 decides what the anonymous principal may do (motofixes/buckets.py)
    if authorization is None:
        if presigned:
            why = "a presigned request (X-Amz-Credential in the query): moto reads only the Authorization header"
            return Refusal(501, f"{why}, so the lab does not emulate it")
        why = "a request that is not signed (no Authorization header)"
        return _aws_error(403, "MissingAuthenticationToken", "Request is missing Authentication Token", why)
    if not _SIGV4.fullmatch(authorization.strip()):
        why = f"a request whose Authorization header is not a SigV4 signature: {_shown(authorization)}"
        return _aws_error(400, "IncompleteSignature", "The request signature does not conform to AWS standards.", why)
    return None


def api_refusal(
    method: str, target: str, path: str, version: str, headers: Message, *, unsigned: tuple[str, ...]
) -> Refusal | None:
    """The refusal of a request to the API port, or None when moto (or the control endpoints) may
    read it. `path` is the request's path as the WSGI app will see it (PATH_INFO)."""
    return (
        target_refusal(method, target, version, headers)
        or body_refusal(headers)
        or signature_refusal(path, urlsplit(target).query, headers, unsigned=unsigned)
    )


def proxy_refusal(method: str, target: str, version: str, headers: Message) -> Refusal | None:
    """The refusal of a request to the metadata service's proxy port, or None."""
    return target_refusal(method, target, version, headers) or body_refusal(headers)


def close_after_refusal(handler: BaseHTTPRequestHandler) -> None:
    """End a connection whose request was refused unread: no more requests on it, our side closed,
    then what the client still sends (its body) read 64 KB at a time and dropped, for at most
    LINGER seconds, so that the client reads the answer rather than a reset connection."""
    handler.close_connection = True
    connection: socket.socket = handler.connection
    try:
        handler.wfile.flush()
        connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER
        while (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            if not connection.recv(65536):
                break
    except OSError:  # the client left, or went silent: either way, done
        pass


def _print(text: str) -> None:
    print(text, flush=True)


class PortLog:
    """What the ports write to lab.log, bounded: the first `burst` lines as they come, then at most
    one line per `interval` seconds, which says how many it left out. A traceback (a request that
    made the lab fail) is written in full for the first `tracebacks` of the process, then as its
    last line. A flood of refusals costs lab.log a few lines a minute."""

    def __init__(
        self,
        *,
        write: Callable[[str], None] = _print,
        clock: Callable[[], float] = time.monotonic,
        burst: int = 5,
        interval: float = 60.0,
        tracebacks: int = 3,
    ) -> None:
        self._emit, self._clock = write, clock
        self._burst, self._interval, self._tracebacks = burst, interval, tracebacks
        self._tokens, self._last, self._left_out = float(burst), clock(), 0
        self._lock = threading.Lock()

    def line(self, text: str) -> bool:
        """Write `text` as one line of at most 300 characters, unless over the rate; whether it was."""
        return self._write(" ".join(text.split())[:300])

    def refused(self, port: str, refusal: Refusal) -> bool:
        code = f" {refusal.code}" if refusal.code else ""
        return self.line(f"labkit: the {port} refused ({refusal.status}{code}) {refusal.why}")

    def failed(self, text: str) -> bool:
        """A request the lab failed to answer: werkzeug's message, with its traceback."""
        with self._lock:
            full, self._tracebacks = self._tracebacks > 0, self._tracebacks - 1
        last = (text.strip().splitlines() or [""])[-1]
        return self._write(text.rstrip()) if full else self.line(f"labkit: a request failed: {last}")

    def _write(self, text: str) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self._burst), self._tokens + (now - self._last) / self._interval)
            self._last = now
            if self._tokens < 1:
                self._left_out += 1
                return False
            self._tokens -= 1
            if self._left_out:
                text += f" ({self._left_out} more left out of lab.log since the previous line)"
                self._left_out = 0
            self._emit(text)
            return True


LOG = PortLog()  # one for both ports, for the life of the lab process


class _Body(io.BufferedIOBase):
    """A request's stream that ends with its body (Content-Length bytes), which is all the app reads.
    werkzeug, once it has answered, reads on whatever else the client sends, 10 MB at a time (up to
    10 GB); from this stream it reads nothing."""

    def __init__(self, stream: io.BufferedIOBase, length: int) -> None:
        super().__init__()
        self._stream, self._left = stream, length

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        return self._take(self._stream.read, size)

    def readline(self, size: int | None = -1, /) -> bytes:
        return self._take(self._stream.readline, size)

    def _take(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = read(size) if size else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._stream.close()
        super().close()


class ApiRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler with the gate in front of the WSGI app, and a timeout on every
    read and write of the connection."""

    timeout = REQUEST_TIMEOUT
    server: ApiServer

    def handle_expect_100(self) -> bool:
        return True  # werkzeug's run_wsgi sends `100 Continue`, once the gate has let the request in

    def run_wsgi(self) -> None:
        path, unsigned = self.make_environ()["PATH_INFO"], self.server.unsigned  # the path as the app sees it
        refusal = api_refusal(self.command, self.path, path, self.request_version, self.headers, unsigned=unsigned)
        if refusal is None and chunked_upload(self.headers):
            refusal = self._read_chunked()
        if refusal is None:
            self.rfile = _Body(self.rfile, body_length(self.headers))
            super().run_wsgi()
            return
        LOG.refused("API port", refusal)
        self.send_response(refusal.status)
        self.send_header("Content-Type", refusal.content_type)
        self.send_header("Content-Length", str(len(refusal.answer)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(refusal.answer)
        close_after_refusal(self)

    def _read_chunked(self) -> Refusal | None:
        """Read a chunked S3 upload whole, then let it on as a body of known length (None), or refuse it."""
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before its body
            del self.headers["Expect"]
        limit = storage_limits.OBJECT_LIMIT + storage_limits.ENCODING_ALLOWANCE
        try:
            body = read_chunked(self.rfile, limit)
        except ChunkedBodyRefused as error:
            return Refusal(400, f"an S3 upload sent chunked: {error}")
        except OSError:  # silent for REQUEST_TIMEOUT in the middle of its body
            return Refusal(400, "an S3 upload sent chunked whose body stopped coming")
        del self.headers["Transfer-Encoding"]
        self.headers["Content-Length"] = str(len(body))
        self.rfile = io.BytesIO(body)  # type: ignore[assignment]
        return None

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        self.close_connection = True  # the client went silent mid-request (REQUEST_TIMEOUT), or left

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's own refusals, timeouts
        LOG.line(f"labkit: the API port: {format % args}")


class ApiServer(ThreadedWSGIServer):
    """The API port: werkzeug's threaded server behind the gate, on loopback. `unsigned`: the
    paths that need no SigV4 signature (the lab's own endpoints)."""

    def __init__(
        self, app: Any, *, unsigned: tuple[str, ...], port: int = 0, fd: int | None = None, ssl_context: Any = None
    ) -> None:
        """`fd` and `ssl_context`: serve a socket listening elsewhere (inside a sealed instance), over TLS."""
        self.unsigned = unsigned
        super().__init__("127.0.0.1", port, app, ApiRequestHandler, ssl_context=ssl_context, fd=fd)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's name
        if type != "error":
            super().log(type, message, *args)
            return
        LOG.failed(message % args if args else message)

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOG.failed(f"Error on a connection from {client_address}:\n{traceback.format_exc()}")
