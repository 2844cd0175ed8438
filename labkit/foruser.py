"""`labkit --user USER …`: root acts on USER's own lab, as USER.

    labkit --user alice status --json          # as root: alice's lab, as alice would see it
    labkit --user alice reset --yes --to 04
    labkit --user alice ssh demo-instance      # a shell on alice's instance

Root runs this same labkit as USER: USER's uid, gid and groups, USER's home as working directory,
and an environment made for USER that carries nothing of root's (no LABKIT_HOME, XDG_*, AWS_* or
proxy variable). The command therefore finds USER's own lab (`~/.local/state/labkit`), and a lab it
starts belongs to USER, exactly as if USER had typed it. The terminal's input and output pass
through, and the command's exit status is returned. `runuser -u USER -- labkit …` does the same
from a shell. The labkit run must be one every user may run: the shared install (`make install`).
"""

from __future__ import annotations

import os
import pwd
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import labkit
from labkit.errors import LabError, UserNotFound
from labkit.seal.bin import SYSTEM_PATH

SHARED_INSTALL = "run `make install` as root in a clone of the lab (docs/instructors.md)"


def run_as(user: str, argv: Sequence[str]) -> int:
    """Run `labkit *argv` as `user` (a login name or uid), on that user's own lab; root only.
    Returns the command's exit status (128 + N when signal N ended it)."""
    if os.geteuid() != 0:
        raise LabError(
            f"Only root may act for another user: `labkit --user {user}` runs the command as {user}, and "
            f"you are {_name_of(os.geteuid())}. For your own lab, run `{shlex.join(['labkit', *argv])}`."
        )
    account = _account(user)
    home = Path(account.pw_dir)
    if not home.is_dir():
        raise LabError(
            f"{account.pw_name}'s home directory {home} does not exist, and their lab lives in it "
            f"(~/.local/state/labkit). Create it: `install -d -m 700 -o {account.pw_name} -g {account.pw_gid} {home}`."
        )
    groups = os.getgrouplist(account.pw_name, account.pw_gid)
    command = _command()
    _check_runnable(account, groups, [command[0], sys.executable, str(Path(labkit.__file__).parent)])
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        process = subprocess.Popen(
            [*command, *argv],
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=groups,
            cwd=home,
            env=_environment(account),
        )
    except OSError as error:  # checked above; a mount with noexec, say, still refuses
        raise LabError(
            f"Could not run {command[0]} as {account.pw_name}: {error.strerror}. "
            f"Install labkit where every user can run it: {SHARED_INSTALL}."
        ) from None
    with _keyboard_signals_to_child_only():
        code = process.wait()
    return code if code >= 0 else 128 - code


def _environment(account: pwd.struct_passwd) -> dict[str, str]:
    """The environment of a command run for `account`: made for that user, none of the caller's."""
    env = {
        "HOME": account.pw_dir,
        "USER": account.pw_name,
        "LOGNAME": account.pw_name,
        "SHELL": account.pw_shell or "/bin/sh",
        "PATH": f"{Path(sys.executable).parent}:{SYSTEM_PATH}",  # this install's labkit and aws first
        "LANG": os.environ.get("LANG") or "C.UTF-8",
    }
    if os.environ.get("TERM"):
        env["TERM"] = os.environ["TERM"]
    return env


def _name_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _account(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        have = _users_with_a_lab()
        listing = ", ".join(have[:10]) + (", …" if len(have) > 10 else "") if have else "none yet"
        raise UserNotFound(
            f"No user {user} on this host; users with a lab: {listing}. "
            "Give a login name, as in `labkit --user alice status`."
        ) from None


def _users_with_a_lab() -> list[str]:
    """Users whose default lab state directory exists (their lab may be stopped)."""
    return sorted({p.pw_name for p in pwd.getpwall() if (Path(p.pw_dir) / ".local" / "state" / "labkit").is_dir()})


def _command() -> list[str]:
    """This labkit: the `labkit` script beside this Python, else this Python with `-m labkit.cli`."""
    script = Path(sys.executable).parent / "labkit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "labkit.cli"]


@contextmanager
def _effectively(account: pwd.struct_passwd, groups: list[int]) -> Iterator[None]:
    """Take the user's identity as the effective one for a moment, keeping root's to come back to."""
    saved_groups, saved_gid = os.getgroups(), os.getegid()
    os.setgroups(groups)
    os.setegid(account.pw_gid)
    os.seteuid(account.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(saved_gid)
        os.setgroups(saved_groups)


def _check_runnable(account: pwd.struct_passwd, groups: list[int], paths: list[str]) -> None:
    """Raise, in one line, unless the user may read and run every path (the kernel decides)."""
    real = {path: os.path.realpath(path) for path in paths}  # as root, who sees every link's target
    with _effectively(account, groups):
        blocked = next((p for p in paths if not os.access(p, os.R_OK | os.X_OK, effective_ids=True)), None)
        if blocked is None:
            return
        closed = next(
            (
                str(directory)
                for path in (blocked, real[blocked])
                for directory in reversed(Path(path).parents)
                if not os.access(directory, os.X_OK, effective_ids=True)
            ),
            None,
        )
    shown = blocked if real[blocked] == blocked else f"{blocked} (that is, {real[blocked]})"
    why = f"{account.pw_name} may not enter {closed}" if closed else f"{account.pw_name} may not read it"
    raise LabError(
        f"{account.pw_name} cannot run this labkit: {shown} is out of their reach, as {why}. "
        f"Install labkit where every user can run it: {SHARED_INSTALL}; then `labkit --user {account.pw_name} …`."
    )


@contextmanager
def _keyboard_signals_to_child_only() -> Iterator[None]:
    """Ctrl-C and Ctrl-\\ reach the command (it shares the terminal) and leave this process waiting."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
