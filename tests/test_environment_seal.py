"""Where the host allows no user namespaces: the lab says in one line that its instances are sealed
by their environment only, and the lesson works, with Landlock or without it.

Such a host (Docker's and Kubernetes' default seccomp profile, Ubuntu 24.04's AppArmor rule) is
made for real: the tests run inside a user namespace whose `user.max_user_namespaces` is 0, so the
lab's own attempt to make one fails as it would there. The demo and nbval over every notebook run
on such a host in tests/test_offline.py (its "sealed by environment" case, offline as well), with
tests/sanitize-environment-seal.cfg on top of tests/sanitize.cfg: it replaces only what the seal
itself changes (where the instance's home is, and the line saying how instances are sealed), and
this file asserts that line separately.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.seal import landlock

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

ROOT = Path(__file__).resolve().parent.parent
NO_NAMESPACES = "echo 0 > /proc/sys/user/max_user_namespaces && "  # the host's refusal, made for real


def without_user_namespaces(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a shell command inside a user namespace where no further one can be made."""
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "bash", "-c", NO_NAMESPACES + command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_lab_says_in_one_line_that_instances_are_sealed_by_environment_only(tmp_path: Path) -> None:
    env = {**os.environ, "LABKIT_HOME": str(tmp_path / "lab")}
    env.pop("LABKIT_SEALED", None)
    labkit = f"{sys.executable} -m labkit.cli"
    done = without_user_namespaces(f"{labkit} up && {labkit} status && {labkit} status --json; {labkit} down", env, 120)
    assert done.returncode == 0, done.stderr[-2000:]
    why = "user namespaces are switched off here (user.max_user_namespaces is 0)"
    said = f"instances are sealed by environment only on this host: {why}; {landlock.said()}"
    assert f"labkit: {said}." in done.stdout.splitlines()  # at start, in one line
    assert f"  sealing:   {said}" in done.stdout.splitlines()  # in `labkit status`
    status = json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1])
    assert (status["sealed"], status["seal_asked"], status["seal_note"]) == (False, True, said)


# Seccomp, as an older container engine's default profile has it: the Landlock calls answer ENOSYS.
# A classic BPF program over seccomp_data.nr: 444-446 (landlock_create_ruleset, _add_rule, _restrict_self).
WITHOUT_LANDLOCK = r"""
import ctypes, os, struct, sys
program = b"".join(struct.pack("HBBI", *op) for op in [
    (0x20, 0, 0, 0),                     # load the syscall number
    (0x35, 0, 2, 444),                   # below 444: allow
    (0x25, 1, 0, 446),                   # above 446: allow
    (0x06, 0, 0, 0x00050000 | 38),       # 444-446: ENOSYS
    (0x06, 0, 0, 0x7FFF0000),            # allow
])
buffer = ctypes.create_string_buffer(program)
fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0, os.strerror(ctypes.get_errno())  # SECCOMP_MODE_FILTER
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""
SCENARIO = """
import json, labkit
from labkit.seal import landlock
lab = labkit.connect()
lab.reset(to="04", say=False)
box = lab.instance("demo-instance")
said = box.run("aws sts get-caller-identity --query Arn --output text; cat ~/../../../lab.json >/dev/null && echo read")
print(json.dumps({"abi": landlock.landlock_abi(), "sealing": lab.sealing, "said": said.stdout.split()}))
labkit.down()
"""


def test_without_landlock_either_the_lab_says_so_and_the_lesson_works(tmp_path: Path) -> None:
    """A host that refuses user namespaces and has no Landlock (an older kernel, or a seccomp profile
    without its calls, made here for real): the note says what is left, and the demo still runs."""
    (tmp_path / "without_landlock.py").write_text(WITHOUT_LANDLOCK)
    (tmp_path / "scenario.py").write_text(SCENARIO)
    env = {**os.environ, "LABKIT_HOME": str(tmp_path / "lab")}
    env.pop("LABKIT_SEALED", None)
    done = without_user_namespaces(
        f"{sys.executable} {tmp_path / 'without_landlock.py'} {tmp_path / 'scenario.py'}", env, 300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["abi"] == 0 and landlock.landlock_abi() > 0  # the filter, not this kernel, took Landlock away
    assert result["sealing"] == (
        "instances are sealed by environment only on this host: user namespaces are switched off here "
        "(user.max_user_namespaces is 0); Landlock is not available either, so an instance can read the "
        "lab's files and your home"
    )
    role = "arn:aws:sts::123456789012:assumed-role/DemoRoleForEC2/"
    assert result["said"][0].startswith(role) and result["said"][1:] == ["read"]  # unfenced: the README says so
