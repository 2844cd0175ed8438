"""A terminal of its own for what runs on an instance, as sshd gives one to each login.

A process that holds the user's terminal (an open descriptor of it, or it as its controlling
terminal) can type into it: `ioctl(fd, TIOCSTI, c)` puts `c` in the terminal's input, on kernels
that allow it (`dev.tty.legacy_tiocsti`, and every kernel before that knob). Left in the background
on an instance, such a process waits for the instance's shell to end, then types a command that the
user's own shell runs, on the host, as the user. So no process of an instance ever gets the user's
terminal; labkit stands between them:

    the user's terminal ◀── raw ──▶ labkit (run) ◀── master ──▶ a new pseudo-terminal ◀── the instance

- Where stdin is a terminal, the instance's process gets a new pseudo-terminal: its other end is
  the process's stdin (and its stdout and stderr where those are the terminal), and its controlling
  terminal, in a session of its own (setsid and TIOCSCTTY, as sshd does: `popen`, or the keeper of
  an instance sealed by environment, labkit/seal/keeper.py).
  The new terminal starts with the user's modes and window size; the user's terminal is raw while
  labkit relays (Ctrl-C, Ctrl-D, Ctrl-Z reach the instance as typed) and is restored after,
  however it ends: the command's end, an error, SIGTERM or SIGHUP to labkit (which hang up the
  instance's terminal). SIGINT to labkit is passed on, as Ctrl-C; SIGWINCH copies the window size.
- Where it is not (a pipe, a file: scripts and tests), there is no new terminal: the process runs
  in a session of its own, with no controlling terminal, and a stdout or stderr that is the
  user's terminal reaches it through a pipe labkit copies. SIGINT to labkit reaches the process.

Once the process has ended, labkit shows what was written to its terminal until that falls
quiet (a job left in the background may hold it), then closes it: the instance's terminal is hung
up, and what is typed into it afterwards reaches nobody. Nor can an instance open the user's
terminal by its name: sealed by the kernel, its /dev/pts is its own; by environment, the fence
hides /dev/pts (labkit/seal/landlock.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import selectors
import shutil
import signal
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

from labkit.errors import LabError
from labkit.seal.bin import SYSTEM_PATH

# What starts the process: as subprocess.Popen(args, **options), and a new session whose stdin is a
# terminal gets it as its controlling terminal (`popen`, or a keeper's: labkit/seal/keeper.py).
Start = Callable[..., Any]

QUIET = 0.2  # after the process ended: stop showing its terminal's output once it has been quiet this long
DRAIN_LIMIT = 2.0  # ... and at the latest this long after it ended (something left behind may write on)
GRACE = 2.0  # seconds the process has to end once its terminal is hung up, before it is killed
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH)


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _setsid() -> str:
    found = shutil.which("setsid", path=SYSTEM_PATH)
    if found is None:
        raise LabError(
            "util-linux's `setsid` is not installed, and a shell on an instance needs it to get a terminal "
            "of its own. Install util-linux (on Debian or Ubuntu: `apt-get install util-linux`)."
        )
    return found


def popen(args: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(args, **options)`; a new session (`start_new_session`) whose stdin is a
    terminal gets it as its controlling terminal, as a login does: util-linux `setsid --ctty`
    makes the session (the process is no group's leader, so it does not fork) and takes the terminal."""
    stdin = options.get("stdin")
    if options.get("start_new_session") and isinstance(stdin, int) and stdin >= 0 and _is_terminal(stdin):
        options["start_new_session"] = False
        args = [_setsid(), "--ctty", *args]
    return subprocess.Popen(args, **options)


def run(start: Start, args: list[str], **options: Any) -> int:
    """Run `args` with this process's stdin, stdout and stderr, as over ssh: started by
    `start(args, **popen_options)`, through a terminal of its own where stdin is a terminal. Returns
    its return code, as subprocess says it (negative: killed by that signal)."""
    terminals = {fd for fd in (0, 1, 2) if _is_terminal(fd)}
    ends: dict[str, int] = {}  # the process's stdin, stdout, stderr that are not this process's own
    master = None
    copies: dict[int, int] = {}  # a descriptor labkit reads → the user's descriptor it is copied to
    given: list[int] = []  # descriptors only the process keeps
    try:
        if 0 in terminals:
            master, slave = pty.openpty()
            copies[master] = next(fd for fd in (1, 2, 0) if fd in terminals)  # what it shows
            given.append(slave)
            _copy_terminal(0, slave)
            ends = {"stdin": slave} | {name: slave for fd, name in ((1, "stdout"), (2, "stderr")) if fd in terminals}
        else:
            for fd, name in ((1, "stdout"), (2, "stderr")):
                if fd in terminals:
                    read, write = os.pipe()
                    copies[read] = fd
                    ends[name] = write
                    given.append(write)
        process = start(args, **ends, **options, start_new_session=True)
    except BaseException:
        for fd in (*copies, *given):
            os.close(fd)
        raise
    for fd in given:
        os.close(fd)
    return _Relay(process, master, copies).run()


def _copy_terminal(user: int, instance: int) -> None:
    """The user's terminal modes (its erase key, say) and window size, onto the instance's."""
    with contextlib.suppress(termios.error):
        termios.tcsetattr(instance, termios.TCSANOW, termios.tcgetattr(user))
    _copy_size(user, instance)


def _copy_size(user: int, instance: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(instance, termios.TIOCSWINSZ, fcntl.ioctl(user, termios.TIOCGWINSZ, bytes(8)))


class _Relay:
    """Copies between the user's descriptors and the process's until the process has ended."""

    def __init__(self, process: Any, master: int | None, copies: dict[int, int]) -> None:
        self.process, self.master, self.copies = process, master, copies
        self.selector = selectors.DefaultSelector()
        self.typed = b""  # what the user typed that the instance's terminal has not taken yet
        self.caught: list[int] = []
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def run(self) -> int:
        saved = None
        previous: dict[int, Any] = {}
        hung_up = 0
        try:
            if threading.current_thread() is threading.main_thread():
                previous = {number: signal.signal(number, self._caught) for number in SIGNALS}
            if self.master is not None:
                _copy_size(0, self.master)  # again: it may have changed before SIGWINCH was ours to catch
                saved = termios.tcgetattr(0)
                tty.setraw(0, termios.TCSADRAIN)
                self.selector.register(0, selectors.EVENT_READ)
                os.set_blocking(self.master, False)
            for fd in self.copies:
                self.selector.register(fd, selectors.EVENT_READ)
            self.selector.register(self.wake_read, selectors.EVENT_READ)
            hung_up = self._relay()
        except BaseException:
            self._hang_up()
            raise
        finally:
            if saved is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(0, termios.TCSADRAIN, saved)
            for number, handler in previous.items():
                signal.signal(number, handler)
            self._close()
        if hung_up:
            self._hang_up()
            if hung_up in previous:
                os.kill(os.getpid(), hung_up)  # labkit ends as the signal says, now that its terminal is restored
            return -hung_up
        return self.process.wait()

    def _caught(self, number: int, frame: object) -> None:
        self.caught.append(number)
        with contextlib.suppress(OSError):
            os.write(self.wake_write, b"\0")

    def _relay(self) -> int:
        """Copy until the process has ended and its output is shown; the signal (or SIGHUP, when
        the user's terminal is gone) that ended it early, else 0."""
        ended = None
        pidfd = None
        if isinstance(self.process, subprocess.Popen):  # a keeper's command: polled, its keeper says its end
            with contextlib.suppress(OSError):
                pidfd = os.pidfd_open(self.process.pid)
                self.selector.register(pidfd, selectors.EVENT_READ)
        try:
            while True:
                while self.caught:
                    number = self.caught.pop(0)
                    if number in (signal.SIGTERM, signal.SIGHUP):
                        return number
                    self._pass_on(number)
                if ended is None and self.process.poll() is not None:
                    ended = time.monotonic()
                if ended is not None and (time.monotonic() - ended > DRAIN_LIMIT or not self._reading()):
                    return 0
                timeout = QUIET if ended is not None else None if pidfd is not None else 0.1
                events = self.selector.select(timeout)
                if ended is not None and not events:
                    return 0
                for key, mask in events:
                    if key.fd == pidfd:
                        self.selector.unregister(pidfd)
                    elif key.fd == self.wake_read:
                        with contextlib.suppress(OSError):
                            os.read(self.wake_read, 64)
                    elif key.fd == 0:
                        if not self._typed():
                            return signal.SIGHUP  # the user's terminal is gone
                    else:
                        if mask & selectors.EVENT_WRITE:
                            self._type()
                        if mask & selectors.EVENT_READ:
                            self._show(key.fd)
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def _reading(self) -> bool:
        return any(fd in self.copies for fd in self.selector.get_map())

    def _pass_on(self, number: int) -> None:
        """SIGINT to labkit (`kill -INT`, or Ctrl-C where stdin is no terminal): to what runs in the
        foreground of the instance's terminal, or to the process's group; SIGWINCH: the new size."""
        if number == signal.SIGWINCH:
            if self.master is not None:
                _copy_size(0, self.master)
            return
        if self.master is None:
            self._signal_group(number)
        else:
            with contextlib.suppress(OSError):
                os.killpg(os.tcgetpgrp(self.master), number)

    def _signal_group(self, number: int) -> None:
        """The signal to the process's group: it leads a session of its own, so the group is its own."""
        with contextlib.suppress(OSError, LabError):  # LabError: a keeper killed before it said the pid
            os.killpg(self.process.pid, number)

    def _typed(self) -> bool:
        """Take what the user typed; False when their terminal has gone."""
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(0)
            return False
        self.typed += data
        self._type()
        return True

    def _type(self) -> None:
        """Hand what was typed to the instance's terminal, as much as it takes now."""
        assert self.master is not None
        try:
            self.typed = self.typed[os.write(self.master, self.typed) :] if self.typed else b""
        except BlockingIOError:
            pass
        except OSError:  # the instance's terminal is closed: nobody reads what is typed
            self.typed = b""
        if self.master in self.selector.get_map():
            self.selector.modify(self.master, selectors.EVENT_READ | (selectors.EVENT_WRITE if self.typed else 0))

    def _show(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: nothing holds the instance's terminal any more
            data = b""
        if not data:
            self.selector.unregister(fd)
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.copies[fd], view) :]
            except BlockingIOError:
                time.sleep(0.01)
            except OSError as error:
                if error.errno not in (errno.EIO, errno.EPIPE):
                    raise
                return  # the user's terminal is gone: nobody to show it to

    def _hang_up(self) -> None:
        """End the process as a hang-up does: its terminal closed, SIGHUP to its group and to it;
        killed if it has not ended after GRACE."""
        self._close()
        if self.process.poll() is not None:
            return
        self._signal_group(signal.SIGHUP)
        self.process.send_signal(signal.SIGHUP)
        try:
            self.process.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _close(self) -> None:
        """Close what labkit holds, once: the instance's terminal is hung up when its master closes."""
        if self.wake_read < 0:
            return
        self.selector.close()
        for fd in (*self.copies, self.wake_read, self.wake_write):
            os.close(fd)
        self.wake_read = self.wake_write = -1
