"""Fixtures: one lab per test session (its own LABKIT_HOME), reset where a test needs a fresh one; a
lab of a test's own; and the helpers several test modules share (`from conftest import ...`)."""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import labkit
from labkit.catalogue import EC2_TRUST_POLICY as EC2_TRUST
from labkit.catalogue import INSTANCE, PROFILE, READ_ONLY, ROLE
from labkit.lab import running_info
from labkit.solutions import launch
from labkit.statedir import owner

NO_CREDENTIALS = 'Unable to locate credentials. You can configure credentials by running "aws configure".'
# Amazon Linux 2023 requires IMDSv2: fetch with a session token, as the SDKs and `ec2-metadata` do.
IMDS_TOKEN = (
    'H="X-aws-ec2-metadata-token: $(curl -s -X PUT http://169.254.169.254/latest/api/token '
    '-H "X-aws-ec2-metadata-token-ttl-seconds: 60")"; '
)


def imds_get(url: str, options: str = "-s") -> str:
    """The shell command that GETs `url` from the metadata service with an IMDSv2 token."""
    return f'{IMDS_TOKEN}curl {options} -H "$H" {url}'


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def lab(lab_home: Path) -> Iterator[labkit.Lab]:
    lab = labkit.connect(lab_home)
    yield lab
    labkit.down(lab_home)


@pytest.fixture(scope="session")
def environment_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.Lab]:
    """A lab whose instances are sealed by environment only (`labkit up --no-sealed`), as they are
    on a host that allows no user namespaces."""
    home = tmp_path_factory.mktemp("environment-lab")
    info, _ = labkit.up(home, sealed=False)
    assert not info.sealed, info
    yield labkit.connect(home)
    labkit.down(home)


@pytest.fixture
def fresh_lab(lab: labkit.Lab) -> labkit.Lab:
    lab.reset()
    return lab


@pytest.fixture
def own_lab(tmp_path: Path) -> Iterator[labkit.Lab]:
    """A lab of this test's own, in tmp_path/lab, stopped after: one the test may kill or damage."""
    lab = labkit.connect(tmp_path / "lab")
    yield lab
    labkit.down(lab.home)


def kill_until_unlocked(lab: labkit.Lab) -> None:
    """SIGKILL the process running `lab` now, and wait until it is dead for the kernel: it released
    its lock on the state directory (statedir.owner), so no process owns the directory."""
    os.kill(lab.current().pid, signal.SIGKILL)
    while owner(lab.home) is not None:
        time.sleep(0.01)


def kill_until_silent(lab: labkit.Lab) -> None:
    """SIGKILL the process `lab` connected to, and wait until it is dead for a client: it no longer
    answers for its state directory (lab.running_info)."""
    os.kill(lab.info.pid, signal.SIGKILL)
    while running_info(lab.home) is not None:
        time.sleep(0.01)


def need_root(why: str) -> None:
    """Skip the test without root, saying `why` it needs it; under CI (CI=true) a run without root
    fails instead, never skips (.ci/run runs the suite as root)."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}. CI must run the test suite as root (.ci/run).")
    pytest.skip(why)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `root` needs root: need_root, with the mark's reason (or a generic one)."""
    mark = item.get_closest_marker("root")
    if mark is not None:
        need_root(str(mark.kwargs.get("reason") or (mark.args[0] if mark.args else f"{item.nodeid} needs root")))


def wait_for(condition: Callable[[], Any], seconds: float = 30) -> Any:
    """What `condition` returns once it is true, asked every 50 ms; an assertion after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
    return value


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 without Landlock (asked here, not of labkit)."""
    libc = ctypes.CDLL(None, use_errno=True)
    return max(int(libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1))), 0)


def create_role(iam: Any, name: str = ROLE, trust: dict[str, Any] = EC2_TRUST, policy: str | None = READ_ONLY) -> None:
    """A role, its policy and its instance profile of the same name, as the console makes them."""
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    if policy:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)


@dataclass
class Demo:
    """The classic demo's starting point: the role exists, an instance runs, nothing attached."""

    lab: labkit.Lab
    iam: Any
    ec2: Any
    instance_id: str
    box: labkit.Instance

    def attach(self, profile: str = PROFILE) -> str:
        response = self.ec2.associate_iam_instance_profile(
            IamInstanceProfile={"Name": profile}, InstanceId=self.instance_id
        )
        return str(response["IamInstanceProfileAssociation"]["AssociationId"])


def demo_in(lab: labkit.Lab) -> Demo:
    """The classic demo's starting point in `lab`, reset first."""
    lab.reset()
    iam, ec2 = lab.client("iam"), lab.client("ec2")
    create_role(iam)
    instance_id = launch(lab, INSTANCE)
    return Demo(lab, iam, ec2, instance_id, lab.instance(INSTANCE))


@pytest.fixture
def demo(lab: labkit.Lab) -> Demo:
    return demo_in(lab)


@pytest.fixture
def environment_demo(environment_lab: labkit.Lab) -> Demo:
    """The demo where instances are sealed by environment only (`labkit up --no-sealed`)."""
    return demo_in(environment_lab)


@pytest.fixture(params=["sealed by the kernel", "sealed by environment"])
def either_demo(request: pytest.FixtureRequest, lab: labkit.Lab, environment_lab: labkit.Lab) -> Demo:
    """The demo in each way the lab seals its instances."""
    return demo_in(lab if request.param == "sealed by the kernel" else environment_lab)


@pytest.fixture
def attached(demo: Demo) -> Demo:
    demo.attach()
    return demo


STUDENT = "labkit-student"  # an unprivileged user; .ci/run creates it, and so does student_account if missing
REPO = Path(__file__).resolve().parent.parent


def student_account() -> pwd.struct_passwd:
    """The unprivileged user labkit-student, made (as root) if this host has none yet."""
    try:
        return pwd.getpwnam(STUDENT)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", STUDENT], check=True)
        return pwd.getpwnam(STUDENT)


# A script's start, run by python_as_student's Python: the student's lab, and `box`, an instance launched in it.
LAUNCHED_BY_STUDENT = """
import json, labkit
from labkit.catalogue import AL2023
lab = labkit.connect()
ec2 = lab.client("ec2")
image = ec2.describe_images(Owners=["amazon"], Filters=AL2023)["Images"][0]["ImageId"]
launched = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")
box = lab.instance(launched["Instances"][0]["InstanceId"])
"""


@contextmanager
def python_as_student(*, sealed: bool) -> Iterator[list[str]]:
    """The command that runs the system's Python 3 as the unprivileged user labkit-student, with this
    repository's labkit and the venv's packages (root's own Python is out of their reach), in a lab
    home of its own, sealed or not. The lab is stopped, and its home removed, after."""
    assert os.geteuid() == 0, "acting as the user labkit-student needs root (as in CI)"
    student = student_account()
    base = Path(tempfile.mkdtemp(prefix="labkit-student-"))
    base.chmod(0o755)  # mkdtemp makes it 0700; the student must reach their lab's directory inside
    home = base / "student-lab"
    home.mkdir(mode=0o700)
    os.chown(home, student.pw_uid, student.pw_gid)
    site = next(Path(sys.prefix).glob("lib/python3.*/site-packages"))
    env = {
        "HOME": student.pw_dir,
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "LABKIT_HOME": str(home),
        "LABKIT_SEALED": "1" if sealed else "0",
        "PYTHONPATH": f"{REPO}:{site}",
    }
    python = ["runuser", "-u", STUDENT, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), "/usr/bin/python3"]
    try:
        yield python
    finally:
        subprocess.run([*python, "-m", "labkit.cli", "down"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
