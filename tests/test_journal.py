"""Never lose a student's lab: killed, restarted, damaged, or used by several clients at once."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from importlib.metadata import version
from pathlib import Path

import pytest

import labkit
from conftest import imds_get, kill_until_silent
from labkit.catalogue import ROLE, SECOND_ROLE
from labkit.labprocess.journal import Journal, action_of, changes_something
from labkit.solutions import association_of
from labkit.statedir import read_info, write_info

pytestmark = pytest.mark.slow  # its labs of its own, or its many commands: `make test` runs it

CREDENTIALS = "http://169.254.169.254/latest/meta-data/iam/security-credentials/DemoRoleForEC2"
MOTO = version("moto")


def users(lab: labkit.Lab) -> list[str]:
    return [u["UserName"] for u in lab.client("iam").list_users()["Users"]]


def test_a_killed_lab_comes_back_as_it_was(own_lab: labkit.Lab, capsys: pytest.CaptureFixture[str]) -> None:
    own_lab.reset(to="04")
    box = own_lab.instance("demo-instance")
    box.run("mkdir -p notes && echo kept > notes/file")
    role = json.loads(box.run(imds_get(CREDENTIALS)).stdout)
    key = own_lab.client("iam").create_access_key(UserName="alice")["AccessKey"]
    own_lab.client("iam").create_user(UserName="made-before-the-crash")
    before = {"users": users(own_lab), "instances": own_lab.instances(), "status": own_lab.status().profile_roles}
    kill_until_silent(own_lab)
    capsys.readouterr()  # what reset printed

    back = labkit.connect(own_lab.home)
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "labkit: starting your lab (a few seconds)…"
    assert said[1].startswith("labkit: The lab had stopped; it is back, with the ")
    assert back.info.pid != own_lab.info.pid and back.info.restored > 0
    assert {"users": users(back), "instances": back.instances(), "status": back.status().profile_roles} == before
    copied = back.client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert copied.get_caller_identity()["Arn"].endswith(":user/alice")
    session = back.client(
        "sts",
        aws_access_key_id=role["AccessKeyId"],
        aws_secret_access_key=role["SecretAccessKey"],
        aws_session_token=role["Token"],
    )
    assert session.get_caller_identity()["Arn"].endswith(f"assumed-role/DemoRoleForEC2/{box.id}")
    again = back.instance("demo-instance")
    assert again.run("cat notes/file").stdout.strip() == "kept"
    assert again.run("aws iam list-users --query 'Users[].UserName' --output text").exit_code == 0


def test_copied_credentials_keep_their_role_across_a_role_switch_and_a_crash(own_lab: labkit.Lab) -> None:
    """Guards against role sessions replayed after everything else on restore (issue 16): the session
    of DemoRoleForEC2 then replays after the switch to DemoEC2ReadOnlyRole, and the keys a student
    copied come back as the other role."""
    own_lab.reset(to="05")  # demo-instance holds DemoRoleForEC2; DemoEC2ReadOnlyRole exists
    box = own_lab.instance("demo-instance")
    first = json.loads(box.run(imds_get(CREDENTIALS)).stdout)
    association = association_of(own_lab, box.id)
    assert association is not None
    own_lab.client("ec2").replace_iam_instance_profile_association(
        IamInstanceProfile={"Name": SECOND_ROLE}, AssociationId=association["AssociationId"]
    )
    second = json.loads(box.run(imds_get(CREDENTIALS.removesuffix(ROLE) + SECOND_ROLE)).stdout)
    assert second["AccessKeyId"] != first["AccessKeyId"]
    kill_until_silent(own_lab)

    back = labkit.connect(own_lab.home)
    copied = back.client(
        "sts",
        aws_access_key_id=first["AccessKeyId"],
        aws_secret_access_key=first["SecretAccessKey"],
        aws_session_token=first["Token"],
    )
    assert copied.get_caller_identity()["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{box.id}"
    again = back.instance("demo-instance")
    current = json.loads(again.run(imds_get(CREDENTIALS.removesuffix(ROLE) + SECOND_ROLE)).stdout)
    assert current["AccessKeyId"] == second["AccessKeyId"]
    arn = again.run("aws sts get-caller-identity --query Arn --output text").stdout.strip()
    assert arn == f"arn:aws:sts::123456789012:assumed-role/{SECOND_ROLE}/{box.id}"


def strace_calls(trace: str) -> list[tuple[str, str, str]]:
    """The system calls in `strace -f` output, as (thread id, name, arguments and result), in the
    order each thread made them; a call another thread interrupted is joined back into one."""
    calls: list[tuple[str, str, str]] = []
    pending: dict[str, tuple[str, str]] = {}
    for line in trace.splitlines():
        tid, _, event = line.partition(" ")
        event = event.lstrip()
        if resumed := re.match(r"<\.\.\. (\w+) resumed>(.*)", event):
            name, start = pending.pop(tid, (resumed[1], ""))
            calls.append((tid, name, start + resumed[2]))
        elif call := re.match(r"(\w+)\((.*)", event):
            if call[2].endswith("<unfinished ...>"):
                pending[tid] = (call[1], call[2].removesuffix("<unfinished ...>"))
            else:
                calls.append((tid, call[1], call[2]))
    calls.extend((tid, name, start) for tid, (name, start) in pending.items())  # cut short by detaching
    return calls


def test_a_change_is_on_disk_before_it_is_acknowledged(own_lab: labkit.Lab, tmp_path: Path) -> None:
    """Guards against the journal without fsync (issue 16): a killed lab keeps its written pages, so
    only the kernel can tell. strace, attached to every thread of the lab process, shows the thread
    that serves CreateUser write the change to journal.jsonl, fsync it, and only then send the HTTP
    response; without the fsync it writes, then responds."""
    strace = shutil.which("strace")
    assert strace, "this test needs strace: apt-get install -y strace"
    iam, pid, trace = own_lab.client("iam"), own_lab.info.pid, tmp_path / "strace.txt"
    calls = "trace=fsync,fdatasync,write,writev,sendto,sendmsg"
    command = [strace, "-f", "-yy", "-s", "40", "-e", calls, "-o", str(trace), "-p", str(pid)]
    tracer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not every_thread_traced(pid, by=tracer.pid):
            assert tracer.poll() is None, f"strace could not attach: {tracer.communicate()[1]}"
            assert time.monotonic() < deadline, "strace did not attach to every thread of the lab within 10 s"
            time.sleep(0.02)
        iam.create_user(UserName="on-disk")
        while '"HTTP/1.1 ' not in trace.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        tracer.terminate()
        tracer.communicate(timeout=10)
    journal = own_lab.home / "journal.jsonl"
    record = journal.read_bytes().splitlines(keepends=True)[-1]
    assert json.loads(record)["action"] == "CreateUser"
    traced = strace_calls(trace.read_text())
    steps = [(tid, step) for tid, name, rest in traced if (step := what(name, rest, journal, own_lab.info.api_port))]
    writers = {tid for tid, step in steps if step.startswith("write journal")}
    assert len(writers) == 1, f"one thread writes the change to the journal; the trace shows: {steps}"
    assert [step for tid, step in steps if tid in writers] == [
        f"write journal = {len(record)}",
        "fsync journal = 0",
        "response",
    ]


def every_thread_traced(pid: int, *, by: int) -> bool:
    """Whether process `by` traces every thread of process `pid` (a thread that just ended counts)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if f"TracerPid:\t{by}\n" not in (task / "status").read_text():
                return False
        except FileNotFoundError:
            continue
    return True


def what(name: str, rest: str, journal: Path, api_port: int) -> str:
    """What one traced call means here: a write or fsync of the journal (with its result), the start
    of an HTTP response sent from the lab's API port (a bare `socket:[…]` where strace cannot name
    the connection), or '' for anything else."""
    fd = re.match(r"\d+<(.*?)>[,)]", rest)
    if fd is None:
        return ""
    if fd[1] == str(journal):
        result = rest.rsplit(" = ", 1)[1].strip() if " = " in rest else "(unfinished)"
        return f"{'fsync' if name in ('fsync', 'fdatasync') else name} journal = {result}"
    sent_by_the_api = fd[1].startswith((f"TCP:[127.0.0.1:{api_port}->", "socket:["))
    return "response" if sent_by_the_api and '"HTTP/1.1 ' in rest else ""


def test_reset_clears_the_record(own_lab: labkit.Lab) -> None:
    own_lab.client("iam").create_user(UserName="gone-after-reset")
    own_lab.reset()
    assert len((own_lab.home / "journal.jsonl").read_text().splitlines()) == 1
    kill_until_silent(own_lab)
    assert "gone-after-reset" not in users(labkit.connect(own_lab.home))


def test_a_journal_cut_short_still_restores_the_rest(own_lab: labkit.Lab) -> None:
    for name in ("first", "second"):
        own_lab.client("iam").create_user(UserName=name)
    kill_until_silent(own_lab)
    journal = own_lab.home / "journal.jsonl"
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-40])  # the last change, half written
    info, started = labkit.up(own_lab.home)
    assert started and info.restored == 1
    kept = own_lab.home / "journal.jsonl.unreplayed"
    assert info.problem == (
        "its last change was cut short (written when the lab stopped) and was not replayed; "
        f"not brought back: 1 unreadable line, kept in {kept}"
    )
    assert whole[:-40].endswith(kept.read_bytes()) and kept.stat().st_mode & 0o777 == 0o600  # never cut, kept
    back = labkit.connect(own_lab.home)
    assert "first" in users(back) and "second" not in users(back)
    back.client("iam").create_user(UserName="third")
    assert [json.loads(line).get("action") for line in journal.read_text().splitlines()[1:]] == ["CreateUser"] * 2


def test_an_unreadable_journal_is_set_aside_and_the_lab_starts_fresh(own_lab: labkit.Lab) -> None:
    kill_until_silent(own_lab)
    (own_lab.home / "journal.jsonl").write_text("this is not a journal\n")
    info, started = labkit.up(own_lab.home)
    assert started and info.restored == 0
    assert info.problem.startswith("the journal could not be read: its first line, the header, is unreadable")
    assert (own_lab.home / "journal.jsonl.damaged").read_text() == "this is not a journal\n"
    assert users(labkit.connect(own_lab.home)) == ["admin", "alice", "bob", "carol"]


def written_under(journal: Path, version: str, *, twice: int | None = None) -> str:
    """Make the journal's header say it was written under moto `version` (and repeat its change number
    `twice`, which then cannot be replayed twice); returns what the file now holds."""
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["moto"] == MOTO  # what this lab wrote
    lines[0] = json.dumps({**header, "moto": version}, separators=(",", ":"))
    if twice is not None:
        lines.insert(twice + 1, lines[twice])
    text = "\n".join(lines) + "\n"
    journal.write_text(text)
    return text


def test_a_journal_from_another_moto_that_replays_cleanly_is_kept(own_lab: labkit.Lab) -> None:
    own_lab.client("iam").create_user(UserName="made-under-another-moto")
    kill_until_silent(own_lab)
    journal = own_lab.home / "journal.jsonl"
    written_under(journal, "5.0.0")
    info, started = labkit.up(own_lab.home)
    assert started and (info.restored, info.problem) == (1, "")
    assert "made-under-another-moto" in users(labkit.connect(own_lab.home))
    assert json.loads(journal.read_text().splitlines()[0])["moto"] == MOTO  # what follows is under this one
    assert not list(own_lab.home.glob("journal.jsonl.*"))


def test_a_journal_from_another_moto_that_does_not_replay_is_set_aside_with_a_note(own_lab: labkit.Lab) -> None:
    own_lab.client("iam").create_user(UserName="first")
    own_lab.client("iam").create_user(UserName="second")
    kill_until_silent(own_lab)
    journal = own_lab.home / "journal.jsonl"
    edited = written_under(journal, "5.0.0", twice=1)  # CreateUser first, again: EntityAlreadyExists
    info, started = labkit.up(own_lab.home)
    assert started and info.restored == 1
    aside = own_lab.home / "journal.jsonl.moto-5.0.0"
    assert info.problem == (
        f"the journal was written under moto 5.0.0 and this lab runs moto {MOTO}: change 2 could not be "
        "replayed (replaying CreateUser gave HTTP 409); it and later ones were dropped; "
        f"the whole journal was kept as {aside}"
    )
    assert aside.read_text() == edited
    assert "first" in users(labkit.connect(own_lab.home)) and "second" not in users(labkit.connect(own_lab.home))
    kept = journal.read_text().splitlines()
    assert json.loads(kept[0])["moto"] == MOTO and len(kept) == 2


def test_a_port_now_taken_by_another_program_neither_fools_nor_hangs_up(own_lab: labkit.Lab) -> None:
    stale = own_lab.info
    kill_until_silent(own_lab)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()  # accepts connections and never answers
    write_info(own_lab.home, type(stale)(**{**stale.__dict__, "api_port": squatter.getsockname()[1]}))
    try:
        began = time.monotonic()
        info, started = labkit.up(own_lab.home)
        assert started and info.pid != stale.pid and time.monotonic() - began < 10
        assert read_info(own_lab.home) == info
    finally:
        squatter.close()


def test_two_kernels_and_a_terminal_at_once_lose_nothing(own_lab: labkit.Lab) -> None:
    kernel = textwrap.dedent(f"""
        import sys, labkit
        iam = labkit.connect({str(own_lab.home)!r}).client("iam")
        for n in range(12):
            iam.create_user(UserName=f"{{sys.argv[1]}}-{{n}}")
            iam.tag_user(UserName=f"{{sys.argv[1]}}-{{n}}", Tags=[{{"Key": "by", "Value": sys.argv[1]}}])
    """)
    terminal = own_lab.env() | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    shell = "for n in $(seq 0 11); do aws iam create-user --user-name term-$n > /dev/null; done"
    clients = [subprocess.Popen([sys.executable, "-c", kernel, name]) for name in ("kernel1", "kernel2")]
    clients.append(subprocess.Popen(["bash", "-c", shell], env=terminal))
    errors: list[Exception] = []

    def watch() -> None:
        try:
            for _ in range(20):
                own_lab.instances()
        except Exception as error:  # pragma: no cover - only on failure
            errors.append(error)

    reader = threading.Thread(target=watch)
    reader.start()
    assert [c.wait(timeout=180) for c in clients] == [0, 0, 0]
    reader.join()
    assert errors == []
    expected = {f"{who}-{n}" for who in ("kernel1", "kernel2", "term") for n in range(12)}
    assert expected <= set(users(own_lab))
    kill_until_silent(own_lab)
    back = labkit.connect(own_lab.home)
    assert expected <= set(users(back))
    tags = back.client("iam").list_user_tags(UserName="kernel2-11")["Tags"]
    assert tags == [{"Key": "by", "Value": "kernel2"}]


def test_which_requests_are_changes() -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    assert action_of("POST", "", b"Action=CreateRole&Version=2010-05-08", form) == "CreateRole"
    assert action_of("POST", "Action=ListUsers", b"", {}) == "ListUsers"
    assert action_of("POST", "", b"{}", {"X-Amz-Target": "AWSSecurityTokenServiceV20110615.GetCallerIdentity"}) == (
        "GetCallerIdentity"
    )
    assert [changes_something("POST", a) for a in ("CreateRole", "ListUsers", "DescribeInstances", "GetRole")] == [
        True,
        False,
        False,
        False,
    ]
    assert changes_something("PUT", "") and not changes_something("GET", "")
    # a decoded authorization message, or a simulated policy, changes nothing (and the message's key
    # is the lab process's own: replayed after a restart, it would fail and drop every later change)
    assert not changes_something("POST", "DecodeAuthorizationMessage")
    assert not changes_something("POST", "SimulatePrincipalPolicy")


def test_a_new_journal_is_owner_only(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start({"seed": 1, "admin": ["AKIA", "secret"]})
    journal.append({"kind": "request"})
    assert (tmp_path / "journal.jsonl").stat().st_mode & 0o777 == 0o600
    assert journal.read().changes == [{"kind": "request"}]
