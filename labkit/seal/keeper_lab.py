"""A keeper's questions to the lab (labkit/seal/keeper.py says what keepers are for): which run of
its instance is current, asked over HTTP and held by the lab until the run changes
(labkit/labprocess/runs.py). Standard library only, as labkit/seal/keeper_process.py, which runs it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time

TYPE_CHECKING = False  # typing is left unimported: a quicker start
if TYPE_CHECKING:
    from typing import Any

ENDPOINT = "/_labkit/run"  # the lab's answer: labkit/labprocess/runs.py
WAIT = 30.0  # seconds the lab holds a question while the run stays the same
RETRY = 0.5  # seconds between questions while the lab does not answer
REFUSED = 5.0  # seconds between questions while it answers something else (a lab older than the keepers)
UNASKED = object()


class Lab:
    """A keeper's questions to the lab: which run of its instance is current."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.instance = job["instance"]
        self.port, self.secret = int(job["lab"]["port"]), str(job["lab"]["secret"])
        self.home = str(job["lab"]["home"])
        self.run: object = UNASKED  # the run the command started in; None: the lab did not say
        self.over = False  # that run has ended, or the lab has stopped
        self.connection: socket.socket | None = None
        self.answer = b""
        self.retry_at = 0.0

    def fileno(self) -> int:
        return self.connection.fileno() if self.connection is not None else -1

    def timeout(self) -> float | None:
        return None if self.connection is not None else max(0.0, self.retry_at - time.monotonic())

    def ask(self) -> None:
        """Ask which run is current: at once the first time, then once it is not the command's."""
        query = f"instance={quoted(self.instance)}"
        if self.run is not UNASKED:
            query += f"&since={self.run if isinstance(self.run, str) else '-'}&wait={WAIT:g}"
        request = (
            f"GET {ENDPOINT}?{query} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.secret}\r\nConnection: close\r\n\r\n"
        )
        self.answer = b""
        try:
            self.connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no name to look up
            self.connection.settimeout(5.0)
            self.connection.connect(("127.0.0.1", self.port))
            self.connection.sendall(request.encode())
            self.connection.setblocking(False)
        except OSError:
            self._unanswered()

    def read(self) -> None:
        assert self.connection is not None
        try:
            chunk = self.connection.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        self.answer += chunk
        head, _, body = self.answer.partition(b"\r\n\r\n")
        length = None
        for field in head.split(b"\r\n")[1:]:
            name, _, value = field.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value)
        if chunk and (length is None or len(body) < length):
            return  # more to come
        self.connection.close()
        self.connection = None
        run = run_of(body[:length]) if head.startswith(b"HTTP/1.1 200 ") and length is not None else None
        if run is None:
            self._unanswered(REFUSED if head.startswith(b"HTTP/") else RETRY)
            return
        if self.run is UNASKED:
            self.run = run
        elif run != self.run:
            self.over = True
            return
        self.ask()

    def _unanswered(self, retry: float = RETRY) -> None:
        """The lab did not answer: ended when no process holds its lock (it has stopped, and
        instances with it); otherwise asked again soon, where lab.json says it is now."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if not lab_runs(self.home):
            self.over = True
            return
        if self.run is UNASKED:
            self.run = None  # whatever the lab says next, it is not the run the command started in
        import json  # seldom: only here

        try:
            with open(os.path.join(self.home, "lab.json")) as f:  # labkit/protocol.py: INFO_FILE
                record = json.load(f)
            self.port, self.secret = int(record["api_port"]), str(record["secret"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.retry_at = time.monotonic() + retry


def run_of(body: bytes) -> str | None:
    """The run in the lab's answer, as the lab's `_json` writes it: `{"run": "<hex>"}` (`""` while
    the instance is not running); None for anything else."""
    text, start, end = body.decode("ascii", "replace").strip(), '{"run": "', '"}'
    run = text[len(start) : -len(end)] if text.startswith(start) and text.endswith(end) else None
    return run if run is not None and all(c in "0123456789abcdef" for c in run) else None


def quoted(text: str) -> str:
    """`text` for a URL's query: an instance id as it is; anything else escaped."""
    return "".join(chr(b) if chr(b).isalnum() or chr(b) in "-_." else f"%{b:02X}" for b in text.encode())


def lab_runs(home: str) -> bool:
    """Whether a lab process holds the lock on its directory (labkit/statedir.py: owner)."""
    try:
        fd = os.open(os.path.join(home, "lab.lock"), os.O_RDONLY | os.O_CLOEXEC)  # labkit/protocol.py: OWNER_LOCK
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
