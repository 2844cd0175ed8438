"""The lab as a student meets it: JupyterLab started as `make lab` starts it (jupyter/start-lab), in a
real browser. The attach-the-role notebook runs through JupyterLab's own menu; a JupyterLab terminal
resets the lab and logs in to an instance.

The test's JupyterLab is the launcher's, over a copy of the notebooks, with Jupyter directories and a
HOME of its own: the user's saved workspaces, settings and startup files stay out of it. Debian's
Chromium (`$LABKIT_CHROMIUM`, by default /usr/bin/chromium; tools/preflight checks it is there),
driven by Playwright, does the clicking and typing. The screenshot is saved with the test's files;
`LABKIT_SCREENSHOT=docs/screenshot.png` also saves the README's copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import labkit

CHROMIUM = os.environ.get("LABKIT_CHROMIUM") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
LAUNCHER = REPO / "jupyter" / "start-lab"
VENV = Path(sys.executable).absolute().parent.parent  # the venv the tests run in, as `make lab` uses it
TOKEN = "labkit-browser-test"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
# The test's own JupyterLab settings: render every cell, so that the test reads every output; give the
# terminal xterm's accessibility tree, the text of its screen as DOM rows (JupyterLab 4 draws the
# terminal on a canvas and has no DOM renderer to choose).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/terminal-extension/plugin": {"screenReaderMode": True},
}
JUPYTER_DIRS = {"HOME": "home", "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
                "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTERLAB_SETTINGS_DIR": "settings",
                "JUPYTERLAB_WORKSPACES_DIR": "workspaces"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated(environ: Mapping[str, str], where: Path, lab_home: Path) -> dict[str, str]:
    """`environ` without the user's Jupyter: a HOME, config, data, runtime, settings and workspaces
    directories under `where`, none of the user's JUPYTER*/IPYTHON*/XDG_* variables. The venv's own
    share/jupyter and etc/jupyter are still found: Jupyter always searches sys.prefix."""
    env = {k: v for k, v in environ.items() if not k.startswith(("JUPYTER", "IPYTHON", "XDG_"))}
    for name, directory in JUPYTER_DIRS.items():
        (where / directory).mkdir(parents=True, exist_ok=True)
        env[name] = str(where / directory)
    for plugin, values in SETTINGS.items():
        path = where / JUPYTER_DIRS["JUPYTERLAB_SETTINGS_DIR"] / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return {**env, "LABKIT_HOME": str(lab_home)}


@dataclass
class JupyterLab:
    """A JupyterLab started by jupyter/start-lab, on loopback with a token."""

    base: str
    pid: int
    env: dict[str, str]

    @property
    def home(self) -> Path:
        return Path(self.env["HOME"])

    def url(self, path: str = "lab") -> str:
        return f"{self.base}/{path}?token={TOKEN}"

    def request(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(self.url(path), method=method, data=b"{}" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
        return json.loads(body) if "json" in response.headers.get("Content-Type", "") else body


@contextmanager
def jupyterlab_server(where: Path, lab_home: Path, *, environ: Mapping[str, str] = os.environ) -> Iterator[JupyterLab]:
    """JupyterLab as `make lab` starts it, over a copy of the notebooks, in isolated Jupyter directories;
    its kernels and terminals use the lab in `lab_home`."""
    root = where / "notebooks"
    shutil.copytree(NOTEBOOKS, root)
    env = isolated(environ, where / "jupyter", lab_home)
    port, log = free_port(), where / "jupyterlab.log"
    with open(log, "w") as errors:
        server = subprocess.Popen(
            [str(LAUNCHER), str(VENV), "--no-browser", f"--ServerApp.port={port}",
             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}"],
            env=env, stdout=subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
    jupyterlab = JupyterLab(f"http://127.0.0.1:{port}", server.pid, env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                jupyterlab.request("api/status")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield jupyterlab
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def jupyterlab(tmp_path: Path, lab: labkit.Lab) -> Iterator[JupyterLab]:
    with jupyterlab_server(tmp_path, lab.home) as server:
        yield server


@contextmanager
def chromium_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: tools/preflight says what to install"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


# Run All has run every code cell, or stopped at an error (the cells after it keep an empty prompt).
RAN_ALL_OR_STOPPED = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
    const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']") !== null;
    const failed = document.querySelector(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']");
    return prompts.every(p => /\\[\\d+\\]/.test(p)) || (idle && failed !== null && !prompts.some(p => p.includes('*')));
}"""


def kernel_idle(jupyterlab: JupyterLab, notebook: str, timeout: float = 90) -> None:
    """Wait until the server says the notebook's kernel is started and idle."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = jupyterlab.request("api/sessions")
        states = [s["kernel"]["execution_state"] for s in sessions if s["path"].endswith(notebook)]
        if states == ["idle"]:
            return
        assert time.monotonic() < deadline, f"the kernel of {notebook} is not idle after {timeout} s: {sessions}"
        time.sleep(0.2)


@pytest.mark.browser
def test_the_attach_the_role_notebook_runs_in_jupyterlab(
    jupyterlab: JupyterLab, lab: labkit.Lab, tmp_path: Path
) -> None:
    lab.reset(to="03")
    with chromium_page() as page:
        page.goto(jupyterlab.url("lab/tree/03-attach-the-role.ipynb"))
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        kernel_idle(jupyterlab, "03-attach-the-role.ipynb")  # a cell run before its kernel is there does nothing
        page.get_by_role("menuitem", name="Edit", exact=True).click()  # the committed outputs go first
        page.get_by_role("menuitem", name="Clear Outputs of All Cells", exact=True).click()
        assert page.locator(".jp-OutputArea-output").count() == 0
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        shot = tmp_path / "attach-the-role.png"
        try:
            page.wait_for_function(RAN_ALL_OR_STOPPED, timeout=180_000)
        except PlaywrightTimeout:
            page.screenshot(path=str(shot))
            shown = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
            pytest.fail(
                f"Run All did not finish in 180 s. Prompts: {shown}"
                f"; sessions: {jupyterlab.request('api/sessions')}; screenshot: {shot}; "
                f"server log: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}"
            )
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
        outputs = page.locator(".jp-OutputArea-output").all_text_contents()
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count()
        diagrams = page.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml']")
        if diagrams.count():
            diagrams.last.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        page.screenshot(path=str(shot))
    assert errors == 0 and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), (prompts, outputs)
    before = next(i for i, text in enumerate(outputs) if "Unable to locate credentials" in text)
    listed = next(i for i, text in enumerate(outputs) if '"UserName": "alice"' in text)
    assert before < listed
    assert "[exit status 255]" in outputs[before]
    assert "✓ The lab holds everything notebook 03 builds." in "\n".join(outputs)
    assert shot.stat().st_size > 10_000
    if os.environ.get("LABKIT_SCREENSHOT"):
        shutil.copy(shot, os.environ["LABKIT_SCREENSHOT"])
    assert not [t for t in outputs if re.search(r"Traceback|Error:", t)]


SCREEN = """() => [...document.querySelectorAll('.jp-Terminal .xterm-accessibility-tree > div')]
    .map(row => row.textContent.replace(/\\u00a0/g, ' ').trimEnd()).join('\\n').trimEnd()"""
SHOWS = f"""([until, failure]) => {{
    const text = ({SCREEN})();
    return text.includes(until) || RegExp(failure).test(text);
}}"""
FAILURE = r"command not found|not the lab's|Traceback|Error"
# A user's ~/.bashrc that loses the venv, as Debian's /etc/profile (PATH reset for root) and pyenv
# (its shims first) do, offers a `labkit` and an `aws` of its own, and names another lab.
BASHRC = """
export PATH="{elsewhere}:/usr/local/bin:/usr/bin:/bin"
export LABKIT_HOME="$HOME/another-lab"
PS1='student$ '
"""


def screen_once_it_shows(page: Any, until: str, *, after: str, timeout: float = 30) -> str:
    """The terminal's screen as text, once it shows `until` (or a failure: the test then reads it)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(SHOWS, arg=[until, FAILURE], timeout=timeout * 1000)
    except PlaywrightTimeout:
        pytest.fail(f"{after}, the terminal did not show {until!r} in {timeout} s:\n{page.evaluate(SCREEN)}")
    return str(page.evaluate(SCREEN))


def type_line(page: Any, line: str, *, until: str, timeout: float = 30) -> str:
    """Type `line` and Enter in the terminal; its screen once it shows `until`."""
    page.keyboard.type(line)
    page.keyboard.press("Enter")
    return screen_once_it_shows(page, until, after=f"after {line!r}", timeout=timeout)


@pytest.mark.browser
def test_a_jupyterlab_terminal_resets_the_lab_and_logs_in_to_an_instance(
    jupyterlab: JupyterLab, lab: labkit.Lab, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("labkit", "aws"):
        (elsewhere / name).write_text(f"#!/bin/sh\necho 'not the lab'\\''s {name}'; exit 3\n")
        (elsewhere / name).chmod(0o755)
    (jupyterlab.home / ".bashrc").write_text(BASHRC.format(elsewhere=elsewhere))
    (jupyterlab.home / ".profile").write_text(". ~/.bashrc\n")  # for login shells, as Debian's does
    lab.reset()
    with chromium_page() as page:
        page.goto(jupyterlab.url("lab"))
        page.wait_for_selector(".jp-Launcher", timeout=90_000)
        page.get_by_role("menuitem", name="File", exact=True).click()
        page.locator(".lm-Menu-item[data-type='submenu']", has_text="New").first.click()
        page.locator(".lm-Menu-item[data-command='terminal:create-new']").click()
        screen_once_it_shows(page, "student$", after="File → New → Terminal")
        screens = [
            type_line(page, "command -v labkit aws", until="/aws\n"),
            type_line(page, "labkit reset --to 04 --yes", until="Reset the lab to checkpoint 04", timeout=60),
            type_line(page, "labkit ssh demo-instance", until="[ec2-user@ip-"),
            type_line(page, 'aws iam list-users --query "Users[].UserName" --output text', until="alice"),
            type_line(page, "exit", until="exit\nexit\nstudent$"),  # back in the terminal's own shell
        ]
        page.screenshot(path=str(tmp_path / "terminal.png"))
    text = "\n".join(screens)
    assert not re.search(FAILURE, text), screens[-1]
    unwrapped = text.replace("\n", "")  # long lines wrap on the screen
    assert f"{VENV}/bin/labkit" in unwrapped and f"{VENV}/bin/aws" in unwrapped
    assert "Reset the lab to checkpoint 04 (ready for 04-role-permissions.ipynb" in text
    assert "Amazon Linux 2023 (simulated by labkit)" in text
    assert re.search(r"\[ec2-user@ip-172-31-\d+-\d+ ~\]\$ aws iam list-users", text)
    assert re.search(r"^admin\s+alice\s+bob\s+carol\b", text, re.MULTILINE)
    assert "demo-instance" in [i.name for i in lab.instances()]  # the terminal's labkit acted on this lab


@pytest.mark.slow
def test_kernels_have_the_venv_first_on_path_and_the_lab_of_labkit_up(jupyterlab: JupyterLab, lab: labkit.Lab) -> None:
    kernel = jupyterlab.request("api/kernels", method="POST")
    deadline = time.monotonic() + 30
    environ: dict[str, str] = {}
    while not environ and time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                command = (stat.parent / "cmdline").read_bytes()
                if parent == jupyterlab.pid and kernel["id"].encode() in command:
                    environ = dict(v.split("=", 1) for v in (stat.parent / "environ").read_text().split("\0") if v)
            except (OSError, IndexError, ValueError):
                continue  # a process that ended meanwhile
        time.sleep(0.1)
    jupyterlab.request(f"api/kernels/{kernel['id']}", method="DELETE")
    assert environ, f"no kernel process {kernel['id']} under the server (pid {jupyterlab.pid})"
    assert environ["PATH"].split(":")[0] == str(VENV / "bin")
    assert environ["LABKIT_HOME"] == str(lab.home)


def plant_a_users_jupyter(home: Path) -> None:
    """What a user who ran `make lab` keeps in ~/.jupyter: a saved workspace with six notebooks open, a
    dark theme, and a page config that turns the terminal off."""
    opened = [f"notebook:{path.name}" for path in sorted(NOTEBOOKS.glob("0[1-6]-*.ipynb"))]
    workspace = {
        "data": {
            "layout-restorer:data": {"main": {"dock": {"type": "tab-area", "currentIndex": 0, "widgets": opened}}},
            **{key: {"data": {"path": key.split(":", 1)[1], "factory": "Notebook"}} for key in opened},
        },
        "metadata": {"id": "default"},
    }
    workspaces = home / ".jupyter" / "lab" / "workspaces"
    workspaces.mkdir(parents=True)
    (workspaces / "default-37a8.jupyterlab-workspace").write_text(json.dumps(workspace))
    themes = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    themes.mkdir(parents=True)
    (themes / "themes.jupyterlab-settings").write_text(json.dumps({"theme": "JupyterLab Dark"}))
    (home / ".jupyter" / "labconfig").mkdir()
    page_config = {"disabledExtensions": {"@jupyterlab/terminal-extension": True}}
    (home / ".jupyter" / "labconfig" / "page_config.json").write_text(json.dumps(page_config))


@pytest.mark.slow
def test_the_tests_jupyterlab_ignores_the_users_workspaces_and_settings(tmp_path: Path, lab: labkit.Lab) -> None:
    user = tmp_path / "user"
    plant_a_users_jupyter(user)
    with jupyterlab_server(tmp_path / "test", lab.home, environ={**os.environ, "HOME": str(user)}) as server:
        workspaces = server.request("lab/api/workspaces")
        theme = server.request("lab/api/settings/@jupyterlab/apputils-extension:themes")
        terminal = server.request("lab/api/settings/@jupyterlab/terminal-extension:plugin")
        page = server.request("lab")
    assert workspaces == {"workspaces": {"ids": [], "values": []}}
    assert theme["settings"].get("theme", "JupyterLab Light") == "JupyterLab Light"
    assert terminal["settings"]["screenReaderMode"] is True  # the test's own settings
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.DOTALL).group(1))  # fmt: skip
    assert "@jupyterlab/terminal-extension" not in json.dumps(config.get("disabledExtensions", {}))
    assert config["terminalsAvailable"] is True


def test_the_launcher_says_how_to_call_it(tmp_path: Path) -> None:
    done = subprocess.run([str(LAUNCHER), str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: jupyter/start-lab VENV [JUPYTER-LAB-ARGUMENTS...]")
