"""labkit/labprocess/chunked.py: an S3 upload botocore sends chunked, read whole up to a limit, and what
is malformed refused; and the gate, which lets a chunked body through only for such an upload."""

from __future__ import annotations

import io
from email.message import Message

import pytest

from labkit.labprocess.chunked import ChunkedBodyRefused, read_chunked
from labkit.labprocess.gate import body_refusal, chunked_upload

SCOPE = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261207/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=" + (
    "0" * 64
)


def headers(**given: str) -> Message:
    message = Message()
    for name, value in given.items():
        message[name.replace("_", "-")] = value
    return message


def test_a_chunked_body_is_read_whole_with_its_trailer_dropped() -> None:
    framed = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\nNEXT"
    stream = io.BytesIO(framed)
    assert read_chunked(stream, 100) == b"hello, world"
    assert stream.read() == b"NEXT"  # the next request on the connection is left alone


@pytest.mark.parametrize(
    ("framed", "why"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", "a chunk size line that is not one"),
        (b"5\r\nhel", "a chunk cut short"),
        (b"5\r\nhelloXX0\r\n\r\n", "a chunk cut short"),
        (b"10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n", "longer than 8 bytes"),
        (b"5\r\nhello\r\n0\r\n" + b"t" * 5000, "a trailer line longer"),
    ],
)
def test_what_is_malformed_or_too_long_is_refused(framed: bytes, why: str) -> None:
    with pytest.raises(ChunkedBodyRefused, match=why):
        read_chunked(io.BytesIO(framed), 8)


def test_the_gate_lets_a_chunked_body_through_only_for_an_s3_upload() -> None:
    s3 = {"Transfer_Encoding": "chunked", "X_Amz_Decoded_Content_Length": "3"}
    assert chunked_upload(headers(Authorization=SCOPE.format("s3"), **s3))
    assert chunked_upload(headers(Host="bucket.s3.amazonaws.com", **s3))
    assert body_refusal(headers(Host="bucket.s3.amazonaws.com", **s3)) is None
    for refused in (
        headers(Authorization=SCOPE.format("iam"), **s3),  # not S3
        headers(Authorization=SCOPE.format("s3"), Transfer_Encoding="chunked"),  # no decoded length
        headers(Authorization=SCOPE.format("s3"), Content_Length="3", **s3),  # both lengths
        headers(Authorization=SCOPE.format("s3"), Transfer_Encoding="gzip, chunked", X_Amz_Decoded_Content_Length="3"),
    ):
        assert not chunked_upload(refused)
        refusal = body_refusal(refused)
        assert refusal is not None and refusal.status in (400, 411), refused.items()


def test_a_chunked_upload_bigger_than_the_lab_keeps_is_entity_too_large() -> None:
    too_big = headers(Host="b.s3.amazonaws.com", Transfer_Encoding="chunked", X_Amz_Decoded_Content_Length=str(6 << 20))
    refusal = body_refusal(too_big)
    assert refusal is not None and (refusal.status, refusal.code) == (400, "EntityTooLarge")
    assert b"this lab keeps objects of at most 5 MiB" in refusal.body
