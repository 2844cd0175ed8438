"""A class on JupyterHub, for real: the hub of deploy/jupyterhub/demo_config.py (which loads the fragment
a hub admin copies, labkit_class.py) with configurable-http-proxy on loopback, three students and one
instructor. Each student's server is spawned through the Hub API and each lab put at its own checkpoint
through that student's own lab API; in Debian's Chromium the instructor reads the class page and resets
a student, whose own `labkit status` then says so. Students are refused the page and each other's labs,
each refusal beside the same request by one who may; a stopped server and a silent one show as such,
within the page's timeout.

One student, cleo, is also the attacker: her own ~/.jupyter/jupyter_server_config.py (what any student
may write) makes her server record every request it receives, replay each credential at once against a
classmate's lab, contents, terminals and the Hub API, and answer whatever status report she writes. What
the page sends her must be worth no more than what she has; what she answers must not break the page.

The hub runs as this user (SimpleLocalProcessSpawner), each user's home and lab in the test's own
directory. `LABKIT_SCREENSHOT_CLASS=docs/class-page.png` also saves the README's copy of the page.
"""

from __future__ import annotations

import asyncio
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
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from labkit.classroom.gather import Hub, StudentLab, gather
from labkit.classroom.page import class_csv, class_html, row
from labkit.classroom.reports import status_from
from labkit.errors import ClassNotListed
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
LISTER_TOKEN = "labkit-class-test-lister-token"
ATTACKER = "cleo"  # her server records what reaches it (RECORDER)
# The test's additions to the demo hub: a service holding an admin token, to spawn servers and make tokens;
# one that may list every user, without their groups (a broader token than the page's, for test_members).
TEST_CONFIG = f"""
load_subconfig({str(DEMO)!r})
c.JupyterHub.services.append({{"name": "test-admin", "api_token": {ADMIN_TOKEN!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["test-admin"]}})
c.JupyterHub.services.append({{"name": "test-lister", "api_token": {LISTER_TOKEN!r}}})
c.JupyterHub.load_roles.append({{"name": "test-lister", "services": ["test-lister"],
                                "scopes": ["list:users", "read:users:activity", "read:servers", "tokens"]}})
"""
# The attacker's own ~/.jupyter/jupyter_server_config.py, which JupyterHub's single-user server reads from
# her home as any Jupyter server does. Her server, as the hub starts it, records every request it
# receives in ~/requests.jsonl; while ~/attack.json exists, it replays each credential it receives at once,
# before answering, and records what came back; it answers ~/status-to-answer.json, when she wrote one,
# instead of her lab's status.
RECORDER = """
import json
import urllib.error
import urllib.request
from pathlib import Path

import tornado.web

import labkit.classroom.server_extension as lab_api

HOME = Path.home()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def replay(credentials):
    attack = json.loads((HOME / "attack.json").read_text())
    said = {"refused": []}
    for method, url, body in attack["refused"] + [["GET", attack["whoami"], None]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=credentials)
        try:
            with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as answer:
                code, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            code, text = error.code, error.headers.get("Location", "")
        if url == attack["whoami"]:
            said["whoami"] = [code, text]
        else:
            said["refused"].append([method, url, code, text])
    if said["whoami"][0] == 200:  # the token's record, read with cleo's own token, as a student may
        model = json.loads(said["whoami"][1])
        mine = {"Authorization": "token " + attack["own_token"]}
        url = attack["whoami"] + "s/" + model["name"] + "/tokens/" + str(model["token_id"])
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=mine), timeout=30) as answer:
                said["token"] = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            said["token"] = {"HTTP": error.code}
    return said


find_handler = tornado.web.Application.find_handler


def record_and_find_handler(self, request, **kwargs):
    entry = {"method": request.method, "path": request.path, "headers": dict(request.headers)}
    credentials = {k: v for k, v in entry["headers"].items() if k.lower() in ("authorization", "cookie")}
    if credentials and (HOME / "attack.json").exists():
        try:
            entry["replayed"] = replay(credentials)
        except Exception as error:
            entry["replayed"] = {"error": repr(error)}
    with open(HOME / "requests.jsonl", "a") as record:
        record.write(json.dumps(entry) + "\\n")
    return find_handler(self, request, **kwargs)


tornado.web.Application.find_handler = record_and_find_handler
status_report = lab_api.status_report


def answered_status(home):
    mine = HOME / "status-to-answer.json"
    return json.loads(mine.read_text()) if mine.exists() else status_report(home)


lab_api.status_report = answered_status
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
    location: str = ""  # where a redirect points

    def json(self) -> Any:
        return json.loads(self.body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect (to the login page, say) is the answer itself, never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirect)


@dataclass
class ClassHub:
    url: str  # the proxy's public URL
    homes: Path
    log: Path
    tokens: dict[str, str]  # each user's own API token

    def call(self, path: str, *, token: str = ADMIN_TOKEN, method: str = "GET", body: Any = None,
             form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
             timeout: float = 60) -> Answer:  # fmt: skip
        data = None if body is None else json.dumps(body).encode()
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method,
            headers=headers if headers is not None else {"Authorization": f"token {token}"},
        )  # fmt: skip
        try:
            with OPENER.open(request, timeout=timeout) as response:
                return Answer(response.status, response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read().decode(errors="replace"), error.headers.get("Location", ""))

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

    def labkit(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`labkit ARGS…` as the student types it, on their lab."""
        return subprocess.run(
            [sys.executable, "-m", "labkit.cli", *args],
            env={**os.environ, "LABKIT_HOME": str(self.homes / name / "lab")}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip

    def lab_status(self, name: str) -> dict[str, Any]:
        """The student's own `labkit status --json`, on their lab."""
        return json.loads(self.labkit(name, "status", "--json").stdout)  # type: ignore[no-any-return]


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
    (it.homes / ATTACKER / ".jupyter").mkdir(parents=True)
    (it.homes / ATTACKER / ".jupyter" / "jupyter_server_config.py").write_text(RECORDER)
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
    """The class page's table: for each student, their server, lab, furthest notebook, ✓/✗ per notebook of
    the series, and the challenge's cell (07): its text and title."""
    return {  # type: ignore[no-any-return]
        r["name"]: r
        for r in page.evaluate("""() => [...document.querySelectorAll('tbody tr[data-student]')].map(tr => ({
            name: tr.dataset.student, server: tr.dataset.server, furthest: tr.dataset.furthest,
            text: tr.innerText,
            marks: [...tr.querySelectorAll('td:not(.challenge):is(.done, .missing, .unknown)')].map(
                td => td.textContent[0]),
            challenge: [tr.querySelector('td.challenge').textContent, tr.querySelector('td.challenge').title],
        }))""")
    }


def challenge_shown(status: dict[str, Any]) -> list[str]:
    """The challenge's cell, [text, title], for a lab whose `labkit status --json` is `status`."""
    graded = status["challenge"] or {"graded_at": None, "hints": 0}
    hints = f"{graded['hints']} hint{'s' if graded['hints'] != 1 else ''}"
    if graded["graded_at"] is None:
        return [
            f"– not graded{' · ' + hints if graded['hints'] else ''}",
            f"notebook 07: not graded yet, {hints} asked",
        ]
    if graded["ok"]:
        return [f"✓ done · {hints}", f"notebook 07: done, graded {graded['graded_at']}"]
    return [f"{len(graded['missing'])} missing · {hints}", "missing: " + "; ".join(graded["missing"])]


def log_in(page: Any, hub: ClassHub, name: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=30_000)


@pytest.mark.hub
@pytest.mark.browser
def test_the_instructor_sees_every_students_progress_and_resets_one(class_hub: ClassHub, tmp_path: Path) -> None:
    # ben asks a hint and grades the challenge on his lab as it is (not its scene): about 2-5 s
    assert class_hub.labkit("ben", "hint", "07").stdout.startswith("Hint 1 of ")
    graded = class_hub.labkit("ben", "check", "07")
    assert graded.returncode == 1 and "Notebook 07: 11 of 11 items missing (1 hint used" in graded.stdout, graded
    truth = {name: class_hub.lab_status(name) for name in STUDENTS}
    assert [truth[n]["furthest"] for n in STUDENTS] == ["01", "04", "00"]  # ready for 02, for 05, fresh
    assert [truth[n]["challenge"] for n in ("ana", "cleo")] == [None, None]
    assert (truth["ben"]["challenge"]["items"], len(truth["ben"]["challenge"]["missing"])) == (11, 11)
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
            assert rows[name]["challenge"] == challenge_shown(status), (name, rows[name], status["challenge"])
        assert rows["ben"]["challenge"][0] == "11 missing · 1 hint"
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


@pytest.mark.hub
def test_students_are_refused_the_page_and_each_others_labs(class_hub: ClassHub) -> None:
    ben, ines, ana = class_hub.tokens["ben"], class_hub.tokens[INSTRUCTOR], class_hub.tokens["ana"]
    assert class_hub.call("/services/class/", token=ben).status == 403
    assert class_hub.call("/services/class/", token=ines).status == 200  # the instructor may
    assert class_hub.call("/services/class/class.csv", token=ben).status == 403
    assert class_hub.call("/user/ana/labkit/api/status", token=ben).status == 403
    assert class_hub.call("/user/ana/labkit/api/status", token=ana).json()["running"] is True  # ana may
    reset_by_ben = class_hub.call("/user/ana/labkit/api/reset", token=ben, method="POST", body={"to": "06"})
    assert reset_by_ben.status == 403
    # The instructor acts through the page; their own token holds nothing on students' servers.
    assert class_hub.call("/user/ana/labkit/api/status", token=ines).status == 403
    assert class_hub.lab_status("ana")["furthest"] != "06"


@pytest.mark.hub
@pytest.mark.browser
def test_a_student_logged_in_gets_403_on_the_page(class_hub: ClassHub) -> None:
    with chromium_page() as page:
        log_in(page, class_hub, "ben")
        refused = page.goto(f"{class_hub.url}/services/class/")
        assert refused is not None and refused.status == 403
        own = page.goto(f"{class_hub.url}/user/ben/labkit/api/status")
        assert own is not None and own.status == 200 and json.loads(own.text())["running"] is True
        other = page.goto(f"{class_hub.url}/user/ana/labkit/api/status")
        assert other is not None and other.status == 403, other.text()


@pytest.mark.hub
@pytest.mark.browser
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
    ben = class_hub.lab_status("ben")["challenge"]  # graded in test_the_instructor_sees_…
    assert [lines[1][k] for k in ("07", "07_missing", "07_hints")] == [
        "missing: " + "; ".join(ben["missing"]),
        "11",
        "1",
    ]
    assert [lines[0][k] for k in ("07", "07_missing", "07_hints")] == ["not graded", "", "0"]  # ana


@pytest.mark.hub
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


def attacks_on(hub: ClassHub, classmate: str) -> list[list[Any]]:
    """What a student would do with a classmate's credential: their lab API, their files (lab.json holds
    their lab's administrator keys), a terminal on their server, the class from the Hub API."""
    return [
        ["GET", f"{hub.url}/user/{classmate}/labkit/api/status", None],
        ["POST", f"{hub.url}/user/{classmate}/labkit/api/reset", {"to": "01"}],
        ["GET", f"{hub.url}/user/{classmate}/api/contents/lab/lab.json", None],
        ["GET", f"{hub.url}/user/{classmate}/api/terminals", None],
        ["POST", f"{hub.url}/user/{classmate}/api/terminals", None],
        ["GET", f"{hub.url}/hub/api/users", None],
        ["GET", f"{hub.url}/hub/api/users/{classmate}", None],
    ]


def refused(code: int, location: str) -> bool:
    """401, 403, 404, or a redirect to a login page."""
    return code in (401, 403, 404) or (code in (301, 302, 303, 307) and "login" in location)


def class_page_tokens(hub: ClassHub, name: str) -> list[dict[str, Any]]:
    """The tokens of `name` the class page made and has not deleted."""
    tokens = hub.call(f"/hub/api/users/{name}/tokens").json()["api_tokens"]
    return [t for t in tokens if str(t.get("note", "")).startswith("class page")]


@pytest.mark.hub
@pytest.mark.browser
def test_what_the_page_sends_a_students_server_is_worth_only_that_students_rights(class_hub: ClassHub) -> None:
    cleo, ana = class_hub.homes / ATTACKER, "ana"
    attacks = attacks_on(class_hub, ana)
    own = class_hub.tokens[ana]
    before = class_hub.call(f"/user/{ana}/labkit/api/status", token=own).json()  # ana's own, on her lab
    assert before["running"] is True
    (cleo / "requests.jsonl").unlink(missing_ok=True)
    (cleo / "attack.json").write_text(json.dumps({"refused": attacks, "whoami": f"{class_hub.url}/hub/api/user",
                                                  "own_token": class_hub.tokens[ATTACKER]}))  # fmt: skip
    try:  # the instructor opens the page and resets a classmate of cleo's, which shows the page again
        with chromium_page() as page:
            log_in(page, class_hub, INSTRUCTOR)
            page.goto(f"{class_hub.url}/services/class/")
            page.wait_for_selector("tbody tr[data-student]")
            shown = [page_rows(page)[ATTACKER]["server"]]
            page.select_option("select#to", "05")
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("button[name=one][value=ben]")
            page.wait_for_selector(".done-list", timeout=120_000)
            said = page.locator(".done-list").inner_text()
            shown.append(page_rows(page)[ATTACKER]["server"])
    finally:
        (cleo / "attack.json").unlink()
    record = [json.loads(line) for line in (cleo / "requests.jsonl").read_text().splitlines()]
    asked = [r for r in record if r["path"] == f"/user/{ATTACKER}/labkit/api/status"]
    assert len(asked) >= 2 and all(r["headers"].get("Authorization", "").startswith("token ") for r in asked), record
    captured = {r["headers"]["Authorization"] for r in record if "Authorization" in r["headers"]}
    captured |= {r["headers"]["Cookie"] for r in record if "Cookie" in r["headers"]}
    assert f"token {class_hub.tokens[ATTACKER]}" not in captured  # the page's, not cleo's own
    # Replayed by her server at once, while the page's request was in flight: the credential is cleo's
    # own, for her server alone, and opens nothing of ana's, nor the Hub's list of the class.
    for r in asked:
        code, whoami = r["replayed"]["whoami"]
        assert code == 200 and json.loads(whoami)["name"] == ATTACKER, whoami
        held = [
            f"access:servers!server={ATTACKER}/",
            f"read:users:groups!user={ATTACKER}",
            f"read:users:name!user={ATTACKER}",
        ]  # the last two: the Hub's own, on every token of cleo's
        assert json.loads(whoami)["scopes"] == held, whoami
        made, dies = (datetime.fromisoformat(r["replayed"]["token"][k]) for k in ("created", "expires_at"))
        assert (dies - made).total_seconds() <= 120, r["replayed"]["token"]
        assert [a[:2] for a in r["replayed"]["refused"]] == [a[:2] for a in attacks]
        for method, url, code, text in r["replayed"]["refused"]:
            assert refused(code, text), f"{method} {url} with the page's credential, live: {code} {text[:300]}"
    assert "ben: Reset the lab to checkpoint 05" in said, said
    assert shown == ["running", "running"]  # what the page sent cleo, her server took
    # Replayed after the page answered: each made for one request, and deleted after it.
    assert class_page_tokens(class_hub, ATTACKER) == []
    for credential in captured:
        header = "Cookie" if not credential.startswith("token ") else "Authorization"
        for method, url, body in attacks:
            answer = class_hub.call(url.removeprefix(class_hub.url), method=method, body=body,
                                    headers={header: credential}, timeout=30)  # fmt: skip
            assert refused(answer.status, answer.location), f"{method} {url} later: {answer}"
    after = class_hub.call(f"/user/{ana}/labkit/api/status", token=own).json()
    assert (after["furthest"], after["progress"]) == (before["furthest"], before["progress"])  # no reset happened
    # The same requests with ana's own token do what they say (the Hub's list of users: a token that may).
    again = class_hub.call(f"/user/{ana}/labkit/api/reset", token=own, method="POST", body={"to": before["next"]},
                           timeout=120)  # where she is: her lab as it was, the other tests' too  # fmt: skip
    assert again.json()["said"].startswith(f"Reset the lab to checkpoint {before['next']}"), again
    secret = class_hub.call(f"/user/{ana}/api/contents/lab/lab.json", token=own)
    assert secret.status == 200 and "api_port" in secret.json()["content"], secret
    assert class_hub.call(f"/user/{ana}/api/terminals", token=own).status == 200
    terminal = class_hub.call(f"/user/{ana}/api/terminals", token=own, method="POST")
    assert terminal.status == 200, terminal
    class_hub.call(f"/user/{ana}/api/terminals/{terminal.json()['name']}", token=own, method="DELETE")
    assert class_hub.call(f"/hub/api/users/{ana}", token=own).json()["name"] == ana
    assert ana in [u["name"] for u in class_hub.call("/hub/api/users").json()]


GRADED = {"graded_at": "2026-01-02T03:04:05+00:00", "ok": False, "missing": ["only EC2 may assume that role"],
          "items": 11, "hints": 2}  # fmt: skip  # as labkit/challenge/record.py `last_grade` says it
ODD_REPORTS = {  # what cleo's server answers → what her row says; the page still shows everyone
    "a list": ([1, 2], "not labkit's status report: the report is a list, where labkit's report has an object"),
    "a string for a flag": ({"running": "yes"}, "running is a string, where labkit's report has true or false"),
    "a deep wrong type": ({"running": True, "progress": {"02": {"done": False, "missing": "role X"}}},
                          "progress.02.missing is a string, where labkit's report has a list"),
    "3 MB": ({"running": True, "seal_note": "x" * 3_000_000}, "its answer broke off, or was longer than the 1 MB"),
    "a 5000-character note": ({"running": True, "seal_note": "<b>" * 1700}, "seal_note is 5100 characters long"),
    "a challenge that is a word": ({"running": True, "challenge": "done"},
                                   "challenge is a string, where labkit's report has an object or null"),
    "a challenge's missing that is one string": ({"running": True, "challenge": {**GRADED, "missing": "role X"}},
                                                 "challenge.missing is a string, where labkit's report has a list"),
    "a challenge's item that is a number": ({"running": True, "challenge": {**GRADED, "missing": [7]}},
                                            "an item of challenge.missing is a number, where labkit's report has a"),
    "a challenge missing 10000 items": ({"running": True, "challenge": {**GRADED, "missing": ["x"] * 10_000}},
                                        "challenge.missing has 10000 entries, more than the 100 the page shows"),
    "a challenge's item of 5000 characters": ({"running": True, "challenge": {**GRADED, "missing": ["<b>" * 1700]}},
                                              "an item of challenge.missing is 5100 characters long"),
    "hints as a string": ({"running": True, "challenge": {**GRADED, "hints": "2"}},
                          "challenge.hints is a string, where labkit's report has a whole number from 0 to 1000000"),
    "hints as a fraction": ({"running": True, "challenge": {**GRADED, "hints": 2.5}}, "challenge.hints is 2.5, where"),
    "hints as a flag": ({"running": True, "challenge": {**GRADED, "hints": True}}, "challenge.hints is true or false"),
    "negative hints": ({"running": True, "challenge": {**GRADED, "hints": -1}}, "challenge.hints is -1, where"),
    "a billion hints": ({"running": True, "challenge": {**GRADED, "hints": 10**9}}, "challenge.hints is 1000000000"),
    "no item count": ({"running": True, "challenge": {**GRADED, "items": None}}, "challenge.items is null, where"),
    "ok as a word": ({"running": True, "challenge": {**GRADED, "ok": "no"}},
                     "challenge.ok is a string, where labkit's report has true or false or null"),
    "a ✓ with items missing": ({"running": True, "challenge": {**GRADED, "ok": True}},
                               "challenge.ok is true while challenge.missing lists 1 item$"),
    "a ✗ with nothing missing": ({"running": True, "challenge": {**GRADED, "missing": []}},
                                 "challenge.ok is false while challenge.missing lists 0 items"),
    "a grade without a time": ({"running": True, "challenge": {**GRADED, "graded_at": None}},
                               "challenge.ok is false while challenge.graded_at is null: labkit's has both or neither"),
    "more missing than graded": ({"running": True, "challenge": {**GRADED, "items": 0}},
                                 "challenge.missing lists 1 item of the 0 graded"),
}  # fmt: skip


@pytest.mark.hub
@pytest.mark.parametrize("odd", ["a list", "a deep wrong type", "3 MB", "a challenge missing 10000 items"])
def test_an_odd_status_report_is_that_students_error_row(class_hub: ClassHub, odd: str) -> None:
    report, said = ODD_REPORTS[odd]
    answer_file = class_hub.homes / ATTACKER / "status-to-answer.json"
    answer_file.write_text(json.dumps(report))
    try:
        page = class_hub.call("/services/class/class.csv", token=class_hub.tokens[INSTRUCTOR], timeout=60)
    finally:
        answer_file.unlink()
    assert page.status == 200, page
    lines = {line["student"]: line for line in csv.DictReader(io.StringIO(page.body))}
    assert lines[ATTACKER]["server"] == "error" and said in lines[ATTACKER]["server_note"], lines[ATTACKER]
    assert len(lines[ATTACKER]["server_note"]) < 300
    assert lines["ana"]["server"] == lines["ben"]["server"] == "running"


MARKUP = '"\'><img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.mark.hub
@pytest.mark.browser
def test_markup_in_a_report_shows_as_text(class_hub: ClassHub) -> None:
    report = {"running": True, "sealed": False, "seal_note": MARKUP, "restored": MARKUP, "finished": MARKUP,
              "furthest": MARKUP, "progress": {"01": {"done": False, "missing": [MARKUP]}},
              "challenge": {**GRADED, "graded_at": MARKUP, "missing": [MARKUP, "=1+1"]}}  # fmt: skip
    answer_file = class_hub.homes / ATTACKER / "status-to-answer.json"
    answer_file.write_text(json.dumps(report))
    try:
        with chromium_page() as page:
            log_in(page, class_hub, INSTRUCTOR)
            page.goto(f"{class_hub.url}/services/class/")
            page.wait_for_selector("tbody tr[data-student]")
            shown = page.evaluate("""() => ({
                pwned: window.pwned, images: document.images.length, scripts: document.scripts.length,
                row: document.querySelector('tr[data-student=cleo]').innerText,
                furthest: document.querySelector('tr[data-student=cleo]').dataset.furthest,
                missing: document.querySelector('tr[data-student=cleo] td.missing').title,
                challenge: document.querySelector('tr[data-student=cleo] td.challenge').title,
                trust: document.querySelector('p.trust').innerText,
            })""")
    finally:
        answer_file.unlink()
    assert (shown["pwned"], shown["images"], shown["scripts"]) == (None, 0, 1), shown  # the page's own script
    assert f"finished {MARKUP}" in shown["row"] and shown["furthest"] == MARKUP
    assert shown["missing"] == f"missing: {MARKUP}"
    assert shown["challenge"] == f"missing: {MARKUP}; =1+1" and "2 missing · 2 hints" in shown["row"]
    assert shown["trust"].startswith("Each row is what that student's own server reports")


@pytest.mark.hub
def test_the_page_lists_only_the_class_even_under_a_broader_token(class_hub: ClassHub) -> None:
    assert class_hub.call("/hub/api/users/mallory", method="POST").status in (201, 409)  # in no group
    everyone = [u["name"] for u in class_hub.call("/hub/api/users").json()]
    assert {INSTRUCTOR, "mallory", *STUDENTS} <= set(everyone)  # the admin token lists them all

    async def students_for(token: str) -> list[str]:
        hub = Hub.connect(f"{class_hub.url}/hub/api", token, class_hub.url)
        return [s.name for s in await gather(hub, "class", timeout=TIMEOUT)]

    assert asyncio.run(students_for(ADMIN_TOKEN)) == sorted(STUDENTS)
    assert class_hub.call("/hub/api/users", token=LISTER_TOKEN).status == 200  # lists everyone, without groups
    with pytest.raises(ClassNotListed, match="^The hub lists users to the class page without their groups, so it "
                       "cannot tell who is in class: give the page's role read:users:groups!group=class"):  # fmt: skip
        asyncio.run(students_for(LISTER_TOKEN))


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


@pytest.mark.parametrize("odd", [odd for odd in ODD_REPORTS if odd != "3 MB"])  # 3 MB: the client refuses it
def test_status_from_refuses_what_is_not_labkits_report(odd: str) -> None:
    report, said = ODD_REPORTS[odd]
    with pytest.raises(ValueError, match=said.removeprefix("not labkit's status report: ")):
        status_from(json.dumps(report).encode())


def test_status_from_takes_labkits_own_report_and_refuses_what_is_not_json() -> None:
    report = {"running": True, "sealed": True, "seal_note": "", "restored": "", "finished": "notebooks 00-01",
              "furthest": "01", "progress": {"01": {"done": True, "holds": True, "missing": []}}, "pid": 7}  # fmt: skip
    assert status_from(json.dumps(report).encode()) == report
    assert status_from(b'{"running": false, "home": "/h"}') == {"running": False, "home": "/h"}
    with pytest.raises(ValueError, match=r"^the answer is not JSON: b'<html>"):
        status_from(b"<html>Sign in</html>")
    with pytest.raises(ValueError, match="^the answer is not JSON"):
        status_from(b"\xff\xfe")


def test_every_string_of_a_report_is_escaped_in_the_page_and_inert_in_the_csv() -> None:
    report = {"running": True, "sealed": False, "seal_note": MARKUP, "restored": MARKUP, "finished": "=HYPERLINK(1)",
              "furthest": MARKUP, "progress": {"01": {"done": False, "missing": [MARKUP]}}}  # fmt: skip
    shown = row(StudentLab("<i>x</i>", "running", None, report=status_from(json.dumps(report).encode())))
    html = class_html([shown], group="class", timeout=3, xsrf="x", notebooks=["01"], checkpoints=[])
    assert "<img" not in html and "<i>" not in html and html.count("<script>") == 1
    assert "&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;" in html
    assert "Each row is what that student's own server reports" in html
    line = class_csv([shown], notebooks=["01"]).splitlines()[1]
    assert ",'=HYPERLINK(1)," in line


class Cells(HTMLParser):
    """Each rendered row's cells, as a browser reads them: [class, title, text] (text unescaped, without
    the screen reader's words)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.student, self.cell, self.hidden = "", None, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-student" in found:
            self.student = found["data-student"]
            self.rows[self.student] = []
        elif tag == "td" and self.student:
            self.cell = [found.get("class", ""), found.get("title", ""), ""]
            self.rows[self.student].append(self.cell)
        self.hidden = self.hidden or (tag == "span" and found.get("class") == "sr")

    def handle_endtag(self, tag: str) -> None:
        self.hidden = self.hidden and tag != "span"
        self.cell = None if tag == "td" else self.cell
        self.student = "" if tag == "tr" else self.student

    def handle_data(self, data: str) -> None:
        if self.cell is not None and not self.hidden:
            self.cell[2] += data


def notebook_cells(rows: list[Any], notebooks: list[str]) -> dict[str, dict[str, list[str]]]:
    """Each student's cell per notebook in the rendered page (after select, server, lab, progress)."""
    html = class_html(rows, group="class", timeout=3, xsrf="x", notebooks=notebooks, checkpoints=[])
    cells = Cells()
    cells.feed(html)
    return {
        name: dict(zip(notebooks, found[4 : 4 + len(notebooks)], strict=True)) for name, found in cells.rows.items()
    }


def lab_answering(name: str, challenge: Any) -> StudentLab:
    """A running student whose server answers labkit's report with `challenge`, read as the page reads it."""
    report = {"running": True, "sealed": True, "finished": "the series", "furthest": "06",
              "progress": {"06": {"done": True, "missing": []}}, "challenge": challenge}  # fmt: skip
    return StudentLab(name, "running", None, report=status_from(json.dumps(report).encode()))


CHALLENGES = {  # what a student's lab says of notebook 07 → its cell on the page: class, title, text
    "ada": (None, ["challenge ungraded", "notebook 07: not graded yet, 0 hints asked", "–"]),
    "bea": ({"graded_at": None, "ok": None, "missing": [], "items": 0, "hints": 1},
            ["challenge ungraded", "notebook 07: not graded yet, 1 hint asked", "– · 1 hint"]),
    "cal": ({**GRADED, "ok": True, "missing": []},
            ["challenge done", "notebook 07: done, graded 2026-01-02T03:04:05+00:00", "✓ · 2 hints"]),
    "dan": ({**GRADED, "missing": ["report-server's hop limit is 1", "only EC2 may assume that role"], "hints": 0},
            ["challenge missing", "missing: report-server's hop limit is 1; only EC2 may assume that role",
             "2 missing · 0 hints"]),
}  # fmt: skip


def test_the_challenges_cell_says_done_or_how_many_are_missing_and_the_hints_used() -> None:
    rows = [row(lab_answering(name, challenge)) for name, (challenge, _) in CHALLENGES.items()]
    rows += [row(StudentLab("eve", "running", None, report={"running": False, "home": "/h"})),
             row(StudentLab("fay", "stopped", None))]  # fmt: skip
    cells = notebook_cells(rows, ["06", "07"])
    for name, (_, shown) in CHALLENGES.items():
        assert cells[name] == {"06": ["done", "notebook 06: done", "✓"], "07": shown}, name  # 07 not from progress
    assert cells["eve"] == cells["fay"] == {"06": ["unknown", "", "·"], "07": ["challenge unknown", "", "·"]}
    assert rows[2].challenge is not None and rows[2].challenge.ok and rows[3].challenge is not None
    assert rows[3].challenge.missing == ("report-server's hop limit is 1", "only EC2 may assume that role")
    html = class_html(rows, group="class", timeout=3, xsrf="x", notebooks=["06", "07"], checkpoints=[])
    assert '<th scope="col" title="notebook 07, the challenge: ✓, or how many items are missing, and the hints' in html


def test_the_csv_carries_the_challenge_in_columns_a_spreadsheet_sorts() -> None:
    rows = [row(lab_answering(name, challenge)) for name, (challenge, _) in CHALLENGES.items()]
    rows.append(row(StudentLab("fay", "stopped", None)))
    lines = list(csv.DictReader(io.StringIO(class_csv(rows, notebooks=["06", "07"]))))
    assert list(lines[0]) == ["student", "server", "server_note", "lab", "finished", "furthest", "06", "07",
                              "07_missing", "07_hints", "last_activity"]  # fmt: skip
    assert [[line[k] for k in ("student", "06", "07", "07_missing", "07_hints")] for line in lines] == [
        ["ada", "done", "not graded", "", "0"],
        ["bea", "done", "not graded", "", "1"],
        ["cal", "done", "done", "0", "2"],
        ["dan", "done", "missing: report-server's hop limit is 1; only EC2 may assume that role", "2", "0"],
        ["fay", "", "", "", ""],
    ]
    graded = [line for line in lines if line["07_missing"]]
    assert [line["student"] for line in sorted(graded, key=lambda line: int(line["07_missing"]))] == ["cal", "dan"]


def test_a_challenge_with_markup_is_escaped_in_the_page_and_inert_in_the_csv() -> None:
    challenge = {**GRADED, "graded_at": MARKUP, "missing": [MARKUP, "=HYPERLINK(1)", "x" * 1000], "items": 11}
    shown = row(lab_answering("mel", challenge))
    html = class_html([shown], group="class", timeout=3, xsrf="x", notebooks=["07"], checkpoints=[])
    assert "<img" not in html and html.count("<script>") == 1
    cell = notebook_cells([shown], ["07"])["mel"]["07"]
    assert cell == ["challenge missing", f"missing: {MARKUP}; =HYPERLINK(1); {'x' * 1000}", "3 missing · 2 hints"]
    done = row(lab_answering("mel", {**challenge, "ok": True, "missing": []}))
    assert notebook_cells([done], ["07"])["mel"]["07"][1] == f"notebook 07: done, graded {MARKUP}"
    line = next(csv.DictReader(io.StringIO(class_csv([shown], notebooks=["07"]))))
    assert line["07"] == f"missing: {MARKUP}; =HYPERLINK(1); {'x' * 1000}" and line["07_missing"] == "3"


def test_a_report_without_a_challenge_is_labkits_before_notebook_07() -> None:
    report = {"running": True, "sealed": True, "progress": {}}  # an older labkit's: no "challenge" at all
    shown = row(StudentLab("old", "running", None, report=status_from(json.dumps(report).encode())))
    assert notebook_cells([shown], ["07"])["old"]["07"] == [
        "challenge ungraded",
        "notebook 07: not graded yet, 0 hints asked",
        "–",
    ]
