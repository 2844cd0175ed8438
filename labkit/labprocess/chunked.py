"""A request body sent with `Transfer-Encoding: chunked`, read whole before the app sees it.

The lab reads only bodies whose size it knows before reading them (labprocess/gate.py), with one
exception: an S3 upload over HTTPS, where botocore sends the object `aws-chunked` with its checksum in
a trailer, framed by HTTP's chunked encoding, and says the object's size in
`X-Amz-Decoded-Content-Length` (S3 API Reference, "Signature calculations for the Authorization
header: Transferring payload in multiple chunks"). Such a body is read here, chunk by chunk, up to a
limit the gate sets from that size; then it reaches the app as a body of known length, as every
other does, and the journal keeps it as it keeps them.
"""

from __future__ import annotations

import io
import re

_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})(?:;[^\r\n]*)?\r?\n")
MAX_LINE = 4096  # a chunk-size line or a trailer line; botocore's are a few dozen bytes


class ChunkedBodyRefused(Exception):
    """The chunked body is malformed, or longer than the limit; str() says which, in a few words."""


def read_chunked(stream: io.BufferedIOBase, limit: int) -> bytes:
    """The body of a chunked request from `stream` (its framing removed), at most `limit` bytes;
    raises ChunkedBodyRefused, or OSError (a timeout) from the stream."""
    body = bytearray()
    while True:
        line = stream.readline(MAX_LINE)
        found = _SIZE.fullmatch(line)
        if found is None:
            raise ChunkedBodyRefused(f"a chunk size line that is not one: {line[:40]!r}")
        size = int(found[1], 16)
        if size == 0:
            break
        if len(body) + size > limit:
            raise ChunkedBodyRefused(f"a chunked body longer than {limit} bytes")
        data = stream.read(size)
        if len(data) != size or stream.readline(MAX_LINE) not in (b"\r\n", b"\n"):
            raise ChunkedBodyRefused("a chunk cut short")
        body += data
    while True:  # HTTP trailers, if any, up to the blank line
        line = stream.readline(MAX_LINE)
        if line in (b"\r\n", b"\n", b""):
            return bytes(body)
        if not line.endswith(b"\n"):
            raise ChunkedBodyRefused("a trailer line longer than the lab reads")
