"""What a cell or a terminal on an instance starts, and what it hands to bash.

- Interrupting a `%%instance` cell (■, SIGINT to the kernel) stops the command and everything it
  started, and the cell shows `^C`; a command past its time is stopped, and the transcript says so.
- No value from AWS (a Name tag, an address) becomes shell code on this machine: not in `labkit ssh`,
  not in run / run_lines.
- What a cell runs (a key, say) is in no process's command line, which every local user can read.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel
from test_cli import LABKIT, on_a_terminal, shown_on

import labkit
from conftest import STUDENT, Demo, student_account, wait_for

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

STILL_RUNNING = (
    "the command was still running. A command on an instance that never ends holds up its cell: "
    "press ■ (interrupt the kernel) to stop it sooner.]"
)


def processes() -> dict[int, tuple[int, list[str]]]:
    """Every live process (zombies have ended): pid → (session, command line)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except (OSError, ValueError, IndexError):
            continue
        if stat[0] != b"Z":
            found[int(name)] = (int(stat[3]), cmdline)
    return found


def left_of(session: int, *commands: str) -> list[str]:
    """The live processes of `session`, and any other running one of `commands` (`sleep 1234.5`)."""
    wanted = [c.split() for c in commands]
    return [" ".join(cmd) for sid, cmd in processes().values() if sid == session or cmd in wanted]


def running(command: str) -> bool:
    return command.split() in [cmd for _, cmd in processes().values()]


def session_of(command: str) -> int:
    """The session of the one running `command`: the session of the cell's shell, which started it
    (found from here, whether or not the instance has a PID namespace of its own)."""
    return wait_for(lambda: next((sid for sid, cmd in processes().values() if cmd == command.split()), 0), 60)


def kill_left(session: int, *commands: str) -> None:
    """Clean up after old code (that left them running)."""
    wanted = [c.split() for c in commands]
    for pid, (sid, cmd) in processes().items():
        if sid == session or cmd in wanted:
            os.kill(pid, signal.SIGKILL)


@dataclass
class Kernel:
    """A real IPython kernel, connected to the test session's lab, driven as JupyterLab drives it."""

    manager: Any
    client: Any

    def start(self, code: str) -> str:
        return str(self.client.execute(code))

    def finish(self, msg_id: str, timeout: float = 60) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The execute reply to `msg_id`, and the outputs its cell showed."""
        outputs = []
        while True:
            message = self.client.get_iopub_msg(timeout=timeout)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
            if message["msg_type"] in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"output_type": message["msg_type"], **message["content"]})
        while (reply := self.client.get_shell_msg(timeout=timeout))["parent_header"].get("msg_id") != msg_id:
            pass
        return reply["content"], outputs

    def run(self, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return self.finish(self.start(code))


@pytest.fixture
def kernel(lab: labkit.Lab) -> Iterator[Kernel]:
    manager, client = start_new_kernel(kernel_name="python3", env={**os.environ, "LABKIT_HOME": str(lab.home)})
    kernel = Kernel(manager, client)
    try:
        reply, _ = kernel.run("import labkit\n\nlab = labkit.connect()")
        assert reply["status"] == "ok", reply
        yield kernel
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def shown(outputs: list[dict[str, Any]]) -> str:
    return "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)


@pytest.mark.parametrize(
    "foreground",
    [
        "while true; do :; done",
        "sleep 1000.25",
        # ends by itself at Ctrl-C, as aws does (status 130): bash alone would go on to the next line
        "bash -c 'trap \"exit 130\" INT; sleep 1000.25 & wait'",
    ],
)
def test_interrupting_a_cell_stops_everything_it_started_and_shows_ctrl_c(
    demo: Demo, kernel: Kernel, foreground: str
) -> None:
    """Each interrupt left the cell's shell running, with its `sleep`, and the cell showed only a
    KeyboardInterrupt traceback from inside labkit."""
    after = demo.box.home / "after"  # the instance's ~, seen from here
    cell = f"echo started\nsleep 1234.25 &\n{foreground}\ntouch ~/after"
    msg_id = kernel.start(f"%%instance demo-instance\n{cell}")
    session = session_of("sleep 1234.25")
    try:
        time.sleep(0.5)  # the next line, in the foreground, well under way
        kernel.manager.interrupt_kernel()
        reply, outputs = kernel.finish(msg_id, timeout=30)
        assert left_of(session, "sleep 1234.25", "sleep 1000.25") == []
    finally:
        kill_left(session, "sleep 1234.25", "sleep 1000.25")
    assert not after.exists()
    prompt = demo.box.prompt
    assert shown(outputs[:1]) == (
        f"{prompt} echo started\nstarted\n{prompt} sleep 1234.25 &\n"
        f"{prompt} {foreground}\n^C\n[exit status 130]\n[not run: touch ~/after]"
    )
    assert (reply["status"], reply["ename"]) == ("error", "CommandInterrupted")
    assert [o["output_type"] for o in outputs] == ["display_data", "error"]
    assert outputs[1]["traceback"] == [
        f"\x1b[1;31mKeyboardInterrupt\x1b[0m: `{foreground}` was stopped with everything it started, and the "
        "lines after it were not run. Run the cell again to start over."
    ]
    # the kernel and the instance carry on
    reply, outputs = kernel.run("%%instance demo-instance\necho still here")
    assert reply["status"] == "ok" and shown(outputs) == f"{prompt} echo still here\nstill here"


def test_a_cell_past_its_time_is_stopped_and_says_so(demo: Demo) -> None:
    """It printed `[exit status -9]`, and nothing about the lines after it."""
    began = time.monotonic()
    cell = "sleep 1234.5 &\nsetsid sleep 1234.75 &\nsleep 1000.5\necho after"
    sessions: list[int] = []
    watcher = threading.Thread(target=lambda: sessions.append(session_of("sleep 1234.5")))
    watcher.start()
    transcript = demo.box.run_lines(cell, timeout=2)
    assert time.monotonic() - began < 10
    watcher.join(30)
    session = sessions[0]
    try:  # setsid: in a session of its own, and still stopped
        assert left_of(session, "sleep 1234.5", "sleep 1234.75", "sleep 1000.5") == []
    finally:
        kill_left(session, "sleep 1234.5", "sleep 1234.75", "sleep 1000.5")
    prompt = demo.box.prompt
    assert str(transcript) == (
        f"{prompt} sleep 1234.5 &\n{prompt} setsid sleep 1234.75 &\n"
        f"{prompt} sleep 1000.5\n"
        f"[stopped after 2 s: {STILL_RUNNING}\n[not run: echo after]"
    )
    assert not transcript.ok
    assert "[not run: echo after]" in transcript._repr_html_()


def test_one_command_past_its_time_is_stopped_and_says_so(demo: Demo) -> None:
    result = demo.box.run("echo started; sleep 1000.75", timeout=1)
    assert not running("sleep 1000.75")
    assert str(result) == f"{demo.box.prompt} echo started; sleep 1000.75\nstarted\n[stopped after 1 s: {STILL_RUNNING}"
    assert not result.ok


def test_ctrl_c_in_labkit_ssh_stops_the_command_and_exits_130(lab: labkit.Lab, demo: Demo) -> None:
    """It printed labkit's KeyboardInterrupt traceback, and exited by the signal."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(
            LABKIT,
            [LABKIT, "ssh", "demo-instance", "--", "sleep", "1000.5"],
            {**os.environ, "LABKIT_HOME": str(lab.home)},
        )
    try:
        wait_for(lambda: running("sleep 1000.5"), 60)
        os.write(fd, b"\x03")
        out = shown_on(fd, quiet=30)
        code = os.waitpid(pid, 0)[1]
    finally:
        os.close(fd)
        kill_left(-1, "sleep 1000.5")
    assert "Traceback" not in out.decode(), out.decode()
    assert os.waitstatus_to_exitcode(code) == 130
    assert not running("sleep 1000.5")


@pytest.fixture
def evil(demo: Demo) -> list[tuple[str, Path, str]]:
    """Instances whose Name tag or private address is shell code: (id, the file it would make, what
    the terminal should show of it instead). The code would make the file in the instance's home,
    where a shell on it runs, whether or not the instance is sealed by the kernel."""
    cases = []
    for case, name in {
        "newline": "web\ntouch {marker}",
        "heredoc": "web\nEOF\ntouch {marker}\ncat <<'EOF'",
        "substitution": "$(touch {marker})`touch {marker}`",
        "quote": "web'; touch {marker}; echo '",
    }.items():
        name = name.format(marker=f"~/made-by-{case}")
        reservation = demo.ec2.run_instances(
            ImageId=image(demo), MinCount=1, MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        )  # fmt: skip
        instance_id = reservation["Instances"][0]["InstanceId"]
        cases.append((instance_id, demo.lab.instance(instance_id).home / f"made-by-{case}", name.replace("\n", "\\n")))
    address = "172.31.9.9$(touch ~/made-by-address)"  # no dot: the hostname is the address with dots as dashes
    reservation = demo.ec2.run_instances(ImageId=image(demo), MinCount=1, MaxCount=1, PrivateIpAddress=address)
    assert reservation["Instances"][0]["PrivateIpAddress"] == address  # moto takes it as given
    instance_id = reservation["Instances"][0]["InstanceId"]
    marker = demo.lab.instance(instance_id).home / "made-by-address"
    cases.append((instance_id, marker, "ip-172-31-9-9$(touch ~/made-by-address)"))
    return cases


def image(demo: Demo) -> str:
    instance = demo.ec2.describe_instances(InstanceIds=[demo.instance_id])["Reservations"][0]["Instances"][0]
    return str(instance["ImageId"])


def test_a_name_tag_or_address_is_never_code_in_labkit_ssh(lab: labkit.Lab, evil: list[tuple[str, Path, str]]) -> None:
    """A Name tag holding a line `EOF` ended the welcome's here-document in the shell's startup file,
    and the address was written into PS1, where $(...) runs at every prompt."""
    screens = [on_a_terminal(lab.home, b"echo $((6 * 7))\nexit 3\n", "ssh", instance_id) for instance_id, _, _ in evil]
    assert [marker.name for _, marker, _ in evil if marker.exists()] == []
    for (code, screen), (_, _, looks) in zip(screens, evil, strict=True):
        assert code == 3 and "\n42\n" in screen.replace("\x1b[?2004l\r", ""), screen  # bash's paste mode off
        assert looks in screen, screen  # shown as typed, a newline as \n
        assert "[ec2-user@" in screen, screen  # the prompt was set


def test_a_name_tag_or_address_is_never_code_in_run_or_run_lines(
    lab: labkit.Lab, evil: list[tuple[str, Path, str]]
) -> None:
    for instance_id, marker, _ in evil:
        box = lab.instance(instance_id)
        assert box.run("echo $HOSTNAME").stdout.strip() == box.hostname
        transcript = box.run_lines("echo $HOSTNAME\nhostname > /dev/null")
        assert transcript.ok and transcript.results[0].stdout.strip() == box.hostname
        assert not marker.exists()


SCAN = r"""
import json, os, sys
secret, control = sys.stdin.read().split("\n")[:2]
found, seen = [], False
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == os.getpid():
        continue
    for part in ("cmdline", "environ"):
        try:
            with open(f"/proc/{name}/{part}", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if secret.encode() in data:
            found.append(f"{name}/{part}: " + data.replace(b"\0", b" ").decode(errors="replace")[:300])
        seen = seen or (part == "cmdline" and data == control.encode().replace(b" ", b"\0") + b"\0")
print(json.dumps({"found": found, "control_seen": seen, "uid": os.getuid()}))
"""


@dataclass(frozen=True)
class Scanner:
    argv: list[str]  # the command that scans
    uid: int  # the user it scans as


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    """How to read every process's command line as another local user (as root: `labkit-student`,
    made if missing, with the system's python3); as yourself when the tests do not run as root."""
    if os.geteuid() != 0:
        return Scanner([sys.executable, "-I", "-c", SCAN], os.getuid())
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    assert python and shutil.which("runuser"), "as root, the scan runs as labkit-student: it needs python3 and runuser"
    return Scanner(["runuser", "-u", STUDENT, "--", python, "-I", "-c", SCAN], student_account().pw_uid)


@pytest.mark.parametrize("how", ["run_lines", "run"])
def test_what_a_cell_runs_is_in_no_process_command_line(demo: Demo, scanner: Scanner, how: str) -> None:
    """The cell's text was bash's `-c` argument: a key typed into a cell (notebook 01's
    `aws configure set ...`) could be read by every local user while the cell ran."""
    secret = f"wJalrXUtnFEMI/K7MDENG/{os.urandom(8).hex()}"
    fifo = demo.box.home / "go"  # the instance's ~/go, where its commands run
    os.mkfifo(fifo)
    lines = f"KEY={secret}\necho ${{KEY:0:8}}\ncat go\necho done"  # not last: bash would exec cat
    done: list[Any] = []
    run = demo.box.run_lines if how == "run_lines" else lambda text: demo.box.run(text.replace("\n", "; "))
    worker = threading.Thread(target=lambda: done.append(run(lines)))
    worker.start()
    try:
        wait_for(lambda: running("cat go"), 60)
        scan = subprocess.run(scanner.argv, input=f"{secret}\ncat go\n", capture_output=True, text=True, check=True)
    finally:
        with open(fifo, "w") as go:
            go.write("go\n")
        worker.join(30)
    report = json.loads(scan.stdout)
    assert report["control_seen"], report  # the scan could read the command lines it was after
    assert report["found"] == []
    assert report["uid"] == scanner.uid  # as root: another user's scan, who may read only what all may
    assert done[0].ok and "\nwJalrXUt\n" in str(done[0]) and "\ngo\n" in str(done[0]) and str(done[0]).endswith("done")
