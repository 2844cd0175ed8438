"""The lab's state directory: where a lab records where it listens, its pid and its keys.

One directory is one lab: `$LABKIT_HOME` if set, else a per-user directory
(`$XDG_STATE_HOME/labkit`, by default `~/.local/state/labkit`). It holds

    lab.json         ports, pid and administrator keys of the running lab (owner-only)
    lab.lock         locked by the lab process for as long as it lives: the directory's owner
    lab.log          what the lab process printed
    journal.jsonl    every change made to the lab, to bring it back after a crash (labkit.labprocess.journal)
    options.json     the lab's options that outlive a restart: `labkit up --iam-delay`, `--sealed` (owner-only;
                     labkit.labprocess.options)
    instances/<id>/  the home directory of each simulated instance, and its identity file (labkit/seal/landlock.py)
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labkit.protocol import INFO_FILE, OWNER_LOCK


def lab_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The state directory of the lab: `home`, else `$LABKIT_HOME`, else a per-user one."""
    if home is not None:
        path = Path(home)
    elif os.environ.get("LABKIT_HOME"):
        path = Path(os.environ["LABKIT_HOME"])
    else:
        state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        path = Path(state) / "labkit"
    return path.expanduser().resolve()


def ensure_home(home: Path) -> Path:
    """Create the state directory, readable by its owner only."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    return home


@dataclass(frozen=True)
class LabInfo:
    """Where a running lab listens and how to act as its administrator."""

    pid: int
    api_port: int
    imds_port: int
    admin_access_key_id: str
    admin_secret_access_key: str
    secret: str
    started_at: float
    restored: int = -1  # changes replayed from the journal at start; -1: a new lab, nothing to restore
    problem: str = ""  # what was wrong with the journal, if anything
    fixes_missing: list[str] = field(default_factory=list)  # the lab's changes to moto it could not apply
    iam_delay: float = 0.0  # seconds IAM changes take to reach role sessions and EC2 (`labkit up --iam-delay`)
    sealed: bool = False  # instances run in namespaces of their own (the default where the host allows it)
    seal_asked: bool = False  # the lab was asked to seal them so (not `labkit up --no-sealed`)
    seal_note: str = ""  # when they are not: why, in one line

    def sealing(self) -> str:
        """How the lab's instances are sealed, in one line."""
        if self.sealed:
            return "each instance is a machine of its own, sealed by the kernel in namespaces"
        return self.seal_note or "instances are sealed by environment only"

    def restoration(self) -> str:
        """One line on what the lab brought back when it started, or '' for a new lab."""
        if self.restored < 0:
            return ""
        said = f"The lab had stopped; it is back, with the {self.restored} changes in its journal replayed."
        return f"{said} Note: {self.problem}." if self.problem else said

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def read_info(home: Path) -> LabInfo | None:
    """The lab's record, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((home / INFO_FILE).read_text())
        return LabInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_info(home: Path, info: LabInfo) -> None:
    """Write the lab's record atomically, readable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".lab-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(info), f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, home / INFO_FILE)


def remove_info(home: Path) -> None:
    try:
        (home / INFO_FILE).unlink()
    except FileNotFoundError:
        pass


# -- who owns the directory: the process that holds the lock on lab.lock, for as long as it lives ----
PROBE_GRACE = 0.5  # seconds a starting lab waits out a client's momentary look at the lock


def take_ownership(home: Path) -> int | None:
    """In the lab process: lock lab.lock for the rest of its life and write its pid there; returns
    the open file descriptor (keep it open), or None when another process owns the directory. The
    kernel releases the lock when the process ends, however it ends."""
    fd = os.open(home / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + PROBE_GRACE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:  # not a client's look: another lab process
                os.close(fd)
                return None
            time.sleep(0.01)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def owner(home: Path) -> int | None:
    """The pid of the lab process that owns `home` (0 if it has not written it yet), or None when
    no process does. Asks the kernel, through the lock; a pid in lab.json proves nothing."""
    try:
        fd = os.open(home / OWNER_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
