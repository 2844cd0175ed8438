"""The Landlock fence of an instance sealed by environment (the fallback where the host allows no
user namespaces): what its shell, and the warm `aws` serving it, may read, write and reach.

Without it, such an instance is a shell of the lab's own user: it could read the lab's `lab.json`
(administrator keys, the secret every proxy password derives from), the user's home, and the
environment of every process of theirs. Landlock (Linux 5.13 and later, unprivileged, allowed by
Docker's default seccomp profile) lets the kernel refuse that to one process and all it starts:

    the machine             read and run                   /, every directory listable (names only)
    /tmp, /var/tmp, /dev    read, write                    as on Amazon Linux, what anyone may write
      /dev/pts              nothing                        the user's terminals (labkit/relay.py)
    the lab's directory     nothing                        its `lab.json`, journal, other instances
      the instance's home   read, write                    its `~`
      the lab's bin         read and run                   `aws`, `python3`, `ec2-metadata`
    your home               nothing                        ~/.aws, the notebooks' kernel files
      Python and labkit     read and run                   wherever the venv and the clone live
    TCP (Landlock ABI 4)    connect to the lab's API and metadata ports only: nothing else answers
    processes               none outside the fence: no ptrace; every /proc/PID hidden, the
                            instance's own too (`ps` shows nothing); no signal (ABI 6)

The rules are planned in the caller's process (`build`, kept by `Fence`); each command of the
instance applies them as it starts, under a keeper outside the fence (labkit/seal/keeper.py).

Landlock only grants, so "all but a directory" is a rule for each sibling along the way down to it
(`_plan`); the directories on that way get none of their own, beyond the listing every directory
gets: an instance can create nothing directly in one of them (in /tmp when the lab's directory is
there). A sibling created after the plan is covered when the next command plans again.

The warm `aws` (labprocess/cliserver.py) runs each command in a child that fences itself the same
way, as the instance the command came from: the client proves which one by handing over its
instance's identity file open for reading, which only that instance's fence lets a process open.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import pwd
import site
import stat
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from labkit.protocol import BIN_DIR, IDENTITY_FILE, INSTANCES_DIR, instance_home, instance_identity

# linux/landlock.h; the syscall numbers are those of x86_64 and aarch64 (and every architecture since 5.13)
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # Landlock ABI 2, 3 and 5
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # what a rule on a file may grant
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
LISTING = READ_DIR
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/dev")  # what anyone may write on Amazon Linux
TERMINALS = ("/dev/pts",)  # a terminal of the user's, opened by its name, could be typed into (TIOCSTI)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]  # fmt: skip


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_prctl = _libc.prctl


def _call(number: int, *args: object) -> int:
    result = int(_syscall(ctypes.c_long(number), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers, or 0 when it has none (before 5.13, or switched off)."""
    try:
        return _call(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except OSError as error:
        if error.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            return 0
        raise


def said() -> str:
    """What fences an instance sealed by environment on this host, in a few words."""
    abi = landlock_abi()
    if not abi:
        return "Landlock is not available either, so an instance can read the lab's files and your home"
    reach = "; only the lab's ports reachable" if abi >= 4 else ""
    return f"each is fenced by Landlock (the lab's files, your home and other processes hidden{reach})"


def _handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: the 13 rights from EXECUTE to MAKE_SYM
    rights |= REFER if abi >= 2 else 0
    rights |= TRUNCATE if abi >= 3 else 0
    return rights | (IOCTL_DEV if abi >= 5 else 0)


class Ruleset:
    """A Landlock ruleset, planned for one instance, open in this process until it is applied (or,
    kept by `Fence`, while it is current)."""

    def __init__(self, fd: int, listed: tuple[tuple[str, int], ...]) -> None:
        self.fd = fd
        self.listed = listed  # the directories the plan listed, with their mtime then

    def apply(self) -> None:
        """Restrict the calling thread, and all it starts from now on; once."""
        try:
            if _prctl(*map(ctypes.c_ulong, (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))) != 0:
                raise OSError(ctypes.get_errno(), "cannot fence the instance: no_new_privs refused")
            _call(RESTRICT_SELF, ctypes.c_int(self.fd), ctypes.c_uint32(0))
        finally:
            os.close(self.fd)

    def current(self) -> bool:
        """Whether no directory the plan listed has changed since (a new entry would have no rule)."""
        try:
            return all(os.stat(path).st_mtime_ns == mtime for path, mtime in self.listed)
        except OSError:
            return False


class Fence:
    """The Landlock fence of one instance's commands: its ruleset, planned here and kept open while
    the directories the plan listed stay as they were (and $HOME, which it hides, says the same);
    then the next command gets a new plan. Each command applies it as it starts, in a child of its
    keeper, which stays outside (labkit/seal/keeper.py)."""

    def __init__(self, lab_home: Path, instance_id: str, ports: tuple[int, ...]) -> None:
        self.lab_home, self.instance_id, self.ports = lab_home, instance_id, ports

    def ruleset(self) -> int:
        """A descriptor of this instance's current ruleset, open for the caller, who closes it."""
        key = (self.lab_home, self.instance_id, self.ports, Path.home())
        with _LOCK:
            kept = _RULESETS.get(key)
            if kept is None or not kept.current():
                if kept is not None:
                    os.close(kept.fd)
                ruleset = build(self.lab_home, self.instance_id, ports=self.ports)
                if ruleset is None:
                    raise OSError(errno.ENOSYS, "Landlock is gone from this kernel")
                kept = _RULESETS[key] = ruleset
            return os.dup(kept.fd)


_RULESETS: dict[tuple[Path, str, tuple[int, ...], Path], Ruleset] = {}
_LOCK = threading.Lock()


def for_instance(lab_home: Path, instance_id: str, *, ports: tuple[int, ...]) -> Fence | None:
    """Where the commands of an instance start, fenced; None where Landlock is not available."""
    return Fence(lab_home, instance_id, ports) if landlock_abi() else None


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path)


def _hidden(lab_home: Path, homes: tuple[str, ...]) -> set[str]:
    """What an instance may not read: the lab's directory, the user's home (as $HOME and `homes`
    say, and as the password database says), and where the user's session and Jupyter keep their
    runtime files."""
    places = [str(lab_home), str(Path.home()), *homes, pwd.getpwuid(os.getuid()).pw_dir, f"/run/user/{os.getuid()}"]
    places += [os.environ.get(name, "") for name in ("XDG_RUNTIME_DIR", "JUPYTER_RUNTIME_DIR")]
    found = {_real(place) for place in places if place and os.path.isabs(place) and os.path.exists(place)}
    return found - {"/"}  # a user whose home is / hides nothing by it


def _within(path: str, place: str) -> bool:
    """Whether `path` is `place` or beneath it."""
    return path == place or path.startswith(place.rstrip("/") + "/")


def _code(hidden: set[str]) -> set[str]:
    """What the instance's `aws`, `python3` and `ec2-metadata`, and the warm aws, run: Python, its
    packages, labkit. A path that holds a hidden one (a sys.path entry that is the home) is left out."""
    places = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, os.path.dirname(sys.executable)]
    places += [os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(os.path.dirname(__file__))]  # labkit
    places += [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    found = {_real(place) for place in places if place and os.path.isdir(place)}
    return {path for path in found if not any(_within(hidden_path, path) for hidden_path in hidden)}


def _processes() -> dict[str, int]:
    """/proc, where every process's directory is hidden, its own too: Landlock keeps a fenced
    process from ptrace and /proc/PID/mem outside its fence, but not (Linux 6.18) from another
    process's environ. The rest of /proc (cpuinfo, meminfo, sys/…) stays readable."""
    rights = {"/proc": LISTING}
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        rights.update({entry.path: READ_ONLY for entry in entries if not entry.name.isdigit()})
    return rights


def _rights(lab_home: Path, instance_id: str | None, handled: int, homes: tuple[str, ...]) -> dict[str, int]:
    """What each path grants beneath it, until a deeper path says otherwise. Every path may be
    listed (names only): `ls /` works, and `ls` of a hidden directory shows names, never contents."""
    hidden = _hidden(lab_home, homes)
    rights: dict[str, int] = {"/": READ_ONLY}
    rights.update({_real(path): handled for path in WRITABLE if os.path.isdir(path)})
    rights.update({_real(path): LISTING for path in TERMINALS if os.path.isdir(path)})
    rights.update(_processes())
    rights.update({path: LISTING for path in hidden})
    rights.update({path: READ_ONLY for path in _code(hidden)})
    rights[str(lab_home / BIN_DIR)] = READ_ONLY
    if instance_id is not None:
        rights[str(instance_home(lab_home, instance_id))] = handled
        rights[str(instance_identity(lab_home, instance_id))] = READ_FILE | LISTING
    return rights


def _effective(path: str, rights: dict[str, int]) -> int:
    while path not in rights:
        path = os.path.dirname(path)
    return rights[path]


@dataclass
class _Plan:
    rules: list[tuple[str, int]] = field(default_factory=list)  # (path, rights granted beneath it)
    listed: list[str] = field(default_factory=list)  # the directories whose entries have rules of their own


def _plan(path: str, granted: int, rights: dict[str, int], ways: set[str], plan: _Plan) -> None:
    """Add to `plan` the rules that give every path beneath `path` its effective rights, given
    the rights `granted` above it: one rule at `path` for what everything beneath it shares, then,
    where a deeper path differs (`path` is on the way to it: in `ways`), the same for each entry."""
    want = _effective(path, rights)
    beneath = (
        [given for place, given in rights.items() if place != path and _within(place, path)] if path in ways else []
    )
    common = want
    for given in beneath:
        common &= given
    if common & ~granted:
        plan.rules.append((path, common & ~granted))
        granted |= common
    if want == granted and all(given == granted for given in beneath):
        return
    plan.listed.append(path)
    try:
        with os.scandir(path) as found:
            entries = [entry.path for entry in found if not entry.is_symlink()]
    except OSError:  # a directory we may not list: only the ways down to deeper paths
        entries = sorted({place for place in (*ways, *rights) if place != path and os.path.dirname(place) == path})
    for entry in entries:
        _plan(entry, granted, rights, ways, plan)


def _ways(rights: dict[str, int]) -> set[str]:
    """Every directory that holds, deeper down, a path of its own in `rights`."""
    found = set()
    for place in rights:
        while place != "/":
            place = os.path.dirname(place)
            found.add(place)
    return found


def _add_path_rule(ruleset: int, path: str, allowed: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return  # gone since it was listed: nothing to grant
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            allowed &= FILE_RIGHTS
        if allowed:
            attr = _PathBeneathAttr(allowed, fd)
            _call(
                ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(attr), ctypes.c_uint32(0)
            )
    finally:
        os.close(fd)


def identity_of(lab_home: Path, instance_id: str) -> Path:
    """The file that proves to the warm `aws` that a command runs on this instance (made if missing):
    only the instance's fence lets a process open it (where the kernel has no Landlock, every
    instance can, and the seal line says that instances can read the lab's files)."""
    identity = instance_identity(lab_home, instance_id)
    if not identity.exists():
        instance_home(lab_home, instance_id).mkdir(parents=True, exist_ok=True)
        identity.write_text(instance_id + "\n")
    return identity


def build(
    lab_home: Path, instance_id: str | None, *, ports: tuple[int, ...], homes: tuple[str, ...] = ()
) -> Ruleset | None:
    """A new fence for `instance_id` (None: a process of no instance, which writes only in /tmp) of
    the lab in `lab_home`, whose TCP reaches only `ports`; `homes`: the user's home as other
    processes of the lab know it, hidden too. None where Landlock is not available."""
    abi = landlock_abi()
    if not abi:
        return None
    handled = _handled_fs(abi)
    if instance_id is not None:
        identity_of(lab_home, instance_id)
    rights = _rights(lab_home, instance_id, handled, homes)
    plan = _Plan()
    _plan("/", 0, rights, _ways(rights), plan)
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0, 0)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    size = 8 if abi < 4 else 16 if abi < 6 else ctypes.sizeof(attr)
    stamps = tuple((path, os.stat(path).st_mtime_ns) for path in plan.listed)
    ruleset = _call(CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for path, allowed in plan.rules:
            _add_path_rule(ruleset, path, allowed)
        for port in ports if abi >= 4 else ():
            net = _NetPortAttr(NET_CONNECT_TCP, port)
            _call(ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_NET_PORT), ctypes.byref(net), ctypes.c_uint32(0))
    except BaseException:
        os.close(ruleset)
        raise
    return Ruleset(ruleset, stamps)


def proven_instance(lab_home: Path, fd: int) -> str | None:
    """The instance whose identity file `fd` is open for reading, or None: only that instance's
    fence lets a process open it so (an O_PATH descriptor, which any process may open, proves nothing)."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if flags & os.O_PATH or flags & os.O_ACCMODE == os.O_WRONLY:
            return None
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        held, there = os.fstat(fd), os.stat(path)
    except OSError:
        return None
    if path.name != IDENTITY_FILE or path.parent.parent != lab_home / INSTANCES_DIR:
        return None
    return path.parent.name if (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino) else None
