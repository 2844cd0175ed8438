"""`labkit --user USER`: its refusals, each in one line that says what to type instead.

These run in a second or so. Acting for a user for real (a lab started, reset and stopped as a second,
unprivileged user) is in tests/test_shared_install.py, over the shared install.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from labkit.errors import UserNotFound
from labkit.foruser import run_as

NOBODY = 65534  # Debian's `nobody`: an unprivileged uid every host has
UNKNOWN = "nosuchuser-labkit"


# these cases need root (conftest.need_root, through the `root` mark): without it they skip, under CI they fail
NEEDS_ROOT = "this test needs root: only root may use `labkit --user`, and it acts as other users"


def labkit_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """The `labkit` command as an unprivileged caller. As root: labkit is imported first, then the
    process gives up root for uid 65534, then runs the command line (this venv's Python may lie
    where other users cannot read it). Otherwise: the command itself, as the current user."""
    if os.geteuid() != 0:
        return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True)
    script = textwrap.dedent(f"""
        import os, sys
        import labkit.cli, labkit.foruser
        os.setgroups([])
        os.setgid({NOBODY})
        os.setuid({NOBODY})
        sys.exit(labkit.cli.main({list(args)!r}))
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")


def test_a_caller_who_is_not_root_is_refused_and_told_the_command_for_their_own_lab() -> None:
    result = labkit_as_nobody("--user", "root", "status", "--json")
    caller = pwd.getpwuid(NOBODY if os.geteuid() == 0 else os.geteuid()).pw_name
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "labkit: Only root may act for another user: `labkit --user root` runs the command as root, "
        f"and you are {caller}. For your own lab, run `labkit status --json`.\n"
    )


@pytest.mark.root(reason=NEEDS_ROOT)
def test_an_unknown_user_is_a_user_not_found_that_lists_the_users_with_a_lab() -> None:
    with pytest.raises(UserNotFound, match=rf"^No user {UNKNOWN} on this host; users with a lab: .+\.") as raised:
        run_as(UNKNOWN, ["status"])
    assert isinstance(raised.value, LookupError)
    assert str(raised.value).endswith("Give a login name, as in `labkit --user alice status`.")


@pytest.mark.root(reason=NEEDS_ROOT)
def test_an_unknown_user_is_one_line_from_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "--user", UNKNOWN, "status"], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"labkit: No user {UNKNOWN} on this host; users with a lab: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.root(reason=NEEDS_ROOT)
def test_a_labkit_the_user_cannot_reach_is_named_with_the_way_to_the_shared_install() -> None:
    user = next(p for p in pwd.getpwall() if p.pw_uid not in (0, NOBODY) and Path(p.pw_dir).is_dir())
    closed = Path(tempfile.mkdtemp(prefix="labkit-private-"))  # 0700: no other user may enter it
    try:
        # a venv in that directory, which sees this test's packages (labkit among them)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(closed / "venv")], check=True)
        packages = next((closed / "venv" / "lib").glob("python3*/site-packages"))
        seen = [p for p in sys.path if p.endswith("site-packages")]
        (packages / "outer.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in seen))
        python = closed / "venv" / "bin" / "python"
        result = subprocess.run(
            [str(python), "-m", "labkit.cli", "--user", user.pw_name, "status"], capture_output=True, text=True
        )
    finally:
        subprocess.run(["rm", "-rf", str(closed)], check=True)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"labkit: {user.pw_name} cannot run this labkit: {python} ")
    assert f"is out of their reach, as {user.pw_name} may not enter {closed}. " in result.stderr
    assert "Install labkit where every user can run it: run `make install` as root" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
