"""The Amazon DNS server of one sealed instance: 169.254.169.253, port 53 (UDP), as on EC2.

An instance resolves names through its VPC's DNS server, at the address EC2 documents. A sealed
instance's network is loopback alone (labprocess/sandbox.py), so the lab answers there, on a socket
made inside it, for the names it serves (a Zone): AWS's endpoint names, any name under S3's
(`BUCKET.s3.amazonaws.com`, virtual-hosted-style), the instance's own `ip-….ec2.internal`. One
question in, at most one record out:

    A (or ANY) of a name in the zone   its address, TTL seconds
    AAAA or any other type of it       NOERROR, no answer: the name is there, the record is not
    any other name                     NXDOMAIN: a VPC with no route out has no other name to give
    a class other than IN              REFUSED
    an opcode other than QUERY         NOTIMP
    not one readable question          FORMERR
    fewer than 12 bytes, or a response no answer at all

The question goes back as it came (its letters' case too); no authority or additional records, no
EDNS, nothing it was not asked. Standard library only.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
from collections.abc import Mapping

TTL = 5  # seconds: as briefly as S3's own answers live
HEADER = struct.Struct(">HHHHHH")  # id, flags, questions, answers, authority records, additional records
A, AAAA, ANY, IN = 1, 28, 255, 1
NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 3, 4, 5
QR, OPCODE, RD, RA = 0x8000, 0x7800, 0x0100, 0x0080  # flags: a response, its opcode, recursion desired/available

Labels = tuple[bytes, ...]


def labels_of(name: str) -> Labels:
    """`s3.amazonaws.com` as DNS labels, lower case (DNS compares names without case)."""
    return tuple(label.encode("ascii").lower() for label in name.rstrip(".").split("."))


class Zone:
    """The names one instance resolves: each of `names` exactly, and every name under one of `under`
    (any depth, as a DNS wildcard: whether a certificate covers the name is TLS's business)."""

    def __init__(self, names: Mapping[str, str], under: Mapping[str, str] | None = None) -> None:
        self.names = {labels_of(name): socket.inet_aton(address) for name, address in names.items()}
        self.under = {labels_of(name): socket.inet_aton(address) for name, address in (under or {}).items()}

    def address(self, labels: Labels) -> bytes | None:
        """The IPv4 address (4 bytes) of the name made of `labels` (lower case), None if not in the zone."""
        if labels in self.names:
            return self.names[labels]
        for suffix, address in self.under.items():
            if len(labels) > len(suffix) and labels[-len(suffix) :] == suffix:
                return address
        return None


class Malformed(ValueError):
    """A question that cannot be read: answered FORMERR."""


def question(query: bytes) -> tuple[Labels, int, int, int]:
    """The one question after the header of `query`: its name's labels (lower case), its type and
    class, and the offset where it ends. Raises Malformed, never IndexError or struct.error."""
    labels: list[bytes] = []
    at, size = HEADER.size, 0
    while True:
        if at >= len(query):
            raise Malformed("the name runs past the end of the packet")
        length = query[at]
        if length == 0:
            break
        if length > 63:
            raise Malformed("a label longer than 63 bytes, or compressed (no question is)")
        size += length + 1
        if size > 254 or at + 1 + length > len(query):
            raise Malformed("the name is longer than 255 bytes, or runs past the end of the packet")
        labels.append(query[at + 1 : at + 1 + length].lower())  # bytes.lower(): ASCII letters only
        at += 1 + length
    at += 1
    if at + 4 > len(query):
        raise Malformed("no type and class after the name")
    qtype, qclass = struct.unpack_from(">HH", query, at)
    return tuple(labels), qtype, qclass, at + 4


def answer(query: bytes, zone: Zone) -> bytes | None:
    """The response to one DNS query (a UDP payload), or None when it gets none."""
    if len(query) < HEADER.size:
        return None  # not even an id to answer to
    ident, flags, questions = HEADER.unpack_from(query)[:3]
    if flags & QR:
        return None  # a response: answering it could start a loop
    reply = QR | RA | (flags & (OPCODE | RD))

    def header(rcode: int, asked: int = 0, answers: int = 0) -> bytes:
        return HEADER.pack(ident, reply | rcode, asked, answers, 0, 0)

    if flags & OPCODE:
        return header(NOTIMP)
    if questions != 1:
        return header(FORMERR)
    try:
        labels, qtype, qclass, end = question(query)
    except Malformed:
        return header(FORMERR)
    asked = query[HEADER.size : end]
    if qclass != IN:
        return header(REFUSED, 1) + asked
    address = zone.address(labels)
    if address is None:
        return header(NXDOMAIN, 1) + asked
    if qtype not in (A, ANY):
        return header(NOERROR, 1) + asked
    record = struct.pack(">HHHIH", 0xC000 | HEADER.size, A, IN, TTL, len(address)) + address  # name: the question's
    return header(NOERROR, 1, 1) + asked + record


class _Handler(socketserver.BaseRequestHandler):
    server: Resolver

    def handle(self) -> None:
        data, bound = self.request
        response = answer(data, self.server.zone)
        if response is not None:
            with contextlib.suppress(OSError):  # the asker gone, or its address unreachable: nothing to say
                bound.sendto(response, self.client_address)


class Resolver(socketserver.UDPServer):
    """The DNS server of one sealed instance, on a UDP socket bound inside its network (sandbox.py).
    `shutdown()` and `server_close()` end it, as the instance's other servers."""

    def __init__(self, bound: socket.socket, zone: Zone) -> None:
        self.zone = zone
        super().__init__(bound.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = bound


def serve(bound: socket.socket, zone: Zone) -> Resolver:
    """A Resolver for `zone` on `bound`, serving on a thread of its own from now on."""
    server = Resolver(bound, zone)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
