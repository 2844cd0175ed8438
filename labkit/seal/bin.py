"""An instance's bin directory: the programs it finds first on its PATH, however it is sealed.

    aws            the real AWS CLI, run by the warm one (labkit/labprocess/cliserver.py) when it is there
    python3        the lab's Python
    ec2-metadata   Amazon Linux's, as labkit/ec2_metadata.py does it
    sudo           sealed by the kernel only: says that an instance has no root

Sealed by the kernel, they are the instance's /usr/local/bin (labkit/seal/sandbox_init.py writes them
there); sealed by environment, a directory of the lab's (`on_host`), first on the shell's PATH.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from labkit.errors import LabError
from labkit.protocol import BIN_DIR, CLI_SOCKET, client_script

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
EC2_METADATA = Path(__file__).parent.parent / "ec2_metadata.py"  # the instances' `ec2-metadata`
CLI_INSIDE = "/run/labkit/aws.sock"  # the warm `aws`'s socket, made in each sealed instance's own /run
SUDO = '#!/bin/sh\necho "sudo: this lab\'s instances have no root; everything here runs as ec2-user." >&2\nexit 1\n'


def _aws(python: str) -> str | None:
    """The real `aws` CLI: beside `python`, else on the PATH."""
    beside = Path(python).parent / "aws"
    return str(beside) if beside.exists() else shutil.which("aws")


def _python3(python: str) -> str:
    return f'#!/bin/sh\nexec {shlex.quote(python)} "$@"\n'


def in_sandbox(python: str) -> dict[str, str]:
    """/usr/local/bin of an instance sealed by the kernel: the `aws` CLI (the warm one, else the
    real one), Python, `ec2-metadata` (its own file, run by that Python with -I), and `sudo`."""
    return {
        "aws": client_script(python, CLI_INSIDE, _aws(python) or "aws"),
        "python3": _python3(python),
        "ec2-metadata": f"#!{python} -I\n" + EC2_METADATA.read_text(),
        "sudo": SUDO,
    }


_WRITTEN: set[Path] = set()


def on_host(lab_home: Path) -> Path:
    """The bin directory of the instances sealed by environment: the real `aws` CLI and Python, and
    Amazon Linux's `ec2-metadata` (labkit/ec2_metadata.py, run by that Python with -I, so that the
    labkit modules beside it never shadow the standard library's). Written once per lab by this
    process, not for every command (one stat checks it is still there)."""
    if lab_home in _WRITTEN and (lab_home / BIN_DIR / "aws").exists():
        return lab_home / BIN_DIR
    aws = _aws(sys.executable)
    if aws is None:
        raise LabError(
            f"The aws CLI is not installed beside {sys.executable}, so instances have no `aws`. "
            "Install the lab with `make lab` (or `pip install -e .`)."
        )
    bin_dir = lab_home / BIN_DIR
    bin_dir.mkdir(exist_ok=True)
    wanted = {
        "aws": client_script(sys.executable, str(lab_home / CLI_SOCKET), aws, proves=True),
        "python3": _python3(sys.executable),
        "ec2-metadata": f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I {shlex.quote(str(EC2_METADATA))} "$@"\n',
    }
    for name, text in wanted.items():
        target = bin_dir / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            target.chmod(0o755)
    _WRITTEN.add(lab_home)
    return bin_dir
