"""Simulated EC2 instances: a machine of its own per instance, as after `ssh ec2-user@...`.

Where the host allows user namespaces (the default), an instance is sealed by the kernel
(labkit/labprocess/sandbox.py): commands enter its namespaces with util-linux `nsenter`, as ec2-user
(uid 1000), in /home/ec2-user, with an environment as over SSH to Amazon Linux 2023: no endpoint,
no proxy, nothing of the lab's. The lab tells this client (the student's own) which processes hold
an instance's namespaces.

Where it does not (or with `labkit up --no-sealed`), an instance is sealed by its environment:
commands run in bash on this machine, in an environment built from nothing:

- the instance's own home directory (`~/.aws/credentials` written there stays there);
- none of the host's `AWS_*` variables, config or credential files;
- the real `aws` CLI, pointed at the lab by `AWS_ENDPOINT_URL`, with the lab's region in
  `AWS_DEFAULT_REGION` (on Amazon Linux 2023, CLI v2 reads the region from the metadata service;
  the lab's CLI v1 cannot, and without a region it refuses to sign for a custom endpoint);
- `http_proxy` pointing at the lab's metadata service with this instance's credentials, so that
  `curl http://169.254.169.254/...`, botocore and Python reach this instance's metadata service,
  and every other outside address is refused with a message;
- where the kernel offers Landlock, a fence (labkit/fence.py): the shell and all it starts read the
  machine but not the lab's directory (save the instance's home) nor the user's home, write only
  there and in /tmp, reach no other TCP port than the lab's two, and can neither read nor signal
  another process (`ps` shows nothing);
- under each command, outside the fence, a keeper (labkit/keeper.py): whatever the command leaves
  running (`nohup`, a double fork, `setsid`) ends when the instance stops or terminates.

What a student types reaches bash through an anonymous file (an inherited descriptor), never as an
argument: another user of this machine can read every process's command line, and a cell may hold a
key. No value from AWS (a Name tag, an address) is ever written into shell code. A cell interrupted
(■, Ctrl-C) or running past its time is stopped with everything it started, and says so. A shell
or command on the student's terminal (`labkit ssh`) gets a terminal of its own, relayed to theirs
(labkit/relay.py): no process of an instance ever holds the student's terminal, to type into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import html
import json
import os
import pty
import re
import selectors
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labkit import relay
from labkit.errors import LabError
from labkit.fence import for_instance, identity_of
from labkit.keeper import Keeper, Kept
from labkit.protocol import BIN_DIR, CLI_SOCKET, REGION, client_script, instance_home, instance_key
from labkit.statedir import LabInfo

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
TERMINAL_STYLE = "background:#1e1e1e;color:#e6e6e6;padding:8px 10px;border-radius:4px;font-family:monospace"

WELCOME = r"""   ,     #_
   ~\_  ####_        Amazon Linux 2023 (simulated by labkit)
  ~~  \_#####\
  ~~     \###|       instance {instance_id}{name}
  ~~       \#/ ___   type `exit` to return to your own shell
   ~~       V~' '->
    ~~~         /
      ~~._.   _/
         _/ _/
       _/m/'
"""
RCFILE = "PS1='[ec2-user@${HOSTNAME} \\W]$ '\n"  # the same for every instance: its values come from the environment


def _printable(text: str) -> str:
    """`text` with what a terminal would act on (a newline, an escape sequence) written out: `\\n`."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


INTERRUPTED = "^C"  # what a terminal shows where Ctrl-C stopped a command


@dataclass(frozen=True)
class CommandResult:
    """One command run on an instance, shown like a terminal."""

    prompt: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    stopped: str = ""
    """Empty when the command ended by itself; `^C` when it was interrupted (then the shell's
    status, 130); otherwise labkit's note saying why it stopped it (shown in place of a status)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.stopped

    @property
    def typed(self) -> str:
        """The command as a terminal shows it: continuation lines after bash's `> ` prompt."""
        return "\n> ".join(self.command.split("\n"))

    @property
    def _status(self) -> str:
        return f"[exit status {self.exit_code}]" if self.exit_code and self.stopped in ("", INTERRUPTED) else ""

    def __str__(self) -> str:
        lines = [f"{self.prompt} {self.typed}", self.stdout.rstrip("\n"), self.stderr.rstrip("\n")]
        lines += [self.stopped, self._status]
        return "\n".join(line for line in lines if line)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        parts = [f'<span style="color:#8ae234">{html.escape(self.prompt)}</span> {html.escape(self.typed)}']
        if self.stdout:
            parts.append(html.escape(self.stdout.rstrip("\n")))
        if self.stderr:
            parts.append(f'<span style="color:#ff8c8c">{html.escape(self.stderr.rstrip(chr(10)))}</span>')
        parts += [
            f'<span style="color:#fce94f">{html.escape(line)}</span>' for line in (self.stopped, self._status) if line
        ]
        return f'<pre style="{TERMINAL_STYLE}">' + "\n".join(parts) + "</pre>"


@dataclass(frozen=True)
class Transcript:
    """Several commands run in one shell on an instance, shown as one terminal session."""

    results: tuple[CommandResult, ...]
    not_run: tuple[str, ...] = ()
    """The commands after one that was stopped (interrupted, or past its time): they never ran."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.not_run

    @property
    def _not_run(self) -> str:
        typed = ("; ".join(line.strip() for line in command.split("\n")) for command in self.not_run)
        return f"[not run: {' | '.join(typed)}]" if self.not_run else ""

    def __str__(self) -> str:
        return "\n".join([str(r) for r in self.results] + ([self._not_run] if self.not_run else []))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        inner = [r._repr_html_().split(">", 1)[1].rsplit("</pre>", 1)[0] for r in self.results]
        if self.not_run:
            inner.append(f'<span style="color:#fce94f">{html.escape(self._not_run)}</span>')
        return f'<pre style="{TERMINAL_STYLE}">' + "\n".join(inner) + "</pre>"


class CommandInterrupted(KeyboardInterrupt):
    """The student interrupted a command on an instance (■ in a notebook): it and everything it
    started were stopped, as Ctrl-C stops them on a terminal. `shown` is what ran, a terminal's view
    of it, ending in `^C`. A KeyboardInterrupt, so that Run All stops there as it would."""

    def __init__(self, shown: Transcript | CommandResult) -> None:
        self.shown = shown
        results = shown.results if isinstance(shown, Transcript) else (shown,)
        what = "the command"
        if results:
            first, *more = results[-1].command.split("\n")
            what = f"`{first}{' …' if more else ''}`"
        later = ", and the lines after it were not run" if isinstance(shown, Transcript) and shown.not_run else ""
        super().__init__(f"{what} was stopped with everything it started{later}. Run the cell again to start over.")

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: this one line, after the cell's transcript."""
        return [f"\033[1;31mKeyboardInterrupt\033[0m: {self}"]


def split_commands(text: str) -> list[str]:
    """Split shell text into whole commands: one per line, or more lines where bash says the
    command goes on (an open quote, loop or here-document, a trailing backslash)."""
    commands: list[str] = []
    chunk: list[str] = []
    for line in text.splitlines():
        if not chunk and not line.strip():
            continue
        chunk.append(line)
        candidate = "\n".join(chunk)
        if not candidate.rstrip().endswith("\\") and _complete(candidate):
            commands.append(candidate)
            chunk = []
    if chunk:
        commands.append("\n".join(chunk))  # let bash report what is wrong with it
    return commands


def _complete(command: str) -> bool:
    checked = subprocess.run(["bash", "-n"], input=command, text=True, capture_output=True)
    # An open here-document is only a warning for bash -n; for us the command goes on.
    return checked.returncode == 0 and "here-document" not in checked.stderr


_START, _END = "\x1e", "\x1f"


def _script(commands: list[str]) -> str:
    parts = []
    for number, command in enumerate(commands):
        parts.append(f"printf '{_START}{number}\\n'; printf '{_START}{number}\\n' >&2")
        parts.append(command)
        parts.append(f"printf '{_END}%s\\n' \"$?\"; printf '{_END}\\n' >&2")
    return "\n".join(parts) + "\n"


def _sections(text: str) -> dict[int, tuple[str, str | None]]:
    """Output of each command by number, with its exit status when the shell reached its end."""
    found: dict[int, tuple[str, str | None]] = {}
    for match in re.finditer(f"{_START}(\\d+)\n(.*?)(?:{_END}(\\d*)\n|\\Z)", text, re.S):
        found[int(match[1])] = (match[2], match[3] or None)
    return found


GRACE = 2.0  # seconds a stopped command has to end after Ctrl-C, before it and all it started are killed
TIMED_OUT = (
    "[stopped after {seconds:g} s: {what} was still running. A command on an instance that never ends "
    "holds up its cell: press ■ (interrupt the kernel) to stop it sooner.]"
)


@dataclass(frozen=True)
class _Ran:
    code: int
    stdout: str
    stderr: str
    stopped: str = ""  # "" (it ended), "interrupted" or "timeout"


def _source(text: str) -> int:
    """An anonymous file holding `text` (no name, no path, its owner's only), open for reading:
    bash reads the commands from it, so they are in no process's command line."""
    fd = os.memfd_create("labkit-commands")
    data = text.encode()
    while data:
        data = data[os.write(fd, data) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _bash(source: int, *, stop_at_ctrl_c: bool) -> list[str]:
    """bash running the commands in descriptor `source`, as `bash -c COMMANDS` would (its $0, its
    messages), with `source` closed for them. With `stop_at_ctrl_c`, Ctrl-C (SIGINT to the shell)
    ends the shell once the command it waits for has ended, however that command took it: the lines
    after it do not run, as on a terminal, where Ctrl-C drops what was typed ahead."""
    trap = "trap 'exit 130' INT; " if stop_at_ctrl_c else ""
    return ["bash", "--noprofile", "--norc", "-c", f'{trap}eval "$(< /dev/fd/{source})" {source}<&-']


def _exit_status(returncode: int) -> int:
    """The status a shell reports (`$?`): 128 + N for a command killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _processes(session: int, known: dict[int, int] | None = None) -> dict[int, int]:
    """The live processes of `session`, their descendants (one that left the session with setsid is
    still its parent's child) and those of `known` still alive: pid → start time, so that a pid the
    system gives to another process later is never taken for one of these."""
    table: dict[int, tuple[int, int, int]] = {}  # pid → (parent, session, start time)
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except (OSError, ValueError, IndexError):
                continue  # not a process, or one that has just ended
            if fields[0] not in (b"Z", b"X"):  # a zombie has ended already
                table[int(name)] = (int(fields[1]), int(fields[3]), int(fields[19]))
    chosen = {pid for pid, (_, sid, _) in table.items() if sid == session}
    chosen |= {pid for pid, start in (known or {}).items() if pid in table and table[pid][2] == start}
    while more := {pid for pid, (parent, _, _) in table.items() if parent in chosen and pid not in chosen}:
        chosen |= more
    return {pid: table[pid][2] for pid in chosen}


def _kill_all(session: int, known: dict[int, int]) -> None:
    """SIGKILL every process of `session` and what it started, until none is left."""
    for _ in range(200):
        with contextlib.suppress(OSError):
            os.killpg(session, signal.SIGKILL)
        left = _processes(session, known)
        if not left:
            return
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


class _Output:
    """What a command writes to its terminal and to stderr, read as it comes."""

    def __init__(self, terminal: int, errors: int) -> None:
        self.chunks: dict[int, list[bytes]] = {terminal: [], errors: []}
        self.terminal, self.errors = terminal, errors
        self.selector = selectors.DefaultSelector()
        for fd in self.chunks:
            self.selector.register(fd, selectors.EVENT_READ)

    def read_until(self, deadline: float, *, ended: subprocess.Popen[bytes] | Kept | None = None) -> bool:
        """Read until both are closed (True), `deadline` passes, or the process `ended` has (False)."""
        while self.selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0 or (ended is not None and ended.poll() is not None):
                return False
            for key, _ in self.selector.select(timeout=min(left, 0.1 if ended else 1.0)):
                try:
                    data = os.read(key.fd, 65536)
                except OSError:  # EIO: the terminal's last writer has gone
                    data = b""
                if data:
                    self.chunks[key.fd].append(data)
                else:
                    self.selector.unregister(key.fd)
        return True

    def text(self, fd: int) -> str:
        return b"".join(self.chunks[fd]).decode(errors="replace")


def _stop(process: subprocess.Popen[bytes] | Kept, output: _Output) -> None:
    """Stop a command and everything it started: Ctrl-C first, as a terminal sends it to the
    foreground (so that `aws` ends as it does there), then, after GRACE or at a second interrupt,
    SIGKILL for whatever is left, in its session or started from it."""
    known = _processes(process.pid)  # before its shell ends: what left its session is still its child
    try:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGINT)
        output.read_until(time.monotonic() + GRACE, ended=process)
        known.update(_processes(process.pid, known))
    except KeyboardInterrupt:
        pass  # interrupted again: no more waiting
    while True:  # however many times the student presses ■, nothing is left running
        try:
            _kill_all(process.pid, known)
            process.wait()
            break
        except KeyboardInterrupt:
            continue
    with contextlib.suppress(KeyboardInterrupt):
        output.read_until(time.monotonic() + 1.0)  # what they wrote before they ended


def _popen(fenced: Keeper | None, args: list[str], **options: Any) -> subprocess.Popen[bytes] | Kept:
    """`subprocess.Popen`; for an instance sealed by environment, under the keeper that ends all it
    starts with the instance, inside its Landlock fence when it has one (labkit/keeper.py)."""
    return fenced.popen(args, **options) if fenced else subprocess.Popen(args, **options)


def _call(fenced: Keeper | None, args: list[str], **options: Any) -> int:
    """`subprocess.call`, as `_popen` starts it."""
    with _popen(fenced, args, **options) as process:
        try:
            return process.wait()
        except BaseException:
            process.kill()
            raise


def _execute(
    script: str, env: dict[str, str], cwd: Path, timeout: float, enter: list[str], fenced: Keeper | None
) -> _Ran:
    """Run shell commands as over SSH: stdout on a pseudo-terminal, so that programs behave as at a
    prompt (curl shows no progress meter, for one), stderr kept apart, no input. Interrupted
    (KeyboardInterrupt) or past `timeout`, the commands and all they started are stopped. `enter`
    goes before bash (a sealed instance's nsenter); `fenced`, the keeper of an instance sealed by
    environment (labkit/keeper.py)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    source = _source(script)
    try:
        process = _popen(
            fenced,
            [*enter, *_bash(source, stop_at_ctrl_c=True)],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=(source,),
        )
    finally:
        os.close(slave)
        os.close(source)
    assert process.stderr is not None
    output = _Output(master, process.stderr.fileno())
    stopped = ""
    try:
        deadline = time.monotonic() + timeout
        if not output.read_until(deadline):
            stopped = "timeout"
        else:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # it closed its output, and runs on
                stopped = "timeout"
        if stopped:
            _stop(process, output)
    except KeyboardInterrupt:
        stopped = "interrupted"
        _stop(process, output)
    finally:
        output.selector.close()
        os.close(master)
        process.stderr.close()
    code = _exit_status(process.wait())
    out = output.text(master).replace("\r\n", "\n")
    return _Ran(code, _as_a_terminal_shows(out), _as_a_terminal_shows(output.text(output.errors)), stopped)


def _as_a_terminal_shows(text: str) -> str:
    """What is left on screen of each line once carriage returns have redrawn it (progress meters)."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


_WRITTEN: set[Path] = set()
EC2_METADATA = Path(__file__).with_name("ec2_metadata.py")  # the instances' `ec2-metadata`


def _bin_dir(lab_home: Path) -> Path:
    """The instance's own bin directory: the real `aws` CLI and Python, and Amazon Linux's
    `ec2-metadata` (labkit/ec2_metadata.py, run by that Python with -I, so that the labkit
    modules beside it never shadow the standard library's). Written once per lab by this process,
    not for every command (one stat checks it is still there)."""
    if lab_home in _WRITTEN and (lab_home / BIN_DIR / "aws").exists():
        return lab_home / BIN_DIR
    here = Path(sys.executable).parent
    aws = here / "aws"
    if not aws.exists():
        found = shutil.which("aws", path=str(here) + os.pathsep + os.environ.get("PATH", ""))
        if found is None:
            raise LabError(
                f"The aws CLI is not installed beside {sys.executable}, so instances have no `aws`. "
                "Install the lab with `make lab` (or `pip install -e .`)."
            )
        aws = Path(found)
    bin_dir = lab_home / BIN_DIR
    bin_dir.mkdir(exist_ok=True)
    wanted = {
        "aws": client_script(sys.executable, str(lab_home / CLI_SOCKET), str(aws), proves=True),
        "python3": f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n',
        "ec2-metadata": f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I {shlex.quote(str(EC2_METADATA))} "$@"\n',
    }
    for name, text in wanted.items():
        target = bin_dir / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            target.chmod(0o755)
    _WRITTEN.add(lab_home)
    return bin_dir


SEALED_HOME = "/home/ec2-user"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _entry(info: LabInfo, instance_id: str) -> list[str]:
    """The command that runs what follows it inside a sealed instance, as ec2-user: `nsenter` into
    the namespaces of its sandbox (the lab says which process holds them), then into the nested
    one where the lab's user is ec2-user, without any capability."""
    request = urllib.request.Request(
        f"{info.api_url}/_labkit/sandbox?instance={urllib.parse.quote(instance_id)}",
        headers={"Authorization": f"Bearer {info.secret}"},
    )
    try:
        with _NO_PROXY.open(request, timeout=30) as response:
            where = json.load(response)
    except urllib.error.HTTPError as error:
        said = json.load(error).get("error", str(error))
        raise LabError(f"Instance {instance_id} cannot be entered: {said}.") from None
    except (OSError, ValueError) as error:
        raise LabError(f"The lab (pid {info.pid}) did not say where instance {instance_id} runs: {error}.") from None
    outer = ["nsenter", f"--target={int(where['init'])}", "--user", "--mount", "--uts", "--ipc", "--net", "--pid"]
    nested = ["nsenter", f"--user=/proc/{int(where['nested'])}/ns/user", f"--wd={SEALED_HOME}"]
    return [*outer, "--preserve-credentials", "--", *nested, "--preserve-credentials", "--"]


def _on_this_terminal(fenced: Keeper | None, args: list[str], **options: Any) -> int:
    """Run `args` with this process's input and output, as over ssh; its return code. Where stdin is
    a terminal, the process gets one of its own, relayed to the user's (labkit/relay.py): no
    process of an instance ever holds the user's terminal, to type into it once the shell has ended."""
    start = functools.partial(_popen, fenced) if fenced else relay.popen
    return relay.run(start, args, **options)


class Instance:
    """A running instance of the lab, ready to run commands as `ec2-user`."""

    def __init__(
        self,
        lab_home: Path,
        info: LabInfo | Callable[[], LabInfo],
        instance_id: str,
        *,
        name: str = "",
        private_ip: str = "",
    ) -> None:
        self.lab_home = lab_home
        self._info = info
        self.id = instance_id
        self.name = name
        self.private_ip = private_ip

    def __repr__(self) -> str:
        return f"<Instance {self.id}{f' ({self.name})' if self.name else ''} {self.private_ip}>"

    @property
    def info(self) -> LabInfo:
        """The record of the lab this instance lives in, as it runs now (it may have restarted)."""
        return self._info() if callable(self._info) else self._info

    @property
    def hostname(self) -> str:
        return f"ip-{_printable(self.private_ip).replace('.', '-')}"

    @property
    def prompt(self) -> str:
        return f"[ec2-user@{self.hostname} ~]$"

    @property
    def home(self) -> Path:
        """This instance's home directory (its `~`)."""
        path = instance_home(self.lab_home, self.id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def sealed(self) -> bool:
        """Whether the instance is a machine of its own (`labkit up --sealed`)."""
        return self.info.sealed

    def argv(self, *command: str) -> list[str]:
        """The command line that runs `command` on this instance, as ec2-user: as it is on this host
        when the instance is sealed by environment, else entering its namespaces first. Run it with
        environ() and, as its working directory, home."""
        return [*self._enter(), *command]

    def _enter(self) -> list[str]:
        return _entry(self.info, self.id) if self.sealed else []

    def _fence(self) -> Keeper | None:
        """Where the kernel does not seal this instance, what starts its commands: under a keeper,
        which ends all they start when the instance stops (labkit/keeper.py), inside its Landlock
        fence (labkit/fence.py) on a host that has Landlock."""
        info = self.info
        if info.sealed:
            return None
        _bin_dir(self.lab_home)  # what the fence lets the instance run must be there when it is planned
        identity_of(self.lab_home, self.id)  # what its `aws` proves itself with to the warm one
        fence = for_instance(self.lab_home, self.id, ports=(info.api_port, info.imds_port))
        return Keeper(self.lab_home, self.id, info, fence)

    def environ(self) -> dict[str, str]:
        """The whole environment of a shell on this instance, built from nothing: as over SSH to
        Amazon Linux 2023 when sealed by the kernel; by environment, the lab's endpoint and proxy too."""
        info = self.info
        shell = {
            "HOME": SEALED_HOME if info.sealed else str(self.home),
            "USER": "ec2-user",
            "LOGNAME": "ec2-user",
            "SHELL": "/bin/bash",
            "HOSTNAME": self.hostname,
            "PATH": SYSTEM_PATH if info.sealed else f"{_bin_dir(self.lab_home)}:{SYSTEM_PATH}",
            "LANG": "C.UTF-8",
            "TERM": os.environ.get("TERM", "xterm-256color"),
            "AWS_DEFAULT_REGION": REGION,
        }
        if info.sealed:
            return shell
        proxy = f"http://{self.id}:{instance_key(info.secret, self.id)}@127.0.0.1:{info.imds_port}"
        return {
            **shell,
            "AWS_ENDPOINT_URL": info.api_url,
            **{name: proxy for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")},
            **{name: "127.0.0.1,localhost" for name in ("no_proxy", "NO_PROXY")},
        }

    def run(self, command: str, *, timeout: float = 300.0) -> CommandResult:
        """Run one shell command line on the instance, as typed at its prompt, and keep what it prints.
        Interrupted, it is stopped and CommandInterrupted raised; past `timeout` seconds, stopped and said."""
        ran = _execute(command, self.environ(), self.home, timeout, self._enter(), self._fence())
        result = CommandResult(self.prompt, command, ran.code, ran.stdout, ran.stderr)
        if ran.stopped == "interrupted":
            raise CommandInterrupted(replace(result, stopped=INTERRUPTED))
        if ran.stopped:
            return replace(result, stopped=TIMED_OUT.format(seconds=timeout, what="the command"))
        return result

    def run_lines(self, text: str, *, timeout: float = 300.0) -> Transcript:
        """Run each command of `text` in turn in one shell, as if typed at the prompt.

        Shell state carries over (`TOKEN=$(curl ...)` then `curl -H "...: $TOKEN" ...`); each
        command's output and exit status are kept apart. Interrupted, the commands are stopped and
        CommandInterrupted raised (it holds the transcript); past `timeout` seconds, they are stopped
        and the transcript says so, and which commands did not run.
        """
        commands = split_commands(text)
        ran = _execute(_script(commands), self.environ(), self.home, timeout, self._enter(), self._fence())
        out, err = _sections(ran.stdout), _sections(ran.stderr)
        results = []
        for number, command in enumerate(commands):
            if number not in out:
                break  # the shell exited before this command (`exit`, say)
            stdout, status = out[number]
            code = int(status) if status is not None else ran.code
            results.append(CommandResult(self.prompt, command, code, stdout, err.get(number, ("", None))[0]))
        if not ran.stopped:
            return Transcript(tuple(results))
        not_run = tuple(commands[len(results) :])
        if results:
            last = results[-1]
            running = out[len(results) - 1][1] is None  # the shell never reached its end
            what = "the command" if running else "something it started in the background"
            note = INTERRUPTED if ran.stopped == "interrupted" else TIMED_OUT.format(seconds=timeout, what=what)
            results[-1] = replace(last, stopped=note)
        transcript = Transcript(tuple(results), not_run)
        if ran.stopped == "interrupted":
            raise CommandInterrupted(transcript)
        return transcript

    def exec(self, command: str) -> int:
        """Run one command line with this terminal's input and output, as `ssh INSTANCE COMMAND`
        does: on a terminal of its own where stdin is a terminal (labkit/relay.py); its exit status."""
        enter, fenced, source = self._enter(), self._fence(), _source(command)
        try:
            argv = [*enter, *_bash(source, stop_at_ctrl_c=False)]
            code = _on_this_terminal(fenced, argv, env=self.environ(), cwd=self.home, pass_fds=(source,))
        finally:
            os.close(source)
        return _exit_status(code)

    def shell(self) -> int:
        """An interactive login-like shell on the instance; returns when the student types `exit`.

        The welcome is printed here and the prompt reads $HOSTNAME when bash shows it: no value
        from AWS (a Name tag, an address) is ever written into the shell's startup file."""
        name = f" ({_printable(self.name)})" if self.name else ""
        enter, fenced = self._enter(), self._fence()
        source = _source(RCFILE)  # the startup file reaches bash as an inherited descriptor
        sys.stdout.write(WELCOME.format(instance_id=_printable(self.id), name=name))
        sys.stdout.flush()
        try:
            argv = [*enter, "bash", "--noprofile", "--rcfile", f"/dev/fd/{source}", "-i"]
            code = _on_this_terminal(fenced, argv, env=self.environ(), cwd=self.home, pass_fds=(source,))
        finally:
            os.close(source)
        return _exit_status(code)
