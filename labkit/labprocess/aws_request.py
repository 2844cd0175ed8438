"""A request to the warm `aws` (labkit/labprocess/cliserver.py), as the instance's `aws` sends it
(labkit/protocol.py: `client_script`): read with the descriptors that came with it, or refused in
one line that the client prints.
"""

from __future__ import annotations

import array
import contextlib
import json
import socket
import struct
from typing import Any

from labkit.protocol import HEADER
from labkit.seal.descriptors import close_all
from labkit.seal.refused import Refused

MAX_REQUEST = 1 << 20  # bytes: a command's arguments and environment; a larger request is refused unread
REQUEST_TIMEOUT = 10.0  # seconds a client has, once connected, to send its request


def receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request (argv, env, cwd) and the descriptors that came with it; Refused for one that is too
    large (before its body is read), cut short, or not what the client script sends."""
    fds = array.array("i")
    connection.settimeout(REQUEST_TIMEOUT)
    try:
        head, ancillary, _, _ = connection.recvmsg(HEADER.size, socket.CMSG_SPACE(8 * fds.itemsize))
    except (OSError, TimeoutError):
        raise Refused("its request did not come in time") from None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    received = list(fds)
    try:
        while len(head) < HEADER.size:
            more = connection.recv(HEADER.size - len(head))
            if not more:
                raise Refused("its request was cut short")
            head += more
        (size,) = HEADER.unpack(head)
        if size > MAX_REQUEST:
            raise Refused(f"its request is {size} bytes, more than the {MAX_REQUEST // (1 << 20)} MiB the lab takes")
        body = bytearray(size)
        view, got = memoryview(body), 0
        while got < size:
            n = connection.recv_into(view[got:])
            if not n:
                raise Refused("its request was cut short")
            got += n
        request = json.loads(body)
    except (OSError, TimeoutError):
        close_all(received)
        raise Refused("its request did not come in time") from None
    except ValueError:
        close_all(received)
        raise Refused("its request is not JSON") from None
    except Refused:
        close_all(received)
        raise
    connection.settimeout(None)
    if not (
        isinstance(request, dict)
        and isinstance(request.get("argv"), list)
        and all(isinstance(a, str) for a in request["argv"])
        and isinstance(request.get("env"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in request["env"].items())
        and isinstance(request.get("cwd"), str)
        and len(received) >= 3
    ):
        close_all(received)
        raise Refused("its request is not the lab's `aws` asking (argv, env, cwd and three streams)")
    return request, received


def refuse(connection: socket.socket, why: str) -> None:
    """Tell the client's `aws` it was refused, and why: -1 in place of a pid, then the line it prints."""
    with contextlib.suppress(OSError):
        connection.setblocking(False)
        connection.send(struct.pack(">i", -1) + f"aws: the lab did not run this command: {why}.\n".encode())
