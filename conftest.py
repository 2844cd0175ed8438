"""pytest hooks for the notebooks (`pytest --nbval notebooks`): they run in this test session's
own lab, and each notebook starts from `reset --to` its own number, so each passes alone and in
any order. With LABKIT_NOTEBOOK_LAB=DIR they run in the lab of DIR instead, left running after
(benchmarks/run measures that lab)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

NOTEBOOK_LAB = pytest.StashKey[Path]()
_started: set[Path] = set()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("nbval", default=False):
        given = os.environ.get("LABKIT_NOTEBOOK_LAB")
        home = Path(given) if given else Path(tempfile.mkdtemp(prefix="labkit-notebooks-"))
        os.environ["LABKIT_HOME"] = str(home)  # the notebooks' kernels inherit it
        config.stash[NOTEBOOK_LAB] = home


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    home = item.config.stash.get(NOTEBOOK_LAB, None)
    notebook = Path(str(item.path))
    if home is None or notebook.suffix != ".ipynb" or notebook in _started:
        return
    _started.add(notebook)
    import labkit

    labkit.connect(home).reset(to=notebook.name[:2])


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(NOTEBOOK_LAB, None)
    if home is not None and not os.environ.get("LABKIT_NOTEBOOK_LAB"):
        import labkit

        labkit.down(home)
        shutil.rmtree(home, ignore_errors=True)
