"""The shared install (`make install`): every user of a host runs `labkit`, and root acts for them.

For real, as root: `make install` into a temporary PREFIX and BINDIR (BINDIR standing for
/usr/local/bin), then the installed `labkit` run by an unprivileged user (through `runuser`, with
BINDIR on their PATH) and by root for that user (`labkit --user`). The lab is the user's: its
process runs as the user, its state directory is theirs and readable by them only.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from conftest import STUDENT, student_account

ROOT = Path(__file__).resolve().parent.parent
# root's own settings, which must not reach a command run for the student (checked in the lab's environment)
ROOTS_ENV = {
    "LABKIT_HOME": "/nonexistent/roots-lab",
    "XDG_STATE_HOME": "/nonexistent/roots-state",
    "AWS_ACCESS_KEY_ID": "AKIACANARYROOTKEY000",
    "AWS_SECRET_ACCESS_KEY": "canary-secret",
    "http_proxy": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
}


# without root each test skips, saying why; under CI (CI=true) it fails instead (conftest.need_root)
pytestmark = [
    pytest.mark.root(
        reason=f"tests/test_shared_install.py needs root: it runs `make install` and acts as the user {STUDENT}"
    ),
    pytest.mark.slow,
]


@dataclass(frozen=True)
class Install:
    prefix: Path
    bindir: Path
    seconds: float  # how long the first `make install` took


@dataclass(frozen=True)
class Student:
    account: pwd.struct_passwd

    @property
    def home(self) -> Path:
        return Path(self.account.pw_dir)

    @property
    def state(self) -> Path:
        return self.home / ".local" / "state" / "labkit"


def make_install(prefix: Path, bindir: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "install", f"PREFIX={prefix}", f"BINDIR={bindir}"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return result, time.monotonic() - began


def tail(text: str, lines: int = 15) -> str:
    return "\n".join([line for line in text.splitlines() if "is ignored" not in line][-lines:])


@pytest.fixture(scope="module")
def install() -> Iterator[Install]:
    base = Path(tempfile.mkdtemp(prefix="labkit-shared-"))
    base.chmod(0o755)  # mkdtemp makes it 0700; every user must reach the install inside
    prefix, bindir = base / "opt" / "iam-roles-for-ec2", base / "bin"
    try:
        result, seconds = make_install(prefix, bindir)
        assert result.returncode == 0, f"make install failed after {seconds:.0f} s:\n{tail(result.stderr)}"
        yield Install(prefix, bindir, seconds)
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)  # three times faster than shutil.rmtree here


def labkit_as_student(
    install: Install, student: Student, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`labkit ARGS` typed by the student: their own login environment, BINDIR on their PATH."""
    env = {
        "HOME": str(student.home),
        "USER": STUDENT,
        "LOGNAME": STUDENT,
        "SHELL": "/bin/bash",
        "PATH": f"{install.bindir}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["runuser", "-u", STUDENT, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), "labkit", *args],
        cwd=student.home,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def labkit_as_root(install: Install, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`labkit ARGS` typed by root, whose environment holds its own lab, state, keys and proxy."""
    return subprocess.run(
        [str(install.bindir / "labkit"), *args],
        env={**os.environ, **ROOTS_ENV},
        cwd="/",
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def student(install: Install) -> Iterator[Student]:
    """The unprivileged user, with no lab yet; afterwards, their lab stopped and its state removed."""
    who = Student(student_account())
    labkit_as_student(install, who, "down")  # a lab left by an earlier, interrupted run
    shutil.rmtree(who.state, ignore_errors=True)
    yield who
    labkit_as_student(install, who, "down")
    shutil.rmtree(who.state, ignore_errors=True)


def status_of(install: Install, student: Student) -> dict[str, object]:
    result = labkit_as_student(install, student, "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))


def real_uid(pid: object) -> int:
    uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
    real, effective, saved, filesystem = map(int, uids.split()[1:])
    assert real == effective == saved == filesystem
    return real


def environment_of(pid: object) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)


# The install itself


def test_install_links_labkit_into_bindir(install: Install) -> None:
    assert os.readlink(install.bindir / "labkit") == str(install.prefix / "bin" / "labkit")
    assert (install.prefix / "bin" / "aws").is_file()  # beside the Python: what instances run


def test_install_holds_labkit_itself_not_a_link_to_the_clone(install: Install) -> None:
    found = subprocess.run(
        [str(install.prefix / "bin" / "python"), "-c", "import labkit; print(labkit.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert Path(found.stdout.strip()).is_relative_to(install.prefix / "lib")


def test_install_has_exactly_the_pinned_versions(install: Install) -> None:
    pins: dict[str, set[str]] = {}  # a name may be pinned twice, under two environment markers
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split(";")[0].split("==")
            pins.setdefault(canonicalize_name(name), set()).add(version.strip())
    freeze = subprocess.run(
        [str(install.prefix / "bin" / "python"), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    installed = {canonicalize_name(n): v for n, v in (line.split("==") for line in freeze if "==" in line)}
    assert not [line for line in freeze if line.startswith("-e")], "nothing is installed editable"
    assert {name: v for name, v in installed.items() if name in pins and v not in pins[name]} == {}
    assert {"boto3", "moto", "awscli", "jupyterlab"} <= set(installed)


def test_install_copies_the_notebooks_and_the_jupyterlab_settings(install: Install) -> None:
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in (install.prefix / "notebooks").glob("*.ipynb")) == notebooks
    overrides = install.prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert overrides.read_text() == (ROOT / "jupyter" / "overrides.json").read_text()


def test_everything_installed_is_readable_by_every_user(install: Install) -> None:
    closed = []
    for directory, _, files in os.walk(install.prefix):
        if stat.S_IMODE(os.stat(directory).st_mode) & 0o555 != 0o555:
            closed.append(directory)
        closed += [f"{directory}/{f}" for f in files if os.stat(f"{directory}/{f}").st_mode & 0o444 != 0o444]
    assert closed == []


def test_a_second_install_is_harmless(install: Install) -> None:
    before = sorted(
        str(p.relative_to(install.prefix)) for p in install.prefix.rglob("*") if "__pycache__" not in p.parts
    )
    result, seconds = make_install(install.prefix, install.bindir)
    assert result.returncode == 0, f"a second make install failed after {seconds:.0f} s:\n{tail(result.stderr)}"
    after = sorted(
        str(p.relative_to(install.prefix)) for p in install.prefix.rglob("*") if "__pycache__" not in p.parts
    )
    assert after == before
    assert os.readlink(install.bindir / "labkit") == str(install.prefix / "bin" / "labkit")
    print(f"\nmake install: first {install.seconds:.1f} s, second {seconds:.1f} s")


# The student, with `labkit` on their PATH


def test_the_students_labkit_up_starts_a_lab_the_student_owns(install: Install, student: Student) -> None:
    result = labkit_as_student(install, student, "up")
    assert result.returncode == 0, result.stderr
    assert f"(state in {student.state})" in result.stdout
    pid = status_of(install, student)["pid"]
    assert real_uid(pid) == student.account.pw_uid
    assert (student.state.stat().st_uid, stat.S_IMODE(student.state.stat().st_mode)) == (student.account.pw_uid, 0o700)
    assert (student.state / "lab.json").stat().st_uid == student.account.pw_uid


def test_the_students_status_json_reports_their_own_lab(install: Install, student: Student) -> None:
    status = status_of(install, student)
    assert (status["running"], status["home"]) == (True, str(student.state))
    assert "alice" in status["users"]  # type: ignore[operator]


def test_the_student_resets_to_a_checkpoint_and_runs_aws_on_an_instance(install: Install, student: Student) -> None:
    reset = labkit_as_student(install, student, "reset", "--yes", "--to", "04")
    assert reset.returncode == 0, reset.stderr
    assert "Reset the lab to checkpoint 04" in reset.stdout
    users = labkit_as_student(install, student, "ssh", "demo-instance", "--", "aws", "iam", "list-users")
    assert users.returncode == 0, users.stderr
    assert '"UserName": "alice"' in users.stdout


# Root, acting for the student


def test_root_with_user_sees_the_students_lab_and_none_of_its_own(install: Install, student: Student) -> None:
    pid = status_of(install, student)["pid"]
    result = labkit_as_root(install, "--user", STUDENT, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["pid"], status["home"]) == (pid, str(student.state))
    assert real_uid(pid) == student.account.pw_uid


def test_root_with_user_passes_input_output_and_exit_status_through(install: Install, student: Student) -> None:
    assert labkit_as_student(install, student, "reset", "--yes", "--to", "04").returncode == 0
    line = 'read line; echo "got $line as $(whoami)"; exit 3'
    result = labkit_as_root(install, "--user", STUDENT, "ssh", "demo-instance", "--", line, stdin="hello\n")
    # sealed by the kernel, the student's uid is ec2-user inside (root's would be nobody there)
    who = "ec2-user" if status_of(install, student)["sealed"] else STUDENT
    assert (result.returncode, result.stdout, result.stderr) == (3, f"got hello as {who}\n", "")


def test_root_with_user_resets_the_students_lab(install: Install, student: Student) -> None:
    assert labkit_as_student(install, student, "reset", "--yes", "--to", "04").returncode == 0
    result = labkit_as_root(install, "--user", STUDENT, "reset", "--yes", "--to", "03")
    assert result.returncode == 0, result.stderr
    assert "Reset the lab to checkpoint 03" in result.stdout
    assert labkit_as_student(install, student, "check", "03").returncode == 1  # notebook 03's work is undone
    assert labkit_as_student(install, student, "check", "02").returncode == 0


def test_a_lab_root_starts_for_the_student_is_the_students(install: Install, student: Student) -> None:
    stopped = labkit_as_root(install, "--user", STUDENT, "down")
    assert (stopped.returncode, stopped.stdout) == (0, "Stopped the lab.\n")
    started = labkit_as_root(install, "--user", STUDENT, "up")
    assert started.returncode == 0, started.stderr
    pid = status_of(install, student)["pid"]
    assert real_uid(pid) == student.account.pw_uid
    env = environment_of(pid)
    assert (env["HOME"], env["USER"]) == (str(student.home), STUDENT)
    assert set(ROOTS_ENV) & set(env) == set()
    assert not [name for name in env if name.startswith(("XDG_", "LABKIT_"))]
    assert [v for v in env.values() if "canary" in v.lower()] == []
    assert (student.state.stat().st_uid, stat.S_IMODE(student.state.stat().st_mode)) == (student.account.pw_uid, 0o700)


def test_root_with_an_unknown_user_is_told_in_one_line(install: Install) -> None:
    result = labkit_as_root(install, "--user", "nosuchuser", "status")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("labkit: No user nosuchuser on this host; users with a lab: ")
    assert f"{STUDENT}" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_student_may_not_act_for_another_user(install: Install, student: Student) -> None:
    result = labkit_as_student(install, student, "--user", "root", "status")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "labkit: Only root may act for another user: `labkit --user root` runs the command as root, "
        f"and you are {STUDENT}. For your own lab, run `labkit status`.\n"
    )


def test_the_students_labkit_down_stops_their_lab(install: Install, student: Student) -> None:
    pid = status_of(install, student)["pid"]
    result = labkit_as_student(install, student, "down")
    assert (result.returncode, result.stdout) == (0, "Stopped the lab.\n")
    stat_file = Path(f"/proc/{pid}/stat")
    assert not stat_file.exists() or stat_file.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # gone, or a zombie
