"""The warm `aws` of instances: byte for byte what a fresh `aws` process prints, command by command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

import labkit

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
REAL_AWS = str(Path(sys.executable).parent / "aws")
FILLED = {"{key_id}": "AKIAEXAMPLEEXAMPLE00", "{secret}": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


def notebook_commands() -> list[str]:
    """Every `aws …` line typed on an instance in the notebooks, Python values filled in."""
    found = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and cell.source.startswith("%%instance"):
                for line in cell.source.splitlines()[1:]:
                    if line.startswith("aws "):
                        for placeholder, value in FILLED.items():
                            line = line.replace(placeholder, value)
                        found.append(line)
    return list(dict.fromkeys(found))


COMMANDS = [
    *notebook_commands(),
    "aws --version",
    "aws nosuch",
    "aws help | head -5",
    "aws iam list-users --output table",
]


@pytest.fixture(scope="module")
def box(lab: labkit.Lab) -> labkit.Instance:
    lab.reset(to="05", say=False)
    box = lab.instance("demo-instance")
    deadline = time.monotonic() + 30
    while not (lab.home / "aws.sock").exists():  # the warm server starts with the lab
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return box


def test_the_notebooks_type_the_demo_commands() -> None:
    assert {"aws iam list-users", "aws iam create-user --user-name intruder", "aws sts get-caller-identity"} <= set(
        COMMANDS
    )
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("command", COMMANDS)
def test_the_warm_aws_prints_exactly_what_a_fresh_one_prints(box: labkit.Instance, command: str) -> None:
    warm = box.run(command)
    fresh = box.run(command.replace("aws", REAL_AWS, 1))
    assert (warm.exit_code, warm.stdout, warm.stderr) == (fresh.exit_code, fresh.stdout, fresh.stderr)


def logged(stderr: str) -> list[str]:
    """What `aws --debug` logged, line by line: the logger and how its message begins, with the
    parts that differ from run to run (times, dates, addresses, ids) masked."""
    lines = []
    for line in stderr.splitlines():
        parts = line.split(" - ", 3)  # "2026-11-29 13:48:15,123 - MainThread - logger - DEBUG - message"
        if len(parts) == 4 and parts[3].startswith(("DEBUG - ", "INFO - ")):
            logger, message = parts[2], parts[3].split(" - ", 1)[1]
            lines.append(logger + ": " + re.sub(r"RequestId: \S+|0x[0-9a-f]+|[0-9]+", "#", message)[:40])
    return lines


@pytest.mark.parametrize("command", ["aws --debug sts get-caller-identity", "aws --debug iam list-users"])
def test_with_debug_the_warm_aws_logs_what_a_fresh_one_logs(box: labkit.Instance, command: str) -> None:
    box.run("rm -rf ~/.aws")  # the notebooks' `aws configure` lines leave example keys there
    warm = box.run(command)
    fresh = box.run(command.replace("aws", REAL_AWS, 1))
    assert warm.exit_code == fresh.exit_code == 0
    assert len(logged(fresh.stderr)) > 50
    assert logged(warm.stderr) == logged(fresh.stderr)


def test_without_the_warm_server_the_real_cli_answers(box: labkit.Instance, lab: labkit.Lab) -> None:
    box.run("rm -rf ~/.aws")  # the notebooks' `aws configure` lines leave keys there
    socket_path = lab.home / "aws.sock"
    moved = socket_path.with_name("aws.sock.away")
    os.rename(socket_path, moved)
    try:
        result = box.run("aws sts get-caller-identity --query Arn --output text")
    finally:
        os.rename(moved, socket_path)
    assert result.stdout.strip() == f"arn:aws:sts::123456789012:assumed-role/DemoRoleForEC2/{box.id}"


def test_a_command_cut_short_leaves_the_server_serving(box: labkit.Instance) -> None:
    box.run("rm -rf ~/.aws")
    client = subprocess.Popen(["bash", "-c", "aws iam list-users"], env=box.environ(), cwd=box.home,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    client.send_signal(signal.SIGKILL)
    client.wait()
    assert box.run("aws sts get-caller-identity --query Arn --output text").exit_code == 0


def test_paths_the_cli_takes_from_home_at_import_follow_each_command(tmp_path: Path) -> None:
    probe = textwrap.dedent(f"""
        import os, sys
        os.environ["HOME"] = {str(tmp_path / "server")!r}
        from labkit import cliserver
        cliserver.warm()
        places = cliserver._home_paths({str(tmp_path / "server")!r})
        cliserver._repoint(places, {str(tmp_path / "server")!r}, "/home/ec2-user")
        loaders = sys.modules["botocore.loaders"]
        utils = sys.modules["botocore.utils"]
        print(loaders.Loader.CUSTOMER_DATA_PATH)
        print(utils.JSONFileCache.CACHE_DIR)
        print(utils.JSONFileCache.__init__.__defaults__[0])
    """)
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["/home/ec2-user/.aws/models", "/home/ec2-user/.aws/boto/cache", "/home/ec2-user/.aws/boto/cache"]


def test_the_warm_server_ends_with_its_lab_even_one_killed_while_it_warms_up(tmp_path: Path) -> None:
    info, _ = labkit.up(tmp_path)
    os.kill(info.pid, signal.SIGKILL)  # at once: the server is still warming up
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        servers = subprocess.run(["pgrep", "-f", f"labkit.cliserver {tmp_path}"], capture_output=True, text=True)
        if not servers.stdout.strip():
            break
        time.sleep(0.2)
    assert servers.stdout.strip() == ""
