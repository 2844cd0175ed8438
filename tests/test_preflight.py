"""tools/preflight, the first step of `make test`: on a machine without what the suite needs beyond
Python, one line naming what to install and how, and nothing else runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFLIGHT = REPO / "tools" / "preflight"
NO_CHROMIUM = "make test needs chromium: apt-get install chromium, as root (Debian/Ubuntu)"
TOOLS = ("bash", "curl", "unshare", "ip", "strace", "make", "node", "npm")


def machine(tmp_path: Path, *, without: tuple[str, ...] = (), chromium: bool = True) -> dict[str, str]:
    """An environment whose PATH holds only this machine's TOOLS less `without`, and whose Chromium
    (LABKIT_CHROMIUM) is a stand-in program or, with chromium=False, a path where nothing is."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f".ci/run installs {tool}"
        if tool not in without:
            (bin_dir / tool).symlink_to(found)
    stand_in = tmp_path / "chromium"
    if chromium:
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}  # not a sub-make
    return {**env, "PATH": str(bin_dir), "LABKIT_CHROMIUM": str(stand_in)}


def preflight(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run([str(PREFLIGHT)], env=env, capture_output=True, text=True, timeout=30)
    return done, time.monotonic() - began


def test_a_machine_with_everything_passes_in_silence(tmp_path: Path) -> None:
    done, _ = preflight(machine(tmp_path))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_without_chromium_it_stops_at_once_with_one_line(tmp_path: Path) -> None:
    done, seconds = preflight(machine(tmp_path, chromium=False))
    assert done.returncode == 1
    assert (done.stdout, done.stderr) == ("", NO_CHROMIUM + "\n")
    assert seconds < 5


def test_it_names_every_missing_package_in_one_line(tmp_path: Path) -> None:
    done, _ = preflight(machine(tmp_path, chromium=False, without=("ip", "unshare", "curl")))
    assert done.returncode == 1
    assert done.stderr == (
        "make test needs chromium, curl, util-linux and iproute2: "
        "apt-get install chromium curl util-linux iproute2, as root (Debian/Ubuntu)\n"
    )


def test_without_node_it_names_nodejs_and_npm(tmp_path: Path) -> None:
    done, _ = preflight(machine(tmp_path, without=("node", "npm")))
    assert done.returncode == 1
    assert done.stderr == "make test needs nodejs and npm: apt-get install nodejs npm, as root (Debian/Ubuntu)\n"


def test_two_missing_packages_read_as_a_sentence(tmp_path: Path) -> None:
    done, _ = preflight(machine(tmp_path, chromium=False, without=("ip",)))
    assert done.returncode == 1
    line = "make test needs chromium and iproute2: apt-get install chromium iproute2, as root (Debian/Ubuntu)\n"
    assert done.stderr == line


def test_make_test_stops_at_the_preflight_before_installing_or_running_anything(tmp_path: Path) -> None:
    env = machine(tmp_path, chromium=False)
    began = time.monotonic()
    done = subprocess.run(  # a venv of its own, that PYTHON=false cannot make: no pip, no pytest, whatever happens
        ["make", "--no-print-directory", "test", f"VENV={tmp_path / 'venv'}", "PYTHON=false"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stdout == ""  # make echoes every other command it runs: none ran
    lines = done.stderr.splitlines()
    assert lines[0] == NO_CHROMIUM
    assert [line for line in lines[1:] if not line.startswith("make: *** ")] == []  # make's own "Error 1"
    assert time.monotonic() - began < 10
