"""Offline and sealed by construction: the whole demo and every notebook, traced.

The scenario runs in a network namespace of its own that has nothing but `lo`, so any other
connection fails at once, and with a student's HOME and AWS_* variables full of canary keys.
strace records every `connect()` of every process it starts (the lab, the notebook kernels, the
`aws` CLI and curl on instances), and the kernel reports (inotify) every open of the student's
~/.aws and its files by any process; the test asserts that nothing even tried an address beyond
loopback, or opened the student's ~/.aws.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CANARY = "AKIACANARYCANARY7777"

SCENARIO = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import nbformat
    from nbclient import NotebookClient
    import labkit
    from labkit import steps

    home = sys.argv[1]
    os.environ["LABKIT_HOME"] = home
    lab = labkit.connect(home)
    lab.reset(to="03")
    steps.notebook_03(lab)
    box = lab.instance("demo-instance")
    for command in ["aws iam list-users", "aws iam create-user --user-name x", "aws sts get-caller-identity",
                    "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/DemoRoleForEC2",
                    "curl -s -m 5 http://example.com/", "curl -s -m 5 https://example.com/",
                    "python3 -c 'import boto3; boto3.client(\\"iam\\").list_roles()'"]:
        print(command, box.run(command).exit_code, flush=True)
    for path in sorted(Path(sys.argv[2]).glob("[0-9][0-9]-*.ipynb")):
        lab.reset(to=path.name[:2])
        nb = nbformat.read(path, as_version=4)
        where = {"metadata": {"path": str(path.parent)}}
        NotebookClient(nb, timeout=300, kernel_name="python3", resources=where).execute()
        print(path.name, "ran", flush=True)
    labkit.down(home)
    """
)


def outside(line: str) -> bool:
    """Whether a traced connect() aims beyond loopback (AF_UNIX sockets are local by nature)."""
    v4 = re.search(r'sin_addr=inet_addr\("([\d.]+)"\)', line)
    v6 = re.search(r'inet_pton\(AF_INET6, "([^"]+)"', line)
    if v4:
        return not v4[1].startswith("127.")
    if v6:
        return v6[1] not in ("::1", "::ffff:127.0.0.1")
    return "AF_INET" in line


class Opens:
    """The kernel's record (inotify) of every open of a directory or of a file in it, by any process."""

    IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x1, 0x20, 0o4000
    EVENT = struct.Struct("iIII")

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(self.IN_NONBLOCK)
        assert self.fd >= 0 and libc.inotify_add_watch(self.fd, bytes(directory), self.IN_OPEN | self.IN_ACCESS) >= 0

    def read(self) -> list[str]:
        """The names opened or read since the last call ('.' for the directory itself)."""
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        names, at = [], 0
        while at < len(data):
            _, _, _, length = self.EVENT.unpack_from(data, at)
            name = data[at + self.EVENT.size : at + self.EVENT.size + length].rstrip(b"\0").decode()
            names.append(name or ".")
            at += self.EVENT.size + length
        return names


def student_home(path: Path) -> dict[str, str]:
    """A HOME and environment whose AWS credentials are recognisable canaries."""
    (path / ".aws").mkdir(parents=True)
    (path / ".aws" / "credentials").write_text(f"[default]\naws_access_key_id = {CANARY}\naws_secret_access_key = x\n")
    (path / ".aws" / "config").write_text("[default]\nregion = eu-west-3\n")
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    canaries = {"AWS_ACCESS_KEY_ID": CANARY, "AWS_SECRET_ACCESS_KEY": "x", "AWS_PROFILE": "default"}
    return {**keep, "HOME": str(path), **canaries}


def test_the_demo_and_the_notebooks_stay_on_loopback_and_off_the_students_aws(tmp_path: Path) -> None:
    assert shutil.which("strace") and shutil.which("unshare"), ".ci/run installs strace and util-linux"
    scenario = tmp_path / "scenario.py"
    scenario.write_text(SCENARIO)
    trace = tmp_path / "calls.trace"
    env = student_home(tmp_path / "student")
    opens = Opens(tmp_path / "student" / ".aws")
    inner = (
        "ip link set lo up && "
        f"strace -f -qq --seccomp-bpf -e trace=connect -o {trace} "
        f"{sys.executable} {scenario} {tmp_path / 'lab'} {NOTEBOOKS}"
    )
    done = subprocess.run(["unshare", "-rn", "bash", "-c", inner], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = done.stdout.splitlines()
    notebooks = [f"{p.name} ran" for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
    assert [line for line in ran if line.endswith(" ran")] == notebooks
    assert "aws iam list-users 0" in ran and "curl -s -m 5 https://example.com/ 56" in ran
    assert CANARY not in done.stdout + done.stderr
    connects = [line for line in trace.read_text().splitlines() if "connect(" in line]
    assert any("127.0.0.1" in line for line in connects)  # the trace did see the lab's own traffic
    assert [line for line in connects if outside(line)] == []
    assert opens.read() == []
    (tmp_path / "student" / ".aws" / "credentials").read_text()
    assert "credentials" in opens.read()  # the watch does see an open of the student's keys
