"""The lab as a student meets it: JupyterLab in a real browser, the attach-the-role notebook run
through JupyterLab's own menu, and what the page then shows.

JupyterLab runs on loopback (as `make lab` starts it) over a copy of the notebooks; Debian's
Chromium, driven by Playwright, clicks Run → Run All Cells. The screenshot is saved with the test's
files; `LABKIT_SCREENSHOT=docs/screenshot.png` also saves the README's copy.
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
from collections.abc import Iterator
from pathlib import Path

import pytest

import labkit

CHROMIUM = "/usr/bin/chromium"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def jupyterlab(tmp_path: Path, lab: labkit.Lab) -> Iterator[str]:
    """JupyterLab on loopback over a copy of the notebooks, its kernels using the test session's lab."""
    root = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, root)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # render every cell, so that the test reads every output
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), "labkit-browser-test"
    env = {**os.environ, "LABKIT_HOME": str(lab.home), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings")}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "jupyterlab.log", "w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "jupyterlab.log").read_text()
            time.sleep(0.2)
    yield f"{url}/lab/tree/03-attach-the-role.ipynb?token={token}"
    server.terminate()
    server.wait(timeout=30)


def test_the_attach_the_role_notebook_runs_in_jupyterlab(jupyterlab: str, lab: labkit.Lab, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), ".ci/run installs Debian's chromium"
    lab.reset(to="03")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(jupyterlab)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        page.get_by_role("menuitem", name="Edit", exact=True).click()  # the committed outputs go first
        page.get_by_role("menuitem", name="Clear Outputs of All Cells", exact=True).click()
        assert page.locator(".jp-OutputArea-output").count() == 0
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
            ".every(p => /\\[\\d+\\]/.test(p.textContent))",
            timeout=180_000,
        )
        outputs = page.locator(".jp-OutputArea-output").all_text_contents()
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count()
        after = page.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml']").last
        after.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        shot = tmp_path / "attach-the-role.png"
        page.screenshot(path=str(shot))
        browser.close()
    before = next(i for i, text in enumerate(outputs) if "Unable to locate credentials" in text)
    listed = next(i for i, text in enumerate(outputs) if '"UserName": "alice"' in text)
    assert before < listed
    assert "[exit status 255]" in outputs[before]
    assert "✓ The lab holds everything notebook 03 builds." in "\n".join(outputs)
    assert errors == 0
    assert shot.stat().st_size > 10_000
    if os.environ.get("LABKIT_SCREENSHOT"):
        shutil.copy(shot, os.environ["LABKIT_SCREENSHOT"])
    assert not [t for t in outputs if re.search(r"Traceback|Error:", t)]
