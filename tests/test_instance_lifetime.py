"""An instance's processes end with it (labkit/seal/keeper.py, labkit/labprocess/runs.py).

Whatever a command on an instance leaves running, and however it left it (`nohup … &`, a double
fork, `setsid`), StopInstances and TerminateInstances end it, in both seals: sealed by the kernel,
with the sandbox's PID namespace; sealed by environment, by the command's keeper, outside the fence.
Each test starts its processes as a student would (a `%%instance` cell, `labkit ssh`), checks from
the host that they run (the positive control), then that none is left a few seconds after the call.
Every process is found by a mark of its own in its command line: `sleep 1000.<nonce><n>`.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import labkit
from conftest import Demo, landlock_abi

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

LABKIT = str(Path(sys.executable).parent / "labkit")
SETTLE = 5.0  # seconds the processes have to appear, and to be gone
_NONCE = itertools.count(1)


def marks(count: int = 3) -> list[str]:
    """Durations no other process on this machine sleeps for: each one a process's mark."""
    nonce = f"{os.getpid()}{next(_NONCE):03d}{time.monotonic_ns() % 100000:05d}"
    return [f"1000.{nonce}{n}" for n in range(1, count + 1)]


def daemons(mark: list[str]) -> str:
    """The three ways to leave a process running after a command has ended."""
    nohup, double, setsid = mark
    return "\n".join(
        [
            f"nohup sleep {nohup} >/dev/null 2>&1 &",
            f"(sleep {double} </dev/null >/dev/null 2>&1 &)",
            f"setsid -f sleep {setsid} </dev/null >/dev/null 2>&1",
        ]
    )


def running(mark: list[str]) -> dict[str, int]:
    """The processes, seen from the host, whose command line is `sleep MARK`: mark → pid."""
    wanted = {f"sleep\0{m}\0".encode(): m for m in mark}
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                line = Path(f"/proc/{name}/cmdline").read_bytes()
                state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if line in wanted and state not in (b"Z", b"X"):
                found[wanted[line]] = int(name)
    return found


def settled(mark: list[str], *, present: bool) -> dict[str, int]:
    """What runs of `mark` once all of it is there (present) or none of it is, or SETTLE seconds have passed."""
    deadline = time.monotonic() + SETTLE
    while True:
        found = running(mark)
        if len(found) == (len(mark) if present else 0) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def ssh(demo: Demo, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABKIT_HOME": str(demo.lab.home)}
    return subprocess.run([LABKIT, "ssh", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


@pytest.mark.parametrize("call", ["stop_instances", "terminate_instances"])
def test_what_a_cell_leaves_running_ends_with_the_instance(either_demo: Demo, call: str) -> None:
    """From `%%instance` (run_lines): nohup, a double fork, setsid; then StopInstances or TerminateInstances."""
    mark = marks()
    transcript = either_demo.box.run_lines(daemons(mark), timeout=30)
    assert transcript.ok, transcript
    started = settled(mark, present=True)
    assert sorted(started) == sorted(mark), f"not all started: {started}"
    getattr(either_demo.ec2, call)(InstanceIds=[either_demo.instance_id])
    assert settled(mark, present=False) == {}, f"still running after {call}"


def test_what_labkit_ssh_leaves_running_ends_with_the_instance(either_demo: Demo) -> None:
    """From `labkit ssh`: one command (`-- COMMAND`) and a shell (its input a pipe); then StopInstances."""
    by_command, in_the_shell = marks(), marks()
    one = ssh(either_demo, "demo-instance", "--", daemons(by_command))
    assert one.returncode == 0, one
    shell = ssh(either_demo, "demo-instance", stdin=daemons(in_the_shell) + "\nexit\n")
    assert shell.returncode == 0, shell
    started = settled(by_command + in_the_shell, present=True)
    assert sorted(started) == sorted(by_command + in_the_shell), f"not all started: {started}"
    either_demo.ec2.stop_instances(InstanceIds=[either_demo.instance_id])
    assert settled(by_command + in_the_shell, present=False) == {}, "still running after StopInstances"


def test_a_stop_and_a_start_at_once_still_end_them(either_demo: Demo) -> None:
    """StopInstances then StartInstances, with no pause: the instance runs again, in a new run, and
    what the first run left is gone (the keeper asks which run is current, not whether one is)."""
    mark = marks(1)
    assert either_demo.box.run(f"nohup sleep {mark[0]} >/dev/null 2>&1 &").ok
    assert settled(mark, present=True)
    either_demo.ec2.stop_instances(InstanceIds=[either_demo.instance_id])
    either_demo.ec2.start_instances(InstanceIds=[either_demo.instance_id])
    assert settled(mark, present=False) == {}, "still running after StopInstances and StartInstances"
    again = marks(1)  # a command of the new run is kept, not ended
    assert either_demo.lab.instance("demo-instance").run(f"nohup sleep {again[0]} >/dev/null 2>&1 &").ok
    time.sleep(1.0)
    assert list(settled(again, present=True)) == again


def test_while_the_instance_runs_what_it_started_runs_on(environment_demo: Demo) -> None:
    """The keeper of a command lives as long as what it left; a later command sees nothing of it
    ended, the keeper is their parent (the subreaper), and it goes once they have gone."""
    mark = marks()
    assert environment_demo.box.run_lines(daemons(mark)).ok
    started = settled(mark, present=True)
    assert sorted(started) == sorted(mark)
    keepers = {parent(pid) for pid in started.values()}
    assert len(keepers) == 1, keepers  # however they left, each became its keeper's child
    (keeper,) = keepers
    assert Path(f"/proc/{keeper}/comm").read_text().strip() == "labkit-keeper"
    time.sleep(1.0)
    assert environment_demo.box.run("true").ok
    assert running(mark) == started
    environment_demo.ec2.terminate_instances(InstanceIds=[environment_demo.instance_id])
    assert settled(mark, present=False) == {}
    deadline = time.monotonic() + SETTLE
    while Path(f"/proc/{keeper}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{keeper}").exists(), "the keeper outlived what it kept"


def test_a_process_that_tries_to_kill_its_keeper_still_ends_with_the_instance(environment_demo: Demo) -> None:
    """Sealed by environment, the attack a student would try: a daemon, once orphaned, kills its
    parent (its keeper), then sleeps on. Landlock (ABI 6) scopes the instance's signals to its own
    processes: the keeper lives, and ends it."""
    abi = landlock_abi()
    assert abi >= 6, f"Landlock ABI {abi} scopes no signal (ABI 6, Linux 6.12, does): an instance can kill its keeper"
    mark = marks(1)
    attack = (
        "import os, signal, time\n"
        "if os.fork(): os._exit(0)\n"
        "os.setsid()\n"
        "time.sleep(0.3)\n"  # orphaned by now: the parent is the keeper
        "keeper = os.getppid()\n"
        "try:\n    os.kill(keeper, signal.SIGKILL); said = 'killed'\n"
        "except OSError as error:\n    said = error.strerror\n"
        "open('attack.txt', 'w').write(f'{keeper} {said}')\n"
        f"os.execvp('sleep', ['sleep', '{mark[0]}'])\n"
    )
    box = environment_demo.box
    (box.home / "attack.py").write_text(attack)
    assert box.run("python3 attack.py </dev/null >/dev/null 2>&1").ok
    assert list(settled(mark, present=True)) == mark
    keeper, said = (box.home / "attack.txt").read_text().split(" ", 1)
    assert int(keeper) not in (0, 1) and said == "Operation not permitted", (keeper, said)
    assert Path(f"/proc/{keeper}/comm").read_text().strip() == "labkit-keeper"  # the control: it aimed at it
    environment_demo.ec2.stop_instances(InstanceIds=[environment_demo.instance_id])
    assert settled(mark, present=False) == {}


def test_when_the_lab_stops_what_an_instance_left_ends_too(tmp_path: Path) -> None:
    """Sealed by environment, as sealed by the kernel: `labkit down` ends every instance's processes."""
    labkit.up(tmp_path, sealed=False)
    try:
        lab = labkit.connect(tmp_path)
        ec2 = lab.client("ec2")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        launched = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        mark = marks(1)
        assert lab.instance(launched).run(f"nohup sleep {mark[0]} >/dev/null 2>&1 &").ok
        assert list(settled(mark, present=True)) == mark
    finally:
        labkit.down(tmp_path)
    assert settled(mark, present=False) == {}, "still running after `labkit down`"


def test_no_thread_of_the_caller_can_be_signalled_from_an_instance(environment_demo: Demo) -> None:
    """The caller (here, this test's process, as a notebook's kernel) keeps no thread inside an
    instance's fence: a command can signal none of its threads, guessed by number (a SIGKILL to any
    one would end the kernel). The control: the same command outside the fence reaches every one."""
    abi = landlock_abi()
    assert abi >= 6, f"Landlock ABI {abi} scopes no signal (ABI 6, Linux 6.12, does): all the user's are in reach"
    box = environment_demo.box
    assert box.run("true").ok  # whatever the caller keeps for an instance's commands, it has it now
    threads = sorted(os.listdir("/proc/self/task"), key=int)
    probe = "; ".join(f"kill -0 {tid} 2>/dev/null && echo {tid}" for tid in threads)
    assert box.run(probe).stdout.split() == []
    unfenced = subprocess.run(["bash", "-c", probe], env=box.environ(), capture_output=True, text=True, timeout=60)
    assert unfenced.stdout.split() == threads
