"""The keeper of an instance's commands where it is sealed by environment: what ends them with it.

Sealed by the kernel, an instance's processes live in its PID namespace and end with its PID 1
(labkit/labprocess/sandbox.py). Sealed by environment, they are processes of the lab's user on
this machine, and `nohup`, a double fork or `setsid` would leave one running after StopInstances.
So each command starts under a keeper, which knows the command's processes by what the kernel says
of them, never by a pid or a claim:

    the caller (a notebook's kernel, `labkit ssh`)
     └─ the keepers' source   started at the first command (labkit/seal/keeper_process.py), it ends
         │                    with the caller. It keeps one keeper forked ahead, for the next command,
         └─ keeper            a child subreaper, in a session of its own: whatever the command
             │                leaves running becomes its child, wherever it went (a double fork,
             │                setsid); it lives as long as any of them, and says the command's
             │                status on the command's own line to the caller (`Kept`: what the
             │                caller sees of the command, as of a Popen)
             └─ the command   forked ahead too, the leader of a session of its own: it takes the
                              command (arguments, environment, descriptors, over a socket), enters
                              the instance's Landlock fence (labkit/seal/landlock.py) and runs it

No keeper is inside the fence, so where Landlock scopes signals (ABI 6, Linux 6.12) nothing the
instance runs can signal one (nor, with any Landlock, trace it or read its memory). A keeper asks
the lab which run of its instance is current (GET /_labkit/run, with the lab's secret:
labkit/labprocess/runs.py), first as the command starts, then again and again, each question held
by the lab until the run changes. Once the run the command started in has ended (StopInstances,
TerminateInstances, RebootInstances, a reset) or the lab has stopped (no process holds its lock),
it kills everything below it, over and over until nothing is left, and exits. A command that leaves
something running reports its status only once the lab has answered the first question, so that a
StopInstances sent after the command is never taken for the run it started in.

Where Landlock scopes no signal (ABI < 6, or no Landlock), what remains: a process of the instance
can kill its keeper (it is of the same user), and what it started then outlives the instance.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from labkit.seal import keeper_process
from labkit.seal.keeper_process import RULESET

if TYPE_CHECKING:
    from labkit.seal.landlock import Fence
    from labkit.statedir import LabInfo

OPTIONS = frozenset({"stdin", "stdout", "stderr", "env", "cwd", "pass_fds", "start_new_session", "close_fds"})


class Keeper:
    """Where the commands of one instance sealed by environment start: under a keeper, inside the
    instance's Landlock fence (`fence`; None on a host without Landlock)."""

    def __init__(self, lab_home: Path, instance_id: str, info: LabInfo, fence: Fence | None) -> None:
        self.lab_home, self.instance_id, self.info, self.fence = lab_home, instance_id, info, fence

    def popen(self, args: list[str], **options: Any) -> Kept:
        """As `subprocess.Popen(args, **options)` (the OPTIONS only), the command under its keeper,
        always in a session of its own, as with `start_new_session`; a stdin that is a terminal
        becomes the session's controlling terminal, as at a login."""
        unknown = sorted(set(options) - OPTIONS) + (["close_fds=False"] if options.get("close_fds") is False else [])
        if unknown:
            raise TypeError(f"a keeper starts a command with {', '.join(sorted(OPTIONS))} only, not {unknown}")
        given, ours, opened = _descriptors(options)
        job = {
            "argv": [os.fsdecode(arg) for arg in args],
            "env": dict(os.environ if options.get("env") is None else options["env"]),
            "cwd": os.fsdecode(options.get("cwd") or os.getcwd()),
            "instance": self.instance_id,
            "lab": {"port": self.info.api_port, "secret": self.info.secret, "home": str(self.lab_home)},
        }
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            if self.fence is not None:
                ruleset = self.fence.ruleset()
                opened.append(ruleset)
                given.append((ruleset, RULESET))
            job["targets"] = [target for _, target in given]
            _send(marshal.dumps(job), [*(fd for fd, _ in given), theirs.fileno()])
        except BaseException:
            mine.close()
            for end in ours.values():
                end.close()
            raise
        finally:
            theirs.close()
            for fd in opened:
                os.close(fd)
        return Kept(args, mine, ours)


class Kept:
    """A command started under its keeper, as its caller sees it: what `labkit.shell` uses of a
    Popen. `pid` is the command's, the leader of its session; its status is said by its keeper.
    Both come on the command's line to its keeper, as they are known."""

    def __init__(self, args: list[str], line: socket.socket, streams: dict[str, IO[bytes]]) -> None:
        self.args, self._line, self._pid = args, line, 0
        self.returncode: int | None = None
        self.stdin, self.stdout, self.stderr = (streams.get(name) for name in ("stdin", "stdout", "stderr"))

    @property
    def pid(self) -> int:
        while not self._pid and self._heard(None):
            pass
        if not self._pid:
            from labkit.errors import LabError

            raise LabError(
                f"The keeper of `{self.args[0]}` ended before it said where it runs: it could not start, "
                "or was killed. Run the command again."
            )
        return self._pid

    def poll(self) -> int | None:
        while self.returncode is None and self._heard(0.0):
            pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._heard(left):
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return self.returncode

    def send_signal(self, number: int) -> None:
        """The signal, to the command (by its keeper, which has not yet reaped it)."""
        if self.poll() is None:
            with contextlib.suppress(OSError):
                self._line.send(marshal.dumps({"signal": int(number)}))

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> Kept:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()

    def _heard(self, timeout: float | None) -> bool:
        """Read what the line says within `timeout` seconds (None: until it says something); False
        when it said nothing. Its end without a status: the keeper was killed (by `_stop`, say)."""
        if self._line.fileno() < 0:
            return False
        if not select.select([self._line], [], [], timeout)[0]:
            return False
        try:
            said = marshal.loads(self._line.recv(4096))  # from the keeper: labkit/seal/keeper_process.py
        except (OSError, ValueError, EOFError, TypeError):
            said = {}  # the line's end
        self._pid = int(said.get("pid", self._pid))
        if "status" in said or not said:
            status = said.get("status")
            self.returncode = os.waitstatus_to_exitcode(status) if status is not None else -signal.SIGKILL
            if self._pid or not said:
                self._line.close()
        return True


def _descriptors(options: dict[str, Any]) -> tuple[list[tuple[int, int]], dict[str, IO[bytes]], list[int]]:
    """What the command gets: (descriptor here, its number there), as Popen reads its options; the
    caller's ends of the pipes it asked for; the descriptors opened here, to close once sent."""
    given: list[tuple[int, int]] = []
    ours: dict[str, IO[bytes]] = {}
    opened: list[int] = []
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        value = options.get(name)
        if value is None:
            try:
                fcntl.fcntl(number, fcntl.F_GETFD)
            except OSError:
                continue  # this process has none: nor will the command
            fd = number
        elif value == subprocess.DEVNULL:
            fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            opened.append(fd)
        elif value == subprocess.PIPE:
            read, write = os.pipe()
            fd, mine = (read, write) if number == 0 else (write, read)
            opened.append(fd)
            ours[name] = open(mine, "wb" if number == 0 else "rb")  # noqa: SIM115 - the Kept's, closed with it
        elif value == subprocess.STDOUT and number == 2:
            fd = next((here for here, there in given if there == 1), 1)
        else:
            fd = value if isinstance(value, int) else value.fileno()
        given.append((fd, number))
    given += [(fd, fd) for fd in options.get("pass_fds", ())]
    return given, ours, opened


_SOURCE: list[tuple[subprocess.Popen[bytes], socket.socket, int]] = []  # (process, line, the pid that started it)
_SOURCE_LOCK = threading.Lock()


def _send(job: bytes, fds: list[int]) -> None:
    """Hand a job to this process's keepers' source, started if it is not running."""
    with _SOURCE_LOCK:
        for attempt in range(2):
            if not _SOURCE or _SOURCE[0][2] != os.getpid() or _SOURCE[0][0].poll() is not None:
                _SOURCE[:] = [_start_source()]
            try:
                socket.send_fds(_SOURCE[0][1], [job], fds)
                return
            except OSError:  # it has just ended: once more, with a new one
                _SOURCE.clear()
                if attempt:
                    raise


def _start_source() -> tuple[subprocess.Popen[bytes], socket.socket, int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", keeper_process.__file__],
            stdin=theirs.fileno(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={},  # it needs nothing of this process's environment: each command brings its own
            start_new_session=True,  # nor its terminal: no keeper holds the user's (labkit/relay.py)
        )
    return process, ours, os.getpid()


@atexit.register
def _source_ends() -> None:
    """The source ends with this process: it reads the end of its line, and is waited for here."""
    with _SOURCE_LOCK:
        if _SOURCE and _SOURCE[0][2] == os.getpid():
            process, line, _ = _SOURCE.pop()
            line.close()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
