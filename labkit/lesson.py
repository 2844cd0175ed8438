"""The lesson on top of the connection: a lab that knows the series' notebooks.

    lab = labkit.connect()     # a Lab: the connection (labkit/connection.py) and the lesson's verbs
    lab.ready_for("04")        # the lab holds what notebooks 00-03 built (labkit/checks.py)
    lab.reset(to="04")         # wipe, then replay notebooks 01-03 (labkit/solutions.py)

Dependencies point one way: this module imports the connection, the steps, the checks and
`%%instance`; the connection imports none of them.
"""

from __future__ import annotations

import os
import time

from labkit import challenge, checks, magic, solutions
from labkit.catalogue import CHALLENGE, NOTEBOOKS, checkpoint
from labkit.connection import Connection
from labkit.errors import CheckpointNotFound


class Lab(Connection):
    """A running lab, as the notebooks use it: the connection (clients, instances, status, env),
    and the lesson's checks and checkpoints."""

    def reset(self, *, to: str | int | None = None, say: bool = True) -> float:
        """Wipe the lab back to a fresh one, or (`to="03"`) to where a student who finished the
        notebooks before 03 would have it, with the same ids every time. `say` prints each step as it
        goes. Returns the seconds taken."""
        began = time.perf_counter()
        name = checkpoint(to) if to is not None else None  # a bad name wipes nothing
        super().reset()
        challenge.record.forget_grade(self.home)  # of a lab that is gone; the hints shown stay counted
        if name is None:
            return time.perf_counter() - began
        for notebook in solutions.before(name):
            if say:
                print(f"  replaying notebook {notebook} ({NOTEBOOKS[notebook]})…", flush=True)
            solutions.STEPS[notebook](self)
        if name == CHALLENGE:
            if say:
                print(f"  setting the challenge's scene ({NOTEBOOKS[name]})…", flush=True)
            challenge.set_the_scene(self)
        return time.perf_counter() - began

    def check(self, notebook: str | int) -> checks.CheckReport:
        """Whether the lab holds what notebook `notebook` builds, item by item; for the challenge
        (07), its grade (labkit/challenge/grade.py)."""
        if checkpoint(notebook) == CHALLENGE:
            return challenge.grade(self)
        return checks.check(self, notebook)

    def hint(self, notebook: str | int = CHALLENGE) -> str:
        """The challenge's next hint (`labkit hint 07`), counted: the grade says how many were used."""
        name = checkpoint(notebook)
        if name != CHALLENGE:
            raise CheckpointNotFound(
                f"Only notebook {CHALLENGE}, the challenge, has hints; notebook {name} shows each step."
            )
        return challenge.next_hint(self.home)

    def progress(self) -> checks.Progress:
        """For every notebook, whether the lab holds what it builds, and how far the student got."""
        return checks.progress(self)

    def ready_for(self, notebook: str | int) -> checks.CheckReport:
        """Whether the lab holds what the notebooks before `notebook` built (raises LabNotReady if not)."""
        return checks.ready_for(self, notebook)


def connect(home: str | os.PathLike[str] | None = None, *, start: bool = True) -> Lab:
    """Connect to the lab of `home` (default `$LABKIT_HOME`), starting it if it is not running; in
    IPython, `%%instance` cells then run on this lab's instances."""
    lab = Lab.open(home, start=start)
    magic.register(lab)
    return lab
