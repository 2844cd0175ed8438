"""The process boundary: the student's kernel and the `labkit` command never load the lab process.

They reach the lab over HTTP and agree with it only through labkit.protocol and labkit.statedir, so
`import labkit`, `labkit.connect()`, an instance's command and a `%%instance` cell load neither moto
nor any module of labkit.labprocess (which would also cost a kernel seconds and megabytes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import labkit
from conftest import launch

LOADED = "sorted(m for m in sys.modules if m.split('.')[0] == 'moto' or m.startswith('labkit.labprocess'))"


def test_the_client_loads_no_lab_process_module(fresh_lab: labkit.Lab) -> None:
    launch(fresh_lab, "box")
    script = (
        "import sys, json, labkit\n"
        f"lab = labkit.connect({str(fresh_lab.home)!r})\n"
        "assert lab.instance('box').run('true').ok\n"
        "lab.status(); lab.check('03')\n"
        f"print(json.dumps({LOADED}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []
    # a positive control: the same question does see the lab-process modules where they are loaded
    control = subprocess.run(
        [sys.executable, "-c", f"import sys, json, labkit.labprocess.backends; print(json.dumps({LOADED}))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "labkit.labprocess.backends" in json.loads(control.stdout)


def test_the_labkit_command_loads_no_lab_process_module(fresh_lab: labkit.Lab) -> None:
    script = f"import sys, json, runpy\nfrom labkit import cli\ncli.main(['status'])\nprint(json.dumps({LOADED}))\n"
    env = {"LABKIT_HOME": str(fresh_lab.home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.startswith("Lab ")
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_notebook_with_an_instance_cell_loads_no_lab_process_module(
    fresh_lab: labkit.Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch(fresh_lab, "box")
    monkeypatch.setenv("LABKIT_HOME", str(fresh_lab.home))
    cells = ["import labkit\n\nlab = labkit.connect()", "%%instance box\necho hi", f"import sys\n{LOADED}"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(Path.cwd())}}).execute()
    assert "hi" in str(nb.cells[1].outputs)
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "[]"
