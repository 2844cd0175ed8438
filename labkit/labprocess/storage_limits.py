"""The lab's own limits on what S3 keeps, and S3's words when an upload goes past them.

AWS takes objects of up to 5 GiB in one PUT and keeps as much as an account pays for. The lab keeps
every object in memory and in its journal (so that nothing acknowledged is lost), on a student's
machine: at most OBJECT_LIMIT per object, LAB_LIMIT in all. An upload past either is refused as S3
refuses one past its own: 400 EntityTooLarge, `Your proposed upload exceeds the maximum allowed
size`, here followed by the lab's limit and what to do.

    request_refusal(headers)   from the headers alone, before the body is read (labprocess/gate.py)
    lab_refusal(headers)       with what the lab already keeps (labprocess/main.py, before moto)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message

OBJECT_LIMIT = 5 << 20  # 5 MiB per object (one PUT, one part, one whole multipart upload)
LAB_LIMIT = 100 << 20  # 100 MiB of objects and parts in all
# aws-chunked bodies (botocore's checksums in a trailer) carry a chunk header per 64 KiB and a trailer:
# well under this much more than the object itself
ENCODING_ALLOWANCE = 64 << 10
S3_HOST = re.compile(r"(?:[a-z0-9][a-z0-9.-]*\.)?s3(?:\.us-east-1)?\.amazonaws\.com(?::[0-9]{1,5})?", re.I | re.ASCII)


@dataclass(frozen=True)
class TooLarge:
    """An upload refused: S3's status, code and body."""

    why: str  # one line, for lab.log
    body: bytes
    status: int = 400
    code: str = "EntityTooLarge"


def for_s3(headers: Message | Mapping[str, str]) -> bool:
    """Whether a request is for S3: by its Host (an S3 endpoint's name), or by its signature's scope."""
    host = (headers.get("Host") or "").strip()
    scope = (headers.get("Authorization") or "").partition("Credential=")[2].partition(",")[0].split("/")
    return bool(S3_HOST.fullmatch(host)) or (len(scope) > 3 and scope[3] == "s3")


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f}".removesuffix(".0") + " MiB"


def _too_large(proposed: int, limit: int, said: str) -> TooLarge:
    message = f"Your proposed upload exceeds the maximum allowed size: {said}"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>EntityTooLarge</Code><Message>{message}</Message><ProposedSize>{proposed}</ProposedSize>"
        f"<MaxSizeAllowed>{limit}</MaxSizeAllowed><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>"
        f"<HostId>labkit</HostId></Error>"
    ).encode()
    return TooLarge(f"an upload of {proposed} bytes to S3: {said}", body)


def _sizes(headers: Message | Mapping[str, str]) -> tuple[int, int]:
    """The body's length as sent, and the object's (aws-chunked bodies say it apart)."""

    def number(name: str) -> int:
        value = (headers.get(name) or "").strip()
        return int(value) if value.isdigit() else 0

    sent = number("Content-Length")
    return sent, number("X-Amz-Decoded-Content-Length") or sent


def request_refusal(headers: Message | Mapping[str, str]) -> TooLarge | None:
    """EntityTooLarge for an S3 request whose object (or part) is bigger than the lab keeps."""
    sent, size = _sizes(headers)
    if size > OBJECT_LIMIT or sent > OBJECT_LIMIT + ENCODING_ALLOWANCE:
        said = f"this lab keeps objects of at most {_mib(OBJECT_LIMIT)} (AWS takes up to 5 GiB in one PUT)"
        return _too_large(max(size, sent), OBJECT_LIMIT, said)
    return None


def stored() -> int:
    """The bytes of every object (each version) and every uploaded part the lab's S3 keeps now."""
    from moto.s3.models import s3_backends

    from labkit.protocol import ACCOUNT_ID

    if ACCOUNT_ID not in s3_backends:  # no S3 request yet: nothing kept
        return 0
    total = 0
    for bucket in s3_backends[ACCOUNT_ID]["aws"].buckets.values():
        for key in bucket.keys.iterlists():
            total += sum(getattr(version, "size", 0) or 0 for version in key[1])
        for upload in bucket.multiparts.values():
            total += sum(getattr(part, "size", 0) or 0 for part in upload.parts.values())
    return total


def lab_refusal(headers: Mapping[str, str], *, method: str) -> TooLarge | None:
    """EntityTooLarge for an upload that would take the lab's S3 past LAB_LIMIT."""
    if method not in ("PUT", "POST") or not for_s3(headers):
        return None
    _, size = _sizes(headers)
    if not size:
        return None
    kept = stored()
    if kept + size <= LAB_LIMIT:
        return None
    said = (
        f"this lab keeps at most {_mib(LAB_LIMIT)} of objects in all and holds {_mib(kept)}; "
        "delete some first (aws s3 rm)"
    )
    return _too_large(size, LAB_LIMIT - kept, said)
