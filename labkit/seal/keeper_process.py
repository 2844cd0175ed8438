"""The keepers of an instance's commands, as processes (labkit/seal/keeper.py says what they are for).

Run as `python -I -S keeper_process.py` by the caller's side (labkit/seal/keeper.py), with the standard
library alone: the source, which keeps one keeper forked ahead, and each keeper, with its command's
process forked ahead too. What the caller and they say to each other is `marshal`ed (the same
Python on both ends): the job; then, on the caller's line to the command, `{"pid": …}` and
`{"status": …}` (a wait status) from the keeper, and `{"signal": …}` for the command from the caller.
What a keeper asks the lab is in keeper_lab.py, beside it (loaded by its path when this one is run so).
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import marshal
import os
import select
import signal
import socket
import termios
import time

TYPE_CHECKING = False  # typing, like json, contextlib and pathlib, is left unimported: a quicker start
if TYPE_CHECKING:
    from typing import Any, NoReturn
if TYPE_CHECKING or __package__:  # imported, as labkit.seal.keeper_process
    from labkit.seal.keeper_lab import UNASKED, Lab
else:  # run by its path with the standard library alone (-I -S): its sibling, by its path
    import importlib.util

    _here = os.path.dirname(__file__)
    _spec = importlib.util.spec_from_file_location("keeper_lab", os.path.join(_here, "keeper_lab.py"))
    _sibling = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
    _spec.loader.exec_module(_sibling)  # type: ignore[union-attr]
    UNASKED, Lab = _sibling.UNASKED, _sibling.Lab

TELL_SOURCE = 0.05  # seconds a command runs before its keeper's source forks the next keeper
QUIET = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
PR_SET_NAME, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 15, 36, 38
LANDLOCK_RESTRICT_SELF = 446  # as in labkit/seal/landlock.py
RULESET = -1  # where a descriptor goes: the instance's Landlock ruleset, applied, not kept

_libc = ctypes.CDLL(None, use_errno=True)


def main() -> NoReturn:
    """The keepers' source: keep one keeper forked ahead, waiting for a job on descriptor 0 (so
    that no fork of a keeper stands between a command and its start); end with the caller."""
    gc.disable()  # nothing here makes cycles; a keeper's fork copies fewer pages
    for number in QUIET:  # what a terminal sends its foreground reaches the commands, not their keepers
        signal.signal(number, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the keepers
    jobs = socket.socket(fileno=0)  # read by the ready keeper's command process
    taken, told = os.pipe()
    while True:
        try:
            keeper = os.fork()
        except OSError:  # too many processes for now: the next job waits
            time.sleep(0.1)
            continue
        if keeper == 0:
            try:
                os.close(taken)
                _ready(jobs, told)
            finally:
                os._exit(1)
        try:
            ended = os.pidfd_open(keeper)
        except OSError:  # Linux before 5.3: trust it to say
            ended = -1
        ready = select.select([taken] + ([ended] if ended >= 0 else []), [], [])[0]
        if ended >= 0:
            os.close(ended)
        if taken in ready and os.read(taken, 1) != b"t":  # the caller has gone
            os._exit(0)
        # taken (or gone before it took one): fork the next


def _ready(jobs: socket.socket, told: int) -> NoReturn:
    """A keeper forked ahead, ready: a subreaper, in a session of its own (no signal meant for the
    caller's terminal or the command's reaches it), with the command's process forked ahead too,
    which takes the next job and hands this one its line to the caller."""
    os.setsid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_NAME, ctypes.c_char_p(b"labkit-keeper"))
    wake, woken = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(woken)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    while True:
        try:
            command = os.fork()
            break
        except OSError:  # too many processes for now: the next job waits
            time.sleep(0.1)
    if command == 0:
        ours.close()
        os.close(told)
        _command(jobs, theirs)
    jobs.close()
    theirs.close()
    try:
        data, fds = _receive(ours)
        job = marshal.loads(data)
    except (OSError, ValueError, EOFError, TypeError):
        data, fds, job = b"", [], None
    ours.close()
    line = socket.socket(fileno=fds[0]) if fds else None
    if job is None or line is None:
        _tell(told, b"t" if data else b"e")  # a job that cannot run; or the caller has gone: no more keepers
        os._exit(0)
    _say(line, {"pid": command})
    lab = Lab(job)
    try:
        lab.ask()  # the run the command starts in: its status waits for the answer if it leaves anything
        _watch(command, lab, wake, line, told)
    except BaseException:  # a keeper that fails ends what it keeps: nothing outlives it
        _end_all(command)
        raise
    os._exit(0)


def _command(jobs: socket.socket, keeper: socket.socket) -> NoReturn:
    """The command's process, forked ahead: the leader of a session of its own, with signals as a
    new process has them. It takes the next job, hands its keeper the line to the caller, makes
    a stdin that is a terminal its controlling terminal, as at a login, and becomes the command."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for number in (*QUIET, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    try:
        data, fds = _receive(jobs)
        if not data:
            raise EOFError
        job = marshal.loads(data)
        line, fds = fds[-1], fds[:-1]
        assert len(job["targets"]) == len(fds)
    except (OSError, EOFError):
        os._exit(0)  # the caller has gone: the keeper hears the end of this line
    except (ValueError, KeyError, TypeError, IndexError, AssertionError):
        _say(keeper, {})  # a job that cannot run: refused (its line closes with this process)
        os._exit(0)
    jobs.close()
    socket.send_fds(keeper, [data], [line])
    os.close(line)
    keeper.close()
    if 0 in job["targets"] and os.isatty(terminal := fds[job["targets"].index(0)]):
        try:
            fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)
        except OSError:  # one that is another session's already stays its
            pass
    _become(job, fds)


def _receive(jobs: socket.socket) -> tuple[bytes, list[int]]:
    data, ancillary, flags, _ = jobs.recvmsg(1 << 20, socket.CMSG_SPACE(256 * 4), socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += list(memoryview(payload).cast("i")[: len(payload) // 4])
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        return b"{}", []  # unusable: refused, as a job without its line
    return data, fds


def _say(line: socket.socket | None, what: dict[str, int]) -> None:
    """Send `what` on `line`, if it is still there to hear it."""
    if line is not None:
        try:
            line.send(marshal.dumps(what))
        except OSError:
            pass


def _watch(command: int, lab: Lab, wake: int, line: socket.socket | None, told: int) -> None:
    """Reap; say the command's status on the caller's line; pass on the signals the caller sends it;
    ask the lab; until nothing is left below this process. End everything once the run is over.
    `told`: tell the source its next keeper is wanted, once the command has ended or has run
    TELL_SOURCE seconds (a fork then takes no time from a short command)."""
    status: int | None = None
    tell_at = time.monotonic() + TELL_SOURCE
    while True:
        ended, left = _end_all(command) if lab.over else _reap(command)
        status = ended if ended is not None else status
        if status is not None and line is not None and (not left or lab.run is not UNASKED):
            _say(line, {"status": status})  # nothing left, or the lab has answered
            line.close()
            line = None
        if told >= 0 and (status is not None or time.monotonic() >= tell_at):
            _tell(told, b"t")
            told = -1
        if not left:
            return
        watched = [wake] + [fd for fd in (line.fileno() if line else -1, lab.fileno()) if fd >= 0]
        timeout = lab.timeout()
        if told >= 0:
            timeout = max(0.0, min(timeout if timeout is not None else TELL_SOURCE, tell_at - time.monotonic()))
        ready, _, _ = select.select(watched, [], [], timeout)
        if wake in ready:
            try:
                os.read(wake, 4096)
            except BlockingIOError:
                pass
        if line is not None and line.fileno() in ready:
            try:
                number = int(marshal.loads(line.recv(4096))["signal"])
            except (OSError, ValueError, EOFError, KeyError, TypeError):  # the caller has gone: the command goes on
                line.close()
                line = None
                number = 0
            if number and status is None:
                try:
                    os.kill(command, number)  # not reaped yet: still the command
                except OSError:
                    pass
        if lab.fileno() >= 0 and lab.fileno() in ready:
            lab.read()
        elif lab.fileno() < 0 and not lab.over and lab.timeout() == 0:
            lab.ask()


def _tell(told: int, what: bytes) -> None:
    """Tell the source, if it is still there (it has ended with its caller when not)."""
    try:
        os.write(told, what)
    except OSError:
        pass
    os.close(told)


def _prctl(option: int, value: Any) -> None:
    if _libc.prctl(ctypes.c_int(option), value, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _above(job: dict[str, Any]) -> int:
    """The lowest descriptor number above all the command's."""
    return max([2, *job["targets"]]) + 1


def _become(job: dict[str, Any], fds: list[int]) -> NoReturn:
    """In the command's process: its descriptors at their numbers, its directory, the instance's
    fence; then its program. What fails is said on its stderr, and the status is 127, as a shell's."""
    try:
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _above(job)) for fd in fds]
        ruleset = -1
        for fd, target in zip(moved, job["targets"], strict=True):
            if target == RULESET:
                ruleset = fd
            else:
                os.dup2(fd, target)
        for number in {0, 1, 2} - set(job["targets"]):
            try:
                os.close(number)
            except OSError:
                pass
        os.chdir(job["cwd"])
        if ruleset >= 0:
            _prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1))
            if _libc.syscall(ctypes.c_long(LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
                number = ctypes.get_errno()
                raise OSError(number, os.strerror(number))
        os.execvpe(job["argv"][0], job["argv"], job["env"])
    except OSError as error:
        try:
            os.write(2, f"labkit: cannot run {job['argv'][0]}: {error.strerror}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(127)


def _reap(command: int) -> tuple[int | None, bool]:
    """Reap every child that has ended: the command's status if it was one of them, and whether
    any child is left."""
    ended = None
    try:
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return ended, True
            if pid == command:
                ended = status
    except ChildProcessError:
        return ended, False


def descendants() -> set[int]:
    """This process's descendants, from the kernel's list of each one's children (or, on a kernel
    built without that list, from every process's parent). The warm `aws` uses it too."""
    if not os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
        return _descendants_by_parent()
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    children = [int(child) for child in f.read().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _descendants_by_parent() -> set[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    parents[int(name)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found = {os.getpid()}
    while more := {pid for pid, parent in parents.items() if parent in found and pid not in found}:
        found |= more
    return found - {os.getpid()}


def _end_all(command: int) -> tuple[int | None, bool]:
    """SIGKILL everything below this process, over and over, until it has no child left (whatever
    a killed process had started comes here, as its orphan); the command's status if it was reaped."""
    ended = None
    while True:
        for pid in descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reaped, left = _reap(command)
        ended = reaped if reaped is not None else ended
        if not left:
            return ended, False
        time.sleep(0.005)


if __name__ == "__main__":
    main()
