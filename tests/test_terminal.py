"""`labkit ssh` gives the instance a terminal of its own (labkit/relay.py), typed at from a real shell.

The user's shell here is a real interactive bash on a pseudo-terminal; the test types into it as a
student types into JupyterLab's terminal, `labkit ssh demo-instance` first. A process left in the
background on the instance, holding the user's terminal, could wait for the instance's shell to
end, then type into the terminal (TIOCSTI) a command the user's own shell would run, on the host.
"""

from __future__ import annotations

import fcntl
import os
import pty
import pwd
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LAUNCHED_BY_STUDENT, STUDENT, Demo, python_as_student, wait_for
from labkit.seal import keeper_process

pytestmark = pytest.mark.slow  # a pty per test: `make test` runs it

KEEPER = keeper_process.__file__  # what the keepers run (labkit/seal/keeper.py starts it)
INSTANCE_PROMPT = r"\[ec2-user@ip-[^\]]* ~\]\$ "
USER_PROMPT = "user$ "
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # what a terminal acts on (bash's bracketed paste mode)

# A process a student leaves behind on an instance (`python3 inject.py LOG TEXT [TERMINAL] &`): once
# the shell that started it has ended (the user's shell has their terminal back), it types TEXT into
# its terminal, or into the one it opens by name, a character at a time. The command it types makes
# the file $MARKER names, a variable only the user's own shell has.
INJECTED = 'touch "$MARKER"\n'
INJECTOR = """
import fcntl, os, signal, sys, termios, time
signal.signal(signal.SIGHUP, signal.SIG_IGN)
log = open(sys.argv[1], "a", buffering=1)
parent = os.getppid()
log.write("waiting\\n")
try:
    terminal = os.open(sys.argv[3], os.O_RDWR | os.O_NOCTTY) if len(sys.argv) > 3 else 0
except OSError as error:
    log.write(f"refused: {error}\\ndone: typed 0\\n")
    sys.exit()
deadline = time.monotonic() + 60
while os.getppid() == parent and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
typed = 0
for c in sys.argv[2]:
    try:
        fcntl.ioctl(terminal, termios.TIOCSTI, c.encode())
        typed += 1
    except OSError as error:
        log.write(f"refused: {error}\\n")
        break
log.write(f"done: typed {typed}\\n")
"""


class UserShell:
    """The user's own interactive bash, on a pseudo-terminal of the given size, in `home`, with the
    lab in `lab_home`; `as_user`: what runs it as another user (`setpriv ...`), `env`: more of its
    environment."""

    def __init__(
        self,
        lab_home: Path,
        home: Path,
        *,
        as_user: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        size: tuple[int, int] = (40, 100),
    ) -> None:
        self.marker = home / "injected"
        environment = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(home),
            "LABKIT_HOME": str(lab_home),
            **(env or {}),
            "TERM": "xterm",
            "PS1": USER_PROMPT,
            "MARKER": str(self.marker),
        }
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(home)
            argv = [*as_user, "env", "-i", *(f"{k}={v}" for k, v in environment.items())]
            os.execvp(argv[0], [*argv, "/bin/bash", "--norc", "--noprofile", "-i"])
        self.resize(*size)
        self.shown, self.out, self.seen, self.marks = b"", "", 0, 0
        self.expect(re.escape(USER_PROMPT))

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, pattern: str, seconds: float = 30) -> re.Match[str]:
        """Read what the terminal shows until `pattern` appears after what was matched before."""
        deadline = time.monotonic() + seconds
        while not (found := re.compile(pattern).search(self.out, self.seen)):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never showed; the terminal showed:\n{self.out[self.seen :]}"
            try:
                chunk = os.read(self.fd, 4096) if _readable(self.fd, left) else b""
            except OSError:
                chunk = b""
            self.shown += chunk
            self.out = ESCAPES.sub("", self.shown.decode(errors="replace").replace("\r", ""))
        self.seen = found.end()
        return found

    def run(self, command: str) -> str:
        """Type `command` in the user's shell, and what it printed (its output is between two marks)."""
        self.marks += 1
        self.type(f"echo '<'{self.marks}; {command}; echo '>'{self.marks}\n")
        return self.expect(rf"\n<{self.marks}\n([\s\S]*?)>{self.marks}\n")[1]

    def status(self) -> int:
        """The exit status of the last command the user's shell ran."""
        self.type('echo "status: $?"\n')
        return int(self.expect(r"\nstatus: (\d+)\n")[1])

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def terminal(self) -> int:
        """The device number of the user's terminal."""
        return os.stat(os.readlink(f"/proc/{self.pid}/fd/0")).st_rdev

    def close(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def _readable(fd: int, seconds: float) -> bool:
    import select

    return bool(select.select([fd], [], [], seconds)[0])


@pytest.fixture
def user(either_demo: Demo, tmp_path: Path) -> Iterator[UserShell]:
    shell = UserShell(either_demo.lab.home, tmp_path)
    yield shell
    shell.close()


def _stat(pid: int) -> list[bytes]:
    """Fields of /proc/PID/stat after the command name: state, parent, group, session, tty, …"""
    return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()


def descendants(pid: int) -> dict[int, str]:
    """Every live process started, at any depth, from `pid`: pid → command line."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = _stat(int(name))
            except (OSError, IndexError):
                continue
            if fields[0] != b"Z":
                parents[int(name)] = int(fields[1])
    found: set[int] = set()
    while more := {p for p, parent in parents.items() if (parent == pid or parent in found) and p not in found}:
        found |= more
    lines = {}
    for p in found:
        try:
            lines[p] = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return lines


def holding(pids: dict[int, str], terminal: int) -> list[str]:
    """Those of `pids` that hold `terminal`: as an open descriptor, or as their controlling terminal."""
    held = []
    for pid, line in pids.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            ctty = int(_stat(pid)[4])
        except (OSError, IndexError):
            continue
        for fd in fds:
            try:
                if os.stat(f"/proc/{pid}/fd/{fd}").st_rdev == terminal:
                    held.append(f"{line} (fd {fd})")
            except OSError:
                continue
        if ctty == terminal:
            held.append(f"{line} (its controlling terminal)")
    return held


def of_the_instance(labkit: int) -> dict[int, str]:
    """The processes `labkit ssh` started but labkit's own keepers (labkit/seal/keeper.py): the instance's
    command and all it started, and, sealed by the kernel, the `nsenter` that runs it there."""
    return {p: line for p, line in descendants(labkit).items() if f"-I -S {KEEPER}" not in line}


def labkit_in(user: UserShell) -> int:
    """The `labkit` the user's shell runs now."""
    started = lambda: descendants(user.pid).items()  # noqa: E731
    return int(wait_for(lambda: next((p for p, line in started() if "labkit" in line and parent(p) == user.pid), 0)))


def parent(pid: int) -> int:
    try:
        return int(_stat(pid)[1])
    except (OSError, IndexError):
        return 0


def alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != b"Z"
    except (OSError, IndexError):
        return False


def injector_log(path: Path) -> str:
    """What the injector logged, once it says it is done."""
    return str(wait_for(lambda: "done" in (text := path.read_text() if path.exists() else "") and text))


def test_a_process_left_on_an_instance_cannot_type_into_the_users_shell(either_demo: Demo, user: UserShell) -> None:
    """Both seals: the instance's processes hold no descriptor of the user's terminal, nor it as their
    controlling terminal, and what one types after `exit` reaches nobody. (The user's shell ran the
    command typed in: the instance's shell had the user's terminal.)"""
    inject_after_exit(user, "labkit ssh demo-instance", either_demo.box.home)


def inject_after_exit(user: UserShell, ssh: str, home: Path) -> None:
    """Type `ssh` in the user's shell, leave the injector running on the instance (whose home is
    `home`), `exit`: the injector tried, and the user's shell did not run what it typed."""
    (home / "inject.py").write_text(INJECTOR)
    log = home / "injector.log"
    user.type(f"{ssh}\n")
    user.expect(INSTANCE_PROMPT)
    user.type(f"python3 inject.py injector.log '{INJECTED}' &\n")
    wait_for(lambda: log.exists() and "waiting" in log.read_text())
    on_instance = of_the_instance(labkit_in(user))
    assert any("inject.py" in line for line in on_instance.values()), on_instance  # we look where it runs
    held = holding(on_instance, user.terminal())
    user.type("exit\n")
    user.expect(r"\nuser\$ ")
    said = injector_log(log)
    assert re.search(rf"refused: .*\n|done: typed {len(INJECTED)}\n", said), said  # it ran, and tried
    assert user.run("echo checked") == "checked\n"  # the user's shell has read all that was typed before
    assert not user.marker.exists(), said
    assert held == []


@pytest.mark.root(reason="acting as the user labkit-student needs root")
@pytest.mark.parametrize("sealed", [True, False], ids=["sealed by the kernel", "sealed by environment"])
def test_an_ordinary_users_shell_is_out_of_reach_too(sealed: bool) -> None:
    """The same, as a user without root: their own lab, their shell, their `labkit ssh`."""
    with python_as_student(sealed=sealed) as python:
        student = pwd.getpwnam(STUDENT)  # python_as_student made it if it was missing
        launched = subprocess.run(
            python, input=LAUNCHED_BY_STUDENT + "print(box.id, box.home)", capture_output=True, text=True,
            timeout=300, cwd="/",
        )  # fmt: skip
        assert launched.returncode == 0, launched.stderr[-3000:]
        instance_id, box_home = launched.stdout.splitlines()[-1].split()
        env = dict(word.split("=", 1) for word in python[python.index("-i") + 1 : -1])
        home = Path(student.pw_dir) / f"labkit-terminal-{os.getpid()}"
        home.mkdir()
        os.chown(home, student.pw_uid, student.pw_gid)
        as_student = ("setpriv", f"--reuid={student.pw_uid}", f"--regid={student.pw_gid}", "--init-groups", "--")
        user = UserShell(Path(env["LABKIT_HOME"]), home, as_user=as_student, env=env)
        try:
            inject_after_exit(user, f"python3 -m labkit.cli ssh {instance_id}", Path(box_home))
        finally:
            user.close()
            shutil.rmtree(home)


def test_the_injector_types_into_a_shell_whose_terminal_it_holds(tmp_path: Path) -> None:
    """The control: this kernel lets the injector type into the terminal it holds (with the user's
    terminal, a nested shell on the host, as `labkit ssh` gave an instance before), and the user's
    shell runs what it typed."""
    user = UserShell(tmp_path, tmp_path)
    try:
        _inject_from_a_nested_shell(user)
    finally:
        user.close()


def _inject_from_a_nested_shell(user: UserShell) -> None:
    log = user.marker.parent / "control.log"
    (user.marker.parent / "inject.py").write_text(INJECTOR)
    user.type("PS1='nested$ ' bash --norc --noprofile -i\n")
    user.expect(r"nested\$ ")
    user.type(f"python3 inject.py {log} '{INJECTED}' &\n")
    wait_for(lambda: log.exists() and "waiting" in log.read_text())
    user.type("exit\n")
    assert injector_log(log).endswith(f"done: typed {len(INJECTED)}\n")
    assert user.run("echo checked") == "checked\n"
    assert user.marker.exists()


def test_a_shell_on_an_instance_works_as_over_ssh(either_demo: Demo, user: UserShell) -> None:
    """The prompt, a command's output, the window size (and its change), Ctrl-C, `exit 3`; the
    user's terminal is as it was after."""
    modes = user.run("stty -g")
    user.resize(33, 111)
    user.type("labkit ssh demo-instance\n")
    user.expect("Amazon Linux 2023 \\(simulated by labkit\\)")
    user.expect(INSTANCE_PROMPT)
    user.type("echo $((6 * 7)); stty size; [ -t 0 ] && echo on-a-terminal; echo via-dev-tty > /dev/tty\n")
    user.expect(r"\n42\n33 111\non-a-terminal\nvia-dev-tty\n")
    user.expect(INSTANCE_PROMPT)
    user.resize(44, 122)
    user.type("stty size\n")
    user.expect(r"\n44 122\n")
    user.expect(INSTANCE_PROMPT)
    user.type("sleep 1000.25\n")
    wait_for(lambda: any(line == "sleep 1000.25" for line in descendants(user.pid).values()))
    user.type("\x03")
    user.expect(r"\^C[\s\S]*?" + INSTANCE_PROMPT)
    assert user.status() == 130
    assert not any(line == "sleep 1000.25" for line in descendants(user.pid).values())
    user.type("exit 3\n")
    user.expect(r"\nuser\$ ")
    assert user.status() == 3
    assert user.run("stty -g") == modes


def holds_none_of_the_users_terminal_and_stops_at_ctrl_c(user: UserShell) -> None:
    """While `labkit ssh … -- '…; sleep 1000.5'` runs: no process of the instance holds the user's
    terminal, and Ctrl-C there stops the command, with status 130."""
    labkit = labkit_in(user)
    on_instance = wait_for(lambda: (now := of_the_instance(labkit)) and "sleep 1000.5" in now.values() and now)
    assert isinstance(on_instance, dict)
    assert holding(on_instance, user.terminal()) == []
    user.type("\x03")
    user.expect(r"\^C\n?user\$ ")
    assert user.status() == 130


def test_one_command_gets_a_terminal_of_its_own_too(either_demo: Demo, user: UserShell) -> None:
    """`labkit ssh INSTANCE -- COMMAND` on the user's terminal: the command has a terminal, not theirs."""
    user.type("labkit ssh demo-instance -- '[ -t 0 ] && echo on-a-terminal; sleep 1000.5'\n")
    user.expect(r"\non-a-terminal\n")
    holds_none_of_the_users_terminal_and_stops_at_ctrl_c(user)


def test_without_a_terminal_on_stdin_the_instance_gets_none(either_demo: Demo, user: UserShell) -> None:
    """Input from a file, output on the user's terminal: the command writes to a pipe labkit copies,
    and has no controlling terminal; Ctrl-C at the user's terminal still stops it."""
    user.type("labkit ssh demo-instance -- 'echo $((6 * 7)); [ -t 1 ] || echo no-terminal; sleep 1000.5' < /dev/null\n")
    user.expect(r"\n42\nno-terminal\n")
    holds_none_of_the_users_terminal_and_stops_at_ctrl_c(user)


def test_labkit_killed_restores_the_terminal_and_ends_the_shell(either_demo: Demo, user: UserShell) -> None:
    """SIGTERM to `labkit ssh`: the user's terminal is as it was, the instance's shell has ended."""
    modes = user.run("stty -g")
    user.type("labkit ssh demo-instance\n")
    user.expect(INSTANCE_PROMPT)
    labkit = labkit_in(user)
    shells = {p: line for p, line in descendants(labkit).items() if "bash" in line}
    assert shells
    os.kill(labkit, signal.SIGTERM)
    user.expect(r"\nuser\$ ")
    assert user.run("stty -g") == modes
    wait_for(lambda: not any(alive(pid) for pid in shells), seconds=10)


def test_a_process_on_an_instance_cannot_open_the_users_terminal_by_its_name(
    either_demo: Demo, user: UserShell
) -> None:
    """Sealed by environment, the instance sees the machine's /dev: the user's terminal is there by
    name (/dev/pts/N), theirs to open, and to root to type into (TIOCSTI on a terminal not its own
    needs CAP_SYS_ADMIN). The fence hides /dev/pts; sealed by the kernel, the instance has its own."""
    box = either_demo.box
    (box.home / "inject.py").write_text(INJECTOR)
    log = box.home / "injector.log"
    terminal = os.readlink(f"/proc/{user.pid}/fd/0")
    user.type("labkit ssh demo-instance\n")
    user.expect(INSTANCE_PROMPT)
    user.type(f"python3 inject.py injector.log '{INJECTED}' {terminal} &\n")
    wait_for(lambda: log.exists() and "waiting" in log.read_text())
    user.type("exit\n")
    user.expect(r"\nuser\$ ")
    said = injector_log(log)
    assert user.run("echo checked") == "checked\n"
    assert not user.marker.exists(), said
    refusal = "Permission denied" if not box.sealed else "No such file or directory"
    assert f"refused: [Errno {13 if not box.sealed else 2}] {refusal}: '{terminal}'" in said, said


def test_a_cells_commands_hold_no_terminal_of_the_user(either_demo: Demo, user: UserShell) -> None:
    """`%%instance` runs its lines as `run_lines` does, on a pseudo-terminal of its own, in a session
    with no controlling terminal: here from a Python on the user's terminal, as a kernel started there."""
    script = "import labkit; labkit.connect().instance('demo-instance').run_lines('sleep 1000.75', timeout=20)"
    user.type(f'python3 -c "{script}"\n')
    python = int(wait_for(lambda: next((p for p, line in descendants(user.pid).items() if "run_lines" in line), 0)))
    on_instance = wait_for(lambda: (now := of_the_instance(python)) and "sleep 1000.75" in now.values() and now)
    assert isinstance(on_instance, dict)
    assert holding(on_instance, user.terminal()) == []
    user.type("\x03")
    user.expect(r"CommandInterrupted: `sleep 1000.75` was stopped with everything it started")
