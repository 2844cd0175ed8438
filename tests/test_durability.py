"""Nothing acknowledged is ever lost, under faults made for real: a full disk (a small tmpfs), a file
size limit (`prlimit --fsize`), kill -9, a lab stopped with SIGSTOP, a damaged journal, header or
snapshot, a second lab process on the same directory, and a lab whose history is long."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import labkit
from conftest import imds_get
from labkit.errors import LabError
from labkit.statedir import owner, read_info


@pytest.fixture
def own_lab(tmp_path: Path) -> Iterator[labkit.Lab]:
    lab = labkit.connect(tmp_path / "lab")
    yield lab
    labkit.down(lab.home)


def users(lab: labkit.Lab) -> list[str]:
    return [u["UserName"] for u in labkit.connect(lab.home).client("iam").list_users()["Users"]]


def kill(lab: labkit.Lab) -> None:
    pid = lab.current().pid
    os.kill(pid, signal.SIGKILL)
    while owner(lab.home) is not None:  # the kernel released its lock: it is gone
        time.sleep(0.01)


def lab_processes(home: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"labkit.labprocess.main --home {home}$"], capture_output=True, text=True)
    return sorted(int(pid) for pid in found.stdout.split())


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    return {"code": caught.value.response["Error"]["Code"], "status": caught.value.response["ResponseMetadata"]
            ["HTTPStatusCode"], "message": caught.value.response["Error"]["Message"]}  # fmt: skip


def acknowledged(call: Any) -> Any:
    """What `call` answers: a change the lab can journal is acknowledged (an assertion says so if not)."""
    try:
        return call()
    except ClientError as error:
        raise AssertionError(f"a change the journal could hold was refused: {error}") from None


def journal_lines(home: Path) -> list[bytes]:
    raw = (home / "journal.jsonl").read_bytes()
    assert raw.endswith(b"\n"), "the journal ends with a partial line"
    return raw.splitlines()


def journaled_users(home: Path) -> list[str]:
    names = []
    for line in journal_lines(home)[1:]:
        change = json.loads(line)
        if change.get("action") == "CreateUser":
            names.append(change["body"])
    import base64
    from urllib.parse import parse_qs

    return [parse_qs(base64.b64decode(body).decode())["UserName"][0] for body in names]


# -- a change that cannot be written whole is neither acknowledged nor kept ----------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs, mounted for real (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; CI runs as root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` up to its last byte; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                continue
    return filler


def test_a_change_the_full_disk_cuts_short_is_neither_acknowledged_nor_kept(small_disk: Path) -> None:
    """Before: the short write was taken as whole and the change acknowledged; after a crash, it and
    every later change, those acknowledged once space came back too, were dropped, and deleted."""
    home = small_disk / "lab"
    lab = labkit.connect(home)
    try:
        iam = lab.client("iam")
        iam.create_user(UserName="before")
        size = (home / "journal.jsonl").stat().st_size
        filler = fill(small_disk)
        answer = refused(lambda: iam.create_user(UserName="lost"))
        assert answer["code"] == "ServiceFailure" and answer["status"] == 500
        assert answer["message"].startswith(
            "The lab could not write a change to its journal (the disk is full), so it did not make it; "
            f"free space where the lab keeps its state ({home}), then try again"
        )
        assert (home / "journal.jsonl").stat().st_size == size  # the partial line was cut off again
        assert "lost" not in users(lab)  # not acknowledged, and not applied either
        status = json.loads(subprocess.run([sys.executable, "-m", "labkit.cli", "status", "--json"], env={
            **os.environ, "LABKIT_HOME": str(home)}, capture_output=True, text=True, check=True).stdout)  # fmt: skip
        assert "the disk is full" in status["journal"]["problem"]
        filler.unlink()
        iam.create_user(UserName="after")  # space came back
        kill(lab)
        back = labkit.connect(home)
        assert sorted(u for u in users(back) if u in ("before", "lost", "after")) == ["after", "before"]
        assert back.info.problem == ""  # a whole journal
        assert journaled_users(home) == ["before", "after"]
    finally:
        labkit.down(home)


def test_a_change_past_the_file_size_limit_is_neither_acknowledged_nor_kept(own_lab: labkit.Lab) -> None:
    """Before: EFBIG gave an empty 500 but left the change applied; the next changes were
    acknowledged, and after a crash they were gone."""
    iam = own_lab.client("iam")
    acknowledged(lambda: iam.create_user(UserName="before"))
    pid, journal = own_lab.current().pid, own_lab.home / "journal.jsonl"
    limit = journal.stat().st_size + 1000  # less than one change: its line can only be written in part
    subprocess.run(["prlimit", f"--pid={pid}", f"--fsize={limit}:"], check=True)
    try:
        answer = refused(lambda: iam.create_user(UserName="lost"))
        assert (answer["code"], answer["status"]) == ("ServiceFailure", 500)
        assert "(the journal reached the largest file this process may write (ulimit -f))" in answer["message"]
        assert "lost" not in users(own_lab)
        assert refused(lambda: iam.create_user(UserName="lost-too"))["code"] == "ServiceFailure"
    finally:
        subprocess.run(["prlimit", f"--pid={pid}", "--fsize=unlimited:"], check=True)
    iam.create_user(UserName="after")
    kill(own_lab)
    back = labkit.connect(own_lab.home)
    assert sorted(u for u in users(back) if u in ("before", "lost", "lost-too", "after")) == ["after", "before"]
    assert journaled_users(own_lab.home) == ["before", "after"]
    assert "could not write a change to its journal" in (own_lab.home / "lab.log").read_text()


# -- a journal is never cut: what cannot be replayed is kept beside it ---------------------------------
def test_an_unreadable_line_is_kept_beside_the_journal_with_every_change_after_it(own_lab: labkit.Lab) -> None:
    """Before: the unreadable line and every later one were deleted, with no copy kept."""
    iam = own_lab.client("iam")
    for name in ("one", "two", "three", "four"):
        iam.create_user(UserName=name)
    iam.attach_user_policy(UserName="four", PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    kill(own_lab)
    lines = journal_lines(own_lab.home)
    lines[3] = b'{"kind": "request", "act'  # change three, damaged
    (own_lab.home / "journal.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    info, started = labkit.up(own_lab.home)
    kept = own_lab.home / "journal.jsonl.unreplayed"
    assert started and info.restored == 2
    assert info.problem == (
        "line 4 is unreadable; it and the changes after it were not replayed; not brought back: "
        f"CreateUser, AttachUserPolicy and 1 unreadable line, kept in {kept}"
    )
    assert kept.read_bytes() == b"\n".join(lines[3:]) + b"\n"
    assert [u for u in users(own_lab) if u in ("one", "two", "three", "four")] == ["one", "two"]


def test_changes_that_no_longer_replay_are_kept_beside_the_journal(own_lab: labkit.Lab) -> None:
    iam = own_lab.client("iam")
    for name in ("one", "two"):
        iam.create_user(UserName=name)
    kill(own_lab)
    lines = journal_lines(own_lab.home)
    lines.insert(2, lines[1])  # CreateUser one, twice: the second gives EntityAlreadyExists
    (own_lab.home / "journal.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    info, _ = labkit.up(own_lab.home)
    kept = own_lab.home / "journal.jsonl.unreplayed"
    assert info.problem == (
        "change 2 could not be replayed (replaying CreateUser gave HTTP 409); it and later ones were dropped; "
        f"not brought back: CreateUser and CreateUser, kept in {kept}"
    )
    assert kept.read_bytes().splitlines() == [json.dumps(json.loads(line), separators=(",", ":")).encode()
                                              for line in lines[2:]]  # fmt: skip
    assert len(journal_lines(own_lab.home)) == 2  # the header and change 1, which new changes follow


DAMAGED_HEADERS = {
    "no administrator keys": lambda h: {k: v for k, v in h.items() if k != "admin"},
    "administrator keys null": lambda h: {**h, "admin": None},
    "a seed that is not a number": lambda h: {**h, "seed": "2000x"},
    "not an object": lambda h: [h],
}


@pytest.mark.parametrize("damage", [*DAMAGED_HEADERS, "the journal is a directory"])
def test_a_damaged_header_still_leads_to_a_running_lab_and_a_note(own_lab: labkit.Lab, damage: str) -> None:
    """Before: each of these meant the lab could never start again, and no labkit command recovered."""
    own_lab.client("iam").create_user(UserName="in-the-damaged-journal")
    kill(own_lab)
    journal = own_lab.home / "journal.jsonl"
    if damage == "the journal is a directory":
        journal.unlink()
        journal.mkdir()
        (journal / "inside").write_text("kept")
    else:
        lines = journal_lines(own_lab.home)
        lines[0] = json.dumps(DAMAGED_HEADERS[damage](json.loads(lines[0]))).encode()
        journal.write_bytes(b"\n".join(lines) + b"\n")
    damaged = journal.read_bytes() if journal.is_file() else None
    info, started = labkit.up(own_lab.home)
    aside = own_lab.home / "journal.jsonl.damaged"
    assert started and info.restored == 0
    assert info.problem.startswith("the journal could not be read: ") and info.problem.endswith(f"kept as {aside}")
    if damaged is None:
        assert (aside / "inside").read_text() == "kept"
    else:
        assert aside.read_bytes() == damaged
    back = labkit.connect(own_lab.home)
    assert users(back) == ["admin", "alice", "bob", "carol"]
    back.client("iam").create_user(UserName="afterwards")  # and it journals again
    kill(back)
    assert "afterwards" in users(labkit.connect(own_lab.home))


# -- one lab per state directory: ownership is the kernel's lock, never a timeout -------------------------
def test_a_stopped_lab_is_never_doubled_and_down_stops_it(own_lab: labkit.Lab) -> None:
    """Before: `labkit down` said "No lab was running", deleted lab.json and left the process alive;
    `labkit up` then started a second one on the same journal."""
    own_lab.client("iam").create_user(UserName="acknowledged")
    pid = own_lab.current().pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(LabError) as said:
            labkit.up(own_lab.home)
        assert str(said.value) == (
            f"The lab process {pid} owns {own_lab.home} but does not answer (it is stopped, as by Ctrl-Z or "
            "SIGSTOP). `labkit down` stops it; `labkit up` then brings the lab back from its journal."
        )
        assert lab_processes(own_lab.home) == [pid] and owner(own_lab.home) == pid
    finally:
        stopped = subprocess.run([sys.executable, "-m", "labkit.cli", "down"], capture_output=True, text=True,
                                 env={**os.environ, "LABKIT_HOME": str(own_lab.home)}, timeout=60)  # fmt: skip
    assert stopped.stdout == "Stopped the lab.\n" and stopped.returncode == 0
    assert lab_processes(own_lab.home) == [] and owner(own_lab.home) is None and read_info(own_lab.home) is None
    info, started = labkit.up(own_lab.home)
    assert started and info.pid != pid and "acknowledged" in users(own_lab)


def test_a_lab_whose_record_is_garbage_is_never_doubled(own_lab: labkit.Lab) -> None:
    pid = own_lab.current().pid
    (own_lab.home / "lab.json").write_text("{garbage")
    with pytest.raises(LabError) as said:
        labkit.up(own_lab.home)
    assert "lab.json, which says where it listens, is missing or unreadable" in str(said.value)
    assert lab_processes(own_lab.home) == [pid]
    assert labkit.down(own_lab.home) is True
    assert lab_processes(own_lab.home) == []


def test_a_second_lab_process_on_the_same_directory_stops_at_once(own_lab: labkit.Lab) -> None:
    pid = own_lab.current().pid
    second = subprocess.run([sys.executable, "-m", "labkit.labprocess.main", "--home", str(own_lab.home)],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert second.returncode == 1
    assert second.stdout == f"labkit: another lab process (pid {pid}) owns {own_lab.home}; this one stops.\n"
    assert own_lab.current().pid == pid and users(own_lab)  # the owner goes on, unharmed


# -- a long history: snapshots keep restoring quick and the journal small ------------------------------
def test_a_lab_with_a_long_history_comes_back_from_its_snapshot(own_lab: labkit.Lab) -> None:
    from labkit.labprocess.recovery import SNAPSHOT_EVERY

    own_lab.reset(to="04")
    box = own_lab.instance("demo-instance")
    role = json.loads(box.run(imds_get("http://169.254.169.254/latest/meta-data/iam/security-credentials/"
                                       "DemoRoleForEC2")).stdout)  # fmt: skip
    iam = own_lab.client("iam")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    for n in range(SNAPSHOT_EVERY * 2 + 20):
        iam.tag_user(UserName="bob", Tags=[{"Key": "n", "Value": str(n)}])
    iam.create_user(UserName="last")
    tags = iam.list_user_tags(UserName="bob")["Tags"]
    before = {"users": users(own_lab), "instances": own_lab.instances(), "tags": tags,
              "roles": own_lab.status().profile_roles}  # fmt: skip
    snapshots = list(own_lab.home.glob("snapshot-*.pickle"))
    assert len(snapshots) == 1 and len(journal_lines(own_lab.home)) < 40  # the journal restarted after it
    kill(own_lab)
    began = time.monotonic()
    back = labkit.connect(own_lab.home)
    took = time.monotonic() - began
    assert back.info.problem == "" and back.info.restored == before_changes(own_lab.home, back)
    after = {"users": users(back), "instances": back.instances(), "tags": back.client("iam").list_user_tags(
        UserName="bob")["Tags"], "roles": back.status().profile_roles}  # fmt: skip
    assert after == before
    copied = back.client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert copied.get_caller_identity()["Arn"].endswith(":user/alice")
    session = back.client("sts", aws_access_key_id=role["AccessKeyId"], aws_secret_access_key=role["SecretAccessKey"],
                          aws_session_token=role["Token"])  # fmt: skip
    assert session.get_caller_identity()["Arn"].endswith(f"assumed-role/DemoRoleForEC2/{box.id}")
    assert took < 10  # a replay of every change takes longer than this on a loaded CI machine
    back.client("iam").create_user(UserName="after-the-restore")  # the ids go on as before
    assert "after-the-restore" in users(back)


def test_a_lab_restored_from_its_snapshot_hands_its_instances_the_same_role_keys(own_lab: labkit.Lab) -> None:
    """The session an instance was handed before the snapshot lives only in the snapshot: after a
    kill -9, the metadata service must hand the instance the same keys, not mint new ones."""
    from labkit.labprocess.recovery import SNAPSHOT_EVERY

    credentials = imds_get("http://169.254.169.254/latest/meta-data/iam/security-credentials/DemoRoleForEC2")
    keys = ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")
    own_lab.reset(to="04")
    before = json.loads(own_lab.instance("demo-instance").run(credentials).stdout)
    assert before["Code"] == "Success" and before["AccessKeyId"].startswith("ASIA"), before
    iam = own_lab.client("iam")
    for n in range(SNAPSHOT_EVERY + 1):
        iam.tag_user(UserName="bob", Tags=[{"Key": "n", "Value": str(n)}])
    # positive control: a snapshot was taken after the session was handed out, and the journal that
    # follows it holds no session, so the keys can come back from the snapshot alone
    assert len(list(own_lab.home.glob("snapshot-*.pickle"))) == 1
    after_snapshot = [json.loads(line) for line in journal_lines(own_lab.home)[1:]]
    assert json.loads(journal_lines(own_lab.home)[0]).get("snapshot") is not None
    assert not [change for change in after_snapshot if change.get("kind") == "session"], after_snapshot
    kill(own_lab)
    back = labkit.connect(own_lab.home)
    assert back.info.problem == ""
    after = json.loads(back.instance("demo-instance").run(credentials).stdout)
    assert {k: after[k] for k in keys} == {k: before[k] for k in keys}, (
        "the restored lab handed demo-instance new role keys"
    )


def before_changes(home: Path, lab: labkit.Lab) -> int:
    header = json.loads(journal_lines(home)[0])
    return int(header["snapshot"]["changes"]) + len(journal_lines(home)) - 1


def test_a_damaged_snapshot_is_kept_aside_and_the_lab_starts_with_a_note(own_lab: labkit.Lab) -> None:
    from labkit.labprocess.recovery import SNAPSHOT_EVERY

    iam = own_lab.client("iam")
    for n in range(SNAPSHOT_EVERY + 1):
        iam.tag_user(UserName="bob", Tags=[{"Key": "n", "Value": str(n)}])
    kill(own_lab)
    [snapshot] = own_lab.home.glob("snapshot-*.pickle")
    snapshot.write_bytes(snapshot.read_bytes()[:-100])
    info, started = labkit.up(own_lab.home)
    aside = own_lab.home / "journal.jsonl.damaged"
    assert started and info.restored == 0
    assert info.problem == (
        f"the journal could not be used: its snapshot {snapshot.name} is damaged (its checksum does not match); "
        f"the journal was kept as {aside}, and the lab started fresh"
    )
    assert (own_lab.home / f"journal.jsonl.damaged.{snapshot.name}").exists() and aside.exists()
    assert users(own_lab) == ["admin", "alice", "bob", "carol"]


def test_a_reset_the_full_disk_cannot_journal_is_refused_and_the_lab_keeps_its_state(small_disk: Path) -> None:
    """Before: the lab reset in memory while its journal still held the old lab, so the changes that
    followed were appended to it and came back, after a crash, on top of the old lab."""
    home = small_disk / "lab"
    lab = labkit.connect(home)
    try:
        lab.client("iam").create_user(UserName="kept")
        filler = fill(small_disk)
        with pytest.raises(LabError) as said:
            lab.reset()
        assert str(said.value).startswith(
            f"The lab (pid {lab.info.pid}) could not reset: the lab could not start a new journal (the disk is "
            f"full), so it was not reset; free space where the lab keeps its state ({home}), then try again."
        )
        assert "kept" in users(lab)
        filler.unlink()
        lab.client("iam").create_user(UserName="after")
        kill(lab)
        assert {"kept", "after"} <= set(users(labkit.connect(home)))
    finally:
        labkit.down(home)
