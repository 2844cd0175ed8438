"""The `labkit` command, run as a student or instructor would, against a lab of its own."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import imds_get

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

LABKIT = str(Path(sys.executable).parent / "labkit")


def labkit(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABKIT_HOME": str(home)}
    return subprocess.run([LABKIT, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def on_a_terminal(home: Path, typed: bytes, *args: str) -> tuple[int, str]:
    """Run `labkit ARGS` on a pseudo-terminal, as typed at a prompt, with `typed` as its input;
    its exit status and everything the terminal showed."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execve(LABKIT, [LABKIT, *args], {**os.environ, "LABKIT_HOME": str(home)})
    os.write(fd, typed)
    out = shown_on(fd)
    return os.waitpid(pid, 0)[1] >> 8, out.decode().replace("\r\n", "\n")


def shown_on(fd: int, quiet: float | None = None) -> bytes:
    """All a pseudo-terminal shows until its last writer has gone, or it shows nothing for `quiet` seconds."""
    out = b""
    while quiet is None or select.select([fd], [], [], quiet)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's last writer has gone
            break
        if not chunk:
            break
        out += chunk
    return out


def as_admin(home: Path, command: str) -> subprocess.CompletedProcess[str]:
    """A host terminal after `eval "$(labkit env)"`."""
    env = {**os.environ, "LABKIT_HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", f'eval "$(labkit env)" && {command}'], env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cli-lab")
    yield path
    labkit(path, "down")


def test_without_a_lab_status_and_ssh_say_how_to_start_one(tmp_path: Path) -> None:
    status = labkit(tmp_path, "status")
    assert (status.returncode, status.stdout.strip()) == (
        1,
        f"No lab is running for {tmp_path}. Start it with `labkit up`.",
    )
    ssh = labkit(tmp_path, "ssh", "demo-instance")
    assert ssh.returncode == 1
    assert (
        ssh.stderr.strip()
        == f"labkit: No lab is running for {tmp_path}. Start it with `labkit up` (or labkit.connect())."
    )


def test_up_starts_the_lab_and_a_second_up_reuses_it(home: Path) -> None:
    first = labkit(home, "up")
    assert first.returncode == 0 and first.stdout.startswith("Starting the lab (a few seconds)…\nStarted lab ")
    first.stdout = first.stdout.split("\n", 1)[1]
    second = labkit(home, "up")
    assert second.stdout.startswith("Already running: lab ")
    assert first.stdout.split()[2] == second.stdout.split()[3]  # the same pid


def test_env_makes_the_terminal_aws_the_administrator(home: Path) -> None:
    result = as_admin(home, "aws sts get-caller-identity --query Arn --output text")
    assert result.stdout.strip() == "arn:aws:iam::123456789012:user/admin"


@pytest.fixture(scope="module")
def instance(home: Path) -> str:
    labkit(home, "up")
    launched = as_admin(home, "aws ec2 run-instances --image-id ami-03c3da4cfa8e8943a --instance-type t3.micro "
                              "--tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=cli-box}]' "
                              "--query 'Instances[0].InstanceId' --output text")  # fmt: skip
    return launched.stdout.strip()


def test_ssh_runs_one_command_and_exits_with_its_status(home: Path, instance: str) -> None:
    result = labkit(home, "ssh", "cli-box", "--", "aws", "iam", "list-users")
    assert result.returncode == 255
    assert (
        result.stderr.strip()
        == 'Unable to locate credentials. You can configure credentials by running "aws configure".'
    )
    assert labkit(home, "ssh", instance, "--", "exit", "3").returncode == 3


def test_ssh_a_command_that_does_not_exist_is_127(home: Path, instance: str) -> None:
    result = labkit(home, "ssh", "cli-box", "--", "nosuchcommand")
    assert result.returncode == 127 and "nosuchcommand: command not found" in result.stderr


def test_ssh_opens_a_shell_that_looks_like_amazon_linux(home: Path, instance: str) -> None:
    result = labkit(
        home, "ssh", "cli-box", stdin=imds_get("http://169.254.169.254/latest/meta-data/instance-id") + "\nexit 4\n"
    )
    assert result.returncode == 4
    assert "Amazon Linux 2023 (simulated by labkit)" in result.stdout
    assert instance in result.stdout
    assert "[ec2-user@ip-172-31-" in result.stderr  # bash writes its prompt to stderr


def test_ssh_to_an_unknown_instance_lists_those_there_are(home: Path, instance: str) -> None:
    result = labkit(home, "ssh", "i-0nope")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"labkit: No instance i-0nope in this lab; instances: {instance} (cli-box, running)."
    )
    assert "Traceback" not in result.stderr


def test_status_lists_users_roles_and_instances(home: Path, instance: str) -> None:
    lines = labkit(home, "status").stdout.splitlines()
    assert lines[0].startswith("Lab ") and f"(state in {home})" in lines[0]
    assert lines[1].split() == ["users:", "admin,", "alice,", "bob,", "carol"]
    row = next(line for line in lines if line.strip().startswith(instance))
    assert row.split()[:3] == [instance, "cli-box", "running"]
    assert row.split()[-2:] == ["no", "role"]


def test_reset_says_what_it_did(home: Path, instance: str) -> None:
    result = labkit(home, "reset")
    assert result.returncode == 0 and result.stdout.startswith("Reset the lab to a freshly bootstrapped one in ")
    assert "instances: -" in labkit(home, "status").stdout


def test_reset_to_a_checkpoint_and_check_it(home: Path) -> None:
    result = labkit(home, "reset", "--to", "03")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "  replaying notebook 01 (01-the-problem.ipynb)…",
        "  replaying notebook 02 (02-create-the-role.ipynb)…",
    ]
    assert lines[2].startswith(
        "Reset the lab to checkpoint 03 (ready for 03-attach-the-role.ipynb; replayed notebooks 01, 02) in "
    )
    passed = labkit(home, "check", "02")
    assert passed.returncode == 0 and passed.stdout.startswith("✓ The lab holds everything notebook 02 builds.")
    missing = labkit(home, "check", "3")
    assert missing.returncode == 1 and missing.stdout.startswith("Notebook 03: 2 of 2 items missing.")


def test_reset_to_a_checkpoint_that_does_not_exist_lists_those_that_do(home: Path) -> None:
    result = labkit(home, "reset", "--to", "9")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("labkit: There is no notebook 9; the checkpoints are 00, 01, 02, 03, 04, 05, 06")


def test_reset_asks_on_a_terminal_and_does_nothing_unless_told_yes(home: Path) -> None:
    code, shown = on_a_terminal(home, b"n\n", "reset", "--to", "02")
    assert code == 1 and f"Wipe the lab in {home} and put it back to checkpoint 02? [y/N]" in shown
    assert shown.rstrip().endswith("Nothing was changed.")
    code, shown = on_a_terminal(home, b"y\n", "reset", "--to", "02")
    assert code == 0 and "Reset the lab to checkpoint 02 " in shown


def test_reset_on_a_terminal_wipes_nothing_at_enter_or_end_of_input(home: Path) -> None:
    """`[y/N]`: N is the default. Enter alone, or Ctrl-D (end of input), leaves the lab as it was and
    says so in one line (no EOFError traceback); only `y` wipes it.

    Guards against labkit/cli.py `_confirmed` taking an empty answer as yes (`in ("y", "yes")`
    replaced by `in ("y", "yes", "")`) or end of input as yes (`except EOFError:` returning True)."""
    labkit(home, "up")
    made = as_admin(home, "aws iam create-user --user-name kept-by-no --query User.UserName --output text")
    assert made.stdout.strip() == "kept-by-no", made.stderr
    users = "aws iam list-users --query 'Users[].UserName' --output text"
    asked = f"Wipe the lab in {home} and put it back to a freshly bootstrapped lab? [y/N]"
    for typed in (b"\n", b"\x04"):  # Enter; Ctrl-D at the start of a line
        code, shown = on_a_terminal(home, typed, "reset")
        assert (code, shown.strip()) == (1, f"{asked} Nothing was changed."), typed
        assert "kept-by-no" in as_admin(home, users).stdout.split(), typed
    code, shown = on_a_terminal(home, b"y\n", "reset")
    assert code == 0 and "Reset the lab to a freshly bootstrapped one in " in shown, shown
    assert as_admin(home, users).stdout.split() == ["admin", "alice", "bob", "carol"]


def test_status_shows_progress_for_instructors(home: Path) -> None:
    labkit(home, "reset", "--to", "03")
    status = labkit(home, "status").stdout
    assert "Progress: finished notebooks 00-02; ready for 03-attach-the-role.ipynb" in status.splitlines()
    row = next(line for line in status.splitlines() if line.startswith("  ✗ 03-attach-the-role.ipynb"))
    assert row.split(None, 2) == [
        "✗",
        "03-attach-the-role.ipynb",
        "missing: demo-instance is running; demo-instance holds DemoRoleForEC2",
    ]
    report = json.loads(labkit(home, "status", "--json").stdout)
    assert report["running"] is True and report["finished"] == "notebooks 00-02"
    assert (report["furthest"], report["next"]) == ("02", "03")  # `reset --to 03`: ready for 03
    assert report["progress"]["03"] == {
        "done": False,
        "holds": False,
        "missing": ["demo-instance is running", "demo-instance holds DemoRoleForEC2"],
    }
    assert [i["name"] for i in report["instances"]] == ["app-server"]


def test_status_of_a_student_who_finished_the_series_says_so(home: Path) -> None:
    """06 deletes what 01-05 built: progress is the furthest point reached, not the first gap."""
    import labkit as package
    from labkit import solutions

    labkit(home, "reset", "--to", "06")
    solutions.notebook_06(package.connect(home))
    status = labkit(home, "status").stdout
    assert "Progress: finished the series" in status.splitlines()  # ready for nothing more
    rows = [line.split(None, 2) for line in status.splitlines() if ".ipynb" in line]
    assert [row[0] for row in rows] == ["✓"] * 7
    assert rows[1] == ["✓", "01-the-problem.ipynb", "done (later notebooks changed what it built)"]
    report = json.loads(labkit(home, "status", "--json").stdout)
    assert (report["finished"], report["furthest"], report["next"]) == ("the series", "06", None)
    assert all(entry["done"] for entry in report["progress"].values())
    assert report["progress"]["06"] == {"done": True, "holds": True, "missing": []}


def test_a_fresh_lab_has_not_finished_the_clean_up(home: Path) -> None:
    """Notebook 06 cleans up what the series made; a lab that never made it has not done 06."""
    labkit(home, "reset")
    report = json.loads(labkit(home, "status", "--json").stdout)
    assert (report["finished"], report["furthest"], report["next"]) == ("notebook 00", "00", "01")
    assert report["progress"]["06"]["done"] is False
    assert labkit(home, "check", "06").returncode == 1


def test_ssh_to_an_instance_nothing_has_touched_yet_opens_its_shell(home: Path) -> None:
    """The first thing a student types after `labkit reset --to 04` (it crashed with FileNotFoundError)."""
    labkit(home, "reset", "--to", "04")
    typed = b"aws iam list-users --query 'Users[].UserName' --output text\nexit 5\n"
    code, shown = on_a_terminal(home, typed, "ssh", "demo-instance")
    assert code == 5, shown
    assert "Amazon Linux 2023 (simulated by labkit)" in shown and "[ec2-user@ip-172-31-" in shown
    assert "admin\talice\tbob\tcarol" in shown and "Traceback" not in shown


def test_env_on_a_stopped_lab_prints_only_shell_code(tmp_path: Path) -> None:
    """`eval "$(labkit env)"` starts the lab; what it says about that goes to stderr, not into eval."""
    try:
        result = labkit(tmp_path, "env")
        assert result.returncode == 0
        assert subprocess.run(["bash", "-n"], input=result.stdout, text=True).returncode == 0
        assert all(line.startswith(("unset ", "export ", "# ")) for line in result.stdout.splitlines())
        assert "starting your lab" in result.stderr
        assert (
            as_admin(tmp_path, "aws sts get-caller-identity --query Arn --output text")
            .stdout.strip()
            .endswith(":user/admin")
        )
    finally:
        labkit(tmp_path, "down")


def test_output_cut_short_by_a_pipe_is_no_traceback(home: Path) -> None:
    result = subprocess.run(
        f"{LABKIT} status | head -1; {LABKIT} --help | head -1; {LABKIT} status | true; {LABKIT} check 03 | true",
        shell=True, env={**os.environ, "LABKIT_HOME": str(home)}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.startswith("Lab ") and "usage: labkit" in result.stdout
    assert result.stderr == ""


def test_down_stops_it(home: Path) -> None:
    assert labkit(home, "down").stdout.strip() == "Stopped the lab."
    assert labkit(home, "down").stdout.strip() == f"No lab was running for {home}."
    assert json.loads(labkit(home, "status", "--json").stdout) == {"running": False, "home": str(home)}


def test_help_shows_examples() -> None:
    result = subprocess.run([LABKIT, "--help"], capture_output=True, text=True)
    assert "labkit ssh i-0abc -- aws iam list-users" in result.stdout
    for command in ("up", "down", "status", "env", "reset", "check", "ssh"):
        shown = subprocess.run([LABKIT, command, "--help"], capture_output=True, text=True).stdout
        assert f"examples:\n  labkit {command}" in shown or 'examples:\n  eval "$(labkit env)"' in shown, command
