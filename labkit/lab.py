"""The lab process's life: start it (`up`), find it (`running_info`), stop it (`down`).

    from labkit.lab import up, down
    info, started = up()       # the lab of $LABKIT_HOME, started unless it runs; its record (lab.json)
    down()                      # asked to stop, then signalled, then killed; False when none ran

A lab process is started with an environment that holds none of the host's `AWS_*` variables or
proxies, and reads no `~/.aws` (`lab_process_env`). What a notebook talks to is labkit/connection.py.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from labkit import procfs
from labkit.control import answers, call
from labkit.errors import LabError, LabStartFailed
from labkit.protocol import LOG_FILE, START_LOCK
from labkit.statedir import LabInfo, ensure_home, lab_home, owner, read_info, remove_info

START_TIMEOUT = 60.0


def running_info(home: Path) -> LabInfo | None:
    """The record of the lab running for `home`, or None when none answers."""
    info = read_info(home)
    return info if info is not None and answers(info) else None


def lab_process_env() -> dict[str, str]:
    """The environment a lab process starts with: the caller's, without its AWS_* and proxy
    variables, and with no AWS config or credentials file (tests/test_offline.py)."""
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    kept = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in drop}
    return {
        **kept,
        "PYTHONHASHSEED": "0",  # the same ids and orders from the same steps, every time
        # moto makes botocore sessions; they must not read the student's ~/.aws (found by tests/test_offline.py)
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _sealed_from_environment() -> bool | None:
    """`LABKIT_SEALED=1` (or 0): what labkit.connect() and tests ask of a lab they start."""
    value = os.environ.get("LABKIT_SEALED", "")
    return None if value == "" else value not in ("0", "false", "no")


def _start(home: Path, *, iam_delay: float | None = None, sealed: bool | None = None) -> LabInfo:
    kept = 256 * 1024  # lab.log keeps the last 256 KB of earlier runs, from a whole line: enough to see why one stopped
    if (home / LOG_FILE).exists() and (home / LOG_FILE).stat().st_size > kept:
        with open(home / LOG_FILE, "r+b") as earlier:  # no lab writes to it now: none answers, and we hold START_LOCK
            earlier.seek(-kept, os.SEEK_END)
            end = earlier.read()
            earlier.seek(0)
            earlier.write(end[end.find(b"\n") + 1 :])
            earlier.truncate()
    log = open(home / LOG_FILE, "ab")
    delay = [] if iam_delay is None else ["--iam-delay", str(float(iam_delay))]
    sealed = _sealed_from_environment() if sealed is None else sealed
    seal = [] if sealed is None else ["--sealed" if sealed else "--no-sealed"]
    process = subprocess.Popen(
        [sys.executable, "-m", "labkit.labprocess.main", "--home", str(home), *delay, *seal],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=lab_process_env(),
        cwd=home,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (home / LOG_FILE).read_text(errors="replace").strip().splitlines()[-3:]
            raise LabStartFailed(
                f"The lab process exited with status {process.returncode} while starting: "
                f"{' | '.join(tail)}. Full log: {home / LOG_FILE}"
            )
        info = read_info(home)
        if info is not None and info.pid == process.pid and answers(info):
            return info
        time.sleep(0.05)
    process.kill()
    raise LabStartFailed(f"The lab did not answer within {START_TIMEOUT:.0f} s; see {home / LOG_FILE}.")


def up(
    home: str | os.PathLike[str] | None = None, *, iam_delay: float | None = None, sealed: bool | None = None
) -> tuple[LabInfo, bool]:
    """Start the lab of `home` unless it runs already; returns its record and whether it started.

    `iam_delay`: the seconds IAM changes take to reach role sessions and EC2, as on AWS (0: at
    once); a lab it starts keeps it across restarts, and None starts one with the delay it had
    last. A running lab keeps its own: its record's `iam_delay` says which. `sealed`: each instance a
    machine of its own, in namespaces (labkit/labprocess/sandbox.py); kept the same way (None: as
    `LABKIT_SEALED` says, else as last started).

    A lab process that owns the directory (holds its lock) is never doubled: when it does not
    answer, `up` waits for it while it runs, and says what to do when it cannot answer."""
    path = ensure_home(lab_home(home))
    with open(path / START_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = running_info(path)
        if info is not None:
            return info, False
        pid = owner(path)
        if pid is None:
            return _start(path, iam_delay=iam_delay, sealed=sealed), True
        deadline = time.monotonic() + START_TIMEOUT
        while (pid := owner(path)) is not None and time.monotonic() < deadline:
            info = read_info(path)
            if info is not None and info.pid == pid and answers(info):
                return info, False
            if info is None or info.pid != pid or _process_state(pid) == "T":
                break  # waiting would not help
            time.sleep(0.1)
        if pid is None:  # it ended meanwhile
            return _start(path, iam_delay=iam_delay, sealed=sealed), True
        raise LabError(
            f"The lab process {pid} owns {path} but does not answer ({_why_silent(path, pid)}). "
            "`labkit down` stops it; `labkit up` then brings the lab back from its journal."
        )


def _why_silent(path: Path, pid: int) -> str:
    if _process_state(pid) == "T":
        return "it is stopped, as by Ctrl-Z or SIGSTOP"
    info = read_info(path)
    if info is None:
        return "lab.json, which says where it listens, is missing or unreadable"
    if info.pid != pid:
        return f"lab.json names another process, {info.pid}"
    return "it is busy or hung"


def _process_state(pid: int) -> str:
    """The state letter of process `pid` (R, S, T, Z, …), or '' when it cannot be read."""
    found = procfs.stat(pid)
    return found.state if found is not None else ""


def down(home: str | os.PathLike[str] | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the lab of `home`; returns False when none was running.

    The lab is the process that owns the directory (labkit.statedir.owner), answering or not:
    asked to stop, then signalled, then killed; lab.json goes only once it has ended."""
    path = lab_home(home)
    pid = owner(path)
    if pid is None:
        remove_info(path)
        return False
    info = read_info(path)
    asked = False
    if info is not None and info.pid == pid:
        try:
            call(info, "shutdown", method="POST", timeout=2.0)
            asked = True
        except (OSError, ValueError):
            pass
    if not asked and pid > 0:
        _signal(pid, signal.SIGTERM)
        _signal(pid, signal.SIGCONT)  # a stopped process takes its SIGTERM once it runs again
    if not _released(path, timeout) and (pid := owner(path) or pid) > 0:
        _signal(pid, signal.SIGKILL)
        _released(path, timeout)
    if owner(path) is not None:
        raise LabError(f"The lab process {pid} owns {path} and could not be stopped; stop it with `kill -9 {pid}`.")
    deadline = time.monotonic() + 2.0
    while pid > 0 and _pid_alive(pid) and time.monotonic() < deadline:  # it has ended: reap it if it is ours
        time.sleep(0.01)
    remove_info(path)
    return True


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _released(path: Path, timeout: float) -> bool:
    """Wait until no process owns `path`, for up to `timeout` seconds; returns whether none does."""
    deadline = time.monotonic() + timeout
    while owner(path) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (exited, not yet reaped by its parent) does not.
    Our own child is reaped here once it has exited, so that it is gone when we say so."""

    def reap() -> None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours: its parent (or init) reaps it
            pass

    reap()
    if Path("/proc").is_dir():
        found = procfs.stat(pid)
        if found is None:
            return False
        running = found.state != "Z"
        if not running:
            reap()  # it exited after the first look
        return running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
