"""Offline and sealed by construction: the whole demo and every notebook, watched by the kernel.

The scenario runs in a network namespace of its own, with a student's HOME and AWS_* variables full
of canary keys. Besides `lo`, the namespace's only way out is a TUN device that every other address
is routed to: the test reads every packet sent there (and drops it), so any attempt by any process
(the lab, the notebook kernels, the `aws` CLI and curl on instances) to reach beyond loopback, a DNS
lookup included, is recorded. inotify reports every open of the student's ~/.aws. The test asserts
that nothing went out, that nothing opened the student's ~/.aws, and that no canary value and no
AWS_* variable of the student reached the instance's environment (`env`, twice: a fenced instance,
labkit/seal/landlock.py, may not read /proc/self/environ).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

TESTS = Path(__file__).resolve().parent
NOTEBOOKS = TESTS.parent / "notebooks"
CANARY = "AKIACANARYCANARY7777"
CANARY_SECRET = "canary/secret/canary/secret/canary/7777"

SCENARIO = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import nbformat
    from nbclient import NotebookClient
    import labkit
    from labkit import solutions

    home = sys.argv[1]
    os.environ["LABKIT_HOME"] = home
    lab = labkit.connect(home)
    lab.reset(to="03")
    solutions.notebook_03(lab)
    box = lab.instance("demo-instance")
    print("sealed:", box.sealed, flush=True)
    for command in ["aws iam list-users", "aws iam create-user --user-name x", "aws sts get-caller-identity",
                    "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/DemoRoleForEC2",
                    "curl -s -m 5 http://example.com/", "curl -s -m 5 https://example.com/",
                    "python3 -c 'import boto3; boto3.client(\\"iam\\").list_roles()'"]:
        print(command, box.run(command).exit_code, flush=True)
    for line in box.run("env").stdout.splitlines() + box.run("env -0").stdout.split(chr(0)):
        print("instance environment:", line, flush=True)
    if len(sys.argv) > 3:  # the demo's tests and nbval over every notebook, in this very lab
        import subprocess
        env = {**os.environ, "LABKIT_NOTEBOOK_LAB": home}
        env.pop("LABKIT_SEALED", None)
        checked = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_demo.py",
                                  "notebooks", "--nbval", "--nbval-current-env", "--nbval-sanitize-with", sys.argv[3]],
                                 cwd=Path(sys.argv[2]).parent, env=env, capture_output=True, text=True)
        print(checked.stdout[-4000:] + checked.stderr[-2000:], flush=True)
        print("nbval status", checked.returncode, flush=True)
        print("lab status", json.dumps(labkit.connect(home).progress().finished), flush=True)
    else:
        for path in sorted(Path(sys.argv[2]).glob("[0-9][0-9]-*.ipynb")):
            lab.reset(to=path.name[:2])
            nb = nbformat.read(path, as_version=4)
            where = {"metadata": {"path": str(path.parent)}}
            NotebookClient(nb, timeout=300, kernel_name="python3", resources=where).execute()
            print(path.name, "ran", flush=True)
    labkit.down(home)
    """
)


WIRE = textwrap.dedent(
    """
    import fcntl, os, socket, struct, subprocess, sys

    TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
    record, ready = sys.argv[1], sys.argv[2]
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", b"wire", IFF_TUN | IFF_NO_PI))
    for knob in ("router_solicitations", "accept_ra"):  # the kernel itself sends nothing unasked
        with open(f"/proc/sys/net/ipv6/conf/wire/{knob}", "w") as setting:
            setting.write("0")
    subprocess.run(["ip", "link", "set", "wire", "up"], check=True)
    subprocess.run(["ip", "route", "add", "default", "dev", "wire"], check=True)
    subprocess.run(["ip", "-6", "route", "add", "default", "dev", "wire"], check=True)
    open(ready, "w").close()
    with open(record, "a", buffering=1) as out:
        while True:
            packet = os.read(tun, 65536)
            if packet[0] >> 4 == 4:
                out.write(f"IPv4 protocol {packet[9]} to {socket.inet_ntop(socket.AF_INET, packet[16:20])}\\n")
            else:
                out.write(f"IPv6 next header {packet[6]} to {socket.inet_ntop(socket.AF_INET6, packet[24:40])}\\n")
    """
)
PROBE = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=0.5)"  # TEST-NET-1: nobody's


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
    (path / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {CANARY}\naws_secret_access_key = {CANARY_SECRET}\n"
    )
    (path / ".aws" / "config").write_text("[default]\nregion = eu-west-3\n")
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    canaries = {"AWS_ACCESS_KEY_ID": CANARY, "AWS_SECRET_ACCESS_KEY": CANARY_SECRET, "AWS_PROFILE": "default"}
    return {**keep, "HOME": str(path), **canaries}


@pytest.mark.parametrize("sealing", ["sealed by the kernel", "sealed by environment"])
def test_the_demo_and_the_notebooks_stay_on_loopback_and_off_the_students_aws(tmp_path: Path, sealing: str) -> None:
    """In each way the lab seals instances: by environment, on a host that allows no user namespace
    (made for real: `user.max_user_namespaces` is 0 in the test's namespace).

    Guards, among others, against the host's AWS_SECRET_ACCESS_KEY copied into an instance's
    environment (mutation in labkit/instances.py, `Instance.environ`: `"AWS_DEFAULT_REGION": REGION,`
    followed by `**{k: v for k, v in os.environ.items() if k == "AWS_SECRET_ACCESS_KEY"},`)."""
    by_environment = sealing == "sealed by environment"
    assert shutil.which("unshare") and shutil.which("ip"), ".ci/run installs util-linux and iproute2"
    assert Path("/dev/net/tun").exists(), "the namespace's way out is a TUN device: this kernel has none"
    (tmp_path / "scenario.py").write_text(SCENARIO)
    (tmp_path / "wire.py").write_text(WIRE)
    sent, ready = tmp_path / "sent.txt", tmp_path / "wire-ready"
    env = student_home(tmp_path / "student")
    opens = Opens(tmp_path / "student" / ".aws")
    sanitize = ""  # sealed by the kernel, the notebooks run bare (nbval checks their outputs in `make test`)
    if by_environment:  # nbval in strict mode against the committed outputs, but what this seal changes
        sanitize = str(tmp_path / "sanitize.cfg")
        Path(sanitize).write_text((TESTS / "sanitize.cfg").read_text() + "\n" +
                                  (TESTS / "sanitize-environment-seal.cfg").read_text())  # fmt: skip
    inner = f"""
        {"echo 0 > /proc/sys/user/max_user_namespaces" if by_environment else ""}
        ip link set lo up
        {sys.executable} {tmp_path / "wire.py"} {sent} {ready} & wire=$!
        while [ ! -e {ready} ]; do kill -0 $wire || exit 3; sleep 0.05; done
        {sys.executable} {tmp_path / "scenario.py"} {tmp_path / "lab"} {NOTEBOOKS} {sanitize}; status=$?
        {sys.executable} -c "{PROBE}" 2>/dev/null  # the control: this attempt must be seen
        sleep 0.2; kill $wire; exit $status
    """
    done = subprocess.run(["unshare", "-rn", "bash", "-c", inner], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = done.stdout.splitlines()
    if by_environment:
        assert "nbval status 0" in ran, done.stdout[-5000:]
        passed = re.search(r"(\d+) passed", done.stdout)
        cells = sum(1 for path in NOTEBOOKS.glob("*.ipynb") for cell in json.loads(path.read_text())["cells"]
                    if cell["cell_type"] == "code")  # fmt: skip
        demo = len(re.findall(r"^def test_", (TESTS / "test_demo.py").read_text(), re.M))
        assert passed and int(passed.group(1)) == cells + demo, done.stdout[-3000:]
        assert 'lab status "the series"' in ran  # the control: the notebooks ran in this very lab, to the end
    else:
        notebooks = [f"{p.name} ran" for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
        assert [line for line in ran if line.endswith(" ran")] == notebooks
    # by environment, the metadata proxy refuses the tunnel (56); sealed, no name resolves there (6)
    assert "aws iam list-users 0" in ran and f"curl -s -m 5 https://example.com/ {56 if by_environment else 6}" in ran
    assert ("sealed: False" if by_environment else "sealed: True") in ran
    environment = [line.split(": ", 1)[1] for line in ran if line.startswith("instance environment: ")]
    names = sorted(entry.split("=")[0] for entry in environment if entry.startswith("AWS_"))
    lab = ["AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"] if by_environment else ["AWS_DEFAULT_REGION"]
    assert names == sorted(2 * lab)  # the lab's, in `env` and in /proc
    assert "AWS_DEFAULT_REGION=us-east-1" in environment  # the control: the instance's environment was read
    assert [canary for canary in (CANARY, CANARY_SECRET) if canary in done.stdout + done.stderr] == []
    packets = sent.read_text().splitlines()
    assert "IPv4 protocol 6 to 192.0.2.1" in packets  # the wire does see an attempt to go out
    assert [packet for packet in packets if not packet.endswith(" to 192.0.2.1")] == []
    assert opens.read() == []
    (tmp_path / "student" / ".aws" / "credentials").read_text()
    assert "credentials" in opens.read()  # the watch does see an open of the student's keys
