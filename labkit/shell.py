"""Running a script on an instance as a terminal would: on a pseudo-terminal, with Ctrl-C, and
nothing it started left running after it.

What a student types reaches bash through an anonymous file (an inherited descriptor), never as an
argument: another user of this machine can read every process's command line, and a cell may hold a
key. A command interrupted (■, Ctrl-C) or running past its time is stopped with everything it
started. A shell or command on the student's terminal (`labkit ssh`) gets a terminal of its own,
relayed to theirs (labkit/relay.py): no process of an instance ever holds the student's terminal,
to type into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import pty
import selectors
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import procfs, relay
from labkit.seal.keeper import Keeper, Kept
from labkit.transcript import as_a_terminal_shows

GRACE = 2.0  # seconds a stopped command has to end after Ctrl-C, before it and all it started are killed


@dataclass(frozen=True)
class Ran:
    """How a script ended, and what it printed (as a terminal leaves it)."""

    code: int
    stdout: str
    stderr: str
    stopped: str = ""  # "" (it ended), "interrupted" or "timeout"


def anonymous_file(text: str) -> int:
    """An anonymous file holding `text` (no name, no path, its owner's only), open for reading:
    bash reads the commands from it, so they are in no process's command line."""
    fd = os.memfd_create("labkit-commands")
    data = text.encode()
    while data:
        data = data[os.write(fd, data) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def bash(source: int, *, stop_at_ctrl_c: bool) -> list[str]:
    """bash running the commands in descriptor `source`, as `bash -c COMMANDS` would (its $0, its
    messages), with `source` closed for them. With `stop_at_ctrl_c`, Ctrl-C (SIGINT to the shell)
    ends the shell once the command it waits for has ended, however that command took it: the lines
    after it do not run, as on a terminal, where Ctrl-C drops what was typed ahead."""
    trap = "trap 'exit 130' INT; " if stop_at_ctrl_c else ""
    return ["bash", "--noprofile", "--norc", "-c", f'{trap}eval "$(< /dev/fd/{source})" {source}<&-']


def exit_status(returncode: int) -> int:
    """The status a shell reports (`$?`): 128 + N for a command killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _processes(session: int, known: dict[int, int] | None = None) -> dict[int, int]:
    """The live processes of `session`, their descendants (one that left the session with setsid is
    still its parent's child) and those of `known` still alive: pid → start time, so that a pid the
    system gives to another process later is never taken for one of these."""
    table = procfs.live_processes()
    chosen = {pid for pid, found in table.items() if found.session == session}
    chosen |= {pid for pid, start in (known or {}).items() if pid in table and table[pid].start == start}
    while more := {pid for pid, found in table.items() if found.parent in chosen and pid not in chosen}:
        chosen |= more
    return {pid: table[pid].start for pid in chosen}


def _kill_all(session: int, known: dict[int, int]) -> None:
    """SIGKILL every process of `session` and what it started, until none is left."""
    for _ in range(200):
        with contextlib.suppress(OSError):
            os.killpg(session, signal.SIGKILL)
        left = _processes(session, known)
        if not left:
            return
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


class _Output:
    """What a command writes to its terminal and to stderr, read as it comes."""

    def __init__(self, terminal: int, errors: int) -> None:
        self.chunks: dict[int, list[bytes]] = {terminal: [], errors: []}
        self.terminal, self.errors = terminal, errors
        self.selector = selectors.DefaultSelector()
        for fd in self.chunks:
            self.selector.register(fd, selectors.EVENT_READ)

    def read_until(self, deadline: float, *, ended: subprocess.Popen[bytes] | Kept | None = None) -> bool:
        """Read until both are closed (True), `deadline` passes, or the process `ended` has (False)."""
        while self.selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0 or (ended is not None and ended.poll() is not None):
                return False
            for key, _ in self.selector.select(timeout=min(left, 0.1 if ended else 1.0)):
                try:
                    data = os.read(key.fd, 65536)
                except OSError:  # EIO: the terminal's last writer has gone
                    data = b""
                if data:
                    self.chunks[key.fd].append(data)
                else:
                    self.selector.unregister(key.fd)
        return True

    def text(self, fd: int) -> str:
        return b"".join(self.chunks[fd]).decode(errors="replace")


def _stop(process: subprocess.Popen[bytes] | Kept, output: _Output) -> None:
    """Stop a command and everything it started: Ctrl-C first, as a terminal sends it to the
    foreground (so that `aws` ends as it does there), then, after GRACE or at a second interrupt,
    SIGKILL for whatever is left, in its session or started from it."""
    known = _processes(process.pid)  # before its shell ends: what left its session is still its child
    try:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGINT)
        output.read_until(time.monotonic() + GRACE, ended=process)
        known.update(_processes(process.pid, known))
    except KeyboardInterrupt:
        pass  # interrupted again: no more waiting
    while True:  # however many times the student presses ■, nothing is left running
        try:
            _kill_all(process.pid, known)
            process.wait()
            break
        except KeyboardInterrupt:
            continue
    with contextlib.suppress(KeyboardInterrupt):
        output.read_until(time.monotonic() + 1.0)  # what they wrote before they ended


def popen(keeper: Keeper | None, args: list[str], **options: Any) -> subprocess.Popen[bytes] | Kept:
    """`subprocess.Popen`; for an instance sealed by environment, under the keeper that ends all it
    starts with the instance, inside its Landlock fence when it has one (labkit/seal/keeper.py)."""
    return keeper.popen(args, **options) if keeper else subprocess.Popen(args, **options)


def execute(
    script: str, env: dict[str, str], cwd: Path, timeout: float, enter: list[str], keeper: Keeper | None
) -> Ran:
    """Run shell commands as over SSH: stdout on a pseudo-terminal, so that programs behave as at a
    prompt (curl shows no progress meter, for one), stderr kept apart, no input. Interrupted
    (KeyboardInterrupt) or past `timeout`, the commands and all they started are stopped. `enter`
    goes before bash (a sealed instance's nsenter); `keeper`, the keeper of an instance sealed by
    environment (labkit/seal/keeper.py)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    source = anonymous_file(script)
    try:
        process = popen(
            keeper,
            [*enter, *bash(source, stop_at_ctrl_c=True)],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=(source,),
        )
    finally:
        os.close(slave)
        os.close(source)
    assert process.stderr is not None
    output = _Output(master, process.stderr.fileno())
    stopped = ""
    try:
        deadline = time.monotonic() + timeout
        if not output.read_until(deadline):
            stopped = "timeout"
        else:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # it closed its output, and runs on
                stopped = "timeout"
        if stopped:
            _stop(process, output)
    except KeyboardInterrupt:
        stopped = "interrupted"
        _stop(process, output)
    finally:
        output.selector.close()
        os.close(master)
        process.stderr.close()
    code = exit_status(process.wait())
    out = output.text(master).replace("\r\n", "\n")
    return Ran(code, as_a_terminal_shows(out), as_a_terminal_shows(output.text(output.errors)), stopped)


def on_this_terminal(keeper: Keeper | None, args: list[str], **options: Any) -> int:
    """Run `args` with this process's input and output, as over ssh; its return code. Where stdin is
    a terminal, the process gets one of its own, relayed to the user's (labkit/relay.py): no
    process of an instance ever holds the user's terminal, to type into it once the shell has ended."""
    start = functools.partial(popen, keeper) if keeper else relay.popen
    return relay.run(start, args, **options)
