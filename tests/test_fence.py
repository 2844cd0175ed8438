"""Instances sealed by environment, fenced by Landlock (labkit/seal/landlock.py, issue 14).

Where the host allows no user namespaces, an instance is a shell of the lab's own user. These tests
start such a lab on purpose (`sealed=False`) and try, from an instance, what a curious student
would: the lab's record, the user's home, other processes, another instance's identity, the
network. Each refusal has a positive control: the same command, run by the test itself outside the
fence, gets what the instance may not. They never skip for want of Landlock: without it they fail,
saying so (only the network and signal tests need a Landlock ABI version that says they apply).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import labkit
from labkit.catalogue import APP_SERVER, INSTANCE, ROLE
from labkit.protocol import INFO_FILE
from tests.conftest import LAUNCHED_BY_STUDENT, landlock_abi, python_as_student

CANARY_KEY = "AKIAFENCECANARY00001"
CANARY_SECRET = "fence/canary/secret/fence/canary/secret/01"
TOKEN = 'T=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")'


ABI = landlock_abi()


@pytest.fixture(scope="module")
def host_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The user's HOME, with an AWS credentials file (never the real one), while the lab runs."""
    home = tmp_path_factory.mktemp("host-home")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {CANARY_KEY}\naws_secret_access_key = {CANARY_SECRET}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def fallback(host_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.Lab]:
    """A lab whose instances are sealed by environment, where a student finished notebooks 00-04:
    demo-instance holds DemoRoleForEC2, app-server no role."""
    assert ABI > 0, "this kernel has no Landlock (before Linux 5.13, or switched off): instances are not fenced"
    home = tmp_path_factory.mktemp("fallback")
    info, started = labkit.up(home, sealed=False)
    assert started and not info.sealed, info
    lab = labkit.connect(home)
    lab.reset(to="05", say=False)
    yield lab
    labkit.down(home)


def on(lab: labkit.Lab, name: str, command: str, *, timeout: float = 60.0) -> labkit.CommandResult:
    return lab.instance(name).run(command, timeout=timeout)


def unfenced(box: labkit.Instance, command: str) -> subprocess.CompletedProcess[str]:
    """The positive control: `command` in bash with the instance's environment, outside any fence."""
    return subprocess.run(
        ["bash", "-c", command], env=box.environ(), cwd=box.home, capture_output=True, text=True, timeout=60
    )


def test_the_labs_record_is_refused_by_path_and_from_the_home(fallback: labkit.Lab) -> None:
    record = fallback.home / INFO_FILE
    for path in (str(record), "~/../../../" + INFO_FILE):
        result = on(fallback, INSTANCE, f"cat {path}")
        assert result.exit_code == 1 and result.stderr.endswith(": Permission denied\n"), result
        assert fallback.info.secret not in result.stdout
    control = unfenced(fallback.instance(INSTANCE), f"cat ~/../../../{INFO_FILE}")
    assert control.returncode == 0 and fallback.info.secret in control.stdout


@pytest.mark.slow
def test_no_file_an_instance_can_read_holds_the_labs_keys(fallback: labkit.Lab) -> None:
    """Every file written since the lab started (its keys were born with it), anywhere but /proc,
    /sys and /dev: the instance finds neither the administrator's secret key nor the lab's secret."""
    box = fallback.instance(INSTANCE)
    (box.home / "wanted").write_text(f"{fallback.info.admin_secret_access_key}\n{fallback.info.secret}\n")
    search = (
        r"find / \( -path /proc -o -path /sys -o -path /dev -o -path ~ \) -prune -o -type f "
        f"-newermt @{int(fallback.info.started_at) - 1} -print0 2>/dev/null "
        "| xargs -0 grep -lsF -f ~/wanted; echo searched"
    )
    try:
        found = box.run(search, timeout=240)
        control = unfenced(box, search)
    finally:
        (box.home / "wanted").unlink()
    assert found.stdout.splitlines() == ["searched"], found
    assert str(fallback.home / INFO_FILE) in control.stdout.splitlines()  # what the search finds outside


def test_the_users_aws_credentials_are_refused(fallback: labkit.Lab, host_home: Path) -> None:
    credentials = host_home / ".aws" / "credentials"
    result = on(fallback, INSTANCE, f"cat {credentials}")
    assert result.exit_code == 1 and "Permission denied" in result.stderr and CANARY_KEY not in result.stdout
    through_aws = on(
        fallback, INSTANCE, f"AWS_SHARED_CREDENTIALS_FILE={credentials} aws configure get aws_access_key_id"
    )
    assert CANARY_KEY not in through_aws.stdout + through_aws.stderr
    assert CANARY_KEY in unfenced(fallback.instance(INSTANCE), f"cat {credentials}").stdout


def test_the_kernels_environment_is_refused(fallback: labkit.Lab) -> None:
    """$PPID is the process that started the shell: here this test, in a notebook the kernel, whose
    environment (as it started: /proc shows no later change) is the user's."""
    result = on(fallback, INSTANCE, "tr '\\0' '\\n' < /proc/$PPID/environ")
    assert (result.exit_code, result.stdout) == (1, "") and "Permission denied" in result.stderr, result
    control = unfenced(fallback.instance(INSTANCE), "tr '\\0' '\\n' < /proc/$PPID/environ").stdout.split("\n")
    assert f"PATH={os.environ['PATH']}" in control


def test_a_command_on_another_instance_is_out_of_reach(fallback: labkit.Lab) -> None:
    """app-server runs `sleep` in the background; demo-instance can neither read its environment
    (app-server's proxy password) nor signal it."""
    other = fallback.instance(APP_SERVER)
    pid = int(other.run("sleep 120 >/dev/null 2>&1 & echo $!").stdout)
    try:
        environ = on(fallback, INSTANCE, f"tr '\\0' '\\n' < /proc/{pid}/environ")
        assert "Permission denied" in environ.stderr and "http_proxy" not in environ.stdout, environ
        every = on(fallback, INSTANCE, "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c http_proxy")
        assert every.stdout.strip() == "0"  # not even its own shell's: every process's /proc is hidden
        assert f"http://{other.id}:" in Path(f"/proc/{pid}/environ").read_text()  # it holds the password
        if ABI >= 6:
            killed = on(fallback, INSTANCE, f"kill {pid}")
            assert "Operation not permitted" in killed.stderr
            assert Path(f"/proc/{pid}").exists()
    finally:
        os.kill(pid, signal.SIGKILL)


IMPERSONATE = """
import hashlib, hmac, json, urllib.request
try:
    secret = json.load(open({record!r}))["secret"]
except OSError as error:
    raise SystemExit("lab.json: " + error.strerror)
key = hmac.new(secret.encode(), b"instance:" + {other!r}.encode(), hashlib.sha256).hexdigest()[:32]
proxy = urllib.request.ProxyHandler({{"http": "http://{other}:" + key + "@127.0.0.1:{port}"}})
opener = urllib.request.build_opener(proxy)
put = urllib.request.Request("http://169.254.169.254/latest/api/token", method="PUT",
                             headers={{"X-aws-ec2-metadata-token-ttl-seconds": "60"}})
token = opener.open(put).read().decode()
get = urllib.request.Request("http://169.254.169.254/latest/meta-data/instance-id",
                             headers={{"X-aws-ec2-metadata-token": token}})
print(opener.open(get).read().decode())
"""


def test_another_instances_proxy_identity_cannot_be_taken(fallback: labkit.Lab) -> None:
    """What the lab's secret would give: app-server's proxy password, hence its metadata (and role)."""
    other = fallback.instance(APP_SERVER)
    script = IMPERSONATE.format(record=str(fallback.home / INFO_FILE), other=other.id, port=fallback.info.imds_port)
    box = fallback.instance(INSTANCE)
    (box.home / "impersonate.py").write_text(script)
    try:
        taken = box.run("python3 impersonate.py")
        control = unfenced(box, "python3 impersonate.py")
    finally:
        (box.home / "impersonate.py").unlink()
    assert (taken.exit_code, taken.stderr.strip()) == (1, "lab.json: Permission denied"), taken
    assert control.stdout.strip() == other.id  # the secret would have done it
    own_key = re.search(r"http://[^:]+:([0-9a-f]+)@", box.environ()["http_proxy"])
    assert own_key is not None
    guessed = on(fallback, INSTANCE, f"curl -s -o /dev/null -w '%{{http_code}}' -x http://{other.id}:{own_key[1]}@"
                 f"127.0.0.1:{fallback.info.imds_port} http://169.254.169.254/latest/meta-data/")  # fmt: skip
    assert guessed.stdout == "407"


def test_the_warm_aws_reads_only_what_its_instance_may(fallback: labkit.Lab) -> None:
    """`aws` is served by the lab's warm CLI: it reads what the instance may, and no more."""
    record = fallback.home / INFO_FILE
    leaked = on(fallback, INSTANCE, f"aws iam create-policy --policy-name Leak --policy-document file://{record}")
    assert leaked.exit_code == 255 and "[Errno 13] Permission denied" in leaked.stderr, leaked
    other = fallback.instance(APP_SERVER)
    (other.home / ".aws").mkdir(exist_ok=True)
    planted = other.home / ".aws" / "credentials"
    planted.write_text(f"[default]\naws_access_key_id = {CANARY_KEY}\naws_secret_access_key = {CANARY_SECRET}\n")
    try:
        read = on(fallback, INSTANCE, f"AWS_SHARED_CREDENTIALS_FILE={planted} aws configure get aws_access_key_id")
        assert CANARY_KEY not in read.stdout
        own = other.run("aws configure get aws_access_key_id")  # its own instance reads it
        assert own.stdout.strip() == CANARY_KEY
    finally:
        shutil.rmtree(other.home / ".aws")
    wrote = on(fallback, INSTANCE, "aws configure set region eu-west-1 && cat ~/.aws/config && rm -r ~/.aws")
    assert wrote.stdout == "[default]\nregion = eu-west-1\n", wrote  # and writes its own home


FORGED_CLIENT = """
import array, json, os, socket, struct, sys
home, socket_path, mode = sys.argv[1], sys.argv[2], getattr(os, sys.argv[3])
identity = os.open(os.path.join(os.path.dirname(home), "identity"), mode)  # O_PATH: any process may open so
request = json.dumps({"argv": ["configure", "get", "aws_access_key_id"], "env": {**os.environ, "HOME": home},
                      "cwd": os.getcwd()}).encode()
s = socket.socket(socket.AF_UNIX)
s.connect(socket_path)
s.sendmsg([struct.pack(">I", len(request)) + request],
          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2, identity]))])
while s.recv(8):
    pass
"""


def test_an_instance_cannot_pass_for_another_with_the_warm_aws(fallback: labkit.Lab) -> None:
    """demo-instance asks the warm aws to read app-server's credentials as app-server: with
    app-server's HOME (its `aws` cannot open app-server's identity file), and with a client of its
    own that hands over that file opened O_PATH."""
    other = fallback.instance(APP_SERVER)
    assert other.run("true").ok  # its fence planned, so its identity file is there
    (other.home / ".aws").mkdir(exist_ok=True)
    (other.home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {CANARY_KEY}\naws_secret_access_key = {CANARY_SECRET}\n"
    )
    box = fallback.instance(INSTANCE)
    (box.home / "forged.py").write_text(FORGED_CLIENT)
    try:
        as_home = on(fallback, INSTANCE, f"HOME={other.home} aws configure get aws_access_key_id")
        forged = on(fallback, INSTANCE, f"python3 forged.py {other.home} {fallback.home / 'aws.sock'} O_PATH")
        control = unfenced(box, f"python3 forged.py {other.home} {fallback.home / 'aws.sock'} O_RDONLY")
    finally:
        shutil.rmtree(other.home / ".aws")
        (box.home / "forged.py").unlink()
    assert CANARY_KEY not in as_home.stdout + forged.stdout, (as_home, forged, control)
    assert control.stdout.strip() == CANARY_KEY, control  # the file itself, open for reading, proves it


def test_the_lesson_works_on_a_fenced_instance(fallback: labkit.Lab) -> None:
    box = fallback.instance(INSTANCE)
    identity = json.loads(on(fallback, INSTANCE, "aws sts get-caller-identity").stdout)
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{box.id}"
    users = on(fallback, INSTANCE, "aws iam list-users --query 'Users[].UserName' --output text")
    assert users.ok and "alice" in users.stdout.split()
    listed = on(fallback, INSTANCE, f'{TOKEN}; curl -s -H "X-aws-ec2-metadata-token: $T" '
                "http://169.254.169.254/latest/meta-data/iam/security-credentials/")  # fmt: skip
    assert listed.stdout == ROLE
    assert on(fallback, INSTANCE, "ec2-metadata --instance-id").stdout == f"instance-id: {box.id}\n"


def test_a_student_looks_around_as_on_a_machine(fallback: labkit.Lab) -> None:
    box = fallback.instance(INSTANCE)
    said = box.run_lines(
        "ls /\ncd /tmp && pwd\nls ~ >/dev/null && cd && pwd\necho kept > ~/note && cat ~/note && rm ~/note"
    )
    assert said.ok, said
    listing, tmp, home, note = (r.stdout.split() for r in said.results)
    assert {"usr", "etc", "tmp", "proc"} <= set(listing)
    assert tmp == ["/tmp"] and home == [str(box.home)] and note == ["kept"]


@pytest.mark.skipif(ABI < 4, reason=f"Landlock ABI {ABI} fences no TCP (ABI 4 does)")
def test_nothing_but_the_labs_ports_is_reachable(fallback: labkit.Lab) -> None:
    """An outside address, and a service of this machine (a web server the test runs on loopback),
    refused at once; outside the fence the local one answers."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for url in ("http://192.0.2.1/", f"http://127.0.0.1:{server.server_port}/"):
            command = f"curl -sS --noproxy '*' -m 10 {url}"
            started = time.monotonic()
            result = on(fallback, INSTANCE, command)
            assert result.exit_code == 7 and "Couldn't connect to server" in result.stderr, result
            assert time.monotonic() - started < 5
        control = unfenced(
            fallback.instance(INSTANCE), f"curl -sS --noproxy '*' -m 10 http://127.0.0.1:{server.server_port}/"
        )
        assert control.stdout == "hello"
    finally:
        server.shutdown()


@pytest.mark.skipif(ABI < 6, reason=f"Landlock ABI {ABI} scopes no signal (ABI 6 does)")
def test_an_instance_cannot_signal_the_kernel_or_the_lab(fallback: labkit.Lab) -> None:
    for pid in ("$PPID", str(fallback.info.pid)):
        result = on(fallback, INSTANCE, f"kill -0 {pid}")
        assert result.exit_code == 1 and "Operation not permitted" in result.stderr, result
    assert unfenced(fallback.instance(INSTANCE), f"kill -0 {fallback.info.pid}").returncode == 0


STUDENT_SCRIPT = (
    LAUNCHED_BY_STUDENT
    + """
import subprocess
record = str(lab.home / "lab.json")
fenced = box.run("cat " + record)
control = subprocess.run(["cat", record], capture_output=True, text=True, env=box.environ(), cwd=box.home)
said = {"fenced": [fenced.exit_code, fenced.stderr, lab.info.secret in fenced.stdout]}
said["control"] = [control.returncode, lab.info.secret in control.stdout]
print(json.dumps({"sealed": lab.info.sealed, **said}))
labkit.down()
"""
)


@pytest.mark.slow
@pytest.mark.root(reason="acting as the user labkit-student needs root")
def test_an_unprivileged_users_instance_cannot_read_the_labs_record() -> None:
    """The lab run by a user without root, its instances sealed by environment (CI runs as root:
    the test creates that user)."""
    assert ABI > 0, "this kernel has no Landlock: instances are not fenced"
    with python_as_student(sealed=False) as python:
        ran = subprocess.run(python, input=STUDENT_SCRIPT, capture_output=True, text=True, timeout=300, cwd="/")
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.splitlines()[-1])
    assert result["sealed"] is False
    code, stderr, leaked = result["fenced"]
    assert (code, leaked) == (1, False) and stderr.endswith("lab.json: Permission denied\n"), result
    assert result["control"] == [0, True]
