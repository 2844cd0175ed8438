"""Simulated EC2 instances: a sealed shell per instance, as after `ssh ec2-user@...`.

Commands run in bash on this machine, in an environment built from nothing:

- the instance's own home directory (`~/.aws/credentials` written there stays there);
- none of the host's `AWS_*` variables, config or credential files;
- the real `aws` CLI, pointed at the lab by `AWS_ENDPOINT_URL`, with the lab's region in
  `AWS_DEFAULT_REGION` (on Amazon Linux 2023, CLI v2 reads the region from the metadata service;
  the lab's CLI v1 cannot, and without a region it refuses to sign for a custom endpoint);
- `http_proxy` pointing at the lab's metadata service with this instance's credentials, so that
  `curl http://169.254.169.254/...`, botocore and Python reach this instance's metadata service,
  and every other outside address is refused with a message.
"""

from __future__ import annotations

import fcntl
import html
import os
import pty
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import LabError
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


@dataclass(frozen=True)
class CommandResult:
    """One command run on an instance, shown like a terminal."""

    prompt: str
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def typed(self) -> str:
        """The command as a terminal shows it: continuation lines after bash's `> ` prompt."""
        return "\n> ".join(self.command.split("\n"))

    def __str__(self) -> str:
        lines = [f"{self.prompt} {self.typed}", self.stdout.rstrip("\n"), self.stderr.rstrip("\n")]
        if self.exit_code:
            lines.append(f"[exit status {self.exit_code}]")
        return "\n".join(line for line in lines if line)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        parts = [f'<span style="color:#8ae234">{html.escape(self.prompt)}</span> {html.escape(self.typed)}']
        if self.stdout:
            parts.append(html.escape(self.stdout.rstrip("\n")))
        if self.stderr:
            parts.append(f'<span style="color:#ff8c8c">{html.escape(self.stderr.rstrip(chr(10)))}</span>')
        if self.exit_code:
            parts.append(f'<span style="color:#fce94f">[exit status {self.exit_code}]</span>')
        return f'<pre style="{TERMINAL_STYLE}">' + "\n".join(parts) + "</pre>"


@dataclass(frozen=True)
class Transcript:
    """Several commands run in one shell on an instance, shown as one terminal session."""

    results: tuple[CommandResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self.results)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        inner = [r._repr_html_().split(">", 1)[1].rsplit("</pre>", 1)[0] for r in self.results]
        return f'<pre style="{TERMINAL_STYLE}">' + "\n".join(inner) + "</pre>"


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


def _execute(command: str, env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    """Run a shell command line as over SSH: stdout on a pseudo-terminal, so that programs behave as
    at a prompt (curl shows no progress meter, for one), stderr kept apart, no input."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(slave)
    assert process.stderr is not None
    errors = process.stderr.fileno()
    chunks: dict[int, list[bytes]] = {master: [], errors: []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                os.killpg(process.pid, signal.SIGKILL)
                break
            for key, _ in selector.select(timeout=min(left, 1.0)):
                try:
                    data = os.read(key.fd, 65536)
                except OSError:  # EIO: the terminal's last writer has gone
                    data = b""
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
    code = process.wait()
    os.close(master)
    process.stderr.close()
    out = b"".join(chunks[master]).decode(errors="replace").replace("\r\n", "\n")
    return code, _as_a_terminal_shows(out), _as_a_terminal_shows(b"".join(chunks[errors]).decode(errors="replace"))


def _as_a_terminal_shows(text: str) -> str:
    """What is left on screen of each line once carriage returns have redrawn it (progress meters)."""
    return "\n".join(
        line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r") for line in text.split("\n")
    )


_WRITTEN: set[Path] = set()


def _bin_dir(lab_home: Path) -> Path:
    """The instance's own bin directory: the real `aws` CLI and Python, nothing else of ours.
    Written once per lab by this process, not for every command (one stat checks it is still there)."""
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
        "aws": client_script(sys.executable, str(lab_home / CLI_SOCKET), str(aws)),
        "python3": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
    }
    for name, text in wanted.items():
        target = bin_dir / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            target.chmod(0o755)
    _WRITTEN.add(lab_home)
    return bin_dir


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
        return f"ip-{self.private_ip.replace('.', '-')}"

    @property
    def prompt(self) -> str:
        return f"[ec2-user@{self.hostname} ~]$"

    @property
    def home(self) -> Path:
        """This instance's home directory (its `~`)."""
        path = instance_home(self.lab_home, self.id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def environ(self) -> dict[str, str]:
        """The whole environment of a shell on this instance, built from nothing."""
        info = self.info
        proxy = f"http://{self.id}:{instance_key(info.secret, self.id)}@127.0.0.1:{info.imds_port}"
        return {
            "HOME": str(self.home),
            "USER": "ec2-user",
            "LOGNAME": "ec2-user",
            "SHELL": "/bin/bash",
            "HOSTNAME": self.hostname,
            "PATH": f"{_bin_dir(self.lab_home)}:{SYSTEM_PATH}",
            "LANG": "C.UTF-8",
            "TERM": os.environ.get("TERM", "xterm-256color"),
            "AWS_ENDPOINT_URL": info.api_url,
            "AWS_DEFAULT_REGION": REGION,
            **{name: proxy for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")},
            **{name: "127.0.0.1,localhost" for name in ("no_proxy", "NO_PROXY")},
        }

    def run(self, command: str, *, timeout: float = 300.0) -> CommandResult:
        """Run one shell command line on the instance, as typed at its prompt, and keep what it prints."""
        code, stdout, stderr = _execute(command, self.environ(), self.home, timeout)
        return CommandResult(self.prompt, command, code, stdout, stderr)

    def run_lines(self, text: str, *, timeout: float = 300.0) -> Transcript:
        """Run each command of `text` in turn in one shell, as if typed at the prompt.

        Shell state carries over (`TOKEN=$(curl ...)` then `curl -H "...: $TOKEN" ...`); each
        command's output and exit status are kept apart.
        """
        commands = split_commands(text)
        returncode, stdout, stderr = _execute(_script(commands), self.environ(), self.home, timeout)
        out, err = _sections(stdout), _sections(stderr)
        results = []
        for number, command in enumerate(commands):
            if number not in out:
                break  # the shell exited before this command (`exit`, say)
            stdout, status = out[number]
            code = int(status) if status is not None else returncode
            results.append(CommandResult(self.prompt, command, code, stdout, err.get(number, ("", None))[0]))
        return Transcript(tuple(results))

    def exec(self, command: str) -> int:
        """Run one command line with this terminal's input and output; returns its exit status."""
        return subprocess.call(["bash", "--noprofile", "--norc", "-c", command], env=self.environ(), cwd=self.home)

    def shell(self) -> int:
        """An interactive login-like shell on the instance; returns when the student types `exit`."""
        rcfile = self.home.parent / "bashrc"  # `home` makes the instance's directory on its first use
        name = f" ({self.name})" if self.name else ""
        rcfile.write_text(
            f"cat <<'EOF'\n{WELCOME.format(instance_id=self.id, name=name)}EOF\n"
            f"PS1='[ec2-user@{self.hostname} \\W]$ '\n"
        )
        return subprocess.call(
            ["bash", "--noprofile", "--rcfile", str(rcfile), "-i"], env=self.environ(), cwd=self.home
        )
