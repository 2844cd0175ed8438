"""Sealed instances (`labkit up --sealed`, issue 14): each instance its own machine, sealed by the kernel.

For real: a lab started with --sealed, its instances in namespaces of their own, and everything a
curious student might try from inside one. These tests never skip: on a host that allows no user
namespaces they fail, saying why (only the fallback test runs the lab where namespaces are refused,
on purpose, by switching them off in a user namespace of its own).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import labkit
from labkit.catalogue import AL2023, APP_SERVER, INSTANCE, ROLE
from labkit.seal import landlock
from labkit.seal.kernel import refusal
from labkit.solutions import launch
from tests.conftest import LAUNCHED_BY_STUDENT, imds_get, python_as_student

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

ROOT = Path(__file__).resolve().parent.parent
TOKEN = 'T=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")'


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.Lab]:
    """A sealed lab where a student finished notebooks 00-04: demo-instance holds DemoRoleForEC2,
    app-server holds no role."""
    why = refusal()
    assert why is None, f"sealed instances need user namespaces, and this host refuses them: {why}"
    home = tmp_path_factory.mktemp("sealed")
    info, started = labkit.up(home, sealed=True)
    assert started and info.sealed, info
    lab = labkit.connect(home)
    lab.reset(to="05", say=False)
    yield lab
    labkit.down(home)


def on(lab: labkit.Lab, name: str, text: str, *, timeout: float = 120.0) -> str:
    """What `text` prints (stdout and stderr, each command's in turn) on instance `name`."""
    transcript = lab.instance(name).run_lines(text, timeout=timeout)
    return "\n".join((r.stdout + r.stderr).rstrip("\n") for r in transcript.results)


def test_who_and_where_are_an_amazon_linux_2023_instance(sealed: labkit.Lab) -> None:
    box = sealed.instance(INSTANCE)
    said = on(sealed, INSTANCE, "whoami\nid\nhostname\nhostname -f\nuname -n\necho $HOME\npwd").split("\n")
    name = f"ip-{box.private_ip.replace('.', '-')}.ec2.internal"
    assert said[:7] == [
        "ec2-user",
        "uid=1000(ec2-user) gid=1000(ec2-user) groups=1000(ec2-user)",
        name,
        name,
        name,
        "/home/ec2-user",
        "/home/ec2-user",
    ], said
    release = on(sealed, INSTANCE, "cat /etc/os-release /etc/system-release; grep ec2-user /etc/group")
    image = sealed.client("ec2").describe_images(ImageIds=[_image_of(sealed, INSTANCE)])["Images"][0]["Name"]
    version = re.findall(r"-(2023\.\d+\.\d+)\.\d+-", image)[0]  # al2023-ami-2023.12.20260930.0-… runs 2023.12.20260930
    assert f'PRETTY_NAME="Amazon Linux {version}"' in release and 'PLATFORM_ID="platform:al2023"' in release
    assert f"Amazon Linux release {version} (Amazon Linux)" in release and "debian" not in release.lower()
    assert "wheel:x:10:ec2-user" in release
    assert (
        box.run("sudo -i").stderr.strip()
        == "sudo: this lab's instances have no root; everything here runs as ec2-user."
    )


def _image_of(lab: labkit.Lab, name: str) -> str:
    reservations = lab.client("ec2").describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
    return str(reservations["Reservations"][0]["Instances"][0]["ImageId"])


def test_an_instance_runs_the_release_of_its_ami_and_the_newest_is_the_catalogues() -> None:
    """os-release follows the AMI's name; any other AMI gets the newest AL2023 of moto's us-east-1."""
    import gzip

    import moto

    from labkit.labprocess.sandbox import NEWEST_RELEASE, release_of

    assert release_of("al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64") == "2023.6.20241212"
    assert release_of("al2023-ami-minimal-2023.7.20250101.1-kernel-6.12-arm64") == "2023.7.20250101"
    assert release_of("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240101") == NEWEST_RELEASE
    amis = Path(moto.__file__).parent / "ec2" / "resources" / "latest_amis" / "us-east-1.json"
    names = [ami["name"] for ami in json.load(gzip.open(f"{amis}.gz"))]
    releases = [release_of(n) for n in names if n.startswith("al2023-ami-")]
    assert max(releases, key=lambda r: [int(part) for part in r.split(".")]) == NEWEST_RELEASE


def test_the_environment_holds_no_endpoint_proxy_or_secret(sealed: labkit.Lab) -> None:
    env = on(sealed, INSTANCE, "env")
    names = {line.split("=", 1)[0] for line in env.splitlines() if "=" in line}
    assert not {n for n in names if "proxy" in n.lower() or n.startswith("AWS_") and n != "AWS_DEFAULT_REGION"}, env
    info = sealed.info
    for secret in (info.secret, info.admin_secret_access_key, info.admin_access_key_id, str(info.api_port)):
        assert secret not in env
    assert "127.0.0.1" not in env and "/tmp" not in env


def test_ps_shows_the_instances_processes_only(sealed: labkit.Lab) -> None:
    listing = on(sealed, INSTANCE, "ps ax -o pid=,args=").splitlines()
    assert 3 <= len(listing) <= 6, listing  # its PID 1, the ec2-user namespace's holder, the shell, ps
    assert listing[0].split()[0] == "1"
    assert not [line for line in listing if "labkit.labprocess" in line or "jupyter" in line or "pytest" in line]


def test_the_host_is_read_only_and_its_devices_out_of_reach(sealed: labkit.Lab) -> None:
    """The host's files stay the host's whoever runs the lab (as root, ec2-user is root's uid on the
    host): every mount but ~, /tmp and the like is read-only, /dev holds no disk and no terminal of
    another user, /proc/sys cannot be written."""
    said = on(
        sealed,
        INSTANCE,
        "ls /dev | tr '\\n' ' '; echo\nls /dev/pts\ntouch /usr/bin/labkit-was-here /etc/x /var/x\n"
        "echo x > /proc/sys/kernel/core_pattern\necho ok > ~/w && cat ~/w && rm ~/w\necho ok > /tmp/w && cat /tmp/w",
    ).splitlines()
    assert said[0].split() == "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero".split()
    assert said[1] == "ptmx"
    assert [line.rsplit(": ", 1)[-1] for line in said[2:6]] == ["Read-only file system"] * 4, said
    assert said[6:] == ["ok", "ok"]
    assert not Path("/usr/bin/labkit-was-here").exists()


def test_no_socket_of_the_host_is_within_reach(sealed: labkit.Lab) -> None:
    """A container engine's socket, the session bus, the lab's own `aws.sock`: when the lab runs as
    root, ec2-user would be root's uid to them. The instance finds no socket but its warm `aws`'s."""
    found = on(sealed, INSTANCE, "find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null")
    assert found == "/run/labkit/aws.sock", found  # the warm `aws`, which joins the instance to serve it


def test_nothing_the_instance_can_read_holds_a_secret_of_the_lab(sealed: labkit.Lab) -> None:
    """The whole filesystem searched (but /proc and /sys), and every process's environment and
    command line, for the administrator's keys and the lab's secret. The patterns reach grep on a
    pipe, never in a command line. Two controls show the search reaches what it must: a marker
    written in ~, and the line of this venv's pyvenv.cfg that names the Python it is made from."""
    info = sealed.info
    marker = f"marker-{os.getpid()}-{time.time_ns()}"
    venv = Path(os.path.realpath(sys.prefix)) / "pyvenv.cfg"
    control = next(line for line in venv.read_text().splitlines() if line.startswith("home = "))
    secrets = [info.admin_secret_access_key, info.admin_access_key_id, info.secret]
    patterns = "\\n".join([*secrets, marker, control])
    found = on(
        sealed,
        INSTANCE,
        f"echo {marker} > ~/marker.txt\n"
        f"grep -rsoF --devices=skip -f <(printf '{patterns}\\n') $(ls -d /* | grep -vx -e /proc -e /sys) | sort -u\n"
        f"grep -soF -f <(printf '{patterns}\\n') /proc/[0-9]*/environ /proc/[0-9]*/cmdline\n"
        "rm ~/marker.txt",
        timeout=900,
    )
    matches = {tuple(line.rsplit(":", 1)) for line in found.splitlines()}
    assert ("/home/ec2-user/marker.txt", marker) in matches, found[-2000:]
    assert (str(venv), control) in matches, found[-2000:]
    assert not [line for line in found.splitlines() if any(secret in line for secret in secrets)], found[-2000:]


@pytest.mark.parametrize("under", ["/var/lib", "/opt"])
def test_the_state_directory_is_hidden_where_no_tmpfs_would_cover_it(under: str) -> None:
    """Every other sealed lab keeps its state under /tmp, which each instance gets a fresh tmpfs of
    anyway: here it lives where the instance sees the host's files (read-only), and must still be
    hidden. The control: the directory is there on the host, holds lab.json with the lab's secret,
    and the instance sees the host's `under` (the directory's name in it)."""
    assert refusal() is None, f"sealed instances need user namespaces, and this host refuses them: {refusal()}"
    home = Path(tempfile.mkdtemp(prefix="labkit-test-", dir=under))  # mode 0700, as the lab makes its own
    try:
        info, started = labkit.up(home, sealed=True)
        assert started and info.sealed, info
        lab = labkit.connect(home)
        launch(lab, INSTANCE)
        record = home / "lab.json"
        assert info.secret in record.read_text() and (home / "journal.jsonl").exists()  # the host's view
        cat, ls, parent = lab.instance(INSTANCE).run_lines(f"cat {record}\nls -A {home}\nls -A {under}").results
        assert (cat.exit_code, cat.stdout, cat.stderr) == (1, "", f"cat: {record}: No such file or directory\n"), cat
        assert (ls.exit_code, ls.stdout, ls.stderr) == (0, "", ""), ls
        assert parent.exit_code == 0 and home.name in parent.stdout.split(), parent
    finally:
        labkit.down(home)
        shutil.rmtree(home)


def test_var_tmp_is_each_instances_own(sealed: labkit.Lab) -> None:
    """/var/tmp, like /tmp, is the instance's own and writable, as on Amazon Linux: the host's files
    there are not seen, and what an instance writes there neither reaches the host nor another
    instance. The controls: the host's file is there, and the instance reads its own file back."""
    mark = f"labkit-{os.getpid()}-{time.time_ns()}"
    hosts, instances = Path(f"/var/tmp/{mark}-host"), Path(f"/var/tmp/{mark}-instance")
    hosts.write_text("the host's\n")
    try:
        seen, write = sealed.instance(INSTANCE).run_lines(f"ls -A /var/tmp\necho mine > {instances}").results
        assert hosts.exists() and hosts.name not in seen.stdout.split(), seen
        assert (write.exit_code, write.stderr) == (0, ""), write
        assert sealed.instance(INSTANCE).run(f"cat {instances}").stdout == "mine\n"  # kept while the instance runs
        assert not instances.exists(), "a file an instance wrote in /var/tmp reached the host's"
        other = sealed.instance(APP_SERVER).run_lines(f"hostname\nls -A /var/tmp\ncat {instances}").results
        assert other[0].exit_code == 0 and other[0].stdout.startswith("ip-"), other[0]
        assert other[1].exit_code == 0 and instances.name not in other[1].stdout.split(), other[1]
        assert other[2].exit_code == 1 and "No such file or directory" in other[2].stderr, other[2]
    finally:
        hosts.unlink()
        instances.unlink(missing_ok=True)


def test_only_loopback_answers_and_the_labs_own_ports_are_not_there(sealed: labkit.Lab) -> None:
    info = sealed.info
    said = on(
        sealed,
        INSTANCE,
        f"curl -sS -m 5 http://127.0.0.1:{info.api_port}/; echo status $?\n"
        f"curl -sS -m 5 http://127.0.0.1:{info.imds_port}/; echo status $?\n"
        "curl -sS -m 5 http://93.184.216.34/; echo status $?\n"
        "curl -sS -m 5 https://aws.amazon.com/; echo status $?\n"
        "echo > /dev/tcp/10.0.0.1/22",
    )
    assert said.count("Failed to connect to 127.0.0.1") == 2 and said.count("status 7") == 3, said
    assert "status 6" in said, said  # aws.amazon.com: the lab's DNS server knows no such name (NXDOMAIN)
    assert "Network is unreachable" in said, said
    assert said.count("status 0") == 0


def test_the_metadata_service_is_at_its_address_and_aws_at_aws_names(sealed: labkit.Lab) -> None:
    box = sealed.instance(INSTANCE)
    said = on(sealed, INSTANCE, imds_get(f"http://169.254.169.254/latest/meta-data/iam/security-credentials/{ROLE}"))
    assert json.loads(said)["Code"] == "Success"
    assert on(sealed, INSTANCE, imds_get("http://169.254.169.254/latest/meta-data/instance-id")) == box.id
    identity = json.loads(box.run("aws sts get-caller-identity").stdout)
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{box.id}"
    users = box.run("aws iam list-users --query 'Users[].UserName' --output text")
    assert users.ok and "alice" in users.stdout.split(), users
    debug = box.run("aws --debug sts get-caller-identity").stderr
    assert "https://sts.us-east-1.amazonaws.com" in debug and "127.0.0.1" not in debug


def test_the_warm_aws_runs_inside_the_instance_as_a_fresh_one_would(sealed: labkit.Lab) -> None:
    """`aws` on a sealed instance is the lab's warm CLI, which joins the instance's namespaces: what
    it prints is byte for byte what a fresh `aws` process prints there, and it is several times faster."""
    box = sealed.instance(INSTANCE)
    fresh = f"python3 {Path(sys.prefix) / 'bin' / 'aws'}"
    policy = 'echo \'{"Version":"2012-10-17","Statement":[]}\' | '
    commands = ["sts get-caller-identity", "iam create-user --user-name mallory", "configure list"]
    commands.append("iam create-role --role-name r --assume-role-policy-document file:///dev/stdin")
    for command in commands:  # the last reads /dev/stdin: /proc/self is the command's own, inside
        feed = policy if "stdin" in command else ""
        warm, cold = box.run(f"{feed}aws {command}"), box.run(f"{feed}{fresh} {command}")
        assert (warm.stdout, warm.stderr, warm.exit_code) == (cold.stdout, cold.stderr, cold.exit_code), command
    assert box.run("test -S /run/labkit/aws.sock").ok

    def seconds(command: str) -> float:
        began = time.perf_counter()
        assert box.run(command).ok
        return time.perf_counter() - began

    warm = min(seconds("aws iam list-users") for _ in range(3))
    cold = min(seconds(f"{fresh} iam list-users") for _ in range(3))
    assert warm < 0.5 * cold, (warm, cold)


def test_another_instances_role_cannot_be_had(sealed: labkit.Lab) -> None:
    """From app-server (no role): its own metadata service knows no role, a token of demo-instance's
    is refused, the lab's ports and control endpoint are not there or refuse, and no namespace can
    be made or entered."""
    demo_token = sealed.instance(INSTANCE).run(TOKEN.removeprefix("T=$(").removesuffix(")")).stdout
    assert demo_token
    said = on(
        sealed,
        APP_SERVER,
        f"{TOKEN}; curl -s -o /dev/null -w '%{{http_code}}\\n' -H \"X-aws-ec2-metadata-token: $T\" "
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/\n"
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'X-aws-ec2-metadata-token: {demo_token}' "
        "http://169.254.169.254/latest/meta-data/instance-id\n"
        f"{TOKEN}; curl -s -H \"X-aws-ec2-metadata-token: $T\" -H 'Host: 169.254.169.254' "
        "http://169.254.169.254/latest/meta-data/instance-id; echo\n"
        "curl -s -o /dev/null -w '%{http_code}\\n' https://iam.amazonaws.com/_labkit/health\n"
        "aws sts get-caller-identity\n"
        "unshare --user true; echo status $?\n"
        "nsenter --target 1 --user --mount true; echo status $?\n"
        "cat /proc/1/environ; ls /proc/1/root/; echo status $?",
    )
    app = sealed.instance(APP_SERVER)
    lines = said.splitlines()
    assert lines[:4] == ["404", "401", app.id, "401"], said
    assert "Unable to locate credentials" in said
    assert said.count("status 1") >= 2 and "Permission denied" in said, said
    assert "AKIA" not in said and "ASIA" not in said


def test_status_says_how_instances_are_sealed(sealed: labkit.Lab) -> None:
    env = {**os.environ, "LABKIT_HOME": str(sealed.home), "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([sys.executable, "-m", "labkit.cli", "status"], env=env, capture_output=True, text=True)
    assert "  sealing:   each instance is a machine of its own, sealed by the kernel in namespaces" in shown.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "status", "--json"], env=env, capture_output=True, text=True
    )
    assert json.loads(as_json.stdout)["sealed"] is True


def _sandbox_processes(init: int) -> dict[int, str]:
    """Every process in the PID namespace whose PID 1 is `init` (pids as this test sees them)."""
    namespace = os.readlink(f"/proc/{init}/ns/pid")
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == namespace:
                    found[int(name)] = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
    return found


def _init_of(lab: labkit.Lab, instance_id: str) -> int:
    from labkit.seal.kernel import entry

    return int(entry(lab.current(), instance_id)[1].removeprefix("--target="))


def test_the_home_survives_a_restart_and_a_crash_of_the_lab(sealed: labkit.Lab) -> None:
    box = sealed.instance(INSTANCE)
    assert box.run("echo kept > ~/notes.txt").ok
    before = _init_of(sealed, box.id)
    labkit.down(sealed.home)
    assert not Path(f"/proc/{before}").exists()  # the sandbox ended with the lab
    info, started = labkit.up(sealed.home)  # --sealed is kept for the next start
    assert started and info.sealed
    assert sealed.instance(INSTANCE).run("cat ~/notes.txt; hostname").stdout.split() == [
        "kept",
        f"ip-{box.private_ip.replace('.', '-')}.ec2.internal",
    ]
    crashed, init = sealed.current().pid, _init_of(sealed, box.id)
    os.kill(crashed, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{init}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{init}").exists(), "a sandbox outlived its lab"
    labkit.up(sealed.home)
    assert sealed.instance(INSTANCE).run("cat ~/notes.txt; rm ~/notes.txt").stdout == "kept\n"


def test_terminating_an_instance_ends_its_processes(sealed: labkit.Lab) -> None:
    ec2 = sealed.client("ec2")
    image = ec2.describe_images(Owners=["amazon"], Filters=AL2023)["Images"][0]["ImageId"]
    launched = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    instance_id = launched["Instances"][0]["InstanceId"]
    box = sealed.instance(instance_id)
    assert box.run("nohup sleep 600 > /dev/null 2>&1 &").ok
    init = _init_of(sealed, instance_id)
    deadline = time.monotonic() + 10  # `nohup` execs `sleep` once the shell has left it running
    inside = _sandbox_processes(init)
    while not any(args.startswith("sleep 600") for args in inside.values()):
        assert time.monotonic() < deadline, inside
        time.sleep(0.05)
        inside = _sandbox_processes(init)
    ec2.terminate_instances(InstanceIds=[instance_id])
    deadline = time.monotonic() + 5
    while (left := _sandbox_processes(init) if Path(f"/proc/{init}").exists() else {}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left and not any(Path(f"/proc/{pid}").exists() for pid in inside), left


# -- where namespaces are refused, and as an unprivileged user --------------------------------------
def test_where_namespaces_are_refused_the_lab_says_why_and_keeps_the_environment_seal(tmp_path: Path) -> None:
    """The lab started inside a user namespace whose user.max_user_namespaces is 0, as a host that
    allows none (Docker's default seccomp, say) behaves."""
    home = tmp_path / "lab"
    env = {**os.environ, "LABKIT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" -m labkit.cli up --sealed'
    started = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", script, sys.executable],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        said = [line for line in started.stdout.splitlines() if line.startswith("labkit:")]
        assert said == [
            "labkit: instances are sealed by environment only on this host: user namespaces are switched off "
            f"here (user.max_user_namespaces is 0); {landlock.said()}."
        ], started.stdout
        lab = labkit.connect(home)
        assert not lab.info.sealed
        lab.reset(to="05", say=False)
        box = lab.instance(INSTANCE)
        identity = json.loads(box.run("aws sts get-caller-identity").stdout)
        assert identity["Arn"].endswith(f"assumed-role/{ROLE}/{box.id}")
        assert box.run("echo $HOME").stdout.strip() == str(box.home)  # the environment seal, as before
        status = subprocess.run([sys.executable, "-m", "labkit.cli", "status"], env=env, capture_output=True, text=True)
        assert "sealing:   instances are sealed by environment only on this host" in status.stdout
    finally:
        labkit.down(home)


STUDENT_SCRIPT = (
    LAUNCHED_BY_STUDENT
    + """
said = box.run_lines(
    "whoami\\nhostname\\nls /home\\ncat /proc/self/uid_map\\n"
    "curl -s -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 9' "
    "-o /dev/null -w '%{http_code}\\\\n'\\nls ~/.. /root 2>&1 | wc -l"
)
print(json.dumps({"sealed": lab.info.sealed, "said": [r.stdout.strip() for r in said.results]}))
labkit.down()
"""
)


@pytest.mark.root(reason="acting as the user labkit-student needs root")
def test_an_unprivileged_user_gets_sealed_instances() -> None:
    """The lab run by a user without root (CI runs as root: the test creates that user)."""
    with python_as_student(sealed=True) as python:
        ran = subprocess.run(python, input=STUDENT_SCRIPT, capture_output=True, text=True, timeout=300, cwd="/")
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.splitlines()[-1])
    assert result["sealed"] is True
    whoami, hostname, homes, uid_map, token, listing = result["said"]
    assert whoami == "ec2-user" and re.fullmatch(r"ip-172-31-\d+-\d+\.ec2\.internal", hostname)
    assert homes == "ec2-user"
    assert uid_map.split() == ["1000", "0", "1"]
    assert token == "200"
    assert int(listing) <= 4  # /home holds ec2-user only, /root nothing
