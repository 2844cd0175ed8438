"""A lab that strangers cannot swell (issue 12): what any user of the machine can send to its ports.

Over raw sockets, to the API port and to the metadata service's port: unsigned, oversized and
malformed requests are refused before their body is read, with the status a web server (or AWS)
answers, at most a line in lab.log and never a traceback; a connection that goes silent is closed;
the lab's memory stays where it was; and another local user gets the same refusals.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import selectors
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import labkit
from conftest import STUDENT, need_root, student_account

BIG = 200 * 1024 * 1024  # a body no request of the lesson comes near
CLOSED_WITHIN = 15.0  # seconds: the lab's timeout (labkit/labprocess/gate.py, 5 s), with room for a busy machine
FORM = b"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
LIST_USERS = b"Action=ListUsers&Version=2010-05-08"
# The form of a SigV4 signature (botocore's), with a key the lab does not know: it gets a request
# past the check of its form, to moto, which refuses it.
FORGED = (
    b"Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261129/us-east-1/iam/aws4_request, "
    b"SignedHeaders=content-type;host;x-amz-date, Signature=" + b"0" * 64 + b"\r\n"
)
IMDS_TARGET = b"http://169.254.169.254/latest/meta-data/"
NOT_ASCII_PASSWORD = base64.b64encode("i-0:é".encode()) + b"\r\n"


def answer(port: int, request: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send `request` as it is; the status and body of the answer (0 when none came in time)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        return read_answer(connection, time.monotonic() + timeout)


def read_answer(connection: socket.socket, deadline: float) -> tuple[int, bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < content_length(data):
            connection.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = connection.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.") else b"0"
    return int(status), body


def content_length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def log_size(lab: labkit.Lab) -> int:
    return (lab.home / "lab.log").stat().st_size


def log_since(lab: labkit.Lab, offset: int) -> str:
    with open(lab.home / "lab.log", "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def memory_kb(pid: int, field: str) -> int:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])


def send_big_body(port: int, head: bytes, size: int, answers: list[tuple[int, int]]) -> None:
    """Send `head` and then `size` bytes, 1 MiB at a time, for as long as the lab takes them, while
    another thread reads the answer (the lab may answer, and stop reading, early). Appends the
    answer's status and how many of those bytes were sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(head)
        got: list[tuple[int, bytes]] = []
        reader = threading.Thread(target=lambda: got.append(read_answer(connection, time.monotonic() + 60)))
        reader.start()
        chunk, sent = b"A" * (1 << 20), 0
        try:
            while sent < size:
                connection.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the lab closed the connection: it has answered
            pass
        reader.join()
        answers.append((got[0][0], sent))


def test_unsigned_and_huge_requests_leave_the_labs_memory_and_log_as_they_were(lab: labkit.Lab) -> None:
    pid, offset = lab.info.pid, log_size(lab)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM (peak resident memory) starts again from now
    before = memory_kb(pid, "VmRSS")
    big = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + FORM + f"Content-Length: {BIG}\r\n\r\n".encode()
    answers: list[tuple[int, int]] = []
    senders = [threading.Thread(target=send_big_body, args=(lab.info.api_port, big, BIG, answers)) for _ in range(3)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    small = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + FORM + b"Content-Length: 35\r\n\r\n" + LIST_USERS
    unsigned = [answer(lab.info.api_port, small) for _ in range(200)]
    peak, grown = memory_kb(pid, "VmHWM"), log_size(lab) - offset
    print(f"\nlab RSS before {before} kB, peak during the flood {peak} kB; lab.log grew by {grown} bytes")

    assert peak - before < 64 * 1024, f"the lab's resident memory went from {before} kB to {peak} kB"
    assert [status for status, _ in answers] == [413] * 3
    assert {status for status, _ in unsigned} == {403}
    assert b"<Code>MissingAuthenticationToken</Code>" in unsigned[0][1]
    assert b"<Message>Request is missing Authentication Token</Message>" in unsigned[0][1]
    assert grown < 4096 and "Traceback" not in log_since(lab, offset), log_since(lab, offset)[-2000:]
    assert lab.client("iam").list_users()["Users"]  # a signed request: the lab still serves


def test_the_lab_reads_no_more_of_a_connection_than_its_content_length(lab: labkit.Lab) -> None:
    """werkzeug, once it has answered, reads on whatever else a client sends (10 MB at a time, up to
    10 GB): the lab stops reading at the end of the body the request declared."""
    head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + FORGED + FORM + b"Content-Length: 35\r\n\r\n" + LIST_USERS
    answers: list[tuple[int, int]] = []
    send_big_body(lab.info.api_port, head, BIG, answers)
    ((status, sent),) = answers
    print(f"\nafter its answer ({status}), the lab let the client send {sent >> 20} MiB more")
    assert status == 403  # moto's InvalidClientTokenId: the request passed the gate, and was read
    assert sent < 64 << 20, f"the lab read {sent >> 20} MiB past the request's body"
    assert lab.client("iam").list_users()["Users"]


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        pytest.param(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n", 400, id="length-abc"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n", 400, id="length-minus-1"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            400,
            id="two-lengths",
        ),
        pytest.param(b"GET /?Action=ListUsers HTTP/1.1\r\nHost: 127.0.0.1:abc\r\n\r\n", 400, id="host-port-abc"),
        pytest.param(
            b"GET /_labkit/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xe9\xe9\r\n\r\n",
            400,
            id="control-token-not-ascii",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n" + FORGED + b"\r\n",
            411,
            id="chunked",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + FORGED + f"Content-Length: {BIG}\r\n\r\n".encode(),
            413,
            id="signed-but-huge",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x\r\n"
            + FORM
            + b"Content-Length: 35\r\n\r\n"
            + LIST_USERS,
            400,
            id="signature-malformed",
        ),
        pytest.param(
            b"GET /?Action=ListUsers&X-Amz-Credential=AKIA%2F HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501, id="presigned"
        ),
    ],
)
def test_malformed_requests_to_the_api_get_4xx_not_a_traceback(lab: labkit.Lab, request_: bytes, status: int) -> None:
    offset = log_size(lab)
    assert answer(lab.info.api_port, request_)[0] == status
    assert "Traceback" not in log_since(lab, offset), log_since(lab, offset)[-2000:]


def proxied(target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: 169.254.169.254\r\n" + b"".join(headers) + b"\r\n"


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        pytest.param(proxied(IMDS_TARGET, b"Content-Length: abc\r\n"), 400, id="length-abc"),
        pytest.param(
            proxied(b"http://169.254.169.254/latest/api/token", b"Content-Length: -1\r\n", method=b"PUT"),
            400,
            id="length-minus-1",
        ),
        pytest.param(proxied(b"http://169.254.169.254:abc/latest/meta-data/"), 400, id="target-port-abc"),
        pytest.param(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 127.0.0.1:abc\r\n\r\n", 400, id="host-port-abc"),
        pytest.param(proxied(IMDS_TARGET, b"Proxy-Authorization: Basic \xe9\xe9\r\n"), 400, id="credentials-not-ascii"),
        pytest.param(
            proxied(IMDS_TARGET, b"Proxy-Authorization: Basic " + NOT_ASCII_PASSWORD), 407, id="password-not-ascii"
        ),
        pytest.param(proxied(IMDS_TARGET, f"Content-Length: {BIG}\r\n".encode()), 413, id="huge"),
    ],
)
def test_malformed_requests_to_the_metadata_port_get_4xx_not_a_traceback(
    lab: labkit.Lab, request_: bytes, status: int
) -> None:
    offset = log_size(lab)
    assert answer(lab.info.imds_port, request_)[0] == status
    assert "Traceback" not in log_since(lab, offset), log_since(lab, offset)[-2000:]


@pytest.mark.slow
def test_a_connection_that_goes_silent_is_closed(lab: labkit.Lab) -> None:
    api, imds = lab.info.api_port, lab.info.imds_port
    silent = {
        "api, nothing sent": (api, b""),
        "api, mid-headers": (api, b"POST / HTTP/1.1\r\nHost: 127."),
        "api, mid-body": (
            api,
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + FORGED + FORM + b"Content-Length: 35\r\n\r\nAction=List",
        ),
        "metadata, nothing sent": (imds, b""),
        "metadata, mid-headers": (imds, b"PUT http://169.254.169.254/latest/api/token HTTP/1.1\r\nHost: 169."),
        "metadata, mid-body": (
            imds,
            proxied(b"http://169.254.169.254/latest/api/token", b"Content-Length: 35\r\n", method=b"PUT")
            + b"Action=List",
        ),
    }
    offset, began = log_size(lab), time.monotonic()
    selector = selectors.DefaultSelector()
    for name, (port, sent) in silent.items():
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(sent)
        selector.register(connection, selectors.EVENT_READ, name)
    closed: dict[str, float] = {}
    while len(closed) < len(silent) and (left := began + CLOSED_WITHIN - time.monotonic()) > 0:
        for key, _ in selector.select(timeout=left):
            connection = key.fileobj
            assert isinstance(connection, socket.socket)
            try:
                data = connection.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:  # what the lab answered before closing, if anything, is not the point here
                closed[key.data] = round(time.monotonic() - began, 1)
                selector.unregister(connection)
                connection.close()
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    print(f"\nclosed after (seconds): {closed}")
    assert sorted(closed) == sorted(silent), f"closed (seconds): {closed}; still open after {CLOSED_WITHIN} s"
    assert "Traceback" not in log_since(lab, offset), log_since(lab, offset)[-2000:]


STRANGER = """
import base64, json, os, socket, sys
api, imds = int(sys.argv[1]), int(sys.argv[2])

def status(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        return int(connection.recv(65536).split(b" ")[1])

form = b"Content-Type: application/x-www-form-urlencoded\\r\\n"
print(json.dumps({"uid": os.getuid(), "statuses": [
    status(api, b"POST / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n" + form + b"Content-Length: 35\\r\\n\\r\\n"
           b"Action=ListUsers&Version=2010-05-08"),
    status(api, b"POST / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n" + form + b"Content-Length: 209715200\\r\\n\\r\\n"),
    status(api, b"POST / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Length: abc\\r\\n\\r\\n"),
    status(api, b"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:abc\\r\\n\\r\\n"),
    status(imds, b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\n"
           b"Content-Length: abc\\r\\n\\r\\n"),
    status(imds, b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\n"
           b"Proxy-Authorization: Basic \\xe9\\r\\n\\r\\n"),
]}))
"""


@pytest.fixture(scope="module")
def stranger() -> pwd.struct_passwd:
    """Another user of the machine (needs root, as in CI: .ci/run runs the tests as root)."""
    need_root(f"acting as the user {STUDENT} needs root")
    return student_account()


@pytest.mark.root(reason=f"acting as the user {STUDENT} needs root")
def test_another_user_of_the_machine_gets_the_same_refusals(lab: labkit.Lab, stranger: pwd.struct_passwd) -> None:
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python, "this test runs the system's python3 as another user: apt-get install python3"
    offset = log_size(lab)
    ports = [str(lab.info.api_port), str(lab.info.imds_port)]
    ran = subprocess.run(
        ["runuser", "-u", STUDENT, "--", python, "-c", STRANGER, *ports],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert ran.returncode == 0, ran.stderr
    said = json.loads(ran.stdout)
    assert said["uid"] == stranger.pw_uid != os.geteuid()
    assert said["statuses"] == [403, 413, 400, 400, 400, 400]
    assert "Traceback" not in log_since(lab, offset), log_since(lab, offset)[-2000:]
    assert lab.client("iam").list_users()["Users"]


def test_lab_log_keeps_its_last_quarter_megabyte_when_the_lab_starts(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    home.mkdir(mode=0o700)
    old = [f"line {n:06} of an earlier run, as long as a line of lab.log often is".encode() for n in range(16_000)]
    (home / "lab.log").write_bytes(b"\n".join(old) + b"\n")  # about 1.1 MB
    labkit.up(home)
    try:
        kept = (home / "lab.log").read_bytes()
    finally:
        labkit.down(home)
    assert 200 * 1024 < len(kept) < 260 * 1024
    first = kept.split(b"\n", 1)[0]
    assert first in old and first != old[0]  # whole lines, from the end
    assert old[-1] + b"\n" in kept and b"serving AWS" in kept.rpartition(old[-1])[2]


def test_a_flood_of_refusals_costs_lab_log_a_few_lines_then_a_line_a_minute() -> None:
    from labkit.labprocess.gate import PortLog, Refusal

    written: list[str] = []
    now = [1000.0]
    log = PortLog(write=written.append, clock=lambda: now[0], burst=5, interval=60.0, tracebacks=1)
    refusal = Refusal(403, "a request that is not signed", "MissingAuthenticationToken")
    assert [log.refused("API port", refusal) for _ in range(200)] == [True] * 5 + [False] * 195
    now[0] += 60
    log.refused("API port", refusal)
    assert len(written) == 6
    assert written[0] == "labkit: the API port refused (403 MissingAuthenticationToken) a request that is not signed"
    assert written[5].endswith("(195 more left out of lab.log since the previous line)")
    now[0] += 600
    traceback = "Error on request:\nTraceback (most recent call last):\n  File ...\nKeyError: 'HTTP_AUTHORIZATION'"
    log.failed(traceback)
    log.failed(traceback)
    assert written[6:] == [traceback, "labkit: a request failed: KeyError: 'HTTP_AUTHORIZATION'"]
