"""What a curious student tries against the warm `aws` from inside an instance (issue 21), refused.

Each attack runs for real, on an instance, as its own programs would: a client of its own that
speaks the warm `aws`'s protocol (labkit/protocol.py) to the socket the instance can reach. Every
refusal stands beside a positive control: the same client, asking what it may, is served, so the
refusal is the server's and not a broken client's.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import labkit
from labkit.catalogue import APP_SERVER, INSTANCE, ROLE
from labkit.seal import landlock

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

# A client of the warm `aws` of its own: a child connects and hands the connection to its parent, then
# waits for a byte on stdin and exits; once it has, and a line comes on stdin, the parent sends the
# request (argv from the command line) with its own stdin, stdout and stderr, and prints the status.
HANDED_ON = r"""
import array, ctypes, json, os, socket, struct, sys
path, argv = sys.argv[1], json.loads(sys.argv[2])
mine, theirs = socket.socketpair()
child = os.fork()
if child == 0:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socket.send_fds(theirs, [b"x"], [s.fileno()])
    ctypes.CDLL(None).prctl(15, b"labkit-handed", 0, 0, 0)  # PR_SET_NAME: the host finds it by this name
    os.read(0, 1)
    os._exit(0)
_, fds, _, _ = socket.recv_fds(mine, 1, 1)
s = socket.socket(fileno=fds[0])
os.waitpid(child, 0)  # the process that connected has gone
sys.stdin.buffer.readline()
env = {"HOME": os.environ.get("HOME", "/"), "PATH": "/usr/local/bin:/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
request = json.dumps({"argv": argv, "env": env, "cwd": "/"}).encode()
devnull = os.open("/dev/null", os.O_RDONLY)
s.sendmsg([struct.pack(">I", len(request)) + request],
          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [devnull, 1, 2]))])
data = b""
while chunk := s.recv(4096):
    data += chunk
if data[:4] == struct.pack(">i", -1):  # refused: the line that says why
    print(data[4:].decode(), end="", flush=True)
    print("status refused", flush=True)
else:
    print("status", struct.unpack(">i", data[-4:])[0] if len(data) >= 8 else data, flush=True)
"""


def _sealed_lab(lab: labkit.Lab) -> labkit.Lab:
    lab.reset(to="05", say=False)  # demo-instance holds DemoRoleForEC2; app-server holds no role
    assert lab.current().sealed
    return lab


@pytest.fixture
def sealed(lab: labkit.Lab) -> labkit.Lab:
    return _sealed_lab(lab)


@pytest.fixture
def canary() -> Iterator[tuple[Path, str]]:
    """A file of the host's, in its /tmp, that no instance sealed by the kernel can see."""
    secret = f"host-only-{secrets.token_hex(8)}"
    path = Path(f"/tmp/labkit-canary-{secrets.token_hex(4)}")
    path.write_text(secret)
    path.chmod(0o644)
    yield path, secret
    path.unlink()


def handed_on(box: labkit.Instance, path: str, argv: list[str], *, between: object = None) -> str:
    """Run HANDED_ON on `box`: what it and the command print. `between()` runs once the process that
    connected has gone, before the request is sent."""
    (box.home / "handed.py").write_text(HANDED_ON)
    command = box.argv("python3", "handed.py", path, json.dumps(argv))
    with subprocess.Popen(command, env=box.environ(), cwd=box.home, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as client:  # fmt: skip
        assert client.stdin is not None and client.stdout is not None
        handed = _wait_for_named("labkit-handed", timeout=30)
        client.stdin.write(b"x")
        client.stdin.flush()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{handed}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not Path(f"/proc/{handed}").exists(), "the process that connected should have gone"
        if callable(between) and between(handed) is False:
            client.kill()
            client.wait()
            return ""
        client.stdin.write(b"go\n")
        client.stdin.flush()
        out, _ = client.communicate(timeout=120)
    return out.decode(errors="replace")


def _wait_for_named(name: str, *, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
        time.sleep(0.02)
    raise AssertionError(f"no process named {name} within {timeout} s")


def test_a_connection_whose_process_has_gone_runs_inside_its_instance(
    sealed: labkit.Lab, canary: tuple[Path, str]
) -> None:
    """Sealed by the kernel: a connection handed on by a process that has exited is still served in
    the instance it came from, never on the host. The command reads a file of the host's /tmp: on the
    host it would print it (its --debug log holds the document it sends)."""
    path, secret = canary
    box = sealed.instance(INSTANCE)
    read_it = ["iam", "create-role", "--role-name", "r", "--assume-role-policy-document", f"file://{path}",
               "--endpoint-url", "http://127.0.0.1:1", "--debug"]  # fmt: skip
    said = handed_on(box, "/run/labkit/aws.sock", read_it)
    assert secret not in said, said
    assert f"Error parsing parameter '--assume-role-policy-document': Unable to load paramfile file://{path}" in said
    # the same client, asking what the instance may: served, as the instance
    who = handed_on(box, "/run/labkit/aws.sock", ["sts", "get-caller-identity", "--query", "Arn", "--output", "text"])
    assert f"assumed-role/{ROLE}/{box.id}" in who and "status 0" in who, who
    assert path.read_text() == secret  # the file is there, on the host


def test_a_pid_taken_by_another_instances_process_does_not_lend_its_role(sealed: labkit.Lab) -> None:
    """Sealed by the kernel: app-server (no role) hands on a connection whose process has gone, and
    its pid goes to a process in demo-instance's namespaces (a student wraps the pid counter; here
    root sets /proc/sys/kernel/ns_last_pid). The command still runs on app-server: no credentials."""
    app, demo = sealed.instance(APP_SERVER), sealed.instance(INSTANCE)
    impostors: list[subprocess.Popen[bytes]] = []

    def take_the_pid(pid: int) -> bool:
        # nsenter forks once it has joined the PID namespace: that child takes `pid`, enters the nested
        # user namespace and becomes `sleep`, a process of demo-instance in every namespace
        entry = demo.argv("sleep", "120")
        for _ in range(50):
            if Path(f"/proc/{pid}").exists():
                return False  # another process of this machine took it first: try again with another
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 2))
            process = subprocess.Popen(entry, env=demo.environ(), cwd=demo.home)
            deadline = time.monotonic() + (5 if process.pid == pid - 1 else 0)
            while time.monotonic() < deadline and not _is_sleep(pid):
                time.sleep(0.01)
            if process.pid == pid - 1 and _is_sleep(pid):
                impostors.append(process)
                break
            process.kill()
            process.wait()
        if not impostors:
            return False
        assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{demo_init(sealed, demo)}/ns/net")
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{demo_init(sealed, demo)}/ns/pid")
        return True

    said = ""
    try:
        for _ in range(5):  # a busy machine may give the pid to another process first
            said = handed_on(app, "/run/labkit/aws.sock", ["sts", "get-caller-identity"], between=take_the_pid)
            if said:
                break
    finally:
        for process in impostors:
            process.kill()
            process.wait()
    assert "Unable to locate credentials" in said, said
    assert ROLE not in said and "status 255" in said, said


def _is_sleep(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    except OSError:
        return False


def demo_init(lab: labkit.Lab, box: labkit.Instance) -> int:
    """The host pid of a sealed instance's PID 1, from the nsenter command that enters it."""
    target = next(arg for arg in box.argv("true") if arg.startswith("--target="))
    return int(target.removeprefix("--target="))


def test_a_client_that_proves_no_instance_is_refused(environment_lab: labkit.Lab) -> None:
    """Sealed by environment: a client of the warm `aws` that hands over no identity file is refused
    in one line, and nothing runs; the same client with its instance's identity file is served."""
    lab = _sealed_lab_env(environment_lab)
    box = lab.instance(INSTANCE)
    socket_path = str(lab.home / "aws.sock")
    said = handed_on(box, socket_path, ["sts", "get-caller-identity"])
    assert said.splitlines()[0] == (
        "aws: the lab did not run this command: it came from no instance of this lab "
        "(the instance's identity file did not come with it)."
    ), said
    assert said.splitlines()[1:] == ["status refused"], said
    served = box.run("aws sts get-caller-identity --query Arn --output text")
    assert served.stdout.strip() == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{box.id}", served


def _sealed_lab_env(lab: labkit.Lab) -> labkit.Lab:
    lab.reset(to="05", say=False)
    assert not lab.current().sealed
    lab.instance(INSTANCE).run("true")  # its fence planned, its identity file made
    return lab


def test_without_the_warm_server_a_sealed_instance_runs_the_real_cli(tmp_path: Path) -> None:
    """The lab keeps no copy of an instance's warm `aws` socket: once the server is gone, the socket
    is closed, the instance's `aws` cannot connect, and runs the real CLI, with the same answer."""
    info, _ = labkit.up(tmp_path / "lab", sealed=True)
    try:
        lab = labkit.connect(tmp_path / "lab")
        lab.reset(to="05", say=False)
        box = lab.instance(INSTANCE)
        wanted = f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{box.id}"
        assert box.run("aws sts get-caller-identity --query Arn --output text").stdout.strip() == wanted
        server = next(pid for pid in _children(info.pid) if b"cliserver" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(server, signal.SIGKILL)
        began = time.monotonic()
        real = box.run("aws sts get-caller-identity --query Arn --output text", timeout=60)
        assert real.stdout.strip() == wanted, real
        assert time.monotonic() - began < 30
    finally:
        labkit.down(tmp_path / "lab")


def _children(pid: int) -> list[int]:
    return [int(c) for t in os.listdir(f"/proc/{pid}/task") for c in
            Path(f"/proc/{pid}/task/{t}/children").read_text().split()]  # fmt: skip


# A client that speaks to the warm `aws` out of turn: a frame that claims 4 GiB, malformed frames, and
# connections that never send a request. What each connection got back is printed, one line each.
OUT_OF_TURN = r"""
import socket, struct, sys, time
mode, path = sys.argv[1], sys.argv[2]

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s

def answer(s, timeout):
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except (TimeoutError, OSError):
        pass
    if data[:4] == struct.pack(">i", -1):
        return data[4:].decode().strip()
    return "no answer" if not data else repr(data)

if mode == "huge":
    s = connect()
    began = time.monotonic()
    try:
        s.sendall(struct.pack(">I", 0xFFFFFFF0) + b"x" * 65536)
    except OSError:
        pass
    print(answer(s, 10))
    print(f"{time.monotonic() - began:.1f} s")
elif mode == "malformed":
    said = set()
    for _ in range(200):
        s = connect()
        s.sendall(struct.pack(">I", 5) + b"nope!")
        said.add(answer(s, 10))
        s.close()
    print(*sorted(said), sep="\n")
elif mode == "idle":
    held = [connect() for _ in range(int(sys.argv[3]))]
    time.sleep(2)
    said = [answer(s, 0.001) for s in held]  # what each has been told by now
    for line in sorted(set(said)):
        print(said.count(line), line)
"""


def out_of_turn(box: labkit.Instance, *args: str, timeout: float = 120) -> list[str]:
    (box.home / "out_of_turn.py").write_text(OUT_OF_TURN)
    ran = subprocess.run(box.argv("python3", "out_of_turn.py", *args), env=box.environ(), cwd=box.home,
                         capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.splitlines()


REFUSED = "aws: the lab did not run this command: "


def counted(lines: list[str]) -> dict[str, int]:
    """`N line` rows, as OUT_OF_TURN's idle mode prints them: line → N."""
    return {line.split(" ", 1)[1]: int(line.split(" ", 1)[0]) for line in lines}


def test_a_request_over_a_mebibyte_is_refused_before_it_is_read(sealed: labkit.Lab) -> None:
    said = out_of_turn(sealed.instance(INSTANCE), "huge", "/run/labkit/aws.sock")
    assert said[0] == f"{REFUSED}its request is 4294967280 bytes, more than the 1 MiB the lab takes.", said
    assert float(said[1].split()[0]) < 3.0, said
    # the server serves the next command as ever
    assert sealed.instance(INSTANCE).run("aws sts get-caller-identity --query Account --output text").ok


def test_malformed_requests_are_refused_in_one_line_and_lab_log_holds_one(sealed: labkit.Lab) -> None:
    log = sealed.home / "lab.log"
    before = log.read_text()
    said = out_of_turn(sealed.instance(INSTANCE), "malformed", "/run/labkit/aws.sock")
    assert said == [f"{REFUSED}its request is not JSON."], said
    added = log.read_text()[len(before) :]
    assert "Traceback" not in added, added
    assert added.count("labkit: warm aws:") <= 1, added  # at most a line a minute


def test_a_server_holds_a_bounded_number_of_commands(sealed: labkit.Lab, environment_lab: labkit.Lab) -> None:
    """Sealed by the kernel, one instance's idle connections beyond 8 are refused at once, in one line;
    by environment, beyond 32 in all. Those held are refused once their request has not come in time."""
    said = counted(out_of_turn(sealed.instance(INSTANCE), "idle", "/run/labkit/aws.sock", "20"))
    assert said.pop("no answer") == 8, said
    ((refusal, count),) = said.items()
    assert count == 12 and refusal.startswith(f"{REFUSED}too many commands at once (instance i-"), said
    assert refusal.endswith("; wait for one to end, or stop one with Ctrl-C."), said
    lab = _sealed_lab_env(environment_lab)
    said = counted(out_of_turn(lab.instance(INSTANCE), "idle", str(lab.home / "aws.sock"), "40"))
    assert said.pop("no answer") == 32, said
    ((refusal, count),) = said.items()
    assert count == 8, said
    assert refusal.startswith(f"{REFUSED}too many commands at once (instances sealed by environment"), said
    time.sleep(11)  # the held ones are refused once their request has not come in time; then it serves again
    assert lab.instance(INSTANCE).run("aws sts get-caller-identity --query Account --output text").ok


# Run by tests/test_environment_seal.py's WITHOUT_LANDLOCK (seccomp takes the Landlock calls away) on a
# host that allows user namespaces: the lab seals by the kernel, and a handed-on connection stays inside.
WITHOUT_LANDLOCK_SCENARIO = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import labkit
from labkit.seal import landlock
from tests.test_warm_aws_attacks import handed_on
lab = labkit.connect()
lab.reset(to="05", say=False)
box = lab.instance("demo-instance")
read_it = ["iam", "create-role", "--role-name", "r", "--assume-role-policy-document", "file://{canary}",
           "--endpoint-url", "http://127.0.0.1:1"]
said = handed_on(box, "/run/labkit/aws.sock", read_it)
arn = handed_on(box, "/run/labkit/aws.sock", ["sts", "get-caller-identity", "--query", "Arn", "--output", "text"])
print(json.dumps({{"abi": landlock.landlock_abi(), "sealed": lab.current().sealed, "sealing": lab.sealing,
                  "said": said, "arn": arn}}))
labkit.down()
"""


def test_sealed_by_the_kernel_without_landlock_the_line_is_true(tmp_path: Path, canary: tuple[Path, str]) -> None:
    """A host with user namespaces and no Landlock (made for real: a seccomp filter answers its calls
    ENOSYS): the lab says instances are sealed by the kernel, and that holds for the warm `aws` too:
    a connection handed on by a process that has gone still runs inside its instance."""
    from tests.test_environment_seal import WITHOUT_LANDLOCK

    path, secret = canary
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "without_landlock.py").write_text(WITHOUT_LANDLOCK)
    (tmp_path / "scenario.py").write_text(WITHOUT_LANDLOCK_SCENARIO.format(root=str(root), canary=str(path)))
    env = {**os.environ, "LABKIT_HOME": str(tmp_path / "lab")}
    env.pop("LABKIT_SEALED", None)
    done = subprocess.run([sys.executable, str(tmp_path / "without_landlock.py"), str(tmp_path / "scenario.py")],
                          env=env, cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["abi"] == 0 and landlock.landlock_abi() > 0  # the filter, not this kernel, took Landlock away
    assert result["sealed"], result
    assert result["sealing"] == "each instance is a machine of its own, sealed by the kernel in namespaces"
    assert secret not in result["said"] and f"Unable to load paramfile file://{path}" in result["said"], result
    assert "assumed-role/DemoRoleForEC2/" in result["arn"], result  # the control: the same client is served
