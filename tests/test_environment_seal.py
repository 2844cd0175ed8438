"""Where the host allows no user namespaces: the demo and every notebook still pass, the instances
sealed by their environment only, and the lab says so.

Such a host (Docker's and Kubernetes' default seccomp profile, Ubuntu 24.04's AppArmor rule) is
made for real: the tests run inside a user namespace whose `user.max_user_namespaces` is 0, so the
lab's own attempt to make one fails as it would there. The notebooks are checked by nbval in strict
mode against the same committed outputs, with tests/sanitize-environment-seal.cfg on top of
tests/sanitize.cfg: it replaces only what the seal itself changes (where the instance's home is,
and the line saying how instances are sealed), and this file asserts that line separately.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from labkit import fence

ROOT = Path(__file__).resolve().parent.parent
NO_NAMESPACES = "echo 0 > /proc/sys/user/max_user_namespaces && "  # the host's refusal, made for real


def without_user_namespaces(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a shell command inside a user namespace where no further one can be made."""
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "bash", "-c", NO_NAMESPACES + command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_lab_says_in_one_line_that_instances_are_sealed_by_environment_only(tmp_path: Path) -> None:
    env = {**os.environ, "LABKIT_HOME": str(tmp_path / "lab")}
    env.pop("LABKIT_SEALED", None)
    labkit = f"{sys.executable} -m labkit.cli"
    done = without_user_namespaces(f"{labkit} up && {labkit} status && {labkit} status --json; {labkit} down", env, 120)
    assert done.returncode == 0, done.stderr[-2000:]
    why = "user namespaces are switched off here (user.max_user_namespaces is 0)"
    said = f"instances are sealed by environment only on this host: {why}; {fence.said()}"
    assert f"labkit: {said}." in done.stdout.splitlines()  # at start, in one line
    assert f"  sealing:   {said}" in done.stdout.splitlines()  # in `labkit status`
    status = json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1])
    assert (status["sealed"], status["seal_asked"], status["seal_note"]) == (False, True, said)


def test_the_demo_and_the_notebooks_pass_with_instances_sealed_by_environment(tmp_path: Path) -> None:
    sanitize = tmp_path / "sanitize.cfg"
    sanitize.write_text((ROOT / "tests" / "sanitize.cfg").read_text() + "\n" +
                        (ROOT / "tests" / "sanitize-environment-seal.cfg").read_text())  # fmt: skip
    lab = tmp_path / "notebook-lab"
    env = {**os.environ, "LABKIT_NOTEBOOK_LAB": str(lab)}
    env.pop("LABKIT_SEALED", None)
    pytest = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    done = without_user_namespaces(
        f"{pytest} tests/test_demo.py notebooks --nbval --nbval-current-env --nbval-sanitize-with {sanitize}; "
        f"status=$?; {sys.executable} -m labkit.cli status --json; {sys.executable} -m labkit.cli down; exit $status",
        {**env, "LABKIT_HOME": str(lab)},
        900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    cells = sum(1 for path in (ROOT / "notebooks").glob("*.ipynb") for cell in json.loads(path.read_text())["cells"]
                if cell["cell_type"] == "code")  # fmt: skip
    demo = len(re.findall(r"^def test_", (ROOT / "tests" / "test_demo.py").read_text(), re.M))
    assert passed and int(passed.group(1)) == cells + demo, done.stdout[-2000:]
    status = json.loads(done.stdout[done.stdout.index("{\n") : done.stdout.rindex("}") + 1])
    assert not status["sealed"] and status["seal_note"].startswith("instances are sealed by environment only")
    assert status["finished"] == "the series"  # the control: the notebooks ran in this very lab, to the end
