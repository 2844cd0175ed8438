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

import html
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from labkit.cloud import REGION
from labkit.errors import LabError
from labkit.home import LabInfo
from labkit.imds import instance_key

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

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

    def __str__(self) -> str:
        lines = [f"{self.prompt} {self.command}", self.stdout.rstrip("\n"), self.stderr.rstrip("\n")]
        if self.exit_code:
            lines.append(f"[exit status {self.exit_code}]")
        return "\n".join(line for line in lines if line)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        style = "background:#1e1e1e;color:#e6e6e6;padding:8px 10px;border-radius:4px;font-family:monospace"
        parts = [f'<span style="color:#8ae234">{html.escape(self.prompt)}</span> {html.escape(self.command)}']
        if self.stdout:
            parts.append(html.escape(self.stdout.rstrip("\n")))
        if self.stderr:
            parts.append(f'<span style="color:#ff8c8c">{html.escape(self.stderr.rstrip(chr(10)))}</span>')
        if self.exit_code:
            parts.append(f'<span style="color:#fce94f">[exit status {self.exit_code}]</span>')
        return f'<pre style="{style}">' + "\n".join(parts) + "</pre>"


def _bin_dir(lab_home: Path) -> Path:
    """The instance's own bin directory: the real `aws` CLI and Python, nothing else of ours."""
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
    bin_dir = lab_home / "bin"
    bin_dir.mkdir(exist_ok=True)
    wanted = {"aws": f'#!/bin/sh\nexec "{aws}" "$@"\n', "python3": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'}
    for name, text in wanted.items():
        target = bin_dir / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            target.chmod(0o755)
    return bin_dir


class Instance:
    """A running instance of the lab, ready to run commands as `ec2-user`."""

    def __init__(
        self, lab_home: Path, info: LabInfo, instance_id: str, *, name: str = "", private_ip: str = ""
    ) -> None:
        self.lab_home = lab_home
        self.info = info
        self.id = instance_id
        self.name = name
        self.private_ip = private_ip

    def __repr__(self) -> str:
        return f"<Instance {self.id}{f' ({self.name})' if self.name else ''} {self.private_ip}>"

    @property
    def hostname(self) -> str:
        return f"ip-{self.private_ip.replace('.', '-')}"

    @property
    def prompt(self) -> str:
        return f"[ec2-user@{self.hostname} ~]$"

    @property
    def home(self) -> Path:
        """This instance's home directory (its `~`)."""
        path = self.lab_home / "instances" / self.id / "home"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def environ(self) -> dict[str, str]:
        """The whole environment of a shell on this instance, built from nothing."""
        proxy = f"http://{self.id}:{instance_key(self.info.secret, self.id)}@127.0.0.1:{self.info.imds_port}"
        return {
            "HOME": str(self.home),
            "USER": "ec2-user",
            "LOGNAME": "ec2-user",
            "SHELL": "/bin/bash",
            "HOSTNAME": self.hostname,
            "PATH": f"{_bin_dir(self.lab_home)}:{SYSTEM_PATH}",
            "LANG": "C.UTF-8",
            "TERM": os.environ.get("TERM", "xterm-256color"),
            "AWS_ENDPOINT_URL": self.info.api_url,
            "AWS_DEFAULT_REGION": REGION,
            **{name: proxy for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")},
            **{name: "127.0.0.1,localhost" for name in ("no_proxy", "NO_PROXY")},
        }

    def run(self, command: str, *, timeout: float = 300.0) -> CommandResult:
        """Run one shell command line on the instance and capture what it prints."""
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", command],
            env=self.environ(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CommandResult(self.prompt, command, done.returncode, done.stdout, done.stderr)

    def exec(self, command: str) -> int:
        """Run one command line with this terminal's input and output; returns its exit status."""
        return subprocess.call(["bash", "--noprofile", "--norc", "-c", command], env=self.environ(), cwd=self.home)

    def shell(self) -> int:
        """An interactive login-like shell on the instance; returns when the student types `exit`."""
        rcfile = self.lab_home / "instances" / self.id / "bashrc"
        name = f" ({self.name})" if self.name else ""
        rcfile.write_text(
            f"cat <<'EOF'\n{WELCOME.format(instance_id=self.id, name=name)}EOF\n"
            f"PS1='[ec2-user@{self.hostname} \\W]$ '\n"
        )
        return subprocess.call(
            ["bash", "--noprofile", "--rcfile", str(rcfile), "-i"], env=self.environ(), cwd=self.home
        )
