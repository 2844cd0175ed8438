"""What the lab's three programs agree on, and nothing else.

The student's kernel and the `labkit` command (the client), the lab process (labkit.labprocess)
and the warm `aws` of instances share no code but this module, labkit.statedir, labkit.seal (how an
instance is sealed: its Landlock fence, its bin scripts, how the warm `aws` joins it; with what it
uses, labkit.control and labkit.errors) and labkit.trust (whether a trust policy lets EC2 assume a
role: the metadata service and the lesson's checks ask alike). Here is:

- the lab's one account and region, the longest IAM delay it emulates, and how a delay is read;
- the state directory's layout (`lab.json`, `journal.jsonl`, `aws.sock`, `instances/<id>/home`,
  `instances/<id>/identity`, …);
- how an instance proves who it is to the metadata service (its proxy password);
- the warm `aws` socket protocol: the script an instance runs as `aws`, and its frame header.

It imports nothing of labkit's, and only the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from pathlib import Path

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
IMDS_IPV4 = "169.254.169.254"  # the metadata service's addresses, on every instance (IPv6: Nitro, where enabled)
IMDS_IPV6 = "fd00:ec2::254"
MAX_IAM_DELAY = 600.0  # seconds, the most `labkit up --iam-delay` takes: AWS takes seconds, at times minutes


def valid_delay(text: str) -> float:
    """An IAM delay given as text (`--iam-delay`, or options.json): seconds, from 0 to MAX_IAM_DELAY.
    Raises ValueError saying why not, in a few words."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_IAM_DELAY):
        raise ValueError(f"{text} is not between 0 and {MAX_IAM_DELAY:g} seconds")
    return seconds


# The state directory (labkit.statedir.lab_home): one lab.
INFO_FILE = "lab.json"  # ports, pid, administrator keys and secret of the running lab (owner-only)
LOG_FILE = "lab.log"  # what the lab process printed
JOURNAL_FILE = "journal.jsonl"  # every change, to bring the lab back after a crash
START_LOCK = ".start.lock"  # held while a lab starts, so that two never start for one directory
OWNER_LOCK = "lab.lock"  # held by the lab process for as long as it lives; holds its pid
CLI_SOCKET = "aws.sock"  # the warm `aws` server's socket
CLI_SERVER_HOME = "cli-server-home"  # the warm `aws` server's own HOME: never the student's
CLI_SERVER_USER_HOME = "LABKIT_USER_HOME"  # in its environment: the lab's HOME, hidden from what it runs
BIN_DIR = "bin"  # the instances' own `aws` and `python3`
INSTANCES_DIR = "instances"  # one directory per instance
IDENTITY_FILE = "identity"  # in an instance's directory: only its fence may read it (labkit/seal/landlock.py)


def instance_dir(home: Path, instance_id: str) -> Path:
    """Where the lab keeps what belongs to one instance."""
    return home / INSTANCES_DIR / instance_id


def instance_home(home: Path, instance_id: str) -> Path:
    """The instance's own home directory: its `~`."""
    return instance_dir(home, instance_id) / "home"


def instance_identity(home: Path, instance_id: str) -> Path:
    """The file a command proves it runs on the instance with: the warm `aws` serves, as that
    instance, a client that hands it over open for reading (labkit/seal/landlock.py)."""
    return instance_dir(home, instance_id) / IDENTITY_FILE


def instance_key(secret: str, instance_id: str) -> str:
    """The proxy password of one instance: what proves a request to the metadata service comes
    from its shell. Derived from the lab's secret, so only the lab and its client can make it."""
    return hmac.new(secret.encode(), b"instance:" + instance_id.encode(), hashlib.sha256).hexdigest()[:32]


# The warm `aws`: a request is a 4-byte big-endian length and a JSON object (argv, env, cwd), sent
# with the command's stdin, stdout and stderr, and its instance's identity file open for reading when
# it may open it (SCM_RIGHTS); the answer, the pid of the server's child that runs the command (4
# bytes), then its exit status (4 bytes); or -1 in place of the pid, then the one line that says why
# the command was refused, until the server closes the connection. After its request the client
# sends only the signals the terminal sent it, one byte each (their numbers), for the command to take.
HEADER = struct.Struct(">I")


def client_script(python: str, socket_path: str, real_aws: str, *, proves: bool = False) -> str:
    """The instance's `aws`: hand the command to the warm server, or run the real CLI.

    The server's child runs the command outside the terminal's process group, so the script passes
    on what the terminal sends the group, over the connection (a fenced instance may not signal a
    process outside its fence, labkit/seal/landlock.py): Ctrl-C (SIGINT), which the command takes as `aws`
    does; SIGTERM and SIGHUP, after which the script ends itself too. If the script is killed
    outright, the child sees its connection close and ends too. With `proves` (an instance sealed by
    environment), the script hands over its instance's identity file, found beside the instance's
    home ($HOME/../identity); where it cannot open it, it runs the real CLI, which the server would
    refuse to run for it."""
    return f"""#!{python} -IS
# The lab's `aws`: the real AWS CLI, run by a warm copy of it (labkit/labprocess/cliserver.py).
import array, json, os, signal, socket, struct, sys
child, caught = 0, []
def passed_on(number, frame):
    if child:
        s.send(bytes([number]))
    else:
        caught.append(number)  # passed on once the child is known
    if number != signal.SIGINT:
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, passed_on)
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({socket_path!r})
except OSError:
    os.execv({python!r}, [{python!r}, {real_aws!r}] + sys.argv[1:])
identity = []
if {proves!r}:
    try:
        identity = [os.open(os.path.join(os.path.dirname(os.environ.get("HOME", "/").rstrip("/")), {IDENTITY_FILE!r}),
                            os.O_RDONLY | os.O_CLOEXEC)]
    except OSError:
        s.close()
        os.execv({python!r}, [{python!r}, {real_aws!r}] + sys.argv[1:])
request = json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}).encode()
fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2, *identity]))]
try:
    s.sendmsg([struct.pack(">I", len(request)) + request], fds)
except OSError:
    pass  # refused before it was read: the answer says why
for fd in identity:
    os.close(fd)
def answer():
    data = b""
    while len(data) < 4:
        try:
            chunk = s.recv(4 - len(data))
        except OSError:
            chunk = b""
        if not chunk:
            return None
        data += chunk
    return struct.unpack(">i", data)[0]
child = answer() or 0
if child == -1:  # refused: the one line that says why, then nothing
    said = b""
    try:
        while chunk := s.recv(4096):
            said += chunk
    except OSError:
        pass
    sys.stderr.write(said.decode(errors="replace"))
    sys.exit(255)
for number in caught if child else ():
    s.send(bytes([number]))
status = answer()
sys.exit(255 if status is None else status)
"""


def host_name(ipv4: str) -> str:
    """An instance's host name, from its private IPv4 address: `ip-172-31-5-9`."""
    return f"ip-{ipv4.replace('.', '-')}"


def private_dns_name(ipv4: str) -> str:
    """An instance's private DNS name, in us-east-1's form (REGION): `ip-172-31-5-9.ec2.internal`."""
    return f"{host_name(ipv4)}.ec2.internal"
