"""A class on JupyterHub, for real: the hub of deploy/jupyterhub/demo_config.py (which loads the fragment
a hub admin copies, labkit_class.py) with configurable-http-proxy on loopback, three students and one
instructor. Each student's server is spawned through the Hub API and each lab put at its own checkpoint
through that student's own lab API; in Debian's Chromium the instructor reads the class page and resets
a student, whose own `labkit status` then says so. Students are refused the page and each other's labs,
each refusal beside the same request by one who may; a stopped server and a silent one show as such,
within the page's timeout.

The hub runs as this user (SimpleLocalProcessSpawner), each user's home and lab in the test's own
directory. `LABKIT_SCREENSHOT_CLASS=docs/class-page.png` also saves the README's copy of the page.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labkit.classroom.gather import StudentLab
from labkit.classroom.page import class_csv, row
from tests.test_browser import chromium_page

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "deploy" / "jupyterhub" / "demo_config.py"
HUB = Path(sys.executable).parent / "jupyterhub"
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "class-test-password"
ADMIN_TOKEN = "labkit-class-test-admin-token"
STUDENTS = {"ana": "02", "ben": "05", "cleo": None}  # each lab's checkpoint (None: a fresh lab)
INSTRUCTOR = "ines"
TIMEOUT = 5.0  # LABKIT_CLASS_TIMEOUT (3 s by default): room for a shared 2-core CI machine, where 3 labs answer in ~2 s
# The test's additions to the demo hub: a service holding an admin token, to spawn servers and make tokens.
TEST_CONFIG = f"""
load_subconfig({str(DEMO)!r})
c.JupyterHub.services.append({{"name": "test-admin", "api_token": {ADMIN_TOKEN!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["test-admin"]}})
"""


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports on loopback."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + count > 65535:
            continue
        try:
            held = []
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise AssertionError(f"no {count} consecutive free ports")


@dataclass
class Answer:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ClassHub:
    url: str  # the proxy's public URL
    homes: Path
    log: Path
    tokens: dict[str, str]  # each user's own API token

    def call(self, path: str, *, token: str = ADMIN_TOKEN, method: str = "GET", body: Any = None,
             timeout: float = 60) -> Answer:  # fmt: skip
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(response.status, response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read().decode())

    def user(self, name: str) -> dict[str, Any]:
        answer = self.call(f"/hub/api/users/{name}")
        assert answer.status == 200, answer
        return answer.json()  # type: ignore[no-any-return]

    def wait_for_server(self, name: str, *, running: bool, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            server = self.user(name)["servers"].get("")
            if bool(server and server.get("ready")) if running else not server:
                return
            assert time.monotonic() < deadline, f"{name}'s server is not {'up' if running else 'down'}: {server}"
            time.sleep(0.3)

    def lab_status(self, name: str) -> dict[str, Any]:
        """The student's own `labkit status --json`, on their lab."""
        done = subprocess.run(
            [sys.executable, "-m", "labkit.cli", "status", "--json"],
            env={**os.environ, "LABKIT_HOME": str(self.homes / name / "lab")}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        return json.loads(done.stdout)  # type: ignore[no-any-return]


def server_pid(name: str) -> int:
    """The process id of `name`'s single-user server (its environment names its user)."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
            command = (environ.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if b"jupyterhub-singleuser" in command and f"JUPYTERHUB_USER={name}".encode() in variables:
            return int(environ.parent.name)
    raise AssertionError(f"no single-user server of {name}")


@pytest.fixture(scope="module")
def class_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClassHub]:
    assert PROXY.exists(), "configurable-http-proxy is not in node_modules/: `make hub-proxy` installs it"
    where = tmp_path_factory.mktemp("class-hub")
    (where / "test_config.py").write_text(TEST_CONFIG)
    port = free_ports(4)
    env = {
        **os.environ,
        "LABKIT_DEMO_PASSWORD": PASSWORD,
        "LABKIT_DEMO_DIR": str(where / "homes"),
        "LABKIT_DEMO_STUDENTS": ",".join(STUDENTS),
        "LABKIT_DEMO_INSTRUCTORS": INSTRUCTOR,
        "LABKIT_HUB_PORT": str(port),
        "LABKIT_CLASS_TIMEOUT": str(TIMEOUT),
    }
    log = where / "hub.log"
    with open(log, "w") as out:
        hub = subprocess.Popen([str(HUB), "-f", str(where / "test_config.py")], cwd=where, env=env,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    it = ClassHub(f"http://127.0.0.1:{port}", where / "homes", log, {})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if it.call("/hub/api/", timeout=5).status == 200 and it.call("/services/class/", timeout=5).status:
                    break
            except OSError:
                pass
            assert hub.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        for name in [*STUDENTS, INSTRUCTOR]:
            answer = it.call(f"/hub/api/users/{name}/tokens", method="POST", body={"note": "test"})
            assert answer.status == 201, answer
            it.tokens[name] = answer.json()["token"]
        for name in STUDENTS:
            assert it.call(f"/hub/api/users/{name}/server", method="POST").status in (201, 202)
        for name in STUDENTS:
            it.wait_for_server(name, running=True)

        def put_at_checkpoint(name: str) -> Answer:  # by the student's own lab API, with their own token
            to = STUDENTS[name]
            return it.call(f"/user/{name}/labkit/api/reset", token=it.tokens[name], method="POST",
                           body={} if to is None else {"to": to}, timeout=120)  # fmt: skip

        with ThreadPoolExecutor(len(STUDENTS)) as pool:
            for answer in pool.map(put_at_checkpoint, STUDENTS):
                assert answer.status == 200, answer
        yield it
    finally:
        for name in STUDENTS:
            try:
                os.kill(server_pid(name), signal.SIGCONT)  # a server a test left stopped
            except (AssertionError, OSError):
                pass
        os.killpg(hub.pid, signal.SIGTERM)  # the hub stops the servers it spawned, and its proxy
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
        for name in STUDENTS:
            subprocess.run([sys.executable, "-m", "labkit.cli", "down"], capture_output=True, timeout=30,
                           env={**os.environ, "LABKIT_HOME": str(where / "homes" / name / "lab")})  # fmt: skip


def page_rows(page: Any) -> dict[str, dict[str, Any]]:
    """The class page's table: for each student, their server, lab, furthest notebook and ✓/✗ per notebook."""
    return {  # type: ignore[no-any-return]
        r["name"]: r
        for r in page.evaluate("""() => [...document.querySelectorAll('tbody tr[data-student]')].map(tr => ({
            name: tr.dataset.student, server: tr.dataset.server, furthest: tr.dataset.furthest,
            text: tr.innerText,
            marks: [...tr.querySelectorAll('td.done, td.missing, td.unknown')].map(td => td.textContent[0]),
        }))""")
    }


def log_in(page: Any, hub: ClassHub, name: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=30_000)


def test_the_instructor_sees_every_students_progress_and_resets_one(class_hub: ClassHub, tmp_path: Path) -> None:
    truth = {name: class_hub.lab_status(name) for name in STUDENTS}
    assert [truth[n]["furthest"] for n in STUDENTS] == ["01", "04", "00"]  # ready for 02, for 05, fresh
    with chromium_page() as page:
        log_in(page, class_hub, INSTRUCTOR)
        began = time.monotonic()
        page.goto(f"{class_hub.url}/services/class/")
        page.wait_for_selector("tbody tr[data-student]")
        shown_in = time.monotonic() - began
        rows = page_rows(page)
        shot = tmp_path / "class-page.png"
        page.locator("main").screenshot(path=str(shot))
        assert sorted(rows) == sorted(STUDENTS)
        for name, status in truth.items():
            marks = ["✓" if status["progress"][n]["done"] else "✗" for n in sorted(status["progress"])]
            assert rows[name]["marks"] == marks, (name, rows[name], status["progress"])
            assert rows[name]["server"] == "running"
            assert rows[name]["furthest"] == (status["furthest"] or "")
            assert f"finished {status['finished']}" in rows[name]["text"]
            assert "running, sealed by" in rows[name]["text"]
        missing = page.locator("tr[data-student=cleo] td.missing").first.get_attribute("title")
        assert missing == "missing: " + "; ".join(truth["cleo"]["progress"]["01"]["missing"]), missing

        page.check("input[name=student][value=ana]")
        page.select_option("select#to", "04")
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.click("button[name=selected]")
        page.wait_for_selector(".done-list", timeout=120_000)
        said = page.locator(".done-list").inner_text()
        after = page_rows(page)
    assert asked == ["Reset the lab of ana to 04: ready for 04-role-permissions.ipynb? What is in it now is replaced."]
    assert "ana: Reset the lab to checkpoint 04 (ready for 04-role-permissions.ipynb" in said
    ana = class_hub.lab_status("ana")
    assert (ana["next"], ana["furthest"], ana["finished"]) == ("04", "03", "notebooks 00-03")  # ready for 04
    assert after["ana"]["furthest"] == "03"
    assert class_hub.lab_status("ben")["furthest"] == "04"  # the others are as they were
    assert shown_in < TIMEOUT + 5, f"the page took {shown_in:.1f} s"
    assert shot.stat().st_size > 10_000
    if os.environ.get("LABKIT_SCREENSHOT_CLASS"):
        shutil.copy(shot, os.environ["LABKIT_SCREENSHOT_CLASS"])


def test_students_are_refused_the_page_and_each_others_labs(class_hub: ClassHub) -> None:
    ben, ines, ana = class_hub.tokens["ben"], class_hub.tokens[INSTRUCTOR], class_hub.tokens["ana"]
    assert class_hub.call("/services/class/", token=ben).status == 403
    assert class_hub.call("/services/class/", token=ines).status == 200  # the instructor may
    assert class_hub.call("/services/class/class.csv", token=ben).status == 403
    assert class_hub.call("/user/ana/labkit/api/status", token=ben).status == 403
    assert class_hub.call("/user/ana/labkit/api/status", token=ana).json()["running"] is True  # ana may
    reset_by_ben = class_hub.call("/user/ana/labkit/api/reset", token=ben, method="POST", body={"to": "06"})
    assert reset_by_ben.status == 403
    # The instructor acts through the page, with the page's token; their own holds nothing on students' servers.
    assert class_hub.call("/user/ana/labkit/api/status", token=ines).status == 403
    assert class_hub.lab_status("ana")["furthest"] != "06"


def test_a_student_logged_in_gets_403_on_the_page(class_hub: ClassHub) -> None:
    with chromium_page() as page:
        log_in(page, class_hub, "ben")
        refused = page.goto(f"{class_hub.url}/services/class/")
        assert refused is not None and refused.status == 403
        own = page.goto(f"{class_hub.url}/user/ben/labkit/api/status")
        assert own is not None and own.status == 200 and json.loads(own.text())["running"] is True
        other = page.goto(f"{class_hub.url}/user/ana/labkit/api/status")
        assert other is not None and other.status == 403, other.text()


def test_a_reset_needs_the_pages_xsrf_token(class_hub: ClassHub) -> None:
    before = class_hub.lab_status("ben")["furthest"]
    with chromium_page() as page:
        log_in(page, class_hub, INSTRUCTOR)
        page.goto(f"{class_hub.url}/services/class/")
        forged = page.request.post(f"{class_hub.url}/services/class/reset", form={"one": "ben", "to": "fresh"},
                                   headers={"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site"})  # fmt: skip
        assert forged.status == 403
        assert class_hub.lab_status("ben")["furthest"] == before
        token = page.locator("input[name=_xsrf]").get_attribute("value")
        csv_answer = page.request.get(f"{class_hub.url}/services/class/class.csv")
        status, text = csv_answer.status, csv_answer.text()
    assert token
    assert status == 200
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [line["student"] for line in lines] == sorted(STUDENTS)
    assert lines[1]["furthest"] == before and lines[1]["05"].startswith("missing: ")


def test_a_stopped_and_a_silent_server_show_as_such_within_the_timeout(class_hub: ClassHub) -> None:
    assert class_hub.call("/hub/api/users/cleo/server", method="DELETE").status in (202, 204)
    class_hub.wait_for_server("cleo", running=False)
    ben = server_pid("ben")
    os.kill(ben, signal.SIGSTOP)  # ben's server no longer answers
    try:
        began = time.monotonic()
        answer = class_hub.call("/services/class/class.csv", token=class_hub.tokens[INSTRUCTOR], timeout=30)
        took = time.monotonic() - began
    finally:
        os.kill(ben, signal.SIGCONT)
    assert answer.status == 200, answer
    lines = {line["student"]: line for line in csv.DictReader(io.StringIO(answer.body))}
    assert (lines["cleo"]["server"], lines["cleo"]["finished"]) == ("stopped", "")
    assert (lines["ben"]["server"], lines["ben"]["server_note"]) == ("slow", f"no answer within {TIMEOUT:g} s")
    assert lines["ana"]["server"] == "running" and lines["ana"]["furthest"] == "03"
    assert TIMEOUT <= took < TIMEOUT + 3, f"the page took {took:.1f} s"
    assert class_hub.call("/hub/api/users/cleo/server", method="POST").status in (201, 202)  # positive control
    class_hub.wait_for_server("cleo", running=True)
    again = class_hub.call("/services/class/class.csv", token=class_hub.tokens[INSTRUCTOR])
    lines = {line["student"]: line for line in csv.DictReader(io.StringIO(again.body))}
    assert lines["cleo"]["server"] == lines["ben"]["server"] == "running"


# The pure parts: rows and CSV from what servers answer.
def test_a_row_reads_the_status_report_and_says_how_the_lab_is_sealed_and_restored() -> None:
    report = {"running": True, "finished": "notebooks 00-01", "furthest": "01", "sealed": False,
              "seal_note": "no user namespaces here", "restored": "The lab had stopped; it is back.",
              "progress": {"00": {"done": True, "missing": []}, "01": {"done": True, "missing": []},
                           "02": {"done": False, "missing": ["role DemoRoleForEC2"]}}}  # fmt: skip
    shown = row(StudentLab("ana", "running", "2026-01-02T03:04:05.123Z", report=report))
    assert shown.lab == "running, restored after a crash; sealed by environment"
    assert "no user namespaces here" in shown.lab_note
    assert shown.notebooks["02"] == (False, ["role DemoRoleForEC2"])
    assert shown.last_activity == "2026-01-02 03:04:05"
    text = class_csv([shown, row(StudentLab("bo", "stopped", None))], notebooks=["00", "01", "02"])
    assert text.splitlines()[1:] == [
        "ana,running,,"
        '"running, restored after a crash; sealed by environment",notebooks 00-01,01,done,done,'
        "missing: role DemoRoleForEC2,2026-01-02 03:04:05",
        "bo,stopped,,—,,,,,,",
    ]
    stopped_lab = row(StudentLab("cy", "running", None, report={"running": False, "home": "/h"}))
    assert (stopped_lab.lab, stopped_lab.notebooks, stopped_lab.finished) == ("stopped", {}, "")
